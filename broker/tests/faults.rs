//! Malformed input from peers, and shutdown: the broker logs, counts and drops bad input, and
//! keeps serving.

mod common;

use std::time::Duration;

use common::{deadline, start, Transport};
use zhub_client::{Client, RequestErrorKind};
use zhub_protocol::{Reply, Status};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(5);

fn raw_socket(kind: zmq::SocketType, endpoint: &str) -> (zmq::Context, zmq::Socket) {
    let ctx = zmq::Context::new();
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.connect(endpoint).unwrap();
    (ctx, s)
}

#[test]
fn malformed_bus_frames_are_counted_and_dropped() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut everything = client.subscribe(&[""]).unwrap();
        // A raw XPUB (so we can wait for the broker's subscription) sending garbage.
        let (_ctx, raw) = raw_socket(zmq::XPUB, &client.info().publish.clone());
        assert_eq!(
            raw.recv_bytes(0).unwrap(),
            vec![1u8],
            "broker subscribes to everything"
        );
        raw.send(&b"no terminator at all"[..], 0).unwrap();
        raw.send(&b"topic\0\x01\x01too short"[..], 0).unwrap();
        raw.send(&b"\0empty topic"[..], 0).unwrap();
        raw.send_multipart([&b"multi\0"[..], &b"part"[..]], 0)
            .unwrap();
        let mut bad_version = zhub_protocol::bus::encode(
            "topic",
            &zhub_protocol::BusHeader {
                publisher: 1,
                seq: 1,
                timestamp_us: 0,
                lamport: 0,
                encoding: zhub_protocol::Encoding::Raw,
            },
            b"",
        );
        bad_version[6] = 200;
        raw.send(bad_version, 0).unwrap();
        // A good message after the garbage is delivered, and nothing before it.
        client.publish("after", &"fine").unwrap();
        let m = everything
            .recv_timeout(WAIT)
            .unwrap()
            .expect("good message");
        assert_eq!(m.topic(), "after");
        assert_eq!(
            everything.malformed(),
            0,
            "garbage never reaches subscribers"
        );
        let stats = client.stats().unwrap();
        assert_eq!(stats.bus.dropped.malformed, 5, "{stats:?}");
    });
}

#[test]
fn malformed_requests_get_an_error_or_are_dropped_and_the_broker_goes_on() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let (_ctx, raw) = raw_socket(zmq::DEALER, &broker.url);
        let garbage: Vec<Vec<Vec<u8>>> = vec![
            vec![b"no delimiter".to_vec()],
            vec![Vec::new()],
            vec![Vec::new(), b"XYZ99".to_vec(), b"junk".to_vec()],
            vec![Vec::new(), b"ZHC01".to_vec()],
            vec![Vec::new(), b"ZHC01".to_vec(), vec![0x01], b"short".to_vec()],
            vec![
                Vec::new(),
                b"ZHC01".to_vec(),
                vec![0x09],
                7u64.to_be_bytes().to_vec(),
            ],
            vec![
                Vec::new(),
                b"\xff\xfe".to_vec(),
                vec![],
                vec![],
                vec![],
                vec![],
                vec![],
            ],
        ];
        for frames in &garbage {
            raw.send_multipart(frames, 0).unwrap();
        }
        // Readable id, bad service name and timeout: answered 400 rather than left waiting.
        let bad = vec![
            Vec::new(),
            b"ZHC01".to_vec(),
            vec![0x01],
            42u64.to_be_bytes().to_vec(),
            b"".to_vec(),
            b"\0\0".to_vec(),
        ];
        raw.send_multipart(&bad, 0).unwrap();
        let reply = raw.recv_multipart(0).unwrap();
        let reply = Reply::decode(&reply[1..]).unwrap();
        assert_eq!((reply.id, reply.status), (42, Status::BadRequest));

        let mut client = Client::connect(&broker.url).unwrap();
        let stats = client.stats().unwrap();
        assert_eq!(
            stats.requests.malformed,
            garbage.len() as u64 + 1,
            "{stats:?}"
        );
        // A service nobody serves: the request waits for a worker until its deadline, then
        // the broker answers "no service" (before the client's own, slightly later, timeout).
        let options = zhub_client::RequestOptions::new().timeout(Duration::from_millis(300));
        let err = client
            .request_bytes_with("no.such.service", b"", &options)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::NoService, "{err}");
    });
}

