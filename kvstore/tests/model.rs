//! A property-style test: deterministic pseudo-random operations (put, TTL put, delete,
//! compare-and-set, increment, expiry sweeps, snapshots, reopen) on the store and on a plain
//! `BTreeMap` model, checking after every step that they agree: returned changes, reads,
//! listings, revisions and history.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{dump, Rng, SEC, T0};
use zhub_kvstore::codec::decode_counter;
use zhub_kvstore::{ChangeKind, Entry, KvConfig, KvError, KvStore};

#[derive(Debug, Clone)]
struct ModelEntry {
    value: Vec<u8>,
    revision: u64,
    expires_at: Option<i64>,
}

impl ModelEntry {
    fn live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Default)]
struct Model {
    map: BTreeMap<String, ModelEntry>,
    next: u64,
    /// Every change of every key, oldest first: (revision, kind, value).
    history: BTreeMap<String, Vec<(u64, ChangeKind, Vec<u8>)>>,
}

impl Model {
    fn live(&self, key: &str, now: i64) -> Option<&ModelEntry> {
        self.map.get(key).filter(|e| e.live(now))
    }

    fn record(&mut self, key: &str, kind: ChangeKind, value: &[u8]) -> u64 {
        let revision = self.next;
        self.next += 1;
        self.history
            .entry(key.to_owned())
            .or_default()
            .push((revision, kind, value.to_vec()));
        revision
    }

    fn put(&mut self, key: &str, value: &[u8], expires_at: Option<i64>) -> u64 {
        let revision = self.record(key, ChangeKind::Put, value);
        self.map.insert(
            key.to_owned(),
            ModelEntry {
                value: value.to_vec(),
                revision,
                expires_at,
            },
        );
        revision
    }

    fn remove(&mut self, key: &str, kind: ChangeKind) -> u64 {
        self.map.remove(key);
        self.record(key, kind, b"")
    }

    fn live_entries(&self, now: i64) -> Vec<(String, Entry)> {
        self.map
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|(k, e)| {
                (
                    k.clone(),
                    Entry {
                        value: e.value.clone(),
                        revision: e.revision,
                        expires_at_us: e.expires_at,
                    },
                )
            })
            .collect()
    }
}

const MAX_HISTORY: usize = 8;

fn config() -> KvConfig {
    KvConfig::default()
        .segment_bytes(4096)
        .snapshot_every(97)
        .max_history(MAX_HISTORY)
        .max_value_bytes(64)
}

fn open(dir: &Path) -> KvStore {
    KvStore::open(dir, config()).unwrap()
}

