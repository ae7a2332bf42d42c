//! Logins and permissions (`--auth`): every endpoint refuses connections without a valid
//! login and goes on serving others; every plane lets an allowed action through and refuses
//! or filters a denied one.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::handshake::{handshake, Login};
use common::{deadline, start_with, TestBroker, Transport, BOTH};
use zhub_client::{Client, ClientOptions, ConnectErrorKind, GroupErrorKind, RequestErrorKind};
use zhub_worker::WorkerOptions;

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "s3cret pass";

/// The auth file of these tests, `{hash}` standing for the hash of [`PASSWORD`].
const AUTH: &str = r#"
[users.app]
password = "{hash}"
[users.app.allow]
publish = ["app.*", "end"]
subscribe = ["app.*", "end"]
request = ["echo"]
kv_read = ["app/*"]
kv_write = ["app/*"]
log_read = ["orders"]
log_append = ["orders"]
log_admin = ["orders"]
group_join = ["team"]
[users.app.deny]
publish = ["app.secret.*"]
kv_write = ["app/ro/*"]

[users.other]
password = "{hash}"
[users.other.allow]
subscribe = ["other.*", "end"]

[users.worker]
password = "{hash}"
[users.worker.allow]
serve = ["echo"]

[users.ops]
password = "{hash}"
[users.ops.allow]
subscribe = ["*"]
kv_write = ["*"]
admin = true
"#;

/// A broker with the auth file `text` (`{hash}` replaced), and the file's path.
fn start_auth(transport: Transport, text: &str) -> (TestBroker, PathBuf) {
    let file = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let path = file.to_path_buf();
    // Kept until the test ends: the file is reread on reload.
    file.keep().unwrap();
    write_auth(&path, text);
    let broker = start_with(transport, |c| c.auth = Some(path.clone()));
    (broker, path)
}

fn write_auth(path: &std::path::Path, text: &str) {
    let hash = zhub_broker::auth::hash_password(PASSWORD.as_bytes()).unwrap();
    std::fs::write(path, text.replace("{hash}", &hash)).unwrap();
}

fn login(url: &str, user: &str) -> Client {
    ClientOptions::new()
        .timeout(WAIT)
        .credentials(user, PASSWORD)
        .connect(url)
        .unwrap_or_else(|e| panic!("{user} logs in: {e}"))
}

#[test]
fn every_endpoint_refuses_a_missing_or_wrong_login_and_serves_others() {
    deadline(LIMIT, || {
        for transport in BOTH {
            let (broker, _file) = start_auth(transport, AUTH);
            let info = broker.broker.as_ref().unwrap().info().clone();
            let endpoints = [
                (info.main.as_str(), zmq::DEALER),
                (info.publish.as_str(), zmq::PUB),
                (info.deliver.as_str(), zmq::SUB),
                (info.subscribe.as_str(), zmq::SUB),
            ];
            for (endpoint, kind) in endpoints {
                // No login: the mechanisms differ (NULL against PLAIN), which libzmq
                // reports as a protocol error or without detail, depending on which side
                // sees it first.
                let event = handshake(endpoint, kind, Login::None);
                assert!(
                    matches!(
                        event,
                        zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL
                            | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                    ),
                    "{endpoint}: {event:?}"
                );
                for refused in [("ops", "wrong"), ("nobody", PASSWORD), ("ops ", PASSWORD)] {
                    assert_eq!(
                        handshake(endpoint, kind, Login::Plain(refused.0, refused.1)),
                        zmq::SocketEvent::HANDSHAKE_FAILED_AUTH,
                        "{endpoint} {refused:?}"
                    );
                }
                assert_eq!(
                    handshake(endpoint, kind, Login::Plain("ops", PASSWORD)),
                    zmq::SocketEvent::HANDSHAKE_SUCCEEDED,
                    "{endpoint}"
                );
            }
            // Plain subscribers cannot be filtered per subscriber: only those who may see
            // everything connect there.
            assert_eq!(
                handshake(&info.subscribe, zmq::SUB, Login::Plain("app", PASSWORD)),
                zmq::SocketEvent::HANDSHAKE_FAILED_AUTH
            );
            // The client library: a wrong password is a refused login, said at once (well
            // before the timeout); no login at all is a broker that never answers.
            let err = ClientOptions::new()
                .timeout(WAIT)
                .credentials("app", "wrong")
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::Refused, "{err}");
            let err = ClientOptions::new()
                .timeout(Duration::from_millis(300))
                .connect(&broker.url)
                .unwrap_err();
            assert_eq!(err.kind(), ConnectErrorKind::TimedOut);
            // And the broker still serves everyone else.
            let mut ops = login(&broker.url, "ops");
            assert!(ops.stats().is_ok());
        }
    });
}

