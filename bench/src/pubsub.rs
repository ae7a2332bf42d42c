//! `zhub bench pubsub`: throughput through zhub beside raw libzmq doing the same thing, in
//! the same run, with the same threads and transport, reported as a ratio.
//!
//! Layout of `zhub bench pubsub`, for zhub and for the raw baseline alike:
//! - a server process: `zhub bench-broker` (a real zhub broker) or `zhub bench-raw-proxy`
//!   (libzmq's own `zmq_proxy` between an XSUB and an XPUB), both this same executable;
//! - in the bench process, one publisher thread and one subscriber thread.
//!
//! The subscriber counts messages by sequence number and stops when all have arrived or none
//! has come for [`IDLE`]; anything missing is reported as lost. Throughput is messages
//! received over the time from the first publish to the last receipt.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use zhub_client::ClientOptions;

use crate::median_of;
use crate::server::{endpoints, Server, Transport};

/// How long a subscriber waits for the next message before it counts the rest as lost.
const IDLE: Duration = Duration::from_secs(2);
/// Most messages the publisher may be ahead of the subscriber in windowed runs: below the
/// high-water mark, so a windowed run loses nothing unless something is wrong.
const WINDOW: u64 = 5_000;

/// How hard the publisher pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// As fast as it can: shows the most the path carries, and what a subscriber that cannot
    /// keep up loses.
    Saturate,
    /// At most [`WINDOW`] messages ahead of the subscriber: the subscriber keeps up.
    Windowed,
}

/// Publisher-side flow control for windowed runs: the subscriber publishes its count and
/// wakes the publisher every quarter window; the publisher sleeps while it is a whole window
/// ahead. Sleeping rather than spinning matters: on two cores a spinning publisher takes CPU
/// from the very threads it waits for.
#[derive(Clone)]
struct Window(Option<Arc<(AtomicU64, std::thread::Thread)>>);

impl Window {
    /// Made on the publishing thread, which is the one woken.
    fn new(mode: Mode) -> Self {
        Window(
            (mode == Mode::Windowed).then(|| Arc::new((AtomicU64::new(0), std::thread::current()))),
        )
    }

    fn received(&self, n: u64) {
        if let Some(shared) = &self.0 {
            shared.0.store(n, Ordering::Release);
            if n.is_multiple_of(WINDOW / 4) {
                shared.1.unpark();
            }
        }
    }

    fn before_send(&self, sent: u64) {
        if let Some(shared) = &self.0 {
            while sent >= shared.0.load(Ordering::Acquire) + WINDOW {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
    }
}

/// High-water mark for both sides, so that queue sizes are not what the comparison measures.
const HWM: i32 = zhub_broker::config::DEFAULT_HWM;

/// Arguments of `zhub bench pubsub`.
#[derive(Debug, clap::Args)]
pub struct PubsubArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Messages per run at 100 bytes.
    #[arg(long, default_value_t = 500_000)]
    count: u64,
    /// Messages per run at 16 KiB.
    #[arg(long, default_value_t = 20_000)]
    large_count: u64,
    /// Runs per case, alternating zhub and raw; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Modes to measure: saturate (publisher at full speed) and windowed (publisher at most
    /// 5000 messages ahead of the subscriber).
    #[arg(long, value_delimiter = ',', default_value = "saturate,windowed")]
    modes: Vec<Mode>,
    /// Transports to measure.
    #[arg(long, value_delimiter = ',', default_value = "tcp,ipc")]
    transports: Vec<Transport>,
}

/// Arguments of the hidden `zhub bench-raw-proxy`.
#[derive(Debug, clap::Args)]
pub struct RawProxyArgs {
    #[arg(long)]
    xsub: String,
    #[arg(long)]
    xpub: String,
}

/// Runs libzmq's own proxy between an XSUB and an XPUB until killed.
pub(crate) fn serve_raw_proxy(args: &RawProxyArgs) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let xsub = ctx.socket(zmq::XSUB)?;
    xsub.set_rcvhwm(HWM)?;
    xsub.bind(&args.xsub)?;
    let xpub = ctx.socket(zmq::XPUB)?;
    xpub.set_sndhwm(HWM)?;
    xpub.bind(&args.xpub)?;
    println!("ready");
    std::io::stdout().flush()?;
    zmq::proxy(&xsub, &xpub)?;
    Ok(())
}

/// One side's result of one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Run {
    pub(crate) msgs_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    pub(crate) lost: u64,
    pub(crate) peak_rss_bytes: Option<u64>,
}

fn finish(
    count: u64,
    size: usize,
    received: u64,
    elapsed: Duration,
    peak_rss_bytes: Option<u64>,
) -> Run {
    let secs = elapsed.as_secs_f64().max(1e-9);
    Run {
        msgs_per_sec: received as f64 / secs,
        mb_per_sec: received as f64 * size as f64 / secs / 1e6,
        lost: count - received.min(count),
        peak_rss_bytes,
    }
}

