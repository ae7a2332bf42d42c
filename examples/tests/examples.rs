//! Every example runs to completion, exit 0, against a broker started in this process.
//!
//! `cargo test` builds the examples beside the test binaries (`target/PROFILE/examples`),
//! which is where these tests find them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/PROFILE/deps/TEST -> target/PROFILE/examples/NAME
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    dir.join("examples").join(name)
}

/// Runs the example against a fresh broker and returns its stdout.
fn run(name: &str) -> String {
    let (tx, rx) = mpsc::channel();
    let name = name.to_owned();
    std::thread::spawn(move || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let output = Command::new(example(&name))
            .env("ZHUB_URL", &broker.info().main)
            .env("RUST_LOG", "off")
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e} (is it built? cargo test builds examples)"));
        let _ = tx.send(output);
    });
    let output = rx.recv_timeout(LIMIT).expect("example finished in time");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn ping_pong() {
    let out = run("ping_pong");
    assert!(out.contains("ping service got pong #5"), "{out}");
}

#[test]
fn rpc_ping_pong() {
    let out = run("rpc_ping_pong");
    assert!(out.contains("ping #5 -> pong #5"), "{out}");
    assert!(out.contains("5 request/reply rounds"), "{out}");
}

#[test]
fn print_afficher() {
    let out = run("print_afficher");
    assert!(
        out.contains("2 clients x 3 requests to print and afficher served"),
        "{out}"
    );
}

#[test]
fn replay() {
    let out = run("replay");
    assert!(out.contains("offset 7"), "{out}");
    assert!(out.contains("replay from timestamp"), "{out}");
}

#[test]
fn kv_clients() {
    let out = run("kv_clients");
    assert!(
        out.contains("4 processes x 1000 rounds: every read equal to its write; 4 keys"),
        "{out}"
    );
}

#[test]
fn shared_config() {
    let out = run("shared_config");
    assert!(
        out.contains("2 followers ended with the admin's last settings"),
        "{out}"
    );
}

#[test]
fn sync_exchange() {
    let out = run("sync_exchange");
    assert!(
        out.contains("rank 0: done") && out.contains("rank 1: done"),
        "{out}"
    );
    assert_eq!(out.matches(" took ").count(), 6, "{out}");
}

#[test]
fn dice_game() {
    let out = run("dice_game");
    assert!(out.contains("5 rounds, one winner line each"), "{out}");
    assert_eq!(out.matches("wins with").count(), 5, "{out}");
}

#[test]
fn middleware_demo() {
    let out = run("middleware_demo");
    assert_eq!(out.matches("in the critical section").count(), 3, "{out}");
    assert_eq!(out.matches(": stopping").count(), 3, "{out}");
    assert!(out.contains("everyone has the sync news"), "{out}");
    assert!(out.contains("rank 1 took the rendezvous"), "{out}");
}

#[test]
fn replication() {
    let out = run("replication");
    assert_eq!(out.matches("equal to all 3 replicas").count(), 3, "{out}");
}

#[test]
fn p2p_graph() {
    let out = run("p2p_graph");
    assert!(out.contains("every message arrived within 3 hops"), "{out}");
    assert_eq!(out.matches("reached rank").count(), 4, "{out}");
}
