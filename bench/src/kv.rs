//! `zhub bench kv`: the key-value store through a broker, beside the request round trip to a
//! built-in service that does no work (`zhub.info`), measured the same way in the same run,
//! so the store's own cost is what the ratio shows.
//!
//! Two broker child processes on ipc, one with `--kv-fsync never` and one with `always`, their
//! data in `--dir`. Each case runs for `--seconds`: `clients` threads, each with its own
//! client, keep `in_flight` requests outstanding (pipelined, matched by id) and count replies.
//! Gets read 10 000 preloaded keys; puts write 100-byte values over 10 000 keys per client.
//! With `--batch N`, the same clients also send `get_many` and `put_many` requests of N keys
//! each (their rates count keys, not requests). Last, 1M keys of 100-byte values are loaded into the `never` broker and its resident
//! memory is compared with the raw bytes of keys and values.
//!
//! With `--peer redis`, each get and put case also runs against a `redis-server` with the
//! same persistence (none for `never`, `appendfsync always` for `always`) through
//! `redis-benchmark` with the same clients and pipeline depth ([`crate::redis`]), and the
//! table gives zhub's rate over Redis's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use zhub_client::{Client, FsyncPolicy};
use zhub_protocol::builtin::INFO_SERVICE;
use zhub_protocol::kv::{KvRequest, KvWrite, KV_SERVICE};

use crate::redis::{Peer, Persistence, Workload};
use crate::server::{Server, Transport};

/// Bytes of each value.
const VALUE: usize = 100;
/// Keys preloaded for the gets, and written over by each client's puts.
const KEYS: u64 = 10_000;
/// How long a reply may take before the bench gives up on it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `zhub bench kv`.
#[derive(Debug, clap::Args)]
pub struct KvArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Directory for the brokers' data (a scratch directory is made inside it and removed).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Seconds each case runs.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Client counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    clients: Vec<usize>,
    /// Requests in flight per client to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    in_flight: Vec<usize>,
    /// Also measure batched requests of this many keys (get_many, put_many); 0 skips them.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Keys loaded for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    memory_keys: u64,
    /// Run each get and put case against this peer too, in the same run.
    #[arg(long, value_enum)]
    peer: Option<Peer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Echo,
    Get,
    PutNever,
    PutAlways,
    /// `get_many` of `batch` keys.
    GetMany,
    /// `put_many` of `batch` keys, under `never` and `always`.
    PutManyNever,
    PutManyAlways,
    /// Puts on keys of their own, for the memory run.
    Load,
}

impl Op {
    /// What Redis does for this op, and under which persistence; `None`: no peer case.
    fn redis(self) -> Option<(Workload, Persistence)> {
        match self {
            Op::Get => Some((Workload::Get, Persistence::None)),
            Op::PutNever => Some((Workload::Set, Persistence::None)),
            Op::PutAlways => Some((Workload::Set, Persistence::Always)),
            _ => None,
        }
    }

