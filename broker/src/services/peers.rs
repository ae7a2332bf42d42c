//! Peer brokers as workers: each peer serving a service is one worker of that service here,
//! with the credit the peer says its own workers have in all, reached over the cluster link
//! instead of the main endpoint.
//!
//! Such a worker has an identity no connection on the main endpoint can have (ZeroMQ's own
//! identities are five bytes, and one a peer sets may not start with a zero byte), so no
//! client or worker can speak for a peer. It is never heartbeated or expired here: the
//! cluster link watches the peer, and [`Services::drop_peer`] removes all of a peer's workers
//! at once, their requests going back to the head of their queues.

use std::time::Instant;

use tracing::{debug, info};
use zhub_protocol::builtin::{RequestStats, ServicePeer};
use zhub_protocol::cluster::{Capacity, LinkMessage};
use zhub_protocol::Status;

use super::{Answer, Outgoing, Services, Worker};

/// Start of every identity that stands for a peer broker: a peer worker's (the peer's id and
/// the service's name follow) and the router's tickets for requests a peer forwarded (the
/// peer's id follows).
pub(crate) const PEER_MARK: &[u8] = b"\0peer";

/// Most credit a peer may claim for one service.
const MAX_REMOTE_CREDIT: u32 = 1 << 20;

/// Whether `identity` is a peer worker's (see the module docs).
pub(super) fn is_remote_identity(identity: &[u8]) -> bool {
    identity.len() > PEER_MARK.len() + 8 && identity.starts_with(PEER_MARK)
}

fn remote_identity(peer: u64, service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(PEER_MARK.len() + 8 + service.len());
    out.extend_from_slice(PEER_MARK);
    out.extend_from_slice(&peer.to_be_bytes());
    out.extend_from_slice(service.as_bytes());
    out
}

/// The answer to a request `peer` forwarded with `token`.
pub(super) fn answer(
    peer: u64,
    token: u64,
    status: Status,
    body: Vec<Vec<u8>>,
) -> Option<Outgoing> {
    let message = LinkMessage::Answer {
        token,
        status,
        body,
    };
    // An answer holds no MessagePack of its own: encoding it cannot fail.
    message
        .encode()
        .ok()
        .map(|frames| Outgoing::peer(peer, frames))
}

impl Services {
    /// Takes what peer `peer` (named `name`) says it serves: with `reset`, its complete
    /// list, anything else it served here being gone; otherwise the services that changed.
    pub(crate) fn peer_capacity(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        peer: u64,
        name: &str,
        capacity: Capacity,
    ) {
        if capacity.reset {
            let gone: Vec<Vec<u8>> = self
                .workers
                .iter()
                .filter(|(_, w)| w.remote.as_ref().is_some_and(|(p, _)| *p == peer))
                .filter(|(_, w)| !capacity.services.iter().any(|(s, _)| *s == w.service))
                .map(|(id, _)| id.clone())
                .collect();
            for identity in gone {
                self.remove_worker(now, stats, &identity, false);
            }
        }
        for (service, credit) in capacity.services {
            self.set_remote(now, stats, peer, name, &service, credit);
        }
    }

    fn set_remote(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        peer: u64,
        name: &str,
        service: &str,
        credit: u32,
    ) {
        let identity = remote_identity(peer, service);
        if credit == 0 {
            self.remove_worker(now, stats, &identity, false);
            return;
        }
        if service.starts_with(zhub_protocol::builtin::BUILTIN_PREFIX)
            || service.starts_with(zhub_protocol::mdp::MMI_PREFIX)
        {
            debug!(broker = %name, service, "peer claims a reserved service name; ignored");
            return;
        }
        let credit = credit.clamp(1, MAX_REMOTE_CREDIT) as usize;
        let svc = self.services.entry(service.to_owned()).or_default();
        match self.workers.get_mut(&identity) {
            Some(worker) => {
                worker.credit = credit;
                let listed = svc.remote_free.iter().any(|i| *i == identity);
                let has_room = worker.held.len() < credit;
                if has_room && !listed {
                    svc.remote_free.push_back(identity);
                } else if !has_room && listed {
                    svc.remote_free.retain(|i| *i != identity);
                }
            }
            None => {
                info!(broker = %name, service, credit, "peer serves service");
                svc.remotes += 1;
                svc.remote_free.push_back(identity.clone());
                self.workers.insert(
                    identity,
                    Worker {
                        service: service.to_owned(),
                        expiry: now,
                        credit,
                        held: Vec::new(),
                        remote: Some((peer, name.to_owned())),
                    },
                );
            }
        }
        self.dispatch(now, service);
    }

