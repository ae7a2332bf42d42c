//! `zhub sim`: list the simulator's algorithms, run one under faults and check what its
//! clients saw, or sweep many seeds on every core.
//!
//! A sweep runs one child process per core, each this executable again as
//! `zhub sim run ... --shard K/N`, which runs every N-th seed of the range and prints one line
//! per seed (`seed S ok|FAIL HASH VERDICT`); the parent merges them and prints each failing
//! seed with the command that replays it.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use zhub_sim::algorithms::{self, Algorithm};
use zhub_sim::check::{registers, stats, workloads};
use zhub_sim::faults::{parse_plan, Latency, LinkConfig, Nemesis, NemesisKind, Plan};
use zhub_sim::{RunResult, SimConfig, Workload};

/// How long the register checker may search before it answers "unknown".
const CHECK_BUDGET: Duration = Duration::from_secs(10);
/// Limits on a run's shape.
const MAX_NODES: usize = 1000;
const MAX_CLIENTS: usize = 100_000;
/// A client's timeout when `--timeout` is not given (the global default is the broker's).
const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(500);

/// `zhub sim` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SimCommand {
    /// The algorithms, with the workload each serves.
    List,
    /// Run an algorithm under faults, print a summary and the checker's verdict (exit 1 when
    /// the check fails). `--timeout` is each client operation's timeout here (default 500ms).
    Run(Box<RunArgs>),
    /// Run an algorithm's nodes as processes on the broker at --url, with clients over the
    /// broker, and check their history as `run` does (exit 1 when the check fails). The
    /// broker's fault rules act on the nodes' messages: `zhub fault partition --run RUN ...`.
    /// `--timeout` is each client operation's timeout here (default 500ms).
    Serve(Box<crate::sim_serve::ServeArgs>),
    /// One node of `zhub sim serve` (started by it).
    #[command(hide = true)]
    Node(crate::sim_serve::NodeArgs),
}

/// Arguments of `zhub sim run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// The algorithm (see `zhub sim list`).
    pub(crate) algorithm: String,
    /// Nodes.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Operations, in all.
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// The seed of the run.
    #[arg(long, default_value_t = 0, conflicts_with = "seeds")]
    seed: u64,
    /// Sweep the seeds FIRST..LAST (inclusive) on every core, printing each failing seed.
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<(u64, u64)>,
    /// The workload (default: the algorithm's): register, counter, broadcast, unique-ids,
    /// append-log.
    #[arg(long, value_parser = parse_workload)]
    workload: Option<Workload>,
    /// Keys of the register workload.
    #[arg(long, default_value_t = 10)]
    keys: u64,
    /// Link latency: 5ms (constant), 1ms..10ms (uniform), exp:1ms,5ms (floor, mean above it).
    #[arg(long, value_parser = Latency::parse, default_value = "1ms..10ms")]
    latency: Latency,
    /// The chance that a message is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// The chance that a message between nodes is delivered twice.
    #[arg(long, default_value_t = 0.0)]
    dup: f64,
    /// The chance that a message is held back by one more latency draw.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// Faults injected again and again: partition, crash, pause, skew (comma-separated), or
    /// none.
    #[arg(long, default_value = "none")]
    nemesis: String,
    /// The nemesis's mean pause between faults, and their mean length.
    #[arg(long, value_parser = zhub_sim::faults::parse_duration, default_value = "1s")]
    nemesis_interval: Duration,
    /// Faults at fixed times, one per line (see the zhub-sim faults docs).
    #[arg(long)]
    nemesis_file: Option<PathBuf>,
    /// Write the history, as JSON lines, to this file.
    #[arg(long, conflicts_with = "seeds")]
    pub(crate) history: Option<PathBuf>,
    /// Write the run as one self-contained HTML page: the history as a timeline with the
    /// linearization or the violation marked, and a Lamport diagram of the messages.
    #[arg(long, value_name = "FILE.html", conflicts_with = "seeds")]
    pub(crate) report: Option<PathBuf>,
    /// Run the seed twice and fail unless both runs are the same, event for event.
    #[arg(long)]
    check_determinism: bool,
    /// Encode every node message with serde_json, as a real transport would.
    #[arg(long)]
    serialize: bool,
    /// Serve the run live in a web page at IP:PORT (port 0: any free one, printed): nodes,
    /// messages in flight, clients, and the history; pause, step, speed; a click drops a
    /// message, cuts or heals a link, crashes or restarts a node. Each click is an action of
    /// the run's trace, and the command that replays the run is printed when it ends.
    #[arg(long, value_name = "IP:PORT", conflicts_with_all = ["seeds", "check_determinism"])]
    pub(crate) serve: Option<String>,
    /// With --serve: where to write the schedule file that replays the run's actions
    /// (default zhub-sim-ALGORITHM-seedSEED.txt in the current directory; written only when
    /// the page took actions).
    #[arg(long, value_name = "FILE", requires = "serve")]
    pub(crate) save_actions: Option<PathBuf>,
    /// Child processes of a sweep (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only seeds S of the range with (S - FIRST) % N == K, one line each (internal).
    #[arg(long, hide = true, value_parser = parse_shard, requires = "seeds")]
    shard: Option<(u64, u64)>,
}

