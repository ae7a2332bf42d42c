//! Named services end to end: Majordomo on the wire, the worker crate, the native client's
//! extensions, and the broker's reliability rules.

mod common;

use std::time::Duration;

use common::{deadline, start, start_with, Transport};
use zhub_client::{Client, ClientOptions, RequestErrorKind, RequestOptions};
use zhub_worker::{Worker, WorkerOptions};

const LIMIT: Duration = Duration::from_secs(60);

fn raw(kind: zmq::SocketType, url: &str) -> (zmq::Context, zmq::Socket) {
    let ctx = zmq::Context::new();
    let s = ctx.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.connect(url).unwrap();
    (ctx, s)
}

fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// Receives from a raw worker, skipping broker heartbeats.
fn recv_skipping_heartbeats(worker: &zmq::Socket) -> Vec<Vec<u8>> {
    loop {
        let msg = worker.recv_multipart(0).expect("message for the worker");
        if msg != frames(&[b"", b"MDPW01", b"\x04"]) {
            return msg;
        }
    }
}

/// A Majordomo client (a REQ socket, as in the guide) and a Majordomo worker, both built
/// from raw frames exactly as RFC 7 lays them out, work through zhub unchanged.
#[test]
fn majordomo_client_and_worker_byte_for_byte() {
    deadline(LIMIT, || {
        for transport in [Transport::Tcp, Transport::Ipc] {
            let broker = start(transport);
            let (_wctx, worker) = raw(zmq::DEALER, &broker.url);
            worker
                .send_multipart(frames(&[b"", b"MDPW01", b"\x01", b"echo"]), 0)
                .unwrap();

            let (_cctx, client) = raw(zmq::REQ, &broker.url);
            // mmi.service: wait until the worker is registered ("200"), proving discovery.
            loop {
                client
                    .send_multipart(frames(&[b"MDPC01", b"mmi.service", b"echo"]), 0)
                    .unwrap();
                let reply = client.recv_multipart(0).unwrap();
                assert_eq!(&reply[..2], &frames(&[b"MDPC01", b"mmi.service"])[..]);
                if reply[2] == b"200" {
                    break;
                }
                assert_eq!(reply[2], b"404");
            }
            client
                .send_multipart(frames(&[b"MDPC01", b"mmi.service", b"nobody"]), 0)
                .unwrap();
            assert_eq!(client.recv_multipart(0).unwrap()[2], b"404");
            client
                .send_multipart(frames(&[b"MDPC01", b"mmi.unknown", b""]), 0)
                .unwrap();
            assert_eq!(client.recv_multipart(0).unwrap()[2], b"501");

            client
                .send_multipart(frames(&[b"MDPC01", b"echo", b"hello", b"second frame"]), 0)
                .unwrap();
            let request = recv_skipping_heartbeats(&worker);
            assert_eq!(request.len(), 7, "{request:?}");
            assert_eq!(&request[..3], &frames(&[b"", b"MDPW01", b"\x02"])[..]);
            let address = request[3].clone();
            assert_eq!(
                &request[4..],
                &frames(&[b"", b"hello", b"second frame"])[..]
            );

            let mut reply = frames(&[b"", b"MDPW01", b"\x03"]);
            reply.push(address);
            reply.extend(frames(&[b"", b"HELLO"]));
            worker.send_multipart(reply, 0).unwrap();
            assert_eq!(
                client.recv_multipart(0).unwrap(),
                frames(&[b"MDPC01", b"echo", b"HELLO"])
            );

            // The native client reaches the same raw worker.
            let mut native = Client::connect(&broker.url).unwrap();
            let pending = std::thread::spawn(move || native.request_bytes("echo", b"from zhub"));
            let request = recv_skipping_heartbeats(&worker);
            assert_eq!(request[5], b"from zhub");
            let mut reply = frames(&[b"", b"MDPW01", b"\x03"]);
            reply.push(request[3].clone());
            reply.extend(frames(&[b"", b"ok"]));
            worker.send_multipart(reply, 0).unwrap();
            assert_eq!(pending.join().unwrap().unwrap(), b"ok");
        }
    });
}

