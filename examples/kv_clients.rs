//! Four processes share the key-value store: each sets its own key and reads it back 1000
//! times, checking that every read returns the value just written. (The store they replace
//! rewrote a JSON file on every set and lost writes between processes.)
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example kv_clients
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::process::Command;
use std::time::Instant;

const PROCESSES: usize = 4;
const ROUNDS: u32 = 1000;

/// One process's work: set and read back its own key.
fn client(n: usize) -> anyhow::Result<()> {
    let mut client = zhub_examples::connect()?;
    let key = format!("kv_clients.process-{n}");
    let start = Instant::now();
    for round in 0..ROUNDS {
        let value = format!("process {n} round {round}");
        client.kv().put(&key, &value)?;
        let read: Option<String> = client.kv().get(&key)?;
        anyhow::ensure!(
            read.as_deref() == Some(value.as_str()),
            "process {n}: wrote {value:?}, read {read:?}"
        );
    }
    let elapsed = start.elapsed();
    println!(
        "process {n}: {ROUNDS} puts and reads of {key}, all equal ({:.0} round trips/s)",
        2.0 * f64::from(ROUNDS) / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(n) = args.iter().position(|a| a == "--client") {
        return client(args[n + 1].parse()?);
    }
    // The parent: start the clients as processes of this same program, wait for them all.
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            Command::new(&exe)
                .args(["--client", &n.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {PROCESSES} processes failed");
    let mut client = zhub_examples::connect()?;
    let keys = client.kv().list_all("kv_clients.")?;
    println!(
        "{PROCESSES} processes x {ROUNDS} rounds: every read equal to its write; {} keys under kv_clients.",
        keys.len()
    );
    Ok(())
}
