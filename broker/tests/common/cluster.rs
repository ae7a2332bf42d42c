//! Brokers that peer, for the federation tests: nodes with fast heartbeats, and waits for
//! sessions and routes with no sleeps.

use std::time::Duration;

use zhub_client::Client;
use zhub_protocol::builtin::{Peers, ServiceInfo, PEERS_SERVICE, SERVICES_SERVICE};
use zhub_worker::Worker;

use super::{start_with, TestBroker, Transport};

/// A broker named `name` with a cluster endpoint of its own, linked to `peers` (cluster
/// endpoints), with fast heartbeats so that a dead peer is noticed in 300 ms.
pub fn node(name: &str, peers: &[&str]) -> TestBroker {
    zoned(name, zhub_broker::config::DEFAULT_ZONE, peers)
}

/// A broker as [`node`] makes, in zone `zone`.
pub fn zoned(name: &str, zone: &str, peers: &[&str]) -> TestBroker {
    let zone = zone.to_owned();
    node_with(name, peers, move |c| c.zone = zone)
}

/// A broker as [`node`] makes, its configuration changed by `tweak` too.
pub fn node_with(
    name: &str,
    peers: &[&str],
    tweak: impl FnOnce(&mut zhub_broker::Config),
) -> TestBroker {
    let name = name.to_owned();
    let peers: Vec<String> = peers.iter().map(|p| (*p).to_owned()).collect();
    start_with(Transport::Tcp, move |c| {
        c.name = Some(name);
        tweak(c);
        c.cluster = Some("tcp://127.0.0.1:*".into());
        c.peer = peers
            .into_iter()
            .map(|endpoint| zhub_broker::config::PeerConfig { endpoint })
            .collect();
        c.cluster_heartbeat = Duration::from_millis(100);
        c.cluster_liveness = 3;
    })
}

pub fn cluster_of(b: &TestBroker) -> String {
    b.broker.as_ref().unwrap().info().cluster.clone()
}

/// Waits until `client`'s broker has `n` peers in session, each up.
pub fn wait_for_peers(client: &mut Client, n: usize) -> Peers {
    loop {
        let peers: Peers = client.request(PEERS_SERVICE, &()).unwrap();
        let mut up: Vec<&str> = peers
            .links
            .iter()
            .filter(|l| l.state == "up")
            .map(|l| l.broker.as_str())
            .collect();
        up.sort_unstable();
        up.dedup();
        if up.len() == n {
            return peers;
        }
        std::thread::yield_now();
    }
}

/// Waits until `client`'s broker knows `service` is served by peer `broker`.
pub fn wait_for_route(client: &mut Client, service: &str, broker: &str) {
    loop {
        let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &()).unwrap();
        if services
            .iter()
            .any(|s| s.name == service && s.peers.iter().any(|p| p.broker == broker))
        {
            return;
        }
        std::thread::yield_now();
    }
}

/// A worker for `service` on `url` whose replies say which node served them.
pub fn worker(url: &str, service: &str, node: &'static str) -> std::thread::JoinHandle<()> {
    let worker = Worker::connect(url, service).unwrap();
    std::thread::spawn(move || {
        let _ = worker.run(move |body| [node.as_bytes(), b":", body].concat());
    })
}

/// Waits until `client`'s broker lists `service` and `check` holds for its entry (`None`:
/// not listed), and returns the entry.
pub fn wait_for_service(
    client: &mut Client,
    service: &str,
    check: impl Fn(Option<&ServiceInfo>) -> bool,
) -> Option<ServiceInfo> {
    loop {
        let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &()).unwrap();
        let entry = services.into_iter().find(|s| s.name == service);
        if check(entry.as_ref()) {
            return entry;
        }
        std::thread::yield_now();
    }
}
