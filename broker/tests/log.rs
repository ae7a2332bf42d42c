//! The event log through the broker: the client API, long polls, and acknowledged appends
//! surviving SIGKILL of the broker.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{deadline, kill_while_writing, spawn_broker, start, BrokerChild, Transport};
use zhub_client::{Client, ClientOptions, FsyncPolicy, ReadFrom, RequestErrorKind, StreamSettings};

const LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Event {
    n: u32,
    what: String,
}

#[test]
fn append_read_list_and_delete_through_the_broker() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut log = client.log();
        log.create("events", StreamSettings::default()).unwrap();
        let err = log.create("events", StreamSettings::default()).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        assert_eq!(
            log.append(
                "events",
                &Event {
                    n: 0,
                    what: "first".into()
                }
            )
            .unwrap(),
            0
        );
        let batch: Vec<Event> = (1..=99)
            .map(|n| Event {
                n,
                what: format!("event {n}"),
            })
            .collect();
        assert_eq!(
            log.append_batch("events", &batch).unwrap(),
            (1..=99).collect::<Vec<u64>>()
        );
        assert_eq!(
            log.append_bytes("events", Some(b"key"), b"\x00raw")
                .unwrap(),
            100
        );

        let streams = log.streams().unwrap();
        assert_eq!(
            (streams[0].name.as_str(), streams[0].records),
            ("events", 101)
        );
        let all: Vec<_> = client
            .log()
            .read("events", 0)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all.len(), 101);
        for (i, r) in all.iter().take(100).enumerate() {
            let e: Event = r.decode().unwrap();
            assert_eq!((r.offset, e.n), (i as u64, i as u32));
        }
        assert_eq!(
            (all[100].key.as_deref(), &all[100].value[..]),
            (Some(&b"key"[..]), &b"\x00raw"[..])
        );
        // From a time: everything was appended after `start`.
        let t = all[50].timestamp_us;
        let first = client
            .log()
            .read_from_time("events", t)
            .next()
            .unwrap()
            .unwrap();
        assert!(first.offset <= 50 && first.timestamp_us >= t);

        let err = client.log().append("nope", &1).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);
        // Over the stream's record limit, within the broker's message limit: rejected.
        let big = vec![0u8; 7 << 20];
        let limited = StreamSettings {
            max_record_bytes: Some(1 << 20),
            ..StreamSettings::default()
        };
        client.log().create("small", limited).unwrap();
        let err = client.log().append_bytes("small", None, &big).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        // Over the broker's message limit (8 MiB): refused before the log sees it.
        let huge = vec![0u8; 9 << 20];
        let err = client
            .log()
            .append_bytes("events", None, &huge)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::TooLarge, "{err}");
        client.log().delete("events").unwrap();
        client.log().delete("small").unwrap();
        assert!(client.log().streams().unwrap().is_empty());
    });
}

#[test]
fn a_long_poll_returns_as_soon_as_records_arrive() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        let settings = StreamSettings {
            fsync: Some(FsyncPolicy::Never),
            ..StreamSettings::default()
        };
        client.log().create("tail", settings).unwrap();
        // Each stats call counts itself; the waiter's connect and read make two more.
        let base = client.stats().unwrap().requests.received;
        let url = broker.url.clone();
        let waiter = std::thread::spawn(move || {
            let mut c = Client::connect(&url).unwrap();
            c.log()
                .read_batch(
                    "tail",
                    ReadFrom::Offset(0),
                    1 << 20,
                    Duration::from_secs(30),
                )
                .unwrap()
        });
        // Wait until the waiter's read has reached the broker (and found nothing).
        for calls in 1.. {
            if client.stats().unwrap().requests.received >= base + calls + 2 {
                break;
            }
        }
        client.log().append("tail", &"wake up").unwrap();
        let (records, next) = waiter.join().unwrap();
        assert_eq!((records.len(), next), (1, 1));
        // With nothing new, the poll ends empty at its wait.
        let (records, next) = client
            .log()
            .read_batch(
                "tail",
                ReadFrom::Offset(1),
                1 << 20,
                Duration::from_millis(50),
            )
            .unwrap();
        assert!(records.is_empty());
        assert_eq!(next, 1);
    });
}

