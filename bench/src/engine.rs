//! The event log engine's benchmark, in-process, beside the disk's own rates measured in the
//! same directory: the first part of `zhub bench log`.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use zhub_eventlog::{EventLog, EventLogError, Fsync, Result, StreamConfig};

/// Sizes of a benchmark run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BenchOptions {
    /// Bytes of each record's value.
    pub value_bytes: usize,
    /// Records appended buffered (policy never), then replayed.
    pub buffered_records: u64,
    /// Records appended with one sync each.
    pub synced_records: u64,
    /// Records per group commit in the group-commit run.
    pub group: u64,
    /// Group commits in the group-commit run.
    pub groups: u64,
}

impl Default for BenchOptions {
    /// 100-byte values; 2 million buffered records; 2000 synced ones; 500 groups of 256.
    fn default() -> Self {
        BenchOptions {
            value_bytes: 100,
            buffered_records: 2_000_000,
            synced_records: 2_000,
            group: 256,
            groups: 500,
        }
    }
}

/// What a run measured. Rates are per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BenchReport {
    /// Appends with policy never.
    pub buffered_records_per_sec: f64,
    /// Same, in MB of values.
    pub buffered_mb_per_sec: f64,
    /// Appends each followed by a sync (one writer, policy always, no batching).
    pub synced_records_per_sec: f64,
    /// Records acknowledged after a sync when syncing once per group.
    pub group_commit_records_per_sec: f64,
    /// Reading everything back as owned records ([`zhub_eventlog::Stream::read`]), MB of values per
    /// second.
    pub replay_mb_per_sec: f64,
    /// Reading everything back in place ([`zhub_eventlog::Stream::read_with`]), MB of values per
    /// second.
    pub replay_in_place_mb_per_sec: f64,
    /// The disk's buffered sequential write rate, MB per second (a plain file).
    pub disk_write_mb_per_sec: f64,
    /// The disk's `fdatasync` rate: 100-byte write then sync, per second.
    pub disk_fdatasync_per_sec: f64,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "append, policy never     {:>12.0} records/s  {:>8.1} MB/s",
            self.buffered_records_per_sec, self.buffered_mb_per_sec
        )?;
        writeln!(
            f,
            "append + sync each       {:>12.0} records/s  ({:.2}x the disk's fdatasync rate)",
            self.synced_records_per_sec,
            self.synced_records_per_sec / self.disk_fdatasync_per_sec
        )?;
        writeln!(
            f,
            "group commit             {:>12.0} records/s  ({:.1}x the disk's fdatasync rate)",
            self.group_commit_records_per_sec,
            self.group_commit_records_per_sec / self.disk_fdatasync_per_sec
        )?;
        writeln!(
            f,
            "replay, records copied   {:>12.1} MB/s      ({:.2}x the disk's buffered write rate)",
            self.replay_mb_per_sec,
            self.replay_mb_per_sec / self.disk_write_mb_per_sec
        )?;
        writeln!(
            f,
            "replay, in place         {:>12.1} MB/s      ({:.2}x the disk's buffered write rate)",
            self.replay_in_place_mb_per_sec,
            self.replay_in_place_mb_per_sec / self.disk_write_mb_per_sec
        )?;
        writeln!(
            f,
            "disk: buffered write     {:>12.1} MB/s",
            self.disk_write_mb_per_sec
        )?;
        write!(
            f,
            "disk: fdatasync          {:>12.0} /s",
            self.disk_fdatasync_per_sec
        )
    }
}

fn rate(count: f64, since: Instant) -> f64 {
    count / since.elapsed().as_secs_f64().max(1e-9)
}

/// Runs the benchmark in `dir` (a scratch directory it fills and leaves).
///
/// # Errors
/// An I/O error.
pub(crate) fn run(dir: &Path, options: &BenchOptions) -> Result<BenchReport> {
    let value = vec![0x5au8; options.value_bytes];
    let mb = |records: f64| records * options.value_bytes as f64 / 1e6;

    // The disk's own rates, same directory.
    let raw_path = dir.join("raw.dat");
    // The file's errors read as the engine's own do: the path, then what the OS said.
    let io = |cause| EventLogError::Io {
        path: raw_path.clone(),
        cause,
    };
    let mut raw = std::fs::File::create(&raw_path).map_err(io)?;
    let chunk = vec![0u8; 1 << 20];
    let total = (options.buffered_records as usize * (options.value_bytes + 28)).max(64 << 20);
    let start = Instant::now();
    let mut written = 0;
    while written < total {
        raw.write_all(&chunk).map_err(io)?;
        written += chunk.len();
    }
    let disk_write_mb_per_sec = rate(written as f64 / 1e6, start);
    let start = Instant::now();
    for _ in 0..options.synced_records {
        raw.write_all(&value).map_err(io)?;
        raw.sync_data().map_err(io)?;
    }
    let disk_fdatasync_per_sec = rate(options.synced_records as f64, start);
    drop(raw);
    let _ = std::fs::remove_file(&raw_path);

    let mut log = EventLog::open(dir.join("log"))?;
    let never = StreamConfig {
        fsync: Fsync::Never,
        ..StreamConfig::default()
    };
    let stream = log.create_stream("bench-buffered", never)?;
    let start = Instant::now();
    for _ in 0..options.buffered_records {
        stream.append(None, None, &value)?;
    }
    stream.flush()?;
    let buffered_records_per_sec = rate(options.buffered_records as f64, start);

    let start = Instant::now();
    let mut reader = stream.reader(0, 1 << 20);
    let mut replayed = 0u64;
    loop {
        let batch = reader.next_batch(stream)?;
        if batch.is_empty() {
            break;
        }
        replayed += batch.len() as u64;
    }
    let replay_mb_per_sec = rate(mb(replayed as f64), start);

    let start = Instant::now();
    let (mut next, mut bytes) = (0, 0u64);
    loop {
        let mut last = None;
        let n = stream.read_with(next, 1 << 20, usize::MAX, |r| {
            bytes += r.value.len() as u64;
            last = Some(r.offset);
        })?;
        match last {
            Some(last) if n > 0 => next = last + 1,
            _ => break,
        }
    }
    let replay_in_place_mb_per_sec = rate(bytes as f64 / 1e6, start);
    debug_assert_eq!(bytes, replayed * options.value_bytes as u64);

    let stream = log.create_stream("bench-synced", StreamConfig::default())?;
    let start = Instant::now();
    for _ in 0..options.synced_records {
        stream.append(None, None, &value)?;
        stream.sync()?;
    }
    let synced_records_per_sec = rate(options.synced_records as f64, start);

    let stream = log.create_stream("bench-group", StreamConfig::default())?;
    let start = Instant::now();
    for _ in 0..options.groups {
        for _ in 0..options.group {
            stream.append(None, None, &value)?;
        }
        stream.sync()?;
    }
    let group_commit_records_per_sec = rate((options.groups * options.group) as f64, start);

    Ok(BenchReport {
        buffered_records_per_sec,
        buffered_mb_per_sec: mb(buffered_records_per_sec),
        synced_records_per_sec,
        group_commit_records_per_sec,
        replay_mb_per_sec,
        replay_in_place_mb_per_sec,
        disk_write_mb_per_sec,
        disk_fdatasync_per_sec,
    })
}
