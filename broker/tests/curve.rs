//! CURVE logins end to end (an auth file with `[curve]`): clients and workers log in with
//! their key pairs on every endpoint and get their user's permissions; unknown keys and
//! wrong server keys are refused while the broker serves others; the HTTP endpoint's own
//! login works; reloads add and remove keys, and cut off connections of a removed key.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::handshake::{handshake, Login};
use common::{deadline, spawn_broker_with, start_with, BrokerChild, TestBroker, Transport, BOTH};
use zhub_client::{Client, ClientOptions, ConnectErrorKind, CurveKeyPair, RequestErrorKind};
use zhub_worker::WorkerOptions;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
/// Long enough for a handshake on loopback; what a refused login waits before `TimedOut`.
const SHORT: Duration = Duration::from_millis(300);

/// The key pairs of one test: the broker's and one per user.
struct Keys {
    server: CurveKeyPair,
    app: CurveKeyPair,
    worker: CurveKeyPair,
    ops: CurveKeyPair,
    /// In no file.
    stranger: CurveKeyPair,
}

impl Keys {
    fn new() -> Keys {
        let new = || CurveKeyPair::generate().expect("this libzmq has CURVE");
        Keys {
            server: new(),
            app: new(),
            worker: new(),
            ops: new(),
            stranger: new(),
        }
    }

    /// The auth file: `[curve]` with the broker's pair, users `app` and `worker` keyed by
    /// their pairs, and `ops` by `ops_keys`.
    fn file(&self, ops_keys: &[&CurveKeyPair]) -> String {
        let ops: Vec<String> = ops_keys
            .iter()
            .map(|k| format!("\"{}\"", k.public()))
            .collect();
        format!(
            r#"
[curve]
public = "{server_public}"
secret = "{server_secret}"

[users.app]
curve_keys = ["{app}"]
[users.app.allow]
publish = ["app.*"]
subscribe = ["app.*"]
request = ["echo"]
kv_read = ["app/*"]
kv_write = ["app/*"]
[users.app.deny]
kv_write = ["app/ro/*"]

[users.worker]
curve_keys = ["{worker}"]
[users.worker.allow]
serve = ["echo"]

[users.ops]
curve_keys = [{ops}]
[users.ops.allow]
subscribe = ["*"]
kv_read = ["*"]
admin = true
"#,
            server_public = self.server.public(),
            server_secret = self.server.secret(),
            app = self.app.public(),
            worker = self.worker.public(),
            ops = ops.join(", "),
        )
    }

    fn client(&self, url: &str, keys: &CurveKeyPair) -> Client {
        ClientOptions::new()
            .timeout(WAIT)
            .curve(self.server.public(), keys.clone())
            .connect(url)
            .unwrap_or_else(|e| panic!("{} logs in: {e}", keys.public()))
    }
}

/// Writes `text` to a file that outlives the call (the broker rereads it on reload).
fn auth_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("auth.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start_curve(transport: Transport, keys: &Keys, dir: &Path) -> (TestBroker, PathBuf) {
    let path = auth_file(dir, &keys.file(&[&keys.ops]));
    let broker = start_with(transport, |c| c.auth = Some(path.clone()));
    (broker, path)
}

/// Retries `attempt` until it returns true, with a deadline (a reload through SIGHUP is
/// asynchronous).
fn until(what: &str, mut attempt: impl FnMut() -> bool) {
    let started = Instant::now();
    while !attempt() {
        assert!(started.elapsed() < WAIT, "{what}");
    }
}

#[test]
fn a_keyed_client_and_worker_use_every_plane_with_their_users_permissions() {
    deadline(LIMIT, || {
        for transport in BOTH {
            let keys = Keys::new();
            let dir = tempfile::tempdir().unwrap();
            let (broker, _file) = start_curve(transport, &keys, dir.path());

            let worker = WorkerOptions::new()
                .curve(keys.server.public(), keys.worker.clone())
                .connect(&broker.url, "echo")
                .unwrap();
            let stop = worker.stopper();
            let serving = std::thread::spawn(move || worker.run(|body| body.to_vec()));

            let mut app = keys.client(&broker.url, &keys.app);
            // Requests: through the CURVE worker; another service is Forbidden.
            assert_eq!(app.request_bytes("echo", b"hi").unwrap(), b"hi");
            let err = app.request_bytes("payments", b"x").unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::Forbidden);
            assert!(
                err.to_string()
                    .contains("user 'app' may not request 'payments'"),
                "{err}"
            );
            assert_eq!(app.stats().unwrap_err().kind(), RequestErrorKind::Forbidden);

            // Key-value: its prefix, less the denied part.
            app.kv().put("app/color", &"blue").unwrap();
            assert_eq!(
                app.kv().get::<String>("app/color").unwrap().as_deref(),
                Some("blue")
            );
            let err = app.kv().put("app/ro/x", &1u32).unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::Forbidden);
            assert!(err.to_string().contains("denied by 'app/ro/*'"), "{err}");
            let err = app.kv().get::<u32>("other/x").unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::Forbidden);

            // Publish and subscribe, over the publish and deliver endpoints with the key.
            let mut listener = keys.client(&broker.url, &keys.app);
            let mut sub = listener.subscribe(&["app."]).unwrap();
            let mut ops = keys.client(&broker.url, &keys.ops);
            let mut everything = ops.subscribe(&[""]).unwrap();
            app.publish("admin.x", &0u32).unwrap(); // not its topic: dropped
            for i in 0..100u32 {
                app.publish("app.data", &i).unwrap();
            }
            for i in 0..100u32 {
                let m = sub.recv_timeout(WAIT).unwrap().expect("every message");
                assert_eq!((m.topic(), m.decode::<u32>().unwrap()), ("app.data", i));
                let m = everything.recv_timeout(WAIT).unwrap().expect("ops too");
                assert_eq!(m.topic(), "app.data", "the denied publish went nowhere");
            }
            until("the denied publish is counted", || {
                ops.stats().unwrap().bus.dropped.forbidden >= 1
            });

            stop.stop();
            serving.join().unwrap().unwrap();
        }
    });
}

