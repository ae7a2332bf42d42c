//! Publish/subscribe across zones: interest travels as path vectors through gateways,
//! messages follow it without going round cycles of zones, redundant gateways deliver each
//! message once, and interest leaves with its subscriber even where zones form a cycle.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::cluster::{cluster_of, wait_for_peers, zoned};
use common::{deadline, TestBroker};
use zhub_client::{Client, Subscriber};
use zhub_protocol::builtin::{TopicRoute, TOPICS_SERVICE};

const LIMIT: Duration = Duration::from_secs(90);

/// Publishes probes from every publisher until every subscriber has heard every publisher:
/// interest takes a moment to cross the zones. Returns the probes each publisher sent.
fn probe_until_heard(
    publishers: &mut [Client],
    subscribers: &mut [Subscriber],
    topic: &str,
) -> Vec<u64> {
    let mut sent = vec![0u64; publishers.len()];
    let mut heard = vec![HashSet::new(); subscribers.len()];
    while heard.iter().any(|h| h.len() < publishers.len()) {
        for (p, n) in publishers.iter_mut().zip(&mut sent) {
            p.publish_bytes(topic, b"").unwrap();
            *n += 1;
        }
        for (sub, heard) in subscribers.iter_mut().zip(&mut heard) {
            while let Some(m) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
                heard.insert(m.header().publisher);
            }
        }
    }
    sent
}

/// Reads `sub` until it has seen `ends` end markers, returning the values of `data` messages
/// per publisher, in the order they came.
fn collect(sub: &mut Subscriber, ends: usize, what: &str) -> HashMap<u64, Vec<u64>> {
    let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut ended = 0;
    while ended < ends {
        let m = sub
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("{what} stalled after {got:?}"));
        if m.topic().ends_with(".data") {
            let v = u64::from_be_bytes(m.body().try_into().unwrap());
            got.entry(m.header().publisher).or_default().push(v);
        } else if m.topic().ends_with(".end") {
            ended += 1;
        }
    }
    got
}

/// Asks `b`'s `zhub.topics` until `done` holds for the routes of the filter `chain.`, as
/// (broker, zone, path) sorted by broker ("" for local subscribers).
fn topics_until(
    b: &TestBroker,
    done: impl Fn(&[(String, String, Vec<String>)]) -> bool,
) -> Vec<(String, String, Vec<String>)> {
    let mut client = Client::connect(&b.url).unwrap();
    loop {
        let routes: Vec<TopicRoute> = client.request(TOPICS_SERVICE, &()).unwrap();
        let mut routes: Vec<_> = routes
            .into_iter()
            .filter(|t| t.filter == "chain.")
            .map(|t| (t.broker, t.zone, t.path))
            .collect();
        routes.sort();
        if done(&routes) {
            return routes;
        }
        std::thread::yield_now();
    }
}

fn bus(b: &TestBroker) -> zhub_protocol::builtin::BusStats {
    Client::connect(&b.url).unwrap().stats().unwrap().bus
}

/// Zones A (a1, a2), B (gateways b1 and b2, each linked to a1 and c1) and C (c1), a
/// subscriber on a2, b2 and c1, publishers on a1 and c1: every subscriber gets every message
/// of the other zones' publisher exactly once, in order, with its header, though each
/// message reaches C and B by two routes; and no broker takes a message twice.
#[test]
fn topics_cross_a_chain_of_zones_once_over_redundant_gateways() {
    deadline(LIMIT, || {
        let a1 = zoned("a1", "A", &[]);
        let a2 = zoned("a2", "A", &[&cluster_of(&a1)]);
        let c1 = zoned("c1", "C", &[]);
        let b1 = zoned("b1", "B", &[&cluster_of(&a1), &cluster_of(&c1)]);
        let b2 = zoned(
            "b2",
            "B",
            &[&cluster_of(&a1), &cluster_of(&c1), &cluster_of(&b1)],
        );
        for (b, n) in [(&a1, 3), (&a2, 1), (&b1, 3), (&b2, 3), (&c1, 2)] {
            wait_for_peers(&mut Client::connect(&b.url).unwrap(), n);
        }
        let mut clients: Vec<Client> = [&a2, &b2, &c1]
            .iter()
            .map(|b| Client::connect(&b.url).unwrap())
            .collect();
        let mut subs: Vec<Subscriber> = clients
            .iter_mut()
            .map(|c| c.subscribe(&["chain."]).unwrap())
            .collect();
        let mut publishers = [
            Client::connect(&a1.url).unwrap(),
            Client::connect(&c1.url).unwrap(),
        ];
        let ids: Vec<u64> = publishers.iter().map(Client::publisher_id).collect();
        let probes = probe_until_heard(&mut publishers, &mut subs, "chain.probe");
        // `zhub.topics` says where messages on "chain." go from a1: to its zone mate, and to
        // both gateways, whose zone holds a subscriber (the shortest path each declared).
        let at_a1 = topics_until(&a1, |t| t.len() == 3);
        assert_eq!(
            at_a1,
            [
                ("a2".to_owned(), "A".to_owned(), vec![]),
                ("b1".to_owned(), "B".to_owned(), vec!["B".to_owned()]),
                ("b2".to_owned(), "B".to_owned(), vec!["B".to_owned()]),
            ]
        );
        let at_c1 = topics_until(&c1, |t| t.len() == 3);
        assert_eq!(at_c1[0], (String::new(), String::new(), vec![]), "local");

        const N: u64 = 1000;
        for p in &mut publishers {
            for i in 0..N {
                p.publish_bytes("chain.data", &i.to_be_bytes()).unwrap();
            }
            p.publish_bytes("chain.end", b"").unwrap();
        }
        for (sub, name) in subs.iter_mut().zip(["a2", "b2", "c1"]) {
            let mut got = collect(sub, 2, name);
            for id in &ids {
                assert_eq!(
                    got.remove(id).unwrap_or_default(),
                    (0..N).collect::<Vec<_>>(),
                    "{name}, publisher {id:x}: each once, in order"
                );
            }
            assert_eq!(sub.gaps(), 0, "no sequence gap at {name}");
        }

        // Each broker took each message of the others once: what came from peers is at most
        // what the other zones' publishers sent.
        let sent_by = |p: usize| probes[p] + N + 1;
        let c = bus(&c1);
        assert!(
            c.from_peers <= sent_by(0),
            "c1 took {} from peers, a1 published {}",
            c.from_peers,
            sent_by(0)
        );
        assert!(
            c.dropped.duplicate >= N,
            "the second gateway's copies were dropped: {}",
            c.dropped.duplicate
        );
        for b in [&a2, &b1, &b2] {
            let s = bus(b);
            assert!(s.from_peers <= sent_by(0) + sent_by(1), "{s:?}");
        }
    });
}

