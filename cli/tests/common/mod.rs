//! Helpers shared by the CLI's integration tests.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

/// The `zhub` binary under test.
pub const ZHUB: &str = env!("CARGO_BIN_EXE_zhub");

/// Runs `zhub ARGS` against the broker at `url` and returns what it did.
pub fn zhub(url: &str, args: &[&str]) -> Output {
    Command::new(ZHUB)
        .args(args)
        .env("ZHUB_URL", url)
        .env("RUST_LOG", "off")
        .output()
        .expect("zhub runs")
}

/// The stdout of a run that must have succeeded (its stderr in the failure message).
pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// The stderr of a run that must have exited with status 1.
pub fn failed(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8(output.stderr.clone()).expect("utf-8 output")
}

/// Runs `body` on its own thread and fails the test if it has not finished within `limit`.
pub fn deadline(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test exceeded its deadline of {limit:?}"),
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, a failing test's too: a child
/// left behind, stopped or not, would keep what it inherited (pipes, locks) open.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;

    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
