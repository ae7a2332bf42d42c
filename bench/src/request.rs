//! `zhub bench request`: request round trips through zhub beside a minimal raw libzmq
//! broker, in the same run, with the same threads and transport.
//!
//! Both sides have a broker process (`zhub bench-broker`, or `zhub bench-raw-router`: a
//! ROUTER for clients, a ROUTER for workers, idle workers used least-recently first), two echo
//! worker threads and the client threads of the case, each keeping its number of requests in
//! flight. Latency is measured per request, from send to reply.
//!
//! The cases with credit give each worker a credit of [`CREDIT`] on both sides: zhub workers
//! with `WorkerOptions::concurrency`, served by `run`'s handler threads (`cK`) or on one
//! thread by `run_inline` (`cKi`, as the raw workers serve), raw workers whose READY names the
//! credit, which the raw broker honours by keeping one free slot per unit of credit in its
//! LRU queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use zhub_client::ClientOptions;
use zhub_worker::WorkerOptions;

use crate::median_of;
use crate::server::{endpoints, Server, Transport};

/// Arguments of `zhub bench request`.
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Round trips per client in each run.
    #[arg(long, default_value_t = 4000)]
    requests: u64,
    /// Runs per case, alternating zhub and raw; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
    /// Also run every zhub case against a broker serving HTTP (`--http`) whose `/metrics` a
    /// scraper reads every second, alternating with the plain runs, and report the cost.
    #[arg(long)]
    scrape: bool,
}

/// How often the scraper of `--scrape` reads `/metrics`, as Prometheus would.
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// Arguments of the hidden `zhub bench-raw-router`.
#[derive(Debug, clap::Args)]
pub struct RawRouterArgs {
    #[arg(long)]
    frontend: String,
    #[arg(long)]
    backend: String,
}

pub(crate) const BODY: usize = 100;
pub(crate) const WORKERS: usize = 2;
const READY: &[u8] = b"READY";
/// Requests in flight to each worker in the cases with credit.
const CREDIT: u32 = 16;

/// The raw baseline broker: clients on `frontend`, workers on `backend`, each request to the
/// worker with a free slot used least recently, queued while none has one. A worker's READY
/// `["", "READY", credit u32 BE]` gives it that many slots (1 without the frame).
pub(crate) fn serve_raw_router(args: &RawRouterArgs) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let frontend = ctx.socket(zmq::ROUTER)?;
    frontend.bind(&args.frontend)?;
    let backend = ctx.socket(zmq::ROUTER)?;
    backend.bind(&args.backend)?;
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout())?;
    let mut idle: VecDeque<Vec<u8>> = VecDeque::new();
    let mut queue: VecDeque<Vec<Vec<u8>>> = VecDeque::new();
    loop {
        let mut items = [
            frontend.as_poll_item(zmq::POLLIN),
            backend.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, -1)?;
        if items[1].is_readable() {
            while let Ok(mut msg) = backend.recv_multipart(zmq::DONTWAIT) {
                // [worker, "", READY, credit?] or [worker, "", client, "", body]
                let worker = msg.remove(0);
                if msg.get(1).map(Vec::as_slice) != Some(READY) {
                    frontend.send_multipart(msg.split_off(1), 0)?;
                    idle.push_back(worker);
                } else {
                    let credit = msg
                        .get(2)
                        .and_then(|c| <[u8; 4]>::try_from(c.as_slice()).ok())
                        .map_or(1, u32::from_be_bytes)
                        .clamp(1, 1024);
                    for _ in 0..credit {
                        idle.push_back(worker.clone());
                    }
                }
            }
        }
        if items[0].is_readable() {
            while let Ok(msg) = frontend.recv_multipart(zmq::DONTWAIT) {
                queue.push_back(msg);
            }
        }
        while !idle.is_empty() && !queue.is_empty() {
            if let (Some(worker), Some(request)) = (idle.pop_front(), queue.pop_front()) {
                let mut out = vec![worker, Vec::new()];
                out.extend(request);
                backend.send_multipart(out, 0)?;
            }
        }
    }
}

