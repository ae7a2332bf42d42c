//! Tests of failed change log writes and syncs (a full disk, a failing fsync), made with
//! `zhub_eventlog::faults`: the store recovers by itself, acknowledges nothing the log does
//! not hold, and reuses no acknowledged revision.

use zhub_eventlog::faults;

use crate::{KvConfig, KvError, KvStore};

const T0: i64 = 1_700_000_000_000_000;

/// Every key's value and revision, in key order.
fn contents(kv: &KvStore) -> Vec<(String, Vec<u8>, u64)> {
    let (entries, _) = kv.list("", None, usize::MAX, T0);
    entries
        .into_iter()
        .map(|(k, e)| (k, e.value, e.revision))
        .collect()
}

fn not_stored(result: crate::Result<impl std::fmt::Debug>) {
    match result {
        Err(KvError::NotStored { .. }) | Err(KvError::Log(_)) => {}
        other => panic!("expected a failure to store, got {other:?}"),
    }
}

#[test]
fn a_full_disk_fails_the_batch_then_writes_succeed_again_without_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    kv.put("a", b"1", None, T0).unwrap();
    kv.put("b", b"2", None, T0).unwrap();
    kv.sync().unwrap();
    let acknowledged = contents(&kv);

    faults::fail_writes_after(10);
    // Buffered: handed out, then taken back by the failed sync.
    assert_eq!(kv.put("c", b"3", None, T0).unwrap().revision, 2);
    assert_eq!(kv.incr("n", 5, T0).unwrap().0, 5);
    not_stored(kv.sync());
    assert_eq!(
        contents(&kv),
        acknowledged,
        "memory holds what the log holds"
    );
    assert_eq!(kv.revision(), 2);
    assert!(kv.get("c", T0).is_none());
    // Still full: the next batch fails the same way.
    kv.put("c", b"3", None, T0).unwrap();
    not_stored(kv.sync());
    assert_eq!(contents(&kv), acknowledged);
    assert!(kv.stats().failed_writes >= 2);

    faults::clear();
    assert_eq!(kv.put("c", b"3", None, T0).unwrap().revision, 2);
    assert_eq!(
        kv.incr("n", 1, T0).unwrap().0,
        1,
        "the lost increment is gone"
    );
    kv.sync().unwrap();
    let acknowledged = contents(&kv);
    assert_eq!(
        acknowledged.iter().map(|e| e.2).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    drop(kv);
    let kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    assert_eq!(contents(&kv), acknowledged);
    assert_eq!(kv.revision(), 4);
}

#[test]
fn a_failure_inside_a_write_takes_back_the_batch_and_refuses_writes_until_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    kv.put("kept", b"yes", None, T0).unwrap();
    kv.sync().unwrap();

    // 100 KiB values: the third fills the log's write buffer, whose write fails.
    faults::fail_writes_after(150 << 10);
    let big = vec![7u8; 100 << 10];
    kv.put("big1", &big, None, T0).unwrap();
    kv.put("big2", &big, None, T0).unwrap();
    not_stored(kv.put("big3", &big, None, T0));
    assert!(kv.get("big1", T0).is_none(), "taken back with the batch");
    assert_eq!(kv.get("kept", T0).unwrap().value, b"yes");
    faults::clear();
    // The owner still holds big1 and big2 as coming: until its sync has told it otherwise,
    // no write is taken.
    match kv.put("x", b"1", None, T0) {
        Err(KvError::NotStored { .. }) => {}
        other => panic!("{other:?}"),
    }
    match kv.sync() {
        Err(KvError::NotStored { .. }) => {}
        other => panic!("{other:?}"),
    }
    kv.sync().unwrap();
    assert_eq!(kv.put("x", b"1", None, T0).unwrap().revision, 1);
    kv.sync().unwrap();
    drop(kv);
    let kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    assert_eq!(
        contents(&kv),
        [
            ("kept".to_owned(), b"yes".to_vec(), 0),
            ("x".to_owned(), b"1".to_vec(), 1)
        ]
    );
}

#[test]
fn a_failed_fsync_is_not_acknowledged_and_memory_follows_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    kv.put("a", b"1", None, T0).unwrap();
    kv.sync().unwrap();
    kv.put("a", b"2", None, T0).unwrap();
    kv.delete("a", T0).unwrap();
    faults::fail_syncs(1);
    not_stored(kv.sync());
    assert_eq!(kv.get("a", T0).unwrap().value, b"1");
    assert_eq!(kv.put("a", b"3", None, T0).unwrap().revision, 1);
    kv.sync().unwrap();
    let history = kv.history("a", 10).unwrap();
    assert_eq!(
        history.iter().map(|h| h.revision).collect::<Vec<_>>(),
        [1, 0]
    );
    drop(kv);
    let kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    assert_eq!(kv.get("a", T0).unwrap().value, b"3");
}
