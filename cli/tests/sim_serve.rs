//! `zhub sim serve` end to end: an algorithm's nodes as processes on an in-process broker,
//! its history checked, and again with a minority cut off by `zhub fault partition`.

mod common;

use common::{deadline, ok, zhub, Reaped, ZHUB};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zhub_client::Client;
use zhub_protocol::fault::FaultRuleInfo;

/// How long one `zhub sim serve` may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn broker(dir: &Path) -> zhub_broker::Broker {
    let mut config = zhub_broker::Config::local_ipc(dir);
    config.allow_faults = true;
    zhub_broker::Broker::start(&config).unwrap()
}

/// Runs `zhub sim serve ARGS` against `url`, killed if it outlasts [`RUN_LIMIT`]; returns
/// whether it succeeded, and its stdout and stderr.
fn serve(url: &str, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let (out, err) = (dir.join("serve.out"), dir.join("serve.err"));
    let mut child = Reaped(
        Command::new(ZHUB)
            .args(["sim", "serve"])
            .args(args)
            .env("ZHUB_URL", url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "zhub sim serve outlasted {RUN_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    (status.success(), read(&out), read(&err))
}

#[test]
fn abd_passes_on_the_real_broker_and_its_history_reads_back() {
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let url = broker.info().main.clone();
        let history = dir.path().join("h.jsonl");
        let report = dir.path().join("r.html");
        let (success, out, err) = serve(
            &url,
            dir.path(),
            &[
                "abd",
                "--nodes",
                "3",
                "--ops",
                "200",
                "--run",
                "t1",
                "--history",
                history.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ],
        );
        assert!(success, "{out}\n{err}");
        assert!(out.contains("check        linearizable"), "{out}");
        assert!(out.contains("ops          200:"), "{out}");
        assert!(out.contains("3 nodes (processes)"), "{out}");
        let text = std::fs::read_to_string(&history).unwrap();
        let parsed = zhub_sim::history::History::read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(parsed.events.len(), 400);
        let report = zhub_sim::check::registers::check(&parsed, Duration::from_secs(10));
        assert_eq!(
            report.verdict,
            zhub_sim::check::registers::Verdict::Linearizable
        );
        assert!(std::fs::read_to_string(dir.path().join("r.html"))
            .unwrap()
            .contains("<html"));
        // Every node process went away with the run: their services have no workers left.
        let mut client = Client::connect(&url).unwrap();
        wait_until_gone(&mut client, "sim.t1.");
    });
}

#[test]
fn abd_passes_with_a_minority_cut_off_by_zhub_fault_partition() {
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let url = broker.info().main.clone();
        let cut = ok(&zhub(
            &url,
            &["fault", "partition", "--run", "t2", "n1", "n2,n3"],
        ));
        assert_eq!(cut.trim(), "4 links cut");
        let (success, out, err) = serve(
            &url,
            dir.path(),
            &[
                "abd",
                "--nodes",
                "3",
                "--ops",
                "100",
                "--run",
                "t2",
                "--timeout",
                "300ms",
            ],
        );
        assert!(success, "{out}\n{err}");
        assert!(out.contains("check        linearizable"), "{out}");
        let mut client = Client::connect(&url).unwrap();
        assert!(client.stats().unwrap().bus.dropped.fault > 0);
        let rules: Vec<FaultRuleInfo> =
            serde_json::from_str(&ok(&zhub(&url, &["fault", "list", "--json"]))).unwrap();
        assert_eq!(rules.len(), 4);
        assert!(rules.iter().all(|r| r.rule.pattern.starts_with("sim.t2.")));
        assert!(rules.iter().any(|r| r.dropped > 0), "{rules:?}");
        // The majority went on serving: some operations succeeded.
        let ok_ops: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("ops"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(ok_ops > 0, "{out}");
        let healed = ok(&zhub(&url, &["fault", "heal", "--run", "t2"]));
        assert_eq!(healed.trim(), "4 rules removed");
    });
}

#[test]
fn the_checker_catches_read_any_reading_a_cut_off_replica() {
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let url = broker.info().main.clone();
        ok(&zhub(
            &url,
            &["fault", "partition", "--run", "t3", "n1", "n2,n3"],
        ));
        // Writes reach n2 and n3; reads the gateway sends n1 see none of them.
        let (success, out, err) = serve(
            &url,
            dir.path(),
            &[
                "read-any",
                "--nodes",
                "3",
                "--ops",
                "200",
                "--run",
                "t3",
                "--timeout",
                "300ms",
            ],
        );
        assert!(!success, "{out}");
        assert!(out.contains("check        not linearizable"), "{out}");
        assert!(err.contains("the check failed"), "{err}");
    });
}

/// Waits until the services under `prefix` satisfy `want` (given those listed).
fn wait_for_services(
    client: &mut Client,
    prefix: &str,
    want: impl Fn(&[&zhub_protocol::builtin::ServiceInfo]) -> bool,
) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let services: Vec<zhub_protocol::builtin::ServiceInfo> =
            client.request("zhub.services", &()).unwrap();
        let ours: Vec<_> = services
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .collect();
        if want(&ours) {
            return;
        }
        assert!(Instant::now() < until, "{prefix}: not yet, {ours:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until no service under `prefix` has a worker (or is listed at all).
fn wait_until_gone(client: &mut Client, prefix: &str) {
    wait_for_services(client, prefix, |ours| ours.iter().all(|s| s.workers == 0));
}

#[test]
fn the_nodes_stop_when_zhub_sim_serve_is_killed() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let url = broker.info().main.clone();
        let mut serve = Reaped(
            Command::new(ZHUB)
                .args(["sim", "serve", "abd", "--ops", "100000000", "--run", "t4"])
                .env("ZHUB_URL", &url)
                .env("RUST_LOG", "off")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let mut client = Client::connect(&url).unwrap();
        wait_for_services(&mut client, "sim.t4.", |ours| {
            ours.len() == 3 && ours.iter().all(|s| s.workers == 1)
        });
        serve.0.kill().unwrap();
        serve.0.wait().unwrap();
        // Each node saw its stdin close, and left the broker.
        wait_until_gone(&mut client, "sim.t4.");
    });
}

#[test]
fn zhub_fault_says_how_to_allow_faults_on_a_broker_without_them() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let out = zhub(&url, &["fault", "add", "sim.>", "--drop", "0.5"]);
        let err = common::failed(&out);
        assert!(err.contains("--allow-faults"), "{err}");
    });
}
