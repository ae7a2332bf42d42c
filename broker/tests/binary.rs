//! The `zhub-broker` binary as users run it: a child process, stopped by a signal.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::deadline;

const BIN: &str = env!("CARGO_BIN_EXE_zhub-broker");
const LIMIT: Duration = Duration::from_secs(30);

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < until,
            "broker did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the binary on ipc endpoints in `dir` and waits until it listens.
fn spawn_broker(dir: &std::path::Path) -> Child {
    common::spawn_broker(dir).0
}

#[test]
fn sigterm_and_sigint_stop_it_with_exit_code_zero() {
    deadline(LIMIT, || {
        for sig in ["TERM", "INT"] {
            let dir = tempfile::tempdir().unwrap();
            let mut child = spawn_broker(dir.path());
            let url = format!("ipc://{}", dir.path().join("main.sock").display());
            let mut client = zhub_client::Client::connect(&url).unwrap();
            let mut sub = client.subscribe(&["t"]).unwrap();
            client.publish("t", &1).unwrap();
            assert!(sub.recv_timeout(Duration::from_secs(5)).unwrap().is_some());
            let sent = Instant::now();
            signal(&child, sig);
            let status = wait_with_deadline(&mut child, Duration::from_secs(2));
            assert!(status.success(), "SIG{sig}: {status:?}");
            assert!(sent.elapsed() < Duration::from_secs(2));
        }
    });
}

fn run_expecting_failure(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("binary runs");
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one clear line, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn startup_errors_are_one_line_and_a_failure_exit() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();

        let err = run_expecting_failure(&["--listen", "tcp://127.0.0.1", "--data-dir", data]);
        assert!(err.contains("invalid main endpoint"), "{err}");

        // Address in use: hold a port with a plain listener.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let in_use = format!("tcp://127.0.0.1:{port}");
        let err = run_expecting_failure(&[
            "--listen",
            "tcp://127.0.0.1:0",
            "--publish",
            &in_use,
            "--data-dir",
            data,
        ]);
        assert!(
            err.contains("cannot bind publish endpoint") && err.contains("in use"),
            "{err}"
        );

        // Unwritable data dir: a path below a regular file.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let below = file.join("data");
        let err = run_expecting_failure(&[
            "--listen",
            "tcp://127.0.0.1:0",
            "--data-dir",
            below.to_str().unwrap(),
        ]);
        assert!(err.contains("data directory"), "{err}");

        let err = run_expecting_failure(&["--config", "/nonexistent/zhub.toml"]);
        assert!(err.contains("zhub.toml"), "{err}");
    });
}

#[test]
fn help_documents_every_setting_with_its_default() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "tcp://127.0.0.1:5555",
        "--publish",
        "tcp://127.0.0.1:5556",
        "--subscribe",
        "tcp://127.0.0.1:5557",
        "--deliver",
        "tcp://127.0.0.1:5558",
        "--data-dir",
        "./zhub-data",
        "--config",
        "--subscribe-hwm",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// Runs the binary on ipc endpoints in `dir` with `extra` flags, expecting it to refuse to
/// start within a few seconds; returns its stderr.
fn refused(dir: &std::path::Path, extra: &[&str]) -> String {
    let ipc = |n: &str| format!("ipc://{}", dir.join(n).display());
    let child = Command::new(BIN)
        .args(["--listen", &ipc("main.sock"), "--publish", &ipc("pub.sock")])
        .args(["--subscribe", &ipc("sub.sock"), "--data-dir"])
        .arg(dir.join("data"))
        .args(extra)
        .env("RUST_LOG", "off")
        .stderr(Stdio::piped())
        .spawn()
        .expect("broker binary starts");
    // Killed when dropped: a broker that accepted the setting does not outlive the test.
    let mut child = common::BrokerChild(child);
    let status = wait_with_deadline(&mut child.0, Duration::from_secs(10));
    assert!(!status.success(), "{extra:?} should be refused");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    stderr
}

#[test]
fn settings_that_cannot_work_are_refused_at_start_naming_the_setting_and_its_range() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let err = refused(dir.path(), &["--heartbeat", "0s"]);
        assert!(
            err.contains("--heartbeat") && err.contains("3600s"),
            "{err}"
        );
        let err = refused(dir.path(), &["--publish-hwm=-1"]);
        assert!(err.contains("publish_hwm") && err.contains("1.."), "{err}");
        let toml = dir.path().join("zhub.toml");
        std::fs::write(&toml, "subscribe_hwm = -5\n").unwrap();
        let err = refused(dir.path(), &["--config", toml.to_str().unwrap()]);
        assert!(err.contains("subscribe_hwm"), "{err}");
        std::fs::write(&toml, "[[journal]]\nprefix = \"\"\nstream = \"all\"\n").unwrap();
        let err = refused(dir.path(), &["--config", toml.to_str().unwrap()]);
        assert!(err.contains("journal"), "{err}");
    });
}

/// Starts the binary on ipc endpoints in `dir` with its log (at info) on a pipe, for the tests
/// that read the log lines themselves.
fn spawn_with_piped_log(dir: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(common::ipc_flags(dir))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("zhub-broker starts")
}

/// A log written to a pipe or a file has no colour codes: they are for terminals only.
#[test]
fn the_log_has_no_colour_codes_off_a_terminal() {
    deadline(LIMIT, || {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_with_piped_log(dir.path());
        // The start-up lines, up to the fourth endpoint's; read before any assertion so that
        // a failing test still stops its broker.
        let mut start = Vec::new();
        if let Some(stderr) = child.stderr.take() {
            let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                start.push(line);
                if start.iter().filter(|l| l.contains("listening")).count() == 4 {
                    break;
                }
            }
            // Keep draining, so the broker never writes its shutdown lines to a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
        }
        signal(&child, "TERM");
        let status = wait_with_deadline(&mut child, Duration::from_secs(5));
        let listening = start.iter().filter(|l| l.contains("listening")).count();
        assert_eq!(listening, 4, "the broker logs its endpoints: {start:?}");
        for line in &start {
            assert!(!line.contains('\u{1b}'), "escape code in {line:?}");
        }
        assert!(status.success(), "{status:?}");
    });
}

/// A log reader that went away (`zhub-broker 2>&1 | head`) does not turn a clean stop into a
/// panic: the lines that cannot be written are lost, and the broker exits 0.
#[test]
fn a_closed_log_pipe_does_not_fail_the_shutdown() {
    deadline(LIMIT, || {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_with_piped_log(dir.path());
        if let Some(stderr) = child.stderr.take() {
            let lines = BufReader::new(stderr).lines().map_while(Result::ok);
            lines
                .filter(|l| l.contains("listening"))
                .take(4)
                .for_each(drop);
            // The reader is dropped here: the broker's next log line meets a closed pipe.
        }
        signal(&child, "TERM");
        let status = wait_with_deadline(&mut child, Duration::from_secs(5));
        assert!(status.success(), "{status:?}");
    });
}
