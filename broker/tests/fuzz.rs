//! Seeded fuzzing of every endpoint of an in-process broker: the main endpoint (native
//! requests to every built-in service, Majordomo clients and workers), the publish endpoint and
//! the subscribe endpoint. Inputs are valid messages, mutated (bytes flipped, frames cut,
//! dropped, repeated, swapped or replaced), and random frames.
//!
//! Afterwards the broker must answer requests and carry pub/sub end to end, no broker thread
//! may have panicked, and memory must be back near where it started.
//!
//! `ZHUB_FUZZ_INPUTS=1000000 ZHUB_FUZZ_SEED=7 cargo test --release -p zhub-broker --test fuzz
//! -- --nocapture` runs a long campaign; by default each endpoint gets a few thousand inputs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{deadline, start_with, Transport};
use zhub_client::Client;
use zhub_protocol::bus::{self, BusHeader, Encoding};
use zhub_protocol::delivery;
use zhub_protocol::group::GroupRequest;
use zhub_protocol::kv::KvRequest;
use zhub_protocol::log::{LogRequest, NewRecord, ReadFrom, StreamSettings};
use zhub_protocol::mdp::{ClientMessage, WorkerCommand};
use zhub_protocol::Request;

/// Panics seen on broker threads (named `zhub-*`).
static BROKER_PANICS: AtomicUsize = AtomicUsize::new(0);

/// A small seeded generator (xorshift64*), so that a failing run can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Between `min` and `min + spread - 1` random bytes.
    fn some_bytes(&mut self, min: usize, spread: usize) -> Vec<u8> {
        let len = min + self.below(spread);
        self.bytes(len)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Mutates a valid multipart message in one of several ways.
fn mutate(rng: &mut Rng, mut frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    for _ in 0..=rng.below(3) {
        match rng.below(8) {
            0 if !frames.is_empty() => {
                let f = rng.below(frames.len());
                if !frames[f].is_empty() {
                    let at = rng.below(frames[f].len());
                    frames[f][at] ^= 1 << rng.below(8);
                }
            }
            1 if !frames.is_empty() => {
                let f = rng.below(frames.len());
                let keep = rng.below(frames[f].len() + 1);
                frames[f].truncate(keep);
            }
            2 if !frames.is_empty() => {
                frames.remove(rng.below(frames.len()));
            }
            3 if !frames.is_empty() => {
                let f = rng.below(frames.len());
                let copy = frames[f].clone();
                frames.insert(f, copy);
            }
            4 if frames.len() > 1 => {
                let (a, b) = (rng.below(frames.len()), rng.below(frames.len()));
                frames.swap(a, b);
            }
            5 => {
                let len = rng.below(64);
                let f = rng.below(frames.len() + 1);
                let junk = rng.bytes(len);
                frames.insert(f, junk);
            }
            6 if !frames.is_empty() => {
                let f = rng.below(frames.len());
                let len = rng.below(300);
                frames[f] = rng.bytes(len);
            }
            _ => {}
        }
    }
    frames
}

fn msgpack<T: serde::Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).unwrap()
}

