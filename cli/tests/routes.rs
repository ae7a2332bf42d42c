//! `zhub routes`: where requests and messages go from a broker, with the zones they cross.

mod common;

use common::{deadline, ok, zhub};

use std::time::Duration;

use zhub_client::Client;

/// A broker of zone `zone` named `name`, with a cluster endpoint, linked to `peers`.
fn zoned(dir: &std::path::Path, name: &str, zone: &str, peers: &[&str]) -> zhub_broker::Broker {
    let mut config = zhub_broker::Config::local_ipc(dir);
    config.name = Some(name.to_owned());
    config.zone = zone.to_owned();
    config.cluster = Some(format!("ipc://{}", dir.join("cluster.sock").display()));
    config.peer = peers
        .iter()
        .map(|p| zhub_broker::config::PeerConfig {
            endpoint: (*p).to_owned(),
        })
        .collect();
    config.cluster_heartbeat = Duration::from_millis(100);
    zhub_broker::Broker::start(&config).unwrap()
}

#[test]
fn routes_show_topics_declared_through_the_zones() {
    deadline(Duration::from_secs(60), || {
        let (dx, dy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let x = zoned(dx.path(), "x", "X", &[]);
        let y = zoned(dy.path(), "y", "Y", &[&x.info().cluster]);
        let url = x.info().main.clone();
        let mut client = Client::connect(&y.info().main).unwrap();
        let _sub = client.subscribe(&["news."]).unwrap();
        let line = loop {
            let out = ok(&zhub(&url, &["routes"]));
            if let Some(line) = out.lines().find(|l| l.starts_with("news.")) {
                assert!(out.contains("no services"), "{out}");
                break line.to_owned();
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words, ["news.", "y", "Y", "Y"], "{line}");
        let json = ok(&zhub(&url, &["routes", "--json"]));
        let topic: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(
            topic,
            serde_json::json!({"topic": "news.", "via": "y", "zone": "Y", "path": ["Y"]})
        );
    });
}
