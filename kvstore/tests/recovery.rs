//! Recovery: write, drop, reopen, compare; with and without snapshots, after compaction has
//! dropped segments, with a damaged or truncated snapshot, a torn log tail, a damaged
//! record in the middle of the log, and a log compacted past every usable snapshot.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{dump, open, small, Rng, SEC, T0};
use zhub_eventlog::EventLogError;
use zhub_kvstore::{Entry, KvError, KvStore, CHANGES_STREAM, LOG_DIR, SNAPSHOT_DIR};

/// Everything observable about the state at `now`.
#[derive(Debug, PartialEq)]
struct Observed {
    entries: Vec<(String, Entry)>,
    revision: u64,
    next_expiry: Option<i64>,
    len: usize,
}

fn observe(kv: &KvStore, now: i64) -> Observed {
    Observed {
        entries: dump(kv, now),
        revision: kv.revision(),
        next_expiry: kv.next_expiry(),
        len: kv.len(),
    }
}

/// `n` pseudo-random writes over 50 keys: puts (some with TTLs), deletes, increments.
fn churn(kv: &mut KvStore, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let key = format!("key/{:02}", rng.below(50));
        match rng.below(10) {
            0..=4 => {
                let value = rng.bytes(120);
                kv.put(&key, &value, None, T0).unwrap();
            }
            5 => {
                let ttl = Duration::from_secs(1 + rng.below(100));
                kv.put(&key, b"ttl", Some(ttl), T0).unwrap();
            }
            6 | 7 => {
                kv.delete(&key, T0).unwrap();
            }
            _ => {
                let key = format!("count/{}", rng.below(5));
                kv.incr(&key, rng.below(10) as i64 - 3, T0).unwrap();
            }
        }
    }
    kv.sync().unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(LOG_DIR).join(CHANGES_STREAM))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(SNAPSHOT_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn reopen_replays_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    churn(&mut kv, &mut Rng(1), 2000);
    let before = observe(&kv, T0);
    let history = kv.history("key/07", 16).unwrap();
    assert!(kv.stats().log_segments > 10, "the test wants many segments");
    drop(kv);
    let mut kv = open(dir.path());
    assert_eq!(observe(&kv, T0), before);
    assert_eq!(kv.history("key/07", 16).unwrap(), history);
    assert_eq!(kv.stats().snapshot_offset, None);
    // And it goes on from there.
    let c = kv.put("new", b"1", None, T0).unwrap();
    assert_eq!(c.revision, before.revision);
}

#[test]
fn reopen_from_snapshots_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = small().snapshot_every(300);
    let mut kv = KvStore::open(dir.path(), config.clone()).unwrap();
    let mut rng = Rng(2);
    let mut taken = 0;
    for _ in 0..10 {
        churn(&mut kv, &mut rng, 200);
        if kv.maintenance().unwrap() {
            taken += 1;
        }
    }
    assert!(taken >= 5, "{taken} snapshots");
    churn(&mut kv, &mut rng, 150); // some changes after the last snapshot
    let stats = kv.stats();
    assert_eq!(stats.snapshots, 2);
    assert_eq!(snapshot_files(dir.path()).len(), 2);
    assert!(stats.first_log_offset > 0, "compaction dropped segments");
    let first_segment = segment_files(dir.path())[0].clone();
    assert!(!first_segment.ends_with("00000000000000000000.log"));
    assert!(stats.tombstones <= 50);
    let before = observe(&kv, T0);
    drop(kv);

    let kv = KvStore::open(dir.path(), config).unwrap();
    assert_eq!(observe(&kv, T0), before);
    let reopened = kv.stats();
    // A replica asking for compacted changes is told to reload a snapshot.
    let mut kv = kv;
    match kv.changes_since("", 0, u64::MAX, 10) {
        Err(KvError::Compacted { from: 0, first }) => assert_eq!(first, stats.first_log_offset),
        other => panic!("{other:?}"),
    }
    let (all, next) = kv
        .changes_since("", stats.first_log_offset, u64::MAX, usize::MAX)
        .unwrap();
    assert_eq!(next, stats.next_revision);
    assert_eq!(
        all.len() as u64,
        stats.next_revision - stats.first_log_offset
    );
    assert_eq!(reopened.snapshot_offset, stats.snapshot_offset);
    assert_eq!(reopened.first_log_offset, stats.first_log_offset);
    assert_eq!(
        reopened.changes_since_snapshot,
        stats.changes_since_snapshot
    );
    assert_eq!(reopened.tombstones, stats.tombstones);
}