#[test]
fn a_denied_subscriber_receives_nothing_while_an_allowed_one_receives_everything() {
    deadline(LIMIT, || {
        let (broker, _file) = start_auth(Transport::Ipc, AUTH);
        let mut publisher = login(&broker.url, "app");
        let mut allowed_client = login(&broker.url, "app");
        let mut denied_client = login(&broker.url, "other");
        let mut allowed = allowed_client.subscribe(&["app.", "end"]).unwrap();
        // Subscribing is not refused; what it may not see never reaches it.
        let mut denied = denied_client.subscribe(&["app.", "end"]).unwrap();
        const N: u32 = 2000;
        for i in 0..N {
            publisher.publish("app.data", &i).unwrap();
            if i % 100 == 0 {
                // Refused at the broker: dropped and counted.
                publisher.publish("app.secret.x", &i).unwrap();
                publisher.publish("admin.x", &i).unwrap();
            }
        }
        publisher.publish("end", &0u32).unwrap();
        for i in 0..N {
            let m = allowed
                .recv_timeout(WAIT)
                .unwrap()
                .expect("every allowed message");
            assert_eq!((m.topic(), m.decode::<u32>().unwrap()), ("app.data", i));
        }
        let end = allowed.recv_timeout(WAIT).unwrap().expect("end");
        assert_eq!(end.topic(), "end");
        // Copies to one subscriber keep their order: `end` came last, so nothing before it
        // was let through.
        let first = denied
            .recv_timeout(WAIT)
            .unwrap()
            .expect("end, allowed to it");
        assert_eq!(first.topic(), "end");
        assert_eq!(denied.gaps(), 0);
        let mut ops = login(&broker.url, "ops");
        let want = u64::from(N / 100) * 2;
        let started = Instant::now();
        loop {
            let forbidden = ops.stats().unwrap().bus.dropped.forbidden;
            if forbidden == want {
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "forbidden publishes: {forbidden} of {want}"
            );
        }
    });
}

#[test]
fn requests_are_checked_per_service_and_workers_per_served_service() {
    deadline(LIMIT, || {
        let (broker, _file) = start_auth(Transport::Tcp, AUTH);
        let worker = WorkerOptions::new()
            .credentials("worker", PASSWORD)
            .connect(&broker.url, "echo")
            .unwrap();
        let stop = worker.stopper();
        let serving = std::thread::spawn(move || worker.run(|body| body.to_vec()));
        // A worker for a service its user may not serve is sent away at its READY.
        let rogue = WorkerOptions::new()
            .credentials("worker", PASSWORD)
            .connect(&broker.url, "payments")
            .unwrap();
        let rogue_stop = rogue.stopper();
        let rogue_serving = std::thread::spawn(move || rogue.run(|_| b"stolen".to_vec()));

        let mut app = login(&broker.url, "app");
        assert_eq!(app.request_bytes("echo", b"hi").unwrap(), b"hi");
        let err = app.request_bytes("payments", b"x").unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden);
        assert!(
            err.to_string()
                .contains("user 'app' may not request 'payments'"),
            "{err}"
        );
        let err = app.stats().unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden);
        assert!(err.to_string().contains("admin only"), "{err}");

        let mut ops = login(&broker.url, "ops");
        let started = Instant::now();
        while ops.stats().unwrap().requests.forbidden < 3 {
            assert!(
                started.elapsed() < WAIT,
                "the rogue worker's READY was not refused"
            );
        }
        let services = ops.request::<_, Vec<zhub_protocol::builtin::ServiceInfo>>(
            zhub_protocol::builtin::SERVICES_SERVICE,
            &(),
        );
        let names: Vec<String> = services.unwrap().into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"echo".to_owned()), "{names:?}");
        assert!(!names.contains(&"payments".to_owned()), "{names:?}");

        stop.stop();
        rogue_stop.stop();
        serving.join().unwrap().unwrap();
        let _ = rogue_serving.join().unwrap();
    });
}

#[test]
fn majordomo_clients_are_checked_like_native_ones() {
    deadline(LIMIT, || {
        let (broker, _file) = start_auth(Transport::Ipc, AUTH);
        let context = zmq::Context::new();
        let socket = context.socket(zmq::DEALER).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_rcvtimeo(10_000).unwrap();
        socket.set_plain_username(Some("app")).unwrap();
        socket.set_plain_password(Some(PASSWORD)).unwrap();
        socket.connect(&broker.url).unwrap();
        let request = |service: &str| {
            let mut frames = vec![Vec::new()];
            frames.extend(
                zhub_protocol::mdp::ClientMessage {
                    service: service.into(),
                    body: vec![b"x".to_vec()],
                }
                .encode(),
            );
            socket.send_multipart(frames, 0).unwrap();
        };
        // Denied first, then a built-in allowed to everyone: the only reply is the second's
        // (MDP has no error replies; the refusal is counted).
        request("payments");
        request("mmi.service");
        let reply = socket.recv_multipart(0).unwrap();
        assert!(
            reply.iter().any(|f| f.as_slice() == b"mmi.service"),
            "{reply:?}"
        );
        let mut ops = login(&broker.url, "ops");
        assert_eq!(ops.stats().unwrap().requests.forbidden, 1);
    });
}