fn parse_seeds(text: &str) -> Result<(u64, u64), String> {
    let (first, last) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?}: expected FIRST..LAST, e.g. 1..1000"))?;
    let first: u64 = first
        .parse()
        .map_err(|_| format!("{first:?} is not a seed"))?;
    let last: u64 = last
        .trim_start_matches('=')
        .parse()
        .map_err(|_| format!("{last:?} is not a seed"))?;
    if last < first {
        return Err(format!("{text:?}: the range is empty"));
    }
    Ok((first, last))
}

fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let (k, n) = text.split_once('/').ok_or("expected K/N")?;
    let (k, n): (u64, u64) = (
        k.parse().map_err(|_| "bad K")?,
        n.parse().map_err(|_| "bad N")?,
    );
    if n == 0 || k >= n {
        return Err("expected K/N with K < N".into());
    }
    Ok((k, n))
}

fn parse_workload(text: &str) -> Result<Workload, String> {
    Workload::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
        format!("unknown workload {text:?} ({})", names.join(", "))
    })
}

/// Runs a `zhub sim` command against the broker at `url` (for `serve` and `node`);
/// `timeout` is `--timeout` when it was given.
pub(crate) fn run(
    url: &str,
    command: &SimCommand,
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let broker_timeout = timeout.unwrap_or(Duration::from_secs(5));
    match command {
        SimCommand::Serve(args) => crate::sim_serve::serve(
            url,
            broker_timeout,
            timeout.unwrap_or(DEFAULT_OP_TIMEOUT),
            args,
        ),
        SimCommand::Node(args) => crate::sim_serve::node(url, broker_timeout, args),
        SimCommand::List => {
            list();
            Ok(())
        }
        SimCommand::Run(args) => {
            let algorithm = algorithms::find(&args.algorithm).ok_or_else(|| {
                anyhow!("unknown algorithm {:?} (see zhub sim list)", args.algorithm)
            })?;
            let config = config(args, algorithm, timeout)?;
            match (args.seeds, args.shard) {
                (Some(range), Some(shard)) => run_shard(algorithm, &config, range, shard),
                (Some(range), None) => sweep(args, range),
                (None, _) if args.serve.is_some() => {
                    crate::sim_live::serve(args, algorithm, config)
                }
                (None, _) => run_one(args, algorithm, &config),
            }
        }
    }
}

fn list() {
    println!(
        "{:<16} {:<11} {:<8} about",
        "algorithm", "workload", "correct"
    );
    for a in algorithms::ALL {
        let correct = if a.correct { "yes" } else { "no" };
        println!(
            "{:<16} {:<11} {:<8} {}",
            a.name,
            a.workload.name(),
            correct,
            a.about
        );
    }
}