#[test]
fn history_reaches_back_to_the_older_snapshot_at_least() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), small().max_history(1000)).unwrap();
    let mut revisions = Vec::new();
    for round in 0..6 {
        for i in 0..40 {
            let c = kv
                .put("k", format!("{round}-{i}").as_bytes(), None, T0)
                .unwrap();
            revisions.push(c.revision);
            kv.put("filler", &[0u8; 200], None, T0).unwrap();
        }
        kv.snapshot().unwrap();
    }
    let first = kv.stats().first_log_offset;
    assert!(first > 0);
    let h = kv.history("k", 1000).unwrap();
    let expected: Vec<u64> = revisions
        .iter()
        .rev()
        .copied()
        .filter(|&r| r >= first)
        .collect();
    assert_eq!(h.iter().map(|e| e.revision).collect::<Vec<_>>(), expected);
    // At least every change since the older snapshot kept (the fifth round's) is there.
    assert!(h.len() >= 40, "{}", h.len());
}

#[test]
fn damaged_newest_snapshot_falls_back_to_the_older_one() {
    for damage in ["flip", "truncate", "empty"] {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = open(dir.path());
        let mut rng = Rng(3);
        let mut taken = Vec::new();
        for _ in 0..3 {
            churn(&mut kv, &mut rng, 500);
            taken.push(kv.snapshot().unwrap());
        }
        churn(&mut kv, &mut rng, 100);
        let before = observe(&kv, T0);
        // The second and third snapshots are kept; the log is compacted below the second.
        let first = kv.stats().first_log_offset;
        let (second, third) = (taken[1], taken[2]);
        assert_eq!(kv.stats().snapshot_offset, Some(third));
        assert!(first > 0 && first <= second);
        drop(kv);

        let files = snapshot_files(dir.path());
        let victim = files.last().unwrap();
        let len = std::fs::metadata(victim).unwrap().len() as usize;
        match damage {
            "flip" => flip_byte(victim, len / 2),
            "truncate" => {
                std::fs::write(victim, &std::fs::read(victim).unwrap()[..len - 7]).unwrap()
            }
            _ => std::fs::write(victim, b"").unwrap(),
        }
        let kv = open(dir.path());
        assert_eq!(observe(&kv, T0), before, "{damage}");
        assert_eq!(kv.stats().snapshot_offset, Some(second), "{damage}");
        assert_eq!(kv.stats().snapshots, 1);
        let set_aside = dir
            .path()
            .join(SNAPSHOT_DIR)
            .join(format!("{third:020}.snap.damaged"));
        assert!(set_aside.exists(), "{damage}");
        drop(kv);
        // The next open does not look at it again.
        let mut kv = open(dir.path());
        assert_eq!(observe(&kv, T0), before);
        // Snapshots go on, and the set-aside file stays for inspection.
        kv.snapshot().unwrap();
        assert!(set_aside.exists());
    }
}

#[test]
fn damaged_only_snapshot_falls_back_to_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    churn(&mut kv, &mut Rng(4), 800);
    kv.snapshot().unwrap(); // one snapshot: nothing compacted yet
    churn(&mut kv, &mut Rng(5), 100);
    let before = observe(&kv, T0);
    assert_eq!(kv.stats().first_log_offset, 0);
    drop(kv);
    let snap = snapshot_files(dir.path()).pop().unwrap();
    flip_byte(&snap, 40);
    let kv = open(dir.path());
    assert_eq!(observe(&kv, T0), before);
    assert_eq!(kv.stats().snapshot_offset, None);
}

#[test]
fn log_compacted_past_every_usable_snapshot_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    let mut rng = Rng(6);
    for _ in 0..3 {
        churn(&mut kv, &mut rng, 500);
        kv.snapshot().unwrap();
    }
    churn(&mut kv, &mut rng, 50);
    let before = observe(&kv, T0);
    drop(kv);
    for snap in snapshot_files(dir.path()) {
        flip_byte(&snap, 50);
    }
    match KvStore::open(dir.path(), small()) {
        Err(e @ KvError::Unrecoverable { .. }) => {
            assert!(e.to_string().contains("no usable snapshot"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Tolerating damage opens with what the log still holds: the latest changes are there.
    let files = snapshot_files(dir.path());
    assert!(files
        .iter()
        .all(|f| f.to_string_lossy().ends_with(".damaged")));
    let kv = KvStore::open(dir.path(), small().tolerate_damage(true)).unwrap();
    assert_eq!(kv.revision(), before.revision);
    assert!(kv.len() <= before.len);
}

#[test]
fn snapshot_ahead_of_the_log_is_set_aside() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut kv = open(a.path());
    churn(&mut kv, &mut Rng(7), 30);
    let before = observe(&kv, T0);
    drop(kv);
    let mut other = open(b.path());
    churn(&mut other, &mut Rng(8), 300);
    other.snapshot().unwrap();
    drop(other);
    let snap = snapshot_files(b.path()).pop().unwrap();
    std::fs::copy(
        &snap,
        a.path().join(SNAPSHOT_DIR).join(snap.file_name().unwrap()),
    )
    .unwrap();
    let kv = open(a.path());
    assert_eq!(observe(&kv, T0), before);
    assert_eq!(kv.stats().snapshot_offset, None);
}

#[test]
fn torn_tail_reopens_with_every_synced_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    churn(&mut kv, &mut Rng(9), 700);
    kv.snapshot().unwrap();
    churn(&mut kv, &mut Rng(10), 30);
    let before = observe(&kv, T0);
    // One more change, reaching the file, then torn: its last bytes never made it.
    kv.put("torn", &[7u8; 100], None, T0).unwrap();
    kv.sync().unwrap();
    drop(kv);
    let last = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let mut kv = open(dir.path());
    assert_eq!(observe(&kv, T0), before);
    assert_eq!(kv.get("torn", T0), None);
    // The cut revision is given again, and the store works on.
    let c = kv.put("after", b"1", None, T0).unwrap();
    assert_eq!(c.revision, before.revision);
    kv.sync().unwrap();
    drop(kv);
    let kv = open(dir.path());
    assert_eq!(kv.get("after", T0).unwrap().revision, before.revision);
}

#[test]
fn unsynced_writes_are_lost_on_drop_as_in_a_crash_but_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("a", b"synced", None, T0).unwrap();
    kv.sync().unwrap();
    let before = observe(&kv, T0);
    kv.put("b", b"buffered", None, T0).unwrap();
    drop(kv); // no close: the buffered change never reached the file
    let kv = open(dir.path());
    assert_eq!(observe(&kv, T0), before);
}