    /// Keys one reply stands for.
    fn keys(self, batch: usize) -> u64 {
        match self {
            Op::GetMany | Op::PutManyNever | Op::PutManyAlways => batch as u64,
            _ => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Echo => "echo (zhub.info)",
            Op::Get => "get",
            Op::PutNever => "put, never",
            Op::PutAlways => "put, always",
            Op::GetMany => "get_many",
            Op::PutManyNever => "put_many, never",
            Op::PutManyAlways => "put_many, always",
            Op::Load => "load",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Case {
    op: Op,
    clients: usize,
    in_flight: usize,
    /// Keys per request (1 but for the batched ops).
    batch: usize,
    /// Keys read or written per second.
    ops_per_sec: f64,
    /// `ops_per_sec` over the echo round trips of the same arrangement.
    vs_echo: f64,
    /// The peer's requests per second with the same clients and pipeline depth.
    redis_ops_per_sec: Option<f64>,
    /// `ops_per_sec` over `redis_ops_per_sec`.
    vs_redis: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct Memory {
    keys: u64,
    raw_mb: f64,
    rss_before_mb: f64,
    rss_after_mb: f64,
    /// Growth of the broker's resident memory over the raw bytes of keys and values.
    ratio: f64,
    load_ops_per_sec: f64,
}

fn key(client: usize, i: u64) -> String {
    format!("bench.{client:02}.{:07}", i % KEYS)
}

/// A key of the memory run: every request a new one.
fn load_key(client: usize, i: u64) -> String {
    format!("mem.{client}.{i:08}")
}

/// The request body `op` sends as its `i`th request from `client`; batched ops take `batch`
/// keys from the `i * batch`th on.
fn request(
    op: Op,
    client: usize,
    i: u64,
    value: &[u8],
    batch: usize,
) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let first = i * batch as u64;
    let body = match op {
        Op::GetMany => KvRequest::GetMany {
            keys: (first..first + batch as u64).map(|j| key(0, j)).collect(),
        },
        Op::PutManyNever | Op::PutManyAlways => KvRequest::WriteMany {
            writes: (first..first + batch as u64)
                .map(|j| KvWrite::Put {
                    key: key(client, j),
                    value: value.to_vec(),
                    ttl_ms: None,
                })
                .collect(),
        },
        Op::Echo => return Ok((INFO_SERVICE, Vec::new())),
        Op::Get => KvRequest::Get { key: key(0, i) },
        Op::PutNever | Op::PutAlways => KvRequest::Put {
            key: key(client, i),
            value: value.to_vec(),
            ttl_ms: None,
        },
        Op::Load => KvRequest::Put {
            key: load_key(client, i),
            value: value.to_vec(),
            ttl_ms: None,
        },
    };
    Ok((KV_SERVICE, zhub_protocol::body::encode(&body)?))
}

/// How one case drives the store.
#[derive(Debug, Clone, Copy)]
struct Shape {
    op: Op,
    clients: usize,
    in_flight: usize,
    /// Keys per batched request.
    batch: usize,
}

/// Runs `clients` threads keeping `in_flight` requests of `op` outstanding for `seconds`
/// (or until each has sent `limit`); returns keys per second.
fn drive(url: &str, shape: Shape, seconds: f64, limit: Option<u64>) -> anyhow::Result<f64> {
    let Shape {
        op,
        clients,
        in_flight,
        batch,
    } = shape;
    let per_reply = op.keys(batch);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for c in 0..clients {
        let mut client = Client::connect(url)?;
        let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let value = vec![0x42u8; VALUE];
            let mut sent = 0u64;
            let more = |sent: u64| limit.is_none_or(|l| sent < l);
            loop {
                while client.in_flight() < in_flight && !stop.load(Ordering::Relaxed) && more(sent)
                {
                    let (service, body) = request(op, c, sent, &value, batch)?;
                    client.send_request_bytes(service, &body, TIMEOUT)?;
                    sent += 1;
                }
                if client.in_flight() == 0 {
                    return Ok(());
                }
                let (_, reply) = client.recv_reply()?;
                reply.context("request failed")?;
                done.fetch_add(per_reply, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    if limit.is_none() {
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    }
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn spawn(dir: &std::path::Path, fsync: FsyncPolicy) -> anyhow::Result<(Server, String)> {
    let server_dir = tempfile::Builder::new()
        .prefix("zhub-bench-kv")
        .tempdir_in(dir)?;
    Server::broker(
        Transport::Ipc,
        server_dir,
        &["--kv-fsync", &fsync.to_string()],
    )
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

pub(crate) fn run(args: &KvArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("zhub-bench-kv")
        .tempdir_in(&args.dir)
        .with_context(|| format!("cannot make a scratch directory in {}", args.dir.display()))?;
    let (never, never_url) = spawn(scratch.path(), FsyncPolicy::Never)?;
    let (always, always_url) = spawn(scratch.path(), FsyncPolicy::Always)?;
    let shape = |op, clients, in_flight| Shape {
        op,
        clients,
        in_flight,
        batch: args.batch,
    };
    // Keys for the gets.
    drive(&never_url, shape(Op::PutNever, 1, 16), 0.0, Some(KEYS))?;
    let peers = match args.peer {
        Some(Peer::Redis) => crate::redis::pair(scratch.path())?,
        None => None,
    };
    if let Some((none, _)) = &peers {
        // The keys the gets read, as zhub's gets read keys written before.
        none.bench(Workload::Set, 16, 16, 100_000)?;
    }

    let mut ops = vec![Op::Echo, Op::Get, Op::PutNever, Op::PutAlways];
    if args.batch > 0 {
        ops.extend([Op::GetMany, Op::PutManyNever, Op::PutManyAlways]);
    }
    let mut cases = Vec::new();
    for &clients in &args.clients {
        for &in_flight in &args.in_flight {
            let echo = drive(
                &never_url,
                shape(Op::Echo, clients, in_flight),
                args.seconds,
                None,
            )?;
            for &op in &ops {
                let url = match op {
                    Op::PutAlways | Op::PutManyAlways => &always_url,
                    _ => &never_url,
                };
                let rate = match op {
                    Op::Echo => echo,
                    _ => drive(url, shape(op, clients, in_flight), args.seconds, None)?,
                };
                let redis_rate = match (&peers, op.redis()) {
                    (Some((none, always)), Some((workload, persistence))) => {
                        let server = match persistence {
                            Persistence::None => none,
                            Persistence::Always => always,
                        };
                        let n = crate::redis::requests_for(rate, args.seconds, clients, in_flight);
                        Some(server.bench(workload, clients, in_flight, n)?)
                    }
                    _ => None,
                };
                cases.push(Case {
                    op,
                    clients,
                    in_flight,
                    batch: op.keys(args.batch) as usize,
                    ops_per_sec: rate,
                    vs_echo: rate / echo,
                    redis_ops_per_sec: redis_rate,
                    vs_redis: redis_rate.map(|r| rate / r),
                });
            }
        }
    }
    drop(always);
    drop(peers);

    let memory = if args.memory_keys > 0 {
        // A broker of its own, so the figure is the keys' and nothing else's.
        drop(never);
        let (server, url) = spawn(scratch.path(), FsyncPolicy::Never)?;
        let before = server.rss().unwrap_or(0);
        let clients = 4;
        let per_client = args.memory_keys.div_ceil(clients as u64);
        let load_ops_per_sec = drive(&url, shape(Op::Load, clients, 32), 0.0, Some(per_client))?;
        let after = server.rss().unwrap_or(0);
        let key_len = load_key(0, 0).len() as u64;
        let raw = per_client * clients as u64 * (key_len + VALUE as u64);
        Some(Memory {
            keys: per_client * clients as u64,
            raw_mb: raw as f64 / 1e6,
            rss_before_mb: mib(before),
            rss_after_mb: mib(after),
            ratio: after.saturating_sub(before) as f64 / raw as f64,
            load_ops_per_sec,
        })
    } else {
        None
    };

    if args.json {
        println!(
            "{}",
            serde_json::json!({ "bench": "kv", "cases": cases, "memory": memory })
        );
        return Ok(());
    }
    println!(
        "zhub bench kv: {VALUE} B values, ipc, {:.0} s per case; echo = round trip to zhub.info, same clients",
        args.seconds
    );
    if args.peer.is_some() {
        println!("redis = redis-server on a Unix socket, no persistence for gets and `never`, appendfsync always for `always`, driven by redis-benchmark with the same clients and pipeline depth");
    }
    println!(
        "{:<18} {:>7} {:>9} {:>6} {:>12} {:>8} {:>12} {:>8}",
        "case", "clients", "in flight", "batch", "keys/s", "x echo", "redis/s", "x redis"
    );
    for c in &cases {
        let (redis, ratio) = match (c.redis_ops_per_sec, c.vs_redis) {
            (Some(r), Some(x)) => (format!("{r:.0}"), format!("{x:.2}")),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<18} {:>7} {:>9} {:>6} {:>12.0} {:>8.2} {:>12} {:>8}",
            c.op.name(),
            c.clients,
            c.in_flight,
            c.batch,
            c.ops_per_sec,
            c.vs_echo,
            redis,
            ratio
        );
    }
    if let Some(m) = &memory {
        println!(
            "memory: {} keys ({:.1} MB of keys and values) loaded at {:.0} puts/s; broker RSS {:.1} -> {:.1} MiB, {:.2}x the raw bytes",
            m.keys, m.raw_mb, m.load_ops_per_sec, m.rss_before_mb, m.rss_after_mb, m.ratio
        );
    }
    Ok(())
}
