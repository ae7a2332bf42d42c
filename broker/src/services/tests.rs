//! The service layer's state machine under an injected clock.

use super::*;

fn config() -> ServiceConfig {
    ServiceConfig {
        heartbeat: Duration::from_millis(100),
        liveness: 3,
        max_queue: 2,
        max_queue_bytes: 100,
        max_deadline: Duration::from_secs(3600),
        max_attempts: 2,
        mdp_timeout: Duration::from_secs(10),
        zone: "z".into(),
    }
}

struct Fixture {
    s: Services,
    stats: RequestStats,
    t0: Instant,
}

impl Fixture {
    fn new() -> Self {
        let t0 = Instant::now();
        let mut s = Services::new(config(), t0);
        // Peers 7, 8 and 9 are in this broker's zone.
        for peer in [7, 8, 9] {
            s.peer_up(peer, "z");
        }
        Fixture {
            s,
            stats: RequestStats::default(),
            t0,
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn ready(&mut self, ms: u64, worker: &str, service: &str) {
        self.ready_with(ms, worker, service, 1);
    }
    fn ready_with(&mut self, ms: u64, worker: &str, service: &str, credit: u32) {
        let frames = WorkerCommand::Ready {
            service: service.into(),
            credit,
        }
        .encode();
        assert!(self
            .s
            .worker_message(self.at(ms), &mut self.stats, worker.as_bytes(), &frames));
    }
    fn request(&mut self, ms: u64, client: &str, id: u64, service: &str, timeout_ms: u64) {
        let now = self.at(ms);
        let submission = Submission {
            client: client.as_bytes(),
            origin: Origin::Native(id),
            service,
            body: vec![id.to_be_bytes().to_vec()],
            timeout: Duration::from_millis(timeout_ms),
        };
        self.s.submit(now, &mut self.stats, submission);
    }
    /// The worker replies to the request it was last sent; returns that token.
    fn reply(&mut self, ms: u64, worker: &str, token: Vec<u8>) {
        let frames = WorkerCommand::Reply {
            client: token,
            body: vec![b"done".to_vec()],
        }
        .encode();
        assert!(self
            .s
            .worker_message(self.at(ms), &mut self.stats, worker.as_bytes(), &frames));
    }
    fn out(&mut self) -> Vec<(String, Vec<Vec<u8>>)> {
        self.s
            .take_outbox()
            .into_iter()
            .map(|o| (String::from_utf8(o.identity).unwrap(), o.frames))
            .collect()
    }
}

fn token_of(frames: &[Vec<u8>]) -> Vec<u8> {
    match WorkerCommand::decode(frames).unwrap() {
        WorkerCommand::Request { client, .. } => client,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn reply_of(frames: &[Vec<u8>]) -> Reply {
    Reply::decode(frames).unwrap()
}

#[test]
fn idle_workers_are_used_least_recently_first() {
    let mut f = Fixture::new();
    for w in ["w1", "w2", "w3"] {
        f.ready(0, w, "echo");
    }
    let mut order = Vec::new();
    for i in 0..9 {
        f.request(1, "c", i, "echo", 1000);
        let (worker, frames) = f.out().pop().unwrap();
        order.push(worker.clone());
        f.reply(2, &worker, token_of(&frames));
        let (client, frames) = f.out().pop().unwrap();
        assert_eq!((client.as_str(), reply_of(&frames).id), ("c", i));
    }
    assert_eq!(
        order,
        ["w1", "w2", "w3", "w1", "w2", "w3", "w1", "w2", "w3"]
    );
}

/// The requests sent to each worker, in order: (worker, token, request id in the body).
fn requests_of(out: &[(String, Vec<Vec<u8>>)]) -> Vec<(String, Vec<u8>, u64)> {
    out.iter()
        .filter_map(|(worker, frames)| match WorkerCommand::decode(frames) {
            Ok(WorkerCommand::Request { client, body }) => {
                let id = u64::from_be_bytes(body[0].as_slice().try_into().unwrap());
                Some((worker.clone(), client, id))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_worker_with_credit_holds_that_many_requests_and_replies_in_any_order() {
    let mut f = Fixture::new();
    f.s.config.max_queue = 10;
    f.s.config.max_queue_bytes = 1000;
    f.ready_with(0, "w", "svc", 4);
    for id in 1..=5 {
        f.request(1, &format!("c{id}"), id, "svc", 1000);
    }
    let sent = requests_of(&f.out());
    let ids: Vec<u64> = sent.iter().map(|(_, _, id)| *id).collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4],
        "four in flight before any reply; the fifth waits"
    );
    assert_eq!(f.s.list()[0].in_flight, 4);
    assert_eq!((f.s.list()[0].idle, f.s.list()[0].queued), (0, 1));
    // Replies in the reverse order reach their own clients; the first freed slot takes
    // the waiting request.
    for (_, token, id) in sent.iter().rev() {
        f.reply(2, "w", token.clone());
        let out = f.out();
        let (client, frames) = out
            .iter()
            .find(|(who, _)| who != "w")
            .expect("a reply to a client");
        assert_eq!(
            (client.clone(), reply_of(frames).id),
            (format!("c{id}"), *id)
        );
        if *id == 4 {
            assert_eq!(requests_of(&out).len(), 1, "the fifth request goes out");
        }
    }
    assert_eq!(f.s.list()[0].in_flight, 1);
    assert_eq!(f.s.list()[0].idle, 1);
    assert_eq!(f.s.list()[0].served, 4);
}

#[test]
fn workers_with_free_credit_are_used_least_recently_first() {
    let mut f = Fixture::new();
    f.s.config.max_queue = 10;
    f.s.config.max_queue_bytes = 1000;
    f.ready_with(0, "a", "svc", 2);
    f.ready_with(0, "b", "svc", 1);
    f.ready_with(0, "c", "svc", 3);
    for id in 1..=7 {
        f.request(1, "client", id, "svc", 1000);
    }
    let sent = requests_of(&f.out());
    let order: Vec<&str> = sent.iter().map(|(w, _, _)| w.as_str()).collect();
    // a, b, c in turn; then b is full, so a and c; then a is full, so c alone.
    assert_eq!(order, ["a", "b", "c", "a", "c", "c"]);
    // A reply from full b puts it back, last in line, and it takes the waiting request.
    f.reply(2, "b", sent[1].1.clone());
    let next = requests_of(&f.out());
    assert_eq!((next[0].0.as_str(), next[0].2), ("b", 7));
}

#[test]
fn every_request_a_dead_worker_held_goes_to_another_in_order() {
    let mut f = Fixture::new();
    f.s.config.max_queue = 10;
    f.s.config.max_queue_bytes = 1000;
    f.ready_with(0, "dead", "svc", 4);
    for id in 1..=4 {
        f.request(1, &format!("c{id}"), id, "svc", 5000);
    }
    assert_eq!(requests_of(&f.out()).len(), 4);
    f.ready_with(2, "alive", "svc", 4);
    assert!(f.out().is_empty(), "no request waits");
    let frames = WorkerCommand::Disconnect.encode();
    assert!(f.s.worker_message(f.at(3), &mut f.stats, b"dead", &frames));
    let sent = requests_of(&f.out());
    let ids: Vec<(&str, u64)> = sent.iter().map(|(w, _, id)| (w.as_str(), *id)).collect();
    assert_eq!(
        ids,
        [("alive", 1), ("alive", 2), ("alive", 3), ("alive", 4)]
    );
    assert_eq!(f.stats.requeued, 4);
    for (_, token, id) in &sent {
        f.reply(4, "alive", token.clone());
        let out = f.out();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].0.clone(), reply_of(&out[0].1).id),
            (format!("c{id}"), *id)
        );
    }
    assert_eq!(f.s.list()[0].in_flight, 0);
}

#[test]
fn requests_wait_for_a_worker_then_time_out_as_no_service() {
    let mut f = Fixture::new();
    f.request(0, "c", 1, "later", 250);
    f.request(0, "c", 2, "never", 250);
    assert!(f.out().is_empty());
    f.ready(100, "w", "later");
    let out = f.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "w", "the waiting request goes to the new worker");
    // Before the silent worker's expiry (100 + 3 x 100 ms), at the deadlines.
    f.s.tick(f.at(250), &mut f.stats);
    let replies: Vec<Reply> = f
        .out()
        .iter()
        .filter(|(id, _)| id == "c")
        .map(|(_, fr)| reply_of(fr))
        .collect();
    // Request 1 is with the worker; its deadline answers the client "timed out".
    let statuses: Vec<(u64, Status)> = replies.iter().map(|r| (r.id, r.status)).collect();
    assert!(statuses.contains(&(2, Status::NoService)), "{statuses:?}");
    assert!(statuses.contains(&(1, Status::TimedOut)), "{statuses:?}");
    assert_eq!(f.stats.timed_out, 2);
}

#[test]
fn bytes_held_per_service_are_bounded_and_released_when_answered() {
    let mut f = Fixture::new();
    let big = |id: u64| Submission {
        client: b"c",
        origin: Origin::Native(id),
        service: "svc",
        body: vec![vec![0; 60]],
        timeout: Duration::from_millis(100),
    };
    let now = f.at(0);
    f.s.submit(now, &mut f.stats, big(1));
    f.s.submit(now, &mut f.stats, big(2));
    let out = f.out();
    assert_eq!(out.len(), 1);
    assert_eq!(reply_of(&out[0].1).status, Status::Busy, "120 bytes > 100");
    // Once the first is answered (timed out), its bytes are free again.
    f.s.tick(f.at(100), &mut f.stats);
    f.out();
    f.s.submit(f.at(101), &mut f.stats, big(3));
    assert!(f.out().is_empty(), "accepted and waiting");
}

#[test]
fn deadlines_are_cut_to_the_longest_allowed() {
    let mut f = Fixture::new();
    f.request(0, "c", 1, "svc", 49 * 24 * 3600 * 1000);
    assert_eq!(f.s.next_wakeup(), f.at(100), "the heartbeat comes first");
    let hour = 3600 * 1000;
    f.s.tick(f.at(hour), &mut f.stats);
    let out = f.out();
    assert_eq!(reply_of(&out[0].1).status, Status::NoService);
}

#[test]
fn a_full_queue_answers_busy_at_once() {
    let mut f = Fixture::new();
    f.request(0, "c", 1, "svc", 1000);
    f.request(0, "c", 2, "svc", 1000);
    f.request(0, "c", 3, "svc", 1000);
    let out = f.out();
    assert_eq!(out.len(), 1);
    let reply = reply_of(&out[0].1);
    assert_eq!((reply.id, reply.status), (3, Status::Busy));
}

#[test]
fn a_silent_worker_is_expired_and_its_request_served_by_another() {
    let mut f = Fixture::new();
    f.ready(0, "dead", "svc");
    f.request(1, "c", 7, "svc", 5000);
    let (worker, _) = f.out().pop().unwrap();
    assert_eq!(worker, "dead");
    f.ready(50, "alive", "svc");
    // "alive" keeps heartbeating; "dead" says nothing for liveness x heartbeat.
    for ms in (100..=400).step_by(100) {
        let hb = WorkerCommand::Heartbeat.encode();
        assert!(f.s.worker_message(f.at(ms), &mut f.stats, b"alive", &hb));
        f.s.tick(f.at(ms), &mut f.stats);
    }
    let out = f.out();
    assert!(out
        .iter()
        .any(|(id, fr)| id == "dead"
            && WorkerCommand::decode(fr).unwrap() == WorkerCommand::Disconnect));
    let (_, request) = out
        .iter()
        .find(|(id, fr)| {
            id == "alive" && matches!(WorkerCommand::decode(fr), Ok(WorkerCommand::Request { .. }))
        })
        .expect("request handed to the live worker");
    f.reply(450, "alive", token_of(request));
    let (client, frames) = f.out().pop().unwrap();
    assert_eq!(
        (client.as_str(), reply_of(&frames).status),
        ("c", Status::Ok)
    );
    assert_eq!((f.stats.workers_expired, f.stats.requeued), (1, 1));
    // A late reply from the expired worker is not delivered twice.
    assert!(f.s.worker_message(
        f.at(460),
        &mut f.stats,
        b"dead",
        &WorkerCommand::Reply {
            client: token_of(request),
            body: vec![]
        }
        .encode()
    ));
    assert!(f.out().iter().all(|(id, _)| id != "c"));
}

#[test]
fn attempts_are_bounded() {
    let mut f = Fixture::new();
    f.request(0, "c", 9, "svc", 60_000);
    for (i, w) in ["a", "b"].into_iter().enumerate() {
        f.ready(i as u64, w, "svc");
        let (worker, _) = f.out().pop().unwrap();
        assert_eq!(worker, w);
        // The worker dies holding the request.
        let frames = WorkerCommand::Disconnect.encode();
        assert!(f
            .s
            .worker_message(f.at(i as u64 + 1), &mut f.stats, w.as_bytes(), &frames));
    }
    let out = f.out();
    let reply = reply_of(&out.last().unwrap().1);
    assert_eq!((reply.id, reply.status), (9, Status::WorkerFailed));
}

#[test]
fn protocol_errors_disconnect_workers() {
    let mut f = Fixture::new();
    // Unknown worker heartbeating (from before a restart): asked to reconnect.
    assert!(f.s.worker_message(
        f.at(0),
        &mut f.stats,
        b"ghost",
        &WorkerCommand::Heartbeat.encode()
    ));
    assert_eq!(
        WorkerCommand::decode(&f.out()[0].1).unwrap(),
        WorkerCommand::Disconnect
    );
    // READY twice, garbage, a reserved name: disconnected.
    f.ready(0, "w", "svc");
    let again = WorkerCommand::Ready {
        service: "svc".into(),
        credit: 1,
    }
    .encode();
    assert!(!f.s.worker_message(f.at(1), &mut f.stats, b"w", &again));
    assert!(!f.s.has_workers("svc"));
    assert!(!f.s.worker_message(
        f.at(2),
        &mut f.stats,
        b"x",
        &[b"MDPW01".to_vec(), vec![0x7f]]
    ));
    let reserved = WorkerCommand::Ready {
        service: "zhub.info".into(),
        credit: 1,
    }
    .encode();
    assert!(f.s.worker_message(f.at(3), &mut f.stats, b"r", &reserved));
    assert!(!f.s.has_workers("zhub.info"));
}

/// What went to peers: (peer, decoded link message).
fn to_peers(out: Vec<Outgoing>) -> Vec<(u64, zhub_protocol::cluster::LinkMessage)> {
    out.into_iter()
        .filter_map(|o| {
            o.peer.map(|p| {
                (
                    p,
                    zhub_protocol::cluster::LinkMessage::decode(&o.frames).unwrap(),
                )
            })
        })
        .collect()
}

fn capacity(reset: bool, services: &[(&str, u32)]) -> zhub_protocol::cluster::Capacity {
    zhub_protocol::cluster::Capacity {
        reset,
        services: services
            .iter()
            .map(|(s, c)| ((*s).to_owned(), *c))
            .collect(),
        paths: Vec::new(),
    }
}

#[test]
fn peers_serve_when_no_local_worker_is_free_and_give_back_what_they_held() {
    use zhub_protocol::cluster::LinkMessage;
    let mut f = Fixture::new();
    let now = f.at(0);
    f.s.peer_capacity(now, &mut f.stats, 7, "b", capacity(true, &[("echo", 2)]));
    f.ready(0, "w1", "echo");
    // The local worker first; then the peer, up to its credit; then the queue.
    for id in 0..4 {
        f.request(1, "c", id, "echo", 1000);
    }
    let out = f.s.take_outbox();
    let local = out.iter().filter(|o| o.peer.is_none()).count();
    let forwarded = to_peers(out);
    assert_eq!(local, 1);
    assert_eq!(forwarded.len(), 2, "the peer's credit is 2");
    let tokens: Vec<u64> = forwarded
        .iter()
        .map(|(peer, m)| match m {
            LinkMessage::Forward {
                token,
                service,
                timeout_ms,
                ..
            } => {
                assert_eq!((*peer, service.as_str()), (7, "echo"));
                assert!(*timeout_ms <= 1000);
                *token
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(f.s.list()[0].peers[0].in_flight, 2);
    // An answer frees the credit: the waiting request goes out, and the reply to its client.
    f.s.peer_answer(
        f.at(2),
        &mut f.stats,
        7,
        tokens[0],
        Status::Ok,
        vec![b"hi".to_vec()],
    );
    let out = f.s.take_outbox();
    assert!(out
        .iter()
        .any(|o| o.identity == b"c" && reply_of(&o.frames).body == [b"hi"]));
    assert_eq!(
        to_peers(out).len(),
        1,
        "the fourth request went to the peer"
    );
    // The peer goes: what it held goes back to the queue, and the local worker gets one.
    f.s.drop_peer(f.at(3), &mut f.stats, 7);
    assert!(f.s.list()[0].peers.is_empty());
    assert_eq!(f.s.list()[0].queued, 2, "two wait for the local worker");
    // A late answer from the dead peer is dropped, never a second reply.
    f.s.peer_answer(
        f.at(4),
        &mut f.stats,
        7,
        tokens[1],
        Status::Ok,
        vec![b"late".to_vec()],
    );
    assert!(f.s.take_outbox().is_empty());
}

/// The status of the one answer to peer `peer` in `out`, for its request `token`.
fn answer_to(out: Vec<Outgoing>, peer: u64, token: u64) -> Status {
    match to_peers(out).as_slice() {
        [(
            p,
            zhub_protocol::cluster::LinkMessage::Answer {
                token: t, status, ..
            },
        )] if *p == peer && *t == token => *status,
        other => panic!("{other:?}"),
    }
}

fn from_peer(peer: u64, token: u64, hops: u8, service: &str) -> Submission<'_> {
    Submission {
        client: &[],
        origin: Origin::Peer { peer, token, hops },
        service,
        body: vec![b"x".to_vec()],
        timeout: Duration::from_millis(100),
    }
}

#[test]
fn a_request_from_a_zone_mate_never_goes_to_another_zone_mate() {
    let mut f = Fixture::new();
    let now = f.at(0);
    f.s.peer_capacity(now, &mut f.stats, 8, "c", capacity(true, &[("echo", 5)]));
    // With no local worker, nothing here may take it: answered at once, for peer 7 to try
    // elsewhere.
    f.s.submit(now, &mut f.stats, from_peer(7, 99, 1, "echo"));
    assert_eq!(answer_to(f.s.take_outbox(), 7, 99), Status::NoService);
    // With a local worker, busy, it waits for it.
    f.ready(1, "w1", "echo");
    f.request(1, "c", 1, "echo", 1000);
    let (_, first) = f.out().pop().unwrap();
    f.s.submit(f.at(1), &mut f.stats, from_peer(7, 100, 1, "echo"));
    assert!(
        f.s.take_outbox().is_empty(),
        "it waits for the local worker"
    );
    f.reply(2, "w1", token_of(&first));
    let (worker, frames) = f.out().into_iter().find(|(w, _)| w == "w1").unwrap();
    assert_eq!(worker, "w1");
    f.reply(3, "w1", token_of(&frames));
    assert_eq!(answer_to(f.s.take_outbox(), 7, 100), Status::Ok);
    // A service nobody serves is refused at once too.
    f.s.submit(f.at(4), &mut f.stats, from_peer(7, 101, 1, "none"));
    assert_eq!(answer_to(f.s.take_outbox(), 7, 101), Status::NoService);
}

#[test]
fn a_peer_that_has_no_route_after_all_makes_the_request_try_elsewhere() {
    use zhub_protocol::cluster::LinkMessage;
    let mut f = Fixture::new();
    let now = f.at(0);
    f.s.peer_capacity(now, &mut f.stats, 8, "b", capacity(true, &[("echo", 1)]));
    f.s.peer_capacity(now, &mut f.stats, 9, "c", capacity(true, &[("echo", 1)]));
    f.request(0, "c", 5, "echo", 1000);
    let token = match to_peers(f.s.take_outbox()).as_slice() {
        [(8, LinkMessage::Forward { token, .. })] => *token,
        other => panic!("{other:?}"),
    };
    // Peer 8's offer was out of date: the request goes to peer 9, and its reply to the
    // client.
    f.s.peer_answer(f.at(1), &mut f.stats, 8, token, Status::NoService, vec![]);
    match to_peers(f.s.take_outbox()).as_slice() {
        [(9, LinkMessage::Forward { token: again, .. })] => assert_eq!(*again, token),
        other => panic!("{other:?}"),
    }
    f.s.peer_answer(
        f.at(2),
        &mut f.stats,
        9,
        token,
        Status::Ok,
        vec![b"hi".to_vec()],
    );
    let out = f.s.take_outbox();
    assert!(out
        .iter()
        .any(|o| o.identity == b"c" && reply_of(&o.frames).body == [b"hi"]));
}

#[test]
fn local_capacity_changes_are_reported_once_per_service() {
    let mut f = Fixture::new();
    f.ready_with(0, "w1", "echo", 4);
    f.ready(0, "w2", "echo");
    f.ready(0, "w3", "other");
    let names = f.s.take_changed();
    assert_eq!(names, ["echo", "other"]);
    let changes = f.s.offers_for(7, "z", Some(&names)).unwrap();
    assert!(!changes.reset);
    assert_eq!(
        changes.services,
        vec![("echo".into(), 5), ("other".into(), 1)]
    );
    assert!(f.s.take_changed().is_empty());
    // Told once: asked again about the same names, nothing is new for this peer.
    assert!(f.s.offers_for(7, "z", Some(&names)).is_none());
    let now = f.at(1);
    f.s.remove_worker(now, &mut f.stats, b"w3", false);
    let names = f.s.take_changed();
    let changes = f.s.offers_for(7, "z", Some(&names)).unwrap();
    assert_eq!(changes.services, vec![("other".into(), 0)]);
    let all = f.s.offers_for(7, "z", None).unwrap();
    assert!(all.reset);
    assert_eq!(all.services, vec![("echo".into(), 5)]);
    assert!(all.paths.is_empty(), "served in the peer's own zone");
    // A peer claiming a reserved name, or a client speaking with a peer's identity, is ignored.
    f.s.peer_capacity(now, &mut f.stats, 9, "x", capacity(true, &[("zhub.kv", 3)]));
    assert!(f.s.list().iter().all(|s| s.name != "zhub.kv"));
}

#[test]
fn a_request_from_a_peer_does_not_hold_back_those_a_peer_may_take() {
    let mut f = Fixture::new();
    let now = f.at(0);
    f.s.peer_capacity(now, &mut f.stats, 8, "c", capacity(true, &[("echo", 1)]));
    // A local worker, busy: the peer's request waits for it.
    f.ready(0, "w1", "echo");
    f.request(0, "c", 4, "echo", 1000);
    assert_eq!(f.out().len(), 1);
    f.s.submit(now, &mut f.stats, from_peer(7, 1, 1, "echo"));
    assert!(f.s.take_outbox().is_empty());
    // A client's request, younger, goes to the free peer; the peer's waits.
    f.request(1, "c", 5, "echo", 1000);
    let forwarded = to_peers(f.s.take_outbox());
    assert!(matches!(
        forwarded.as_slice(),
        [(8, zhub_protocol::cluster::LinkMessage::Forward { .. })]
    ));
    assert_eq!(f.s.list()[0].queued, 1);
}

/// A broker of zone "b" with peers 1 (zone "a"), 2 (zone "b") and 3 (zone "c").
fn gateway() -> Fixture {
    let t0 = Instant::now();
    let mut s = Services::new(
        ServiceConfig {
            zone: "b".into(),
            ..config()
        },
        t0,
    );
    for (peer, zone) in [(1, "a"), (2, "b"), (3, "c")] {
        s.peer_up(peer, zone);
    }
    Fixture {
        s,
        stats: RequestStats::default(),
        t0,
    }
}

fn offer(services: &[(&str, u32, &[&str])]) -> zhub_protocol::cluster::Capacity {
    zhub_protocol::cluster::Capacity {
        reset: true,
        services: services
            .iter()
            .map(|(s, c, _)| ((*s).to_owned(), *c))
            .collect(),
        paths: services
            .iter()
            .filter(|(_, _, p)| !p.is_empty())
            .map(|(s, _, p)| ((*s).to_owned(), p.iter().map(|z| (*z).to_owned()).collect()))
            .collect(),
    }
}

fn offered(c: &zhub_protocol::cluster::Capacity) -> Vec<(String, u32, Vec<String>)> {
    c.services
        .iter()
        .map(|(s, credit)| (s.clone(), *credit, c.path_of(s).to_vec()))
        .collect()
}

fn entry(s: &str, credit: u32, path: &[&str]) -> (String, u32, Vec<String>) {
    (
        s.to_owned(),
        credit,
        path.iter().map(|z| (*z).to_owned()).collect(),
    )
}

#[test]
fn each_peer_is_offered_what_its_zone_may_reach_through_this_one() {
    let mut f = gateway();
    let now = f.at(0);
    f.ready_with(0, "w", "local", 2);
    let a = offer(&[("from_a", 3, &["a"])]);
    f.s.peer_capacity(now, &mut f.stats, 1, "a1", a);
    f.s.peer_capacity(now, &mut f.stats, 2, "b2", offer(&[("from_mate", 1, &[])]));
    let c = offer(&[("from_c", 4, &["c"]), ("looped", 9, &["c", "b"])]);
    f.s.peer_capacity(now, &mut f.stats, 3, "c1", c);
    assert!(
        f.s.list().iter().all(|s| s.name != "looped"),
        "an offer whose path holds this zone is dropped"
    );
    // A zone mate hears of this broker's own and other zones' routes, not of other mates'.
    let to_mate = f.s.offers_for(2, "b", None).unwrap();
    assert_eq!(
        offered(&to_mate),
        [
            entry("from_a", 3, &["a"]),
            entry("from_c", 4, &["c"]),
            entry("local", 2, &[])
        ]
    );
    // Another zone hears of everything not through itself, behind this zone.
    let to_a = f.s.offers_for(1, "a", None).unwrap();
    assert_eq!(
        offered(&to_a),
        [
            entry("from_c", 4, &["b", "c"]),
            entry("from_mate", 1, &["b"]),
            entry("local", 2, &["b"])
        ]
    );
    // A route withdrawn is withdrawn where it was offered, once.
    f.s.take_changed();
    f.s.offers_for(3, "c", None).unwrap();
    f.s.peer_capacity(now, &mut f.stats, 1, "a1", offer(&[]));
    let names = f.s.take_changed();
    assert!(names.contains(&"from_a".to_owned()), "{names:?}");
    let to_c = f.s.offers_for(3, "c", Some(&names)).unwrap();
    assert_eq!(offered(&to_c), [entry("from_a", 0, &[])]);
    assert!(f.s.offers_for(3, "c", Some(&names)).is_none());
    let to_mate = f.s.offers_for(2, "b", Some(&names)).unwrap();
    assert_eq!(offered(&to_mate), [entry("from_a", 0, &[])]);
}

#[test]
fn requests_from_peers_cross_zones_by_the_rules() {
    use zhub_protocol::cluster::LinkMessage;
    let mut f = gateway();
    let now = f.at(0);
    f.s.peer_capacity(now, &mut f.stats, 2, "b2", offer(&[("s", 5, &[])]));
    f.s.peer_capacity(now, &mut f.stats, 3, "c1", offer(&[("s", 5, &["c"])]));
    let from = |peer: u64, token: u64, hops: u8| Submission {
        client: &[],
        origin: Origin::Peer { peer, token, hops },
        service: "s",
        body: vec![b"x".to_vec()],
        timeout: Duration::from_secs(1),
    };
    // From a zone mate: on to another zone only, one more hop.
    f.s.submit(now, &mut f.stats, from(2, 10, 1));
    let sent = to_peers(f.s.take_outbox());
    assert!(
        matches!(sent.as_slice(), [(3, LinkMessage::Forward { hops: 2, .. })]),
        "{sent:?}"
    );
    // From zone c: to the zone mate, never back towards c.
    f.s.submit(now, &mut f.stats, from(3, 11, 2));
    let sent = to_peers(f.s.take_outbox());
    assert!(
        matches!(sent.as_slice(), [(2, LinkMessage::Forward { hops: 3, .. })]),
        "{sent:?}"
    );
    // From zone a: anywhere but a, while the hop count allows.
    f.s.submit(now, &mut f.stats, from(1, 12, 1));
    assert_eq!(to_peers(f.s.take_outbox()).len(), 1);
    // At the hop limit, with no local worker, nothing here may take it: answered at once.
    f.s.submit(now, &mut f.stats, from(1, 13, MAX_HOPS_FOR_TESTS));
    assert_eq!(answer_to(f.s.take_outbox(), 1, 13), Status::NoService);
}

const MAX_HOPS_FOR_TESTS: u8 = zhub_protocol::cluster::MAX_HOPS;

/// Another broker's built-ins are offered as `zhub.kv@NAME`: taken from peers (but not this
/// broker's own), kept out of the services list, and a request the route held when its peer
/// went is answered at once instead of sent again, since it may have been applied.
#[test]
fn another_brokers_built_ins_are_routes_that_never_run_a_request_twice() {
    use zhub_protocol::cluster::LinkMessage;
    let mut f = Fixture::new();
    f.s.set_home("me");
    let now = f.at(0);
    f.s.peer_capacity(
        now,
        &mut f.stats,
        7,
        "b",
        capacity(true, &[("zhub.kv@c1", 5)]),
    );
    f.s.peer_capacity(
        now,
        &mut f.stats,
        7,
        "b",
        capacity(false, &[("zhub.kv@me", 5)]),
    );
    assert!(f.s.has_workers("zhub.kv@c1"));
    assert!(
        !f.s.has_workers("zhub.kv@me"),
        "this broker's own are not a peer's"
    );
    assert!(f.s.list().is_empty(), "routes, not services");
    // Offered to a peer of another zone with this broker's own, in a reset.
    let reset = f.s.offers_for(8, "far", None).unwrap();
    assert!(reset.services.iter().any(|(s, _)| s == "zhub.kv@me"));
    assert!(reset.services.iter().any(|(s, _)| s == "zhub.kv@c1"));

    f.request(1, "c", 1, "zhub.kv@c1", 1000);
    assert!(matches!(
        to_peers(f.s.take_outbox()).as_slice(),
        [(7, LinkMessage::Forward { .. })]
    ));
    f.s.drop_peer(f.at(2), &mut f.stats, 7);
    let out = f.s.take_outbox();
    let reply = out
        .iter()
        .find(|o| o.identity == b"c")
        .map(|o| reply_of(&o.frames))
        .expect("answered at once");
    assert_eq!(reply.status, Status::WorkerFailed);
    assert!(to_peers(out).is_empty(), "not sent again");
}
