//! `zhub peers`: this broker's links to peer brokers.

use std::time::Duration;

use zhub_protocol::builtin::{Peers, PEERS_SERVICE};

/// Arguments of `zhub peers`.
#[derive(Debug, clap::Args)]
pub(crate) struct PeersArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub(crate) fn list(url: &str, timeout: Duration, args: &PeersArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let peers: Peers = client.request(PEERS_SERVICE, &())?;
    if args.json {
        println!("{}", serde_json::to_string(&peers)?);
        return Ok(());
    }
    println!(
        "broker {} (zone {}, id {})",
        peers.name,
        peers.zone,
        if peers.id.is_empty() { "-" } else { &peers.id }
    );
    if peers.links.is_empty() {
        println!("no peer links (start the broker with --cluster and/or --peer)");
        return Ok(());
    }
    println!(
        "{:<16} {:<10} {:<10} {:<4} {:>9} {:>9}  endpoint",
        "peer", "zone", "state", "dir", "rtt", "up"
    );
    for link in &peers.links {
        let rtt = match link.rtt_us {
            0 => "-".to_owned(),
            us if us < 1000 => format!("{us}us"),
            us => format!("{:.1}ms", us as f64 / 1000.0),
        };
        let up = match link.up_ms {
            0 => "-".to_owned(),
            ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
            ms => format!("{}m", ms / 60_000),
        };
        println!(
            "{:<16} {:<10} {:<10} {:<4} {:>9} {:>9}  {}",
            if link.broker.is_empty() {
                "?"
            } else {
                &link.broker
            },
            if link.zone.is_empty() {
                "-"
            } else {
                &link.zone
            },
            link.state,
            if link.outgoing { "out" } else { "in" },
            rtt,
            up,
            link.endpoint
        );
    }
    if peers.malformed > 0 {
        println!("malformed link messages: {}", peers.malformed);
    }
    Ok(())
}
