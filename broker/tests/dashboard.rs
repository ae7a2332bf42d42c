//! The dashboard in a real browser: headless Chromium loads `/`, shows a service a test
//! worker registered, and its request counter rises as the test sends requests; with peered
//! brokers, it draws the peers and their links. Screenshots are written to
//! `target/dashboard.png` and `target/dashboard-peers.png` for a person to look at.
//!
//! Skipped, saying so, where `/usr/bin/chromium` is missing (`.ci/run` installs it when it
//! can).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::cluster::wait_for_route;
use common::{deadline, start_with, TestBroker, Transport};
use zhub_client::{Client, Group};
use zhub_protocol::builtin::{Peers, PEERS_SERVICE};
use zhub_worker::Worker;

const CHROMIUM: &str = "/usr/bin/chromium";
const LIMIT: Duration = Duration::from_secs(180);
/// Longest one Chromium run may take before it is killed. A run takes a few seconds; now and
/// then headless Chromium's virtual time never runs out (every request answered, its
/// connections idle, the process asleep; about one run in ten here), so a run past this is
/// killed and tried again.
const BROWSER_LIMIT: Duration = Duration::from_secs(20);
/// Runs of Chromium before a test gives up.
const BROWSER_TRIES: u32 = 3;

/// Held by each test for its whole run. Each starts brokers and a Chromium, and one keeps a
/// broker busy on purpose while the page is drawn: on a 2-core machine, a Chromium run beside
/// it took 30 s instead of 3. One after the other, the tests take about as long as side
/// by side, and the timings the last one prints are its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This test's turn; a test that failed holding it does not fail the others.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs Chromium headless on `url` with `extra` flags; its standard output. A run that
/// hangs is killed and tried again, up to [`BROWSER_TRIES`] runs.
fn chromium(url: &str, extra: &[&str]) -> String {
    for run in 1..=BROWSER_TRIES {
        match chromium_once(url, extra) {
            Some(text) => return text,
            None => eprintln!("chromium run {run} did not finish within {BROWSER_LIMIT:?}"),
        }
    }
    panic!("chromium did not finish within {BROWSER_LIMIT:?}, {BROWSER_TRIES} times");
}

/// One run of Chromium; `None` when it did not finish within [`BROWSER_LIMIT`] (it is killed).
fn chromium_once(url: &str, extra: &[&str]) -> Option<String> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(BROWSER_LIMIT).ok();
    if text.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    text
}

/// The page's DOM once its scripts have run for `budget_ms` of virtual time (polls
/// included: virtual time waits for the network).
fn dump_dom(url: &str, budget_ms: u32) -> String {
    chromium(
        url,
        &["--dump-dom", &format!("--virtual-time-budget={budget_ms}")],
    )
}

/// The text of attribute `attribute` in the first tag holding `marker`.
fn attribute_text<'a>(dom: &'a str, marker: &str, attribute: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let tag_end = at + dom[at..].find('>')?;
    let tag_start = dom[..at].rfind('<')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!(" {attribute}=\"");
    let from = tag.find(&key)? + key.len();
    let len = tag[from..].find('"')?;
    Some(&tag[from..from + len])
}

