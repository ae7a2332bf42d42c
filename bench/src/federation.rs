//! `zhub bench federation`: requests and pub/sub across one peer hop and across two zones,
//! beside the same clients and workers on one broker, and a raw libzmq ROUTER/ROUTER
//! hop, in the same run.
//!
//! Two broker processes, A and B, peered over their cluster endpoints. The single-broker
//! cases run clients and workers on A; the one-hop cases run the clients on A and the
//! workers (or the publisher) on B, so every request and message crosses the link. The
//! two-zone cases chain three brokers of three zones, A <- B <- C, with the clients (or the
//! subscriber) on A and the workers (or the publisher) on C: every request and message
//! crosses two links and B passes it on. The raw baseline is
//! the same raw broker `zhub bench request` uses, a hop of its own: what a hop costs at the
//! least.

use anyhow::bail;
use serde::Serialize;

use crate::pubsub::{zhub_between, Mode, Run};
use crate::request::{echo_run, median, raw_run, Figures, Serving, BODY, WORKERS};
use crate::server::{Server, Transport};

/// Arguments of `zhub bench federation`.
#[derive(Debug, clap::Args)]
pub struct FederationArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Round trips per client in each request run.
    #[arg(long, default_value_t = 4000)]
    requests: u64,
    /// Messages per pub/sub run (100 bytes, publisher at most 5000 ahead).
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Runs per case; the median is reported, with the spread.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Transport.
    #[arg(long, value_enum, default_value = "tcp")]
    transport: Transport,
}

/// Brokers in a chain, each linked to the one before it; their main endpoints.
struct Chain {
    _servers: Vec<Server>,
    mains: Vec<String>,
}

fn cluster_endpoint(transport: Transport, dir: &std::path::Path) -> anyhow::Result<String> {
    Ok(match transport {
        Transport::Tcp => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("tcp://127.0.0.1:{}", l.local_addr()?.port())
        }
        Transport::Ipc => format!("ipc://{}/cluster.sock", dir.display()),
    })
}

/// Brokers `(name, zone)` in a chain, each linked to the one before it.
fn chain(transport: Transport, brokers: &[(&str, &str)]) -> anyhow::Result<Chain> {
    let mut servers = Vec::new();
    let mut mains = Vec::new();
    let mut before: Option<String> = None;
    for (name, zone) in brokers {
        let dir = tempfile::tempdir()?;
        let cluster = cluster_endpoint(transport, dir.path())?;
        let mut args = vec![
            "--name",
            name,
            "--zone",
            zone,
            "--cluster",
            cluster.as_str(),
        ];
        if let Some(peer) = &before {
            args.extend(["--peer", peer.as_str()]);
        }
        let (server, main) = Server::broker(transport, dir, &args)?;
        servers.push(server);
        mains.push(main);
        before = Some(cluster);
    }
    // Links greet within a heartbeat; every run waits for what it needs to have crossed
    // them (the workers' credit, a probe message) before its clock starts.
    Ok(Chain {
        _servers: servers,
        mains,
    })
}

/// Two peered brokers of one zone, A and B.
fn pair(transport: Transport) -> anyhow::Result<Chain> {
    chain(transport, &[("A", "default"), ("B", "default")])
}

