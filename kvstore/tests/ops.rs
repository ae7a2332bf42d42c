//! The operations' semantics: put, get, delete, compare-and-set (with a race of many
//! clients), counters, TTLs on an injected clock, listing, history, replica snapshots, and
//! the distinct errors for bad input.

mod common;

use std::time::{Duration, Instant};

use common::{dump, open, small, Rng, SEC, T0};
use zhub_eventlog::Fsync;
use zhub_kvstore::{ChangeKind, Entry, KvConfig, KvError, KvStore};

#[test]
fn put_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    assert!(kv.is_empty());
    assert_eq!(kv.revision(), 0);
    let c = kv.put("a", b"1", None, T0).unwrap();
    assert_eq!(
        (c.revision, c.key.as_str(), c.kind, &c.value[..]),
        (0, "a", ChangeKind::Put, &b"1"[..])
    );
    assert_eq!(
        (c.prev_revision, c.expires_at_us, c.timestamp_us),
        (None, None, T0)
    );
    assert_eq!(
        kv.get("a", T0),
        Some(Entry {
            value: b"1".to_vec(),
            revision: 0,
            expires_at_us: None
        })
    );
    let c = kv.put("a", b"", None, T0 + 1).unwrap();
    assert_eq!((c.revision, c.prev_revision), (1, Some(0)));
    assert_eq!(kv.get("a", T0).unwrap().value, b"");
    kv.put("b", b"2", None, T0).unwrap();
    assert_eq!(kv.len(), 2);
    assert_eq!(kv.revision(), 3);

    let d = kv.delete("a", T0).unwrap().unwrap();
    assert_eq!(
        (d.revision, d.kind, d.prev_revision),
        (3, ChangeKind::Delete, Some(1))
    );
    assert!(d.value.is_empty());
    assert_eq!(kv.get("a", T0), None);
    // Deleting an absent key writes nothing.
    assert_eq!(kv.delete("a", T0).unwrap(), None);
    assert_eq!(kv.delete("never", T0).unwrap(), None);
    assert_eq!(kv.revision(), 4);
    // A put after a delete links to the delete.
    let c = kv.put("a", b"again", None, T0).unwrap();
    assert_eq!(c.prev_revision, Some(3));
    assert_eq!(kv.len(), 2);
    kv.sync().unwrap();
}

#[test]
fn group_commit_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    assert!(!kv.needs_sync());
    kv.put("a", b"1", None, T0).unwrap();
    kv.put("b", b"1", None, T0).unwrap();
    assert!(kv.needs_sync());
    assert!(!kv.sync_due(Instant::now()), "not an interval policy");
    kv.sync().unwrap();
    assert!(!kv.needs_sync());
    // A no-op write leaves nothing to sync.
    kv.delete("zz", T0).unwrap();
    assert!(!kv.needs_sync());

    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_millis(50);
    let mut kv = KvStore::open(dir.path(), small().fsync(Fsync::Interval(every))).unwrap();
    assert!(!kv.sync_due(Instant::now() + every));
    assert_eq!(kv.sync_deadline(), None);
    kv.put("a", b"1", None, T0).unwrap();
    assert!(!kv.needs_sync());
    assert!(kv.sync_due(Instant::now() + every));
    let deadline = kv.sync_deadline().expect("a sync is wanted");
    assert!(deadline <= Instant::now() + every);
    assert!(kv.sync_due(deadline));
    kv.sync().unwrap();
    assert!(!kv.sync_due(Instant::now() + every));
    assert_eq!(kv.sync_deadline(), None);
}

#[test]
fn cas_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    // Create only.
    let c = kv.cas("k", None, b"v1", None, T0).unwrap();
    match kv.cas("k", None, b"v2", None, T0) {
        Err(KvError::RevisionMismatch {
            key,
            expected: None,
            current: Some(r),
        }) => assert_eq!((key.as_str(), r), ("k", c.revision)),
        other => panic!("{other:?}"),
    }
    // Against the current revision.
    let c2 = kv.cas("k", Some(c.revision), b"v2", None, T0).unwrap();
    let err = kv.cas("k", Some(c.revision), b"v3", None, T0).unwrap_err();
    assert!(matches!(
        err,
        KvError::RevisionMismatch { expected: Some(e), current: Some(cur), .. }
            if e == c.revision && cur == c2.revision
    ));
    assert!(
        err.to_string()
            .contains("expected revision 0, found revision 1"),
        "{err}"
    );
    assert_eq!(kv.get("k", T0).unwrap().value, b"v2");
    // Against an absent key.
    kv.delete("k", T0).unwrap();
    assert!(matches!(
        kv.cas("k", Some(c2.revision), b"x", None, T0),
        Err(KvError::RevisionMismatch { current: None, .. })
    ));
    kv.cas("k", None, b"v4", None, T0).unwrap();
    // A mismatch writes nothing.
    let before = kv.revision();
    let _ = kv.cas("k", Some(999), b"x", None, T0);
    assert_eq!(kv.revision(), before);
}