/// The value of attribute `attribute` in the first tag holding `marker`, as a number.
fn attribute(dom: &str, marker: &str, attribute: &str) -> Option<u64> {
    attribute_text(dom, marker, attribute)?.parse().ok()
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp, wherever the target directory is.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_dashboard_shows_a_service_and_its_counter_rising() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let _turn = one_at_a_time();
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.http = Some("127.0.0.1:0".into()));
        let page = format!("{}/", broker.broker.as_ref().unwrap().info().http);
        let worker = Worker::connect(&broker.url, "orders.price").unwrap();
        let stop = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|b| b.to_vec()));
        let mut client = Client::connect(&broker.url).unwrap();
        for _ in 0..2 {
            client.request_bytes("orders.price", b"7").unwrap();
        }
        let _a = Group::join_open(&client, "dice").unwrap();
        let _b = Group::join_open(&client, "dice").unwrap();

        let marker = "data-service=\"orders.price\"";
        let first = dump_dom(&page, 3000);
        assert_eq!(
            attribute(&first, "data-group=\"dice\"", "data-members"),
            Some(2),
            "the group is not shown:\n{first}"
        );
        assert!(first.contains(marker), "the service is not shown:\n{first}");
        assert!(attribute(&first, "<body", "data-updates").unwrap_or(0) >= 1);
        assert!(
            first.contains("no peers: start with"),
            "a broker without peers says so:\n{first}"
        );
        let served = attribute(&first, marker, "data-served").unwrap();
        assert!(served >= 2, "served {served}");
        assert_eq!(attribute(&first, marker, "data-workers"), Some(1));

        for _ in 0..5 {
            client.request_bytes("orders.price", b"8").unwrap();
        }
        let second = dump_dom(&page, 3000);
        let now = attribute(&second, marker, "data-served").unwrap();
        assert!(now >= served + 5, "served {served} then {now}");

        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

/// A broker with a little of everything, for the picture: services, streams, keys and
/// steady traffic while the page is drawn.
#[test]
fn a_screenshot_of_a_busy_dashboard() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let _turn = one_at_a_time();
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.http = Some("127.0.0.1:0".into()));
        let page = format!("{}/", broker.broker.as_ref().unwrap().info().http);
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        for name in [
            "orders.price",
            "orders.place",
            "billing.invoice",
            "search.query",
            "users.lookup",
            "mail.send",
        ] {
            let worker = Worker::connect(&broker.url, name).unwrap();
            stops.push(worker.stopper());
            threads.push(std::thread::spawn(move || worker.run(|b| b.to_vec())));
        }
        let mut client = Client::connect(&broker.url).unwrap();
        for (stream, records) in [("audit", 120), ("orders", 4000), ("clicks", 900)] {
            client.log().create(stream, Default::default()).unwrap();
            let batch: Vec<String> = (0..records).map(|i| format!("record {i}")).collect();
            for chunk in batch.chunks(500) {
                client.log().append_batch(stream, chunk).unwrap();
            }
        }
        for i in 0..40 {
            client
                .kv()
                .put_bytes(&format!("config.{i}"), b"on", None)
                .unwrap();
        }
        for i in 0..12 {
            client
                .kv()
                .put_bytes(&format!("session/{i}"), &[7; 300], None)
                .unwrap();
        }
        let mut members = Vec::new();
        for (group, size) in [("workers.pool", 4), ("ring", 3), ("replicas", 2)] {
            for _ in 0..size {
                members.push(Group::join_open(&client, group).unwrap());
            }
        }
        let _token = members[4].lock(Duration::from_secs(5)).unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let traffic = {
            let running = Arc::clone(&running);
            let url = broker.url.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                let services = [
                    "orders.price",
                    "orders.place",
                    "search.query",
                    "search.query",
                ];
                let mut i = 0usize;
                while running.load(Ordering::Relaxed) {
                    let _ = client.request_bytes(services[i % services.len()], b"q");
                    let _ = client.publish_bytes("clicks.home", b"c");
                    i += 1;
                }
            })
        };

        let file = target_dir().join("dashboard.png");
        let _ = std::fs::remove_file(&file);
        chromium(
            &page,
            &[
                &format!("--screenshot={}", file.display()),
                "--window-size=1366,1000",
                "--virtual-time-budget=8000",
            ],
        );
        running.store(false, Ordering::Relaxed);
        traffic.join().unwrap();
        let png = std::fs::read(&file).expect("the screenshot is written");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        eprintln!("screenshot: {}", file.display());
        for stop in stops {
            stop.stop();
        }
        for t in threads {
            t.join().unwrap().unwrap();
        }
    });
}