pub(crate) fn config(
    args: &RunArgs,
    algorithm: &Algorithm,
    timeout: Option<Duration>,
) -> anyhow::Result<SimConfig> {
    for (name, p) in [
        ("loss", args.loss),
        ("dup", args.dup),
        ("reorder", args.reorder),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("--{name} is a chance, from 0 to 1: {p}");
        }
    }
    if args.nodes == 0 || args.clients == 0 {
        bail!("a run needs at least one node and one client");
    }
    // The kernel keeps a link matrix of nodes squared; beyond this a run is a mistake.
    if args.nodes > MAX_NODES || args.clients > MAX_CLIENTS {
        bail!("at most {MAX_NODES} nodes and {MAX_CLIENTS} clients");
    }
    let plan = match &args.nemesis_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            parse_plan(&text, args.nodes).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => Plan::default(),
    };
    Ok(SimConfig {
        nodes: args.nodes,
        clients: args.clients,
        ops: args.ops,
        seed: args.seed,
        workload: args.workload.unwrap_or(algorithm.workload),
        keys: args.keys,
        timeout: timeout.unwrap_or(DEFAULT_OP_TIMEOUT),
        link: LinkConfig {
            latency: args.latency,
            loss: args.loss,
            duplicate: args.dup,
            reorder: args.reorder,
        },
        nemesis: Nemesis {
            kinds: NemesisKind::parse_list(&args.nemesis).map_err(|e| anyhow!("--nemesis: {e}"))?,
            interval: args.nemesis_interval,
            schedule: plan.faults,
        },
        actions: plan.actions,
        serialize: args.serialize,
        // The report and the live page draw every message; other runs need not keep them.
        record_messages: args.report.is_some() || args.serve.is_some(),
        ..SimConfig::default()
    })
}

/// What the checker said of a run.
pub(crate) struct Judgement {
    /// The check passed.
    pub ok: bool,
    /// One line: the verdict and its reason.
    pub verdict: String,
    /// The register checker's report, for a register workload.
    pub register: Option<registers::RegisterReport>,
}

/// Checks a run's history with its workload's checker.
pub(crate) fn judge(config: &SimConfig, result: &RunResult) -> Judgement {
    let history = &result.history;
    match config.workload {
        Workload::Register => {
            let report = registers::check(history, CHECK_BUDGET);
            Judgement {
                ok: report.verdict == registers::Verdict::Linearizable,
                verdict: report.to_string(),
                register: Some(report),
            }
        }
        workload => {
            let report = match workload {
                Workload::Counter => workloads::counter(history),
                Workload::Broadcast => {
                    let nodes: Vec<u64> = (0..config.nodes as u64).collect();
                    workloads::broadcast(history, &nodes)
                }
                Workload::UniqueIds => workloads::unique_ids(history),
                _ => workloads::append_log(history),
            };
            Judgement {
                ok: report.ok,
                verdict: format!("{} check: {report}", workload.name()),
                register: None,
            }
        }
    }
}

fn run_one(args: &RunArgs, algorithm: &Algorithm, config: &SimConfig) -> anyhow::Result<()> {
    let result = (algorithm.run)(config);
    if args.check_determinism {
        let again = (algorithm.run)(config);
        let same = again.stats.trace_hash == result.stats.trace_hash
            && again.history == result.history
            && RunStatsSansWall::of(&again) == RunStatsSansWall::of(&result);
        if !same {
            bail!(
                "seed {} is not deterministic: trace {:016x} then {:016x}",
                config.seed,
                result.stats.trace_hash,
                again.stats.trace_hash
            );
        }
    }
    if let Some(path) = &args.history {
        write_history(path, &result)?;
    }
    let judgement = judge(config, &result);
    if let Some(path) = &args.report {
        let title = format!("zhub sim: {}, seed {}", algorithm.name, config.seed);
        write_report(path, &title, &result, &judgement)?;
    }
    print_summary(algorithm, config, &result);
    if args.check_determinism {
        println!("determinism  the same run twice, trace and history");
    }
    println!("check        {}", judgement.verdict);
    if !judgement.ok {
        bail!(
            "the check failed; replay with: {}",
            replay(args, config.seed)
        );
    }
    Ok(())
}

