//! Seed 003's federation, in two parts.
//!
//! M1-P2, services specialised per node: two brokers peered over their cluster endpoints,
//! node 1 running only `print`, node 2 only `afficher`, a client on each node asking for
//! both. Each broker forwards what it has no worker for to the peer that has one.
//!
//! M1-P3, nodes in zones that talk through routers, like two IP subnets: zone `lan1` holds
//! node 1 (`print`) and its gateway, zone `lan2` holds node 4 (`afficher`) and its gateway,
//! and only the two gateways link across. A client of node 1 asking for `afficher` is served
//! in the other zone, three links away, and the other way round; a subscriber on node 4 hears
//! what is published on node 1, and node 1's client writes to node 4's store by naming it.
//!
//! Every reply says which node's worker served it.
//!
//! The brokers run in this process on ports the OS chooses:
//! ```text
//! cargo run --release --example federation
//! ```
//! The same set-up with separate broker processes is in the README ("Brokers that peer").

use clap::Parser;
use zhub_broker::config::PeerConfig;
use zhub_broker::{Broker, Config};
use zhub_client::Client;
use zhub_protocol::builtin::{Peers, ServiceInfo, PEERS_SERVICE, SERVICES_SERVICE};
use zhub_worker::Worker;

/// Two peered brokers in this process, `print` on one and `afficher` on the other, and a
/// client on each using both.
#[derive(Parser)]
#[command(
    after_help = "The brokers run in this process, on ports the OS chooses; $ZHUB_URL is not used."
)]
struct Args {}

/// A broker named `name` in `zone` on loopback ports of the OS's choosing, linked to `peers`.
fn node(
    name: &str,
    zone: &str,
    dir: &std::path::Path,
    peers: &[&Broker],
) -> anyhow::Result<Broker> {
    let config = Config {
        name: Some(name.to_owned()),
        zone: zone.to_owned(),
        cluster: Some("tcp://127.0.0.1:*".to_owned()),
        peer: peers
            .iter()
            .map(|peer| PeerConfig {
                endpoint: peer.info().cluster.clone(),
            })
            .collect(),
        ..Config::local_tcp(dir.join(name))
    };
    Ok(Broker::start(&config)?)
}

/// A worker of `service` on `broker`, answering with `reply` and the node's name.
fn worker(
    broker: &Broker,
    service: &'static str,
    reply: fn(&str) -> String,
) -> anyhow::Result<zhub_worker::Stopper> {
    let worker = Worker::connect(&broker.info().main, service)?;
    let stopper = worker.stopper();
    let node = broker.info().name.clone();
    std::thread::spawn(move || {
        worker.run_typed(move |text: String| format!("{} (served by {node})", reply(&text)))
    });
    Ok(stopper)
}

