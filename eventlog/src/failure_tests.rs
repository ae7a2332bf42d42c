//! Tests of failed writes and syncs (a full disk, a failing fsync), made with
//! [`crate::faults`], and of the descriptors streams hold.

use std::io::ErrorKind;
use std::time::Duration;

use crate::{faults, EventLog, EventLogError, Fsync, Record, Stream, StreamConfig};

fn small(segment_bytes: u64, fsync: Fsync) -> StreamConfig {
    StreamConfig {
        segment_bytes,
        index_interval_bytes: 256,
        fsync,
        ..StreamConfig::default()
    }
}

fn value(i: u64, len: usize) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(len, b'a' + (i % 26) as u8);
    v
}

fn read_all(s: &mut Stream) -> Vec<Record> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let batch = s
            .read(from, 1 << 20, 1000)
            .expect("every record reads back");
        let Some(last) = batch.last() else {
            return out;
        };
        from = last.offset + 1;
        out.extend(batch);
    }
}

/// Every record of the stream is the one appended at its offset: `expected[offset]`.
fn check(s: &mut Stream, expected: &[Vec<u8>]) {
    let records = read_all(s);
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..expected.len() as u64).collect::<Vec<_>>());
    for r in &records {
        assert_eq!(r.value, expected[r.offset as usize], "offset {}", r.offset);
    }
    assert_eq!(s.next_offset(), expected.len() as u64);
}

fn not_stored(result: crate::Result<impl std::fmt::Debug>, from: u64) {
    match result {
        Err(EventLogError::NotStored { from: f, kind, .. }) => {
            assert_eq!(f, from);
            assert_eq!(kind, ErrorKind::StorageFull);
        }
        other => panic!("expected NotStored from {from}, got {other:?}"),
    }
}

#[test]
fn a_write_failing_part_way_leaves_the_stream_at_its_last_confirmed_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let s = log
        .create_stream("s", small(1 << 20, Fsync::Always))
        .unwrap();
    let mut kept: Vec<Vec<u8>> = (0..10).map(|i| value(i, 300)).collect();
    for v in &kept {
        s.append(None, None, v).unwrap();
    }
    s.sync().unwrap();

    // Room for part of the next batch only: the sync writes some of it, then fails.
    faults::fail_writes_after(500);
    for i in 10..13 {
        assert_eq!(s.append(None, None, &value(i, 300)).unwrap(), i);
    }
    not_stored(s.sync(), 10);
    assert_eq!(s.next_offset(), 10, "the batch is gone, in memory too");
    // Synced records read back while the disk is full.
    check(s, &kept);
    // The failure was reported by the sync that met it: appends are buffered again, and
    // fail with the next sync while the disk is full.
    assert_eq!(s.append(None, None, &value(10, 300)).unwrap(), 10);
    not_stored(s.sync(), 10);
    assert_eq!(s.next_offset(), 10);

    faults::clear();
    for i in 10..15 {
        assert_eq!(s.append(None, None, &value(i, 300)).unwrap(), i);
        kept.push(value(i, 300));
    }
    s.sync().unwrap();
    check(s, &kept);
    drop(log);

    let mut log = EventLog::open(dir.path()).unwrap();
    check(log.get("s").unwrap(), &kept);
}

#[test]
fn a_failed_buffer_flush_inside_an_append_refuses_appends_until_the_owner_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let s = log
        .create_stream("s", small(64 << 20, Fsync::Always))
        .unwrap();
    let mut kept = vec![value(0, 1000)];
    s.append(None, None, &kept[0]).unwrap();
    s.sync().unwrap();

    // 100 KiB values: the third fills the 256 KiB buffer, whose write fails.
    faults::fail_writes_after(150 << 10);
    assert_eq!(s.append(None, None, &value(1, 100 << 10)).unwrap(), 1);
    assert_eq!(s.append(None, None, &value(2, 100 << 10)).unwrap(), 2);
    not_stored(s.append(None, None, &value(3, 100 << 10)), 1);
    assert_eq!(
        s.next_offset(),
        1,
        "offsets 1 and 2 were handed out and are gone"
    );
    faults::clear();
    // Until the owner has seen the failure through its sync, nothing more is taken: it
    // still holds offsets 1 and 2 as if they were coming.
    not_stored(s.append(None, None, b"refused"), 1);
    check(s, &kept);
    not_stored(s.sync(), 1);

    assert_eq!(s.append(None, None, b"after").unwrap(), 1);
    kept.push(b"after".to_vec());
    s.sync().unwrap();
    check(s, &kept);
    drop(log);
    let mut log = EventLog::open(dir.path()).unwrap();
    check(log.get("s").unwrap(), &kept);
}

