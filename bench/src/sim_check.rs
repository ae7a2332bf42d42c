//! `zhub bench sim-check`: the register linearizability checker's time on a generated
//! history (by default 10,000 operations over 10 keys; the goal is under a second), and on
//! the same history with one read made stale, so that the search must fail and then find the
//! smallest failing part.
//!
//! Generating the histories is not timed. Each is checked `--runs` times; the figures are the
//! median, the fastest and the slowest run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use zhub_sim::check::registers::{check, Verdict};

use crate::register_history::{linearizable, make_stale, Shape};

/// Arguments of `zhub bench sim-check`.
#[derive(Debug, clap::Args)]
pub struct SimCheckArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Operations in each history.
    #[arg(long, default_value_t = 10_000)]
    ops: usize,
    /// Keys (registers) they are spread over.
    #[arg(long, default_value_t = 10)]
    keys: u64,
    /// Processes with an operation outstanding at once.
    #[arg(long, default_value_t = 20)]
    processes: u64,
    /// Fraction of operations that time out (indefinite).
    #[arg(long, default_value_t = 0.02)]
    indefinite: f64,
    /// Seed of the history generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Checks of each history.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The checker's budget, in seconds, per check.
    #[arg(long, default_value_t = 60.0)]
    budget: f64,
}

#[derive(Debug, Serialize)]
struct Case {
    history: &'static str,
    verdict: String,
    ops: usize,
    keys: usize,
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

fn measure(
    name: &'static str,
    history: &zhub_sim::history::History,
    expected: Verdict,
    args: &SimCheckArgs,
) -> anyhow::Result<Case> {
    let budget = Duration::from_secs_f64(args.budget);
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        let report = check(history, budget);
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if report.verdict != expected {
            bail!(
                "the {name} history was found {}, not {expected}: {report}",
                report.verdict
            );
        }
        last = Some(report);
    }
    let report = last.context("no run")?;
    Ok(Case {
        history: name,
        verdict: report.verdict.to_string(),
        ops: report.ops,
        keys: report.keys,
        median_ms: crate::median_of(&times, |t| *t),
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: times.iter().copied().fold(0.0, f64::max),
    })
}

/// Runs `zhub bench sim-check`.
///
/// # Errors
/// A history the checker judged wrongly, or no read to make stale.
pub fn run(args: &SimCheckArgs) -> anyhow::Result<()> {
    if args.keys == 0 || args.processes == 0 {
        bail!("--keys and --processes must be at least 1");
    }
    let shape = Shape {
        ops: args.ops,
        keys: args.keys,
        processes: args.processes,
        indefinite: args.indefinite,
        seed: args.seed,
    };
    let mut history = linearizable(shape);
    let good = measure("linearizable", &history, Verdict::Linearizable, args)?;
    make_stale(&mut history).context("no read in the history could be made stale")?;
    let bad = measure("one stale read", &history, Verdict::NotLinearizable, args)?;
    let cases = [good, bad];
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "bench": "sim-check", "processes": args.processes, "seed": args.seed, "runs": args.runs, "cases": cases })
        );
        return Ok(());
    }
    println!(
        "zhub bench sim-check: register histories of {} operations over {} keys, {} processes, {:.0}% indefinite, seed {}; {} runs each",
        args.ops,
        args.keys,
        args.processes,
        args.indefinite * 100.0,
        args.seed,
        args.runs
    );
    println!(
        "{:<16} {:<18} {:>10} {:>10} {:>10}",
        "history", "verdict", "median ms", "min ms", "max ms"
    );
    for case in &cases {
        println!(
            "{:<16} {:<18} {:>10.1} {:>10.1} {:>10.1}",
            case.history, case.verdict, case.median_ms, case.min_ms, case.max_ms
        );
    }
    Ok(())
}
