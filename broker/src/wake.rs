//! Poll timeouts: how long a loop may sleep in `zmq::poll` before its next deadline.
//!
//! `zmq::poll` takes whole milliseconds. Rounding the time left *down* turns a wait of
//! 0.4 ms into a timeout of 0, and the loop spins through that last partial millisecond (or
//! longer, when the deadline is not consumed by the turn that wakes). Rounding *up* means a
//! loop wakes at most 1 ms after its deadline, and never with a zero timeout while the
//! deadline is still in the future. Every poll loop of the broker takes its timeout from here.

use std::time::Instant;

/// The `zmq::poll` timeout, in milliseconds, for a loop at `now` whose next deadline is
/// `wake`: the time left rounded up to a whole millisecond, 0 only once `wake` has come.
pub(crate) fn poll_timeout(now: Instant, wake: Instant) -> i64 {
    let left = wake.saturating_duration_since(now);
    i64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rounds_up_and_is_zero_only_when_due() {
        let now = Instant::now();
        assert_eq!(poll_timeout(now, now), 0);
        assert_eq!(poll_timeout(now + Duration::from_millis(5), now), 0);
        assert_eq!(poll_timeout(now, now + Duration::from_micros(1)), 1);
        assert_eq!(poll_timeout(now, now + Duration::from_micros(400)), 1);
        assert_eq!(poll_timeout(now, now + Duration::from_millis(1)), 1);
        assert_eq!(poll_timeout(now, now + Duration::from_micros(1001)), 2);
        let far = now + Duration::from_secs(49 * 24 * 3600);
        assert_eq!(poll_timeout(now, far), 49 * 24 * 3600 * 1000);
    }
}