#[test]
fn unknown_keys_wrong_server_keys_and_passwords_are_refused_and_others_served() {
    deadline(LIMIT, || {
        for transport in BOTH {
            let keys = Keys::new();
            let dir = tempfile::tempdir().unwrap();
            let (broker, _file) = start_curve(transport, &keys, dir.path());
            let info = broker.broker.as_ref().unwrap().info().clone();
            let server = keys.server.public();
            let impostor = CurveKeyPair::generate().unwrap();
            for (endpoint, kind) in [
                (info.main.as_str(), zmq::DEALER),
                (info.publish.as_str(), zmq::PUB),
                (info.deliver.as_str(), zmq::SUB),
                (info.subscribe.as_str(), zmq::SUB),
            ] {
                let stranger = handshake(endpoint, kind, Login::Curve(server, &keys.stranger));
                assert_eq!(
                    stranger,
                    zmq::SocketEvent::HANDSHAKE_FAILED_AUTH,
                    "{endpoint}"
                );
                // A server key that is not the broker's: the broker cannot read the HELLO.
                let wrong_server =
                    handshake(endpoint, kind, Login::Curve(impostor.public(), &keys.ops));
                assert_ne!(
                    wrong_server,
                    zmq::SocketEvent::HANDSHAKE_SUCCEEDED,
                    "{endpoint}"
                );
                // No login, or a password: every endpoint takes CURVE only.
                for login in [Login::None, Login::Plain("ops", "anything")] {
                    let event = handshake(endpoint, kind, login);
                    assert_ne!(event, zmq::SocketEvent::HANDSHAKE_SUCCEEDED, "{endpoint}");
                }
                assert_eq!(
                    handshake(endpoint, kind, Login::Curve(server, &keys.ops)),
                    zmq::SocketEvent::HANDSHAKE_SUCCEEDED,
                    "{endpoint}"
                );
            }
            // Plain subscribers cannot be filtered per subscriber: a key of a user who may
            // not see everything is refused there.
            assert_eq!(
                handshake(&info.subscribe, zmq::SUB, Login::Curve(server, &keys.app)),
                zmq::SocketEvent::HANDSHAKE_FAILED_AUTH
            );

            // The client library: an unknown key is a refused login, said at once; a wrong
            // server key or a password is a broker that never answers (it cannot read them).
            let err = ClientOptions::new()
                .timeout(WAIT)
                .curve(server, keys.stranger.clone())
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::Refused, "{err}");
            let err = ClientOptions::new()
                .timeout(SHORT)
                .curve(impostor.public(), keys.app.clone())
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::TimedOut);
            let err = ClientOptions::new()
                .timeout(SHORT)
                .credentials("ops", "anything")
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::TimedOut);
            // A server key that is no key at all fails at once.
            let err = ClientOptions::new()
                .curve("not a key", keys.app.clone())
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::InvalidKey, "{err}");
            let err = WorkerOptions::new()
                .curve(&server[1..], keys.worker.clone())
                .connect(&broker.url, "echo")
                .err()
                .expect("a short server key is refused");
            assert!(err.to_string().contains("server key"), "{err}");

            // And the broker still serves everyone else.
            let mut ops = keys.client(&broker.url, &keys.ops);
            let stats = ops.stats().unwrap();
            assert_eq!(stats.requests.forbidden, 0);
        }
    });
}