/// Many clients each read a counter and try to compare-and-set it one higher, in a shuffled
/// interleaving: in every round exactly one of those who read the same revision wins, and no
/// increment is lost.
#[test]
fn cas_race_has_one_winner_per_revision() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("counter", b"0", None, T0).unwrap();
    let mut rng = Rng(7);
    let clients = 16;
    let mut done = vec![0u32; clients];
    let wanted = 20;
    let mut winners_by_revision = std::collections::BTreeMap::new();
    while done.iter().any(|&d| d < wanted) {
        // Every client still working reads...
        let reads: Vec<(usize, u64, u64)> = (0..clients)
            .filter(|&c| done[c] < wanted)
            .map(|c| {
                let e = kv.get("counter", T0).unwrap();
                let n: u64 = std::str::from_utf8(&e.value).unwrap().parse().unwrap();
                (c, e.revision, n)
            })
            .collect();
        // ...then they all try, in a random order.
        let mut order = reads.clone();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (client, revision, n) in order {
            let next = (n + 1).to_string();
            match kv.cas("counter", Some(revision), next.as_bytes(), None, T0) {
                Ok(_) => {
                    done[client] += 1;
                    let prev = winners_by_revision.insert(revision, client);
                    assert!(prev.is_none(), "two winners on revision {revision}");
                }
                Err(KvError::RevisionMismatch { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    let total = (clients as u32 * wanted) as usize;
    assert_eq!(winners_by_revision.len(), total);
    assert_eq!(
        kv.get("counter", T0).unwrap().value,
        total.to_string().as_bytes()
    );
}

#[test]
fn counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    let (n, c) = kv.incr("hits", 5, T0).unwrap();
    assert_eq!(n, 5);
    assert_eq!(c.kind, ChangeKind::Put);
    assert_eq!(rmp_serde::from_slice::<i64>(&c.value).unwrap(), 5);
    assert_eq!(kv.incr("hits", -7, T0).unwrap().0, -2);
    assert_eq!(
        rmp_serde::from_slice::<i64>(&kv.get("hits", T0).unwrap().value).unwrap(),
        -2
    );
    // A value written by a client as a MessagePack integer counts too.
    kv.put(
        "big",
        &rmp_serde::to_vec(&(i64::MAX - 1)).unwrap(),
        None,
        T0,
    )
    .unwrap();
    assert_eq!(kv.incr("big", 1, T0).unwrap().0, i64::MAX);
    let before = kv.revision();
    match kv.incr("big", 1, T0) {
        Err(KvError::Overflow { key, value, delta }) => {
            assert_eq!((key.as_str(), value, delta), ("big", i64::MAX, 1))
        }
        other => panic!("{other:?}"),
    }
    kv.put("neg", &rmp_serde::to_vec(&i64::MIN).unwrap(), None, T0)
        .unwrap();
    assert!(matches!(
        kv.incr("neg", -1, T0),
        Err(KvError::Overflow { .. })
    ));
    kv.put("text", b"12", None, T0).unwrap();
    assert!(matches!(
        kv.incr("text", 1, T0),
        Err(KvError::NotACounter { key }) if key == "text"
    ));
    assert_eq!(kv.revision(), before + 2, "failed increments write nothing");
    // Increment keeps the TTL.
    kv.put(
        "ttl",
        &rmp_serde::to_vec(&1i64).unwrap(),
        Some(Duration::from_secs(10)),
        T0,
    )
    .unwrap();
    let (n, c) = kv.incr("ttl", 1, T0 + SEC).unwrap();
    assert_eq!(n, 2);
    assert_eq!(c.expires_at_us, Some(T0 + 10 * SEC));
    assert_eq!(
        kv.get("ttl", T0 + SEC).unwrap().expires_at_us,
        Some(T0 + 10 * SEC)
    );
    // An expired counter starts again from zero, without a TTL.
    let (n, c) = kv.incr("ttl", 1, T0 + 10 * SEC).unwrap();
    assert_eq!((n, c.expires_at_us), (1, None));
}

#[test]
fn ttl_expires_on_the_injected_clock_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    let ttl = Some(Duration::from_secs(10));
    let c = kv.put("s", b"x", ttl, T0).unwrap();
    assert_eq!(c.expires_at_us, Some(T0 + 10 * SEC));
    kv.put("long", b"y", Some(Duration::from_secs(60)), T0)
        .unwrap();
    kv.put("forever", b"z", None, T0).unwrap();
    assert_eq!(kv.next_expiry(), Some(T0 + 10 * SEC));
    assert_eq!(kv.get("s", T0 + 10 * SEC - 1).unwrap().value, b"x");
    assert_eq!(
        kv.get("s", T0 + 10 * SEC),
        None,
        "absent from its expiry on"
    );
    assert_eq!(kv.list("", None, 10, T0 + 10 * SEC).0.len(), 2);
    assert!(kv.expire_due(T0 + 10 * SEC - 1).unwrap().is_empty());
    let before = kv.revision();
    let expired = kv.expire_due(T0 + 10 * SEC).unwrap();
    assert_eq!(expired.len(), 1);
    let e = &expired[0];
    assert_eq!(
        (
            e.key.as_str(),
            e.kind,
            e.revision,
            e.prev_revision,
            e.timestamp_us
        ),
        (
            "s",
            ChangeKind::Expire,
            before,
            Some(c.revision),
            T0 + 10 * SEC
        )
    );
    assert!(
        kv.expire_due(T0 + 10 * SEC).unwrap().is_empty(),
        "only once"
    );
    assert!(kv.expire_due(T0 + 20 * SEC).unwrap().is_empty());
    assert_eq!(kv.next_expiry(), Some(T0 + 60 * SEC));
    assert_eq!(kv.len(), 2);
    // Deleting an expired key does nothing; the sweep records it as expired.
    assert_eq!(kv.delete("long", T0 + 61 * SEC).unwrap(), None);
    let expired = kv.expire_due(T0 + 61 * SEC).unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(kv.next_expiry(), None);
    // A put without a TTL clears one.
    kv.put("k", b"1", ttl, T0).unwrap();
    kv.put("k", b"2", None, T0).unwrap();
    assert_eq!(kv.next_expiry(), None);
    assert_eq!(kv.get("k", i64::MAX - 1).unwrap().expires_at_us, None);
    // Create-only succeeds on an expired key.
    kv.put("old", b"1", Some(Duration::from_secs(1)), T0)
        .unwrap();
    kv.cas("old", None, b"new", None, T0 + SEC).unwrap();
    assert!(kv.expire_due(T0 + 100 * SEC).unwrap().is_empty());
    // A zero TTL stores a key already expired.
    kv.put("zero", b"1", Some(Duration::ZERO), T0).unwrap();
    assert_eq!(kv.get("zero", T0), None);
    assert_eq!(kv.expire_due(T0).unwrap().len(), 1);
    // An absurd TTL saturates instead of wrapping.
    kv.put("far", b"1", Some(Duration::MAX), T0).unwrap();
    assert!(kv.get("far", i64::MAX - 1).is_some());
}

#[test]
fn ttl_survives_reopen_and_expires_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("a", b"1", Some(Duration::from_secs(5)), T0).unwrap();
    kv.put("b", b"2", Some(Duration::from_secs(50)), T0)
        .unwrap();
    kv.close().unwrap();

    let mut kv = open(dir.path());
    assert_eq!(kv.next_expiry(), Some(T0 + 5 * SEC));
    assert_eq!(kv.get("a", T0 + 5 * SEC), None);
    assert_eq!(kv.expire_due(T0 + 5 * SEC).unwrap().len(), 1);
    kv.snapshot().unwrap();
    kv.close().unwrap();

    // From the snapshot this time: "b" keeps its expiry, "a" stays expired.
    let mut kv = open(dir.path());
    assert_eq!(kv.get("b", T0).unwrap().expires_at_us, Some(T0 + 50 * SEC));
    assert_eq!(kv.next_expiry(), Some(T0 + 50 * SEC));
    let expired = kv.expire_due(T0 + 100 * SEC).unwrap();
    assert_eq!(
        expired.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    kv.close().unwrap();
    let mut kv = open(dir.path());
    assert!(kv.is_empty());
    assert!(kv.expire_due(T0 + 100 * SEC).unwrap().is_empty());
    let h = kv.history("a", 10).unwrap();
    assert_eq!(
        h.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![ChangeKind::Expire, ChangeKind::Put]
    );
}

#[test]
fn list_pages_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    for i in 0..25 {
        kv.put(&format!("user/{i:02}"), b"u", None, T0).unwrap();
    }
    kv.put("user", b"not under user/", None, T0).unwrap();
    kv.put("user0", b"outside", None, T0).unwrap();
    kv.put("users/x", b"outside", None, T0).unwrap();
    kv.put("aaa", b"before", None, T0).unwrap();
    kv.put("user/07", b"short-lived", Some(Duration::from_secs(1)), T0)
        .unwrap();
    let now = T0 + SEC; // user/07 has expired
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, more) = kv.list("user/", after.as_deref(), 10, now);
        pages += 1;
        assert!(page.len() <= 10);
        seen.extend(page.iter().map(|(k, _)| k.clone()));
        after = page.last().map(|(k, _)| k.clone());
        if !more {
            break;
        }
    }
    let expected: Vec<String> = (0..25)
        .filter(|&i| i != 7)
        .map(|i| format!("user/{i:02}"))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // Exactly full last page: `more` is false.
    let (page, more) = kv.list("user/", Some("user/14"), 10, now);
    assert_eq!((page.len(), more), (10, false));
    // A limit of 0 still says whether anything is there.
    assert_eq!(kv.list("user/", None, 0, now), (vec![], true));
    assert_eq!(kv.list("nothing/", None, 0, now), (vec![], false));
    // `after` before the prefix starts at the prefix; an empty prefix lists everything.
    assert_eq!(kv.list("user/", Some("a"), 1, now).0[0].0, "user/00");
    assert_eq!(dump(&kv, now).len(), 28);
    assert_eq!(kv.list("", Some("users/x"), 10, now), (vec![], false));
}

