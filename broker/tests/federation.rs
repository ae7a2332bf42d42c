//! Brokers that peer: services served across brokers, pub/sub interest across a mesh, and
//! what happens when a peer dies, restarts or sends garbage.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::cluster::{cluster_of, node, wait_for_peers, wait_for_route, worker};
use common::{deadline, start_with, Transport};
use zhub_client::{Client, RequestErrorKind, RequestOptions};
use zhub_protocol::builtin::{Peers, ServiceInfo, PEERS_SERVICE, SERVICES_SERVICE};
use zhub_worker::Worker;

const LIMIT: Duration = Duration::from_secs(90);

/// Seed 003's M1-P2: node 1 runs only `print`, node 2 only `afficher`; a client of either
/// node is served by the node that has the service.
#[test]
fn services_specialised_per_node_serve_clients_of_every_node() {
    deadline(LIMIT, || {
        let n1 = node("node1", &[]);
        let n2 = node("node2", &[&cluster_of(&n1)]);
        let _p = worker(&n1.url, "print", "node1");
        let _a = worker(&n2.url, "afficher", "node2");
        let mut c1 = Client::connect(&n1.url).unwrap();
        let mut c2 = Client::connect(&n2.url).unwrap();
        wait_for_peers(&mut c1, 1);
        wait_for_peers(&mut c2, 1);
        // A request sent before the route is known waits for it, as for a late worker.
        assert_eq!(
            c1.request_bytes("afficher", b"bonjour").unwrap(),
            b"node2:bonjour"
        );
        assert_eq!(c2.request_bytes("print", b"hello").unwrap(), b"node1:hello");
        assert_eq!(
            c2.request_bytes("afficher", b"local").unwrap(),
            b"node2:local"
        );
        let services: Vec<ServiceInfo> = c1.request(SERVICES_SERVICE, &()).unwrap();
        let afficher = services.iter().find(|s| s.name == "afficher").unwrap();
        assert_eq!(afficher.workers, 0, "no local worker on node 1");
        assert_eq!(afficher.peers.len(), 1);
        assert_eq!(afficher.peers[0].broker, "node2");
        assert_eq!(afficher.peers[0].credit, 1);
        // An unknown service is still "no such service", from every node, in time.
        let quick = RequestOptions::new().timeout(Duration::from_millis(300));
        let err = c1.request_bytes_with("nobody", b"", &quick).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::NoService, "{err}");
    });
}

/// Local workers come first: with a free local worker, nothing crosses the link.
#[test]
fn local_workers_are_preferred_to_peers() {
    deadline(LIMIT, || {
        let n1 = node("a", &[]);
        let n2 = node("b", &[&cluster_of(&n1)]);
        let _local = worker(&n1.url, "echo", "a");
        let _remote = worker(&n2.url, "echo", "b");
        let mut c1 = Client::connect(&n1.url).unwrap();
        wait_for_route(&mut c1, "echo", "b");
        for _ in 0..50 {
            assert_eq!(c1.request_bytes("echo", b"x").unwrap(), b"a:x");
        }
    });
}

