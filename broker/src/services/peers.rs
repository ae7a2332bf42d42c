//! Peer brokers as workers: each peer offering a service is one worker of that service here,
//! with the credit the peer offers (its own workers' and that of the routes it passes on),
//! reached over the cluster link instead of the main endpoint.
//!
//! Such a worker has an identity no connection on the main endpoint can have (ZeroMQ's own
//! identities are five bytes, and one a peer sets may not start with a zero byte), so no
//! client or worker can speak for a peer. It is never heartbeated or expired here: the
//! cluster link watches the peer, and [`Services::drop_peer`] removes all of a peer's workers
//! at once, their requests going back to the head of their queues.
//!
//! # Zones
//! Inside a zone a request crosses one link. Between zones, routes are path vectors (see
//! [`zhub_protocol::cluster`]): what this broker offers each peer is worked out per peer
//! ([`Services::offers_for`]) and sent only where it changed, and where a request may go
//! depends on where it came from ([`Services::may_forward`]):
//!
//! | request from          | may go to                                                   |
//! |-----------------------|-------------------------------------------------------------|
//! | a client of ours      | a local worker, else any peer                               |
//! | a zone mate           | a local worker, else a peer of another zone                 |
//! | a peer of zone Z      | a local worker, else a peer not of Z whose path avoids Z     |
//!
//! and never past [`MAX_HOPS`] links. A request from a peer that nothing here may take (no
//! local worker, no route its origin allows) is answered `NoService` at once
//! ([`Services::refuse_stranded`]), and the broker that sent it tries elsewhere: that is
//! what a peer's `NoService` means to the service layer ([`Services::peer_answer`]).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use tracing::{debug, info};
use zhub_protocol::builtin::{RequestStats, ServicePeer};
use zhub_protocol::cluster::{Capacity, LinkMessage, MAX_HOPS, MAX_PATH_ZONES};
use zhub_protocol::Status;

use super::{Answer, Origin, Outgoing, Services, Worker};

/// Start of every identity that stands for a peer broker: a peer worker's (the peer's id and
/// the service's name follow) and the router's tickets for requests a peer forwarded (the
/// peer's id and the request's hop count follow).
pub(crate) const PEER_MARK: &[u8] = b"\0peer";

/// Most credit a peer may claim for one service.
const MAX_REMOTE_CREDIT: u32 = 1 << 20;

/// The peer broker a peer worker stands for, and the route it offered.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    /// The peer's id.
    pub(super) peer: u64,
    /// Its name.
    pub(super) name: String,
    /// Its zone.
    pub(super) zone: String,
    /// The zones a request crosses from here through it (empty: served in our zone).
    pub(super) path: Vec<String>,
}

/// What this broker offered one peer for one service: credit and path.
type Offer = (u32, Vec<String>);

/// Where peers are and what they were offered: the service layer's view of the cluster.
#[derive(Debug, Default)]
pub(super) struct PeerState {
    /// This broker's zone.
    pub(super) zone: String,
    /// The zone of each peer in session.
    pub(super) zones: HashMap<u64, String>,
    /// What each peer in session was last offered, by service.
    advertised: HashMap<u64, HashMap<String, Offer>>,
    /// Peers whose last offers may not have reached them (a send failed): told everything
    /// anew at the next round.
    resync: HashSet<u64>,
    /// This broker's built-in services as other brokers name them (`zhub.kv@B1`), offered
    /// like services so that they are reached across zones.
    home: Vec<String>,
}

impl PeerState {
    pub(super) fn new(zone: &str) -> Self {
        PeerState {
            zone: zone.to_owned(),
            ..PeerState::default()
        }
    }
}

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

/// `a` with the zones of `b` it lacks appended.
fn union_into(a: &mut Vec<String>, b: &[String]) {
    for zone in b {
        if !a.contains(zone) {
            a.push(zone.clone());
        }
    }
}

impl Services {
    /// Offers this broker's built-in services to peers as `zhub.kv@NAME` and the like, so
    /// that brokers beyond them reach them through them.
    pub(crate) fn set_home(&mut self, name: &str) {
        self.peers.home = zhub_protocol::builtin::REACHABLE
            .iter()
            .map(|service| zhub_protocol::builtin::at_home(service, name))
            .collect();
    }

    /// A peer's session began: it is in `zone`.
    pub(crate) fn peer_up(&mut self, peer: u64, zone: &str) {
        self.peers.zones.insert(peer, zone.to_owned());
        self.peers.advertised.remove(&peer);
    }

