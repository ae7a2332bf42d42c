//! `zhub log` against an in-process broker: create, append, read, tail, streams, delete.

mod common;

use common::{deadline, ok, zhub, ZHUB};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn create_append_read_tail_delete() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();

        ok(&zhub(
            &url,
            &["log", "create", "orders", "--fsync", "always"],
        ));
        assert_eq!(
            ok(&zhub(&url, &["log", "append", "orders", "first"])),
            "0\n"
        );
        let second = ok(&zhub(
            &url,
            &[
                "log",
                "append",
                "orders",
                r#"{"n":2}"#,
                "--format",
                "json",
                "--json",
            ],
        ));
        assert_eq!(second.trim(), r#"{"offset":1}"#);
        let raw = zhub(
            &url,
            &["log", "append", "orders", "bytes", "--format", "raw"],
        );
        assert_eq!(ok(&raw), "2\n");

        let read = ok(&zhub(&url, &["log", "read", "orders", "--json"]));
        let records: Vec<serde_json::Value> = read
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3, "{read}");
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record["offset"], i as u64);
            assert!(record["timestamp"].as_i64().unwrap() > 0);
        }
        assert_eq!(records[0]["body"], "first");
        assert_eq!(records[1]["body"], serde_json::json!({"n": 2}));
        assert_eq!(records[2]["body"], "bytes");

        let some = ok(&zhub(
            &url,
            &["log", "read", "orders", "--from", "1", "--count", "1"],
        ));
        assert!(some.starts_with("1 "), "{some}");
        assert_eq!(some.lines().count(), 1);
        // Times read as people write them, and print as RFC 3339 in UTC.
        let stamp = some.split(' ').nth(1).unwrap();
        assert!(stamp.len() == 27 && stamp.ends_with('Z'), "{some}");
        let at_second = ok(&zhub(&url, &["log", "read", "orders", "--since", stamp]));
        assert!(at_second.starts_with("1 "), "{at_second}");
        let recent = ok(&zhub(&url, &["log", "read", "orders", "--since", "1h ago"]));
        assert_eq!(recent.lines().count(), 3, "{recent}");
        let future = ok(&zhub(
            &url,
            &[
                "log",
                "read",
                "orders",
                "--since",
                "2999-01-01T00:00:00+01:00",
            ],
        ));
        assert_eq!(future, "");
        let bad = zhub(&url, &["log", "read", "orders", "--since", "yesterday"]);
        assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));

        // `tail` from the end waits for the next append; it prints once that lands.
        let mut tail = Command::new(ZHUB)
            .args([
                "log", "tail", "orders", "--from", "3", "--count", "1", "--json",
            ])
            .env("ZHUB_URL", &url)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        assert_eq!(ok(&zhub(&url, &["log", "append", "orders", "late"])), "3\n");
        let mut line = String::new();
        BufReader::new(tail.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["offset"].as_u64(), v["body"].as_str()),
            (Some(3), Some("late"))
        );
        assert!(tail.wait().unwrap().success());

        let streams = ok(&zhub(&url, &["log", "streams", "--json"]));
        let streams: serde_json::Value = serde_json::from_str(&streams).unwrap();
        assert_eq!(streams[0]["name"], "orders");
        assert_eq!(streams[0]["records"], 4);

        ok(&zhub(&url, &["log", "delete", "orders"]));
        let gone = zhub(&url, &["log", "read", "orders"]);
        assert!(!gone.status.success());
        let err = String::from_utf8_lossy(&gone.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("orders"), "{err}");

        let bad = zhub(&url, &["log", "create", "x", "--fsync", "sometimes"]);
        assert!(!bad.status.success());
    });
}

