//! The request path: one thread, one poll loop over the main ROUTER socket.
//!
//! Three protocols share the socket, told apart by their signature frame: native clients
//! (`ZHC01`), Majordomo clients (`MDPC01`) and Majordomo workers (`MDPW01`). Built-in services
//! (`zhub.*`, `mmi.*`) are answered here; every other request goes to the service layer
//! ([`crate::services`]), whose outbox this loop flushes. The poll timeout is the time to the
//! next heartbeat or request deadline.
//!
//! A malformed message is counted, logged, answered with `400 Bad Request` where the request
//! id can be read, and dropped; it never ends the loop. A malformed request that is answered
//! counts as received as well, so that every reply answers a received request
//! (`replied <= received`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;
use zhub_protocol::builtin::{
    BrokerInfo, Peers, RequestStats, Stats, BUILTIN_PREFIX, INFO_SERVICE, PEERS_SERVICE,
    SERVICES_SERVICE, STATS_SERVICE, TOPICS_SERVICE,
};
use zhub_protocol::cluster::LinkMessage;
use zhub_protocol::fault::FAULT_SERVICE;
use zhub_protocol::group::{GroupRequest, GROUP_SERVICE};
use zhub_protocol::ids::hex;
use zhub_protocol::mdp::{self, ClientMessage, MMI_PREFIX, MMI_SERVICE};
use zhub_protocol::names::Named;
use zhub_protocol::request::{split_envelope, REQUEST_COMMAND, SIGNATURE};
use zhub_protocol::{body, Reply, Request, Status};

use crate::bus::BusCounters;
use crate::cluster::Cluster;
use crate::fault_rules::FaultTable;
use crate::groups::{Answer, Groups};
use crate::link::{StorageLink, StorageReply, StorageRequest, StorageService, Ticket};
use crate::ratelimit::{peer_fault, Sparse};
use crate::services::{Origin, Outgoing, ServiceConfig, Services, Submission};

mod peers;

/// Most messages handled per poll, so that timers and shutdown are seen promptly under load.
const BATCH: usize = 256;

/// The largest frame libzmq accepts on the main endpoint (`ZMQ_MAXMSGSIZE`) for a broker
/// whose `max_message` is `max_message`: twice it, plus 64 KiB for envelopes and headers.
///
/// Requests up to the ceiling are read and answered `413 Too Large` when over
/// `max_message`, so a client that sends a little too much learns why. A frame beyond the
/// ceiling is cut by libzmq, which drops the sender's connection without buffering the
/// frame: a 1 GiB frame never costs the broker 1 GiB.
pub(crate) fn frame_ceiling(max_message: usize) -> i64 {
    let ceiling = max_message.saturating_mul(2).saturating_add(64 << 10);
    i64::try_from(ceiling).unwrap_or(i64::MAX)
}

/// State of the request thread. Plain fields: only this thread touches them.
pub(crate) struct Router {
    socket: zmq::Socket,
    info: BrokerInfo,
    bus: Arc<BusCounters>,
    started: Instant,
    stats: RequestStats,
    services: Services,
    mdp_timeout: Duration,
    /// Longest deadline of any request; longer timeouts are cut to it.
    max_deadline: Duration,
    /// Largest request accepted, all frames counted; larger ones are answered 413.
    max_message: usize,
    /// The link to the storage thread, which serves `zhub.log` and `zhub.kv`.
    storage: StorageLink,
    /// Process groups (`zhub.group`).
    groups: Groups<Ticket>,
    /// Peers' faults and failed sends, logged sparsely.
    faults: Sparse,
    /// The rules of `zhub.fault`, shared with the bus thread.
    fault_rules: Arc<FaultTable>,
    /// The links to peer brokers, when this broker has any.
    cluster: Option<Cluster>,
    /// Requests of our clients for built-in services of peers, waiting for their answers.
    calls: peers::Calls,
    /// Where messages on which topics go, as the bus thread last saw it (`zhub.topics`).
    topics: Arc<crate::bus::TopicRoutes>,
    /// Permissions, under an auth file; `None`: every message goes through unchecked.
    auth: Option<crate::auth::Gate>,
}

