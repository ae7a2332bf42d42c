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

/// `subscribe()` returning means live end to end: a message published right after it, by a
/// client that has published before or by a brand-new one, is always received.
#[test]
fn no_slow_joiner_loss() {
    deadline(LIMIT * 2, || {
        for transport in BOTH {
            let broker = start(transport);
            let mut warm = Client::connect(&broker.url).unwrap();
            warm.publish("warm-up", &0).unwrap();
            for round in 0..40u32 {
                let mut listener = Client::connect(&broker.url).unwrap();
                let topic = format!("join.{round}");
                let mut sub = listener.subscribe(&[&topic]).unwrap();
                warm.publish(&topic, &round).unwrap();
                let mut fresh = Client::connect(&broker.url).unwrap();
                fresh.publish(&topic, &(round + 1000)).unwrap();
                let mut got: Vec<u32> = (0..2)
                    .map(|_| {
                        sub.recv_timeout(WAIT)
                            .unwrap()
                            .unwrap_or_else(|| panic!("{transport:?} round {round}: message lost"))
                            .decode()
                            .unwrap()
                    })
                    .collect();
                got.sort_unstable();
                assert_eq!(got, vec![round, round + 1000]);
            }
        }
    });
}

#[test]
fn prefixes_match_by_prefix_and_empty_matches_all() {
    deadline(LIMIT, || {
        let broker = start(common::Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut ab = client.subscribe(&["a.b", "x"]).unwrap();
        let mut all = client.subscribe(&[""]).unwrap();
        for topic in ["a.b.c", "a.c", "xyz", "b"] {
            client.publish(topic, &topic).unwrap();
        }
        let mut topics = Vec::new();
        while let Some(m) = ab.recv_timeout(Duration::from_millis(300)).unwrap() {
            topics.push(m.topic().to_owned());
        }
        assert_eq!(topics, ["a.b.c", "xyz"]);
        let mut every = Vec::new();
        for _ in 0..4 {
            every.push(
                all.recv_timeout(WAIT)
                    .unwrap()
                    .expect("message")
                    .topic()
                    .to_owned(),
            );
        }
        assert_eq!(
            every,
            ["a.b.c", "a.c", "xyz", "b"],
            "probes never reach users"
        );
    });
}

#[test]
fn lamport_clock_rules() {
    deadline(LIMIT, || {
        let broker = start(common::Transport::Tcp);
        let mut a = Client::connect(&broker.url).unwrap();
        let mut b = Client::connect(&broker.url).unwrap();
        let mut b_sub = b.subscribe(&["to-b"]).unwrap();
        for _ in 0..5 {
            a.publish("to-b", &()).unwrap();
        }
        assert_eq!(a.lamport(), 5, "sender increments before each send");
        let mut last = 0;
        for _ in 0..5 {
            let m = b_sub.recv_timeout(WAIT).unwrap().unwrap();
            assert!(m.lamport() > last);
            last = m.lamport();
        }
        assert_eq!(last, 5);
        assert_eq!(b.lamport(), 6, "receiver takes max(local, received) + 1");
        b.publish("from-b", &()).unwrap();
        assert_eq!(b.lamport(), 7);
    });
}

#[test]
fn reserved_and_invalid_topics_are_refused() {
    deadline(LIMIT, || {
        let broker = start(common::Transport::Tcp);
        let mut c = Client::connect(&broker.url).unwrap();
        for bad in ["", "$zhub.probe.x", "nul\0byte"] {
            let err = c.publish(bad, &1).unwrap_err();
            assert_eq!(
                err.kind(),
                zhub_client::PublishErrorKind::InvalidTopic,
                "{bad:?}"
            );
        }
        let long = "t".repeat(2000);
        assert_eq!(
            c.subscribe(&[long.as_str()]).unwrap_err().kind(),
            zhub_client::SubscribeErrorKind::InvalidTopic
        );
    });
}

/// A subscriber that stops reading loses messages at the broker (counted there and seen as
/// gaps by the subscriber); another subscriber keeps receiving everything.
#[test]
fn slow_subscriber_neither_blocks_others_nor_goes_unnoticed() {
    deadline(LIMIT * 2, || {
        let broker = common::start_with(common::Transport::Ipc, |c| c.subscribe_hwm = 100);
        let url = broker.url.clone();
        let options = || zhub_client::ClientOptions::new().subscribe_hwm(100);
        let mut slow_client = options().connect(&url).unwrap();
        let mut slow = slow_client.subscribe(&["flood"]).unwrap();

        // The fast subscriber reads on its own thread and acknowledges each chunk, so that it
        // never has more than one chunk outstanding and so can never overflow. A chunk is a
        // quarter of the queue: libzmq tells the writer of a pipe what its reader took only
        // every half queue (its low-water mark), so the writer may count up to 50 messages
        // more than are really waiting; with chunks of half the queue, a loaded machine
        // sometimes saw the fast queue full and a chunk's last message dropped.
        const CHUNK: u64 = 25;
        const TOTAL: u64 = 400 * CHUNK;
        let (ack_tx, ack_rx) = std::sync::mpsc::channel::<u64>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let fast_url = url.clone();
        let fast = std::thread::spawn(move || {
            let mut client = options().connect(&fast_url).unwrap();
            let mut sub = client.subscribe(&["flood"]).unwrap();
            ready_tx.send(()).unwrap();
            let mut next = 1u64;
            while next <= TOTAL + 1 {
                let m = sub
                    .recv_timeout(WAIT)
                    .unwrap()
                    .expect("fast subscriber starved");
                assert_eq!(m.header().seq, next, "fast subscriber lost a message");
                if next.is_multiple_of(CHUNK) {
                    ack_tx.send(next).unwrap();
                }
                next += 1;
            }
            sub.gaps()
        });
        ready_rx.recv().unwrap();

        let mut publisher = Client::connect(&url).unwrap();
        let body = vec![7u8; 1024];
        for i in 1..=TOTAL {
            publisher.publish_bytes("flood", &body).unwrap();
            if i.is_multiple_of(CHUNK) {
                assert_eq!(ack_rx.recv_timeout(WAIT).unwrap(), i);
            }
        }
        // Drain the slow subscriber, then send one last message it must get.
        while slow
            .recv_timeout(Duration::from_millis(200))
            .unwrap()
            .is_some()
        {}
        publisher.publish_bytes("flood", b"last").unwrap();
        let mut last = None;
        while let Some(m) = slow.recv_timeout(WAIT).unwrap() {
            if m.body() == b"last" {
                last = Some(m);
                break;
            }
        }
        assert!(
            last.is_some(),
            "the slow subscriber recovers once it reads again"
        );
        assert_eq!(fast.join().unwrap(), 0);
        assert!(
            slow.gaps() > 0,
            "the slow subscriber sees its losses as gaps"
        );
        assert_eq!(
            slow.received() + slow.gaps(),
            TOTAL + 1,
            "every message is received or counted lost"
        );
        assert_eq!(
            slow.missed(),
            slow.gaps(),
            "the broker told the subscriber of every message it dropped"
        );
        let stats = publisher.stats().unwrap();
        assert_eq!(
            stats.bus.dropped.slow_subscriber,
            TOTAL + 1 - slow.received(),
            "the broker counts every message the slow subscriber lost: {stats:?}"
        );
        assert_eq!(stats.bus.messages_in, stats.bus.messages_out);
    });
}

/// A subscriber that stops reading while the last messages are published is told how many it
/// lost even though no later message shows the hole, and the broker's count agrees.
#[test]
fn losses_at_the_tail_are_reported_by_notice() {
    deadline(LIMIT, || {
        let broker = common::start_with(common::Transport::Ipc, |c| c.subscribe_hwm = 50);
        let options = || zhub_client::ClientOptions::new().subscribe_hwm(50);
        let mut listener = options().connect(&broker.url).unwrap();
        let mut sub = listener.subscribe(&["tail."]).unwrap();
        let mut publisher = Client::connect(&broker.url).unwrap();
        const TOTAL: u64 = 20_000;
        let body = vec![1u8; 512];
        for _ in 0..TOTAL {
            publisher.publish_bytes("tail.x", &body).unwrap();
        }
        let until = std::time::Instant::now() + WAIT * 2;
        while sub.received() + sub.missed() < TOTAL {
            assert!(
                std::time::Instant::now() < until,
                "received {} + missed {} != {TOTAL}",
                sub.received(),
                sub.missed()
            );
            sub.recv_timeout(Duration::from_millis(20)).unwrap();
        }
        assert_eq!(sub.received() + sub.missed(), TOTAL);
        assert!(sub.missed() > 0, "the subscriber's queue never overflowed");
        let stats = publisher.stats().unwrap();
        assert_eq!(stats.bus.dropped.slow_subscriber, sub.missed(), "{stats:?}");
    });
}

/// A plain ZeroMQ SUB socket, knowing nothing of zhub's addressing, receives bus frames as
/// single frames, and one subscribed to everything sees no other subscriber's envelopes.
#[test]
fn plain_zeromq_subscribers_receive_plain_frames() {
    deadline(LIMIT, || {
        for transport in BOTH {
            let broker = start(transport);
            let mut client = Client::connect(&broker.url).unwrap();
            let info = client.info().clone();
            let mut zhub_sub = client.subscribe(&["plain."]).unwrap();
            let context = zmq::Context::new();
            let raw = |prefix: &[u8]| {
                let sub = context.socket(zmq::SUB).unwrap();
                sub.set_linger(0).unwrap();
                sub.set_rcvtimeo(100).unwrap();
                sub.connect(&info.subscribe).unwrap();
                sub.set_subscribe(prefix).unwrap();
                sub
            };
            let some = raw(b"plain.");
            let all = raw(b"");
            // No handshake for a plain SUB: publish until both have one, then one more.
            let until = std::time::Instant::now() + WAIT;
            let first = |sub: &zmq::Socket, client: &mut Client| loop {
                assert!(
                    std::time::Instant::now() < until,
                    "plain subscriber starved"
                );
                client.publish_bytes("plain.warm", b"w").unwrap();
                if let Ok(frame) = sub.recv_bytes(0) {
                    break frame;
                }
            };
            let frame = first(&some, &mut client);
            assert!(
                !some.get_rcvmore().unwrap(),
                "a plain subscriber gets single frames"
            );
            let decoded = zhub_protocol::bus::decode(&frame).unwrap();
            assert_eq!(decoded.topic, "plain.warm");
            first(&all, &mut client);
            client.publish_bytes("plain.last", b"last").unwrap();
            for sub in [&some, &all] {
                let frame = loop {
                    let frame = sub.recv_bytes(0).expect("plain subscriber lost a message");
                    assert!(!sub.get_rcvmore().unwrap());
                    assert_ne!(frame[0], 0, "an envelope reached a plain subscriber");
                    if zhub_protocol::bus::decode(&frame).unwrap().topic == "plain.last" {
                        break frame;
                    }
                };
                assert!(frame.ends_with(b"last"));
            }
            // The zhub subscriber got them all too, addressed.
            let mut seen_last = false;
            while let Some(m) = zhub_sub.recv_timeout(Duration::from_millis(200)).unwrap() {
                seen_last |= m.topic() == "plain.last";
            }
            assert!(seen_last);
            assert_eq!(zhub_sub.gaps(), 0);
        }
    });
}

/// A body over the broker's `max_message` is refused by the client with `TooLarge`; a peer
/// that sends such a frame anyway is cut off, and the bus goes on for everyone else.
#[test]
fn messages_over_max_message_are_refused_and_cut() {
    deadline(LIMIT, || {
        let broker = common::start_with(common::Transport::Ipc, |c| c.max_message = 64 << 10);
        let mut client = Client::connect(&broker.url).unwrap();
        assert_eq!(client.info().max_message, 64 << 10);
        let mut sub = client.subscribe(&["big."]).unwrap();
        let err = client
            .publish_bytes("big.one", &vec![0u8; (64 << 10) + 1])
            .unwrap_err();
        assert_eq!(err.kind(), zhub_client::PublishErrorKind::TooLarge, "{err}");
        client
            .publish_bytes("big.fits", &vec![0u8; 64 << 10])
            .unwrap();
        let m = sub
            .recv_timeout(WAIT)
            .unwrap()
            .expect("a body at the limit");
        assert_eq!(m.body().len(), 64 << 10);

        // A raw publisher that ignores the limit: its frame never reaches a subscriber.
        let context = zmq::Context::new();
        let raw = context.socket(zmq::XPUB).unwrap();
        raw.set_linger(0).unwrap();
        raw.connect(&client.info().publish).unwrap();
        raw.recv_bytes(0).expect("the broker subscribes");
        let header = zhub_protocol::BusHeader {
            publisher: 1,
            seq: 1,
            timestamp_us: 0,
            lamport: 0,
            encoding: zhub_client::Encoding::Raw,
        };
        let huge = zhub_protocol::bus::encode("big.huge", &header, &vec![0u8; 1 << 20]);
        raw.send(huge, 0).unwrap();
        client.publish_bytes("big.after", b"still here").unwrap();
        let m = sub.recv_timeout(WAIT).unwrap().expect("the bus goes on");
        assert_eq!(m.topic(), "big.after");
        client.publish_bytes("big.last", b"").unwrap();
        let m = sub.recv_timeout(WAIT).unwrap().expect("the bus goes on");
        assert_eq!(m.topic(), "big.last", "the oversized frame was delivered");
    });
}

#[test]
fn dropping_a_subscriber_unsubscribes() {
    deadline(LIMIT, || {
        let broker = start(common::Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let before = client.stats().unwrap().bus.subscriptions;
        let sub = client.subscribe(&["one", "two"]).unwrap();
        // Subscriptions and unsubscriptions (the probe topic's, once confirmed) travel
        // asynchronously: wait for the count, within the deadline.
        while client.stats().unwrap().bus.subscriptions != before + 2 {
            std::thread::yield_now();
        }
        drop(sub);
        while client.stats().unwrap().bus.subscriptions != before {
            std::thread::yield_now();
        }
    });
}

#[test]
fn callback_subscription_until_unregistered() {
    deadline(LIMIT, || {
        let broker = start(common::Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = client
            .subscribe_with(&["events"], move |m| {
                let _ = tx.send(m.decode::<u32>().unwrap());
            })
            .unwrap();
        for i in 0..10u32 {
            client.publish("events", &i).unwrap();
        }
        let got: Vec<u32> = (0..10).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        let ended = handle.unregister().expect("subscriber returned");
        assert_eq!(ended.received(), 10);
        client.publish("events", &99u32).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "no delivery after unregister"
        );
    });
}
