//! `zhub sim` end to end: list, a run and its verdict, a replayed seed, determinism, the
//! history file, and a sweep over child processes that names its failing seeds.

mod common;

use common::{deadline, failed, ok, zhub};

use std::time::Duration;

/// No broker is involved; the URL is never dialled.
const NO_BROKER: &str = "tcp://127.0.0.1:1";

fn sim(args: &[&str]) -> std::process::Output {
    let mut all = vec!["sim"];
    all.extend_from_slice(args);
    zhub(NO_BROKER, &all)
}

fn trace_of(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("trace"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| panic!("no trace line in {out}"))
}

#[test]
fn sim_list_names_every_algorithm_with_its_workload() {
    deadline(Duration::from_secs(30), || {
        let out = ok(&sim(&["list"]));
        for name in [
            "abd",
            "read-any",
            "sync-all",
            "majority",
            "flood",
            "ids",
            "primary-log",
        ] {
            assert!(out.lines().any(|l| l.starts_with(name)), "{name} in {out}");
        }
    });
}

#[test]
fn a_run_prints_its_summary_and_verdict_and_a_seed_replays_it() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("h.jsonl");
        let args = [
            "run",
            "abd",
            "--ops",
            "300",
            "--seed",
            "42",
            "--loss",
            "0.05",
            "--dup",
            "0.01",
            "--nemesis",
            "partition",
            "--timeout",
            "300ms",
            "--latency",
            "1..10ms",
        ];
        let mut with_history = args.to_vec();
        with_history.extend([
            "--history",
            history.to_str().unwrap(),
            "--check-determinism",
        ]);
        let first = ok(&sim(&with_history));
        assert!(first.contains("check        linearizable"), "{first}");
        assert!(first.contains("ops          300:"), "{first}");
        assert!(first.contains("determinism"), "{first}");
        let again = ok(&sim(&args));
        assert_eq!(trace_of(&first), trace_of(&again));
        let mut other = args.to_vec();
        other[5] = "43";
        assert_ne!(trace_of(&first), trace_of(&ok(&sim(&other))));
        let text = std::fs::read_to_string(&history).unwrap();
        let parsed = zhub_sim::history::History::read_jsonl(text.as_bytes()).unwrap();
        assert_eq!(parsed.events.len(), 600);
    });
}

#[test]
fn a_wrong_algorithm_fails_with_the_command_that_replays_it() {
    deadline(Duration::from_secs(60), || {
        let out = sim(&[
            "run",
            "read-any",
            "--ops",
            "300",
            "--seed",
            "1",
            "--loss",
            "0.05",
            "--nemesis",
            "partition",
        ]);
        let stderr = failed(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("not linearizable"), "{stdout}");
        assert!(
            stderr.contains("replay with: zhub sim run read-any"),
            "{stderr}"
        );
        assert!(stderr.contains("--seed 1"), "{stderr}");
    });
}

#[test]
fn a_sweep_runs_every_seed_in_child_processes_and_names_the_failures() {
    deadline(Duration::from_secs(120), || {
        let out = ok(&sim(&[
            "run",
            "abd",
            "--seeds",
            "1..40",
            "--jobs",
            "2",
            "--ops",
            "200",
            "--loss",
            "0.05",
            "--nemesis",
            "partition,crash",
        ]));
        assert!(out.contains("40 seeds (1..40) on 2 processes"), "{out}");
        assert!(out.contains("40 passed, 0 failed"), "{out}");

        let out = sim(&[
            "run",
            "read-any",
            "--seeds",
            "1..10",
            "--jobs",
            "2",
            "--ops",
            "300",
            "--loss",
            "0.05",
            "--nemesis",
            "partition",
        ]);
        let stderr = failed(&out);
        assert!(stderr.contains("seeds failed the check"), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let replay = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("replay: "))
            .unwrap_or_else(|| panic!("no replay line in {stdout}"));
        // The printed command replays a failure.
        let words: Vec<&str> = replay.split_whitespace().skip(2).collect();
        let replayed = sim(&words);
        assert!(!replayed.status.success(), "{replay} passed");
    });
}

/// `--report` writes one self-contained page with the run's history, its messages and the
/// checker's verdict, the violation marked.
#[test]
fn a_run_writes_its_report_page() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("run.html");
        let page_arg = page.to_str().unwrap();
        let out = sim(&[
            "run",
            "read-any",
            "--seed",
            "42",
            "--ops",
            "300",
            "--loss",
            "0.05",
            "--nemesis",
            "partition",
            "--report",
            page_arg,
        ]);
        failed(&out);
        let html = std::fs::read_to_string(&page).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing fetched"
        );
        let start = html
            .find("id=\"zhub-report-data\">")
            .expect("embedded data")
            + 22;
        let end = start + html[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
        assert_eq!(data["title"], "zhub sim: read-any, seed 42");
        assert_eq!(
            data["register"]["verdict"], "not linearizable",
            "{}",
            data["register"]
        );
        assert!(data["register"]["culprit"].is_u64());
        assert!(
            !data["messages"]["list"].as_array().unwrap().is_empty(),
            "messages recorded"
        );
        assert!(data["ops"].as_array().unwrap().len() >= 300);

        // A run without --report records no messages and writes nothing.
        ok(&sim(&["run", "abd", "--ops", "50"]));
    });
}
