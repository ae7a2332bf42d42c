//! Services specialised per node (seed 003, M1-P2): two brokers peered over their cluster
//! endpoints, node 1 running only `print`, node 2 only `afficher`, a client on each node
//! asking for both. Every reply says which node's worker served it; each broker forwards what
//! it has no worker for to the peer that has one.
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
use zhub_protocol::builtin::{Peers, PEERS_SERVICE};
use zhub_worker::Worker;

/// Two peered brokers in this process, `print` on one and `afficher` on the other, and a
/// client on each using both.
#[derive(Parser)]
#[command(
    after_help = "The brokers run in this process, on ports the OS chooses; $ZHUB_URL is not used."
)]
struct Args {}

/// A broker named `name` on loopback ports of the OS's choosing, linked to `peers`.
fn node(name: &str, dir: &std::path::Path, peers: &[String]) -> anyhow::Result<Broker> {
    let config = Config {
        name: Some(name.to_owned()),
        cluster: Some("tcp://127.0.0.1:*".to_owned()),
        peer: peers
            .iter()
            .map(|endpoint| PeerConfig {
                endpoint: endpoint.clone(),
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

fn main() -> anyhow::Result<()> {
    let _: Args = zhub_examples::parse_args();
    let dir = tempfile::tempdir()?;
    let node1 = node("node1", dir.path(), &[])?;
    let node2 = node("node2", dir.path(), &[node1.info().cluster.clone()])?;
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
    // A request for a service no node serves yet waits for it, as for a late worker: the
    // first ones may wait for the peer link to come up.
    for (at, client) in &mut clients {
        for (service, text) in [("print", "hello"), ("afficher", "bonjour")] {
            let reply: String =
                client.request(service, &format!("{text} from a client of {at}"))?;
            println!("client of {at} -> {service:<8}: {reply}");
        }
    }
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