    /// Forgets everything peer `peer` served here: the requests it held go back to the head
    /// of their queues, for local workers or other peers.
    pub(crate) fn drop_peer(&mut self, now: Instant, stats: &mut RequestStats, peer: u64) {
        let gone: Vec<Vec<u8>> = self
            .workers
            .iter()
            .filter(|(_, w)| w.remote.as_ref().is_some_and(|(p, _)| *p == peer))
            .map(|(id, _)| id.clone())
            .collect();
        for identity in gone {
            self.remove_worker(now, stats, &identity, false);
        }
    }

    /// Takes peer `peer`'s answer to the request forwarded with `token`. An answer the peer
    /// does not hold (late, or from before the link was lost) is dropped.
    pub(crate) fn peer_answer(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        peer: u64,
        token: u64,
        status: Status,
        mut body: Vec<Vec<u8>>,
    ) {
        let Some(service) = self.pending.get(&token).map(|p| p.service.clone()) else {
            debug!(token, "late answer from a peer dropped");
            return;
        };
        let answer = if status == Status::Ok {
            Answer::Reply(body)
        } else {
            let reason = body.drain(..).next().unwrap_or_default();
            Answer::Status(status, String::from_utf8_lossy(&reason).into_owned())
        };
        let identity = remote_identity(peer, &service);
        self.settle(now, stats, &identity, &token.to_be_bytes(), answer);
    }

    /// The request forwarded to `peer` with `token` could not be sent (its link is full or
    /// gone): its credit there is freed and the request goes back to the head of its queue,
    /// counted as an attempt.
    pub(crate) fn forward_failed(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        peer: u64,
        token: u64,
    ) {
        let Some(service) = self.pending.get(&token).map(|p| p.service.clone()) else {
            return;
        };
        let identity = remote_identity(peer, &service);
        let Some(worker) = self.workers.get_mut(&identity) else {
            return;
        };
        let Some(slot) = worker.held.iter().position(|&t| t == token) else {
            return;
        };
        worker.held.remove(slot);
        let was_full = worker.held.len() + 1 == worker.credit;
        if let Some(svc) = self.services.get_mut(&service) {
            svc.in_flight = svc.in_flight.saturating_sub(1);
            if was_full {
                svc.remote_free.push_back(identity);
            }
        }
        self.requeue(stats, token);
        self.dispatch(now, &service);
    }

    /// Every service local workers serve, with their credit in all: what a peer is told when
    /// its link comes up.
    pub(crate) fn local_capacity(&self) -> Capacity {
        let mut services: Vec<(String, u32)> = self
            .services
            .iter()
            .filter(|(_, s)| s.credit > 0)
            .map(|(name, s)| (name.clone(), u32::try_from(s.credit).unwrap_or(u32::MAX)))
            .collect();
        services.sort();
        Capacity {
            reset: true,
            services,
        }
    }

    /// The services whose local credit changed since the last call, with their credit now
    /// (0: no local worker left); `None` when nothing changed.
    pub(crate) fn take_capacity_changes(&mut self) -> Option<Capacity> {
        if self.capacity_changed.is_empty() {
            return None;
        }
        let mut names = std::mem::take(&mut self.capacity_changed);
        names.sort();
        names.dedup();
        let services = names
            .into_iter()
            .map(|name| {
                let credit = self.services.get(&name).map_or(0, |s| s.credit);
                (name, u32::try_from(credit).unwrap_or(u32::MAX))
            })
            .collect();
        Some(Capacity {
            reset: false,
            services,
        })
    }

    /// The peers serving `service` here, by name.
    pub(super) fn peers_serving(&self, service: &str) -> Vec<ServicePeer> {
        let mut out: Vec<ServicePeer> = self
            .workers
            .values()
            .filter(|w| w.service == service)
            .filter_map(|w| {
                w.remote.as_ref().map(|(_, name)| ServicePeer {
                    broker: name.clone(),
                    credit: w.credit as u64,
                    in_flight: w.held.len() as u64,
                })
            })
            .collect();
        out.sort_by(|a, b| a.broker.cmp(&b.broker));
        out
    }
}