/// What a built-in service answered.
enum Builtin {
    /// Not a built-in service name: the request is for a worker.
    ForWorkers,
    /// Answered with these body frames.
    Body(Vec<Vec<u8>>),
    /// Failed.
    Error(Status, String),
}

/// What the request thread is made of.
pub(crate) struct RouterParts {
    /// The main endpoint, bound.
    pub socket: zmq::Socket,
    pub info: BrokerInfo,
    pub bus: Arc<BusCounters>,
    pub config: ServiceConfig,
    pub storage: StorageLink,
    pub max_message: usize,
    pub fault_rules: Arc<FaultTable>,
    pub cluster: Option<Cluster>,
    /// Where messages on which topics go, as the bus thread last saw it.
    pub topics: Arc<crate::bus::TopicRoutes>,
}

impl Router {
    pub(crate) fn new(parts: RouterParts) -> Self {
        let RouterParts {
            socket,
            info,
            bus,
            config,
            storage,
            max_message,
            fault_rules,
            cluster,
            topics,
        } = parts;
        let now = Instant::now();
        let (mdp_timeout, max_deadline) = (config.mdp_timeout, config.max_deadline);
        let mut services = Services::new(config, now);
        if cluster.is_some() {
            services.set_home(&info.name);
        }
        Router {
            socket,
            info,
            bus,
            started: now,
            stats: RequestStats::default(),
            mdp_timeout,
            max_deadline,
            max_message,
            services,
            storage,
            groups: Groups::default(),
            faults: Sparse::default(),
            fault_rules,
            cluster,
            calls: peers::Calls::default(),
            topics,
            auth: None,
        }
    }

    /// Checks every message against `gate`'s permissions (see [`crate::auth`]).
    pub(crate) fn with_auth(mut self, gate: Option<crate::auth::Gate>) -> Self {
        self.auth = gate;
        self
    }