#[test]
fn segments_rolled_since_the_last_confirmation_are_removed_by_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let s = log.create_stream("s", small(4096, Fsync::Always)).unwrap();
    let mut kept: Vec<Vec<u8>> = (0..5).map(|i| value(i, 1000)).collect();
    for v in &kept {
        s.append(None, None, v).unwrap();
    }
    s.sync().unwrap();
    let segments = s.info().segments;

    // Each roll writes and syncs; the writes fail once 6000 more bytes are written, after
    // a roll or two.
    faults::fail_writes_after(6000);
    let mut failed = None;
    for i in 5..40 {
        if let Err(e) = s.append(None, None, &value(i, 1000)) {
            failed = Some(e);
            break;
        }
    }
    if failed.is_none() {
        failed = s.sync().err();
    }
    assert!(
        matches!(failed, Some(EventLogError::NotStored { from: 5, .. })),
        "{failed:?}"
    );
    assert_eq!(
        s.info().segments,
        segments,
        "segments rolled since are gone"
    );
    faults::clear();
    let _ = s.sync();
    for i in 5..20 {
        assert_eq!(s.append(None, None, &value(i, 1000)).unwrap(), i);
        kept.push(value(i, 1000));
    }
    s.sync().unwrap();
    check(s, &kept);
    drop(log);
    let mut log = EventLog::open(dir.path()).unwrap();
    check(log.get("s").unwrap(), &kept);
}

#[test]
fn a_failed_fsync_cuts_back_to_the_last_sync_and_never_reuses_a_synced_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let s = log
        .create_stream("s", small(1 << 20, Fsync::Always))
        .unwrap();
    let mut kept: Vec<Vec<u8>> = (0..4).map(|i| value(i, 200)).collect();
    for v in &kept {
        s.append(None, None, v).unwrap();
    }
    s.sync().unwrap();
    for i in 4..8 {
        s.append(None, None, &value(i, 200)).unwrap();
    }
    faults::fail_syncs(1);
    match s.sync() {
        Err(EventLogError::NotStored { from: 4, .. }) => {}
        other => panic!("{other:?}"),
    }
    // What the failed fsync covered is not trusted, whatever the page cache says.
    check(s, &kept);
    for i in 4..6 {
        assert_eq!(s.append(None, None, &value(i + 100, 200)).unwrap(), i);
        kept.push(value(i + 100, 200));
    }
    s.sync().unwrap();
    check(s, &kept);
    drop(log);
    let mut log = EventLog::open(dir.path()).unwrap();
    check(log.get("s").unwrap(), &kept);
}

#[test]
fn under_interval_a_failed_fsync_gives_up_what_was_flushed_since_the_last_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    let s = log
        .create_stream(
            "s",
            small(1 << 20, Fsync::Interval(Duration::from_secs(3600))),
        )
        .unwrap();
    let mut kept = vec![value(0, 100)];
    s.append(None, None, &kept[0]).unwrap();
    s.sync().unwrap();
    s.append(None, None, &value(1, 100)).unwrap();
    s.flush().unwrap();
    faults::fail_syncs(1);
    assert!(matches!(
        s.sync(),
        Err(EventLogError::NotStored { from: 1, .. })
    ));
    check(s, &kept);
    assert_eq!(s.append(None, None, &value(7, 100)).unwrap(), 1);
    kept.push(value(7, 100));
    s.sync().unwrap();
    check(s, &kept);
}

#[test]
fn streams_at_rest_hold_no_file_and_the_log_bounds_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(dir.path()).unwrap();
    log.set_max_open_streams(4);
    let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
    for name in &names {
        let s = log.create_stream(name, small(4096, Fsync::Always)).unwrap();
        for i in 0..20 {
            s.append(None, None, &value(i, 500)).unwrap();
        }
        s.sync().unwrap();
    }
    let open = |log: &mut EventLog| log.streams_mut().map(|s| s.open_files()).sum::<usize>();
    assert!(open(&mut log) <= 4, "{} files open", open(&mut log));
    // A read of sealed segments leaves only the active one open.
    let s = log.get("s0").unwrap();
    assert!(s.info().segments > 2);
    assert_eq!(read_all(s).len(), 20);
    assert!(s.open_files() <= 1);
    drop(log);

    // Reopened, nothing is open until used.
    let mut log = EventLog::open(dir.path()).unwrap();
    assert_eq!(open(&mut log), 0);
    log.set_max_open_streams(4);
    for name in &names {
        let s = log.get(name).unwrap();
        assert_eq!(s.append(None, None, b"more").unwrap(), 20);
    }
    assert!(open(&mut log) <= 5);
    for s in log.streams_mut() {
        s.sync().unwrap();
    }
    drop(log);
    let mut log = EventLog::open(dir.path()).unwrap();
    for name in &names {
        let s = log.get(name).unwrap();
        assert_eq!(s.next_offset(), 21);
        assert_eq!(read_all(s)[20].value, b"more");
    }
}