/// Latencies and wall time of one run.
pub(crate) struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Figures {
    pub(crate) round_trips_per_sec: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

impl Sample {
    pub(crate) fn figures(mut self) -> Figures {
        self.latencies.sort_unstable();
        let pick = |q: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
        };
        Figures {
            round_trips_per_sec: self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50_us: pick(0.50),
            p99_us: pick(0.99),
        }
    }
}

/// Runs `clients` client threads, each doing `requests` round trips with `in_flight` in
/// flight, through `round_trip`, a per-thread request engine.
fn drive<C, F>(clients: usize, requests: u64, make: F) -> anyhow::Result<Sample>
where
    C: FnMut(&mut Vec<Duration>) -> anyhow::Result<()> + Send,
    F: Fn() -> anyhow::Result<C> + Sync,
{
    let barrier = Barrier::new(clients + 1);
    let results = std::thread::scope(|scope| -> anyhow::Result<(Vec<Vec<Duration>>, Duration)> {
        let mut handles = Vec::new();
        for _ in 0..clients {
            let barrier = &barrier;
            let make = &make;
            handles.push(scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut engine = make();
                barrier.wait();
                let engine = engine.as_mut().map_err(|e| anyhow!("{e:#}"))?;
                let mut latencies = Vec::with_capacity(requests as usize);
                engine(&mut latencies)?;
                Ok(latencies)
            }));
        }
        barrier.wait();
        let start = Instant::now();
        let mut all = Vec::new();
        for h in handles {
            all.push(h.join().map_err(|_| anyhow!("client thread panicked"))??);
        }
        Ok((all, start.elapsed()))
    })?;
    let (all, elapsed) = results;
    let latencies: Vec<Duration> = all.into_iter().flatten().collect();
    let expected = clients as u64 * requests;
    if latencies.len() as u64 != expected {
        bail!("{} of {expected} round trips completed", latencies.len());
    }
    Ok(Sample { latencies, elapsed })
}

/// How the zhub echo workers serve their credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Serving {
    /// `Worker::run`: one handler thread per unit of credit (one thread for credit 1).
    Threads,
    /// `Worker::run_inline`: on the worker's own thread, its credit queued at it.
    Inline,
}

fn zhub_run(
    transport: Transport,
    clients: usize,
    in_flight: usize,
    (credit, serving): (u32, Serving),
    requests: u64,
    scrape: bool,
) -> anyhow::Result<(Sample, u64)> {
    let dir = tempfile::tempdir()?;
    let http: &[&str] = if scrape {
        &["--http", "127.0.0.1:0"]
    } else {
        &[]
    };
    let (_server, main) = Server::broker(transport, dir, http)?;
    echo_run(
        &main,
        &main,
        clients,
        in_flight,
        (credit, serving),
        requests,
        scrape,
    )
}