#[test]
fn key_value_log_and_group_requests_are_checked() {
    deadline(LIMIT, || {
        let (broker, _file) = start_auth(Transport::Ipc, AUTH);
        let mut app = login(&broker.url, "app");
        let forbidden = |e: zhub_client::RequestError| {
            assert_eq!(e.kind(), RequestErrorKind::Forbidden, "{e}");
            e.to_string()
        };
        app.kv().put("app/a", &1u32).unwrap();
        assert_eq!(app.kv().get::<u32>("app/a").unwrap(), Some(1));
        let err = forbidden(app.kv().put("other/a", &1u32).unwrap_err());
        assert!(
            err.contains("user 'app' may not write key 'other/a'"),
            "{err}"
        );
        let err = forbidden(app.kv().put("app/ro/a", &1u32).unwrap_err());
        assert!(err.contains("denied by 'app/ro/*'"), "{err}");
        forbidden(app.kv().get::<u32>("other/a").unwrap_err());
        assert_eq!(app.kv().list_all("app/").unwrap().len(), 1);
        forbidden(app.kv().list_all("").unwrap_err());

        app.log()
            .create("orders", zhub_protocol::log::StreamSettings::default())
            .unwrap();
        app.log().append("orders", &"one").unwrap();
        forbidden(
            app.log()
                .create("audit", zhub_protocol::log::StreamSettings::default())
                .unwrap_err(),
        );
        forbidden(app.log().append("audit", &"one").unwrap_err());
        forbidden(app.log().streams().unwrap_err());
        forbidden(app.log().journal("app.", "orders").unwrap_err());

        assert!(zhub_client::Group::join_open(&app, "team").is_ok());
        let Err(err) = zhub_client::Group::join_open(&app, "board") else {
            panic!("joined a group it may not join");
        };
        assert_eq!(err.kind(), GroupErrorKind::Forbidden, "{err}");

        // A watch of keys it may not read delivers nothing; one of its own keys works.
        let mut watcher = app.kv().watch("").unwrap();
        let mut ops = login(&broker.url, "ops");
        ops.kv().put("other/b", &2u32).unwrap();
        app.kv().put("app/b", &2u32).unwrap();
        let change = watcher.recv_timeout(WAIT).unwrap().expect("its own key");
        assert_eq!(change.key, "app/b");
    });
}

/// A ZMTP 3.0 greeting announcing `mechanism`, as a client.
fn greeting(mechanism: &str) -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0];
    let mut name = mechanism.as_bytes().to_vec();
    name.resize(20, 0);
    g.extend(name);
    g.push(0);
    g.extend([0u8; 31]);
    g
}

#[test]
fn malformed_handshakes_are_cut_off_and_the_broker_serves_on() {
    use std::io::{Read, Write};
    deadline(LIMIT, || {
        let (broker, _file) = start_auth(Transport::Tcp, AUTH);
        let info = broker.broker.as_ref().unwrap().info().clone();
        // HELLO with a user name longer than the command.
        let mut bad_hello = greeting("PLAIN");
        bad_hello.extend([0x04, 8, 5]);
        bad_hello.extend(b"HELLO");
        bad_hello.extend([200, b'x']);
        // HELLO with no credentials at all.
        let mut empty_hello = greeting("PLAIN");
        empty_hello.extend([0x04, 6, 5]);
        empty_hello.extend(b"HELLO");
        // A long command frame whose size lies.
        let mut lying = greeting("PLAIN");
        lying.extend([0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5]);
        lying.extend(b"HELLO");
        let inputs: Vec<Vec<u8>> = vec![
            b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            vec![0xff; 200],
            greeting("CURVE"),
            greeting("NULL"),
            greeting("GSSAPI"),
            bad_hello,
            empty_hello,
            lying,
            greeting("PLAIN")[..30].to_vec(),
        ];
        for endpoint in [&info.main, &info.publish, &info.deliver, &info.subscribe] {
            let address = endpoint.trim_start_matches("tcp://");
            for input in &inputs {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                stream.set_read_timeout(Some(WAIT)).unwrap();
                // The broker may cut the connection before all is written.
                let _ = stream.write_all(input);
                if input.len() < 64 {
                    // A greeting cut short: the broker waits for the rest; go away.
                    continue;
                }
                let mut sink = Vec::new();
                match stream.read_to_end(&mut sink) {
                    // Closed by the broker, as it should be.
                    Ok(_) => {}
                    Err(e) => assert!(
                        e.kind() == std::io::ErrorKind::ConnectionReset,
                        "{endpoint}: {input:?}: {e}"
                    ),
                }
            }
        }
        let mut ops = login(&broker.url, "ops");
        assert!(ops.stats().is_ok());
    });
}
