//! Consumer groups and durable topics through the broker, across restarts.

mod common;

use std::time::Duration;

use common::deadline;
use zhub_broker::config::JournalRoute;
use zhub_broker::{Broker, Config};
use zhub_client::{Client, Message, ReadFrom, RequestErrorKind, StreamSettings};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_consumer_group_resumes_after_its_last_commit_across_a_restart() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::local_ipc(dir.path());
        let broker = Broker::start(&config).unwrap();
        {
            let mut client = Client::connect(&broker.info().main).unwrap();
            client
                .log()
                .create("jobs", StreamSettings::default())
                .unwrap();
            let jobs: Vec<u32> = (0..10).collect();
            client.log().append_batch("jobs", &jobs).unwrap();

            let mut consumer = client.log().consumer("jobs", "workers").unwrap();
            assert_eq!(consumer.committed(), None);
            for expected in 0..4u32 {
                let record = consumer.poll(Duration::ZERO).unwrap().unwrap();
                assert_eq!(record.decode::<u32>().unwrap(), expected);
            }
            consumer.commit().unwrap();
            // Read on without committing: these come again after the restart.
            consumer.poll(Duration::ZERO).unwrap().unwrap();
            consumer.poll(Duration::ZERO).unwrap().unwrap();
        }
        broker.shutdown();

        let broker = Broker::start(&config).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        let mut consumer = client.log().consumer("jobs", "workers").unwrap();
        assert_eq!(consumer.committed(), Some(4));
        let mut seen = Vec::new();
        while let Some(record) = consumer.poll(Duration::ZERO).unwrap() {
            seen.push(record.decode::<u32>().unwrap());
        }
        assert_eq!(seen, (4..10).collect::<Vec<u32>>());
        consumer.commit().unwrap();
        // A consumer at the end waits for the next record (long poll) and gets it.
        assert!(consumer.poll(Duration::from_millis(20)).unwrap().is_none());
        drop(consumer);

        // Another group starts from the beginning; a bad group name is refused.
        let mut other = client.log().consumer("jobs", "audit").unwrap();
        assert_eq!(other.poll(Duration::ZERO).unwrap().unwrap().offset, 0);
        drop(other);
        let err = client.log().consumer("nope", "g").err().unwrap();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);

        // Deleting the stream forgets its groups.
        client.log().delete("jobs").unwrap();
        client
            .log()
            .create("jobs", StreamSettings::default())
            .unwrap();
        let consumer = client.log().consumer("jobs", "workers").unwrap();
        assert_eq!(consumer.committed(), None);
    });
}

/// Subscribes to `prefix` and returns the subscriber once it is live.
fn subscriber(client: &mut Client, prefix: &str) -> zhub_client::Subscriber {
    client.subscribe(&[prefix]).unwrap()
}

#[test]
fn durable_topics_journal_replay_and_republish() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::local_ipc(dir.path());
        config.journal.push(JournalRoute {
            prefix: "audit.".into(),
            stream: "audit".into(),
        });
        let broker = Broker::start(&config).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        client.log().journal("orders.", "orders").unwrap();
        let mut routes = client.log().journals().unwrap();
        routes.sort();
        assert_eq!(
            routes,
            vec![
                JournalRoute {
                    prefix: "audit.".into(),
                    stream: "audit".into()
                },
                JournalRoute {
                    prefix: "orders.".into(),
                    stream: "orders".into()
                },
            ]
        );
        let err = client.log().journal("$zhub.", "x").unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);

        // The journal route is live once `journal` returns: publish and wait until the
        // records are there (a long poll, no sleep).
        for n in 0..5u32 {
            client.publish(&format!("orders.{n}"), &n).unwrap();
        }
        client.publish("other.topic", &"not journaled").unwrap();
        client.publish("audit.login", &"alice").unwrap();
        let mut records = Vec::new();
        while records.len() < 5 {
            let from = ReadFrom::Offset(records.len() as u64);
            let (batch, _) = client
                .log()
                .read_batch("orders", from, 1 << 20, Duration::from_secs(5))
                .unwrap();
            records.extend(batch);
        }
        for (n, record) in records.iter().enumerate() {
            let message = Message::from_record(record).unwrap();
            assert_eq!(message.topic(), format!("orders.{n}"));
            assert_eq!(record.key.as_deref(), Some(message.topic().as_bytes()));
            assert_eq!(message.decode::<u32>().unwrap(), n as u32);
            assert_eq!(message.header().seq, 1, "per-topic sequence kept");
            assert_eq!(record.timestamp_us as u64, message.header().timestamp_us);
        }
        let (audit, _) = client
            .log()
            .read_batch(
                "audit",
                ReadFrom::Offset(0),
                1 << 20,
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(
            Message::from_record(&audit[0])
                .unwrap()
                .decode::<String>()
                .unwrap(),
            "alice"
        );
        drop(client);
        broker.shutdown();

        // After a restart the runtime route is still there; replay from a timestamp.
        let broker = Broker::start(&config).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        assert_eq!(client.log().journals().unwrap().len(), 2);
        client.publish("orders.5", &5u32).unwrap();
        let (late, _) = client
            .log()
            .read_batch(
                "orders",
                ReadFrom::Offset(5),
                1 << 20,
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(Message::from_record(&late[0]).unwrap().topic(), "orders.5");
        let from_time: Vec<u64> = client
            .log()
            .read_from_time("orders", records[3].timestamp_us)
            .map(|r| r.unwrap().offset)
            .collect();
        assert_eq!(from_time, vec![3, 4, 5]);

        // Republish: a subscriber gets the journaled messages again, in order.
        let mut sub_client = Client::connect(&broker.info().main).unwrap();
        let mut sub = subscriber(&mut sub_client, "orders.");
        assert_eq!(
            client
                .log()
                .republish("orders", ReadFrom::Offset(0))
                .unwrap(),
            6
        );
        for n in 0..6u32 {
            let m = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(m.topic(), format!("orders.{n}"));
            assert_eq!(m.decode::<u32>().unwrap(), n);
        }
        // Republished messages are not journaled a second time.
        let streams = client.log().streams().unwrap();
        let orders = streams.iter().find(|s| s.name == "orders").unwrap();
        assert_eq!(orders.records, 6);

        // A stream of plain records cannot be republished; unjournal stops the journal.
        client
            .log()
            .create("plain", StreamSettings::default())
            .unwrap();
        client.log().append("plain", &1u8).unwrap();
        let err = client
            .log()
            .republish("plain", ReadFrom::Offset(0))
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected, "{err}");
        client.log().unjournal("orders.", "orders").unwrap();
        assert_eq!(client.log().journals().unwrap().len(), 1);
        let err = client.log().unjournal("orders.", "orders").unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);
    });
}

#[test]
fn empty_and_reserved_journal_prefixes_are_refused_at_start_and_at_runtime() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        for prefix in ["", "$zhub.kv."] {
            let config = Config {
                journal: vec![JournalRoute {
                    prefix: prefix.into(),
                    stream: "all".into(),
                }],
                ..Config::local_ipc(dir.path())
            };
            let err = Broker::start(&config).err().expect("refused at start");
            assert!(err.to_string().contains("journal"), "{err}");
        }
        let broker = Broker::start(&Config::local_ipc(dir.path())).unwrap();
        let mut client = Client::connect(&broker.info().main).unwrap();
        for prefix in ["", "$zhub.group."] {
            let err = client.log().journal(prefix, "all").unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    RequestErrorKind::Rejected | RequestErrorKind::BadRequest
                ),
                "{prefix:?}: {err}"
            );
        }
        assert!(client.log().journals().unwrap().is_empty());
    });
}