/// Many clients on one node, workers on the other: every request answered once, and the
/// peer's capacity is used (requests in flight at the peer at once).
#[test]
fn many_clients_are_served_by_a_peers_workers_each_exactly_once() {
    deadline(LIMIT, || {
        let n1 = node("front", &[]);
        let n2 = node("back", &[&cluster_of(&n1)]);
        let _w: Vec<_> = (0..3).map(|_| worker(&n2.url, "work", "back")).collect();
        let mut probe = Client::connect(&n1.url).unwrap();
        loop {
            let services: Vec<ServiceInfo> = probe.request(SERVICES_SERVICE, &()).unwrap();
            let credit = services
                .iter()
                .find(|s| s.name == "work")
                .and_then(|s| s.peers.first())
                .map_or(0, |p| p.credit);
            if credit == 3 {
                break;
            }
            std::thread::yield_now();
        }
        let clients: Vec<_> = (0..6)
            .map(|c| {
                let url = n1.url.clone();
                std::thread::spawn(move || {
                    let mut client = Client::connect(&url).unwrap();
                    for i in 0..100 {
                        let body = format!("{c}-{i}");
                        let reply = client.request_bytes("work", body.as_bytes()).unwrap();
                        assert_eq!(reply, format!("back:{body}").into_bytes());
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let services: Vec<ServiceInfo> = probe.request(SERVICES_SERVICE, &()).unwrap();
        let work = services.iter().find(|s| s.name == "work").unwrap();
        assert_eq!(work.served, 600, "each reply passed on once");
        assert_eq!(work.in_flight, 0);
    });
}

/// A peer that dies holding forwarded requests: each client gets one answer before its
/// deadline: from a worker elsewhere once the peer is declared dead.
#[test]
fn a_peer_that_dies_holding_requests_loses_none_of_them() {
    deadline(LIMIT, || {
        let n1 = node("survivor", &[]);
        let mut n2 = node("doomed", &[&cluster_of(&n1)]);
        // The doomed node's worker takes requests and never answers.
        let sink = Worker::connect(&n2.url, "slow").unwrap();
        let sink_stop = sink.stopper();
        let sink_thread = std::thread::spawn(move || {
            let _ = sink.run(|_| {
                std::thread::sleep(Duration::from_secs(3600));
                Vec::new()
            });
        });
        let mut c1 = Client::connect(&n1.url).unwrap();
        wait_for_route(&mut c1, "slow", "doomed");
        let id = c1
            .send_request_bytes("slow", b"held", Duration::from_secs(20))
            .unwrap();
        // Wait until the doomed node holds it.
        loop {
            let services: Vec<ServiceInfo> = c1.request(SERVICES_SERVICE, &()).unwrap();
            if services
                .iter()
                .any(|s| s.name == "slow" && s.peers.iter().any(|p| p.in_flight == 1))
            {
                break;
            }
            std::thread::yield_now();
        }
        let started = Instant::now();
        n2.shutdown();
        sink_stop.stop();
        drop(sink_thread);
        // A worker on the survivor takes the request over once the peer is declared dead.
        let _rescue = worker(&n1.url, "slow", "survivor");
        let (got, reply) = c1.recv_reply().unwrap();
        assert_eq!(got, id);
        assert_eq!(reply.unwrap(), b"survivor:held");
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

/// Three brokers in a full mesh, a subscriber and a publisher on each: every subscriber gets
/// every message of every publisher exactly once, in each publisher's order, with its header
/// as published (publisher id and sequence), so gap detection works across brokers.
#[test]
fn a_full_mesh_delivers_each_message_to_each_subscriber_once() {
    deadline(LIMIT, || {
        let a = node("a", &[]);
        let b = node("b", &[&cluster_of(&a)]);
        let c = node("c", &[&cluster_of(&a), &cluster_of(&b)]);
        let urls = [a.url.clone(), b.url.clone(), c.url.clone()];
        for url in &urls {
            wait_for_peers(&mut Client::connect(url).unwrap(), 2);
        }
        let mut subscribers: Vec<_> = urls
            .iter()
            .map(|u| {
                let mut client = Client::connect(u).unwrap();
                let sub = client.subscribe(&["mesh."]).unwrap();
                (client, sub)
            })
            .collect();
        let mut publishers: Vec<Client> =
            urls.iter().map(|u| Client::connect(u).unwrap()).collect();
        let ids: Vec<u64> = publishers.iter().map(Client::publisher_id).collect();
        // Interest takes a moment to cross the links: probe until every subscriber has heard
        // every publisher once.
        let mut heard = vec![HashSet::new(); 3];
        while heard.iter().any(|h| h.len() < 3) {
            for p in &mut publishers {
                p.publish_bytes("mesh.probe", b"").unwrap();
            }
            for (i, (_, sub)) in subscribers.iter_mut().enumerate() {
                while let Some(m) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
                    heard[i].insert(m.header().publisher);
                }
            }
        }
        const N: u64 = 2000;
        for p in &mut publishers {
            for i in 0..N {
                p.publish_bytes("mesh.data", &i.to_be_bytes()).unwrap();
            }
            p.publish_bytes("mesh.end", b"").unwrap();
        }
        for (i, (_, sub)) in subscribers.iter_mut().enumerate() {
            let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
            let mut ended = 0;
            while ended < 3 {
                let m = sub
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .unwrap_or_else(|| panic!("subscriber {i} stalled: {got:?}"));
                match m.topic() {
                    "mesh.data" => {
                        let v = u64::from_be_bytes(m.body().try_into().unwrap());
                        got.entry(m.header().publisher).or_default().push(v);
                    }
                    "mesh.end" => ended += 1,
                    _ => {}
                }
            }
            for id in &ids {
                let values = got.remove(id).unwrap_or_default();
                assert_eq!(
                    values,
                    (0..N).collect::<Vec<_>>(),
                    "subscriber {i}, publisher {id:x}: each once, in order"
                );
            }
            assert!(got.is_empty(), "nobody else published");
            assert_eq!(sub.gaps(), 0, "no sequence gap seen at subscriber {i}");
        }
    });
}

/// A subscriber that goes takes its interest with it: the peers stop sending.
#[test]
fn interest_follows_subscribers_across_the_link() {
    deadline(LIMIT, || {
        let a = node("a", &[]);
        let b = node("b", &[&cluster_of(&a)]);
        let mut pa = Client::connect(&a.url).unwrap();
        wait_for_peers(&mut pa, 1);
        let mut cb = Client::connect(&b.url).unwrap();
        let mut sub = cb.subscribe(&["only.this"]).unwrap();
        loop {
            pa.publish_bytes("only.this", b"probe").unwrap();
            pa.publish_bytes("not.that", b"x").unwrap();
            if let Some(m) = sub.recv_timeout(Duration::from_millis(20)).unwrap() {
                assert_eq!(m.topic(), "only.this", "no interest, nothing sent");
                break;
            }
        }
        let stats = |c: &mut Client| c.stats().unwrap().bus;
        let before = stats(&mut pa);
        assert_eq!(
            before.from_peers, 0,
            "a has no subscribers: b sent nothing to it"
        );
        drop(sub);
        drop(cb);
        // Once b's subscriber is gone, a stops sending: b's count of messages from peers
        // stops growing.
        let mut cb = Client::connect(&b.url).unwrap();
        let mut last = stats(&mut cb).from_peers;
        let mut still = 0;
        while still < 20 {
            pa.publish_bytes("only.this", b"after").unwrap();
            let now = stats(&mut cb).from_peers;
            if now == last {
                still += 1;
            } else {
                still = 0;
                last = now;
            }
        }
    });
}

/// The broker others connect to restarts on the same endpoints: its peers' links notice,
/// greet the new one, and services and interest are learned again from scratch.
#[test]
fn a_restarted_peer_is_learned_anew() {
    deadline(LIMIT, || {
        let mut hub = node("hub", &[]);
        let info = hub.broker.as_ref().unwrap().info().clone();
        let edge = node("edge", &[&info.cluster]);
        let _w = worker(&edge.url, "edge.svc", "edge");
        let mut c = Client::connect(&hub.url).unwrap();
        wait_for_route(&mut c, "edge.svc", "edge");
        drop(c);
        hub.shutdown();
        // The same endpoints and data directory, a new process's session.
        let data_dir = hub.dir.path().join("data");
        let config = zhub_broker::Config {
            listen: info.main.clone(),
            publish: info.publish.clone(),
            subscribe: info.subscribe.clone(),
            deliver: info.deliver.clone(),
            data_dir,
            name: Some("hub".into()),
            cluster: Some(info.cluster.clone()),
            cluster_heartbeat: Duration::from_millis(100),
            ..zhub_broker::Config::default()
        };
        let again = zhub_broker::Broker::start(&config).unwrap();
        let mut c = Client::connect(&info.main).unwrap();
        wait_for_route(&mut c, "edge.svc", "edge");
        assert_eq!(c.request_bytes("edge.svc", b"back").unwrap(), b"edge:back");
        // Interest too: a subscriber on the new hub hears what the edge publishes.
        let mut sub = c.subscribe(&["edge."]).unwrap();
        let mut p = Client::connect(&edge.url).unwrap();
        loop {
            p.publish_bytes("edge.news", b"hi").unwrap();
            if sub
                .recv_timeout(Duration::from_millis(20))
                .unwrap()
                .is_some()
            {
                break;
            }
        }
        drop(sub);
        drop(c);
        again.shutdown();
    });
}

/// Garbage on the cluster endpoint closes that link, counted, and harms nothing else.
#[test]
fn garbage_on_the_cluster_link_is_dropped_without_harm() {
    deadline(LIMIT, || {
        let a = node("a", &[]);
        let b = node("b", &[&cluster_of(&a)]);
        let _w = worker(&b.url, "svc", "b");
        let ctx = zmq::Context::new();
        let raw = ctx.socket(zmq::DEALER).unwrap();
        raw.set_linger(0).unwrap();
        raw.set_rcvtimeo(5000).unwrap();
        raw.connect(&cluster_of(&a)).unwrap();
        let junk: Vec<Vec<Vec<u8>>> = vec![
            vec![b"nonsense".to_vec()],
            vec![b"ZHL01".to_vec()],
            vec![b"ZHL01".to_vec(), vec![0x01], vec![0xc1, 0x00, 0xff]],
            vec![
                b"ZHL01".to_vec(),
                vec![0x05],
                vec![1; 8],
                vec![0; 4],
                b"svc".to_vec(),
            ],
            vec![b"ZHL01".to_vec(), vec![0x99]],
            vec![],
        ];
        for message in &junk {
            if !message.is_empty() {
                raw.send_multipart(message.clone(), 0).unwrap();
            }
        }
        // Each is answered BYE (or nothing); none is served.
        let bye = zhub_protocol::cluster::LinkMessage::Bye.encode().unwrap();
        let first = raw.recv_multipart(0).unwrap();
        assert_eq!(first, bye);
        let mut c = Client::connect(&a.url).unwrap();
        wait_for_route(&mut c, "svc", "b");
        assert_eq!(c.request_bytes("svc", b"still").unwrap(), b"b:still");
        let peers: Peers = c.request(PEERS_SERVICE, &()).unwrap();
        assert!(peers.malformed >= 3, "{peers:?}");
        assert!(peers
            .links
            .iter()
            .any(|l| l.broker == "b" && l.state == "up"));
    });
}

/// Brokers started with discovery find each other by their beacons on one host, link in a
/// full mesh with one link per pair, and a client finds a broker the same way.
#[test]
fn brokers_that_discover_each_other_form_a_mesh_and_clients_find_them() {
    deadline(LIMIT, || {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let discovering = |name: &str, zone: &str| {
            let (name, zone) = (name.to_owned(), zone.to_owned());
            start_with(Transport::Tcp, move |c| {
                c.name = Some(name);
                c.zone = zone;
                c.cluster = Some("tcp://127.0.0.1:*".into());
                c.cluster_heartbeat = Duration::from_millis(50);
                c.discover = true;
                c.discover_port = port;
                c.discover_address = "127.255.255.255".into();
            })
        };
        let a = discovering("a", "lab");
        let _b = discovering("b", "lab");
        let c = discovering("c", "lab");
        let other = discovering("elsewhere", "other-zone");
        let _w = worker(&c.url, "found", "c");
        let mut ca = Client::connect(&a.url).unwrap();
        let peers = wait_for_peers(&mut ca, 2);
        let mut names: Vec<&str> = peers.links.iter().map(|l| l.broker.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["b", "c"], "one link per pair, none to another zone");
        wait_for_route(&mut ca, "found", "c");
        assert_eq!(ca.request_bytes("found", b"it").unwrap(), b"c:it");
        let mut found = Client::discover_on(port, Duration::from_secs(10)).unwrap();
        assert!(["a", "b", "c", "elsewhere"].contains(&found.info().name.as_str()));
        let peers: Peers = found.request(PEERS_SERVICE, &()).unwrap();
        assert!(!peers.name.is_empty());
        drop(other);
    });
}

/// The key-value store, event log and process groups a broker holds are reached from a peer
/// broker by naming it; a group has members on both brokers.
#[test]
fn built_in_services_of_a_named_peer_are_reached_through_the_link() {
    deadline(LIMIT, || {
        let a = node("a", &[]);
        let b = node("b", &[&cluster_of(&a)]);
        let client_a = Client::connect(&a.url).unwrap();
        wait_for_peers(&mut Client::connect(&a.url).unwrap(), 1);
        let mut at_b = client_a.at("b").unwrap();
        at_b.kv().put("where", "kept on b").unwrap();
        let mut client_b = Client::connect(&b.url).unwrap();
        let value: Option<String> = client_b.kv().get("where").unwrap();
        assert_eq!(value.as_deref(), Some("kept on b"));
        let on_a: Option<String> = Client::connect(&a.url).unwrap().kv().get("where").unwrap();
        assert!(on_a.is_none(), "a's own store never saw it");
        // The log too; and the broker's own name is served locally.
        let info: zhub_protocol::builtin::BrokerInfo = at_b.request("zhub.info", &()).unwrap();
        assert_eq!(info.name, "b");
        let mut at_a = client_a.at("a").unwrap();
        let info: zhub_protocol::builtin::BrokerInfo = at_a.request("zhub.info", &()).unwrap();
        assert_eq!(info.name, "a");
        let err = client_a
            .at("nobody")
            .unwrap()
            .kv()
            .get::<String>("k")
            .unwrap_err();
        assert!(err.to_string().contains("nobody"), "{err}");

        // A group on b, with one member connected to each broker.
        let url_b = b.url.clone();
        let member_b = std::thread::spawn(move || {
            let client = Client::connect(&url_b).unwrap();
            let mut group = zhub_client::Group::join(&client, "pair", 2).unwrap();
            group.barrier(Duration::from_secs(20)).unwrap();
            group.size()
        });
        let mut group = zhub_client::Group::join(&at_b, "pair", 2).unwrap();
        assert_eq!(group.size(), 2);
        group.barrier(Duration::from_secs(20)).unwrap();
        assert_eq!(member_b.join().unwrap(), 2);
    });
}
