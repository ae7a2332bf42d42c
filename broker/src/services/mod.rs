//! Named services: FIFO request queues, least-recently-used workers with credit, heartbeats,
//! deadlines and retries (the shape of the ZeroMQ guide's `mdbroker.c`, plus Paranoid Pirate
//! heartbeating in both directions).
//!
//! This module is pure state: it takes decoded messages and the current time, and leaves
//! the messages to send in an outbox that the router thread flushes. Time is always passed
//! in, so heartbeat, expiry and deadline logic is tested with an injected clock.
//!
//! A request is identified by a broker-chosen 8-byte token, sent to the worker as the MDP
//! "client address" and echoed in its reply. The broker keeps each request's body until it is
//! answered, so when a worker dies or goes silent holding a request, the request goes back to
//! the head of its queue for another worker, at most `max_attempts` times in all.
//!
//! Each worker has a credit, the most requests it takes at once (1 for Majordomo workers,
//! what its READY says for zhub workers). The invariant: a worker is in its service's `free`
//! queue exactly when it holds fewer requests than its credit. A request goes to the worker at
//! the head of `free` (the one used least recently); that worker goes to the back of `free`
//! if it still has credit, and drops out of it if not, until a reply frees a slot.
//!
//! A peer broker serving a service counts as one worker of it here, whose credit is what
//! the peer offers ([`peers`]). Local workers come first: a request goes to a peer only when
//! no local worker has free credit, and a request that came from a peer goes on to another
//! only across zones, by the rules in [`peers`]. When a peer goes, the requests it held are
//! dispatched again, as for any worker that dies.

mod peers;

pub(crate) use peers::PEER_MARK;
use peers::{PeerState, Remote};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tracing::{debug, info};
use zhub_protocol::builtin::{LatencyHistogram, RequestStats, ServiceInfo};
use zhub_protocol::ids::hex;
use zhub_protocol::mdp::{ClientMessage, WorkerCommand};
use zhub_protocol::{Reply, Status};

use crate::ratelimit::{peer_fault, Sparse};

/// How far into a queue the dispatcher looks, when only peers have free credit, for a
/// request that may go to one of them (a request from a peer may go only to some, see
/// [`peers`]): bounded, so that a long queue of such requests costs no more than this per
/// dispatch.
const PEER_SCAN: usize = 64;

/// Settings of the service layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceConfig {
    /// Interval of heartbeats to workers, and the unit of worker expiry.
    pub heartbeat: Duration,
    /// Heartbeat intervals a worker may stay silent before it is expired.
    pub liveness: u32,
    /// Requests that may wait per service; one more is answered "busy".
    pub max_queue: usize,
    /// Bytes of bodies a service may hold (waiting or being served); a request that would
    /// pass it is answered "busy".
    pub max_queue_bytes: usize,
    /// Longest deadline a request may have: longer timeouts are cut to it.
    pub max_deadline: Duration,
    /// Times a request is handed to a worker before it is given up.
    pub max_attempts: u32,
    /// Deadline of requests from plain Majordomo clients, which carry none.
    pub mdp_timeout: Duration,
    /// This broker's zone: where requests from peers may go depends on it.
    pub zone: String,
}

/// What a worker answered to a request.
enum Answer {
    /// Its reply body.
    Reply(Vec<Vec<u8>>),
    /// The failure it reported (already made printable by the codec).
    Failed(String),
    /// A peer broker's error for a request forwarded to it, passed on as it is.
    Status(Status, String),
}

/// Who asked, and so how to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A native client: the reply carries its request id and a status.
    Native(u64),
    /// A Majordomo client: plain MDP replies, no error replies (MDP has none).
    Mdp,
    /// A peer broker that forwarded the request: the answer goes back over the cluster link
    /// with the peer's token.
    Peer {
        /// The peer's broker id.
        peer: u64,
        /// The peer's token for the request.
        token: u64,
        /// Links the request crossed to reach us.
        hops: u8,
    },
}

