//! Helpers shared by the broker's integration tests: in-process brokers on free ports or
//! unique ipc paths, and a hard deadline for every test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use zhub_broker::{Broker, Config};

pub mod cluster;
pub mod handshake;

/// A broker running in this process, with the temporary directory holding its state.
pub struct TestBroker {
    pub broker: Option<Broker>,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl TestBroker {
    pub fn shutdown(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Which transport a test runs over.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Tcp,
    Ipc,
}

pub const BOTH: [Transport; 2] = [Transport::Tcp, Transport::Ipc];

pub fn start(transport: Transport) -> TestBroker {
    start_with(transport, |_| {})
}

pub fn start_with(transport: Transport, tweak: impl FnOnce(&mut Config)) -> TestBroker {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = match transport {
        Transport::Tcp => Config::local_tcp(dir.path().join("data")),
        Transport::Ipc => Config::local_ipc(dir.path()),
    };
    tweak(&mut config);
    let broker = Broker::start(&config).expect("broker starts");
    let url = broker.info().main.clone();
    TestBroker {
        broker: Some(broker),
        dir,
        url,
    }
}

/// Runs `body` on its own thread and fails the test if it has not finished within `limit`.
pub fn deadline<F>(limit: Duration, body: F)
where
    F: FnOnce() + Send + 'static,
{
    let (done_tx, done_rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(limit) {
        Ok(()) => handle.join().expect("test body"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic here.
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test exceeded its deadline of {limit:?}"),
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_zhub-broker");

/// How many "listening" lines a broker logs at start, one per endpoint.
const ENDPOINTS: usize = 4;

/// The flags that put a broker's endpoints on ipc sockets in `dir` and its data in
/// `dir/data`.
pub fn ipc_flags(dir: &Path) -> Vec<String> {
    let ipc = |n: &str| format!("ipc://{}", dir.join(n).display());
    vec![
        "--listen".into(),
        ipc("main.sock"),
        "--publish".into(),
        ipc("pub.sock"),
        "--subscribe".into(),
        ipc("sub.sock"),
        "--deliver".into(),
        ipc("deliver.sock"),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
    ]
}

/// Starts `command` (the `zhub-broker` binary with [`ipc_flags`] for `dir`, perhaps behind a
/// wrapper such as `sh -c`) and returns once every endpoint is bound, with the main
/// endpoint's URL. An ERROR line before that fails the test.
pub fn spawn_and_wait(mut command: Command, dir: &Path) -> (Child, String) {
    let mut child = command
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("zhub-broker starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut listening = 0;
    while listening < ENDPOINTS {
        let line = match lines.next() {
            Some(Ok(line)) if !line.contains("ERROR") => line,
            other => {
                // Never leave the child behind: it would outlive the test (and hold whatever
                // it inherited, such as a build lock).
                let _ = child.kill();
                let _ = child.wait();
                panic!("the broker did not start: {other:?}");
            }
        };
        if line.contains("listening") {
            listening += 1;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, format!("ipc://{}", dir.join("main.sock").display()))
}

/// Starts the `zhub-broker` binary as a child on ipc sockets in `dir`, its data in
/// `dir/data`, with `extra` flags; returns once its endpoints are bound, with the main
/// endpoint's URL.
pub fn spawn_broker_with(dir: &Path, extra: &[&str]) -> (Child, String) {
    let mut command = Command::new(BIN);
    command.args(ipc_flags(dir)).args(extra);
    spawn_and_wait(command, dir)
}

/// [`spawn_broker_with`] and no extra flags.
pub fn spawn_broker(dir: &Path) -> (Child, String) {
    spawn_broker_with(dir, &[])
}

/// Kills a child with SIGKILL (no chance to flush or sync) and reaps it.
pub fn kill9(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = child.wait();
}

/// Runs `writers` threads against the broker child at `url`, each with its own client (2 s
/// timeout), calling `write(client, writer, i)` for i = 0, 1, ... until a write fails;
/// kills the broker with SIGKILL once `min_acked` writes were acknowledged; returns every
/// acknowledged write's result, each writer's in the order acknowledged.
pub fn kill_while_writing<A: Send + 'static>(
    child: &mut Child,
    url: &str,
    writers: u32,
    min_acked: usize,
    write: fn(&mut zhub_client::Client, u32, u32) -> Option<A>,
) -> Vec<A> {
    use std::sync::{Arc, Mutex};
    let acked: Arc<Mutex<Vec<A>>> = Arc::default();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (url, acked) = (url.to_owned(), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut client = zhub_client::ClientOptions::new()
                    .timeout(Duration::from_secs(2))
                    .connect(&url)
                    .expect("writer connects");
                for i in 0u32.. {
                    // A failure is the broker dying under the writer: it stops.
                    let Some(done) = write(&mut client, w, i) else {
                        return;
                    };
                    acked.lock().expect("acked").push(done);
                }
            })
        })
        .collect();
    // Kill it in the middle of the writes.
    while acked.lock().expect("acked").len() < min_acked {
        std::thread::yield_now();
    }
    kill9(child);
    for t in threads {
        t.join().expect("writer");
    }
    let mut acked = acked.lock().expect("acked");
    std::mem::take(&mut *acked)
}

/// A broker child process, killed when dropped: a failing test leaves no broker behind.
pub struct BrokerChild(pub Child);

impl Drop for BrokerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
