//! `zhub bench log`: the event log in-process and through a broker, beside this disk's own
//! sequential write and `fdatasync` rates measured in the same directory in the same run.
//!
//! Through the broker (a `zhub bench-broker` child process on ipc, its data directory in
//! `--dir`), each case runs for `--seconds`: 1 or 8 appender threads, each with its own
//! client, append 100-byte records, one request at a time, `batch` records per request, and
//! count what was acknowledged. Under `always` an acknowledgement means synced to disk, so
//! the figure to compare is the disk's `fdatasync` rate: group commit lets many appenders
//! share each sync. Then one stream is replayed through the broker, and a last run appends
//! `--memory-gb` of 16 KiB records and replays them while the broker's peak RSS is watched.
//!
//! With `--peer redis`, each case of one record per request also runs as `XADD` against a
//! `redis-server` with the same persistence (none for `never`, `appendfsync always` for
//! `always`), from as many connections as appenders with the window as pipeline depth
//! ([`crate::redis`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use zhub_client::{Client, FsyncPolicy, NewRecord, StreamSettings};

use crate::redis::{Peer, Workload};
use crate::server::{Server, Transport};

/// Bytes of each record's value in the throughput cases.
const VALUE: usize = 100;
/// Bytes of each record's value in the memory run.
const BIG_VALUE: usize = 16 << 10;

/// Arguments of `zhub bench log`.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Directory to measure in (a scratch directory is made inside it and removed). Use the
    /// disk the broker's data directory is on.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Records appended buffered in-process, then replayed.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Seconds each through-the-broker case runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Records of 100 bytes appended to a stream of their own and replayed through the
    /// broker (0 replays the last append case's stream instead).
    #[arg(long, default_value_t = 2_000_000)]
    replay_records: u64,
    /// Gigabytes appended and replayed through the broker while its memory is watched
    /// (0 skips that run).
    #[arg(long, default_value_t = 1.0)]
    memory_gb: f64,
    /// Run each case of one record per request against this peer too, in the same run.
    #[arg(long, value_enum)]
    peer: Option<Peer>,
}

/// One through-the-broker append case.
#[derive(Debug, Clone, Serialize)]
struct Case {
    policy: &'static str,
    appenders: usize,
    batch: usize,
    /// Appends in flight per appender.
    window: usize,
    records_per_sec: f64,
    /// `records_per_sec` over the disk's `fdatasync` rate.
    vs_fdatasync: f64,
    /// The peer's `XADD`s per second with the same connections and pipeline depth.
    redis_records_per_sec: Option<f64>,
    /// `records_per_sec` over `redis_records_per_sec`.
    vs_redis: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct MemoryRun {
    appended_mb: f64,
    append_mb_per_sec: f64,
    replay_mb_per_sec: f64,
    broker_peak_rss_mb: f64,
}

/// When an append run ends.
#[derive(Debug, Clone, Copy)]
enum Until {
    Seconds(f64),
    Bytes(u64),
}

/// Appends `batch`-record requests of `value`-byte records from `appenders` threads, each
/// with its own client (and, with a `window` over 1, that many single-record appends in
/// flight instead), until `until`; returns what was acknowledged per second: (records, MB
/// of values).
fn append_run(
    url: &str,
    stream: &str,
    (appenders, batch, window): (usize, usize, usize),
    value: usize,
    until: Until,
) -> anyhow::Result<(f64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..appenders {
        let mut client = Client::connect(url)?;
        let stream = stream.to_owned();
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let payload = vec![0x5au8; value];
            if window > 1 {
                let mut appender = client.log().appender(&stream, window);
                while !stop.load(Ordering::Relaxed) {
                    appender.append_bytes(None, &payload)?;
                    let count = appender.take_acked().len() as u64;
                    acked.fetch_add(count, Ordering::Relaxed);
                }
                acked.fetch_add(appender.flush()?.len() as u64, Ordering::Relaxed);
                return Ok(());
            }
            while !stop.load(Ordering::Relaxed) {
                let records = (0..batch)
                    .map(|_| NewRecord {
                        key: None,
                        value: payload.clone(),
                        timestamp_us: None,
                    })
                    .collect();
                let (_, count) = client.log().append_records(&stream, records)?;
                let total = acked.fetch_add(count, Ordering::Relaxed) + count;
                if let Until::Bytes(limit) = until {
                    if total * value as u64 >= limit {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        }));
    }
    let start = Instant::now();
    if let Until::Seconds(seconds) = until {
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("appender panicked"))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let records = acked.load(Ordering::Relaxed) as f64;
    Ok((records / elapsed, records * value as f64 / 1e6 / elapsed))
}

/// Reads a whole stream through the broker; returns (records, MB of values per second).
fn replay(client: &mut Client, stream: &str) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    for record in client.log().read(stream, 0) {
        bytes += record?.value.len() as u64;
        records += 1;
    }
    Ok((records, bytes as f64 / 1e6 / start.elapsed().as_secs_f64()))
}