/// Eight clients append with `fsync = always` while the broker is killed with SIGKILL; after a
/// restart every acknowledged offset holds exactly the bytes acknowledged for it.
/// One producer with 64 appends in flight: every record lands, in the order given, and
/// the acknowledgements come back in that order; the window bounds what is in flight; a
/// failure stops the appender and is reported.
#[test]
fn a_pipelined_appender_keeps_order_and_its_window() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        client
            .log()
            .create("piped", StreamSettings::default())
            .unwrap();
        let mut offsets = Vec::new();
        {
            let mut appender = client.log().appender("piped", 64);
            for i in 0..2000u32 {
                appender
                    .append_bytes(None, format!("record {i}").as_bytes())
                    .unwrap();
                assert!(appender.in_flight() <= 64);
                offsets.extend(appender.take_acked());
            }
            offsets.extend(appender.flush().unwrap());
            assert_eq!(appender.in_flight(), 0);
        }
        assert_eq!(offsets, (0..2000).collect::<Vec<u64>>());
        let records: Vec<_> = client
            .log()
            .read("piped", 0)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 2000);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.value, format!("record {i}").into_bytes());
        }

        // A record over the stream's limit fails its append; the appender then takes no more,
        // and the client is free for other requests.
        let settings = StreamSettings {
            max_record_bytes: Some(64),
            ..StreamSettings::default()
        };
        client.log().create("small", settings).unwrap();
        let mut appender = client.log().appender("small", 8);
        appender.append_bytes(None, b"fits").unwrap();
        appender.append_bytes(None, &[0u8; 1000]).unwrap();
        let err = appender.flush().unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        assert_eq!(appender.take_acked(), vec![0]);
        let err = appender.append_bytes(None, b"more").unwrap_err();
        assert!(err.to_string().contains("earlier append failed"), "{err}");
        drop(appender);
        assert_eq!(client.in_flight(), 0);
        assert!(client.log().streams().unwrap().len() >= 2);
    });
}

/// Acknowledged pipelined appends survive SIGKILL of the broker like single ones: under
/// `always`, each acknowledgement came after the sync that covers its record.
#[test]
fn acknowledged_pipelined_appends_survive_sigkill_of_the_broker() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = spawn_broker(dir.path());
        Client::connect(&url)
            .unwrap()
            .log()
            .create("durable", StreamSettings::default())
            .unwrap();
        // Each call appends 32 records through a window of 16 and reports what was
        // acknowledged (the batch is cut short by the kill).
        let acked: Vec<Vec<(u64, Vec<u8>)>> =
            kill_while_writing(&mut child, &url, 2, 100, |c, w, i| {
                let values: Vec<Vec<u8>> = (0..32)
                    .map(|j| format!("writer {w} batch {i} record {j}").into_bytes())
                    .collect();
                let mut appender = c.log().appender("durable", 16);
                let mut acked = Vec::new();
                for value in &values {
                    if appender.append_bytes(None, value).is_err() {
                        break;
                    }
                    acked.extend(appender.take_acked());
                }
                let _ = appender.flush().map(|more| acked.extend(more));
                acked.extend(appender.take_acked());
                let pairs: Vec<(u64, Vec<u8>)> = acked.into_iter().zip(values).collect();
                (!pairs.is_empty()).then_some(pairs)
            });

        let (child, url) = spawn_broker(dir.path());
        let _child = BrokerChild(child);
        let mut client = ClientOptions::new()
            .timeout(Duration::from_secs(10))
            .connect(&url)
            .unwrap();
        let stored: HashMap<u64, Vec<u8>> = client
            .log()
            .read("durable", 0)
            .map(|r| r.map(|r| (r.offset, r.value)))
            .collect::<Result<_, _>>()
            .unwrap();
        let mut checked = 0;
        for (offset, value) in acked.iter().flatten() {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "acknowledged offset {offset} lost or changed"
            );
            checked += 1;
        }
        assert!(checked >= 100, "only {checked} acknowledged");
    });
}

#[test]
fn acknowledged_appends_survive_sigkill_of_the_broker() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = spawn_broker(dir.path());
        Client::connect(&url)
            .unwrap()
            .log()
            .create("durable", StreamSettings::default())
            .unwrap();

        let acked: HashMap<u64, Vec<u8>> =
            kill_while_writing(&mut child, &url, 8, 2000, |c, w, i| {
                let value = format!("writer {w} record {i} {}", "x".repeat((i % 50) as usize));
                let value = value.into_bytes();
                let offset = c.log().append_bytes("durable", None, &value).ok()?;
                Some((offset, value))
            })
            .into_iter()
            .collect();

        let (child, url) = spawn_broker(dir.path());
        let _child = BrokerChild(child);
        let mut client = ClientOptions::new()
            .timeout(Duration::from_secs(10))
            .connect(&url)
            .unwrap();
        let records: Vec<_> = client
            .log()
            .read("durable", 0)
            .collect::<Result<_, _>>()
            .unwrap();
        let stored: HashMap<u64, Vec<u8>> =
            records.into_iter().map(|r| (r.offset, r.value)).collect();
        for (offset, value) in &acked {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "acknowledged offset {offset} lost or changed"
            );
        }
        // Offsets run on without holes after recovery.
        let next = client
            .log()
            .append_bytes("durable", None, b"after restart")
            .unwrap();
        assert_eq!(next as usize, stored.len());
    });
}
