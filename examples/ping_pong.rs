//! Ping/pong over the bus: two services, each with its own client, exchange pings and pongs
//! through the broker, on the topics `ping_pong.ping` and `ping_pong.pong`.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example ping_pong            # 5 rounds, then exits 0
//! cargo run --release --example ping_pong -- --forever
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::sync::mpsc;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Two services exchange pings and pongs over the bus, five rounds (or --forever).
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {
    #[command(flatten)]
    forever: zhub_examples::Forever,
}

const PINGS: &str = "ping_pong.ping";
const PONGS: &str = "ping_pong.pong";

#[derive(Debug, Serialize, Deserialize)]
struct Ball {
    round: u64,
    hit: String,
}

const ROUNDS: u64 = 5;

/// Answers every ping with a pong.
fn service_pong(ready: mpsc::Sender<()>, rounds: Option<u64>) -> anyhow::Result<()> {
    let mut client = zhub_examples::connect()?;
    let mut pings = client.subscribe(&[PINGS])?;
    // subscribe() returns once the subscription is live through the broker, so the ping
    // service may start at once: no sleep, no lost first ping.
    ready.send(())?;
    let mut served = 0;
    while rounds.is_none_or(|n| served < n) {
        let ping = pings.recv()?;
        let ball: Ball = ping.decode()?;
        println!(
            "pong service got {} #{} (lamport {})",
            ball.hit,
            ball.round,
            ping.lamport()
        );
        client.publish(
            PONGS,
            &Ball {
                round: ball.round,
                hit: "pong".into(),
            },
        )?;
        served += 1;
    }
    Ok(())
}

/// Sends a ping, waits for its pong, and again.
fn service_ping(rounds: Option<u64>) -> anyhow::Result<()> {
    let mut client = zhub_examples::connect()?;
    let mut pongs = client.subscribe(&[PONGS])?;
    let mut round = 1;
    while rounds.is_none_or(|n| round <= n) {
        client.publish(
            PINGS,
            &Ball {
                round,
                hit: "ping".into(),
            },
        )?;
        let pong = pongs.recv()?;
        let ball: Ball = pong.decode()?;
        println!(
            "ping service got {} #{} (lamport {})",
            ball.hit,
            ball.round,
            pong.lamport()
        );
        round += 1;
    }
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    let rounds = (!args.forever.forever).then_some(ROUNDS);
    let (ready_tx, ready_rx) = mpsc::channel();
    let pong = std::thread::spawn(move || service_pong(ready_tx, rounds));
    if ready_rx.recv().is_err() {
        // The pong service failed before it was ready: report its error.
        return pong
            .join()
            .map_err(|_| anyhow::anyhow!("pong service panicked"))?;
    }
    service_ping(rounds)?;
    pong.join()
        .map_err(|_| anyhow::anyhow!("pong service panicked"))??;
    println!(
        "{ROUNDS} rounds of ping/pong through {}",
        zhub_examples::broker_url()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
