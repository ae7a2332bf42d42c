//! `zhub peers`: this broker's links to peer brokers; `zhub routes`: where each service is
//! served from here, and through which zones.

use std::time::Duration;

use zhub_protocol::builtin::{
    Peers, ServiceInfo, TopicRoute, PEERS_SERVICE, SERVICES_SERVICE, TOPICS_SERVICE,
};

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

/// Arguments of `zhub routes`.
#[derive(Debug, clap::Args)]
pub(crate) struct RoutesArgs {
    /// Print one JSON object per route, a line each (services' with `service`, topics' with
    /// `topic`).
    #[arg(long)]
    json: bool,
}

/// One way messages on a topic filter go from this broker.
#[derive(Debug, serde::Serialize)]
struct TopicLine<'a> {
    topic: &'a str,
    /// `local`, or the peer broker that declared the filter.
    via: &'a str,
    zone: &'a str,
    /// Zones crossed after this broker's, nearest first.
    path: &'a [String],
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "-".to_owned()
    } else {
        path.join(" > ")
    }
}

/// One way to a service from this broker.
#[derive(Debug, serde::Serialize)]
struct Route<'a> {
    service: &'a str,
    /// `local`, or the peer broker a request goes to.
    via: &'a str,
    /// The peer's zone (empty for local workers).
    zone: &'a str,
    /// Zones crossed after this broker's, nearest first.
    path: &'a [String],
    credit: u64,
    in_flight: u64,
}

pub(crate) fn routes(url: &str, timeout: Duration, args: &RoutesArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &())?;
    // A broker from before `zhub.topics` has no topic routes to show.
    let topics: Vec<TopicRoute> = match client.request(TOPICS_SERVICE, &()) {
        Err(e) if e.kind() == zhub_client::RequestErrorKind::NoService => Vec::new(),
        other => other?,
    };
    let topics: Vec<TopicLine> = topics
        .iter()
        .map(|t| TopicLine {
            topic: &t.filter,
            via: if t.broker.is_empty() {
                "local"
            } else {
                &t.broker
            },
            zone: &t.zone,
            path: &t.path,
        })
        .collect();
    let mut routes = Vec::new();
    for s in &services {
        if s.workers > 0 {
            routes.push(Route {
                service: &s.name,
                via: "local",
                zone: "",
                path: &[],
                credit: s.credit,
                in_flight: s.in_flight,
            });
        }
        for p in &s.peers {
            routes.push(Route {
                service: &s.name,
                via: &p.broker,
                zone: &p.zone,
                path: &p.path,
                credit: p.credit,
                in_flight: p.in_flight,
            });
        }
    }
    if args.json {
        for route in &routes {
            println!("{}", serde_json::to_string(route)?);
        }
        for topic in &topics {
            println!("{}", serde_json::to_string(topic)?);
        }
        return Ok(());
    }
    print_services(&routes);
    println!();
    if topics.is_empty() {
        println!("no topics: no subscriber here, and no peer declared one");
        return Ok(());
    }
    println!(
        "{:<24} {:<16} {:<10}  zones crossed",
        "topic", "via", "zone"
    );
    for t in &topics {
        println!(
            "{:<24} {:<16} {:<10}  {}",
            t.topic,
            t.via,
            if t.zone.is_empty() { "-" } else { t.zone },
            path_text(t.path)
        );
    }
    Ok(())
}

fn print_services(routes: &[Route<'_>]) {
    if routes.is_empty() {
        println!("no services: no worker here, and no peer offers one");
        return;
    }
    println!(
        "{:<24} {:<16} {:<10} {:>7} {:>9}  zones crossed",
        "service", "via", "zone", "credit", "in-flight"
    );
    for r in routes {
        println!(
            "{:<24} {:<16} {:<10} {:>7} {:>9}  {}",
            r.service,
            r.via,
            if r.zone.is_empty() { "-" } else { r.zone },
            r.credit,
            r.in_flight,
            path_text(r.path)
        );
    }
}