#[test]
fn the_http_endpoint_reads_through_its_own_login_under_curve() {
    use std::io::{Read, Write};
    deadline(LIMIT, || {
        let keys = Keys::new();
        let dir = tempfile::tempdir().unwrap();
        let path = auth_file(dir.path(), &keys.file(&[&keys.ops]));
        let broker = start_with(Transport::Tcp, |c| {
            c.auth = Some(path.clone());
            c.http = Some("127.0.0.1:0".into());
        });
        let http = broker.broker.as_ref().unwrap().info().http.clone();
        let address = http.strip_prefix("http://").expect("an http address");
        let mut app = keys.client(&broker.url, &keys.app);
        app.kv().put("app/color", &"blue").unwrap();
        let get = |path: &str| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
            assert!(
                head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
                "GET {path}: {head}\n{body}"
            );
            body.to_owned()
        };
        let info = get("/api/info");
        assert!(info.contains(&broker.url), "{info}");
        let metrics = get("/metrics");
        assert!(metrics.contains("zhub_kv_requests_total"), "{metrics}");
        let page = get("/api/kv?prefix=app/");
        assert!(page.contains("app/color"), "{page}");
        // The internal key is the broker's alone: no file holds it, and it changes each
        // start; the users of the file are checked as ever.
        assert_eq!(app.stats().unwrap_err().kind(), RequestErrorKind::Forbidden);
    });
}

#[test]
fn a_reload_adds_and_removes_keys_and_a_changed_key_pair_is_refused() {
    deadline(LIMIT, || {
        let keys = Keys::new();
        let dir = tempfile::tempdir().unwrap();
        let (broker, path) = start_curve(Transport::Tcp, &keys, dir.path());
        let reloader = broker.broker.as_ref().unwrap().auth_reloader().unwrap();
        let second = CurveKeyPair::generate().unwrap();
        let refused = |keys_: &CurveKeyPair| {
            ClientOptions::new()
                .timeout(SHORT)
                .curve(keys.server.public(), keys_.clone())
                .connect(&broker.url)
                .is_err()
        };
        assert!(refused(&second));
        let mut first = keys.client(&broker.url, &keys.ops);
        let mut first_sub = first.subscribe(&[""]).unwrap();

        // Rotation, step one: the new key beside the old.
        std::fs::write(&path, keys.file(&[&keys.ops, &second])).unwrap();
        reloader.reload().unwrap();
        let mut rotated = keys.client(&broker.url, &second);
        assert!(rotated.stats().is_ok());
        assert!(first.stats().is_ok());

        // Step two: the old key out. Its open connection is refused from its next message.
        std::fs::write(&path, keys.file(&[&second])).unwrap();
        reloader.reload().unwrap();
        let err = first.stats().unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden);
        assert!(err.to_string().contains("no longer holds"), "{err}");
        assert!(refused(&keys.ops));
        assert!(rotated.stats().is_ok());
        // Its subscriptions go quiet too, while the new key's receive.
        let mut app = keys.client(&broker.url, &keys.app);
        let mut sub = rotated.subscribe(&["app."]).unwrap();
        app.publish("app.x", &1u32).unwrap();
        assert!(sub.recv_timeout(WAIT).unwrap().is_some());
        assert!(first_sub.recv_timeout(SHORT).unwrap().is_none());

        // The broker's key pair is set on its endpoints at start: a reload may not change it.
        let other = Keys::new();
        std::fs::write(&path, other.file(&[&second])).unwrap();
        let err = reloader.reload().unwrap_err().to_string();
        assert!(err.contains("[curve] differs"), "{err}");
        assert!(rotated.stats().is_ok());
        // Nor take it away (the endpoints would still take CURVE logins only).
        std::fs::write(&path, "[users.ops]\n").unwrap();
        assert!(reloader.reload().is_err());
        assert!(rotated.stats().is_ok());
    });
}

#[test]
fn sighup_adds_a_key_to_the_running_binary() {
    deadline(LIMIT, || {
        let keys = Keys::new();
        let dir = tempfile::tempdir().unwrap();
        let path = auth_file(dir.path(), &keys.file(&[&keys.ops]));
        let (child, url) = spawn_broker_with(dir.path(), &["--auth", path.to_str().unwrap()]);
        let child = BrokerChild(child);
        let mut ops = keys.client(&url, &keys.ops);
        let second = CurveKeyPair::generate().unwrap();
        let connect = |k: &CurveKeyPair| {
            ClientOptions::new()
                .timeout(SHORT)
                .curve(keys.server.public(), k.clone())
                .connect(&url)
        };
        assert!(connect(&second).is_err());
        std::fs::write(&path, keys.file(&[&keys.ops, &second])).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        until("the added key logs in", || connect(&second).is_ok());
        // The connection made before the reload is still up.
        assert!(ops.stats().is_ok());
    });
}

#[test]
fn a_password_beside_a_key_pair_stops_the_start_saying_why() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let hash = zhub_broker::auth::hash_password(b"pw").unwrap();
    let text = format!(
        "{}\n[users.legacy]\npassword = \"{hash}\"\n",
        keys.file(&[&keys.ops])
    );
    let path = auth_file(dir.path(), &text);
    let mut config = zhub_broker::Config::local_ipc(dir.path());
    config.auth = Some(path);
    let err = zhub_broker::Broker::start(&config)
        .err()
        .expect("a password under [curve] is refused")
        .to_string();
    assert!(
        err.contains("users.legacy.password") && err.contains("CURVE logins only"),
        "{err}"
    );
}