/// A valid message for the main endpoint (the frames after the empty delimiter).
fn main_message(rng: &mut Rng) -> Vec<Vec<u8>> {
    let key = format!("fuzz.{}", rng.below(50));
    let stream = format!("fuzz-{}", rng.below(8));
    let group = format!("g{}", rng.below(4));
    let member = rng.next();
    let kv = [
        KvRequest::Get { key: key.clone() },
        KvRequest::Put {
            key: key.clone(),
            value: rng.bytes(16),
            ttl_ms: Some(rng.below(2000) as u64),
        },
        KvRequest::Delete { key: key.clone() },
        KvRequest::Cas {
            key: key.clone(),
            expected: Some(rng.below(100) as u64),
            value: vec![1],
            ttl_ms: None,
        },
        KvRequest::Incr {
            key: key.clone(),
            delta: rng.next() as i64,
        },
        KvRequest::List {
            prefix: "fuzz.".into(),
            after: None,
            limit: rng.next(),
        },
        KvRequest::History {
            key: key.clone(),
            limit: rng.next(),
        },
        KvRequest::Snapshot {
            prefix: "fuzz.".into(),
        },
        KvRequest::Changes {
            prefix: String::new(),
            from: rng.next(),
            max: rng.next(),
            wait_ms: rng.below(100) as u64,
        },
    ];
    let log = [
        LogRequest::Create {
            stream: stream.clone(),
            settings: StreamSettings {
                segment_bytes: Some(rng.next() >> rng.below(64)),
                max_record_bytes: Some(rng.next() >> rng.below(64)),
                ..StreamSettings::default()
            },
        },
        LogRequest::Append {
            stream: stream.clone(),
            records: vec![NewRecord {
                key: None,
                value: rng.bytes(32),
                timestamp_us: None,
            }],
        },
        LogRequest::Read {
            stream: stream.clone(),
            from: ReadFrom::Offset(rng.next() >> rng.below(64)),
            max_bytes: rng.next(),
            max_records: rng.next(),
            wait_ms: rng.below(100) as u64,
        },
        LogRequest::Streams,
        LogRequest::Delete {
            stream: stream.clone(),
        },
        LogRequest::Commit {
            stream: stream.clone(),
            group: group.clone(),
            offset: rng.next(),
        },
        LogRequest::Journal {
            prefix: format!("fuzz.j{}", rng.below(4)),
            stream: stream.clone(),
        },
        LogRequest::Republish {
            stream: stream.clone(),
            from: ReadFrom::Time(rng.next() as i64),
            max_records: rng.next(),
        },
    ];
    let groups = [
        GroupRequest::Join {
            group: group.clone(),
            member,
            expected: Some(rng.below(5) as u32),
            dead_after_ms: rng.below(500) as u64,
        },
        GroupRequest::Heartbeat {
            group: group.clone(),
            member,
        },
        GroupRequest::View {
            group: group.clone(),
        },
        GroupRequest::Lock {
            group: group.clone(),
            member,
        },
        GroupRequest::Unlock {
            group: group.clone(),
            member,
        },
        GroupRequest::Leave { group, member },
    ];
    let (service, body) = match rng.below(9) {
        0 | 1 => ("zhub.kv", msgpack(rng.pick(&kv))),
        2 | 3 => ("zhub.log", msgpack(rng.pick(&log))),
        4 | 5 => ("zhub.group", msgpack(rng.pick(&groups))),
        6 => (
            *rng.pick(&["zhub.info", "zhub.stats", "zhub.services"]),
            vec![],
        ),
        7 => ("mmi.service", b"zhub.kv".to_vec()),
        _ => ("fuzz.svc", rng.bytes(8)),
    };
    match rng.below(4) {
        0 | 1 => Request {
            id: rng.next(),
            service: service.to_owned(),
            // Short deadlines, so that held requests do not pile up for the memory check.
            timeout: Duration::from_millis(rng.below(300) as u64),
            body: vec![body],
        }
        .encode(),
        2 => ClientMessage {
            service: service.to_owned(),
            body: vec![body],
        }
        .encode(),
        _ => match rng.below(4) {
            0 => WorkerCommand::Ready {
                service: format!("fuzz.w{}", rng.below(4)),
                credit: 1 + rng.below(4) as u32,
            },
            1 => WorkerCommand::Reply {
                client: rng.bytes(5),
                body: vec![body],
            },
            2 => WorkerCommand::Heartbeat,
            _ => WorkerCommand::Disconnect,
        }
        .encode(),
    }
}

/// A valid bus frame.
fn bus_frame(rng: &mut Rng) -> Vec<u8> {
    let topic = format!("fuzz.t{}", rng.below(10));
    let header = BusHeader {
        publisher: rng.next(),
        seq: rng.next(),
        timestamp_us: rng.next(),
        lamport: rng.next(),
        encoding: Encoding::Raw,
    };
    let len = rng.below(200);
    bus::encode(&topic, &header, &rng.bytes(len))
}

/// A valid subscription message, as a subscriber's socket sends it.
fn subscription(rng: &mut Rng) -> Vec<u8> {
    let id = rng.below(20) as u64;
    let mut data = match rng.below(3) {
        0 => delivery::address(id).to_vec(),
        1 => delivery::interest(id, format!("fuzz.t{}", rng.below(10)).as_bytes()),
        _ => format!("fuzz.t{}", rng.below(10)).into_bytes(),
    };
    data.insert(0, rng.below(2) as u8);
    data
}

fn socket(context: &zmq::Context, kind: zmq::SocketType, endpoint: &str) -> zmq::Socket {
    let s = context.socket(kind).unwrap();
    s.set_linger(0).unwrap();
    s.set_sndtimeo(1000).unwrap();
    s.set_rcvtimeo(1000).unwrap();
    s.connect(endpoint).unwrap();
    s
}

fn send(socket: &zmq::Socket, frames: &[Vec<u8>]) {
    // A full queue or a cut connection is the fuzzer's problem, not the broker's.
    let _ = socket.send_multipart(frames, zmq::DONTWAIT);
}

fn drain(socket: &zmq::Socket) {
    while socket.recv_multipart(zmq::DONTWAIT).is_ok() {}
}