#[test]
fn worker_crate_serves_raw_and_typed_requests() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let url = broker.url.clone();
        let upper = Worker::connect(&url, "upper").unwrap();
        let stop_upper = upper.stopper();
        let t1 = std::thread::spawn(move || upper.run(|b| b.to_ascii_uppercase()));
        let adder = Worker::connect(&url, "add").unwrap();
        let stop_adder = adder.stopper();
        let t2 = std::thread::spawn(move || adder.run_typed(|(a, b): (i64, i64)| a + b));

        let mut client = Client::connect(&url).unwrap();
        assert_eq!(client.request_bytes("upper", b"abc").unwrap(), b"ABC");
        let sum: i64 = client.request("add", &(40, 2)).unwrap();
        assert_eq!(sum, 42);
        let services: Vec<zhub_protocol::builtin::ServiceInfo> =
            client.request("zhub.services", &()).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["add", "upper"]);
        assert!(services.iter().all(|s| s.workers == 1 && s.served == 1));

        stop_upper.stop();
        stop_adder.stop();
        t1.join().unwrap().unwrap();
        t2.join().unwrap().unwrap();
        // Stopped workers said DISCONNECT: the services are gone, requests wait, then fail.
        let quick = RequestOptions::new().timeout(Duration::from_millis(200));
        let err = client
            .request_bytes_with("upper", b"x", &quick)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::NoService, "{err}");
        assert!(
            Worker::connect(&url, "zhub.info").is_err(),
            "reserved names are refused"
        );
        assert!(Worker::connect("localhost:1", "x").is_err());
    });
}

#[test]
fn idle_workers_share_the_load_round_robin() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut stoppers = Vec::new();
        let mut threads = Vec::new();
        for name in ["w1", "w2", "w3"] {
            let worker = Worker::connect(&broker.url, "rr").unwrap();
            stoppers.push(worker.stopper());
            threads.push(std::thread::spawn(move || {
                worker.run(move |_| name.as_bytes().to_vec())
            }));
        }
        let mut client = Client::connect(&broker.url).unwrap();
        // Wait until all three are registered.
        loop {
            let s: Vec<zhub_protocol::builtin::ServiceInfo> =
                client.request("zhub.services", &()).unwrap();
            if s.first().is_some_and(|s| s.workers == 3) {
                break;
            }
        }
        let mut counts = std::collections::HashMap::new();
        for _ in 0..300 {
            let who = client.request_bytes("rr", b"").unwrap();
            *counts.entry(who).or_insert(0) += 1;
        }
        let counts: Vec<i32> = counts.values().copied().collect();
        assert_eq!(
            counts,
            vec![100, 100, 100],
            "strict least-recently-used rotation"
        );
        for s in stoppers {
            s.stop();
        }
        for t in threads {
            t.join().unwrap().unwrap();
        }
    });
}

