//! `zhub kv` against an in-process broker.

mod common;

use common::{deadline, failed, ok, zhub, ZHUB};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn get_put_del_cas_incr_list_history() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();

        let err = failed(&zhub(&url, &["kv", "get", "colour"]));
        assert!(err.contains("not found"), "{err}");
        let r1: u64 = ok(&zhub(&url, &["kv", "put", "colour", "blue"]))
            .trim()
            .parse()
            .unwrap();
        assert_eq!(ok(&zhub(&url, &["kv", "get", "colour"])), "blue\n");
        let json = ok(&zhub(
            &url,
            &[
                "kv",
                "put",
                "cfg",
                r#"{"n":1}"#,
                "--format",
                "json",
                "--json",
            ],
        ));
        let r2 = serde_json::from_str::<serde_json::Value>(&json).unwrap()["revision"]
            .as_u64()
            .unwrap();
        assert!(r2 > r1);
        let got: serde_json::Value =
            serde_json::from_str(&ok(&zhub(&url, &["kv", "get", "cfg", "--json"]))).unwrap();
        assert_eq!(got["value"], serde_json::json!({"n": 1}));
        assert_eq!(got["revision"], r2);

        // CAS from a stale revision fails with the current one; from the right one it works.
        let stale = r1.to_string();
        let r3: u64 = ok(&zhub(
            &url,
            &["kv", "cas", "colour", "green", "--expect", &stale],
        ))
        .trim()
        .parse()
        .unwrap();
        let err = failed(&zhub(
            &url,
            &["kv", "cas", "colour", "red", "--expect", &stale],
        ));
        assert!(err.contains(&format!("revision {r3}")), "{err}");
        let err = failed(&zhub(&url, &["kv", "cas", "colour", "red", "--absent"]));
        assert!(err.contains("mismatch"), "{err}");

        assert_eq!(ok(&zhub(&url, &["kv", "incr", "hits"])), "1\n");
        assert_eq!(ok(&zhub(&url, &["kv", "incr", "hits", "-5"])), "-4\n");

        let list = ok(&zhub(&url, &["kv", "list"]));
        assert_eq!(list, "cfg {\"n\":1}\ncolour green\nhits -4\n");
        let history = ok(&zhub(&url, &["kv", "history", "colour"]));
        assert_eq!(history, format!("{r3} put green\n{r1} put blue\n"));

        ok(&zhub(&url, &["kv", "del", "colour"]));
        let err = failed(&zhub(&url, &["kv", "del", "colour"]));
        assert!(err.contains("not found"), "{err}");
        let err = String::from_utf8(zhub(&url, &["kv", "put", "", "x"]).stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("key"), "{err}");
    });
}

#[test]
fn watch_prints_one_line_per_change() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let mut watch = Command::new(ZHUB)
            .args(["kv", "watch", "room."])
            .env("ZHUB_URL", &url)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(watch.stdout.take().unwrap()).lines();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        // The watch is live once it prints a change: put until it does.
        let first = loop {
            ok(&zhub(&url, &["kv", "put", "room.probe", "p"]));
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
                break line;
            }
        };
        assert!(first.ends_with("put room.probe p"), "{first}");
        ok(&zhub(&url, &["kv", "put", "hall.light", "off"]));
        ok(&zhub(&url, &["kv", "del", "room.probe"]));
        ok(&zhub(
            &url,
            &["kv", "put", "room.temp", "21", "--ttl", "50ms"],
        ));
        let mut rest = Vec::new();
        while rest.len() < 3 {
            let line = rx.recv_timeout(Duration::from_secs(10)).expect("a change");
            // Extra probe puts may come first.
            if !line.ends_with("put room.probe p") {
                rest.push(line);
            }
        }
        assert!(rest[0].ends_with("delete room.probe"), "{rest:?}");
        assert!(rest[1].ends_with("put room.temp 21"), "{rest:?}");
        assert!(rest[2].ends_with("expire room.temp"), "{rest:?}");
        let _ = watch.kill();
        let _ = watch.wait();
    });
}

#[test]
fn bench_kv_reports_every_case() {
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &[
                "bench",
                "kv",
                "--json",
                "--dir",
                dir.path().to_str().unwrap(),
                "--seconds",
                "0.2",
                "--clients",
                "2",
                "--in-flight",
                "1,4",
                "--memory-keys",
                "2000",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 8, "{v}");
        for case in cases {
            assert!(case["ops_per_sec"].as_f64().unwrap() > 0.0, "{case}");
        }
        assert_eq!(v["memory"]["keys"], 2000);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    });
}