/// The broker answers a request and carries a message end to end.
fn still_serves(url: &str, round: u64) {
    let mut client = zhub_client::ClientOptions::new()
        .timeout(Duration::from_secs(10))
        .connect(url)
        .expect("the broker still accepts clients");
    client.stats().expect("the broker still answers requests");
    let topic = format!("after.{round}");
    let mut sub = client
        .subscribe(&[&topic])
        .unwrap_or_else(|e| panic!("subscribe after fuzzing, round {round}: {e}"));
    client.publish_bytes(&topic, b"ok").unwrap();
    let m = sub
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("pub/sub still works");
    assert_eq!(m.body(), b"ok");
}

#[test]
fn every_endpoint_survives_fuzzing() {
    let inputs = env_number("ZHUB_FUZZ_INPUTS", 3_000);
    let seed = env_number("ZHUB_FUZZ_SEED", 0x5eed) | 1;
    let limit = Duration::from_secs(60 + inputs / 200);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        if thread.name().is_some_and(|n| n.starts_with("zhub-")) {
            BROKER_PANICS.fetch_add(1, Ordering::SeqCst);
        }
        default_hook(info);
    }));
    deadline(limit, move || {
        eprintln!("fuzz: seed {seed}, {inputs} inputs per endpoint");
        // TCP, so that the raw ZMTP peer below can reach the subscriber endpoints.
        let broker = start_with(Transport::Tcp, |_| {});
        let url = broker.url.clone();
        let mut client = Client::connect(&url).unwrap();
        let info = client.info().clone();
        still_serves(&url, 0);
        let rss_before = client.stats().unwrap().rss_bytes.unwrap_or(0);
        let context = zmq::Context::new();
        let mut rng = Rng(seed);
        let started = Instant::now();

        // Main endpoint: a few peers, so that some become workers and some stay clients.
        let peers: Vec<zmq::Socket> = (0..4)
            .map(|_| socket(&context, zmq::DEALER, &url))
            .collect();
        for i in 0..inputs {
            let peer = &peers[rng.below(peers.len())];
            let mut frames = main_message(&mut rng);
            if rng.below(4) > 0 {
                frames = mutate(&mut rng, frames);
            }
            frames.insert(0, Vec::new());
            if rng.below(10) == 0 {
                frames.remove(0);
            }
            send(peer, &frames);
            if i % 64 == 0 {
                peers.iter().for_each(drain);
            }
        }
        drop(peers);
        still_serves(&url, 1);
        let main_done = started.elapsed();

        // Publish endpoint: an XPUB peer sees the broker's subscription before it sends.
        let publisher = socket(&context, zmq::XPUB, &info.publish);
        publisher.recv_bytes(0).expect("the broker subscribes");
        for _ in 0..inputs {
            let frames = match rng.below(4) {
                0 => vec![rng.some_bytes(0, 100)],
                1 => vec![bus_frame(&mut rng), bus_frame(&mut rng)],
                _ => {
                    let frame = bus_frame(&mut rng);
                    mutate(&mut rng, vec![frame])
                }
            };
            let frames: Vec<Vec<u8>> = frames.into_iter().filter(|f| !f.is_empty()).collect();
            if !frames.is_empty() {
                send(&publisher, &frames);
            }
        }
        drop(publisher);
        still_serves(&url, 2);
        let publish_done = started.elapsed();

        // Subscribe and deliver endpoints: subscriptions (valid, mutated, oversized) and stray
        // messages, from a raw ZMTP peer (a libzmq XSUB would keep a copy of every
        // subscription it sends, in this same process, and muddle the memory check).
        for round in 0..4 {
            let endpoint = if round % 2 == 0 {
                &info.subscribe
            } else {
                &info.deliver
            };
            let mut peer: Option<RawZmtp> = None;
            for _ in 0..inputs / 4 {
                let frames = match rng.below(6) {
                    0 => vec![rng.some_bytes(1, 100)],
                    1 => {
                        // Longer than any subscription may be: the broker cuts the peer off.
                        let mut long = vec![1u8];
                        long.extend(rng.some_bytes(1100, 8000));
                        vec![long]
                    }
                    2 => vec![subscription(&mut rng), subscription(&mut rng)],
                    _ => {
                        let sub = subscription(&mut rng);
                        mutate(&mut rng, vec![sub])
                    }
                };
                if peer.is_none() {
                    peer = RawZmtp::connect(endpoint).ok();
                }
                if let Some(p) = peer.as_mut() {
                    if p.send_multipart(&frames).is_err() {
                        // Cut off by the broker: connect again with the next input.
                        peer = None;
                    }
                }
            }
            drop(peer);
            still_serves(&url, 3 + round);
        }
        let subscribe_done = started.elapsed();

        assert_eq!(
            BROKER_PANICS.load(Ordering::SeqCst),
            0,
            "a broker thread panicked"
        );
        // Held requests have short deadlines; let them expire, then compare memory.
        let stats = client.stats().unwrap();
        let rss_after = stats.rss_bytes.unwrap_or(0);
        eprintln!(
            "fuzz: main {main_done:?}, publish {:?}, subscribe {:?}; rss {} -> {} KiB; {:?}",
            publish_done - main_done,
            subscribe_done - publish_done,
            rss_before / 1024,
            rss_after / 1024,
            stats
        );
        assert!(
            rss_after < rss_before + (64 << 20),
            "memory grew from {rss_before} to {rss_after} bytes"
        );
    });
}

