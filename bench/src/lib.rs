//! zhub-bench: zhub's benchmarks, each beside raw libzmq or the disk doing the same thing in
//! the same run, reported as ratios. The `zhub` command runs them as `zhub bench pubsub`,
//! `request`, `federation`, `log`, `kv`, `sim` and `sim-check` (the simulator's kernel and checker, which
//! have no raw counterpart).
//!
//! A bench starts its servers (a zhub broker, a raw libzmq proxy or router) as child
//! processes by running the current executable again with one of the [`Helper`] commands,
//! so that it measures separate processes without needing another binary to be built. An
//! executable that calls [`run`] therefore also parses [`Helper`] at the top level of its
//! command line, flattened and hidden, and hands it to [`serve`]:
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(clap::Parser)]
//! enum Cli {
//!     #[command(subcommand)]
//!     Bench(zhub_bench::BenchCommand),
//!     #[command(flatten)]
//!     Helper(zhub_bench::Helper),
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     match Cli::parse() {
//!         Cli::Bench(command) => zhub_bench::run(&command),
//!         Cli::Helper(helper) => zhub_bench::serve(&helper),
//!     }
//! }
//! ```
//!
//! # Layout
//! - `server` — a server child process, its endpoints, and the `bench-broker` helper.
//! - `pubsub` — `bench pubsub`, beside raw libzmq's proxy (the `bench-raw-proxy` helper).
//! - `request` — `bench request`, beside a raw ROUTER/ROUTER broker (the `bench-raw-router`
//!   helper).
//! - `federation` — `bench federation`: requests and pub/sub across a peer hop, beside one
//!   broker and a raw ROUTER hop.
//! - `log` — `bench log`, in-process and through a broker, beside the disk (and Redis's
//!   `XADD`, `--peer redis`).
//! - `engine` — the event log engine in-process beside the disk's own rates, for `bench log`.
//! - `kv` — `bench kv`, beside a built-in service's round trip (and Redis, `--peer redis`).
//! - `redis` — the Redis peer of `bench kv` and `bench log`: a `redis-server` child driven by
//!   `redis-benchmark`.
//! - `sim` — `bench sim`: the simulator's kernel, in simulated messages per second.
//! - `sim_check` — `bench sim-check`, the register linearizability checker's time.
//! - `register_history` — the generated register histories `bench sim-check` checks.
#![deny(missing_docs)]

mod engine;
mod federation;
mod kv;
mod log;
mod pubsub;
mod redis;
mod register_history;
mod request;
mod server;
mod sim;
mod sim_check;

pub use federation::FederationArgs;
pub use kv::KvArgs;
pub use log::LogArgs;
pub use pubsub::{PubsubArgs, RawProxyArgs};
pub use request::{RawRouterArgs, RequestArgs};
pub use server::BrokerArgs;
pub use sim::SimArgs;
pub use sim_check::SimCheckArgs;

/// `zhub bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Publish -> subscribe throughput through zhub and through raw libzmq
    /// (PUB -> XSUB/XPUB proxy -> SUB), 100 B and 16 KiB, over tcp and ipc.
    Pubsub(PubsubArgs),
    /// Requests and pub/sub across one peer hop between two brokers, beside the same
    /// clients and workers on one broker and a raw libzmq ROUTER hop, in the same run.
    Federation(federation::FederationArgs),
    /// Request round trips through zhub to 2 echo workers, and through a minimal raw libzmq
    /// ROUTER/ROUTER broker to 2 raw workers: 1 client, 8 clients, 8 clients x 16 in flight;
    /// and 8 clients x 1 and x 16 to workers of credit 16 on both sides.
    Request(RequestArgs),
    /// The event log: 100-byte appends under policies never and always, by 1 and 8
    /// appenders, through the broker and against the engine in-process, and replay; beside
    /// this disk's own write and fdatasync rates; the broker's memory over 1 GB.
    Log(LogArgs),
    /// The key-value store: get and put (policies never and always) with 1 and 50 clients,
    /// 1 and 16 requests in flight each, beside a round trip to a built-in service that does
    /// no work; and the broker's memory holding 1M keys.
    Kv(KvArgs),
    /// The simulator's kernel: simulated messages per second on one core for a 5-node ABD
    /// register workload, typed and serde_json-encoded, with the spread of several runs.
    Sim(SimArgs),
    /// The register linearizability checker: a generated 10,000-operation history over 10
    /// keys, linearizable, and the same with one stale read.
    SimCheck(SimCheckArgs),
}

/// The servers a bench runs in child processes: hidden commands of the executable that calls
/// [`run`], which the benches start by running that executable again under these names.
#[derive(Debug, clap::Subcommand)]
pub enum Helper {
    /// Runs a broker for `zhub bench` (internal).
    #[command(hide = true)]
    BenchBroker(Box<BrokerArgs>),
    /// Runs a raw libzmq XSUB/XPUB proxy for `zhub bench` (internal).
    #[command(hide = true)]
    BenchRawProxy(RawProxyArgs),
    /// Runs a raw libzmq ROUTER/ROUTER broker for `zhub bench` (internal).
    #[command(hide = true)]
    BenchRawRouter(RawRouterArgs),
}

/// Runs one bench and prints its figures, as a table or as one JSON object.
///
/// # Errors
/// A server that would not start, a socket or disk error, a run that did not complete.
pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Pubsub(args) => pubsub::run(args),
        BenchCommand::Request(args) => request::run(args),
        BenchCommand::Federation(args) => federation::run(args),
        BenchCommand::Log(args) => log::run(args),
        BenchCommand::Kv(args) => kv::run(args),
        BenchCommand::Sim(args) => sim::run(args),
        BenchCommand::SimCheck(args) => sim_check::run(args),
    }
}

/// Runs one helper server until the bench that started it ends it.
///
/// # Errors
/// An endpoint that cannot be bound, a broker that cannot start.
pub fn serve(helper: &Helper) -> anyhow::Result<()> {
    match helper {
        Helper::BenchBroker(args) => server::serve_broker(args),
        Helper::BenchRawProxy(args) => pubsub::serve_raw_proxy(args),
        Helper::BenchRawRouter(args) => request::serve_raw_router(args),
    }
}

/// The median of one field over several runs (the upper middle for an even count).
pub(crate) fn median_of<T>(runs: &[T], field: fn(&T) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.iter().map(field).collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
