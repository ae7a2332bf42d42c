//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use zhub_kvstore::{Entry, KvConfig, KvStore};

/// A fixed clock origin: 2023-11-14, in µs since the epoch.
pub const T0: i64 = 1_700_000_000_000_000;
/// One second in µs.
pub const SEC: i64 = 1_000_000;

/// Small segments so that compaction has whole segments to drop.
pub fn small() -> KvConfig {
    KvConfig::default().segment_bytes(4096).snapshot_every(0)
}

pub fn open(dir: &Path) -> KvStore {
    KvStore::open(dir, small()).unwrap()
}

/// Every live entry, in key order.
pub fn dump(kv: &KvStore, now: i64) -> Vec<(String, Entry)> {
    let (all, more) = kv.list("", None, usize::MAX, now);
    assert!(!more);
    all
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max as u64 + 1) as usize;
        (0..len).map(|_| self.next() as u8).collect()
    }
}
