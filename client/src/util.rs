//! Small helpers: clocks, the Lamport clock, endpoint rewriting, a fast hasher.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock microseconds since the Unix epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A Lamport clock shared by a client and its subscribers.
#[derive(Debug, Clone, Default)]
pub(crate) struct LamportClock(Arc<AtomicU64>);

impl LamportClock {
    /// Advances the clock for a send and returns the stamp to put on the message.
    pub(crate) fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Merges a received stamp: the clock becomes max(local, received) + 1.
    pub(crate) fn observe(&self, received: u64) -> u64 {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = current.max(received) + 1;
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Whether `url` is an endpoint ZeroMQ can connect to.
pub(crate) fn valid_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("tcp://") {
        matches!(rest.rsplit_once(':'), Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok())
    } else if let Some(rest) = url.strip_prefix("ipc://") {
        !rest.is_empty()
    } else if let Some(rest) = url.strip_prefix("inproc://") {
        !rest.is_empty()
    } else {
        false
    }
}

/// Turns an endpoint as the broker bound it into one this client can connect to: a wildcard
/// host (`0.0.0.0`, `*`, `[::]`) is replaced by the host the client reached the broker at.
pub fn connectable(bound: &str, main_url: &str) -> String {
    let Some(rest) = bound.strip_prefix("tcp://") else {
        return bound.to_owned();
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return bound.to_owned();
    };
    if !matches!(host, "0.0.0.0" | "*" | "[::]" | "::" | "[::0]") {
        return bound.to_owned();
    }
    let main_host = main_url
        .strip_prefix("tcp://")
        .and_then(|r| r.rsplit_once(':'))
        .map(|(h, _)| h)
        .filter(|h| !matches!(*h, "0.0.0.0" | "*" | "[::]" | "::"))
        .unwrap_or("127.0.0.1");
    format!("tcp://{main_host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lamport_rules() {
        let c = LamportClock::default();
        assert_eq!(c.tick(), 1);
        assert_eq!(c.observe(10), 11);
        assert_eq!(c.observe(3), 12);
        assert_eq!(c.tick(), 13);
    }

    #[test]
    fn wildcard_hosts_are_rewritten() {
        assert_eq!(
            connectable("tcp://0.0.0.0:5556", "tcp://10.1.2.3:5555"),
            "tcp://10.1.2.3:5556"
        );
        assert_eq!(
            connectable("tcp://127.0.0.1:5556", "tcp://10.1.2.3:5555"),
            "tcp://127.0.0.1:5556"
        );
        assert_eq!(connectable("ipc:///tmp/x", "tcp://h:1"), "ipc:///tmp/x");
        assert_eq!(
            connectable("tcp://0.0.0.0:5556", "ipc:///tmp/main"),
            "tcp://127.0.0.1:5556"
        );
    }

    #[test]
    fn urls() {
        assert!(valid_url("tcp://127.0.0.1:5555"));
        assert!(valid_url("ipc:///tmp/a"));
        assert!(!valid_url("tcp://127.0.0.1"));
        assert!(!valid_url("127.0.0.1:5555"));
        assert!(!valid_url("tcp://h:*"));
    }
}

/// A fast multiplicative hasher for the per-message sequence maps (publisher ids and topics).
///
/// SipHash, std's default, costs more than the rest of a subscriber's per-message work at a
/// million messages a second. Its resistance to crafted collisions buys little here: the keys
/// come from publishers on the same bus, who can already flood it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;
