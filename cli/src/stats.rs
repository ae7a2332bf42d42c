//! `zhub stats`, once or refreshed every second (`--watch`) with rates per second.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use zhub_protocol::builtin::{ServiceInfo, Stats, SERVICES_SERVICE};

/// Arguments of `zhub stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// Print the counters as one JSON object (with --watch: one object a line).
    #[arg(long)]
    json: bool,
    /// Refresh every second, with rates per second and the busiest services; on a terminal
    /// the view is redrawn in place, elsewhere each refresh is printed as a block.
    #[arg(long)]
    watch: bool,
    /// With --watch, stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    count: Option<u64>,
}

/// How often `--watch` refreshes.
const REFRESH: Duration = Duration::from_secs(1);
/// Services shown by `--watch`, the busiest first.
const TOP_SERVICES: usize = 10;

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

pub(crate) fn run(url: &str, timeout: Duration, args: &StatsArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    if !args.watch {
        let stats = client.stats()?;
        if args.json {
            println!("{}", serde_json::to_string(&stats)?);
        } else {
            print!("{}", counters(url, &client.info().version, &stats));
        }
        return Ok(());
    }
    // Clearing the screen is for a person at a terminal; in a file it is noise.
    let redraw = std::io::stdout().is_terminal() && !args.json;
    let mut before: Option<(Stats, Vec<ServiceInfo>, Instant)> = None;
    let mut shown = 0u64;
    loop {
        let stats = client.stats()?;
        let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &())?;
        let now = Instant::now();
        let mut block = String::new();
        if args.json {
            block = serde_json::to_string(&stats)? + "\n";
        } else {
            if redraw {
                block.push_str("\x1b[H\x1b[2J");
            }
            block.push_str(&counters(url, &client.info().version, &stats));
            let previous = before.as_ref().map(|(s, v, at)| (s, v.as_slice(), *at));
            block.push_str(&rates(&stats, &services, previous, now));
            if !redraw {
                block.push('\n');
            }
        }
        let mut out = std::io::stdout().lock();
        out.write_all(block.as_bytes())?;
        out.flush()?;
        drop(out);
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        before = Some((stats, services, now));
        std::thread::sleep(REFRESH.saturating_sub(now.elapsed()));
    }
}

/// The counters, each under its JSON name, so that what `--json` reports can be found here
/// and a script's field reads the same as the line a person saw.
fn counters(url: &str, version: &str, stats: &Stats) -> String {
    let mut out = String::new();
    let bus = &stats.bus;
    let _ = writeln!(
        out,
        "broker   {} (version {}), up {:.1}s",
        url,
        version,
        stats.uptime_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "memory   rss {}, peak {}",
        mib(stats.rss_bytes),
        mib(stats.peak_rss_bytes)
    );
    let _ = writeln!(
        out,
        "bus      messages_in {}, bytes_in {}, messages_out {}, bytes_out {}, subscribers {}, subscriptions {}, refused_subscriptions {}, fault_delayed {}, fault_held {}, from_peers {}",
        bus.messages_in,
        bus.bytes_in,
        bus.messages_out,
        bus.bytes_out,
        bus.subscribers,
        bus.subscriptions,
        bus.refused_subscriptions,
        bus.fault_delayed,
        bus.fault_held,
        bus.from_peers
    );
    let _ = writeln!(
        out,
        "dropped  slow_subscriber {}, slow_plain_subscriber {}, malformed {}, fault {}, peer {}, forbidden {}, duplicate {}",
        bus.dropped.slow_subscriber,
        bus.dropped.slow_plain_subscriber,
        bus.dropped.malformed,
        bus.dropped.fault,
        bus.dropped.peer,
        bus.dropped.forbidden,
        bus.dropped.duplicate
    );
    let r = &stats.requests;
    let _ = writeln!(
        out,
        "requests received {}, replied {}, malformed {}, unroutable {}, busy {}, timed_out {}, requeued {}, worker_failed {}, workers_expired {}, forbidden {}",
        r.received,
        r.replied,
        r.malformed,
        r.unroutable,
        r.busy,
        r.timed_out,
        r.requeued,
        r.worker_failed,
        r.workers_expired,
        r.forbidden
    );
    out
}

/// Rates per second since the previous refresh (none at the first), and the busiest
/// services.
fn rates(
    stats: &Stats,
    services: &[ServiceInfo],
    before: Option<(&Stats, &[ServiceInfo], Instant)>,
    now: Instant,
) -> String {
    let mut out = String::new();
    let seconds = before.map(|(_, _, at)| now.duration_since(at).as_secs_f64().max(1e-3));
    let per_second = |now: u64, then: Option<u64>| match (seconds, then) {
        (Some(s), Some(t)) => format!("{:.1}", now.saturating_sub(t) as f64 / s),
        _ => "-".to_owned(),
    };
    let then = before.map(|(s, _, _)| s);
    let _ = writeln!(
        out,
        "per sec  messages_in {}, messages_out {}, bytes_in {}, received {}, replied {}",
        per_second(stats.bus.messages_in, then.map(|s| s.bus.messages_in)),
        per_second(stats.bus.messages_out, then.map(|s| s.bus.messages_out)),
        per_second(stats.bus.bytes_in, then.map(|s| s.bus.bytes_in)),
        per_second(stats.requests.received, then.map(|s| s.requests.received)),
        per_second(stats.requests.replied, then.map(|s| s.requests.replied)),
    );
    let served_before = |name: &str| {
        before.and_then(|(_, list, _)| list.iter().find(|s| s.name == name).map(|s| s.served))
    };
    let mut rows: Vec<(&ServiceInfo, u64)> = services
        .iter()
        .map(|s| {
            let delta = served_before(&s.name).map_or(0, |b| s.served.saturating_sub(b));
            (s, delta)
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.served.cmp(&a.0.served)));
    let _ = writeln!(
        out,
        "services {} ({} busiest)\n  {:<32} {:>8} {:>6} {:>8} {:>9} {:>12} {:>9}",
        services.len(),
        TOP_SERVICES.min(services.len()),
        "name",
        "workers",
        "idle",
        "queued",
        "in_flight",
        "served",
        "per_sec"
    );
    for (s, _) in rows.iter().take(TOP_SERVICES) {
        let _ = writeln!(
            out,
            "  {:<32} {:>8} {:>6} {:>8} {:>9} {:>12} {:>9}",
            s.name,
            s.workers,
            s.idle,
            s.queued,
            s.in_flight,
            s.served,
            per_second(s.served, served_before(&s.name))
        );
    }
    out
}
