//! Logins on the cluster link: brokers under `--auth` that peer log in to each other's
//! cluster and deliver endpoints (with the `[cluster]` secret, or the shared `[curve]` key
//! pair), serve each other's services and share pub/sub across the link; nobody else gets
//! onto the cluster endpoint, and the peers' login gets nowhere else.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::{cluster_of, node_with};
use common::handshake::{handshake, Login};
use common::{deadline, TestBroker};
use zhub_client::{Client, ClientOptions, CurveKeyPair, RequestErrorKind};
use zhub_protocol::builtin::{Peers, PEERS_SERVICE};
use zhub_worker::WorkerOptions;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "s3cret pass";
const SECRET: &str = "the cluster's own long secret";

/// Users `app`, `worker` and `ops` with [`PASSWORD`] (`{hash}` stands for its hash), and
/// `{cluster}` for the `[cluster]` section.
const AUTH: &str = r#"
{cluster}

[users.app]
password = "{hash}"
[users.app.allow]
publish = ["app.*"]
subscribe = ["app.*"]
request = ["*"]
kv_read = ["app/*"]

[users.worker]
password = "{hash}"
[users.worker.allow]
serve = ["echo"]

[users.ops]
password = "{hash}"
[users.ops.allow]
admin = true
"#;

fn auth_file(dir: &Path, name: &str, cluster: &str) -> PathBuf {
    let hash = zhub_broker::auth::hash_password(PASSWORD.as_bytes()).unwrap();
    let path = dir.join(name);
    let text = AUTH.replace("{hash}", &hash).replace("{cluster}", cluster);
    std::fs::write(&path, text).unwrap();
    path
}

/// The auth file with the `[cluster]` secret.
fn secret_file(dir: &Path) -> PathBuf {
    auth_file(
        dir,
        "auth.toml",
        &format!("[cluster]\nsecret = \"{SECRET}\""),
    )
}

/// A broker named `name` under the auth file `auth`, with a cluster endpoint, linked to
/// `peers`, with fast heartbeats.
fn node(name: &str, auth: &Path, peers: &[String]) -> TestBroker {
    let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
    let auth = auth.to_owned();
    node_with(name, &peers, move |c| c.auth = Some(auth))
}

fn login(url: &str, user: &str) -> Client {
    ClientOptions::new()
        .timeout(WAIT)
        .credentials(user, PASSWORD)
        .connect(url)
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

/// Waits until `ops`'s broker has its peer `name` up.
fn wait_up(ops: &mut Client, name: &str) {
    loop {
        let peers: Peers = ops.request(PEERS_SERVICE, &()).unwrap();
        if peers
            .links
            .iter()
            .any(|l| l.broker == name && l.state == "up")
        {
            return;
        }
        std::thread::yield_now();
    }
}

/// Two brokers sharing a file with a `[cluster]` secret: a worker's service on one serves a
/// client of the other, and a message published on one reaches a subscriber of the other,
/// every party logged in as its own user.
#[test]
fn brokers_with_the_cluster_secret_peer_and_serve_each_others_users() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(dir.path());
        let a = node("a", &file, &[]);
        let b = node("b", &file, &[cluster_of(&a)]);
        let mut ops = login(&a.url, "ops");
        wait_up(&mut ops, "b");

        let worker = WorkerOptions::new()
            .credentials("worker", PASSWORD)
            .connect(&b.url, "echo")
            .unwrap();
        let stopper = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|body| body.to_vec()));
        let mut app = login(&a.url, "app");
        assert_eq!(app.request_bytes("echo", b"across").unwrap(), b"across");

        // A built-in service of the peer is checked as this broker's own would be: `app`
        // may request any service, but not write a key.
        let err = app.at("b").unwrap().kv().put("app/x", &1u32).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden, "{err}");

        // Pub/sub across the link: b's bus logged in to a's deliver endpoint.
        let mut sub = login(&a.url, "app").subscribe(&["app."]).unwrap();
        let mut publisher = login(&b.url, "app");
        let started = Instant::now();
        let message = loop {
            publisher.publish_bytes("app.news", b"hello").unwrap();
            if let Some(m) = sub.recv_timeout(Duration::from_millis(50)).unwrap() {
                break m;
            }
            assert!(started.elapsed() < WAIT, "nothing crossed the link");
        };
        assert_eq!(message.topic(), "app.news");
        stopper.stop();
        serving.join().unwrap().unwrap();
    });
}