    /// Whether a request from `origin` may go to the peer worker `remote` (see the module
    /// docs' table).
    pub(super) fn may_forward(&self, origin: &Origin, remote: &Remote) -> bool {
        let Origin::Peer { peer, hops, .. } = origin else {
            return true;
        };
        if *hops >= MAX_HOPS {
            return false;
        }
        let Some(from) = self.peers.zones.get(peer) else {
            return false;
        };
        if *from == self.peers.zone {
            remote.zone != self.peers.zone
        } else {
            remote.zone != *from && !remote.path.contains(from)
        }
    }

    /// Takes what peer `peer` (named `name`) offers: with `reset`, its complete list,
    /// anything else it offered here being gone; otherwise the services that changed. An
    /// offer whose path holds this broker's zone is a loop, and taken as no offer.
    pub(crate) fn peer_capacity(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        peer: u64,
        name: &str,
        capacity: Capacity,
    ) {
        if capacity.reset {
            let offered: HashSet<&str> =
                capacity.services.iter().map(|(s, _)| s.as_str()).collect();
            let gone: Vec<Vec<u8>> = self
                .workers
                .iter()
                .filter(|(_, w)| w.remote.as_ref().is_some_and(|r| r.peer == peer))
                .filter(|(_, w)| !offered.contains(w.service.as_str()))
                .map(|(id, _)| id.clone())
                .collect();
            for identity in gone {
                self.remove_worker(now, stats, &identity, false);
            }
        }
        let zone = self.peers.zones.get(&peer).cloned().unwrap_or_default();
        let paths: HashMap<&str, &[String]> = capacity
            .paths
            .iter()
            .map(|(s, p)| (s.as_str(), p.as_slice()))
            .collect();
        for (service, credit) in &capacity.services {
            let mut path = paths
                .get(service.as_str())
                .map_or(Vec::new(), |p| p.to_vec());
            // A route from another zone goes through that zone, whatever the offer says.
            if zone != self.peers.zone && path.first() != Some(&zone) {
                path.insert(0, zone.clone());
            }
            let credit = if path.contains(&self.peers.zone) || path.len() > MAX_PATH_ZONES {
                debug!(broker = %name, service, ?path, "offer that loops through this zone dropped");
                0
            } else {
                *credit
            };
            let remote = Remote {
                peer,
                name: name.to_owned(),
                zone: zone.clone(),
                path,
            };
            self.set_remote(now, stats, remote, service, credit);
        }
    }

    fn set_remote(
        &mut self,
        now: Instant,
        stats: &mut RequestStats,
        remote: Remote,
        service: &str,
        credit: u32,
    ) {
        let identity = remote_identity(remote.peer, service);
        if credit == 0 {
            self.remove_worker(now, stats, &identity, false);
            return;
        }
        // Reserved names are not a peer's to serve, except another broker's built-ins
        // (`zhub.kv@B1`), which are routes to that broker.
        let reachable = zhub_protocol::builtin::split_home(service)
            .is_some_and(|(name, _)| zhub_protocol::builtin::REACHABLE.contains(&name))
            && !self.peers.home.iter().any(|own| own == service);
        if !reachable
            && (service.starts_with(zhub_protocol::builtin::BUILTIN_PREFIX)
                || service.starts_with(zhub_protocol::mdp::MMI_PREFIX))
        {
            debug!(broker = %remote.name, service, "peer claims a reserved service name; ignored");
            return;
        }
        let credit = credit.clamp(1, MAX_REMOTE_CREDIT) as usize;
        let svc = self.services.entry(service.to_owned()).or_default();
        let path_changed = match self.workers.get_mut(&identity) {
            Some(worker) => {
                let same_path = worker
                    .remote
                    .as_ref()
                    .is_some_and(|r| r.path == remote.path);
                if worker.credit != credit || !same_path {
                    self.capacity_changed.push(service.to_owned());
                }
                worker.credit = credit;
                worker.remote = Some(remote);
                let listed = svc.remote_free.iter().any(|i| *i == identity);
                let has_room = worker.held.len() < credit;
                if has_room && !listed {
                    svc.remote_free.push_back(identity);
                } else if !has_room && listed {
                    svc.remote_free.retain(|i| *i != identity);
                }
                !same_path
            }
            None => {
                info!(broker = %remote.name, zone = %remote.zone, service, credit, path = ?remote.path, "peer serves service");
                svc.remotes += 1;
                svc.remote_free.push_back(identity.clone());
                self.capacity_changed.push(service.to_owned());
                self.workers.insert(
                    identity,
                    Worker {
                        service: service.to_owned(),
                        expiry: now,
                        credit,
                        held: Vec::new(),
                        remote: Some(remote),
                    },
                );
                false
            }
        };
        self.dispatch(now, service);
        if path_changed {
            // A longer path may take this route from requests that could use it before.
            self.refuse_stranded(service, None);
        }
    }

