//! The `zhub` command against an in-process broker: pub, sub, stats, and clear errors.

mod common;

use common::{deadline, zhub, Reaped, ZHUB};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn pub_sub_and_stats() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();

        // `zhub sub` prints nothing until it is subscribed; a probe publish from this test is
        // retried until the subscriber shows it, which proves the subscription is live.
        let mut sub = Command::new(ZHUB)
            .args(["sub", "cli.", "--count", "4", "--json"])
            .env("ZHUB_URL", &url)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.by_ref() {
                if line_tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let first = loop {
            assert!(zhub(&url, &["pub", "cli.ready", "probe"]).status.success());
            if let Ok(line) = line_rx.recv_timeout(Duration::from_millis(100)) {
                break line;
            }
        };
        assert!(first.contains("\"cli.ready\""), "{first}");
        let published = [
            (
                vec!["pub", "cli.text", "hello world"],
                serde_json::json!("hello world"),
            ),
            (
                vec!["pub", "cli.json", "--json", r#"{"a":[1,2]}"#],
                serde_json::json!({"a": [1, 2]}),
            ),
            (
                vec!["pub", "cli.raw", "--raw", "bytes"],
                serde_json::json!("bytes"),
            ),
        ];
        let mut expected = Vec::new();
        for (args, body) in published {
            assert!(zhub(&url, &args).status.success());
            expected.push((args[1].to_owned(), body));
        }
        // The sub may have printed a second "ready" probe before the subscription was proven.
        let mut got = Vec::new();
        while got.len() < 3 {
            let line = line_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("line from zhub sub");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["topic"] == "cli.ready" {
                continue;
            }
            assert!(v["header"]["seq"].as_u64().unwrap() >= 1);
            got.push((v["topic"].as_str().unwrap().to_owned(), v["body"].clone()));
        }
        assert_eq!(got, expected);
        let _ = sub.kill();
        let _ = sub.wait();

        let out = zhub(&url, &["stats", "--json"]);
        assert!(out.status.success());
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            stats["bus"]["messages_in"].as_u64().unwrap() >= 4,
            "{stats}"
        );
        let out = zhub(&url, &["stats"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("slow_subscriber"));
        broker.shutdown();
    });
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let nobody = format!("ipc://{}", dir.path().join("nobody.sock").display());
        let out = zhub(&nobody, &["--timeout", "200ms", "stats"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no broker answered"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let out = zhub(&url, &["pub", "$reserved", "x"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("reserved"));
        let out = zhub(&url, &["pub", "t", "--json", "{not json"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    });
}

/// Every counter of `zhub stats --json` is in the text output: each nested object's counters
/// on the line named after it, under their JSON names; the top-level ones shown converted.
#[test]
fn stats_text_shows_every_counter_of_the_json() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let json: serde_json::Value =
            serde_json::from_str(&common::ok(&zhub(&url, &["stats", "--json"]))).unwrap();
        let text = common::ok(&zhub(&url, &["stats"]));
        fn check(object: &serde_json::Map<String, serde_json::Value>, label: &str, text: &str) {
            for (name, value) in object {
                match value {
                    serde_json::Value::Object(inner) => check(inner, name, text),
                    _ if label.is_empty() => assert!(
                        ["uptime_ms", "rss_bytes", "peak_rss_bytes"].contains(&name.as_str()),
                        "top-level counter {name} is not shown:\n{text}"
                    ),
                    _ => {
                        let line = text
                            .lines()
                            .find(|l| l.split_whitespace().next() == Some(label))
                            .unwrap_or_else(|| panic!("no line {label}:\n{text}"));
                        let words: Vec<&str> =
                            line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
                        let shown = words
                            .windows(2)
                            .any(|w| w[0] == name && w[1].chars().all(|c| c.is_ascii_digit()));
                        assert!(shown, "{label}.{name} is not shown:\n{text}");
                    }
                }
            }
        }
        check(json.as_object().unwrap(), "", &text);
        broker.shutdown();
    });
}

/// `zhub --help` shows --url as an option with its default and its variable.
#[test]
fn help_shows_url_as_optional_with_its_default_and_variable() {
    deadline(Duration::from_secs(30), || {
        let out = Command::new(ZHUB)
            .arg("--help")
            .env_remove("ZHUB_URL")
            .output()
            .unwrap();
        let help = common::ok(&out);
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with("--url"))
            .unwrap_or_else(|| panic!("no --url in:\n{help}"));
        assert!(line.contains("optional"), "{line}");
        assert!(line.contains("[env: ZHUB_URL]"), "{line}");
        assert!(line.contains("[default: tcp://127.0.0.1:5555]"), "{line}");
        assert!(help.contains("Usage: zhub [OPTIONS] <COMMAND>"), "{help}");
    });
}