fn zhub_run(transport: Transport, mode: Mode, size: usize, count: u64) -> anyhow::Result<Run> {
    let (server, main) = Server::broker(transport, tempfile::tempdir()?, &[])?;
    let run = zhub_between(&main, &main, mode, size, count)?;
    Ok(Run {
        peak_rss_bytes: server.peak_rss(),
        ..run
    })
}

/// One publisher on the broker at `pub_url`, one subscriber on the broker at `sub_url` (the
/// same broker, or a peer of it), `count` messages of `size` bytes. Until the subscriber has
/// heard a probe the clock does not start, so that interest crossing a cluster link is not
/// what is measured.
pub(crate) fn zhub_between(
    pub_url: &str,
    sub_url: &str,
    mode: Mode,
    size: usize,
    count: u64,
) -> anyhow::Result<Run> {
    let window = Window::new(mode);
    let sub_window = window.clone();
    let options = || {
        ClientOptions::new()
            .timeout(Duration::from_secs(10))
            .linger(Duration::ZERO)
    };

    let (ready_tx, ready_rx) = mpsc::channel();
    let heard = Arc::new(AtomicBool::new(false));
    let heard_probe = Arc::clone(&heard);
    let sub_url = sub_url.to_owned();
    let subscriber = std::thread::Builder::new()
        .name("bench-subscriber".into())
        .spawn(move || -> anyhow::Result<(u64, Instant)> {
            let mut client = options().connect(&sub_url)?;
            let mut sub = client.subscribe(&["bench"])?;
            ready_tx.send(())?;
            let mut received = 0;
            let mut last = Instant::now();
            while received < count {
                match sub.recv_timeout(IDLE)? {
                    Some(m) if m.topic() == "bench" => {
                        received += 1;
                        sub_window.received(received);
                        last = Instant::now();
                    }
                    Some(_) => heard_probe.store(true, Ordering::Release),
                    None if !heard_probe.load(Ordering::Acquire) => {}
                    None => break,
                }
            }
            Ok((received, last))
        })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow!("subscriber failed to start"))?;
    let mut publisher = options().connect(pub_url)?;
    let until = Instant::now() + Duration::from_secs(10);
    while !heard.load(Ordering::Acquire) {
        if Instant::now() > until {
            bail!("the subscriber heard no probe in 10 s");
        }
        publisher.publish_bytes("bench.probe", b"")?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let body = vec![0x5au8; size];
    let start = Instant::now();
    for sent in 0..count {
        window.before_send(sent);
        publisher.publish_bytes("bench", &body)?;
    }
    let (received, last) = subscriber
        .join()
        .map_err(|_| anyhow!("subscriber panicked"))??;
    Ok(finish(
        count,
        size,
        received,
        last.saturating_duration_since(start),
        None,
    ))
}