#[test]
fn history_newest_first_bounded_and_across_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), small().max_history(4)).unwrap();
    for i in 0..3 {
        kv.put("k", format!("v{i}").as_bytes(), None, T0 + i)
            .unwrap();
        kv.put("other", b"noise", None, T0).unwrap();
    }
    kv.delete("k", T0 + 10).unwrap();
    kv.put("k", b"v3", Some(Duration::from_secs(1)), T0 + 20)
        .unwrap();
    let h = kv.history("k", 100).unwrap();
    assert_eq!(h.len(), 4, "capped by max_history");
    let shape: Vec<(ChangeKind, &[u8], i64)> = h
        .iter()
        .map(|e| (e.kind, &e.value[..], e.timestamp_us))
        .collect();
    assert_eq!(
        shape,
        vec![
            (ChangeKind::Put, &b"v3"[..], T0 + 20),
            (ChangeKind::Delete, &b""[..], T0 + 10),
            (ChangeKind::Put, &b"v2"[..], T0 + 2),
            (ChangeKind::Put, &b"v1"[..], T0 + 1),
        ]
    );
    assert_eq!(h[0].expires_at_us, Some(T0 + 20 + SEC));
    assert!(h.windows(2).all(|w| w[0].revision > w[1].revision));
    assert_eq!(kv.history("k", 2).unwrap(), h[..2].to_vec());
    assert!(kv.history("k", 0).unwrap().is_empty());
    assert!(kv.history("never", 5).unwrap().is_empty());
    // A deleted key's history starts at its delete, also after a reopen.
    kv.delete("k", T0 + 30).unwrap();
    kv.close().unwrap();
    let mut kv = KvStore::open(dir.path(), small().max_history(10)).unwrap();
    let h = kv.history("k", 10).unwrap();
    assert_eq!(h.len(), 6);
    assert_eq!(h[0].kind, ChangeKind::Delete);
    assert_eq!(h[5].value, b"v0");
}

