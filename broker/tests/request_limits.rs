//! Bounds on what a client can make the broker hold: request size, bytes queued per
//! service, and how long a request may wait.

mod common;

use std::time::{Duration, Instant};

use common::{deadline, start_with, Transport};
use zhub_client::{Client, RequestErrorKind, RequestOptions};
use zhub_protocol::{Reply, Request, Status};

const LIMIT: Duration = Duration::from_secs(60);

/// A raw native client's request: what the broker answers, if anything within `wait`.
fn raw_request(url: &str, body: Vec<u8>, wait: Duration) -> Option<Reply> {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).unwrap();
    socket.set_linger(0).unwrap();
    socket.connect(url).unwrap();
    let request = Request {
        id: 7,
        service: "anything".into(),
        timeout: Duration::from_secs(5),
        body: vec![body],
    };
    let mut frames = vec![Vec::new()];
    frames.extend(request.encode());
    socket.send_multipart(frames, 0).unwrap();
    if socket.poll(zmq::POLLIN, wait.as_millis() as i64).unwrap() == 0 {
        return None;
    }
    let frames = socket.recv_multipart(0).unwrap();
    Some(Reply::decode(&frames[1..]).unwrap())
}

#[test]
fn a_request_over_max_message_is_answered_too_large_and_a_huge_frame_is_cut() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| {
            c.max_message = 64 << 10;
            c.service_queue_bytes = 1 << 20;
        });
        let mut client = Client::connect(&broker.url).unwrap();
        let over = vec![7u8; (64 << 10) + 1];
        // The client knows the bound from zhub.info and refuses at once, whatever the size.
        for size in [over.len(), 4 << 20] {
            let err = client
                .request_bytes("anything", &vec![7u8; size])
                .unwrap_err();
            assert_eq!(err.kind(), RequestErrorKind::TooLarge, "{err}");
            assert!(err.to_string().contains("max_message"), "{err}");
        }
        // Built-in services are bounded the same way.
        let err = client
            .kv()
            .put_bytes("k", &over, None)
            .expect_err("too large for the main endpoint");
        assert_eq!(err.kind(), RequestErrorKind::TooLarge, "{err}");

        // A peer that sends one anyway is answered 413 by the broker...
        let reply = raw_request(&broker.url, over.clone(), Duration::from_secs(10))
            .expect("an answer to a request a little over the bound");
        assert_eq!((reply.id, reply.status), (7, Status::TooLarge));
        assert!(reply.reason().contains("max_message"), "{}", reply.reason());
        // ...and, far beyond it, libzmq drops the connection without reading the frame: no
        // answer, and the broker goes on serving.
        assert!(raw_request(&broker.url, vec![0u8; 4 << 20], Duration::from_millis(500)).is_none());
        let stats = client.stats().unwrap();
        assert!(
            stats.requests.replied <= stats.requests.received,
            "{stats:?}"
        );
    });
}

#[test]
fn a_service_holding_too_many_bytes_answers_busy() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| {
            c.max_message = 512 << 10;
            c.service_queue_bytes = 1 << 20;
        });
        let mut client = Client::connect(&broker.url).unwrap();
        let body = vec![1u8; 400 << 10];
        // Nobody serves "nobody": the first two wait for a worker, the third would pass
        // the 1 MiB the service may hold.
        let long = Duration::from_secs(30);
        let first = client.send_request_bytes("nobody", &body, long).unwrap();
        let second = client.send_request_bytes("nobody", &body, long).unwrap();
        let third = client.send_request_bytes("nobody", &body, long).unwrap();
        let (id, outcome) = client.recv_reply().unwrap();
        assert_eq!(id, third);
        let err = outcome.unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Busy, "{err}");
        assert!(err.to_string().contains("bytes"), "{err}");
        let _ = (first, second);
    });
}

#[test]
fn a_deadline_longer_than_max_deadline_is_cut_to_it() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| {
            c.max_deadline = Duration::from_secs(1);
            c.mdp_timeout = Duration::from_secs(1);
        });
        let mut client = Client::connect(&broker.url).unwrap();
        let started = Instant::now();
        let options = RequestOptions::new().timeout(Duration::from_secs(40));
        let err = client
            .request_bytes_with("nobody", b"", &options)
            .unwrap_err();
        // The broker answers at its 1 s bound, long before the client's own 40 s.
        assert_eq!(err.kind(), RequestErrorKind::NoService, "{err}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(1), "{waited:?}");
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    });
}