#[test]
fn damaged_change_in_the_middle_fails_open_unless_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("first", b"1", None, T0).unwrap();
    kv.put("victim", b"MARKER-MARKER-MARKER", None, T0).unwrap();
    for i in 0..5 {
        kv.put(&format!("after/{i}"), b"x", None, T0).unwrap();
    }
    kv.close().unwrap();
    let seg = segment_files(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(6).position(|w| w == b"MARKER").unwrap();
    flip_byte(&seg, at + 3);

    match KvStore::open(dir.path(), small()) {
        Err(KvError::Log(EventLogError::Corrupt { offset, .. })) => assert_eq!(offset, 1),
        other => panic!("{other:?}"),
    }
    let kv = KvStore::open(dir.path(), small().tolerate_damage(true)).unwrap();
    assert_eq!(kv.stats().skipped_changes, 1);
    assert_eq!(kv.get("victim", T0), None);
    assert_eq!(kv.len(), 6);
    assert_eq!(kv.revision(), 7);
}

#[test]
fn snapshot_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), small().snapshot_every(10)).unwrap();
    assert!(!kv.maintenance().unwrap());
    for i in 0..9 {
        kv.put(&format!("k{i}"), b"v", None, T0).unwrap();
    }
    assert!(!kv.snapshot_due());
    kv.put("k9", b"v", None, T0).unwrap();
    assert!(kv.snapshot_due());
    assert!(kv.needs_sync());
    assert!(kv.maintenance().unwrap());
    assert!(!kv.needs_sync(), "a snapshot syncs the log first");
    assert_eq!(kv.stats().changes_since_snapshot, 0);
    // A second snapshot with nothing new is the same one.
    let at = kv.snapshot().unwrap();
    assert_eq!(kv.snapshot().unwrap(), at);
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    // Three more: two are kept.
    for round in 0..3 {
        kv.put("x", format!("{round}").as_bytes(), None, T0)
            .unwrap();
        kv.snapshot().unwrap();
    }
    assert_eq!(snapshot_files(dir.path()).len(), 2);
    // A leftover of an interrupted snapshot is cleaned up on open.
    drop(kv);
    let tmp = dir
        .path()
        .join(SNAPSHOT_DIR)
        .join("00000000000000000099.snap.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let kv = open(dir.path());
    assert!(!tmp.exists());
    assert_eq!(kv.stats().snapshots, 2);
    assert_eq!(kv.get("x", T0).unwrap().value, b"2");
}

#[test]
fn expiry_index_and_tombstones_are_rebuilt_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("a", b"1", Some(Duration::from_secs(10)), T0)
        .unwrap();
    kv.put("gone", b"1", None, T0).unwrap();
    kv.delete("gone", T0).unwrap();
    kv.snapshot().unwrap();
    kv.put("b", b"1", Some(Duration::from_secs(5)), T0).unwrap();
    kv.put("gone2", b"1", None, T0).unwrap();
    kv.delete("gone2", T0).unwrap();
    let stats = kv.stats();
    kv.close().unwrap();
    let mut kv = open(dir.path());
    let again = kv.stats();
    assert_eq!((again.expiring_keys, again.tombstones), (2, 2));
    assert_eq!(
        (again.expiring_keys, again.tombstones),
        (stats.expiring_keys, stats.tombstones)
    );
    assert_eq!(kv.next_expiry(), Some(T0 + 5 * SEC));
    assert_eq!(kv.history("gone", 5).unwrap().len(), 2);
    assert_eq!(kv.history("gone2", 5).unwrap().len(), 2);
    assert_eq!(kv.expire_due(T0 + 10 * SEC).unwrap().len(), 2);
}
