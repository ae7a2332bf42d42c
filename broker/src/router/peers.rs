//! The request thread's side of federation: what comes over the cluster link, and requests
//! for a built-in service of a named peer broker (`zhub.kv@B1`), which go to that broker and
//! whose answers come back to the client here.
//!
//! A request a peer forwarded is served like a client's, with a ticket that names the peer
//! ([`peer_client`]) instead of a connection, so that its answer goes back over the link.

use std::collections::HashMap;
use std::time::Instant;

use zhub_protocol::cluster::LinkMessage;
use zhub_protocol::{Reply, Request, Status};

use super::Router;
use crate::cluster::Inbound;
use crate::link::Ticket;
use crate::services::PEER_MARK;

/// The client identity of a request peer `peer` forwarded after it crossed `hops` links:
/// no connection has it.
pub(super) fn peer_client(peer: u64, hops: u8) -> Vec<u8> {
    let mut out = PEER_MARK.to_vec();
    out.extend_from_slice(&peer.to_be_bytes());
    out.push(hops);
    out
}

/// The peer a ticket's client identity names and the links its request crossed, if it
/// names one.
pub(super) fn peer_of_client(client: &[u8]) -> Option<(u64, u8)> {
    let rest = client.strip_prefix(PEER_MARK)?;
    let (id, hops) = rest.split_first_chunk::<8>()?;
    match hops {
        [hops] => Some((u64::from_be_bytes(*id), *hops)),
        _ => None,
    }
}

/// A request of ours waiting for a peer's built-in service.
pub(super) struct Call {
    pub(super) client: Vec<u8>,
    pub(super) id: u64,
    peer: u64,
    deadline: Instant,
}

/// The calls waiting, by token. Tokens have their top bit set, so that they never meet the
/// service layer's.
#[derive(Default)]
pub(super) struct Calls {
    waiting: HashMap<u64, Call>,
    next: u64,
}

impl Calls {
    fn add(&mut self, client: &[u8], id: u64, peer: u64, deadline: Instant) -> u64 {
        self.next += 1;
        let token = (1 << 63) | self.next;
        self.waiting.insert(
            token,
            Call {
                client: client.to_vec(),
                id,
                peer,
                deadline,
            },
        );
        token
    }

    /// The call `peer` answered with `token`, if it is one of ours.
    pub(super) fn take(&mut self, peer: u64, token: u64) -> Option<Call> {
        match self.waiting.get(&token) {
            Some(call) if call.peer == peer => self.waiting.remove(&token),
            _ => None,
        }
    }

    /// The calls waiting for `peer`, which will not answer them.
    pub(super) fn drop_peer(&mut self, peer: u64) -> Vec<Call> {
        let gone: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, c)| c.peer == peer)
            .map(|(t, _)| *t)
            .collect();
        gone.into_iter()
            .filter_map(|t| self.waiting.remove(&t))
            .collect()
    }

    /// The calls whose deadline passed.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<Call> {
        let due: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        due.into_iter()
            .filter_map(|t| self.waiting.remove(&t))
            .collect()
    }

    /// The earliest deadline of a waiting call.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|c| c.deadline).min()
    }
}