/// Writes a run's history, as JSON lines, to `path`.
pub(crate) fn write_history(path: &Path, result: &RunResult) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    result
        .history
        .write_jsonl(BufWriter::new(file))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a run as one HTML page to `path`, with the checker's findings marked.
pub(crate) fn write_report(
    path: &Path,
    title: &str,
    result: &RunResult,
    judgement: &Judgement,
) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    zhub_sim::report::write_html(
        BufWriter::new(file),
        title,
        &result.history,
        &result.messages,
        judgement.register.as_ref(),
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

/// A run's figures but for its wall time, which alone may differ between two runs.
#[derive(PartialEq)]
struct RunStatsSansWall(zhub_sim::RunStats);

impl RunStatsSansWall {
    fn of(result: &RunResult) -> Self {
        RunStatsSansWall(zhub_sim::RunStats {
            wall_nanos: 0,
            ..result.stats.clone()
        })
    }
}

pub(crate) fn print_summary(algorithm: &Algorithm, config: &SimConfig, result: &RunResult) {
    let s = &result.stats;
    let nemesis: Vec<&str> = config
        .nemesis
        .kinds
        .iter()
        .filter_map(|k| {
            NemesisKind::ALL
                .iter()
                .find(|(kind, _)| kind == k)
                .map(|(_, n)| *n)
        })
        .collect();
    println!(
        "{}: {} nodes, {} clients, {} workload, seed {}",
        algorithm.name, config.nodes, config.clients, config.workload, config.seed
    );
    println!(
        "network      latency {}, loss {}, dup {}, reorder {}; nemesis {}{}",
        config.link.latency,
        config.link.loss,
        config.link.duplicate,
        config.link.reorder,
        if nemesis.is_empty() {
            "none".to_string()
        } else {
            nemesis.join(",")
        },
        match (config.nemesis.schedule.len(), result.actions.len()) {
            (0, 0) => String::new(),
            (scheduled, 0) => format!(" + {scheduled} scheduled"),
            (0, actions) => format!(" + {actions} actions"),
            (scheduled, actions) => format!(" + {scheduled} scheduled + {actions} actions"),
        }
    );
    println!("{}", ops_line(s));
    println!(
        "messages     {} sent, {} delivered, {} dropped, {} duplicated",
        s.sent, s.delivered, s.dropped, s.duplicated
    );
    println!("faults       {}", s.faults);
    let sim = Duration::from_nanos(s.sim_time);
    let wall = Duration::from_nanos(s.wall_nanos);
    println!(
        "time         {:.3?} simulated in {:.1?} of wall time ({:.0} messages/s)",
        sim,
        wall,
        s.delivered as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!("trace        {:016x}", s.trace_hash);
    print_history_stats(&result.history);
}

/// The operations' outcomes, as `zhub sim run` and `zhub sim serve` print them.
pub(crate) fn ops_line(s: &zhub_sim::RunStats) -> String {
    let invoked = s.ops_ok + s.ops_fail + s.ops_info;
    format!(
        "ops          {invoked}: {} ok, {} fail, {} info",
        s.ops_ok, s.ops_fail, s.ops_info
    )
}

/// The history's availability and latency figures, as `zhub sim run` and `zhub sim serve`
/// print them.
pub(crate) fn print_history_stats(history: &zhub_sim::history::History) {
    let summary = stats::summarise(history).to_string();
    for (i, line) in summary.lines().enumerate() {
        let head = if i == 0 { "stats" } else { "" };
        println!("{head:<12} {line}");
    }
}

/// The command that replays one seed of a sweep, or a failed run.
fn replay(args: &RunArgs, seed: u64) -> String {
    let _ = args;
    let mut words = command_without(&["--seeds", "--seed", "--shard", "--jobs"]);
    words.push(format!("--seed {seed}"));
    words.join(" ")
}

/// This command's words, `zhub` first, without the flags named (each with its value),
/// quoted where they hold a space.
pub(crate) fn command_without(flags: &[&str]) -> Vec<String> {
    let mut words = vec!["zhub".to_string()];
    let mut skip = false;
    for arg in std::env::args().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        let flag = arg.split('=').next().unwrap_or("");
        if flags.contains(&flag) {
            skip = !arg.contains('=');
            continue;
        }
        words.push(if arg.contains(' ') {
            format!("'{arg}'")
        } else {
            arg
        });
    }
    words
}

/// A child of a sweep: every N-th seed, one line each.
fn run_shard(
    algorithm: &Algorithm,
    config: &SimConfig,
    (first, last): (u64, u64),
    (k, n): (u64, u64),
) -> anyhow::Result<()> {
    let mut seed = first + k;
    while seed <= last {
        let config = SimConfig {
            seed,
            ..config.clone()
        };
        let result = (algorithm.run)(&config);
        let judgement = judge(&config, &result);
        let verdict = judgement.verdict.replace('\n', " ");
        println!(
            "seed {seed} {} {:016x} {verdict}",
            if judgement.ok { "ok" } else { "FAIL" },
            result.stats.trace_hash
        );
        seed += n;
    }
    Ok(())
}

/// Sweeps a range of seeds on `--jobs` child processes and prints the failing ones.
fn sweep(args: &RunArgs, (first, last): (u64, u64)) -> anyhow::Result<()> {
    let seeds = last - first + 1;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256) as u64;
    let jobs = jobs.min(seeds);
    let exe = std::env::current_exe().context("cannot find the zhub executable")?;
    let base: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--jobs="))
        .collect();
    let started = std::time::Instant::now();
    let mut children = Vec::new();
    for k in 0..jobs {
        let mut child_args = base.clone();
        // A `--jobs N` given as two words leaves N behind; drop it too.
        if let Some(i) = child_args.iter().position(|a| a == "--jobs") {
            child_args.drain(i..(i + 2).min(child_args.len()));
        }
        child_args.push(format!("--shard={k}/{jobs}"));
        let child = Command::new(&exe)
            .args(&child_args)
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a sweep process")?;
        children.push(child);
    }
    let mut readers = Vec::new();
    for child in &mut children {
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        readers.push(std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        }));
    }
    let mut lines = Vec::new();
    for reader in readers {
        lines.extend(
            reader
                .join()
                .map_err(|_| anyhow!("a sweep reader panicked"))?,
        );
    }
    for mut child in children {
        child.wait()?;
    }
    let mut results: Vec<(u64, bool, String)> = lines
        .iter()
        .filter_map(|line| {
            let mut words = line.splitn(5, ' ');
            let (_, seed, status) = (words.next()?, words.next()?, words.next()?);
            let _hash = words.next()?;
            let verdict = words.next().unwrap_or("").to_string();
            Some((seed.parse().ok()?, status == "ok", verdict))
        })
        .collect();
    results.sort_by_key(|(seed, _, _)| *seed);
    let failed: Vec<&(u64, bool, String)> = results.iter().filter(|(_, ok, _)| !ok).collect();
    for (seed, _, verdict) in &failed {
        println!("seed {seed}: {verdict}");
        println!("  replay: {}", replay(args, *seed));
    }
    println!(
        "{}: {} seeds ({first}..{last}) on {jobs} processes in {:.1?}: {} passed, {} failed",
        args.algorithm,
        results.len(),
        started.elapsed(),
        results.len() - failed.len(),
        failed.len()
    );
    if results.len() as u64 != seeds {
        bail!(
            "only {} of {seeds} seeds reported (a sweep process failed)",
            results.len()
        );
    }
    if !failed.is_empty() {
        bail!("{} of {seeds} seeds failed the check", failed.len());
    }
    Ok(())
}
