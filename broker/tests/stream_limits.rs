//! Limits on what the event log holds: `max_streams`, and file descriptors under a low
//! process limit, where many more streams than the limit would allow at three descriptors
//! each are created, written, read and reopened by the `zhub-broker` binary.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{deadline, start_with, BrokerChild, Transport};
use zhub_client::{Client, ClientOptions, RequestErrorKind, StreamSettings};

const LIMIT: Duration = Duration::from_secs(120);
const BIN: &str = env!("CARGO_BIN_EXE_zhub-broker");
/// The child's limit on open files, soft and hard.
const OPEN_FILES: u32 = 256;
/// Streams created under it: 900 descriptors at three a stream.
const STREAMS: u32 = 300;

#[test]
fn creating_a_stream_beyond_max_streams_is_refused_clearly() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.max_streams = 3);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut log = client.log();
        for name in ["a", "b", "c"] {
            log.create(name, StreamSettings::default()).unwrap();
        }
        let err = log.create("d", StreamSettings::default()).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        assert!(err.to_string().contains("max_streams"), "{err}");
        // Room again once one goes.
        log.delete("a").unwrap();
        log.create("d", StreamSettings::default()).unwrap();
        assert_eq!(log.streams().unwrap().len(), 3);
    });
}

/// Starts the binary with its open file limit lowered to [`OPEN_FILES`] (soft and hard, so
/// it cannot raise it), on ipc endpoints in `dir`, and waits for its endpoints.
fn spawn_limited(dir: &Path) -> (Child, String) {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {OPEN_FILES} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(common::ipc_flags(dir));
    common::spawn_and_wait(command, dir)
}

fn client(url: &str) -> Client {
    ClientOptions::new()
        .timeout(Duration::from_secs(10))
        .connect(url)
        .expect("a new client gets an answer")
}

fn stop(mut child: BrokerChild) {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < until, "the broker did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn many_streams_under_a_low_open_file_limit_keep_working_and_reopen() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = spawn_limited(dir.path());
        let child = BrokerChild(child);
        let mut c = client(&url);
        for s in 0..STREAMS {
            let name = format!("s{s}");
            c.log().create(&name, StreamSettings::default()).unwrap();
            assert_eq!(c.log().append_bytes(&name, None, b"first").unwrap(), 0);
        }
        // Every stream again, read too: the least recently used are closed and reopened.
        for s in 0..STREAMS {
            let name = format!("s{s}");
            assert_eq!(c.log().append_bytes(&name, None, b"second").unwrap(), 1);
            let records: Vec<_> = c.log().read(&name, 0).collect::<Result<_, _>>().unwrap();
            assert_eq!(records.len(), 2, "{name}");
        }
        // New clients still get answers.
        for _ in 0..20 {
            let mut other = client(&url);
            assert_eq!(other.log().streams().unwrap().len(), STREAMS as usize);
        }
        drop(c);
        stop(child);

        // It starts again under the same limit, with every stream and record.
        let (child, url) = spawn_limited(dir.path());
        let _child = BrokerChild(child);
        let mut c = client(&url);
        assert_eq!(c.log().streams().unwrap().len(), STREAMS as usize);
        for s in 0..STREAMS {
            let name = format!("s{s}");
            let records: Vec<_> = c.log().read(&name, 0).collect::<Result<_, _>>().unwrap();
            let values: Vec<&[u8]> = records.iter().map(|r| &r.value[..]).collect();
            assert_eq!(values, [&b"first"[..], &b"second"[..]], "{name}");
            assert_eq!(c.log().append_bytes(&name, None, b"third").unwrap(), 2);
        }
    });
}