/// Echo round trips: [`WORKERS`] echo workers of credit `credit` on the broker at
/// `workers_at`, `clients` clients with `in_flight` requests each on the broker at
/// `clients_at` (the same broker, or a peer of it); with `scrape`, `/metrics` of the
/// clients' broker read every second meanwhile (the scrapes made are returned).
pub(crate) fn echo_run(
    workers_at: &str,
    clients_at: &str,
    clients: usize,
    in_flight: usize,
    (credit, serving): (u32, Serving),
    requests: u64,
    scrape: bool,
) -> anyhow::Result<(Sample, u64)> {
    let mut stoppers = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let worker = WorkerOptions::new()
            .concurrency(credit)
            .connect(workers_at, "echo")?;
        stoppers.push(worker.stopper());
        workers.push(std::thread::spawn(move || match serving {
            Serving::Threads => worker.run(|b| b.to_vec()),
            Serving::Inline => worker.run_inline(|b| b.to_vec()),
        }));
    }
    let options = || {
        ClientOptions::new()
            .timeout(Duration::from_secs(30))
            .linger(Duration::ZERO)
    };
    // Wait until the workers are registered, here or at the peer that tells the clients'
    // broker their credit.
    let mut probe = options().connect(clients_at)?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let services: Vec<zhub_protocol::builtin::ServiceInfo> =
            probe.request("zhub.services", &())?;
        let ready = services.iter().any(|s| {
            let remote: u64 = s.peers.iter().map(|p| p.credit).sum();
            s.name == "echo"
                && (s.workers == WORKERS as u64 || remote == WORKERS as u64 * u64::from(credit))
        });
        if ready {
            break;
        }
        if Instant::now() > until {
            bail!("echo workers did not register");
        }
    }
    let scraper = scrape
        .then(|| Scraper::start(probe.info().http.trim_start_matches("http://")))
        .transpose()?;
    let body = vec![0x5au8; BODY];
    let sample = drive(clients, requests, || {
        let mut client = options().connect(clients_at)?;
        let body = body.clone();
        Ok(move |latencies: &mut Vec<Duration>| -> anyhow::Result<()> {
            let mut sent_at = HashMap::new();
            let mut sent = 0;
            while (latencies.len() as u64) < requests {
                while sent < requests && client.in_flight() < in_flight {
                    let id = client.send_request_bytes("echo", &body, Duration::from_secs(30))?;
                    sent_at.insert(id, Instant::now());
                    sent += 1;
                }
                let (id, reply) = client.recv_reply()?;
                reply?;
                let at = sent_at
                    .remove(&id)
                    .ok_or_else(|| anyhow!("reply to unknown request"))?;
                latencies.push(at.elapsed());
            }
            Ok(())
        })
    });
    for s in stoppers {
        s.stop();
    }
    for w in workers {
        let _ = w.join();
    }
    let scrapes = scraper.map_or(Ok(0), Scraper::stop)?;
    Ok((sample?, scrapes))
}

/// A thread reading `/metrics` every [`SCRAPE_EVERY`] over plain HTTP/1.0, as a Prometheus
/// server would, until stopped.
struct Scraper {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<u64>>,
}

impl Scraper {
    fn start(address: &str) -> anyhow::Result<Scraper> {
        use std::io::{Read, Write};
        if address.is_empty() {
            bail!("the broker serves no HTTP");
        }
        let address = address.to_owned();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || -> anyhow::Result<u64> {
            let mut scrapes = 0;
            loop {
                let mut stream = std::net::TcpStream::connect(&address)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
                let mut reply = Vec::new();
                stream.read_to_end(&mut reply)?;
                if !reply.starts_with(b"HTTP/1.0 200") && !reply.starts_with(b"HTTP/1.1 200") {
                    bail!(
                        "/metrics answered {:?}",
                        String::from_utf8_lossy(&reply[..reply.len().min(40)])
                    );
                }
                scrapes += 1;
                match stopped.recv_timeout(SCRAPE_EVERY) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return Ok(scrapes),
                }
            }
        });
        Ok(Scraper { stop, thread })
    }

    /// Stops the scraper; the scrapes it made.
    fn stop(self) -> anyhow::Result<u64> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow!("the scraper panicked"))?
    }
}