/// Speaks just enough ZMTP 3.0 (NULL mechanism) over a plain TCP stream to act as an XSUB
/// peer, so that a test can send what no well-behaved libzmq socket would, without keeping a
/// copy of it the way libzmq's own sockets do. It never reads: what the broker sends it
/// waits in the socket's buffers, as with a subscriber that has stopped.
struct RawZmtp(std::net::TcpStream);

impl RawZmtp {
    fn connect(endpoint: &str) -> std::io::Result<RawZmtp> {
        use std::io::Write;
        let address = endpoint.trim_start_matches("tcp://");
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut greeting = [0u8; 64];
        greeting[0] = 0xff;
        greeting[9] = 0x7f;
        greeting[10] = 3;
        greeting[12..16].copy_from_slice(b"NULL");
        stream.write_all(&greeting)?;
        let mut ready = vec![5u8];
        ready.extend_from_slice(b"READY");
        ready.push(11);
        ready.extend_from_slice(b"Socket-Type");
        ready.extend_from_slice(&4u32.to_be_bytes());
        ready.extend_from_slice(b"XSUB");
        stream.write_all(&[0x04, ready.len() as u8])?;
        stream.write_all(&ready)?;
        Ok(RawZmtp(stream))
    }

    fn send(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.send_multipart(std::slice::from_ref(&body.to_vec()))
    }

    /// Sends one message of `frames` (an empty list sends nothing).
    fn send_multipart(&mut self, frames: &[Vec<u8>]) -> std::io::Result<()> {
        use std::io::Write;
        for (i, body) in frames.iter().enumerate() {
            let more = u8::from(i + 1 < frames.len());
            if body.len() < 256 {
                self.0.write_all(&[more, body.len() as u8])?;
            } else {
                self.0.write_all(&[0x02 | more])?;
                self.0.write_all(&(body.len() as u64).to_be_bytes())?;
            }
            self.0.write_all(body)?;
        }
        Ok(())
    }
}

/// Six hundred distinct 64 KiB subscriptions (39 MB) once took the broker from 7 MiB to
/// 1.27 GiB and kept the bus busy for seconds. Now a subscription longer than a topic gets the
/// connection cut: memory stays flat and the bus keeps serving while the flood goes on.
#[test]
fn huge_subscriptions_neither_grow_memory_nor_stall_the_bus() {
    deadline(Duration::from_secs(120), || {
        let broker = start_with(Transport::Tcp, |_| {});
        let mut client = Client::connect(&broker.url).unwrap();
        let info = client.info().clone();
        still_serves(&broker.url, 0);
        let rss_before = client.stats().unwrap().rss_bytes.unwrap_or(0);
        let mut rng = Rng(99);
        let mut connections = 0;
        let mut sent = 0;
        for endpoint in [&info.subscribe, &info.deliver] {
            let mut peer = None;
            for i in 0..300u32 {
                if peer.is_none() {
                    peer = RawZmtp::connect(endpoint).ok();
                    connections += 1;
                }
                let mut subscription = vec![1u8];
                subscription.extend_from_slice(&i.to_be_bytes());
                subscription.extend(rng.bytes(64 * 1024));
                match peer.as_mut().map(|p| p.send(&subscription)) {
                    Some(Ok(())) => sent += 1,
                    // Cut off by the broker, as it should be: connect again and go on.
                    _ => peer = None,
                }
                if i % 50 == 0 {
                    still_serves(&broker.url, u64::from(i) + 1);
                }
            }
        }
        still_serves(&broker.url, 1000);
        let stats = client.stats().unwrap();
        let rss_after = stats.rss_bytes.unwrap_or(0);
        eprintln!(
            "{sent} subscriptions sent over {connections} connections; rss {} -> {} KiB",
            rss_before / 1024,
            rss_after / 1024
        );
        assert!(
            rss_after < rss_before + (64 << 20),
            "memory grew from {rss_before} to {rss_after} bytes: {stats:?}"
        );
    });
}