fn run(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    let mut model = Model::default();
    let mut rng = Rng(seed);
    let mut now = T0;
    let mut reopens = 0;
    let mut snapshots = 0;
    for step in 0..steps {
        now += rng.below(2 * SEC as u64) as i64;
        let key = format!("k/{}", rng.below(40));
        match rng.below(100) {
            0..=29 => {
                let value = rng.bytes(64);
                let c = kv.put(&key, &value, None, now).unwrap();
                assert_eq!(c.revision, model.put(&key, &value, None));
            }
            30..=39 => {
                let value = rng.bytes(8);
                let ttl = Duration::from_micros(rng.below(30 * SEC as u64));
                let c = kv.put(&key, &value, Some(ttl), now).unwrap();
                let at = now + ttl.as_micros() as i64;
                assert_eq!(c.expires_at_us, Some(at));
                assert_eq!(c.revision, model.put(&key, &value, Some(at)));
            }
            40..=51 => {
                let got = kv.delete(&key, now).unwrap();
                if model.live(&key, now).is_some() {
                    let c = got.expect("a live key is deleted");
                    assert_eq!(c.revision, model.remove(&key, ChangeKind::Delete));
                } else {
                    assert!(got.is_none());
                }
            }
            52..=66 => {
                let current = model.live(&key, now).map(|e| e.revision);
                let expected = match rng.below(3) {
                    0 => current,
                    1 => None,
                    _ => Some(rng.below(model.next + 1)),
                };
                let value = rng.bytes(16);
                match kv.cas(&key, expected, &value, None, now) {
                    Ok(c) => {
                        assert_eq!(expected, current);
                        assert_eq!(c.revision, model.put(&key, &value, None));
                    }
                    Err(KvError::RevisionMismatch {
                        expected: e,
                        current: cur,
                        ..
                    }) => {
                        assert_ne!(expected, current);
                        assert_eq!((e, cur), (expected, current));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            67..=81 => {
                let delta = rng.below(2001) as i64 - 1000;
                let live = model.live(&key, now).cloned();
                let current = match &live {
                    Some(e) => decode_counter(&e.value),
                    None => Some(0),
                };
                match (kv.incr(&key, delta, now), current) {
                    (Ok((n, c)), Some(cur)) => {
                        assert_eq!(n, cur + delta);
                        let expires_at = live.and_then(|e| e.expires_at);
                        assert_eq!(c.expires_at_us, expires_at);
                        assert_eq!(c.revision, model.put(&key, &c.value, expires_at));
                    }
                    (Err(KvError::NotACounter { .. }), None) => {}
                    (other, cur) => panic!("incr gave {other:?}, model has {cur:?}"),
                }
            }
            82..=89 => {
                let mut due: Vec<(i64, String)> = model
                    .map
                    .iter()
                    .filter_map(|(k, e)| {
                        e.expires_at
                            .filter(|&at| at <= now)
                            .map(|at| (at, k.clone()))
                    })
                    .collect();
                due.sort();
                let changes = kv.expire_due(now).unwrap();
                assert_eq!(changes.len(), due.len());
                for (c, (_, k)) in changes.iter().zip(due) {
                    assert_eq!((&c.key, c.kind), (&k, ChangeKind::Expire));
                    assert_eq!(c.revision, model.remove(&k, ChangeKind::Expire));
                }
                let next = model.map.values().filter_map(|e| e.expires_at).min();
                assert_eq!(kv.next_expiry(), next);
            }
            90..=94 => {
                if kv.maintenance().unwrap() {
                    snapshots += 1;
                }
            }
            95..=96 => {
                // History: newest first, bounded, back to where the log begins.
                let n = rng.below(12) as usize;
                let first = kv.stats().first_log_offset;
                let expected: Vec<(u64, ChangeKind, Vec<u8>)> = model
                    .history
                    .get(&key)
                    .map(|h| {
                        h.iter()
                            .rev()
                            .filter(|(r, _, _)| *r >= first)
                            .take(n.min(MAX_HISTORY))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let got: Vec<(u64, ChangeKind, Vec<u8>)> = kv
                    .history(&key, n)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.revision, h.kind, h.value))
                    .collect();
                assert_eq!(got, expected, "history of {key} at step {step}");
            }
            _ => {
                kv.close().unwrap();
                kv = open(dir.path());
                reopens += 1;
            }
        }
        if kv.needs_sync() && rng.below(4) == 0 {
            kv.sync().unwrap();
        }
        assert_eq!(kv.revision(), model.next, "step {step}");
        assert_eq!(kv.len(), model.map.len(), "step {step}");
        assert_eq!(
            kv.get(&key, now).map(|e| e.value),
            model.live(&key, now).map(|e| e.value.clone()),
            "step {step}"
        );
        if step % 50 == 0 {
            assert_eq!(dump(&kv, now), model.live_entries(now), "step {step}");
        }
    }
    assert!(
        reopens > 10 && snapshots > 5,
        "{reopens} reopens, {snapshots} snapshots"
    );
    assert!(kv.stats().first_log_offset > 0, "compaction happened");
    kv.close().unwrap();
    let kv = open(dir.path());
    assert_eq!(dump(&kv, now), model.live_entries(now));
}

#[test]
fn store_equals_model_seed_1() {
    run(1, 4000);
}

#[test]
fn store_equals_model_seed_2() {
    run(0xDEAD_BEEF, 4000);
}