/// Three zones in a triangle, one broker each: a subscriber's interest reaches the other two
/// directly and through each other, and when it goes, it goes everywhere; interest relayed
/// without paths would keep itself alive round the triangle.
#[test]
fn interest_leaves_a_triangle_of_zones_with_its_subscriber() {
    deadline(LIMIT, || {
        let x = zoned("x", "X", &[]);
        let y = zoned("y", "Y", &[&cluster_of(&x)]);
        let z = zoned("z", "Z", &[&cluster_of(&x), &cluster_of(&y)]);
        for b in [&x, &y, &z] {
            wait_for_peers(&mut Client::connect(&b.url).unwrap(), 2);
        }
        let mut cz = Client::connect(&z.url).unwrap();
        let mut subs = vec![cz.subscribe(&["tri."]).unwrap()];
        let mut publishers = [Client::connect(&x.url).unwrap()];
        probe_until_heard(&mut publishers, &mut subs, "tri.probe");
        for i in 0..100u64 {
            publishers[0]
                .publish_bytes("tri.data", &i.to_be_bytes())
                .unwrap();
        }
        publishers[0].publish_bytes("tri.end", b"").unwrap();
        let got = collect(&mut subs[0], 1, "z");
        assert_eq!(
            got[&publishers[0].publisher_id()],
            (0..100).collect::<Vec<_>>()
        );
        assert!(bus(&x).subscriptions > 0 && bus(&y).subscriptions > 0);

        drop(subs);
        drop(cz);
        // Every broker forgets the interest: no filter is held anywhere.
        for b in [&x, &y, &z] {
            while bus(b).subscriptions > 0 {
                std::thread::yield_now();
            }
        }
    });
}

/// A gateway dies while messages flow through two: the other carries every message, so
/// the subscriber sees no gap at all.
#[test]
fn a_gateway_that_dies_loses_no_message_when_another_carries_them() {
    deadline(LIMIT, || {
        let a1 = zoned("a1", "A", &[]);
        let c1 = zoned("c1", "C", &[]);
        let mut b1 = zoned("b1", "B", &[&cluster_of(&a1), &cluster_of(&c1)]);
        let b2 = zoned(
            "b2",
            "B",
            &[&cluster_of(&a1), &cluster_of(&c1), &cluster_of(&b1)],
        );
        for b in [&a1, &c1] {
            wait_for_peers(&mut Client::connect(&b.url).unwrap(), 2);
        }
        let _ = &b2;
        let mut cc = Client::connect(&c1.url).unwrap();
        let mut subs = vec![cc.subscribe(&["gw."]).unwrap()];
        let mut publishers = [Client::connect(&a1.url).unwrap()];
        probe_until_heard(&mut publishers, &mut subs, "gw.probe");
        // Both gateways carry the interest before one is killed.
        let mut ca = Client::connect(&a1.url).unwrap();
        while bus(&b1).from_peers == 0 || bus(&b2).from_peers == 0 {
            ca.publish_bytes("gw.probe", b"").unwrap();
        }
        const N: u64 = 2000;
        for i in 0..N {
            if i == N / 2 {
                b1.shutdown();
            }
            publishers[0]
                .publish_bytes("gw.data", &i.to_be_bytes())
                .unwrap();
        }
        publishers[0].publish_bytes("gw.end", b"").unwrap();
        let got = collect(&mut subs[0], 1, "c1");
        assert_eq!(
            got[&publishers[0].publisher_id()],
            (0..N).collect::<Vec<_>>(),
            "every message, once, in order"
        );
        assert_eq!(subs[0].gaps(), 0);
    });
}