/// A broker with 1,000 services and 100 streams: the page lists them all in its counts but
/// draws only its first 100 rows of each table, and still updates. Prints the JSON sizes
/// and the wall time of ten polls (the responsiveness figures; no timing is asserted).
#[test]
fn a_thousand_services_and_a_hundred_streams_are_capped_in_the_page() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let _turn = one_at_a_time();
    deadline(LIMIT, || {
        // Raw Majordomo workers send no heartbeats: a long interval keeps them registered.
        let broker = start_with(Transport::Ipc, |c| {
            c.http = Some("127.0.0.1:0".into());
            c.heartbeat = Duration::from_secs(600);
        });
        let info = broker.broker.as_ref().unwrap().info().clone();
        let page = format!("{}/", info.http);
        let context = zmq::Context::new();
        let mut workers = Vec::new();
        for i in 0..1000 {
            let socket = context.socket(zmq::DEALER).unwrap();
            socket.set_linger(0).unwrap();
            socket.connect(&info.main).unwrap();
            let name = format!("svc.{:04}", i);
            socket
                .send_multipart([&b""[..], b"MDPW01", b"\x01", name.as_bytes()], 0)
                .unwrap();
            workers.push(socket);
        }
        let mut client = Client::connect(&info.main).unwrap();
        for i in 0..100 {
            client
                .log()
                .create(&format!("stream-{i:03}"), Default::default())
                .unwrap();
        }
        // Every READY is in once zhub.services lists 1,000.
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let services_json = loop {
            let services: Vec<zhub_protocol::builtin::ServiceInfo> =
                client.request("zhub.services", &()).unwrap();
            if services.len() == 1000 {
                break serde_json::to_string(&services).unwrap();
            }
            assert!(
                std::time::Instant::now() < give_up,
                "{} services",
                services.len()
            );
        };
        let streams_json = serde_json::to_string(&client.log().streams().unwrap()).unwrap();

        let metrics = scrape(info.http.trim_start_matches("http://"));
        assert!(metrics.contains("zhub_service_workers{service=\"svc.0999\"} 1"));

        let started = std::time::Instant::now();
        let dom = dump_dom(&page, 10_000);
        let wall = started.elapsed();
        let updates = attribute(&dom, "<body", "data-updates").unwrap_or(0);
        let rows = dom.matches("data-service=\"").count();
        let stream_rows = dom.matches("data-stream=\"").count();
        assert_eq!(rows, 100, "services drawn");
        assert_eq!(stream_rows, 100, "streams drawn");
        assert!(dom.contains("900 more"), "the rest are counted");
        assert!(updates >= 5, "only {updates} updates");
        eprintln!(
            "1000 services, 100 streams: /metrics {} bytes, /api/services {} bytes, /api/streams {} bytes; \
             {updates} polls in {:.2}s wall ({:.0} ms a poll, Chromium start included)",
            metrics.len(),
            services_json.len(),
            streams_json.len(),
            wall.as_secs_f64(),
            wall.as_secs_f64() * 1000.0 / updates as f64
        );
    });
}

/// The body of `GET /metrics` at `address`.
fn scrape(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "{head}"
    );
    body.to_owned()
}

/// A broker named `name` in `zone` with its HTTP endpoint, its cluster endpoint at `cluster`
/// and links to `peers`; fast heartbeats, so that round trips are measured at once.
fn peered(name: &str, zone: &str, cluster: &str, peers: &[&str]) -> TestBroker {
    let (name, zone, cluster) = (name.to_owned(), zone.to_owned(), cluster.to_owned());
    let peers: Vec<String> = peers.iter().map(|p| (*p).to_owned()).collect();
    start_with(Transport::Tcp, move |c| {
        c.http = Some("127.0.0.1:0".into());
        c.name = Some(name);
        c.zone = zone;
        c.cluster = Some(cluster);
        c.peer = peers
            .into_iter()
            .map(|endpoint| zhub_broker::config::PeerConfig { endpoint })
            .collect();
        c.cluster_heartbeat = Duration::from_millis(100);
    })
}

