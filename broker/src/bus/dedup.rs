//! The duplicate window: drops a second copy of a message that came from peer brokers by two
//! routes (redundant gateways between zones, or a zone mate and a gateway), so that each
//! subscriber gets it once.
//!
//! A message is known by its publisher, its topic and its sequence number, which counts per
//! publisher and topic ([`zhub_protocol::bus`]). Copies of one publisher's messages on one
//! topic come in order along each route, so a window of the last [`WINDOW`] numbers seen per
//! publisher and topic catches every second copy: one that arrives further behind than that
//! is taken for a copy too. Messages numbered 0 (a publisher that does not count) are let
//! through.
//!
//! The table is bounded: it keeps two generations of at most [`GENERATION`] entries each,
//! and forgets the older when the newer is full, so that a publisher silent for that long
//! starts afresh (its next message is taken).

use std::collections::hash_map::{HashMap, RandomState};
use std::hash::BuildHasher;

/// Sequence numbers remembered per publisher and topic, behind the highest seen.
pub(crate) const WINDOW: u64 = 128;
/// Most publishers and topics one generation of the table holds.
pub(crate) const GENERATION: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Window {
    /// The highest sequence number seen.
    top: u64,
    /// Bit `i`: `top - i` was seen.
    seen: u128,
}

impl Window {
    fn new(seq: u64) -> Self {
        Window { top: seq, seen: 1 }
    }

    /// Takes `seq`: true when it had not been seen.
    fn take(&mut self, seq: u64) -> bool {
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= WINDOW {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.top = seq;
            return true;
        }
        let behind = self.top - seq;
        if behind >= WINDOW {
            return false;
        }
        let bit = 1u128 << behind;
        let first = self.seen & bit == 0;
        self.seen |= bit;
        first
    }
}

/// The table. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    hasher: RandomState,
    current: HashMap<(u64, u64), Window>,
    previous: HashMap<(u64, u64), Window>,
}

impl Seen {
    /// Whether this is the first copy of `publisher`'s message `seq` on `topic`.
    pub(crate) fn first(&mut self, publisher: u64, topic: &[u8], seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        let key = (publisher, self.hasher.hash_one(topic));
        if let Some(window) = self.current.get_mut(&key) {
            return window.take(seq);
        }
        let window = match self.previous.remove(&key) {
            Some(mut window) => {
                let first = window.take(seq);
                self.insert(key, window);
                return first;
            }
            None => Window::new(seq),
        };
        self.insert(key, window);
        true
    }

    fn insert(&mut self, key: (u64, u64), window: Window) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, window);
    }

    /// Publishers and topics remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_copies_are_caught_in_any_interleaving() {
        let mut seen = Seen::default();
        // Route one runs ahead of route two; each copy comes once by each.
        let mut taken = Vec::new();
        for seq in 1..=10 {
            if seen.first(7, b"t", seq) {
                taken.push(seq);
            }
        }
        for seq in 1..=12 {
            if seen.first(7, b"t", seq) {
                taken.push(seq);
            }
        }
        assert_eq!(taken, (1..=12).collect::<Vec<_>>());
        // Other topics and publishers count apart.
        assert!(seen.first(7, b"u", 3));
        assert!(seen.first(8, b"t", 3));
        assert!(!seen.first(8, b"t", 3));
        // A copy further behind than the window is taken for a second one.
        assert!(seen.first(7, b"t", 12 + WINDOW));
        assert!(!seen.first(7, b"t", 12), "a window behind");
        assert!(seen.first(7, b"t", 13), "inside the window, never seen");
        assert!(!seen.first(7, b"t", 13));
        // Unnumbered messages always pass.
        assert!(seen.first(9, b"t", 0) && seen.first(9, b"t", 0));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut seen = Seen::default();
        for publisher in 0..(3 * GENERATION as u64) {
            assert!(seen.first(publisher, b"t", 1));
        }
        assert!(seen.len() <= 2 * GENERATION);
        // The most recent are remembered.
        assert!(!seen.first(3 * GENERATION as u64 - 1, b"t", 1));
    }
}