#[test]
fn shutdown_is_prompt_and_frees_the_endpoints() {
    deadline(LIMIT, || {
        let mut broker = start(Transport::Tcp);
        let info = broker.broker.as_ref().unwrap().info().clone();
        let mut client = Client::connect(&broker.url).unwrap();
        let _sub = client.subscribe(&["x"]).unwrap();
        client.publish("x", &1).unwrap();
        let started = std::time::Instant::now();
        broker.shutdown();
        assert!(started.elapsed() < Duration::from_secs(2));
        // Same ports, same data dir: a new broker starts at once.
        let config = zhub_broker::Config {
            listen: info.main.clone(),
            publish: info.publish.clone(),
            subscribe: info.subscribe.clone(),
            data_dir: broker.dir.path().join("data"),
            ..zhub_broker::Config::default()
        };
        let again = zhub_broker::Broker::start(&config).expect("restart on the same endpoints");
        again.shutdown();
    });
}

#[test]
fn a_second_broker_on_the_same_data_dir_or_endpoint_is_refused() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let info = broker.broker.as_ref().unwrap().info().clone();
        let other = tempfile::tempdir().unwrap();
        let same_dir = zhub_broker::Config {
            data_dir: broker.dir.path().join("data"),
            ..zhub_broker::Config::local_ipc(other.path())
        };
        let err = zhub_broker::Broker::start(&same_dir).err().expect("locked");
        assert!(
            err.to_string().contains("in use by another broker"),
            "{err}"
        );
        let same_ipc = zhub_broker::Config {
            listen: info.main.clone(),
            ..zhub_broker::Config::local_ipc(other.path())
        };
        let err = zhub_broker::Broker::start(&same_ipc)
            .err()
            .expect("ipc in use");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        // The first broker still serves.
        let mut client = Client::connect(&broker.url).unwrap();
        client.stats().unwrap();
    });
}

#[test]
fn connecting_to_nothing_times_out_clearly() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ipc://{}", dir.path().join("nobody.sock").display());
        let started = std::time::Instant::now();
        let err = zhub_client::ClientOptions::new()
            .timeout(Duration::from_millis(300))
            .connect(&url)
            .unwrap_err();
        assert_eq!(err.kind(), zhub_client::ConnectErrorKind::TimedOut);
        // The unanswered `zhub.info` request does not hold the socket for its linger (2 s).
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        assert!(err.to_string().contains(&url), "{err}");
        let err = Client::connect("localhost:5555").unwrap_err();
        assert_eq!(err.kind(), zhub_client::ConnectErrorKind::InvalidUrl);
    });
}

#[test]
fn replies_never_outnumber_requests_after_a_burst_of_malformed_ones() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let (_ctx, raw) = raw_socket(zmq::DEALER, &broker.url);
        // Requests whose id can be read but whose service name cannot: each is answered 400.
        let burst = 50u64;
        for id in 0..burst {
            let bad = vec![
                Vec::new(),
                b"ZHC01".to_vec(),
                vec![0x01],
                id.to_be_bytes().to_vec(),
                b"bad\nname".to_vec(),
                1000u32.to_be_bytes().to_vec(),
            ];
            raw.send_multipart(&bad, 0).unwrap();
        }
        for _ in 0..burst {
            let reply = raw.recv_multipart(0).unwrap();
            let reply = Reply::decode(&reply[1..]).unwrap();
            assert_eq!(reply.status, Status::BadRequest);
        }
        // Unanswerable garbage: counted as malformed, neither received nor replied.
        raw.send_multipart([&b""[..], &b"XYZ99"[..]], 0).unwrap();
        let mut client = Client::connect(&broker.url).unwrap();
        let stats = client.stats().unwrap().requests;
        assert!(
            stats.replied <= stats.received,
            "replied {} > received {}",
            stats.replied,
            stats.received
        );
        assert_eq!(stats.malformed, burst + 1, "{stats:?}");
        assert!(stats.received > burst, "{stats:?}");
    });
}