/// With no broker, a command gives up within its --timeout (not after the client's linger on
/// top of it) and says in one line where it looked.
#[test]
fn without_a_broker_every_command_fails_within_its_timeout() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let nobody = format!("ipc://{}", dir.path().join("nobody.sock").display());
        let commands: [&[&str]; 7] = [
            &["stats"],
            &["pub", "t", "x"],
            &["sub", "t"],
            &["request", "svc", "x"],
            &["services"],
            &["kv", "get", "k"],
            &["log", "streams"],
        ];
        for command in commands {
            let args = [&["--timeout", "200ms"], command].concat();
            let started = std::time::Instant::now();
            let out = zhub(&nobody, &args);
            let took = started.elapsed();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command:?}");
            // Generous: the point is that 2 s of linger are no longer added.
            assert!(
                took < Duration::from_millis(1500),
                "{command:?} took {took:?}"
            );
            assert_eq!(err.trim().lines().count(), 1, "{command:?}: {err}");
            assert!(err.contains(&nobody), "{command:?}: {err}");
        }
    });
}

/// `zhub pub TOPIC` publishes each line of its standard input; a `zhub sub` that was stopped
/// while they came says how many it missed, and what it printed plus what it missed is all.
#[test]
fn pub_reads_stdin_and_a_stopped_sub_says_what_it_missed() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = zhub_broker::Config {
            subscribe_hwm: 100,
            ..zhub_broker::Config::local_ipc(dir.path())
        };
        let broker = zhub_broker::Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        let mut sub = Reaped(
            Command::new(ZHUB)
                .args(["sub", "flood."])
                .env("ZHUB_URL", &url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (line_tx, line_rx) = mpsc::channel();
        for stream in [
            Box::new(sub.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(sub.0.stderr.take().unwrap()),
        ] {
            let tx = line_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    if tx.send(line.unwrap()).is_err() {
                        break;
                    }
                }
            });
        }
        // Live once a probe shows up.
        loop {
            assert!(zhub(&url, &["pub", "flood.ready", "probe"])
                .status
                .success());
            if let Ok(line) = line_rx.recv_timeout(Duration::from_millis(100)) {
                assert!(line.starts_with("flood.ready"), "{line}");
                break;
            }
        }
        while line_rx.recv_timeout(Duration::from_millis(200)).is_ok() {}

        let pid = sub.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success());
        const TOTAL: u64 = 50_000;
        let lines: String = (1..=TOTAL).map(|i| format!("{i}\n")).collect();
        let mut publisher = Command::new(ZHUB)
            .args(["pub", "flood.n", "--raw"])
            .env("ZHUB_URL", &url)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        publisher
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(publisher.wait().unwrap().success());
        assert!(Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success());

        let (mut printed, mut missed) = (0u64, 0u64);
        while printed + missed < TOTAL {
            let line = line_rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("printed {printed} + missed {missed} < {TOTAL}"));
            if line.starts_with("flood.n ") {
                printed += 1;
            } else if let Some(rest) = line.strip_prefix("zhub: missed ") {
                missed += rest.split(' ').next().unwrap().parse::<u64>().unwrap();
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        assert_eq!(printed + missed, TOTAL);
        assert!(missed > 0, "the subscriber's queue never overflowed");
        drop(sub);
        let out = zhub(&url, &["stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            stats["bus"]["dropped"]["slow_subscriber"].as_u64(),
            Some(missed),
            "{stats}"
        );
        broker.shutdown();
    });
}

/// `zhub stats --watch` into a pipe: plain blocks (no screen control codes), the rates line
/// empty at the first refresh and measured at the next, the services listed.
#[test]
fn stats_watch_prints_blocks_with_rates_when_not_on_a_terminal() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let worker = zhub_worker::Worker::connect(&url, "echo").unwrap();
        let stop = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|b| b.to_vec()));

        let out = zhub(&url, &["stats", "--watch", "--count", "2"]);
        let text = common::ok(&out);
        assert!(!text.contains('\x1b'), "{text}");
        let blocks: Vec<&str> = text.split("\n\n").filter(|b| !b.is_empty()).collect();
        assert_eq!(blocks.len(), 2, "{text}");
        assert!(blocks[0].contains("per sec  messages_in -,"), "{text}");
        assert!(!blocks[1].contains("messages_in -,"), "{text}");
        assert!(blocks[1].contains("received "), "{text}");
        assert!(
            blocks[1]
                .lines()
                .any(|l| l.trim_start().starts_with("echo ")),
            "{text}"
        );
        stop.stop();
        serving.join().unwrap().unwrap();
        broker.shutdown();
    });
}