/// The cluster endpoint takes the peers' login only: a user of the file, a wrong secret
/// and no login are refused; the peers' login is refused everywhere but the cluster and
/// deliver endpoints; a broker with the wrong secret never comes up as a peer.
#[test]
fn only_peers_log_in_to_the_cluster_endpoint_and_peers_nowhere_else() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let file = secret_file(dir.path());
        let a = node("a", &file, &[]);
        let info = a.broker.as_ref().unwrap().info().clone();
        let peer = Login::Plain("$zhub.peer", SECRET);
        let refused = zmq::SocketEvent::HANDSHAKE_FAILED_AUTH;
        assert_eq!(
            handshake(&info.cluster, zmq::DEALER, peer),
            zmq::SocketEvent::HANDSHAKE_SUCCEEDED
        );
        assert_eq!(
            handshake(&info.deliver, zmq::SUB, peer),
            zmq::SocketEvent::HANDSHAKE_SUCCEEDED
        );
        for wrong in [
            Login::Plain("$zhub.peer", "not the secret at all"),
            Login::Plain("app", PASSWORD),
            Login::Plain("ops", PASSWORD),
        ] {
            assert_eq!(handshake(&info.cluster, zmq::DEALER, wrong), refused);
        }
        let none = handshake(&info.cluster, zmq::DEALER, Login::None);
        assert_ne!(none, zmq::SocketEvent::HANDSHAKE_SUCCEEDED);
        for (endpoint, kind) in [
            (info.main.as_str(), zmq::DEALER),
            (info.publish.as_str(), zmq::PUB),
            (info.subscribe.as_str(), zmq::SUB),
        ] {
            assert_eq!(handshake(endpoint, kind, peer), refused, "{endpoint}");
        }

        // A broker whose secret differs is refused at the link: its peer list never shows a
        // up, while a broker with the right secret, started after it, comes up.
        let other = auth_file(
            dir.path(),
            "other.toml",
            "[cluster]\nsecret = \"another long secret, not a's\"",
        );
        let stranger = node("stranger", &other, &[cluster_of(&a)]);
        let friend = node("friend", &file, &[cluster_of(&a)]);
        let mut ops = login(&a.url, "ops");
        wait_up(&mut ops, "friend");
        let mut stranger_ops = login(&stranger.url, "ops");
        let peers: Peers = stranger_ops.request(PEERS_SERVICE, &()).unwrap();
        assert!(
            peers.links.iter().all(|l| l.state != "up"),
            "{:?}",
            peers.links
        );
        let peers: Peers = ops.request(PEERS_SERVICE, &()).unwrap();
        assert!(peers.links.iter().all(|l| l.broker != "stranger"));
        drop(friend);
    });
}

/// A broker under `--auth` with peers and a file that gives them no login does not start,
/// and says what to add.
#[test]
fn peers_without_a_way_to_log_in_stop_the_start_saying_why() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let file = auth_file(dir.path(), "auth.toml", "");
        let config = zhub_broker::Config {
            auth: Some(file.clone()),
            cluster: Some("tcp://127.0.0.1:*".into()),
            ..zhub_broker::Config::local_tcp(dir.path().join("data"))
        };
        let err = zhub_broker::Broker::start(&config).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains("[cluster]") && text.contains("[curve]"),
            "{text}"
        );
        // A secret too short to be one, and a secret beside [curve], are errors of the file.
        let short = auth_file(dir.path(), "short.toml", "[cluster]\nsecret = \"short\"");
        let config = zhub_broker::Config {
            auth: Some(short),
            ..config
        };
        let text = zhub_broker::Broker::start(&config)
            .err()
            .expect("refused")
            .to_string();
        assert!(text.contains("cluster.secret"), "{text}");
    });
}

/// Under CURVE, brokers that share the `[curve]` key pair log in to each other with it, and
/// a client key pair is refused at the cluster endpoint.
#[test]
fn brokers_sharing_a_curve_key_pair_peer_over_curve() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let server = CurveKeyPair::generate().expect("this libzmq has CURVE");
        let ops = CurveKeyPair::generate().unwrap();
        let worker = CurveKeyPair::generate().unwrap();
        let text = format!(
            "[curve]\npublic = \"{}\"\nsecret = \"{}\"\n\n[users.ops]\ncurve_keys = [\"{}\"]\n[users.ops.allow]\nrequest = [\"echo\"]\nadmin = true\n\n[users.worker]\ncurve_keys = [\"{}\"]\n[users.worker.allow]\nserve = [\"echo\"]\n",
            server.public(),
            server.secret(),
            ops.public(),
            worker.public()
        );
        let file = dir.path().join("auth.toml");
        std::fs::write(&file, text).unwrap();
        let a = node("a", &file, &[]);
        let b = node("b", &file, &[cluster_of(&a)]);
        let connect = |url: &str, keys: &CurveKeyPair| {
            ClientOptions::new()
                .timeout(WAIT)
                .curve(server.public(), keys.clone())
                .connect(url)
                .unwrap()
        };
        let mut client = connect(&a.url, &ops);
        wait_up(&mut client, "b");
        let w = WorkerOptions::new()
            .curve(server.public(), worker.clone())
            .connect(&b.url, "echo")
            .unwrap();
        let stopper = w.stopper();
        let serving = std::thread::spawn(move || w.run(|body| body.to_vec()));
        assert_eq!(client.request_bytes("echo", b"curve").unwrap(), b"curve");
        let info = a.broker.as_ref().unwrap().info().clone();
        assert_eq!(
            handshake(
                &info.cluster,
                zmq::DEALER,
                Login::Curve(server.public(), &ops)
            ),
            zmq::SocketEvent::HANDSHAKE_FAILED_AUTH
        );
        stopper.stop();
        serving.join().unwrap().unwrap();
    });
}
