//! Shared settings: one process updates them in the key-value store; services keep a local
//! replica of the `shared_config.` prefix, read it without a round trip, and wake on every
//! change. The keys are deleted at the end.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example shared_config
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;

const FOLLOWERS: usize = 2;
const PREFIX: &str = "shared_config.";
const LOG_LEVEL: &str = "shared_config.log_level";
const WORKERS: &str = "shared_config.workers";
const STOP: &str = "shared_config.stop";

/// An admin updates settings in the key-value store; two followers read them from local
/// replicas and wake on each change.
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {}

#[derive(Debug, PartialEq)]
struct Settings {
    log_level: Option<String>,
    workers: Option<u32>,
}

impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log_level={} workers={}",
            self.log_level.as_deref().unwrap_or("-"),
            self.workers.map_or("-".into(), |w| w.to_string())
        )
    }
}

/// A service following the settings through its replica until `shared_config.stop` is set.
fn follower(n: usize, ready: mpsc::Sender<()>) -> anyhow::Result<Settings> {
    let mut client = zhub_examples::connect()?;
    let replica = client.kv().replica(PREFIX)?;
    ready.send(())?;
    let mut reached = replica.revision();
    loop {
        let settings = Settings {
            log_level: replica.get(LOG_LEVEL)?,
            workers: replica.get(WORKERS)?,
        };
        println!(
            "follower {n} up to revision {}: {settings}",
            reached.saturating_sub(1)
        );
        if replica.get::<bool>(STOP)? == Some(true) {
            return Ok(settings);
        }
        // Sleep until the replica has applied something new.
        reached = replica
            .wait_change(reached, Duration::from_secs(30))
            .ok_or_else(|| anyhow::anyhow!("follower {n}: no change in 30 s"))?;
    }
}

fn run() -> anyhow::Result<()> {
    let _: Args = zhub_examples::parse_args();
    let mut admin = zhub_examples::connect()?;
    admin.kv().delete(STOP)?;
    admin.kv().put(LOG_LEVEL, "info")?;
    let revision = admin.kv().put(WORKERS, &1u32)?;
    println!("admin: initial settings, revision {revision}");

    let (ready_tx, ready_rx) = mpsc::channel();
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|n| {
            let ready = ready_tx.clone();
            std::thread::spawn(move || follower(n, ready))
        })
        .collect();
    // Every follower has its snapshot: from here on each change reaches it as a change.
    for _ in 0..FOLLOWERS {
        ready_rx.recv()?;
    }

    let revision = admin.kv().put(WORKERS, &4u32)?;
    println!("admin: workers = 4 (revision {revision})");
    let revision = admin.kv().put(LOG_LEVEL, "debug")?;
    println!("admin: log_level = debug (revision {revision})");
    let revision = admin.kv().put(WORKERS, &8u32)?;
    println!("admin: workers = 8 (revision {revision})");
    let revision = admin.kv().put(STOP, &true)?;
    println!("admin: stop (revision {revision})");

    let expected = Settings {
        log_level: Some("debug".into()),
        workers: Some(8),
    };
    let ended: Vec<_> = followers
        .into_iter()
        .enumerate()
        .map(|(n, f)| {
            f.join()
                .map_err(|_| anyhow::anyhow!("follower {n} panicked"))?
        })
        .collect();
    for key in [LOG_LEVEL, WORKERS, STOP] {
        admin.kv().delete(key)?;
    }
    for (n, last) in ended.into_iter().enumerate() {
        let last = last?;
        anyhow::ensure!(last == expected, "follower {n} ended with {last}");
    }
    println!(
        "{FOLLOWERS} followers ended with the admin's last settings; keys under {PREFIX} deleted"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
