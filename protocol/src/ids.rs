//! Identifiers: fresh random ids (publishers, requests, subscribers, group members) and the
//! hexadecimal form ids and raw bytes take in logs and on the terminal.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A random `u64`, different in every call and every process.
///
/// std's hasher keys are seeded from the OS's randomness once per process and then varied
/// per `RandomState`; the counter, the time and the process id go in as well, so two calls
/// never hash the same input even within one nanosecond. Not for secrets: good enough for
/// ids that must not collide, not for ids that must not be guessed.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// `bytes` as lowercase hexadecimal, two digits a byte, no prefix (a ZeroMQ identity in a
/// log line, an undecodable body on the terminal).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
    }
}
