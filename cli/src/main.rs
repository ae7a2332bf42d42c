//! `zhub`: the command line for a zhub broker.
//!
//! # Layout
//! - `main.rs` — flags and dispatch.
//! - `pubsub.rs` — `zhub pub`, `zhub sub`.
//! - `stats.rs` — `zhub stats`.
//! - `services.rs` — `zhub request`, `zhub serve`, `zhub services`.
//! - `log.rs` — `zhub log`.
//! - `peers.rs` — `zhub peers`: links to peer brokers.
//! - `kv.rs` — `zhub kv`.
//! - `launch.rs` — `zhub launch`: N processes as one group.
//! - `keygen.rs` — `zhub keygen`: CURVE key pairs and their key files.
//! - `sim.rs` — `zhub sim`: the simulator's algorithms, runs, checks and seed sweeps.
//! - `sim_serve.rs` — `zhub sim serve`: an algorithm's nodes as processes on a broker.
//! - `fault.rs` — `zhub fault`: the broker's fault rules, and partitions of served runs.
//! - `render.rs` — bodies and headers as text and JSON.
//! - `body.rs` — the body conventions of `request` and `serve` (plain, JSON, MessagePack).
//! - `time.rs` — times as RFC 3339 or "10m ago", in and out.
//!
//! `zhub bench` and its hidden helper servers are the `zhub-bench` crate's.

mod body;
mod creds;
mod fault;
mod groups;
mod keygen;
mod kv;
mod launch;
mod log;
mod peers;
mod pubsub;
mod render;
mod services;
mod sim;
mod sim_live;
mod sim_serve;
mod stats;
mod time;
mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use zhub_client::{Client, ClientOptions};
// The parser the broker's flags use too, so that durations read the same in both commands.
pub(crate) use zhub_protocol::duration::parse_duration;

/// Command line for zhub: publish, subscribe, inspect and benchmark a broker.
#[derive(Debug, Parser)]
#[command(name = "zhub", version)]
struct Cli {
    /// The broker's main endpoint; optional: $ZHUB_URL when set, else the default.
    // The variable's value is not shown: unset, clap would print a puzzling `ZHUB_URL=`.
    #[arg(
        long,
        global = true,
        env = "ZHUB_URL",
        hide_env_values = true,
        default_value = zhub_client::DEFAULT_URL
    )]
    url: String,
    /// How long to wait for the broker (e.g. 500ms, 5s, 1m).
    #[arg(long, global = true, value_parser = parse_duration, default_value = "5s")]
    timeout: Duration,
    /// Send requests for built-in services (kv, log, groups, stats...) to the peer broker
    /// of this name, through the broker at --url.
    #[arg(long, global = true, value_name = "NAME")]
    broker: Option<String>,
    #[command(flatten)]
    creds: creds::CredsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish one message on a topic.
    Pub(pubsub::PubArgs),
    /// Print messages published on topics matching the given prefixes or patterns.
    Sub(pubsub::SubArgs),
    /// Show the broker's counters.
    Stats(stats::StatsArgs),
    /// Send one request to a service and print the reply.
    Request(services::RequestArgs),
    /// Serve a service from the shell: echo, or run a command per request.
    Serve(services::ServeArgs),
    /// List services with their workers, queues, served counts and latencies.
    Services(services::ServicesArgs),
    /// Show this broker's links to peer brokers: state, zone, round trip.
    Peers(peers::PeersArgs),
    /// Where each service is served from this broker: local workers, or peers and the
    /// zones a request crosses through each.
    Routes(peers::RoutesArgs),
    /// List process groups with their members, view versions and token holders.
    Groups(groups::GroupsArgs),
    /// The event log: streams, create, append, read, tail, replay, consume, delete, journals.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// The key-value store: get, put, del, cas, incr, list, history, watch.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Start N processes of a command as one process group, their output prefixed by rank.
    Launch(launch::LaunchArgs),
    /// Make a CURVE key pair (for encrypted, authenticated connections).
    Keygen(keygen::KeygenArgs),
    /// Simulate distributed algorithms under faults, deterministically, and check them; or
    /// run their nodes as processes on a broker (`zhub sim serve`).
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Make the broker drop or delay messages on chosen topics (brokers started with
    /// --allow-faults): add, list, clear, and partition/heal a `zhub sim serve` run.
    #[command(subcommand)]
    Fault(fault::FaultCommand),
    /// Measure throughput and latency, beside raw libzmq in the same run.
    #[command(subcommand)]
    Bench(zhub_bench::BenchCommand),
    /// The servers `zhub bench` starts by running this executable again (hidden).
    #[command(flatten)]
    BenchHelper(zhub_bench::Helper),
}

/// The peer broker named by `--broker`, set once at start.
static BROKER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

pub(crate) fn connect(url: &str, timeout: Duration) -> anyhow::Result<Client> {
    let client = creds::client(ClientOptions::new().timeout(timeout)).connect(url)?;
    match BROKER.get().and_then(Option::as_deref) {
        Some(name) => Ok(client.at(name)?),
        None => Ok(client),
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // `zhub sim` reads --timeout as its clients' timeout, with a default of its own.
    let timeout_given = matches.value_source("timeout") == Some(ValueSource::CommandLine);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, as the broker's log.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (its reader went away) is lost; reporting that
        // on the same closed stderr would panic and turn a clean exit into a failure.
        .log_internal_errors(false)
        .init();
    let _ = BROKER.set(cli.broker.clone());
    if let Err(e) = creds::init(&cli.creds) {
        eprintln!("zhub: error: {e:#}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Pub(args) => pubsub::publish(&cli.url, cli.timeout, &args),
        Command::Sub(args) => pubsub::subscribe(&cli.url, cli.timeout, &args),
        Command::Stats(args) => stats::run(&cli.url, cli.timeout, &args),
        Command::Request(args) => services::request(&cli.url, cli.timeout, &args),
        Command::Serve(args) => services::serve(&cli.url, &args),
        Command::Services(args) => services::list(&cli.url, cli.timeout, &args),
        Command::Groups(args) => groups::list(&cli.url, cli.timeout, &args),
        Command::Peers(args) => peers::list(&cli.url, cli.timeout, &args),
        Command::Routes(args) => peers::routes(&cli.url, cli.timeout, &args),
        Command::Log(command) => log::run(&cli.url, cli.timeout, &command),
        Command::Kv(command) => kv::run(&cli.url, cli.timeout, &command),
        Command::Launch(args) => launch::run(&cli.url, cli.timeout, &args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Sim(command) => sim::run(&cli.url, &command, timeout_given.then_some(cli.timeout)),
        Command::Fault(command) => fault::run(&cli.url, cli.timeout, &command),
        Command::Bench(command) => zhub_bench::run(&command),
        Command::BenchHelper(helper) => zhub_bench::serve(&helper),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zhub: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
