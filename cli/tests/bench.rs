//! `zhub bench pubsub`, `zhub bench request` and `zhub bench federation` end to end, with their helper processes (the
//! `zhub` executable run again as a broker, a raw proxy or a raw router), and the helpers kept
//! out of `zhub --help`; and `zhub bench sim`. The log and KV benches are run in `log.rs` and
//! `kv.rs`.

mod common;

use common::{deadline, ok, zhub};

use std::time::Duration;

#[test]
fn bench_pubsub_reports_every_case() {
    deadline(Duration::from_secs(120), || {
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &[
                "bench",
                "pubsub",
                "--json",
                "--count",
                "2000",
                "--large-count",
                "200",
                "--rounds",
                "1",
                "--modes",
                "windowed",
                "--transports",
                "tcp,ipc",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["bench"], "pubsub", "{v}");
        let cases = v["cases"].as_array().unwrap();
        // Two transports, two sizes, one mode.
        assert_eq!(cases.len(), 4, "{v}");
        for case in cases {
            assert!(
                case["zhub"]["msgs_per_sec"].as_f64().unwrap() > 0.0,
                "{case}"
            );
            assert!(
                case["raw"]["msgs_per_sec"].as_f64().unwrap() > 0.0,
                "{case}"
            );
        }
    });
}

#[test]
fn bench_federation_reports_every_case_across_a_peer_hop_and_two_zones() {
    deadline(Duration::from_secs(120), || {
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &[
                "bench",
                "federation",
                "--json",
                "--requests",
                "50",
                "--count",
                "2000",
                "--rounds",
                "1",
                "--transport",
                "ipc",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["bench"], "federation", "{v}");
        let cases = v["requests"].as_array().unwrap();
        assert_eq!(cases.len(), 3, "{v}");
        for case in cases {
            for side in ["single", "one_hop", "two_zones", "raw"] {
                assert!(
                    case[side]["round_trips_per_sec"].as_f64().unwrap() > 0.0,
                    "{side}: {case}"
                );
            }
        }
        assert_eq!(v["pubsub"]["one_hop"]["lost"], 0, "{v}");
        assert!(v["pubsub"]["one_hop"]["msgs_per_sec"].as_f64().unwrap() > 0.0);
    });
}

#[test]
fn bench_request_reports_every_case() {
    deadline(Duration::from_secs(120), || {
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &[
                "bench",
                "request",
                "--json",
                "--requests",
                "50",
                "--rounds",
                "1",
                "--transport",
                "ipc",
                "--scrape",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["bench"], "request", "{v}");
        // --scrape: each case again with /metrics read while it runs, at least once a run.
        let scraped = v["scrape"].as_array().unwrap();
        assert_eq!(scraped.len(), 7, "{v}");
        for case in scraped {
            assert!(case["scrapes"].as_u64().unwrap() >= 1, "{case}");
            assert!(case["scraped_rt_per_sec"].as_f64().unwrap() > 0.0, "{case}");
        }
        let cases = v["cases"].as_array().unwrap();
        // 1 client, 8 clients, 8 clients x 16 in flight; the last two again with workers of
        // credit 16, served on handler threads, then inline.
        assert_eq!(cases.len(), 7, "{v}");
        let serving: Vec<&str> = cases
            .iter()
            .map(|c| c["serving"].as_str().unwrap())
            .collect();
        assert_eq!(
            serving,
            ["threads", "threads", "threads", "threads", "threads", "inline", "inline"]
        );
        for case in cases {
            assert!(
                case["zhub"]["round_trips_per_sec"].as_f64().unwrap() > 0.0,
                "{case}"
            );
            assert!(
                case["raw"]["round_trips_per_sec"].as_f64().unwrap() > 0.0,
                "{case}"
            );
        }
    });
}

#[test]
fn bench_helpers_stay_out_of_help() {
    deadline(Duration::from_secs(30), || {
        let help = ok(&zhub("tcp://127.0.0.1:1", &["--help"]));
        assert!(help.contains("bench"), "{help}");
        for helper in ["bench-broker", "bench-raw-proxy", "bench-raw-router"] {
            assert!(!help.contains(helper), "{helper} in:\n{help}");
        }
        let bench = ok(&zhub("tcp://127.0.0.1:1", &["bench", "--help"]));
        for command in ["pubsub", "request", "log", "kv"] {
            assert!(bench.contains(command), "{command} missing from:\n{bench}");
        }
    });
}

#[test]
fn bench_sim_reports_typed_and_encoded_rates() {
    deadline(Duration::from_secs(60), || {
        let out = ok(&zhub(
            "tcp://127.0.0.1:1",
            &["bench", "sim", "--json", "--runs", "2", "--ops", "500"],
        ));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["bench"], "sim", "{v}");
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 2, "{v}");
        for case in cases {
            assert!(
                case["median_msgs_per_sec"].as_f64().unwrap() > 0.0,
                "{case}"
            );
            assert!(case["messages"].as_u64().unwrap() > 1000, "{case}");
        }
        assert!(cases[1]["bytes_per_message"].as_f64().unwrap() > 0.0, "{v}");
    });
}

/// Whether `redis-server` and `redis-benchmark` are installed; says so when not.
fn redis_installed() -> bool {
    let found = ["redis-server", "redis-benchmark"].iter().all(|program| {
        std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        eprintln!("skipped: redis-server or redis-benchmark is not installed (apt-get install redis-server)");
    }
    found
}

#[test]
fn bench_kv_and_log_run_beside_redis_when_it_is_installed() {
    if !redis_installed() {
        return;
    }
    deadline(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().to_str().unwrap();
        let common = ["--json", "--dir", dir_arg, "--peer", "redis"];
        let kv = [
            &["bench", "kv"][..],
            &common,
            &["--seconds", "0.2", "--clients", "2", "--in-flight", "4"],
            &["--memory-keys", "0"],
        ]
        .concat();
        let v: serde_json::Value =
            serde_json::from_str(ok(&zhub("tcp://127.0.0.1:1", &kv)).trim()).unwrap();
        let cases = v["cases"].as_array().unwrap();
        for op in ["get", "put_never", "put_always"] {
            let case = cases.iter().find(|c| c["op"] == op).unwrap();
            assert!(case["redis_ops_per_sec"].as_f64().unwrap() > 0.0, "{case}");
            assert!(case["vs_redis"].as_f64().unwrap() > 0.0, "{case}");
        }
        let echo = cases.iter().find(|c| c["op"] == "echo").unwrap();
        assert!(echo["redis_ops_per_sec"].is_null(), "{echo}");
        let log = [
            &["bench", "log"][..],
            &common,
            &["--records", "10000", "--seconds", "0.2", "--memory-gb", "0"],
            &["--replay-records", "1000"],
        ]
        .concat();
        let v: serde_json::Value =
            serde_json::from_str(ok(&zhub("tcp://127.0.0.1:1", &log)).trim()).unwrap();
        for case in v["broker"]["appends"].as_array().unwrap() {
            // XADD beside every case of one record per request, none beside batches.
            assert_eq!(
                case["redis_records_per_sec"].is_f64(),
                case["batch"] == 1,
                "{case}"
            );
        }
        // The scratch directory, Redis's files with it, is gone.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    });
}