#[derive(Debug, Serialize)]
struct RequestCase {
    case: String,
    single: Figures,
    one_hop: Figures,
    /// Clients in zone a, workers in zone c, through a broker of zone b.
    two_zones: Figures,
    raw: Figures,
    /// One hop's throughput over the single broker's.
    throughput_ratio: f64,
    /// p50 the hop adds, over the raw broker's whole p50 (goal: at most 1).
    added_p50_over_raw_p50: f64,
    /// Two zones' throughput over the single broker's.
    two_zones_ratio: f64,
    /// One-hop round trips per second of each run.
    one_hop_runs: Vec<f64>,
    /// Two-zone round trips per second of each run.
    two_zones_runs: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct PubsubCase {
    single: Run,
    one_hop: Run,
    /// Subscriber in zone a, publisher in zone c, through a broker of zone b.
    two_zones: Run,
    throughput_ratio: f64,
    two_zones_ratio: f64,
    one_hop_runs: Vec<f64>,
    two_zones_runs: Vec<f64>,
}

fn median_run(runs: &[Run]) -> Run {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|x, y| x.msgs_per_sec.total_cmp(&y.msgs_per_sec));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

pub(crate) fn run(args: &FederationArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let t = args.transport;
    let mut requests = Vec::new();
    for (clients, in_flight, credit) in [(1, 1, 1), (8, 1, 1), (8, 16, 16)] {
        let (mut single, mut hop, mut zones, mut raw) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let r = args.requests;
        for _ in 0..args.rounds {
            let p = pair(t)?;
            let (a, b) = (&p.mains[0], &p.mains[1]);
            // Echo round trips with the workers on one broker and the clients on another.
            let echo = |workers_at: &str, clients_at: &str| -> anyhow::Result<Figures> {
                let credit = (credit, Serving::Threads);
                let run = echo_run(workers_at, clients_at, clients, in_flight, credit, r, false)?;
                Ok(run.0.figures())
            };
            single.push(echo(a, a)?);
            hop.push(echo(b, a)?);
            drop(p);
            let z = chain(t, &[("A", "a"), ("B", "b"), ("C", "c")])?;
            zones.push(echo(&z.mains[2], &z.mains[0])?);
            drop(z);
            raw.push(raw_run(t, clients, in_flight, credit, r)?.figures());
        }
        let one_hop_runs = hop.iter().map(|f| f.round_trips_per_sec).collect();
        let two_zones_runs = zones.iter().map(|f| f.round_trips_per_sec).collect();
        let (single, one_hop, two_zones, raw) =
            (median(single), median(hop), median(zones), median(raw));
        requests.push(RequestCase {
            case: format!("{clients}x{in_flight}/c{credit}"),
            throughput_ratio: one_hop.round_trips_per_sec / single.round_trips_per_sec.max(1e-9),
            added_p50_over_raw_p50: (one_hop.p50_us - single.p50_us) / raw.p50_us.max(1e-9),
            two_zones_ratio: two_zones.round_trips_per_sec / single.round_trips_per_sec.max(1e-9),
            single,
            one_hop,
            two_zones,
            raw,
            one_hop_runs,
            two_zones_runs,
        });
    }
    let (mut single, mut hop, mut zones) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let p = pair(t)?;
        let (a, b) = (&p.mains[0], &p.mains[1]);
        single.push(zhub_between(a, a, Mode::Windowed, BODY, args.count)?);
        hop.push(zhub_between(b, a, Mode::Windowed, BODY, args.count)?);
        drop(p);
        let z = chain(t, &[("A", "a"), ("B", "b"), ("C", "c")])?;
        zones.push(zhub_between(
            &z.mains[2],
            &z.mains[0],
            Mode::Windowed,
            BODY,
            args.count,
        )?);
    }
    let single_rate = median_run(&single).msgs_per_sec.max(1e-9);
    let pubsub = PubsubCase {
        one_hop_runs: hop.iter().map(|r| r.msgs_per_sec).collect(),
        two_zones_runs: zones.iter().map(|r| r.msgs_per_sec).collect(),
        single: median_run(&single),
        one_hop: median_run(&hop),
        two_zones: median_run(&zones),
        throughput_ratio: median_run(&hop).msgs_per_sec / single_rate,
        two_zones_ratio: median_run(&zones).msgs_per_sec / single_rate,
    };
    if args.json {
        let report = serde_json::json!({
            "bench": "federation",
            "rounds": args.rounds,
            "requests": requests,
            "pubsub": pubsub,
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "zhub bench federation: brokers A and B peered ({t:?}); single = clients and {WORKERS} echo workers on A; one hop = clients on A, workers on B; median of {} runs",
        args.rounds
    );
    println!(
        "two zones = brokers A (zone a) <- B (zone b) <- C (zone c), clients on A, workers on C"
    );
    println!("raw = libzmq ROUTER/ROUTER broker, one hop of its own, same threads");
    println!(
        "{:<10} {:>9} {:>7} | {:>9} {:>7} {:>7} | {:>9} {:>7} | {:>9} {:>7} | {:>6} {:>9} {:>6}  one-hop runs | two-zone runs",
        "case",
        "single",
        "p50 us",
        "one hop",
        "p50 us",
        "p99 us",
        "two zones",
        "p50 us",
        "raw rt/s",
        "p50 us",
        "ratio",
        "+p50/raw",
        "ratio2"
    );
    let runs = |r: &[f64]| {
        r.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for c in &requests {
        println!(
            "{:<10} {:>9.0} {:>7.0} | {:>9.0} {:>7.0} {:>7.0} | {:>9.0} {:>7.0} | {:>9.0} {:>7.0} | {:>6.2} {:>9.2} {:>6.2}  {} | {}",
            c.case,
            c.single.round_trips_per_sec,
            c.single.p50_us,
            c.one_hop.round_trips_per_sec,
            c.one_hop.p50_us,
            c.one_hop.p99_us,
            c.two_zones.round_trips_per_sec,
            c.two_zones.p50_us,
            c.raw.round_trips_per_sec,
            c.raw.p50_us,
            c.throughput_ratio,
            c.added_p50_over_raw_p50,
            c.two_zones_ratio,
            runs(&c.one_hop_runs),
            runs(&c.two_zones_runs)
        );
    }
    println!(
        "pub/sub {BODY} B windowed, {} msgs: single {:.0} msg/s, one hop {:.0} msg/s (lost {}), ratio {:.2}; two zones {:.0} msg/s (lost {}), ratio {:.2}",
        args.count,
        pubsub.single.msgs_per_sec,
        pubsub.one_hop.msgs_per_sec,
        pubsub.one_hop.lost,
        pubsub.throughput_ratio,
        pubsub.two_zones.msgs_per_sec,
        pubsub.two_zones.lost,
        pubsub.two_zones_ratio,
    );
    println!(
        "pub/sub runs: one hop {} | two zones {}",
        runs(&pubsub.one_hop_runs),
        runs(&pubsub.two_zones_runs)
    );
    Ok(())
}