/// Makes `stream` (policy never) with `records` records of [`VALUE`] bytes, appended in
/// batches.
fn fill(client: &mut Client, stream: &str, records: u64) -> anyhow::Result<()> {
    const BATCH: u64 = 1000;
    create(client, stream, FsyncPolicy::Never)?;
    let batch = |n: u64| {
        (0..n)
            .map(|_| NewRecord {
                key: None,
                value: vec![0x5a; VALUE],
                timestamp_us: None,
            })
            .collect::<Vec<_>>()
    };
    let mut left = records;
    while left > 0 {
        let n = left.min(BATCH);
        client.log().append_records(stream, batch(n))?;
        left -= n;
    }
    Ok(())
}

fn create(client: &mut Client, stream: &str, fsync: FsyncPolicy) -> anyhow::Result<()> {
    let settings = StreamSettings {
        fsync: Some(fsync),
        ..StreamSettings::default()
    };
    client.log().create(stream, settings)?;
    Ok(())
}

pub(crate) fn run(args: &LogArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("zhub-bench-log")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot make a scratch directory in {}", args.dir.display()))?;
    let options = crate::engine::BenchOptions {
        buffered_records: args.records,
        ..Default::default()
    };
    let engine_dir = scratch.path().join("engine");
    std::fs::create_dir(&engine_dir)?;
    let engine = crate::engine::run(&engine_dir, &options)?;
    let fdatasync = engine.disk_fdatasync_per_sec;

    let server_dir = tempfile::Builder::new()
        .prefix("zhub-bench-broker")
        .tempdir_in(scratch.path())?;
    let (server, main) = Server::broker(Transport::Ipc, server_dir, &[])?;
    let mut client = Client::connect(&main)?;

    // The request round trip itself, to a built-in service that does no work: what one
    // appender with one request in flight can reach at most.
    let start = Instant::now();
    let mut round_trips = 0u64;
    while start.elapsed().as_secs_f64() < args.seconds.min(1.0) {
        client.request_bytes(zhub_protocol::builtin::INFO_SERVICE, b"")?;
        round_trips += 1;
    }
    let round_trips_per_sec = round_trips as f64 / start.elapsed().as_secs_f64();

    // (policy, appenders, records per request, requests in flight per appender)
    let plan: [(&'static str, FsyncPolicy, usize, usize, usize); 9] = [
        ("never", FsyncPolicy::Never, 1, 1, 1),
        ("never", FsyncPolicy::Never, 8, 1, 1),
        ("always", FsyncPolicy::Always, 1, 1, 1),
        ("always", FsyncPolicy::Always, 8, 1, 1),
        ("always", FsyncPolicy::Always, 50, 1, 1),
        ("always", FsyncPolicy::Always, 1, 1, 64),
        ("never", FsyncPolicy::Never, 1, 1, 64),
        ("never", FsyncPolicy::Never, 8, 64, 1),
        ("always", FsyncPolicy::Always, 8, 64, 1),
    ];
    let peers = match args.peer {
        Some(Peer::Redis) => crate::redis::pair(scratch.path())?,
        None => None,
    };
    let mut cases = Vec::new();
    for (i, (policy, fsync, appenders, batch, window)) in plan.into_iter().enumerate() {
        let stream = format!("bench-{i}");
        create(&mut client, &stream, fsync)?;
        let (rate, _) = append_run(
            &main,
            &stream,
            (appenders, batch, window),
            VALUE,
            Until::Seconds(args.seconds),
        )?;
        let redis_rate = match &peers {
            Some((none, always)) if batch == 1 => {
                let server = if fsync == FsyncPolicy::Always {
                    always
                } else {
                    none
                };
                let n = crate::redis::requests_for(rate, args.seconds, appenders, window);
                Some(server.bench(Workload::Xadd, appenders, window, n)?)
            }
            _ => None,
        };
        cases.push(Case {
            policy,
            appenders,
            batch,
            window,
            records_per_sec: rate,
            vs_fdatasync: rate / fdatasync,
            redis_records_per_sec: redis_rate,
            vs_redis: redis_rate.map(|r| rate / r),
        });
    }
    drop(peers);
    let replay_stream = if args.replay_records > 0 {
        fill(&mut client, "bench-replay", args.replay_records)?;
        "bench-replay".to_owned()
    } else {
        format!("bench-{}", plan.len() - 1)
    };
    let (replayed, replay_mb) = replay(&mut client, &replay_stream)?;

    let memory = if args.memory_gb > 0.0 {
        create(&mut client, "bench-memory", FsyncPolicy::Never)?;
        let target = (args.memory_gb * 1e9) as u64;
        let (_, append_mb_per_sec) = append_run(
            &main,
            "bench-memory",
            (8, 16, 1),
            BIG_VALUE,
            Until::Bytes(target),
        )?;
        let (records, replay_mb_per_sec) = replay(&mut client, "bench-memory")?;
        Some(MemoryRun {
            appended_mb: (records * BIG_VALUE as u64) as f64 / 1e6,
            append_mb_per_sec,
            replay_mb_per_sec,
            broker_peak_rss_mb: server
                .peak_rss()
                .map_or(0.0, |b| b as f64 / (1 << 20) as f64),
        })
    } else {
        None
    };
    let peak_rss_mb = server.peak_rss().map(|b| b as f64 / (1 << 20) as f64);
    drop(client);
    drop(server);

    if args.json {
        let out = serde_json::json!({
            "bench": "log",
            "engine": {
                "buffered_records_per_sec": engine.buffered_records_per_sec,
                "buffered_mb_per_sec": engine.buffered_mb_per_sec,
                "synced_each_records_per_sec": engine.synced_records_per_sec,
                "group_commit_records_per_sec": engine.group_commit_records_per_sec,
                "replay_mb_per_sec": engine.replay_mb_per_sec,
                "replay_in_place_mb_per_sec": engine.replay_in_place_mb_per_sec,
            },
            "disk": {
                "buffered_write_mb_per_sec": engine.disk_write_mb_per_sec,
                "fdatasync_per_sec": fdatasync,
            },
            "broker": {
                "info_round_trips_per_sec": round_trips_per_sec,
                "appends": cases,
                "replay_records": replayed,
                "replay_mb_per_sec": replay_mb,
                "replay_vs_engine_copied": replay_mb / engine.replay_mb_per_sec,
                "memory": memory,
                "peak_rss_mb": peak_rss_mb,
            },
            "ratios": {
                "engine_group_commit_vs_fdatasync": engine.group_commit_records_per_sec / fdatasync,
                "engine_synced_each_vs_fdatasync": engine.synced_records_per_sec / fdatasync,
                "engine_replay_vs_disk_write": engine.replay_mb_per_sec / engine.disk_write_mb_per_sec,
            },
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "zhub bench log: {VALUE} B values, in {}",
        args.dir.display()
    );
    println!("\nthe engine in-process:");
    println!("{engine}");
    println!(
        "\nthrough the broker (ipc), {:.0} s per case; window: appends in flight per appender:",
        args.seconds
    );
    if args.peer.is_some() {
        println!("redis = XADD to a redis-server on a Unix socket with the same persistence, by redis-benchmark: connections = appenders, pipeline = window");
    }
    println!(
        "{:<8} {:>9} {:>6} {:>6} {:>14} {:>14} {:>12} {:>8}",
        "policy", "appenders", "batch", "window", "records/s", "x fdatasync", "redis/s", "x redis"
    );
    println!("(a round trip to the built-in zhub.info, 1 client: {round_trips_per_sec:.0}/s)");
    for c in &cases {
        let (redis, ratio) = match (c.redis_records_per_sec, c.vs_redis) {
            (Some(r), Some(x)) => (format!("{r:.0}"), format!("{x:.2}")),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<8} {:>9} {:>6} {:>6} {:>14.0} {:>14.1} {:>12} {:>8}",
            c.policy,
            c.appenders,
            c.batch,
            c.window,
            c.records_per_sec,
            c.vs_fdatasync,
            redis,
            ratio
        );
    }
    println!(
        "replay through the broker: {replayed} records, {replay_mb:.1} MB/s of values ({:.2}x the engine's replay with records copied)",
        replay_mb / engine.replay_mb_per_sec
    );
    if let Some(m) = &memory {
        println!(
            "memory run: {:.0} MB appended at {:.0} MB/s and replayed at {:.0} MB/s; broker peak RSS {:.1} MiB",
            m.appended_mb, m.append_mb_per_sec, m.replay_mb_per_sec, m.broker_peak_rss_mb
        );
    }
    Ok(())
}
