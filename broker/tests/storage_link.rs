//! The link between the router and the storage thread: bounded (a full link answers Busy at
//! once, and nothing is lost), and watched (a storage thread that dies fails every request at
//! once, and the broker reports it rather than hang).

mod common;

use std::time::{Duration, Instant};

use common::deadline;
use zhub_broker::{Broker, BrokerError, Config};
use zhub_client::{Client, ReadFrom, RequestErrorKind, StreamSettings};
use zhub_protocol::log::{LogRequest, NewRecord, LOG_SERVICE};

const LIMIT: Duration = Duration::from_secs(60);

fn append_body(n: u32) -> Vec<u8> {
    zhub_protocol::body::encode(&LogRequest::Append {
        stream: "s".into(),
        records: vec![NewRecord {
            key: None,
            value: n.to_be_bytes().to_vec(),
            timestamp_us: None,
        }],
    })
    .unwrap()
}

/// Thousands of synced appends in flight through a link that holds four: those that find it
/// full are answered Busy at once, the others are appended, and the stream holds exactly the
/// acknowledged ones.
#[test]
fn a_full_link_answers_busy_and_loses_nothing() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            storage_queue: 4,
            ..Config::local_ipc(dir.path())
        };
        let broker = Broker::start(&config).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        // Synced appends: every turn of the storage thread waits for the disk.
        client.log().create("s", StreamSettings::default()).unwrap();
        const N: u32 = 2000;
        for n in 0..N {
            client
                .send_request_bytes(LOG_SERVICE, &append_body(n), Duration::from_secs(30))
                .unwrap();
        }
        let (mut ok, mut busy) = (0u64, 0u64);
        for _ in 0..N {
            match client.recv_reply().unwrap().1 {
                Ok(_) => ok += 1,
                Err(e) if e.kind() == RequestErrorKind::Busy => {
                    assert!(e.to_string().contains("storage_queue"), "{e}");
                    busy += 1;
                }
                Err(e) => panic!("unexpected answer: {e}"),
            }
        }
        assert!(busy > 0, "a link of 4 took {N} appends without one Busy");
        assert!(ok > 0);
        let (records, _) = client
            .log()
            .read_batch("s", ReadFrom::Offset(0), 1 << 24, Duration::ZERO)
            .unwrap();
        assert_eq!(
            records.len() as u64,
            ok,
            "exactly the acknowledged appends are stored"
        );
        broker.shutdown();
    });
}

/// The storage thread dies while holding a long-poll read: that read is answered Internal at
/// once (not after its 30 s wait), later log and KV requests too, the router goes on serving
/// everything else, and the broker reports the failure.
#[test]
fn a_dead_storage_thread_fails_requests_at_once_and_is_reported() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(&Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let mut client = Client::connect(&url).unwrap();
        client.log().create("s", StreamSettings::default()).unwrap();
        let waiting = std::thread::spawn(move || {
            let mut reader = Client::connect(&url).unwrap();
            let started = Instant::now();
            let err = reader
                .log()
                .read_batch("s", ReadFrom::Offset(0), 1 << 20, Duration::from_secs(30))
                .unwrap_err();
            (err, started.elapsed())
        });
        // The read is held by the storage thread once a later request has been answered
        // (the thread serves its link in order).
        client.log().streams().unwrap();
        broker.crash_thread("zhub-storage");

        let (err, took) = waiting.join().unwrap();
        assert_eq!(err.kind(), RequestErrorKind::Internal, "{err}");
        assert!(took < Duration::from_secs(20), "answered after {took:?}");
        let err = client.kv().put("k", &1).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Internal);
        assert!(
            err.to_string().contains("storage thread has stopped"),
            "{err}"
        );
        // Routing itself goes on.
        client.stats().unwrap();

        // What `zhub-broker` waits on: it returns the failure, so the binary exits non-zero.
        let (_stop, never) = std::sync::mpsc::channel::<()>();
        match broker.serve(never) {
            Err(BrokerError::ThreadFailed { name }) => assert_eq!(name, "zhub-storage"),
            other => panic!("expected the storage thread's failure, got {other:?}"),
        }
    });
}
