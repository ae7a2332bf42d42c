//! Ping/pong as requests: a `pong` service answers every ping, and a client sends pings and
//! times each round trip through the broker.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example rpc_ping_pong
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::time::Instant;

use clap::Parser;
use serde::{Deserialize, Serialize};
use zhub_worker::Worker;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    round: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {
    round: u32,
    served_by: u32,
}

const ROUNDS: u32 = 5;

/// A `pong` service and a client timing each ping's round trip, five rounds (or --forever).
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {
    #[command(flatten)]
    forever: zhub_examples::Forever,
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    let worker = Worker::connect(&zhub_examples::broker_url(), "pong")?;
    let stopper = worker.stopper();
    let pid = std::process::id();
    let service = std::thread::spawn(move || {
        worker.run_typed(move |ping: Ping| Pong {
            round: ping.round,
            served_by: pid,
        })
    });

    let mut client = zhub_examples::connect()?;
    let rounds = if args.forever.forever {
        u32::MAX
    } else {
        ROUNDS
    };
    for round in 1..=rounds {
        let sent = Instant::now();
        let pong: Pong = client.request("pong", &Ping { round })?;
        println!(
            "ping #{round} -> pong #{} from process {} in {} µs",
            pong.round,
            pong.served_by,
            sent.elapsed().as_micros()
        );
    }
    stopper.stop();
    service
        .join()
        .map_err(|_| anyhow::anyhow!("pong service panicked"))??;
    println!(
        "{ROUNDS} request/reply rounds through {}",
        zhub_examples::broker_url()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