/// A peer that greets properly, then sends malformed copies on its deliver endpoint: each is
/// dropped and counted (bad envelope, bad zone path, no bus frame, a frame too many, a copy
/// that has been in this zone before, a second copy), and the good ones reach the subscriber,
/// once each, in order.
#[test]
fn malformed_copies_from_a_peer_are_dropped_and_counted() {
    use zhub_protocol::bus::{self, BusHeader, Encoding};
    use zhub_protocol::cluster::{Beat, LinkMessage, PeerHello, VERSION};
    use zhub_protocol::delivery::{self, Subscription};

    deadline(LIMIT, || {
        let a = zoned("a", "A", &[]);
        let ctx = zmq::Context::new();
        let xpub = ctx.socket(zmq::XPUB).unwrap();
        xpub.set_linger(0).unwrap();
        xpub.set_rcvtimeo(20).unwrap();
        xpub.bind("tcp://127.0.0.1:*").unwrap();
        let link = ctx.socket(zmq::DEALER).unwrap();
        link.set_linger(0).unwrap();
        link.connect(&cluster_of(&a)).unwrap();
        let hello = PeerHello {
            version: VERSION,
            id: 0xfeed,
            session: 1,
            name: "fake".into(),
            zone: "F".into(),
            deliver: xpub.get_last_endpoint().unwrap().unwrap(),
            heartbeat_ms: 100,
            subscriber: 0xbeef,
        };
        link.send_multipart(LinkMessage::Hello(hello).encode().unwrap(), 0)
            .unwrap();
        // Heartbeats keep the session up while the test goes on.
        let beat = || {
            link.send_multipart(LinkMessage::Heartbeat(Beat::default()).encode().unwrap(), 0)
                .unwrap();
            while link.recv_multipart(zmq::DONTWAIT).is_ok() {}
        };
        let mut client = Client::connect(&a.url).unwrap();
        let mut sub = client.subscribe(&["bad."]).unwrap();
        // a subscribes at the fake peer: its address, then its interest in "bad.".
        let (mut address, mut interest) = (None, false);
        while address.is_none() || !interest {
            beat();
            let Ok(frame) = xpub.recv_bytes(0) else {
                continue;
            };
            match frame.split_first() {
                Some((1, data)) => match delivery::parse_subscription(data) {
                    Ok(Subscription::Address(id)) => address = Some(id),
                    Ok(Subscription::Peer { filter, .. }) if filter == b"bad." => interest = true,
                    _ => {}
                },
                _ => continue,
            }
        }
        // a's subscriber id is its secret, not its broker id, which anyone may ask.
        let peers: zhub_protocol::builtin::Peers = client
            .request(zhub_protocol::builtin::PEERS_SERVICE, &())
            .unwrap();
        assert_ne!(format!("{:016x}", address.unwrap()), peers.id);
        let envelope = delivery::envelope(address.unwrap(), 0).to_vec();
        let path = |zones: &[&str]| {
            let mut p = Vec::new();
            delivery::write_path(&mut p, zones);
            p
        };
        let frame = |seq: u64| {
            let header = BusHeader {
                publisher: 7,
                seq,
                timestamp_us: 0,
                lamport: seq,
                encoding: Encoding::Raw,
            };
            bus::encode("bad.x", &header, &seq.to_be_bytes())
        };
        let copy = |zones: &[&str], tail: &[u8]| [&envelope[..], &path(zones), tail].concat();
        let before = bus(&a);
        // Each starts with a's address: the XPUB sends a nothing else.
        let junk: Vec<Vec<Vec<u8>>> = vec![
            vec![[&envelope[..delivery::ADDRESS_LEN], &[1, 2]].concat()],
            vec![[&envelope[..], &[0]].concat()],
            vec![[&envelope[..], &[3, 1]].concat()],
            vec![copy(&["F"], b"")],
            vec![copy(&["F"], b"not a bus frame")],
            vec![copy(&["F"], &frame(1)), b"one frame too many".to_vec()],
            vec![copy(&["F"], b""), frame(2), b"one frame too many".to_vec()],
            vec![copy(&["A", "F"], &frame(3))],
        ];
        // The good ones, around a second copy.
        let good = vec![
            vec![copy(&["F"], &frame(4))],
            vec![copy(&["F"], &frame(4))],
            vec![copy(&["F"], b""), frame(5)],
        ];
        for message in junk.iter().chain(&good) {
            xpub.send_multipart(message, 0).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 2 {
            beat();
            if let Some(m) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
                got.push(m.header().seq);
            }
        }
        assert_eq!(got, [4, 5], "the good copies, once each");
        let after = bus(&a);
        assert_eq!(after.dropped.malformed - before.dropped.malformed, 7);
        assert_eq!(after.dropped.duplicate - before.dropped.duplicate, 2);
        // Nothing more arrives, and the broker still serves.
        beat();
        assert!(sub
            .recv_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none());
        assert!(client.stats().is_ok());
    });
}