    /// Serves until a message arrives on `control`.
    pub(crate) fn run(mut self, control: zmq::Socket) -> Result<(), zmq::Error> {
        loop {
            let now = Instant::now();
            let mut wake = self.services.next_wakeup();
            if let Some(at) = self.groups.next_wakeup() {
                wake = wake.min(at);
            }
            if let Some(cluster) = &self.cluster {
                wake = wake.min(cluster.next_wakeup());
            }
            if let Some(at) = self.calls.next_deadline() {
                wake = wake.min(at);
            }
            let timeout = crate::wake::poll_timeout(now, wake);
            let [replies, down] = self.storage.poll_items();
            let mut items = vec![
                self.socket.as_poll_item(zmq::POLLIN),
                control.as_poll_item(zmq::POLLIN),
                replies,
                down,
            ];
            if let Some(cluster) = &self.cluster {
                items.extend(cluster.poll_items());
            }
            match zmq::poll(&mut items, timeout) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
            let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
            drop(items);
            if readable[1] {
                return Ok(());
            }
            if readable[4..].contains(&true) {
                if let Some(cluster) = &mut self.cluster {
                    let inbound = cluster.read(Instant::now(), &readable[4..]);
                    self.cluster_inbound(inbound);
                }
            }
            if readable[2] {
                self.storage_replies();
            }
            if readable[3] {
                self.storage_failed();
            }
            if readable[0] {
                for _ in 0..BATCH {
                    // Without auth, nothing new on the hot path: no metadata is read.
                    let received = match self.auth {
                        None => self
                            .socket
                            .recv_multipart(zmq::DONTWAIT)
                            .map(|frames| (frames, None)),
                        Some(_) => crate::auth::recv_with_user(&self.socket, zmq::DONTWAIT),
                    };
                    match received {
                        Ok((frames, user)) => {
                            if self.permitted(&frames, user.as_deref()) {
                                self.dispatch(&frames);
                            }
                            // Send what this message produced at once: a worker waiting for
                            // its next request should not wait for the rest of the batch.
                            self.flush();
                        }
                        Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            self.services.tick(Instant::now(), &mut self.stats);
            for answer in self.groups.tick(Instant::now()) {
                self.answer_group(answer);
            }
            if let Some(cluster) = &mut self.cluster {
                let inbound = cluster.tick(Instant::now());
                self.cluster_inbound(inbound);
            }
            self.expire_calls(Instant::now());
            self.advertise_changes();
            self.flush();
        }
    }

    fn dispatch(&mut self, frames: &[Vec<u8>]) {
        let Ok((identity, rest)) = split_envelope(frames) else {
            self.count_malformed();
            peer_fault!(self.faults, "message without envelope dropped");
            return;
        };
        let now = Instant::now();
        let size: usize = rest.iter().map(Vec::len).sum();
        let from_client = matches!(
            rest.first().map(Vec::as_slice),
            Some(SIGNATURE | mdp::CLIENT)
        );
        if from_client && size > self.max_message {
            self.too_large(identity, rest, size);
            return;
        }
        match rest.first().map(Vec::as_slice) {
            Some(SIGNATURE) => self.native_request(now, identity, rest),
            Some(mdp::CLIENT) => match ClientMessage::decode(rest) {
                Ok(request) => {
                    let submission = Submission {
                        client: identity,
                        origin: Origin::Mdp,
                        service: &request.service,
                        body: request.body,
                        timeout: self.mdp_timeout,
                    };
                    match self.route(now, submission) {
                        Builtin::ForWorkers => {}
                        Builtin::Body(body) => {
                            let reply = ClientMessage {
                                service: request.service,
                                body,
                            };
                            self.send(identity, reply.encode());
                        }
                        // MDP has no error replies; the client's timeout tells it.
                        Builtin::Error(status, reason) => {
                            debug!(status = status.code(), %reason, "built-in failed for MDP client")
                        }
                    }
                }
                Err(e) => {
                    self.count_malformed();
                    peer_fault!(self.faults, "malformed MDP client request dropped", peer = %hex(identity), error = %e);
                }
            },
            Some(mdp::WORKER) => {
                if !self
                    .services
                    .worker_message(now, &mut self.stats, identity, rest)
                {
                    self.count_malformed();
                }
            }
            _ => {
                self.count_malformed();
                peer_fault!(self.faults, "message with unknown protocol dropped", peer = %hex(identity));
            }
        }
    }

    fn native_request(&mut self, now: Instant, identity: &[u8], rest: &[Vec<u8>]) {
        match Request::decode(rest) {
            Ok(request) => {
                // `zhub.kv@B1`: a built-in service of the broker named B1: straight to it
                // when it is a peer in session, else routed like any service, by the offers
                // of `zhub.kv@B1` that came through the zones.
                if let Some((service, broker)) =
                    zhub_protocol::builtin::split_home(&request.service)
                {
                    let linked = self
                        .cluster
                        .as_ref()
                        .is_some_and(|c| c.peer_named(broker).is_some());
                    let routed = self.services.has_workers(&request.service);
                    if broker != self.info.name && (linked || !routed) {
                        let (service, broker) = (service.to_owned(), broker.to_owned());
                        self.call_peer(now, identity, request, &service, &broker);
                        return;
                    }
                }
                let ticket = Ticket {
                    client: identity.to_vec(),
                    id: request.id,
                };
                self.serve(now, ticket, request);
            }
            Err(e) => {
                self.count_malformed();
                peer_fault!(self.faults, "malformed request", peer = %hex(identity), error = %e);
                // Answer a REQUEST whose id can still be read, so the client is not left
                // waiting for its timeout. Other commands' layouts are not ours to guess.
                let is_request = rest.get(1).map(Vec::as_slice) == Some(&[REQUEST_COMMAND][..]);
                let id = rest
                    .get(2)
                    .and_then(|f| <[u8; 8]>::try_from(f.as_slice()).ok());
                if let (true, Some(id)) = (is_request, id) {
                    // Answered, so counted as received too: `replied` never exceeds it.
                    self.stats.received += 1;
                    let reply =
                        Reply::error(u64::from_be_bytes(id), Status::BadRequest, e.to_string());
                    self.send(identity, reply.encode());
                }
            }
        }
    }

    /// Serves a request from a client of this broker, or from a peer (the ticket then names
    /// the peer, see [`peers::peer_client`]): the storage thread, the groups, a built-in or
    /// the workers.
    fn serve(&mut self, now: Instant, ticket: Ticket, mut request: Request) {
        if let Some((service, broker)) = zhub_protocol::builtin::split_home(&request.service) {
            if broker == self.info.name {
                request.service = service.to_owned();
            }
        }
        if let Some(service) = StorageService::named(&request.service) {
            self.stats.received += 1;
            // The storage thread answers; an fsync there never stalls this loop, and a full
            // link is answered at once.
            let id = ticket.id;
            let client = ticket.client.clone();
            let forwarded = self.storage.forward(StorageRequest {
                ticket,
                service,
                body: request.body.into_iter().next().unwrap_or_default(),
            });
            if let Err((status, reason)) = forwarded {
                self.reply_to(&client, Reply::error(id, status, reason));
            }
            return;
        }
        if request.service == GROUP_SERVICE {
            self.stats.received += 1;
            let body = request.body.first().map_or(&[][..], Vec::as_slice);
            match body::decode::<GroupRequest>(body).and_then(|r| r.check_names().map(|()| r)) {
                Ok(group_request) => {
                    let timeout = request.timeout.min(self.max_deadline);
                    if let Some(answer) = self.groups.handle(now, ticket, timeout, group_request) {
                        self.answer_group(answer);
                    }
                    for answer in self.groups.take_passed() {
                        self.answer_group(answer);
                    }
                }
                Err(e) => {
                    let reply = Reply::error(request.id, Status::BadRequest, e.to_string());
                    self.reply_to(&ticket.client, reply);
                }
            }
            return;
        }
        let origin = match peers::peer_of_client(&ticket.client) {
            Some((peer, hops)) => Origin::Peer {
                peer,
                token: ticket.id,
                hops,
            },
            None => Origin::Native(request.id),
        };
        let client: &[u8] = if matches!(origin, Origin::Peer { .. }) {
            &[]
        } else {
            &ticket.client
        };
        let submission = Submission {
            client,
            origin,
            service: &request.service,
            body: request.body,
            timeout: request.timeout,
        };
        match self.route(now, submission) {
            Builtin::ForWorkers => {}
            Builtin::Body(body) => self.reply_to(&ticket.client, Reply::ok(request.id, body)),
            Builtin::Error(status, reason) => {
                self.reply_to(&ticket.client, Reply::error(request.id, status, reason));
            }
        }
    }

    /// Sends `reply` to the client of this broker it is for, or, for a ticket that names a
    /// peer, back over the cluster link as the answer to its forwarded request.
    fn reply_to(&mut self, client: &[u8], reply: Reply) {
        match peers::peer_of_client(client) {
            Some((peer, _)) => {
                let answer = LinkMessage::Answer {
                    token: reply.id,
                    status: reply.status,
                    body: reply.body,
                };
                if let Some(cluster) = &mut self.cluster {
                    cluster.send_message(peer, &answer);
                }
            }
            None => {
                self.send(client, reply.encode());
            }
        }
    }

    /// Answers a client request larger than `max_message` with `413 Too Large` (a native
    /// request whose id can be read) or drops it (Majordomo has no error replies), without
    /// decoding the rest of it.
    fn too_large(&mut self, identity: &[u8], rest: &[Vec<u8>], size: usize) {
        self.stats.received += 1;
        peer_fault!(self.faults, "request over max_message refused", peer = %hex(identity), size);
        let is_request = rest.first().map(Vec::as_slice) == Some(SIGNATURE)
            && rest.get(1).map(Vec::as_slice) == Some(&[REQUEST_COMMAND][..]);
        let id = rest
            .get(2)
            .and_then(|f| <[u8; 8]>::try_from(f.as_slice()).ok());
        if let (true, Some(id)) = (is_request, id) {
            let reason = format!(
                "request of {size} bytes is over the broker's max_message of {} bytes",
                self.max_message
            );
            let reply = Reply::error(u64::from_be_bytes(id), Status::TooLarge, reason);
            self.send(identity, reply.encode());
        }
    }

    /// Sends the group service's answer to the request it belongs to.
    fn answer_group(&mut self, (Ticket { client, id }, result): Answer<Ticket>) {
        let reply = match result.map(|r| body::encode(&r)) {
            Ok(Ok(bytes)) => Reply::ok(id, vec![bytes]),
            Ok(Err(e)) => Reply::error(id, Status::Internal, e.to_string()),
            Err((status, reason)) => Reply::error(id, status, reason),
        };
        self.reply_to(&client, reply);
    }

    /// Passes replies from the storage thread on to their clients.
    fn storage_replies(&mut self) {
        for StorageReply {
            ticket,
            status,
            body,
        } in self.storage.replies()
        {
            let reply = match status {
                Status::Ok => Reply::ok(ticket.id, vec![body]),
                other => Reply::error(
                    ticket.id,
                    other,
                    String::from_utf8_lossy(&body).into_owned(),
                ),
            };
            self.reply_to(&ticket.client, reply);
        }
    }

    /// The storage thread has stopped: answers what it held with an error at once.
    fn storage_failed(&mut self) {
        for ticket in self.storage.failed().unwrap_or_default() {
            let reason = "the storage thread stopped before answering; the broker is shutting down";
            self.reply_to(
                &ticket.client,
                Reply::error(ticket.id, Status::Internal, reason),
            );
        }
    }

    /// Counts a request, answers it if it is for a built-in service, and otherwise hands it
    /// to the service layer (and returns [`Builtin::ForWorkers`]).
    fn route(&mut self, now: Instant, submission: Submission) -> Builtin {
        self.stats.received += 1;
        let answer = self.builtin(submission.service, &submission.body);
        if let Builtin::ForWorkers = answer {
            self.services.submit(now, &mut self.stats, submission);
        }
        answer
    }

    /// Answers the broker's own services: `zhub.info`, `zhub.stats`, `zhub.services` and the
    /// Majordomo Management Interface (`mmi.service`; other `mmi.` names are answered
    /// "501"). Another reserved name is no such service; any other name is for workers.
    fn builtin(&self, service: &str, request_body: &[Vec<u8>]) -> Builtin {
        let encoded = match service {
            INFO_SERVICE => body::encode(&self.info),
            STATS_SERVICE => body::encode(&self.stats()),
            SERVICES_SERVICE => body::encode(&self.services.list()),
            TOPICS_SERVICE => body::encode(&self.topics.get()),
            PEERS_SERVICE => match &self.cluster {
                Some(cluster) => body::encode(&cluster.peers(Instant::now())),
                None => body::encode(&Peers {
                    name: self.info.name.clone(),
                    zone: self.info.zone.clone(),
                    ..Peers::default()
                }),
            },
            FAULT_SERVICE => {
                let request = request_body.first().map_or(&[][..], Vec::as_slice);
                return match self.fault_rules.handle(request) {
                    Ok(bytes) => Builtin::Body(vec![bytes]),
                    Err((status, reason)) => Builtin::Error(status, reason),
                };
            }
            MMI_SERVICE => {
                let asked = request_body
                    .first()
                    .map(|f| String::from_utf8_lossy(f).into_owned());
                let known = asked.is_some_and(|name| self.services.has_workers(&name));
                return Builtin::Body(vec![if known {
                    b"200".to_vec()
                } else {
                    b"404".to_vec()
                }]);
            }
            other if other.starts_with(MMI_PREFIX) => return Builtin::Body(vec![b"501".to_vec()]),
            // Another broker's built-in, routed like a service (see `native_request`).
            other
                if zhub_protocol::builtin::split_home(other).is_some_and(|(name, broker)| {
                    broker != self.info.name && zhub_protocol::builtin::REACHABLE.contains(&name)
                }) =>
            {
                return Builtin::ForWorkers
            }
            other if other.starts_with(BUILTIN_PREFIX) => {
                return Builtin::Error(
                    Status::NoService,
                    format!("no such built-in service: {other}"),
                )
            }
            _ => return Builtin::ForWorkers,
        };
        match encoded {
            Ok(bytes) => Builtin::Body(vec![bytes]),
            Err(e) => Builtin::Error(Status::Internal, e.to_string()),
        }
    }

    fn stats(&self) -> Stats {
        let (rss_bytes, peak_rss_bytes) = crate::memory::rss();
        Stats {
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            bus: self.bus.snapshot(),
            requests: self.stats.clone(),
            rss_bytes,
            peak_rss_bytes,
        }
    }

    /// Sends what the service layer produced. A worker that cannot be reached any more is
    /// removed, which may requeue its request and produce more to send.
    fn flush(&mut self) {
        loop {
            let outbox = self.services.take_outbox();
            if outbox.is_empty() {
                return;
            }
            let mut gone = Vec::new();
            let mut unsent = Vec::new();
            for Outgoing {
                identity,
                frames,
                peer,
            } in outbox
            {
                match peer {
                    None => {
                        if !self.send(&identity, frames) {
                            gone.push(identity);
                        }
                    }
                    Some(peer) => {
                        let forwarded = zhub_protocol::cluster::forwarded_token(&frames);
                        let sent = self.cluster.as_mut().is_some_and(|c| c.send(peer, frames));
                        if let (false, Some(token)) = (sent, forwarded) {
                            unsent.push((peer, token));
                        }
                    }
                }
            }
            let now = Instant::now();
            for identity in gone {
                self.services
                    .remove_worker(now, &mut self.stats, &identity, false);
            }
            for (peer, token) in unsent {
                self.services
                    .forward_failed(now, &mut self.stats, peer, token);
            }
        }
    }

    /// Sends `[identity, "", frames...]`; `false` when the peer is gone or not reading.
    fn send(&mut self, identity: &[u8], frames: Vec<Vec<u8>>) -> bool {
        let to_client = matches!(
            frames.first().map(Vec::as_slice),
            Some(SIGNATURE | mdp::CLIENT)
        );
        let mut message = Vec::with_capacity(2 + frames.len());
        message.push(identity.to_vec());
        message.push(Vec::new());
        message.extend(frames);
        // DONTWAIT: a peer that stopped reading must not stall the loop. With
        // ROUTER_MANDATORY a gone peer is EHOSTUNREACH, a full one EAGAIN.
        match self.socket.send_multipart(message, zmq::DONTWAIT) {
            Ok(()) => {
                if to_client {
                    self.stats.replied += 1;
                }
                true
            }
            Err(e @ (zmq::Error::EHOSTUNREACH | zmq::Error::EAGAIN)) => {
                if to_client {
                    self.stats.unroutable += 1;
                }
                debug!(peer = %hex(identity), error = %e, "message dropped: peer gone or not reading");
                false
            }
            Err(e) => {
                peer_fault!(self.faults, "send failed", peer = %hex(identity), error = %e);
                false
            }
        }
    }

    fn count_malformed(&mut self) {
        self.stats.malformed += 1;
    }

    /// Whether the auth file lets the message's user do what it asks; a refused message is
    /// counted, logged, answered (403 to a native request, DISCONNECT to a worker) and
    /// dropped.
    fn permitted(&mut self, frames: &[Vec<u8>], user: Option<&str>) -> bool {
        let Some(gate) = &mut self.auth else {
            return true;
        };
        // A message without an envelope is the dispatcher's to count as malformed.
        let Ok((identity, rest)) = split_envelope(frames) else {
            return true;
        };
        let Err(refusal) = gate.check_message(user, rest) else {
            return true;
        };
        self.stats.forbidden += 1;
        peer_fault!(self.faults, "message refused by permissions", peer = %hex(identity), reason = %refusal);
        if let Some((answer, to_client)) = crate::auth::refusal_answer(rest, &refusal) {
            if to_client {
                self.stats.received += 1;
            }
            self.send(identity, answer);
        }
        false
    }
}
