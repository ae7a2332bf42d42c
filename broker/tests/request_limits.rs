//! Bounds on what a client can make the broker hold: request size, bytes queued per
//! service, and how long a request may wait.

mod common;

use std::time::{Duration, Instant};

use common::{deadline, start_with, Transport};
use zhub_client::{Client, ClientOptions, RequestErrorKind, RequestOptions};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_request_over_max_message_is_answered_too_large_and_a_huge_frame_is_cut() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| {
            c.max_message = 64 << 10;
            c.service_queue_bytes = 1 << 20;
        });
        let mut client = Client::connect(&broker.url).unwrap();
        let over = vec![7u8; (64 << 10) + 1];
        let err = client.request_bytes("anything", &over).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::TooLarge, "{err}");
        assert!(err.to_string().contains("max_message"), "{err}");
        // Built-in services are bounded the same way.
        let err = client
            .kv()
            .put_bytes("k", &over, None)
            .expect_err("too large for the main endpoint");
        assert_eq!(err.kind(), RequestErrorKind::TooLarge, "{err}");
        // Far beyond the limit, libzmq drops the connection without reading the frame: no
        // answer (the client times out), and the broker goes on serving.
        let mut reckless = ClientOptions::new()
            .timeout(Duration::from_millis(500))
            .connect(&broker.url)
            .unwrap();
        let huge = vec![0u8; 4 << 20];
        let err = reckless.request_bytes("anything", &huge).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::TimedOut, "{err}");
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
