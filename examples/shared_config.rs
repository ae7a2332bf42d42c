//! Shared settings: one process updates them in the key-value store; services keep a local
//! replica of the `config.` prefix, read it without a round trip, and wake on every change.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example shared_config
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::sync::mpsc;
use std::time::Duration;

const FOLLOWERS: usize = 2;

#[derive(Debug, PartialEq)]
struct Settings {
    log_level: Option<String>,
    workers: Option<u32>,
}

/// A service following the settings through its replica until `config.stop` is set.
fn follower(n: usize, ready: mpsc::Sender<()>) -> anyhow::Result<Settings> {
    let mut client = zhub_examples::connect()?;
    let replica = client.kv().replica("config.")?;
    ready.send(())?;
    let mut reached = replica.revision();
    loop {
        let settings = Settings {
            log_level: replica.get("config.log_level")?,
            workers: replica.get("config.workers")?,
        };
        println!(
            "follower {n} up to revision {}: log_level={} workers={}",
            reached.saturating_sub(1),
            settings.log_level.as_deref().unwrap_or("-"),
            settings.workers.map_or("-".into(), |w| w.to_string())
        );
        if replica.get::<bool>("config.stop")? == Some(true) {
            return Ok(settings);
        }
        // Sleep until the replica has applied something new.
        reached = replica
            .wait_change(reached, Duration::from_secs(30))
            .ok_or_else(|| anyhow::anyhow!("follower {n}: no change in 30 s"))?;
    }
}

fn main() -> anyhow::Result<()> {
    let mut admin = zhub_examples::connect()?;
    admin.kv().delete("config.stop")?;
    admin.kv().put("config.log_level", "info")?;
    let revision = admin.kv().put("config.workers", &1u32)?;
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

    let revision = admin.kv().put("config.workers", &4u32)?;
    println!("admin: workers = 4 (revision {revision})");
    let revision = admin.kv().put("config.log_level", "debug")?;
    println!("admin: log_level = debug (revision {revision})");
    let revision = admin.kv().put("config.workers", &8u32)?;
    println!("admin: workers = 8 (revision {revision})");
    let revision = admin.kv().put("config.stop", &true)?;
    println!("admin: stop (revision {revision})");

    let expected = Settings {
        log_level: Some("debug".into()),
        workers: Some(8),
    };
    for (n, f) in followers.into_iter().enumerate() {
        let last = f
            .join()
            .map_err(|_| anyhow::anyhow!("follower {n} panicked"))??;
        anyhow::ensure!(last == expected, "follower {n} ended with {last:?}");
    }
    println!("{FOLLOWERS} followers ended with the admin's last settings");
    Ok(())
}
