//! Four processes share the key-value store: each sets its own key and reads it back 1000
//! times, checking that every read returns the value just written. (The store they replace
//! rewrote a JSON file on every set and lost writes between processes.) Its keys are under
//! `kv_clients.`, deleted at the end.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example kv_clients
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::process::Command;
use std::time::Instant;

use clap::Parser;

const PREFIX: &str = "kv_clients.";

/// Processes that each set their own key and read it back, checking every read.
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {
    /// Processes to start.
    #[arg(long, default_value_t = 4, value_name = "N")]
    processes: usize,
    /// Puts and reads per process.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    rounds: u32,
    /// Run as process N (what the first process starts its copies with).
    #[arg(long, value_name = "N", hide = true)]
    client: Option<usize>,
}

/// One process's work: set and read back its own key.
fn client(n: usize, rounds: u32) -> anyhow::Result<()> {
    let mut client = zhub_examples::connect()?;
    let key = format!("{PREFIX}process-{n}");
    let start = Instant::now();
    for round in 0..rounds {
        let value = format!("process {n} round {round}");
        client.kv().put(&key, &value)?;
        let read: Option<String> = client.kv().get(&key)?;
        anyhow::ensure!(
            read.as_deref() == Some(value.as_str()),
            "process {n}: wrote \"{value}\", read {}",
            read.as_deref()
                .map_or("nothing".to_owned(), |r| format!("\"{r}\""))
        );
    }
    let elapsed = start.elapsed();
    println!(
        "process {n}: {rounds} puts and reads of {key}, all equal ({:.0} round trips/s)",
        2.0 * f64::from(rounds) / elapsed.as_secs_f64()
    );
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    if let Some(n) = args.client {
        return client(n, args.rounds);
    }
    let processes = args.processes;
    anyhow::ensure!(processes > 0, "--processes must be at least 1");
    let mut admin = zhub_examples::connect()?;
    // The parent: start the clients as processes of this same program, wait for them all.
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..processes)
        .map(|n| {
            Command::new(&exe)
                .args(["--client", &n.to_string()])
                .args(["--rounds", &args.rounds.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    let keys = admin.kv().list_all(PREFIX)?;
    for entry in &keys {
        admin.kv().delete(&entry.key)?;
    }
    anyhow::ensure!(failed == 0, "{failed} of {processes} processes failed");
    println!(
        "{processes} processes x {} rounds: every read equal to its write; {} keys under {PREFIX}, deleted",
        args.rounds,
        keys.len()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