#[test]
fn pipelined_requests_are_matched_by_id() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let worker = Worker::connect(&broker.url, "echo").unwrap();
        let stop = worker.stopper();
        let t = std::thread::spawn(move || worker.run(|b| b.to_vec()));
        let mut client = Client::connect(&broker.url).unwrap();
        let mut expected = std::collections::HashMap::new();
        for i in 0..64u32 {
            let id = client
                .send_request_bytes("echo", &i.to_be_bytes(), Duration::from_secs(10))
                .unwrap();
            expected.insert(id, i.to_be_bytes().to_vec());
        }
        assert_eq!(client.in_flight(), 64);
        // A blocking request in the middle keeps the others' replies for recv_reply.
        assert_eq!(
            client.request_bytes("echo", b"blocking").unwrap(),
            b"blocking"
        );
        while client.in_flight() > 0 {
            let (id, body) = client.recv_reply().unwrap();
            assert_eq!(expected.remove(&id).unwrap(), body.unwrap());
        }
        assert!(expected.is_empty());
        stop.stop();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn a_silent_worker_is_expired_and_another_serves_its_request() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.heartbeat = Duration::from_millis(50));
        // A raw worker that takes the request and then says nothing at all.
        let (_ctx, silent) = raw(zmq::DEALER, &broker.url);
        silent
            .send_multipart(frames(&[b"", b"MDPW01", b"\x01", b"job"]), 0)
            .unwrap();
        let mut client = Client::connect(&broker.url).unwrap();
        loop {
            let s: Vec<zhub_protocol::builtin::ServiceInfo> =
                client.request("zhub.services", &()).unwrap();
            if s.first().is_some_and(|s| s.workers == 1) {
                break;
            }
        }
        let url = broker.url.clone();
        let pending = std::thread::spawn(move || {
            let mut c = Client::connect(&url).unwrap();
            c.request_with::<_, String>(
                "job",
                &"work",
                &RequestOptions::new().timeout(Duration::from_secs(20)),
            )
        });
        let taken = recv_skipping_heartbeats(&silent);
        assert_eq!(taken[2], b"\x02", "the silent worker got the request");
        let good = WorkerOptions::new()
            .heartbeat(Duration::from_millis(50))
            .connect(&broker.url, "job")
            .unwrap();
        let stop = good.stopper();
        let t = std::thread::spawn(move || good.run_typed(|s: String| format!("done: {s}")));
        assert_eq!(pending.join().unwrap().unwrap(), "done: work");
        let stats = client.stats().unwrap();
        assert_eq!(
            (stats.requests.workers_expired, stats.requests.requeued),
            (1, 1),
            "{stats:?}"
        );
        stop.stop();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn a_full_queue_answers_busy_and_a_waiting_request_meets_a_late_worker() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.service_queue = 2);
        let mut client = Client::connect(&broker.url).unwrap();
        let a = client
            .send_request_bytes("late", b"1", Duration::from_secs(20))
            .unwrap();
        let b = client
            .send_request_bytes("late", b"2", Duration::from_secs(20))
            .unwrap();
        let c = client
            .send_request_bytes("late", b"3", Duration::from_secs(20))
            .unwrap();
        let (id, result) = client.recv_reply().unwrap();
        assert_eq!(id, c, "the third request is refused at once");
        assert_eq!(result.unwrap_err().kind(), RequestErrorKind::Busy);
        // A worker registering later serves the two that waited.
        let worker = Worker::connect(&broker.url, "late").unwrap();
        let stop = worker.stopper();
        let t = std::thread::spawn(move || worker.run(|b| b.to_vec()));
        let mut served = [client.recv_reply().unwrap(), client.recv_reply().unwrap()];
        served.sort_by_key(|(id, _)| *id);
        assert_eq!(served[0].0, a);
        assert_eq!(served[1].0, b);
        assert_eq!(served[0].1.as_ref().unwrap(), b"1");
        stop.stop();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn malformed_worker_frames_disconnect_the_worker() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let (_ctx, w) = raw(zmq::DEALER, &broker.url);
        w.send_multipart(frames(&[b"", b"MDPW01", b"\x01", b"svc"]), 0)
            .unwrap();
        // A REPLY with no address frame.
        w.send_multipart(frames(&[b"", b"MDPW01", b"\x03"]), 0)
            .unwrap();
        assert_eq!(
            recv_skipping_heartbeats(&w),
            frames(&[b"", b"MDPW01", b"\x05"])
        );
        // Unknown command.
        w.send_multipart(frames(&[b"", b"MDPW01", b"\x42"]), 0)
            .unwrap();
        assert_eq!(
            recv_skipping_heartbeats(&w),
            frames(&[b"", b"MDPW01", b"\x05"])
        );
        let mut client = Client::connect(&broker.url).unwrap();
        let stats = client.stats().unwrap();
        assert_eq!(stats.requests.malformed, 2, "{stats:?}");
        let services: Vec<zhub_protocol::builtin::ServiceInfo> =
            client.request("zhub.services", &()).unwrap();
        assert!(services.iter().all(|s| s.workers == 0));
    });
}

/// The broker stops and a new one starts on the same endpoints: workers notice and register
/// again by themselves, and requests are served.
#[test]
fn workers_register_again_after_a_broker_restart() {
    deadline(LIMIT, || {
        let hb = Duration::from_millis(50);
        let mut first = start_with(Transport::Ipc, |c| c.heartbeat = hb);
        let config = {
            let info = first.broker.as_ref().unwrap().info().clone();
            zhub_broker::Config {
                listen: info.main,
                publish: info.publish,
                subscribe: info.subscribe,
                data_dir: first.dir.path().join("data"),
                heartbeat: hb,
                ..zhub_broker::Config::default()
            }
        };
        let worker = WorkerOptions::new()
            .heartbeat(hb)
            .reconnect(Duration::from_millis(20), Duration::from_millis(200))
            .connect(&first.url, "survivor")
            .unwrap();
        let stop = worker.stopper();
        let t = std::thread::spawn(move || worker.run(|b| b.to_vec()));
        let options = || ClientOptions::new().timeout(Duration::from_secs(10));
        let mut client = options().connect(&first.url).unwrap();
        assert_eq!(
            client.request_bytes("survivor", b"before").unwrap(),
            b"before"
        );
        drop(client);
        first.shutdown();

        let second = zhub_broker::Broker::start(&config).unwrap();
        let mut client = options().connect(&second.info().main.clone()).unwrap();
        assert_eq!(
            client.request_bytes("survivor", b"after").unwrap(),
            b"after"
        );
        stop.stop();
        t.join().unwrap().unwrap();
        second.shutdown();
    });
}
