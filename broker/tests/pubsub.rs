//! Publish/subscribe through an in-process broker, over tcp and ipc.

mod common;

use std::time::Duration;

use common::{deadline, start, BOTH};
use zhub_client::{Client, Encoding};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(5);

#[test]
fn typed_and_raw_messages_round_trip() {
    deadline(LIMIT, || {
        for transport in BOTH {
            let broker = start(transport);
            let mut publisher = Client::connect(&broker.url).unwrap();
            let mut listener = Client::connect(&broker.url).unwrap();
            let mut sub = listener.subscribe(&["sensors."]).unwrap();
            publisher.publish("sensors.temp", &21.5f64).unwrap();
            publisher
                .publish_bytes("sensors.raw", b"\x00\x01raw")
                .unwrap();
            publisher.publish("other.topic", &"not for us").unwrap();
            publisher.publish("sensors.temp", &22.0f64).unwrap();

            let first = sub.recv_timeout(WAIT).unwrap().expect("first message");
            assert_eq!(first.topic(), "sensors.temp");
            assert_eq!(first.decode::<f64>().unwrap(), 21.5);
            assert_eq!(first.header().encoding, Encoding::MsgPack);
            assert_eq!(first.header().publisher, publisher.publisher_id());
            assert_eq!(first.header().seq, 1);

            let raw = sub.recv_timeout(WAIT).unwrap().expect("raw message");
            assert_eq!(raw.topic(), "sensors.raw");
            assert_eq!(raw.body(), b"\x00\x01raw");
            assert_eq!(raw.header().encoding, Encoding::Raw);
            assert_eq!(raw.header().seq, 1, "sequence numbers count per topic");

            let second = sub.recv_timeout(WAIT).unwrap().expect("second message");
            assert_eq!(second.decode::<f64>().unwrap(), 22.0);
            assert_eq!(second.header().seq, 2);
            assert!(second.lamport() > first.lamport());
            assert!(
                sub.try_recv().unwrap().is_none(),
                "other.topic must not match"
            );
            assert_eq!(sub.gaps(), 0);
        }
    });
}
