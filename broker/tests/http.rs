//! The HTTP endpoint: `/metrics` parses as Prometheus text and its counters move, the JSON
//! endpoints answer, and bad paths, parameters and methods get 404, 400 and 405.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{deadline, start_with, TestBroker, Transport};
use zhub_broker::{Broker, Config};
use zhub_client::{Client, Group};
use zhub_worker::Worker;

const LIMIT: Duration = Duration::from_secs(30);

/// A broker on loopback with its HTTP endpoint on a port chosen by the OS.
fn broker_with_http() -> (TestBroker, String) {
    let broker = start_with(Transport::Tcp, |c| c.http = Some("127.0.0.1:0".into()));
    let http = broker.broker.as_ref().unwrap().info().http.clone();
    let address = http
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("no http address in info: {http:?}"))
        .to_owned();
    assert!(
        !address.ends_with(":0"),
        "the bound port is told: {address}"
    );
    (broker, address)
}

/// One HTTP/1.0 exchange: the status code and the body.
fn call(address: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the http endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

fn get(address: &str, path: &str) -> String {
    let (status, body) = call(address, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The samples of a Prometheus text, checking that each line is a comment or `name value`
/// with a well-formed label set.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not `name value`: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(
                labels.starts_with('{') && labels.ends_with("\"}") && labels.contains("=\""),
                "bad labels: {line:?}"
            );
        }
        samples.push((series.to_owned(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{series} missing"))
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    deadline(LIMIT, || {
        let (broker, http) = broker_with_http();
        let worker = Worker::connect(&broker.url, "echo").unwrap();
        let stop = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|b| b.to_vec()));
        let mut client = Client::connect(&broker.url).unwrap();
        client.log().create("audit", Default::default()).unwrap();

        let text = get(&http, "/metrics");
        assert!(text.contains("# TYPE zhub_bus_messages_in_total counter\n"));
        assert!(text.contains("# TYPE zhub_service_queued gauge\n"));
        let before = parse_metrics(&text);
        for _ in 0..3 {
            assert_eq!(client.request_bytes("echo", b"hi").unwrap(), b"hi");
        }
        client.log().append_bytes("audit", None, b"one").unwrap();
        client.kv().put_bytes("k", b"v", None).unwrap();
        client.kv().put_bytes("k", b"w", None).unwrap();
        assert_eq!(client.kv().get_bytes("k").unwrap().unwrap(), b"w");

        // A publisher's first messages are lost until the broker's subscription reaches it
        // (ZeroMQ's slow joiner): publish until the bus counts one.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let after = loop {
            client.publish_bytes("orders.new", b"x").unwrap();
            let now = parse_metrics(&get(&http, "/metrics"));
            if sample(&now, "zhub_bus_messages_in_total") >= 1.0 {
                break now;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "the publish never counted"
            );
        };
        // A labelled series appears at its first increment: absent before counts as 0.
        let grew = |series: &str, by: f64| {
            let b = before
                .iter()
                .find(|(s, _)| s == series)
                .map_or(0.0, |(_, v)| *v);
            let a = sample(&after, series);
            assert!(a >= b + by, "{series}: {b} -> {a}, expected +{by}");
        };
        grew("zhub_bus_messages_in_total", 1.0);
        grew("zhub_requests_received_total", 3.0);
        grew("zhub_service_served_total{service=\"echo\"}", 3.0);
        grew(
            "zhub_service_request_duration_seconds_count{service=\"echo\"}",
            3.0,
        );
        grew(
            "zhub_service_request_duration_seconds_bucket{service=\"echo\",le=\"+Inf\"}",
            3.0,
        );
        assert_eq!(
            sample(&after, "zhub_service_workers{service=\"echo\"}"),
            1.0
        );
        // Under the default `always`, every commit that wrote synced once.
        grew("zhub_log_requests_total{op=\"append\"}", 1.0);
        grew("zhub_log_records_appended_total", 1.0);
        grew("zhub_log_sync_duration_seconds_count", 1.0);
        grew("zhub_kv_requests_total{op=\"put\"}", 2.0);
        grew("zhub_kv_requests_total{op=\"get\"}", 1.0);
        grew("zhub_kv_sync_duration_seconds_count", 2.0);
        grew("zhub_kv_sync_duration_seconds_bucket{le=\"+Inf\"}", 2.0);
        assert_eq!(sample(&after, "zhub_kv_refused_total"), 0.0);
        assert_eq!(sample(&after, "zhub_stream_records{stream=\"audit\"}"), 1.0);
        assert_eq!(
            sample(&after, "zhub_stream_next_offset{stream=\"audit\"}"),
            1.0
        );
        assert_eq!(
            sample(&after, "zhub_bus_dropped_total{reason=\"malformed\"}"),
            0.0
        );
        assert!(sample(&after, "process_open_fds") > 0.0);
        assert!(sample(&after, "process_resident_memory_bytes") > 0.0);

        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

#[test]
fn json_endpoints_answer_and_kv_pages() {
    deadline(LIMIT, || {
        let (broker, http) = broker_with_http();
        let mut client = Client::connect(&broker.url).unwrap();
        for i in 0..5 {
            client
                .kv()
                .put_bytes(&format!("cfg.{i}"), b"v", None)
                .unwrap();
        }
        client.kv().put_bytes("other", &[0xff], None).unwrap();

        let info: serde_json::Value = serde_json::from_str(&get(&http, "/api/info")).unwrap();
        assert_eq!(info["main"], broker.url.as_str());
        assert_eq!(info["http"], format!("http://{http}"));
        let stats: serde_json::Value = serde_json::from_str(&get(&http, "/api/stats")).unwrap();
        assert!(stats["requests"]["received"].as_u64().unwrap() > 0);
        let services: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/services")).unwrap();
        assert!(services.as_array().unwrap().is_empty());
        let streams: serde_json::Value = serde_json::from_str(&get(&http, "/api/streams")).unwrap();
        assert!(streams.is_array());
        let storage: serde_json::Value = serde_json::from_str(&get(&http, "/api/storage")).unwrap();
        assert_eq!(storage["kv_ops"]["put"], 6, "{storage}");
        assert!(storage["kv_syncs"]["counts"].is_array(), "{storage}");
        let peers: serde_json::Value = serde_json::from_str(&get(&http, "/api/peers")).unwrap();
        assert!(peers["links"].as_array().unwrap().is_empty(), "{peers}");
        assert!(!peers["name"].as_str().unwrap().is_empty(), "{peers}");

        let page: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/kv?prefix=cfg.&limit=2")).unwrap();
        let keys: Vec<&str> = page["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["cfg.0", "cfg.1"]);
        assert_eq!(page["next"], "cfg.1");
        let page: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/kv?prefix=cfg%2E&after=cfg.3")).unwrap();
        assert_eq!(page["keys"].as_array().unwrap().len(), 1);
        assert!(page["next"].is_null());
        let page: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/kv?prefix=other")).unwrap();
        assert_eq!(page["keys"][0]["value"], serde_json::Value::Null);
        assert_eq!(page["keys"][0]["value_bytes"], 1);

        let html = get(&http, "/");
        assert!(html.contains("<title>zhub</title>"), "{html}");
        assert!(get(&http, "/dashboard.js").contains("/api/services"));
    });
}

#[test]
fn groups_are_listed_with_ranks_version_and_token_holder() {
    deadline(LIMIT, || {
        let (broker, http) = broker_with_http();
        let client = Client::connect(&broker.url).unwrap();
        let mut first = Group::join_open(&client, "team.a").unwrap();
        let second = Group::join_open(&client, "team.a").unwrap();
        let _other = Group::join_open(&client, "team.b").unwrap();
        let _lone = Group::join_open(&client, "solo").unwrap();
        let (first_id, second_id) = (first.member_id(), second.member_id());
        let _token = first.lock(Duration::from_secs(5)).unwrap();

        let page: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/groups?prefix=team.&limit=1")).unwrap();
        let groups = page["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{page}");
        let a = &groups[0];
        assert_eq!(a["group"], "team.a");
        let hex = |id: u64| serde_json::Value::String(format!("{id:016x}"));
        assert_eq!(
            a["members"],
            serde_json::Value::Array(vec![hex(first_id), hex(second_id)])
        );
        assert_eq!(a["version"], 2);
        assert_eq!(a["token_holder"], hex(first_id));
        assert_eq!(page["next"], "team.a");

        let page: serde_json::Value =
            serde_json::from_str(&get(&http, "/api/groups?prefix=team.&after=team.a")).unwrap();
        let names: Vec<&str> = page["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["group"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["team.b"]);
        assert!(page["groups"][0]["token_holder"].is_null());
        assert!(page["next"].is_null());
        let all: serde_json::Value = serde_json::from_str(&get(&http, "/api/groups")).unwrap();
        assert_eq!(all["groups"].as_array().unwrap().len(), 3, "{all}");

        let metrics = parse_metrics(&get(&http, "/metrics"));
        assert_eq!(sample(&metrics, "zhub_groups"), 3.0);
        assert_eq!(sample(&metrics, "zhub_groups_truncated"), 0.0);
        assert_eq!(
            sample(&metrics, "zhub_group_members{group=\"team.a\"}"),
            2.0
        );
        assert_eq!(
            sample(&metrics, "zhub_group_view_version{group=\"team.a\"}"),
            2.0
        );
    });
}

#[test]
fn bad_paths_parameters_and_methods_are_refused() {
    deadline(LIMIT, || {
        let (_broker, http) = broker_with_http();
        for (method, path, status) in [
            ("GET", "/nope", 404),
            ("GET", "/api", 404),
            ("GET", "/api/kv?limit=0", 400),
            ("GET", "/api/kv?limit=1001", 400),
            ("GET", "/api/kv?limit=ten", 400),
            ("GET", "/api/kv?colour=red", 400),
            ("GET", "/api/kv?prefix=%zz", 400),
            ("GET", "/api/groups?limit=0", 400),
            ("GET", "/api/groups?member=1", 400),
            ("POST", "/metrics", 405),
            ("DELETE", "/api/kv", 405),
        ] {
            let (got, body) = call(&http, method, path);
            assert_eq!(got, status, "{method} {path}: {body}");
            assert!(!body.is_empty() && body.len() < 200, "{body:?}");
        }
        let (status, body) = call(&http, "HEAD", "/metrics");
        assert_eq!((status, body.as_str()), (200, ""));
    });
}

#[test]
fn a_bad_or_taken_http_address_stops_the_start() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::local_tcp(dir.path().join("a"));
        config.http = Some("127.0.0.1:http".into());
        let err = Broker::start(&config).err().expect("refused").to_string();
        assert!(err.contains("http") && err.contains("IP:PORT"), "{err}");

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        config.http = Some(taken.local_addr().unwrap().to_string());
        let err = Broker::start(&config).err().expect("refused").to_string();
        assert!(err.starts_with("cannot bind http endpoint"), "{err}");
        assert!(!err.contains('\n'), "{err}");

        // Off unless set: no address in the info.
        config.http = None;
        let broker = Broker::start(&config).unwrap();
        assert_eq!(broker.info().http, "");
    });
}
