//! Sparse logging of faults that peers can repeat at will (malformed messages, protocol
//! errors, unroutable sends): a flood of bad input stays visible without flooding the log.
//!
//! Each reason has its own counter. The 1st, 2nd, 4th, 8th... occurrence of a reason is
//! logged at WARN with the running total, every other one at DEBUG; so `n` occurrences make
//! about `log2(n) + 1` warnings, and one reason's flood never hides another reason's first
//! line. A counter belongs to one thread's state (no locks): the router, the service layer
//! and the storage thread each keep their own.

use std::collections::HashMap;

/// Counters of faults by reason; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Sparse {
    counts: HashMap<&'static str, u64>,
}

impl Sparse {
    /// Counts one occurrence of `reason`; returns the total so far and whether this one is
    /// logged at WARN.
    pub(crate) fn hit(&mut self, reason: &'static str) -> (u64, bool) {
        let count = self.counts.entry(reason).or_insert(0);
        *count += 1;
        (*count, count.is_power_of_two())
    }
}

/// Logs a peer fault through a [`Sparse`] counter: `peer_fault!(counter, "reason", fields...)`
/// logs `reason` (a literal, also the counter's key) with `total` and the fields, at WARN
/// for the 1st, 2nd, 4th... occurrence and at DEBUG otherwise.
macro_rules! peer_fault {
    ($sparse:expr, $reason:literal $(, $($field:tt)+)?) => {{
        let (total, loud) = $sparse.hit($reason);
        if loud {
            tracing::warn!(total, $($($field)+,)? $reason);
        } else {
            tracing::debug!(total, $($($field)+,)? $reason);
        }
    }};
}
pub(crate) use peer_fault;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_are_loud_per_reason() {
        let mut sparse = Sparse::default();
        let loud: Vec<u64> = (0..1000)
            .filter_map(|_| match sparse.hit("a") {
                (n, true) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(loud, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
        assert_eq!(sparse.hit("b"), (1, true), "another reason starts loud");
        assert_eq!(sparse.hit("a"), (1001, false));
    }
}