#[test]
fn a_replica_loads_a_prefix_snapshot_then_follows_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = open(dir.path());
    kv.put("cfg/a", b"1", None, T0).unwrap();
    kv.put("cfg/b", b"2", None, T0).unwrap();
    kv.put("other", b"x", None, T0).unwrap();
    let (entries, at) = kv.snapshot_prefix("cfg/", T0);
    assert_eq!(at, kv.revision());
    let mut replica: std::collections::BTreeMap<String, Vec<u8>> =
        entries.into_iter().map(|(k, e)| (k, e.value)).collect();
    assert_eq!(replica.len(), 2);
    assert_eq!(
        kv.changes_since("cfg/", at, u64::MAX, 10).unwrap(),
        (vec![], at)
    );

    let made = vec![
        kv.put("cfg/a", b"10", Some(Duration::from_secs(5)), T0)
            .unwrap(),
        kv.delete("cfg/b", T0).unwrap().unwrap(),
        kv.put("other", b"y", None, T0).unwrap(),
        kv.put("cfg/c", b"3", None, T0 + 1).unwrap(),
        kv.put("cfg/d", b"4", None, T0 + 2).unwrap(),
    ];
    let mut expire = kv.expire_due(T0 + 5 * SEC).unwrap();
    let synced_end = kv.revision();
    kv.put("cfg/unsynced", b"5", None, T0).unwrap();
    let mut wanted: Vec<_> = made
        .into_iter()
        .filter(|c| c.key.starts_with("cfg/"))
        .collect();
    wanted.append(&mut expire);

    // Pages of two, up to the end the owner says is synced.
    let mut got = Vec::new();
    let mut from = at;
    loop {
        let (page, next) = kv.changes_since("cfg/", from, synced_end, 2).unwrap();
        assert!(page.len() <= 2 && next > from || page.is_empty());
        if page.is_empty() {
            assert_eq!(next, synced_end);
            break;
        }
        assert!(page.iter().all(|c| c.revision >= from && c.revision < next));
        got.extend(page);
        from = next;
    }
    assert_eq!(got, wanted, "the same changes the writes returned");
    for c in got {
        match c.kind {
            ChangeKind::Put => {
                replica.insert(c.key, c.value);
            }
            ChangeKind::Delete | ChangeKind::Expire => {
                replica.remove(&c.key);
            }
        }
    }
    let (now, _) = kv.snapshot_prefix("cfg/", T0 + 5 * SEC);
    let mut now: std::collections::BTreeMap<String, Vec<u8>> =
        now.into_iter().map(|(k, e)| (k, e.value)).collect();
    now.remove("cfg/unsynced");
    assert_eq!(replica, now);
    // Asking beyond the end returns nothing and stays put.
    assert_eq!(
        kv.changes_since("", 1000, u64::MAX, 10).unwrap(),
        (vec![], 1000)
    );
}