/// A request from a client, as the router hands it over.
pub(crate) struct Submission<'a> {
    pub client: &'a [u8],
    pub origin: Origin,
    pub service: &'a str,
    pub body: Vec<Vec<u8>>,
    pub timeout: Duration,
}

/// A message for the router to send: `[identity, "", frames...]` on the main endpoint, or,
/// with `peer`, cluster-link frames to that peer broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub identity: Vec<u8>,
    pub frames: Vec<Vec<u8>>,
    pub peer: Option<u64>,
}

impl Outgoing {
    fn local(identity: Vec<u8>, frames: Vec<Vec<u8>>) -> Self {
        Outgoing {
            identity,
            frames,
            peer: None,
        }
    }

    fn peer(peer: u64, frames: Vec<Vec<u8>>) -> Self {
        Outgoing {
            identity: Vec::new(),
            frames,
            peer: Some(peer),
        }
    }
}

#[derive(Debug)]
struct Pending {
    client: Vec<u8>,
    origin: Origin,
    service: String,
    body: Vec<Vec<u8>>,
    /// Bytes of `body`, counted in its service's `held_bytes` until the request is answered.
    size: usize,
    /// When the broker took it: its latency runs from here to its worker's reply.
    received: Instant,
    deadline: Instant,
    attempts: u32,
    /// True while the request waits in its service's queue.
    queued: bool,
}

#[derive(Debug, Default)]
struct Service {
    /// Tokens of waiting requests, oldest first. Tokens of requests that expired while
    /// waiting stay until `stale` is compacted away.
    requests: VecDeque<u64>,
    /// Waiting requests that are still live.
    live: usize,
    /// Expired tokens still in `requests`.
    stale: usize,
    /// Bytes of the bodies of this service's pending requests (waiting or with a worker):
    /// the broker keeps each body until the request is answered, for retries.
    held_bytes: usize,
    /// Local workers with free credit, the one used least recently first.
    free: VecDeque<Vec<u8>>,
    /// Peer brokers with free credit for it, the one used least recently first.
    remote_free: VecDeque<Vec<u8>>,
    /// Local workers.
    workers: usize,
    /// Peer brokers serving it.
    remotes: usize,
    /// Total credit of the local workers: what peers are told.
    credit: usize,
    /// Requests held by this service's workers.
    in_flight: usize,
    served: u64,
    /// Time from arrival to the worker's reply, of the replies counted in `served`.
    latency: LatencyHistogram,
}

#[derive(Debug)]
struct Worker {
    service: String,
    expiry: Instant,
    /// The most requests it takes at once, at least 1.
    credit: usize,
    /// Tokens of the requests it holds, oldest first; never more than `credit`.
    held: Vec<u64>,
    /// The peer broker it stands for, when it is one.
    remote: Option<Remote>,
}

/// The service layer's state. Plain structs, owned by the router thread.
pub(crate) struct Services {
    config: ServiceConfig,
    services: HashMap<String, Service>,
    workers: HashMap<Vec<u8>, Worker>,
    pending: HashMap<u64, Pending>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_token: u64,
    next_heartbeat: Instant,
    outbox: Vec<Outgoing>,
    /// Workers' faults, logged sparsely.
    faults: Sparse,
    /// Services whose offers to peers may have changed since [`Services::take_changed`].
    capacity_changed: Vec<String>,
    /// Peers' zones and what they were offered.
    peers: PeerState,
}

impl Services {
    pub(crate) fn new(config: ServiceConfig, now: Instant) -> Self {
        Services {
            next_heartbeat: now + config.heartbeat,
            peers: PeerState::new(&config.zone),
            config,
            services: HashMap::new(),
            workers: HashMap::new(),
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_token: 1,
            outbox: Vec::new(),
            faults: Sparse::default(),
            capacity_changed: Vec::new(),
        }
    }