/// Each client asks for `print` and `afficher`, and prints who served it.
fn ask_both(clients: &mut [(&str, Client)]) -> anyhow::Result<()> {
    // A request for a service no node serves yet waits for it, as for a late worker: the
    // first ones may wait for the peer links to come up.
    for (at, client) in clients {
        for (service, text) in [("print", "hello"), ("afficher", "bonjour")] {
            let reply: String =
                client.request(service, &format!("{text} from a client of {at}"))?;
            println!("client of {at} -> {service:<8}: {reply}");
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let _: Args = zhub_examples::parse_args();
    let dir = tempfile::tempdir()?;
    println!("== M1-P2: two nodes, one zone");
    specialised(dir.path())?;
    println!();
    println!("== M1-P3: two zones joined by their gateways");
    zones(dir.path())
}

/// M1-P2: `print` on node 1, `afficher` on node 2, clients on both.
fn specialised(dir: &std::path::Path) -> anyhow::Result<()> {
    let node1 = node("node1", "default", dir, &[])?;
    let node2 = node("node2", "default", dir, &[&node1])?;
    println!(
        "node1: clients at {}, cluster at {}",
        node1.info().main,
        node1.info().cluster
    );
    println!("node2: clients at {}, peer of node1", node2.info().main);
    let stoppers = [
        worker(&node1, "print", |text| format!("printed {text:?}"))?,
        worker(&node2, "afficher", |text| format!("affiché {text:?}"))?,
    ];
    let mut clients = [
        ("node1", Client::connect(&node1.info().main)?),
        ("node2", Client::connect(&node2.info().main)?),
    ];
    ask_both(&mut clients)?;
    let peers: Peers = clients[0].1.request(PEERS_SERVICE, &())?;
    for link in &peers.links {
        let rtt = match link.rtt_us {
            0 => "not measured yet".to_owned(),
            us => format!("{us} us"),
        };
        println!(
            "{} sees {} ({}, round trip {rtt})",
            peers.name, link.broker, link.state
        );
    }
    for s in stoppers {
        s.stop();
    }
    drop(clients);
    node2.shutdown();
    node1.shutdown();
    Ok(())
}

/// M1-P3: zone `lan1` (node1 with `print`, gateway1) and zone `lan2` (gateway2, node4 with
/// `afficher`); only the gateways link across the zones.
fn zones(dir: &std::path::Path) -> anyhow::Result<()> {
    let node1 = node("node1", "lan1", &dir.join("p3"), &[])?;
    let gateway1 = node("gateway1", "lan1", &dir.join("p3"), &[&node1])?;
    let node4 = node("node4", "lan2", &dir.join("p3"), &[])?;
    let gateway2 = node("gateway2", "lan2", &dir.join("p3"), &[&node4, &gateway1])?;
    println!("lan1: node1, gateway1; lan2: node4, gateway2; gateway2 links to gateway1");
    let stoppers = [
        worker(&node1, "print", |text| format!("printed {text:?}"))?,
        worker(&node4, "afficher", |text| format!("affiché {text:?}"))?,
    ];
    let mut clients = [
        ("node1", Client::connect(&node1.info().main)?),
        ("node4", Client::connect(&node4.info().main)?),
    ];
    ask_both(&mut clients)?;
    let services: Vec<ServiceInfo> = clients[0].1.request(SERVICES_SERVICE, &())?;
    for s in services.iter().filter(|s| s.workers == 0) {
        for p in &s.peers {
            println!(
                "node1 reaches {} through {} (zone {}), crossing zones {}",
                s.name,
                p.broker,
                p.zone,
                if p.path.is_empty() {
                    "-".to_owned()
                } else {
                    p.path.join(" > ")
                }
            );
        }
    }
    across_zones(&mut clients)?;
    for s in stoppers {
        s.stop();
    }
    drop(clients);
    for broker in [gateway2, node4, gateway1, node1] {
        broker.shutdown();
    }
    Ok(())
}

/// Pub/sub and the store across the zones: node 4's subscriber hears node 1's publisher
/// once its interest has crossed both gateways, and node 1's client writes to node 4's store.
fn across_zones(clients: &mut [(&str, Client); 2]) -> anyhow::Result<()> {
    let [(_, at_node1), (_, at_node4)] = clients;
    let mut sub = at_node4.subscribe(&["news."])?;
    let heard = loop {
        at_node1.publish_bytes("news.lan1", b"il pleut sur lan1")?;
        if let Some(m) = sub.recv_timeout(std::time::Duration::from_millis(50))? {
            break m;
        }
    };
    println!(
        "subscriber on node4 heard {:?} on {} from node1's publisher (sequence {})",
        String::from_utf8_lossy(heard.body()),
        heard.topic(),
        heard.header().seq
    );
    at_node1.at("node4")?.kv().put("written-by", "node1")?;
    let value: Option<String> = at_node4.kv().get("written-by")?;
    println!(
        "node1's client wrote to node4's store by name; node4 reads written-by = {}",
        value.as_deref().unwrap_or("(nothing)")
    );
    Ok(())
}