    /// Forgets everything peer `peer` offered here: the requests it held go back to the head
    /// of their queues, for local workers or other peers; the requests it sent that still
    /// wait here are dropped, since their answers could go nowhere.
    pub(crate) fn drop_peer(&mut self, now: Instant, stats: &mut RequestStats, peer: u64) {
        let sent: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.queued && matches!(p.origin, Origin::Peer { peer: from, .. } if from == peer)
            })
            .map(|(t, _)| *t)
            .collect();
        for token in sent {
            self.take_request(token);
        }
        let gone: Vec<Vec<u8>> = self
            .workers
            .iter()
            .filter(|(_, w)| w.remote.as_ref().is_some_and(|r| r.peer == peer))
            .map(|(id, _)| id.clone())
            .collect();
        for identity in gone {
            self.remove_worker(now, stats, &identity, false);
        }
        self.peers.zones.remove(&peer);
        self.peers.advertised.remove(&peer);
        self.peers.resync.remove(&peer);
    }

    /// Answers at once, `NoService`, the requests from peers waiting for `service` that
    /// nothing here may take: no local worker, and no route their origin allows. The peer
    /// that sent one then tries elsewhere, instead of its client waiting here until the
    /// deadline. With `only`, that request alone is looked at (one just submitted): the
    /// rest of the queue was looked at when it came, and routes go away or change path only
    /// in [`Services::remove_worker`] and `set_remote`, which look at all of it.
    pub(super) fn refuse_stranded(&mut self, service: &str, only: Option<u64>) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.workers > 0 || svc.live == 0 {
            return;
        }
        let queued = |t: &u64| self.pending.get(t).is_some_and(|p| p.queued);
        if only.is_some_and(|t| !queued(&t)) {
            // Handed out at once: the common case costs nothing more.
            return;
        }
        let routes: Vec<&Remote> = self
            .workers
            .values()
            .filter(|w| w.service == service)
            .filter_map(|w| w.remote.as_ref())
            .collect();
        let candidates: Box<dyn Iterator<Item = u64>> = match only {
            Some(token) => Box::new(std::iter::once(token)),
            None => Box::new(svc.requests.iter().copied()),
        };
        let stranded: Vec<u64> = candidates
            .filter(|t| {
                self.pending.get(t).is_some_and(|p| {
                    p.queued
                        && matches!(p.origin, Origin::Peer { .. })
                        && !routes.iter().any(|r| self.may_forward(&p.origin, r))
                })
            })
            .collect();
        for token in stranded {
            if let Some(p) = self.take_request(token) {
                let reason = format!(
                    "no route from this broker to service {service} for a request from that peer"
                );
                self.answer_error(&p.client, p.origin, service, Status::NoService, reason);
            }
        }
        self.forget_if_unused(service);
    }

    /// Peer `peer` may have missed offers (a send to it failed): it is told everything anew
    /// at the next round.
    pub(crate) fn resync_peer(&mut self, peer: u64) {
        self.peers.advertised.remove(&peer);
        self.peers.resync.insert(peer);
    }

    /// Whether some peer is to be told everything anew.
    pub(crate) fn resync_pending(&self) -> bool {
        !self.peers.resync.is_empty()
    }

    /// Whether `peer` is to be told everything anew (see [`Services::resync_peer`]); asking
    /// clears it.
    pub(crate) fn take_resync(&mut self, peer: u64) -> bool {
        self.peers.resync.remove(&peer)
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
        if status == Status::NoService {
            // The peer has no route for it after all (its offer was out of date): another
            // worker or peer may, within the request's attempts.
            self.forward_failed(now, stats, peer, token);
            return;
        }
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

    /// Names of the services whose offers may have changed since the last call: local
    /// credit, or a peer's offer, came or went or changed.
    pub(crate) fn take_changed(&mut self) -> Vec<String> {
        let mut names = std::mem::take(&mut self.capacity_changed);
        names.sort();
        names.dedup();
        names
    }

    /// What to tell peer `peer`, of zone `zone`, about the services `names` (`None`: every
    /// service, as a complete list that replaces what it knew): the offers that differ from
    /// what it was last told; `None` when nothing does.
    pub(crate) fn offers_for(
        &mut self,
        peer: u64,
        zone: &str,
        names: Option<&[String]>,
    ) -> Option<Capacity> {
        let reset = names.is_none();
        let all: Vec<String>;
        let names = match names {
            Some(names) => names,
            None => {
                all = self
                    .services
                    .keys()
                    .chain(&self.peers.home)
                    .cloned()
                    .collect();
                &all
            }
        };
        let mut routes: HashMap<&str, Vec<(usize, &Remote)>> = HashMap::new();
        for worker in self.workers.values() {
            if let Some(remote) = &worker.remote {
                routes
                    .entry(worker.service.as_str())
                    .or_default()
                    .push((worker.credit, remote));
            }
        }
        let mut offers: Vec<(String, Offer)> = names
            .iter()
            .map(|name| {
                let local = if self.peers.home.contains(name) {
                    MAX_REMOTE_CREDIT as usize
                } else {
                    self.services.get(name).map_or(0, |s| s.credit)
                };
                let routes = routes.get(name.as_str()).map_or(&[][..], Vec::as_slice);
                (name.clone(), self.offer(local, routes, zone))
            })
            .collect();
        offers.sort();
        let told = self.peers.advertised.entry(peer).or_default();
        if reset {
            told.clear();
        }
        let mut capacity = Capacity {
            reset,
            ..Capacity::default()
        };
        for (name, offer) in offers {
            let before = told.get(&name).cloned().unwrap_or_default();
            if offer == before {
                continue;
            }
            if !offer.1.is_empty() {
                capacity.paths.push((name.clone(), offer.1.clone()));
            }
            capacity.services.push((name.clone(), offer.0));
            if offer.0 == 0 {
                told.remove(&name);
            } else {
                told.insert(name, offer);
            }
        }
        // A reset is sent even when empty: it tells the peer it has nothing of ours.
        (reset || !capacity.services.is_empty()).then_some(capacity)
    }

    /// The offer for one service to a peer of zone `to`: `local` credit and the routes
    /// peers offered here, as the module docs' rules allow passing them on.
    fn offer(&self, local: usize, routes: &[(usize, &Remote)], to: &str) -> Offer {
        let own = &self.peers.zone;
        let mate = to == own;
        let mut passable: Vec<&(usize, &Remote)> = routes
            .iter()
            .filter(|(_, remote)| {
                if mate {
                    // A zone mate hears of other zones' routes from us, never of another
                    // mate's.
                    remote.zone != *own
                } else {
                    remote.zone != to && !remote.path.iter().any(|z| z == to)
                }
            })
            .collect();
        // The shortest routes first, while their zones fit in one path (ours in front of
        // them, for another zone): the offer names every zone a request may cross.
        passable.sort_by_key(|(_, remote)| remote.path.len());
        let room = MAX_PATH_ZONES - usize::from(!mate);
        let mut credit = local;
        let mut path: Vec<String> = Vec::new();
        for (route_credit, remote) in passable {
            let mut wider = path.clone();
            union_into(&mut wider, &remote.path);
            if wider.len() <= room {
                path = wider;
                credit += route_credit;
            }
        }
        if credit == 0 {
            return (0, Vec::new());
        }
        if !mate {
            path.insert(0, own.clone());
        }
        let credit = u32::try_from(credit)
            .unwrap_or(u32::MAX)
            .min(MAX_REMOTE_CREDIT);
        (credit, path)
    }

    /// The peers serving `service` here, by name.
    pub(super) fn peers_serving(&self, service: &str) -> Vec<ServicePeer> {
        let mut out: Vec<ServicePeer> = self
            .workers
            .values()
            .filter(|w| w.service == service)
            .filter_map(|w| {
                w.remote.as_ref().map(|r| ServicePeer {
                    broker: r.name.clone(),
                    credit: w.credit as u64,
                    in_flight: w.held.len() as u64,
                    zone: r.zone.clone(),
                    path: r.path.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.broker.cmp(&b.broker));
        out
    }
}
