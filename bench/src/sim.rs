//! `zhub bench sim`: the simulator's kernel, in simulated messages per second on one core,
//! for a 5-node register workload (ABD, no faults), with messages cloned as typed values and
//! again encoded with serde_json as a real transport would; the spread of several runs.
//!
//! A "message" is one delivery: between nodes, and between the gateway and a node. The
//! history is recorded (as in every run); message records and the checker are not.

use std::time::Duration;

use serde::Serialize;
use zhub_sim::{algorithms, SimConfig};

/// Arguments of `zhub bench sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Runs of each case (the figures are their median, minimum and maximum).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Client operations per run.
    #[arg(long, default_value_t = 30_000)]
    ops: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
}

#[derive(Debug, Clone, Serialize)]
struct Case {
    name: &'static str,
    /// Messages delivered per run.
    messages: u64,
    median_msgs_per_sec: f64,
    min_msgs_per_sec: f64,
    max_msgs_per_sec: f64,
    /// Encoded bytes per node message (0 when not encoded).
    bytes_per_message: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    algorithm: &'static str,
    nodes: usize,
    clients: usize,
    ops: u64,
    runs: usize,
    cases: Vec<Case>,
}

fn case(name: &'static str, config: &SimConfig, runs: usize) -> anyhow::Result<Case> {
    let abd = algorithms::find("abd").ok_or_else(|| anyhow::anyhow!("no abd algorithm"))?;
    let mut rates = Vec::new();
    let mut last = None;
    for seed in 0..runs.max(1) as u64 {
        let result = (abd.run)(&SimConfig {
            seed,
            ..config.clone()
        });
        let wall = Duration::from_nanos(result.stats.wall_nanos).as_secs_f64();
        rates.push(result.stats.delivered as f64 / wall.max(1e-9));
        last = Some(result.stats);
    }
    let stats = last.unwrap_or_default();
    let median = crate::median_of(&rates, |r| *r);
    let node_messages = stats.delivered.saturating_sub(2 * config.ops).max(1);
    Ok(Case {
        name,
        messages: stats.delivered,
        median_msgs_per_sec: median,
        min_msgs_per_sec: rates.iter().copied().fold(f64::INFINITY, f64::min),
        max_msgs_per_sec: rates.iter().copied().fold(0.0, f64::max),
        bytes_per_message: stats.bytes as f64 / node_messages as f64,
    })
}

/// Runs the kernel benchmark and prints its figures.
///
/// # Errors
/// None in practice; the signature is the benches' own.
pub(crate) fn run(args: &SimArgs) -> anyhow::Result<()> {
    let config = SimConfig {
        nodes: 5,
        clients: args.clients,
        ops: args.ops,
        ..SimConfig::default()
    };
    let cases = vec![
        case("typed messages", &config, args.runs)?,
        case(
            "serde_json encoded",
            &SimConfig {
                serialize: true,
                ..config.clone()
            },
            args.runs,
        )?,
    ];
    let report = Report {
        bench: "sim",
        algorithm: "abd",
        nodes: config.nodes,
        clients: config.clients,
        ops: config.ops,
        runs: args.runs,
        cases,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "sim kernel: abd, {} nodes, {} clients, {} ops a run, {} runs, one core",
        report.nodes, report.clients, report.ops, report.runs
    );
    for c in &report.cases {
        let bytes = if c.bytes_per_message > 0.0 {
            format!("  {:.0} B/message", c.bytes_per_message)
        } else {
            String::new()
        };
        println!(
            "{:<20} {:>11.0} messages/s  (min {:.0}, max {:.0}; {} messages a run){bytes}",
            c.name, c.median_msgs_per_sec, c.min_msgs_per_sec, c.max_msgs_per_sec, c.messages
        );
    }
    Ok(())
}