/// Waits until `client`'s broker has a link in each of `states` (peer name, link state)
/// with its round trip measured.
fn wait_for_links(client: &mut Client, states: &[(&str, &str)]) {
    loop {
        let peers: Peers = client.request(PEERS_SERVICE, &()).unwrap();
        if states.iter().all(|(name, state)| {
            peers
                .links
                .iter()
                .any(|l| l.broker == *name && l.state == *state && l.rtt_us > 0)
        }) {
            return;
        }
        std::thread::yield_now();
    }
}

/// B1 and B2 list each other (their cluster endpoints are ipc paths, known before either
/// starts), so B1 has two links to B2: one up, one standing by. B1 also lists an endpoint
/// nobody binds, a link for ever connecting. B1's page draws B2 up with both links, and
/// the stranger connecting. Then B3 and B4, in zone `west`, link to B1, peers serve
/// services, and the page is photographed at a laptop's 1366x768.
#[test]
fn the_dashboard_draws_peers_their_zones_and_links() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let _turn = one_at_a_time();
    deadline(LIMIT, || {
        let sockets = tempfile::tempdir().unwrap();
        let cluster = |n: &str| format!("ipc://{}", sockets.path().join(n).display());
        let (c1, c2, nobody) = (cluster("b1"), cluster("b2"), cluster("nobody"));
        let b1 = peered("B1", "default", &c1, &[&c2, &nobody]);
        let b2 = peered("B2", "default", &c2, &[&c1]);
        let page = format!("{}/", b1.broker.as_ref().unwrap().info().http);
        let mut client = Client::connect(&b1.url).unwrap();
        wait_for_links(&mut client, &[("B2", "up"), ("B2", "standby")]);

        let dom = dump_dom(&page, 3000);
        assert_eq!(
            attribute_text(&dom, "data-peer=\"B2\"", "data-state"),
            Some("up"),
            "B2 is not drawn up:\n{dom}"
        );
        assert!(
            dom.contains("data-link=\"B2\" data-state=\"standby\""),
            "the standby link is not drawn:\n{dom}"
        );
        assert!(
            dom.contains("<tr data-peer=\"B2\" data-state=\"up\""),
            "B2 is not in the table:\n{dom}"
        );
        assert!(
            dom.contains("data-state=\"connecting\""),
            "the link nobody answers is not drawn connecting:\n{dom}"
        );
        assert!(!dom.contains("no peers"), "B1 says it has no peers:\n{dom}");

        // Two brokers in another zone, and services each peer serves for B1's clients.
        let b3 = peered("B3", "west", &cluster("b3"), &[&c1]);
        let _b4 = peered("B4", "west", &cluster("b4"), &[&c1]);
        let mut workers = Vec::new();
        for (broker, service) in [
            (&b2, "search.query"),
            (&b2, "users.lookup"),
            (&b3, "orders.price"),
        ] {
            let worker = Worker::connect(&broker.url, service).unwrap();
            workers.push((
                worker.stopper(),
                std::thread::spawn(move || worker.run(|b| b.to_vec())),
            ));
        }
        wait_for_links(
            &mut client,
            &[("B2", "up"), ("B2", "standby"), ("B3", "up"), ("B4", "up")],
        );
        wait_for_route(&mut client, "users.lookup", "B2");
        wait_for_route(&mut client, "orders.price", "B3");
        for _ in 0..3 {
            client.request_bytes("orders.price", b"7").unwrap();
        }

        let file = target_dir().join("dashboard-peers.png");
        let _ = std::fs::remove_file(&file);
        chromium(
            &page,
            &[
                &format!("--screenshot={}", file.display()),
                "--window-size=1366,768",
                "--virtual-time-budget=4000",
            ],
        );
        let png = std::fs::read(&file).expect("the screenshot is written");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        eprintln!("screenshot: {}", file.display());
        for (stop, thread) in workers {
            stop.stop();
            thread.join().unwrap().unwrap();
        }
    });
}