#[test]
fn bad_keys_and_large_values_are_distinct_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = KvConfig::default().max_key_bytes(32).max_value_bytes(100);
    let mut kv = KvStore::open(dir.path(), config).unwrap();
    let long = "k".repeat(33);
    for key in [
        "",
        &long,
        "a\0b",
        "line\nbreak",
        "tab\t",
        "del\u{7f}",
        "c1\u{85}",
    ] {
        match kv.put(key, b"v", None, T0) {
            Err(KvError::BadKey { reason }) => assert!(!reason.is_empty()),
            other => panic!("{key:?}: {other:?}"),
        }
        assert!(matches!(kv.delete(key, T0), Err(KvError::BadKey { .. })));
        assert!(matches!(kv.incr(key, 1, T0), Err(KvError::BadKey { .. })));
        assert!(matches!(
            kv.cas(key, None, b"v", None, T0),
            Err(KvError::BadKey { .. })
        ));
        assert_eq!(kv.get(key, T0), None);
    }
    // The limit counts bytes of UTF-8, and anything printable goes.
    kv.put(&"k".repeat(32), b"v", None, T0).unwrap();
    kv.put("é/ü/日本/🙂 sp", b"v", None, T0).unwrap();
    kv.put("v", &[0u8; 100], None, T0).unwrap();
    match kv.put("v", &[0u8; 101], None, T0) {
        Err(KvError::ValueTooLarge { size, limit }) => assert_eq!((size, limit), (101, 100)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        kv.cas("v", None, &[0u8; 101], None, T0),
        Err(KvError::ValueTooLarge { .. })
    ));
    assert_eq!(kv.revision(), 3, "rejected writes append nothing");
    assert_eq!(kv.value_limit(), 100);
}

#[test]
fn the_default_limits_hold_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    let key = "k".repeat(1024);
    let value = vec![0xAB; 1 << 20];
    kv.put(&key, &value, None, T0).unwrap();
    assert!(matches!(
        kv.put(&"k".repeat(1025), b"", None, T0),
        Err(KvError::BadKey { .. })
    ));
    assert!(matches!(
        kv.put("k", &vec![0; (1 << 20) + 1], None, T0),
        Err(KvError::ValueTooLarge { limit, .. }) if limit == 1 << 20
    ));
    kv.snapshot().unwrap();
    kv.close().unwrap();
    let kv = KvStore::open(dir.path(), KvConfig::default()).unwrap();
    assert_eq!(kv.get(&key, T0).unwrap().value, value);
}