impl Router {
    /// Acts on what came over the cluster link.
    pub(super) fn cluster_inbound(&mut self, inbound: Vec<Inbound>) {
        for message in inbound {
            let now = Instant::now();
            match message {
                Inbound::Up(hello) => {
                    self.services.peer_up(hello.id, &hello.zone);
                    self.offer_to(hello.id, &hello.zone, None);
                }
                Inbound::Down(hello) => {
                    self.services.drop_peer(now, &mut self.stats, hello.id);
                    for call in self.calls.drop_peer(hello.id) {
                        let reason =
                            format!("peer broker {} went away before answering", hello.name);
                        let reply = Reply::error(call.id, Status::WorkerFailed, reason);
                        self.send(&call.client, reply.encode());
                    }
                }
                Inbound::Capacity {
                    peer,
                    name,
                    capacity,
                } => self
                    .services
                    .peer_capacity(now, &mut self.stats, peer, &name, capacity),
                Inbound::Forward {
                    peer,
                    token,
                    timeout,
                    hops,
                    service,
                    body,
                } => {
                    let request = Request {
                        id: token,
                        service,
                        timeout: timeout.min(self.max_deadline),
                        body,
                    };
                    let ticket = Ticket {
                        client: peer_client(peer, hops),
                        id: token,
                    };
                    self.serve(now, ticket, request);
                }
                Inbound::Answer {
                    peer,
                    token,
                    status,
                    body,
                } => match self.calls.take(peer, token) {
                    Some(call) => {
                        let reply = Reply {
                            id: call.id,
                            status,
                            body,
                        };
                        self.send(&call.client, reply.encode());
                    }
                    None => {
                        self.services
                            .peer_answer(now, &mut self.stats, peer, token, status, body)
                    }
                },
            }
        }
    }

    /// Sends `request` for built-in `service` to the peer broker named `broker`, to be
    /// answered to `client` when the peer answers, or with an error at its deadline.
    pub(super) fn call_peer(
        &mut self,
        now: Instant,
        client: &[u8],
        request: Request,
        service: &str,
        broker: &str,
    ) {
        self.stats.received += 1;
        let timeout = request.timeout.min(self.max_deadline);
        let Some(cluster) = &mut self.cluster else {
            let reason = format!("no peer broker named {broker:?}: this broker has no peers");
            self.send(
                client,
                Reply::error(request.id, Status::NoService, reason).encode(),
            );
            return;
        };
        let Some(peer) = cluster.peer_named(broker) else {
            let reason =
                format!("no peer broker named {broker:?} in session, nor reachable through one");
            self.send(
                client,
                Reply::error(request.id, Status::NoService, reason).encode(),
            );
            return;
        };
        let token = self.calls.add(client, request.id, peer, now + timeout);
        let forward = LinkMessage::Forward {
            token,
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            hops: 1,
            service: service.to_owned(),
            body: request.body,
        };
        if !cluster.send_message(peer, &forward) {
            self.calls.take(peer, token);
            let reason = format!("the link to peer broker {broker:?} is full");
            self.send(
                client,
                Reply::error(request.id, Status::Busy, reason).encode(),
            );
        }
    }

    /// Tells each peer in session what changed in the services offered to it, and
    /// everything to those that may have missed some.
    pub(super) fn advertise_changes(&mut self) {
        let names = self.services.take_changed();
        // Called after every batch the loop reads: nothing to tell costs nothing.
        if names.is_empty() && !self.services.resync_pending() {
            return;
        }
        let Some(cluster) = &self.cluster else {
            return;
        };
        for (peer, zone) in cluster.sessions() {
            if self.services.take_resync(peer) {
                self.offer_to(peer, &zone, None);
            } else if !names.is_empty() {
                self.offer_to(peer, &zone, Some(&names));
            }
        }
    }

    /// Sends `peer` (of `zone`) the offers of `names` that changed (`None`: all of them, as a
    /// complete list); if a message cannot go, the peer is told everything at the next
    /// round, since what it missed is already counted as told.
    fn offer_to(&mut self, peer: u64, zone: &str, names: Option<&[String]>) {
        let Some(offers) = self.services.offers_for(peer, zone, names) else {
            return;
        };
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        for message in offers.into_messages() {
            if !cluster.send_message(peer, &LinkMessage::Capacity(message)) {
                self.services.resync_peer(peer);
                return;
            }
        }
    }

    /// Answers the calls to peers whose deadline passed.
    pub(super) fn expire_calls(&mut self, now: Instant) {
        for call in self.calls.expired(now) {
            let reason = "no answer from the peer broker in time";
            let reply = Reply::error(call.id, Status::TimedOut, reason);
            self.send(&call.client, reply.encode());
        }
    }
}