#[test]
fn journal_replay_and_republish_a_durable_topic() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();

        ok(&zhub(&url, &["log", "journal", "sensor.", "sensors"]));
        assert_eq!(ok(&zhub(&url, &["log", "journals"])), "sensor. sensors\n");
        ok(&zhub(&url, &["pub", "sensor.t1", "21.5"]));
        ok(&zhub(&url, &["pub", "sensor.t2", r#"{"c":19}"#, "--json"]));
        // Wait for both to be journaled with a long poll, not a sleep.
        let mut client = zhub_client::Client::connect(&url).unwrap();
        let mut next = 0;
        while next < 2 {
            let (_, after) = client
                .log()
                .read_batch(
                    "sensors",
                    zhub_client::ReadFrom::Offset(next),
                    1 << 20,
                    Duration::from_secs(5),
                )
                .unwrap();
            next = after;
        }

        let text = ok(&zhub(&url, &["log", "replay", "sensors"]));
        assert_eq!(text, "sensor.t1 21.5\nsensor.t2 {\"c\":19}\n");
        let json = ok(&zhub(
            &url,
            &["log", "replay", "sensors", "--from", "1", "--json"],
        ));
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["topic"], "sensor.t2");
        assert_eq!(v["header"]["seq"], 1);

        // `log read` shows a journal's records as messages too, not as frame bytes.
        let read = ok(&zhub(&url, &["log", "read", "sensors"]));
        let lines: Vec<&str> = read.lines().collect();
        assert_eq!(lines.len(), 2, "{read}");
        assert!(
            lines[0].starts_with("0 ") && lines[0].ends_with(" sensor.t1 21.5"),
            "{read}"
        );
        assert!(lines[1].ends_with(" sensor.t2 {\"c\":19}"), "{read}");
        let json = ok(&zhub(
            &url,
            &["log", "read", "sensors", "--json", "--count", "1"],
        ));
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(
            (v["offset"].clone(), v["topic"].clone()),
            (0.into(), "sensor.t1".into())
        );
        assert_eq!(v["body"], "21.5");

        let mut sub = client.subscribe(&["sensor."]).unwrap();
        let sent = ok(&zhub(&url, &["log", "replay", "sensors", "--republish"]));
        assert_eq!(sent, "2\n");
        let first = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(first.topic(), "sensor.t1");

        ok(&zhub(&url, &["log", "unjournal", "sensor.", "sensors"]));
        assert_eq!(ok(&zhub(&url, &["log", "journals", "--json"])), "[]\n");
    });
}

#[test]
fn bench_log_reports_every_figure() {
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().to_str().unwrap();
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &[
                "bench",
                "log",
                "--json",
                "--dir",
                dir_arg,
                "--records",
                "10000",
                "--seconds",
                "0.2",
                "--memory-gb",
                "0.01",
                "--replay-records",
                "3000",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert!(
            v["disk"]["fdatasync_per_sec"].as_f64().unwrap() > 0.0,
            "{v}"
        );
        let appends = v["broker"]["appends"].as_array().unwrap();
        assert_eq!(appends.len(), 9);
        for case in appends {
            assert!(case["records_per_sec"].as_f64().unwrap() > 0.0, "{case}");
        }
        // The pipelined cases: one appender, 64 appends in flight.
        assert!(
            appends
                .iter()
                .any(|c| c["window"] == 64 && c["appenders"] == 1 && c["policy"] == "always"),
            "{v}"
        );
        assert!(
            v["broker"]["memory"]["appended_mb"].as_f64().unwrap() >= 10.0,
            "{v}"
        );
        // The stream of its own, replayed whole.
        assert_eq!(v["broker"]["replay_records"].as_u64(), Some(3000), "{v}");
        assert!(
            v["broker"]["replay_vs_engine_copied"].as_f64().unwrap() > 0.0,
            "{v}"
        );
        // The scratch directory is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    });
}

/// `zhub log consume --group` reads on from the group's committed position and commits what
/// it printed; `position` and `seek` show and move that position.
#[test]
fn consumer_groups_from_the_shell() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        ok(&zhub(&url, &["log", "create", "jobs"]));
        for n in 0..5 {
            ok(&zhub(&url, &["log", "append", "jobs", &format!("job {n}")]));
        }
        let body = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            ok(&zhub(&url, &["log", "position", "jobs", "--group", "g"])),
            "none\n"
        );
        let first = ok(&zhub(
            &url,
            &["log", "consume", "jobs", "--group", "g", "--count", "2"],
        ));
        assert_eq!(body(&first), ["job 0", "job 1"]);
        assert_eq!(
            ok(&zhub(&url, &["log", "position", "jobs", "--group", "g"])),
            "2\n"
        );
        let rest = ok(&zhub(&url, &["log", "consume", "jobs", "--group", "g"]));
        assert_eq!(
            body(&rest),
            ["job 2", "job 3", "job 4"],
            "to the end, then exits"
        );
        let other = ok(&zhub(
            &url,
            &["log", "consume", "jobs", "--group", "h", "--count", "1"],
        ));
        assert_eq!(body(&other), ["job 0"], "each group has its own position");

        ok(&zhub(&url, &["log", "seek", "jobs", "--group", "g", "3"]));
        let again = ok(&zhub(
            &url,
            &["log", "consume", "jobs", "--group", "g", "--json"],
        ));
        let offsets: Vec<u64> = again
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(offsets, [3, 4]);
        let missing = zhub(&url, &["log", "consume", "nope", "--group", "g"]);
        assert!(!missing.status.success());
    });
}