    /// Messages to send, in order.
    pub(crate) fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether `service` has at least one worker (`mmi.service`).
    pub(crate) fn has_workers(&self, service: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|s| s.workers > 0 || s.remotes > 0)
    }

    /// When the router must call [`Services::tick`] next.
    pub(crate) fn next_wakeup(&self) -> Instant {
        match self.deadlines.peek() {
            Some(Reverse((deadline, _))) => (*deadline).min(self.next_heartbeat),
            None => self.next_heartbeat,
        }
    }

    /// Queues a request from a client and hands it to a worker if one has free credit.
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        submission: Submission<'_>,
    ) {
        let Submission {
            client,
            origin,
            service,
            body,
            timeout,
        } = submission;
        let max_queue = self.config.max_queue;
        let max_bytes = self.config.max_queue_bytes;
        let size: usize = body.iter().map(Vec::len).sum();
        let svc = self.services.entry(service.to_owned()).or_default();
        if svc.live >= max_queue {
            stats.busy += 1;
            let reason = format!("service {service:?} has {max_queue} requests waiting");
            self.answer_error(client, origin, service, Status::Busy, reason);
            return;
        }
        if svc.held_bytes.saturating_add(size) > max_bytes {
            stats.busy += 1;
            let reason = format!(
                "service {service:?} holds {} bytes of requests, the most is {max_bytes}",
                svc.held_bytes
            );
            self.answer_error(client, origin, service, Status::Busy, reason);
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let deadline = now + timeout.min(self.config.max_deadline);
        svc.requests.push_back(token);
        svc.live += 1;
        svc.held_bytes += size;
        self.pending.insert(
            token,
            Pending {
                client: client.to_vec(),
                origin,
                service: service.to_owned(),
                body,
                size,
                received: now,
                deadline,
                attempts: 0,
                queued: true,
            },
        );
        self.deadlines.push(Reverse((deadline, token)));
        self.dispatch(now, service);
        if matches!(origin, Origin::Peer { .. }) {
            self.refuse_stranded(service, Some(token));
        }
    }

    /// Hands waiting requests of `service` to its workers with free credit, oldest request to
    /// the worker used least recently. An expired request is never handed out.
    fn dispatch(&mut self, now: Instant, service: &str) {
        loop {
            let Some(svc) = self.services.get_mut(service) else {
                return;
            };
            if (svc.free.is_empty() && svc.remote_free.is_empty()) || svc.live == 0 {
                return;
            }
            if svc.free.is_empty() {
                // Only peers have free credit: the oldest request that may go to one of them
                // comes first, and goes to the one used least recently that may take it;
                // the others wait for a local worker or another peer.
                let Some((at, to)) = self.peer_choice(service) else {
                    return;
                };
                let Some(svc) = self.services.get_mut(service) else {
                    return;
                };
                if at > 0 {
                    if let Some(token) = svc.requests.remove(at) {
                        svc.requests.push_front(token);
                    }
                }
                if to > 0 {
                    if let Some(identity) = svc.remote_free.remove(to) {
                        svc.remote_free.push_front(identity);
                    }
                }
            }
            let Some(svc) = self.services.get_mut(service) else {
                return;
            };
            let Some(token) = svc.requests.pop_front() else {
                return;
            };
            let Some(pending) = self.pending.get_mut(&token).filter(|p| p.queued) else {
                svc.stale = svc.stale.saturating_sub(1);
                continue;
            };
            if pending.deadline <= now {
                // Its deadline passed in this very tick: answer it, hand out the next.
                svc.requests.push_front(token);
                self.expire(token);
                continue;
            }
            // With no local worker free, the request first in line may go to the peer first
            // in line (chosen above).
            let (free, is_remote) = if !svc.free.is_empty() {
                (&mut svc.free, false)
            } else {
                (&mut svc.remote_free, true)
            };
            let Some(identity) = free.pop_front() else {
                return;
            };
            let Some(worker) = self.workers.get_mut(&identity) else {
                // Not reachable: a worker leaves `free` when it is removed. Skip it.
                svc.requests.push_front(token);
                continue;
            };
            svc.live -= 1;
            svc.in_flight += 1;
            pending.queued = false;
            pending.attempts += 1;
            worker.held.push(token);
            if worker.held.len() < worker.credit {
                free.push_back(identity.clone());
            }
            match &worker.remote {
                Some(remote) if is_remote => {
                    let left = pending.deadline.saturating_duration_since(now);
                    let hops = match pending.origin {
                        Origin::Peer { hops, .. } => hops.saturating_add(1),
                        Origin::Native(_) | Origin::Mdp => 1,
                    };
                    let forward = zhub_protocol::cluster::LinkMessage::Forward {
                        token,
                        timeout_ms: u32::try_from(left.as_millis()).unwrap_or(u32::MAX),
                        hops,
                        service: service.to_owned(),
                        body: pending.body.clone(),
                    };
                    // Encoding a forward writes no MessagePack: it cannot fail.
                    if let Ok(frames) = forward.encode() {
                        self.outbox.push(Outgoing::peer(remote.peer, frames));
                    }
                }
                _ => {
                    let request = WorkerCommand::Request {
                        client: token.to_be_bytes().to_vec(),
                        body: pending.body.clone(),
                    };
                    self.outbox
                        .push(Outgoing::local(identity, request.encode()));
                }
            }
        }
    }

    /// With no local worker of `service` free: the place in its queue of the oldest request
    /// (within [`PEER_SCAN`]) that some peer with free credit may take, and the place in
    /// `remote_free` of the first such peer.
    fn peer_choice(&self, service: &str) -> Option<(usize, usize)> {
        let svc = self.services.get(service)?;
        svc.requests
            .iter()
            .take(PEER_SCAN)
            .enumerate()
            .find_map(|(at, token)| {
                let pending = self.pending.get(token).filter(|p| p.queued)?;
                let to = svc.remote_free.iter().position(|identity| {
                    self.workers
                        .get(identity)
                        .and_then(|w| w.remote.as_ref())
                        .is_some_and(|r| self.may_forward(&pending.origin, r))
                })?;
                Some((at, to))
            })
    }

    /// Handles one message from a worker (frames after the empty delimiter). Returns `false`
    /// when the message was malformed (the worker, if known, is then disconnected).
    pub(crate) fn worker_message(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        identity: &[u8],
        frames: &[Vec<u8>],
    ) -> bool {
        let command = match WorkerCommand::decode(frames) {
            Ok(command) => command,
            Err(e) => {
                peer_fault!(self.faults, "malformed worker message; worker disconnected", worker = %hex(identity), error = %e);
                self.remove_worker(now, stats, identity, true);
                return false;
            }
        };
        if peers::is_remote_identity(identity) {
            // Not reachable: no connection on the main endpoint has such an identity.
            return false;
        }
        let known = self.workers.contains_key(identity);
        if let Some(worker) = self.workers.get_mut(identity) {
            // Any traffic from a worker shows it is alive.
            worker.expiry = now + self.config.heartbeat * self.config.liveness;
        }
        match command {
            WorkerCommand::Ready { service, credit } if !known => {
                self.register(now, identity, service, credit)
            }
            WorkerCommand::Reply { client, body } if known => {
                self.settle(now, stats, identity, &client, Answer::Reply(body))
            }
            WorkerCommand::Failed { client, reason } if known => {
                self.settle(now, stats, identity, &client, Answer::Failed(reason))
            }
            WorkerCommand::Heartbeat if known => {}
            WorkerCommand::Disconnect => self.remove_worker(now, stats, identity, false),
            WorkerCommand::Ready { .. } | WorkerCommand::Request { .. } => {
                peer_fault!(self.faults, "unexpected command from worker; worker disconnected", worker = %hex(identity));
                self.remove_worker(now, stats, identity, true);
                return false;
            }
            WorkerCommand::Reply { .. }
            | WorkerCommand::Failed { .. }
            | WorkerCommand::Heartbeat => {
                // A worker we do not know (say, from before a broker restart): tell it to
                // reconnect and register again.
                debug!(worker = %hex(identity), "message from unregistered worker; asked to reconnect");
                self.outbox.push(Outgoing::local(
                    identity.to_vec(),
                    WorkerCommand::Disconnect.encode(),
                ));
            }
        }
        true
    }

    fn register(&mut self, now: Instant, identity: &[u8], service: String, credit: u32) {
        if service.starts_with(zhub_protocol::builtin::BUILTIN_PREFIX)
            || service.starts_with(zhub_protocol::mdp::MMI_PREFIX)
        {
            peer_fault!(self.faults, "worker asked for a reserved service name; disconnected", worker = %hex(identity), ?service);
            self.outbox.push(Outgoing::local(
                identity.to_vec(),
                WorkerCommand::Disconnect.encode(),
            ));
            return;
        }
        // The codec bounds a credit to 1..=MAX_CREDIT; clamp again so that this state never
        // depends on where a READY came from.
        let credit = credit.clamp(1, zhub_protocol::mdp::MAX_CREDIT) as usize;
        info!(worker = %hex(identity), ?service, credit, "worker ready");
        let svc = self.services.entry(service.clone()).or_default();
        svc.workers += 1;
        svc.credit += credit;
        svc.free.push_back(identity.to_vec());
        self.capacity_changed.push(service.clone());
        self.workers.insert(
            identity.to_vec(),
            Worker {
                service: service.clone(),
                expiry: now + self.config.heartbeat * self.config.liveness,
                credit,
                held: Vec::with_capacity(credit.min(64)),
                remote: None,
            },
        );
        self.dispatch(now, &service);
    }

    /// Takes a worker's answer to a request it holds: frees the worker's credit, and passes
    /// the reply, or the failure it reported, to the client.
    fn settle(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        identity: &[u8],
        client: &[u8],
        answer: Answer,
    ) {
        let Ok(token) = <[u8; 8]>::try_from(client).map(u64::from_be_bytes) else {
            peer_fault!(self.faults, "reply with an address the broker never sent; worker disconnected", worker = %hex(identity));
            self.remove_worker(now, stats, identity, true);
            return;
        };
        let Some(worker) = self.workers.get_mut(identity) else {
            return;
        };
        let Some(slot) = worker.held.iter().position(|&t| t == token) else {
            debug!(worker = %hex(identity), token, "reply to a request this worker does not hold ignored");
            return;
        };
        // Keep `held` oldest first: on the worker's death its requests are retried in order.
        worker.held.remove(slot);
        let was_full = worker.held.len() + 1 == worker.credit;
        let service = worker.service.clone();
        let remote = worker.remote.is_some();
        if let Some(svc) = self.services.get_mut(&service) {
            svc.in_flight = svc.in_flight.saturating_sub(1);
            if was_full {
                if remote {
                    svc.remote_free.push_back(identity.to_vec());
                } else {
                    svc.free.push_back(identity.to_vec());
                }
            }
        }
        match (self.take_pending(token), answer) {
            (Some(pending), Answer::Status(status, reason)) => {
                debug!(?service, status = status.code(), %reason, "peer broker answered an error");
                self.answer_error(&pending.client, pending.origin, &service, status, reason);
            }
            (Some(pending), Answer::Failed(reason)) => {
                stats.worker_failed += 1;
                debug!(worker = %hex(identity), ?service, %reason, "worker reported a failure");
                self.answer_error(
                    &pending.client,
                    pending.origin,
                    &service,
                    Status::WorkerFailed,
                    reason,
                );
            }
            (Some(pending), Answer::Reply(body)) => {
                if let Some(svc) = self.services.get_mut(&service) {
                    svc.served += 1;
                    svc.latency
                        .observe(now.saturating_duration_since(pending.received));
                }
                let out = match pending.origin {
                    Origin::Native(id) => {
                        Outgoing::local(pending.client, Reply::ok(id, body).encode())
                    }
                    Origin::Mdp => Outgoing::local(
                        pending.client,
                        ClientMessage {
                            service: service.clone(),
                            body,
                        }
                        .encode(),
                    ),
                    Origin::Peer { peer, token, .. } => {
                        let Some(out) = peers::answer(peer, token, Status::Ok, body) else {
                            return;
                        };
                        out
                    }
                };
                self.outbox.push(out);
            }
            // The request timed out while the worker served it; the client has its answer.
            (None, _) => debug!(token, "late reply dropped"),
        }
        self.dispatch(now, &service);
    }

    /// Forgets a worker; the requests it held go back to the head of the queue, in the order
    /// they were first handed out, for other workers.
    pub(crate) fn remove_worker(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        identity: &[u8],
        disconnect: bool,
    ) {
        if disconnect && !peers::is_remote_identity(identity) {
            self.outbox.push(Outgoing::local(
                identity.to_vec(),
                WorkerCommand::Disconnect.encode(),
            ));
        }
        let Some(worker) = self.workers.remove(identity) else {
            return;
        };
        if let Some(remote) = &worker.remote {
            info!(broker = %remote.name, service = ?worker.service, "peer no longer serves service here");
        } else {
            info!(worker = %hex(identity), service = ?worker.service, "worker removed");
        }
        if let Some(svc) = self.services.get_mut(&worker.service) {
            svc.in_flight = svc.in_flight.saturating_sub(worker.held.len());
            if worker.remote.is_some() {
                svc.remotes -= 1;
                svc.remote_free.retain(|i| i != identity);
            } else {
                svc.workers -= 1;
                svc.credit = svc.credit.saturating_sub(worker.credit);
                svc.free.retain(|i| i != identity);
            }
            self.capacity_changed.push(worker.service.clone());
        }
        // Another broker's built-ins (`zhub.kv@B1`) change state there and are not retried:
        // a request the lost route held may have been applied already.
        let once = zhub_protocol::builtin::split_home(&worker.service).is_some();
        // Newest first, each to the head of the queue: the oldest ends up first in line.
        for &token in worker.held.iter().rev() {
            if once {
                self.give_up(stats, token);
            } else {
                self.requeue(stats, token);
            }
        }
        self.dispatch(now, &worker.service);
        self.refuse_stranded(&worker.service, None);
        self.forget_if_unused(&worker.service);
    }

    /// Puts a request back at the head of its queue, or gives it up after `max_attempts`;
    /// the caller dispatches.
    fn requeue(&mut self, stats: &mut RequestStats, token: u64) {
        let max_attempts = self.config.max_attempts;
        let Some(pending) = self.pending.get_mut(&token) else {
            return;
        };
        if pending.attempts >= max_attempts {
            self.fail(stats, token, |p| {
                format!("{} worker(s) failed while serving the request", p.attempts)
            });
            return;
        }
        stats.requeued += 1;
        pending.queued = true;
        let service = pending.service.clone();
        let svc = self.services.entry(service.clone()).or_default();
        svc.requests.push_front(token);
        svc.live += 1;
    }

    /// Answers a request whose route went away while holding it, without trying again:
    /// it may have been served.
    fn give_up(&mut self, stats: &mut RequestStats, token: u64) {
        self.fail(stats, token, |p| {
            format!(
                "the way to the broker serving {} went down while it held the request; it may or may not have been applied",
                p.service
            )
        });
    }

    /// Answers request `token` `WorkerFailed`, for the reason `why` gives, and forgets it.
    fn fail(&mut self, stats: &mut RequestStats, token: u64, why: impl FnOnce(&Pending) -> String) {
        let Some(p) = self.take_pending(token) else {
            return;
        };
        stats.worker_failed += 1;
        let reason = why(&p);
        self.answer_error(
            &p.client,
            p.origin,
            &p.service,
            Status::WorkerFailed,
            reason,
        );
    }

    /// Forgets an answered request, releasing its bytes from its service's count.
    fn take_pending(&mut self, token: u64) -> Option<Pending> {
        let pending = self.pending.remove(&token)?;
        if let Some(svc) = self.services.get_mut(&pending.service) {
            svc.held_bytes = svc.held_bytes.saturating_sub(pending.size);
        }
        Some(pending)
    }

    /// Forgets request `token`, which the caller answers or drops; one still waiting leaves
    /// its token in the queue, stale.
    fn take_request(&mut self, token: u64) -> Option<Pending> {
        let pending = self.take_pending(token)?;
        if let (true, Some(svc)) = (pending.queued, self.services.get_mut(&pending.service)) {
            svc.live -= 1;
            svc.stale += 1;
            // Compact once stale tokens outnumber live ones, so that a service nobody
            // serves does not keep the tokens of every request it ever timed out.
            if svc.stale > svc.live {
                let pending_map = &self.pending;
                svc.requests
                    .retain(|t| pending_map.get(t).is_some_and(|p| p.queued));
                svc.stale = 0;
            }
        }
        Some(pending)
    }

    /// Answers and forgets a request whose deadline passed.
    fn expire(&mut self, token: u64) {
        let Some(pending) = self.take_request(token) else {
            return;
        };
        let has_workers = self
            .services
            .get(&pending.service)
            .is_some_and(|s| s.workers > 0 || s.remotes > 0);
        let (status, reason) = if has_workers {
            (
                Status::TimedOut,
                format!("no reply from service {} in time", pending.service),
            )
        } else {
            (
                Status::NoService,
                format!("no worker for service {} in time", pending.service),
            )
        };
        self.answer_error(
            &pending.client,
            pending.origin,
            &pending.service,
            status,
            reason,
        );
        self.forget_if_unused(&pending.service);
    }

    fn forget_if_unused(&mut self, service: &str) {
        if self.services.get(service).is_some_and(|s| {
            s.workers == 0 && s.remotes == 0 && s.in_flight == 0 && s.live == 0 && s.served == 0
        }) {
            self.services.remove(service);
        }
    }

    fn answer_error(
        &mut self,
        client: &[u8],
        origin: Origin,
        service: &str,
        status: Status,
        reason: String,
    ) {
        match origin {
            Origin::Native(id) => self.outbox.push(Outgoing::local(
                client.to_vec(),
                Reply::error(id, status, reason).encode(),
            )),
            Origin::Peer { peer, token, .. } => {
                let body = vec![reason.into_bytes()];
                if let Some(out) = peers::answer(peer, token, status, body) {
                    self.outbox.push(out);
                }
            }
            // Majordomo has no error replies: the client's own timeout tells it.
            Origin::Mdp => {
                debug!(service, status = status.code(), %reason, "request from MDP client dropped")
            }
        }
    }

    /// Sends heartbeats, expires silent workers and answers requests past their deadline.
    pub(crate) fn tick(&mut self, now: Instant, stats: &mut RequestStats) {
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat;
            // A peer's liveness is the cluster link's business, not the worker heartbeat's.
            let expired: Vec<Vec<u8>> = self
                .workers
                .iter()
                .filter(|(_, w)| w.remote.is_none() && w.expiry <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for identity in expired {
                peer_fault!(self.faults, "worker expired: silent for too long", worker = %hex(&identity));
                stats.workers_expired += 1;
                self.remove_worker(now, stats, &identity, true);
            }
            for (identity, _) in self.workers.iter().filter(|(_, w)| w.remote.is_none()) {
                self.outbox.push(Outgoing::local(
                    identity.clone(),
                    WorkerCommand::Heartbeat.encode(),
                ));
            }
        }
        while let Some(Reverse((deadline, token))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self
                .pending
                .get(&token)
                .is_some_and(|p| p.deadline == deadline)
            {
                stats.timed_out += 1;
                self.expire(token);
            }
        }
    }

    /// The services as `zhub.services` lists them, sorted by name.
    pub(crate) fn list(&self) -> Vec<ServiceInfo> {
        let mut list: Vec<ServiceInfo> = self
            .services
            .iter()
            // Other brokers' built-ins (`zhub.kv@B1`) are routes, not services.
            .filter(|(name, _)| zhub_protocol::builtin::split_home(name).is_none())
            .map(|(name, s)| ServiceInfo {
                name: name.clone(),
                workers: s.workers as u64,
                credit: s.credit as u64,
                idle: s.free.len() as u64,
                queued: s.live as u64,
                in_flight: s.in_flight as u64,
                served: s.served,
                latency: s.latency.clone(),
                peers: if s.remotes > 0 {
                    self.peers_serving(name)
                } else {
                    Vec::new()
                },
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

#[cfg(test)]
mod tests;
