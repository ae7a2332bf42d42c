//! `zhub stats`.

use std::time::Duration;

/// Arguments of `zhub stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// Print the counters as one JSON object.
    #[arg(long)]
    json: bool,
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

pub(crate) fn run(url: &str, timeout: Duration, args: &StatsArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let stats = client.stats()?;
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
        return Ok(());
    }
    let bus = &stats.bus;
    println!(
        "broker   {} (version {}), up {:.1}s",
        url,
        client.info().version,
        stats.uptime_ms as f64 / 1000.0
    );
    println!(
        "memory   rss {}, peak {}",
        mib(stats.rss_bytes),
        mib(stats.peak_rss_bytes)
    );
    // Each counter under its JSON name, so that what `--json` reports can be found here and
    // a script's field reads the same as the line a person saw.
    println!(
        "bus      messages_in {}, bytes_in {}, messages_out {}, bytes_out {}, subscribers {}, subscriptions {}, refused_subscriptions {}",
        bus.messages_in,
        bus.bytes_in,
        bus.messages_out,
        bus.bytes_out,
        bus.subscribers,
        bus.subscriptions,
        bus.refused_subscriptions
    );
    println!(
        "dropped  slow_subscriber {}, slow_plain_subscriber {}, malformed {}",
        bus.dropped.slow_subscriber, bus.dropped.slow_plain_subscriber, bus.dropped.malformed
    );
    let r = &stats.requests;
    println!(
        "requests received {}, replied {}, malformed {}, unroutable {}, busy {}, timed_out {}, requeued {}, worker_failed {}, workers_expired {}",
        r.received,
        r.replied,
        r.malformed,
        r.unroutable,
        r.busy,
        r.timed_out,
        r.requeued,
        r.worker_failed,
        r.workers_expired
    );
    Ok(())
}