pub(crate) fn raw_run(
    transport: Transport,
    clients: usize,
    in_flight: usize,
    credit: u32,
    requests: u64,
) -> anyhow::Result<Sample> {
    let dir = tempfile::tempdir()?;
    let [frontend, backend, _, _] = endpoints(transport, dir.path())?;
    let args: Vec<String> = [
        "bench-raw-router",
        "--frontend",
        &frontend,
        "--backend",
        &backend,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _server = Server::spawn(&args, dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let backend = backend.clone();
        let stop = Arc::clone(&stop);
        workers.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let ctx = zmq::Context::new();
            let s = ctx.socket(zmq::DEALER)?;
            s.set_linger(0)?;
            s.set_rcvtimeo(100)?;
            s.connect(&backend)?;
            s.send_multipart([&b""[..], READY, &credit.to_be_bytes()[..]], 0)?;
            while !stop.load(Ordering::Relaxed) {
                match s.recv_multipart(0) {
                    Ok(msg) => s.send_multipart(msg, 0)?,
                    Err(zmq::Error::EAGAIN) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }));
    }
    let body = vec![0x5au8; BODY];
    let sample = drive(clients, requests, || {
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::DEALER)?;
        s.set_linger(0)?;
        s.set_rcvtimeo(30_000)?;
        s.connect(&frontend)?;
        let body = body.clone();
        Ok(move |latencies: &mut Vec<Duration>| -> anyhow::Result<()> {
            let _keep = &ctx;
            let mut sent_at: HashMap<u64, Instant> = HashMap::new();
            let mut sent = 0u64;
            let mut frame = body.clone();
            while (latencies.len() as u64) < requests {
                while sent < requests && sent_at.len() < in_flight {
                    frame[..8].copy_from_slice(&sent.to_be_bytes());
                    s.send_multipart([&b""[..], &frame[..]], 0)?;
                    sent_at.insert(sent, Instant::now());
                    sent += 1;
                }
                let reply = s.recv_multipart(0)?;
                let id = reply
                    .get(1)
                    .and_then(|b| b.get(..8))
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| anyhow!("malformed raw reply"))?;
                let at = sent_at
                    .remove(&id)
                    .ok_or_else(|| anyhow!("reply to unknown request"))?;
                latencies.push(at.elapsed());
            }
            Ok(())
        })
    });
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    sample
}

#[derive(Debug, Serialize)]
struct Case {
    clients: usize,
    in_flight: usize,
    credit: u32,
    serving: Serving,
    zhub: Figures,
    raw: Figures,
    throughput_ratio: f64,
    p99_ratio: f64,
}

pub(crate) fn median(samples: Vec<Figures>) -> Figures {
    let pick = |field: fn(&Figures) -> f64| median_of(&samples, field);
    Figures {
        round_trips_per_sec: pick(|f| f.round_trips_per_sec),
        p50_us: pick(|f| f.p50_us),
        p99_us: pick(|f| f.p99_us),
    }
}