/// Raw frames: "bench", a kind byte (0 warm-up, 1 measured), then padding to `size`.
fn raw_run(transport: Transport, mode: Mode, size: usize, count: u64) -> anyhow::Result<Run> {
    let window = Window::new(mode);
    let sub_window = window.clone();
    let dir = tempfile::tempdir()?;
    let [_, xsub, xpub, _] = endpoints(transport, dir.path())?;
    let args = vec![
        "bench-raw-proxy".to_owned(),
        "--xsub".into(),
        xsub.clone(),
        "--xpub".into(),
        xpub.clone(),
    ];
    let server = Server::spawn(&args, dir)?;
    let ctx = zmq::Context::new();
    let live = Arc::new(AtomicBool::new(false));
    let sub_live = Arc::clone(&live);
    let subscriber = std::thread::Builder::new()
        .name("bench-subscriber".into())
        .spawn(move || -> anyhow::Result<(u64, Instant)> {
            // A context per thread, as zhub's two clients have: the same I/O threads on both
            // sides of the comparison.
            let sub_ctx = zmq::Context::new();
            let sub = sub_ctx.socket(zmq::SUB)?;
            sub.set_linger(0)?;
            sub.set_rcvhwm(HWM)?;
            sub.set_rcvtimeo(i32::try_from(IDLE.as_millis())?)?;
            sub.connect(&xpub)?;
            sub.set_subscribe(b"bench")?;
            let mut msg = zmq::Message::new();
            let mut received = 0;
            let mut last = Instant::now();
            while received < count {
                match sub.recv(&mut msg, 0) {
                    Ok(()) => {}
                    Err(zmq::Error::EAGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
                if msg.get(5) == Some(&1) {
                    received += 1;
                    sub_window.received(received);
                    last = Instant::now();
                } else {
                    sub_live.store(true, Ordering::Release);
                }
            }
            Ok((received, last))
        })?;
    let publisher = ctx.socket(zmq::PUB)?;
    publisher.set_linger(0)?;
    publisher.set_sndhwm(HWM)?;
    publisher.connect(&xsub)?;
    let mut warm = b"bench\0".to_vec();
    warm.resize(size.max(6), 0);
    // The raw pattern has no handshake: publish warm-ups until the subscriber sees one.
    let until = Instant::now() + Duration::from_secs(10);
    while !live.load(Ordering::Acquire) {
        if Instant::now() > until {
            bail!("raw subscriber never received a warm-up message");
        }
        publisher.send(&warm[..], 0)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut body = b"bench\x01".to_vec();
    body.resize(size.max(6), 0x5a);
    let start = Instant::now();
    for sent in 0..count {
        window.before_send(sent);
        publisher.send(&body[..], 0)?;
    }
    let (received, last) = subscriber
        .join()
        .map_err(|_| anyhow!("subscriber panicked"))??;
    Ok(finish(
        count,
        size,
        received,
        last.saturating_duration_since(start),
        server.peak_rss(),
    ))
}

/// One case's figures: medians over the rounds, losses summed, peak memory maximum.
#[derive(Debug, Serialize)]
struct Case {
    transport: Transport,
    mode: Mode,
    size: usize,
    count: u64,
    zhub: Run,
    raw: Run,
    ratio: f64,
}

fn summarize(runs: &[Run]) -> Run {
    let median = |field: fn(&Run) -> f64| median_of(runs, field);
    Run {
        msgs_per_sec: median(|r| r.msgs_per_sec),
        mb_per_sec: median(|r| r.mb_per_sec),
        lost: runs.iter().map(|r| r.lost).sum(),
        peak_rss_bytes: runs.iter().filter_map(|r| r.peak_rss_bytes).max(),
    }
}

pub(crate) fn run(args: &PubsubArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut cases = Vec::new();
    for &transport in &args.transports {
        for (size, count) in [(100usize, args.count), (16 * 1024, args.large_count)] {
            for &mode in &args.modes {
                let mut zhub = Vec::new();
                let mut raw = Vec::new();
                for _ in 0..args.rounds {
                    zhub.push(zhub_run(transport, mode, size, count)?);
                    raw.push(raw_run(transport, mode, size, count)?);
                }
                let (zhub, raw) = (summarize(&zhub), summarize(&raw));
                let case = Case {
                    transport,
                    mode,
                    size,
                    count,
                    ratio: zhub.msgs_per_sec / raw.msgs_per_sec.max(1e-9),
                    zhub,
                    raw,
                };
                if !args.json {
                    print_row(&case, cases.is_empty(), args.rounds);
                }
                cases.push(case);
            }
        }
    }
    if args.json {
        let out = serde_json::json!({ "bench": "pubsub", "rounds": args.rounds, "cases": cases });
        println!("{out}");
    }
    Ok(())
}

fn print_row(case: &Case, first: bool, rounds: usize) {
    let mib = |b: Option<u64>| {
        b.map_or("-".to_owned(), |b| {
            format!("{:.1}MiB", b as f64 / 1048576.0)
        })
    };
    if first {
        println!("zhub bench pubsub: median of {rounds} runs; raw = libzmq PUB -> XSUB/XPUB proxy -> SUB,");
        println!("same threads, same transport, HWM {HWM}; lost = sent - received over all runs;");
        println!("saturate = publisher at full speed, windowed = at most {WINDOW} ahead of the subscriber");
        println!(
            "{:<19} {:>12} {:>9} {:>7} {:>9} | {:>12} {:>9} {:>7} {:>9} | {:>6}",
            "case",
            "zhub msg/s",
            "MB/s",
            "lost",
            "rss",
            "raw msg/s",
            "MB/s",
            "lost",
            "rss",
            "ratio"
        );
    }
    let size = if case.size >= 1024 {
        format!("{}KiB", case.size / 1024)
    } else {
        format!("{}B", case.size)
    };
    println!(
        "{:<19} {:>12.0} {:>9.1} {:>7} {:>9} | {:>12.0} {:>9.1} {:>7} {:>9} | {:>6.2}",
        format!("{:?} {size} {:?}", case.transport, case.mode).to_lowercase(),
        case.zhub.msgs_per_sec,
        case.zhub.mb_per_sec,
        case.zhub.lost,
        mib(case.zhub.peak_rss_bytes),
        case.raw.msgs_per_sec,
        case.raw.mb_per_sec,
        case.raw.lost,
        mib(case.raw.peak_rss_bytes),
        case.ratio
    );
}
