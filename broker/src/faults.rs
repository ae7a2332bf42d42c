//! Hooks that make a broker thread fail as a bug would, for the tests of what the broker does
//! then (feature `fault-injection`; see [`crate::Broker::crash_thread`]).

/// Sent on a thread's control socket instead of a stop: the thread panics at its next turn.
pub(crate) const CRASH: &[u8] = b"crash";

/// Panics if `message`, taken from a control socket, asks for a crash.
pub(crate) fn crash_if_asked(message: &[u8]) {
    if message == CRASH {
        panic!("crash injected by a test");
    }
}