pub(crate) fn run(args: &RequestArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let mut cases = Vec::new();
    let mut scrape_costs = Vec::new();
    for (clients, in_flight, credit, serving) in [
        (1, 1, 1, Serving::Threads),
        (8, 1, 1, Serving::Threads),
        (8, 16, 1, Serving::Threads),
        (8, 1, CREDIT, Serving::Threads),
        (8, 16, CREDIT, Serving::Threads),
        (8, 1, CREDIT, Serving::Inline),
        (8, 16, CREDIT, Serving::Inline),
    ] {
        let label = format!(
            "{clients}x{in_flight}/c{credit}{}",
            if serving == Serving::Inline { "i" } else { "" }
        );
        let mut zhub = Vec::new();
        let mut raw = Vec::new();
        let mut scraped = Vec::new();
        for _ in 0..args.rounds {
            let (t, r) = (args.transport, args.requests);
            zhub.push(
                zhub_run(t, clients, in_flight, (credit, serving), r, false)?
                    .0
                    .figures(),
            );
            raw.push(raw_run(t, clients, in_flight, credit, r)?.figures());
            if args.scrape {
                let (sample, scrapes) =
                    zhub_run(t, clients, in_flight, (credit, serving), r, true)?;
                scraped.push((sample.figures(), scrapes));
            }
        }
        if args.scrape {
            scrape_costs.push(ScrapeCost::new(label.clone(), &zhub, &scraped));
        }
        let (zhub, raw) = (median(zhub), median(raw));
        let case = Case {
            clients,
            in_flight,
            credit,
            serving,
            throughput_ratio: zhub.round_trips_per_sec / raw.round_trips_per_sec.max(1e-9),
            p99_ratio: zhub.p99_us / raw.p99_us.max(1e-9),
            zhub,
            raw,
        };
        if !args.json {
            if cases.is_empty() {
                println!(
                    "zhub bench request: {BODY} B echo through the broker to {WORKERS} workers, median of {} runs, {} round trips per client",
                    args.rounds, args.requests
                );
                println!("raw = libzmq ROUTER/ROUTER broker with LRU workers, same threads and transport ({:?})", args.transport);
                println!(
                    "case CxF/cK: C clients with F requests in flight each, workers of credit K (cKi: zhub workers serving it on one thread, run_inline)"
                );
                println!(
                    "{:<12} {:>10} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6} {:>6}",
                    "case",
                    "zhub rt/s",
                    "p50 us",
                    "p99 us",
                    "raw rt/s",
                    "p50 us",
                    "p99 us",
                    "rt/s",
                    "p99"
                );
            }
            println!(
                "{:<12} {:>10.0} {:>8.0} {:>8.0} | {:>10.0} {:>8.0} {:>8.0} | {:>6.2} {:>6.2}",
                label,
                case.zhub.round_trips_per_sec,
                case.zhub.p50_us,
                case.zhub.p99_us,
                case.raw.round_trips_per_sec,
                case.raw.p50_us,
                case.raw.p99_us,
                case.throughput_ratio,
                case.p99_ratio
            );
        }
        cases.push(case);
    }
    if args.json {
        let mut report =
            serde_json::json!({ "bench": "request", "rounds": args.rounds, "cases": cases });
        if args.scrape {
            report["scrape"] = serde_json::to_value(&scrape_costs)?;
        }
        println!("{report}");
    } else if args.scrape {
        println!(
            "with /metrics scraped every {SCRAPE_EVERY:?} (broker with --http), runs alternating with the plain ones above:"
        );
        println!(
            "{:<12} {:>10} {:>10} {:>8} {:>8}  zhub rt/s per run | scraped rt/s per run",
            "case", "zhub rt/s", "scraped", "change", "scrapes"
        );
        for c in &scrape_costs {
            let runs = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "{:<12} {:>10.0} {:>10.0} {:>7.1}% {:>8}  {} | {}",
                c.case,
                c.plain_rt_per_sec,
                c.scraped_rt_per_sec,
                c.change_percent,
                c.scrapes,
                runs(&c.plain_runs),
                runs(&c.scraped_runs)
            );
        }
    }
    Ok(())
}

/// What scraping `/metrics` cost one case: medians with and without, and every run.
#[derive(Serialize)]
struct ScrapeCost {
    case: String,
    plain_rt_per_sec: f64,
    scraped_rt_per_sec: f64,
    /// Scraped against plain throughput, in percent (negative: slower when scraped).
    change_percent: f64,
    /// Scrapes made over all the scraped runs.
    scrapes: u64,
    plain_runs: Vec<f64>,
    scraped_runs: Vec<f64>,
}

impl ScrapeCost {
    fn new(case: String, plain: &[Figures], scraped: &[(Figures, u64)]) -> ScrapeCost {
        let plain_runs: Vec<f64> = plain.iter().map(|f| f.round_trips_per_sec).collect();
        let scraped_runs: Vec<f64> = scraped.iter().map(|(f, _)| f.round_trips_per_sec).collect();
        let median = |runs: &[f64]| {
            let mut sorted = runs.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
        };
        let (p, s) = (median(&plain_runs), median(&scraped_runs));
        ScrapeCost {
            case,
            plain_rt_per_sec: p,
            scraped_rt_per_sec: s,
            change_percent: (s / p.max(1e-9) - 1.0) * 100.0,
            scrapes: scraped.iter().map(|(_, n)| n).sum(),
            plain_runs,
            scraped_runs,
        }
    }
}
