//! Federation: the cluster link's sockets, driven from the router thread's poll loop.
//!
//! A broker with a cluster endpoint binds a ROUTER there; for each configured peer it
//! connects a DEALER to that peer's cluster endpoint, with a routing id of its own (`L`, its
//! id, the link's number) and ZeroMQ's reconnection with backoff (100 ms doubling to 5 s).
//! [`links`] keeps the state: greetings, sessions, heartbeats. This module moves frames and
//! turns what arrives into [`Inbound`] for the router: sessions that begin and end, peers'
//! service capacity, requests forwarded to us and answers to ours.
//!
//! When a session begins, the bus thread subscribes to the peer's deliver endpoint (see
//! [`crate::bus::peers`]); when it ends, it unsubscribes.
//!
//! Everything from a peer is checked by the codec; a malformed message closes the link it
//! came on (counted, logged sparsely), and the peer greets again if it is still there.

pub(crate) mod discovery;
pub(crate) mod links;

use std::time::{Duration, Instant};

use tracing::{info, warn};
use zhub_protocol::builtin::{PeerLink, Peers};
use zhub_protocol::cluster::{Capacity, LinkMessage, PeerHello};
use zhub_protocol::ids::hex;
use zhub_protocol::Status;

use crate::bus::peers::PeerLinksHandle;
use crate::ratelimit::{peer_fault, Sparse};
use links::{Event, LinkKey, Links};

/// Most messages read per socket per poll.
const BATCH: usize = 256;

/// Messages queued per link before sends to it fail (and the request goes elsewhere).
pub(crate) const LINK_HWM: i32 = 100_000;

/// What the router must act on.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A peer's session began: send it our capacity.
    Up(PeerHello),
    /// A peer's session ended: take back what it held.
    Down(PeerHello),
    /// What a peer serves.
    Capacity {
        /// The peer's id.
        peer: u64,
        /// Its name.
        name: String,
        /// Its services.
        capacity: Capacity,
    },
    /// A request from a peer for our local workers.
    Forward {
        /// The peer's id.
        peer: u64,
        /// The peer's token.
        token: u64,
        /// Time left.
        timeout: Duration,
        /// Links it crossed.
        hops: u8,
        /// The service.
        service: String,
        /// The body.
        body: Vec<Vec<u8>>,
    },
    /// A peer's answer to a request we forwarded.
    Answer {
        /// The peer's id.
        peer: u64,
        /// Our token.
        token: u64,
        /// Its status.
        status: Status,
        /// Reply frames, or the reason.
        body: Vec<Vec<u8>>,
    },
}

/// The cluster link's sockets and state.
pub(crate) struct Cluster {
    context: zmq::Context,
    /// Where peers connect, when this broker has a cluster endpoint.
    router: Option<zmq::Socket>,
    /// Our DEALER to each configured peer, by link number.
    outs: Vec<zmq::Socket>,
    links: Links,
    bus: PeerLinksHandle,
    /// Link messages that could not be decoded.
    malformed: u64,
    faults: Sparse,
    /// The beacon socket, with `--discover`.
    discovery: Option<discovery::Discovery>,
    /// What the links to peers log in with, under an auth file.
    login: Option<zhub_client::Login>,
}

impl Cluster {
    /// Connects to every configured peer; `router` is the bound cluster endpoint, if any.
    pub(crate) fn new(
        context: zmq::Context,
        router: Option<zmq::Socket>,
        links: Links,
        discovery: Option<discovery::Discovery>,
        login: Option<zhub_client::Login>,
    ) -> Result<Self, zmq::Error> {
        let bus = PeerLinksHandle::connect(&context)?;
        let mut cluster = Cluster {
            context,
            router,
            outs: Vec::new(),
            links,
            bus,
            malformed: 0,
            faults: Sparse::default(),
            discovery,
            login,
        };
        let endpoints: Vec<String> = cluster.links.endpoints().map(str::to_owned).collect();
        for (n, endpoint) in endpoints.iter().enumerate() {
            let socket = cluster.dealer(n, endpoint)?;
            cluster.outs.push(socket);
        }
        Ok(cluster)
    }

    /// A DEALER for link `n` to `endpoint`.
    fn dealer(&self, n: usize, endpoint: &str) -> Result<zmq::Socket, zmq::Error> {
        let socket = self.context.socket(zmq::DEALER)?;
        socket.set_linger(0)?;
        socket.set_sndhwm(LINK_HWM)?;
        socket.set_rcvhwm(LINK_HWM)?;
        socket.set_reconnect_ivl(100)?;
        socket.set_reconnect_ivl_max(5000)?;
        let mut id = vec![b'L'];
        id.extend_from_slice(&self.links.me().id.to_be_bytes());
        id.extend_from_slice(&(n as u32).to_be_bytes());
        socket.set_identity(&id)?;
        if let Some(login) = &self.login {
            login.apply(&socket)?;
        }
        socket.connect(endpoint)?;
        Ok(socket)
    }

    /// The sockets to poll for input: the ROUTER (if any), each DEALER, then the beacon
    /// socket (if any).
    pub(crate) fn poll_items(&self) -> Vec<zmq::PollItem<'_>> {
        let mut items: Vec<zmq::PollItem<'_>> = self
            .router
            .iter()
            .chain(self.outs.iter())
            .map(|s| s.as_poll_item(zmq::POLLIN))
            .collect();
        if let Some(d) = &self.discovery {
            items.push(zmq::PollItem::from_fd(d.fd(), zmq::POLLIN));
        }
        items
    }

    /// When [`Cluster::tick`] is due.
    pub(crate) fn next_wakeup(&self) -> Instant {
        let links = self.links.next_wakeup();
        self.discovery
            .as_ref()
            .map_or(links, |d| links.min(d.next_wakeup()))
    }

    /// Links to the brokers whose beacons arrived, if any.
    fn read_beacons(&mut self, now: Instant) {
        let Some(d) = &mut self.discovery else {
            return;
        };
        let in_session: Vec<u64> = self.links.in_session().map(|h| h.id).collect();
        let found = d.read(&|id| in_session.contains(&id));
        for beacon in found {
            let n = self.links.add_out(beacon.cluster.clone(), now);
            match self.dealer(n, &beacon.cluster) {
                Ok(socket) => self.outs.push(socket),
                Err(e) => {
                    warn!(endpoint = %beacon.cluster, error = %e, "discovered peer could not be linked")
                }
            }
        }
    }

    /// Reads what the sockets flagged readable (in [`Cluster::poll_items`]'s order) hold.
    pub(crate) fn read(&mut self, now: Instant, readable: &[bool]) -> Vec<Inbound> {
        let mut received: Vec<(LinkKey, Vec<Vec<u8>>)> = Vec::new();
        let mut flags = readable.iter().copied();
        if let Some(router) = &self.router {
            if flags.next() == Some(true) {
                for _ in 0..BATCH {
                    match router.recv_multipart(zmq::DONTWAIT) {
                        Ok(mut frames) if !frames.is_empty() => {
                            let rid = frames.remove(0);
                            received.push((LinkKey::In(rid), frames));
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        let outs = self.outs.len();
        for (n, socket) in self.outs.iter().enumerate() {
            if flags.next() != Some(true) {
                continue;
            }
            for _ in 0..BATCH {
                match socket.recv_multipart(zmq::DONTWAIT) {
                    Ok(frames) => received.push((LinkKey::Out(n), frames)),
                    Err(_) => break,
                }
            }
        }
        // The flags after the DEALERs' (skipped above when unread) are the beacon socket's.
        let beacons = readable.get(usize::from(self.router.is_some()) + outs) == Some(&true);
        if beacons {
            self.read_beacons(now);
        }
        let mut out = Vec::new();
        for (key, frames) in received {
            self.take(now, &key, &frames, &mut out);
        }
        out
    }

    /// Handles one message from a link.
    fn take(&mut self, now: Instant, key: &LinkKey, frames: &[Vec<u8>], out: &mut Vec<Inbound>) {
        let message = match LinkMessage::decode(frames) {
            Ok(message) => message,
            Err(e) => {
                self.malformed += 1;
                peer_fault!(self.faults, "malformed message on a cluster link; link closed", link = ?key_text(key), error = %e);
                self.send_on(key, &LinkMessage::Bye);
                let events = self.links.input(now, key, &LinkMessage::Bye);
                self.apply(events, out);
                return;
            }
        };
        let events = self.links.input(now, key, &message);
        self.apply(events, out);
        let Some(peer) = self.links.peer_of(key) else {
            return;
        };
        match message {
            LinkMessage::Capacity(capacity) => out.push(Inbound::Capacity {
                peer,
                name: self.links.name_of(peer).unwrap_or_default().to_owned(),
                capacity,
            }),
            LinkMessage::Forward {
                token,
                timeout_ms,
                hops,
                service,
                body,
            } => out.push(Inbound::Forward {
                peer,
                token,
                timeout: Duration::from_millis(u64::from(timeout_ms)),
                hops,
                service,
                body,
            }),
            LinkMessage::Answer {
                token,
                status,
                body,
            } => out.push(Inbound::Answer {
                peer,
                token,
                status,
                body,
            }),
            LinkMessage::Hello(_)
            | LinkMessage::Welcome(_)
            | LinkMessage::Heartbeat(_)
            | LinkMessage::Bye => {}
        }
    }

    /// Greets, heartbeats and expires links as due.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Inbound> {
        if let Some(d) = &mut self.discovery {
            d.tick(now);
        }
        let events = self.links.tick(now);
        let mut out = Vec::new();
        self.apply(events, &mut out);
        out
    }

    fn apply(&mut self, events: Vec<Event>, out: &mut Vec<Inbound>) {
        for event in events {
            match event {
                Event::Send(key, message) => {
                    self.send_on(&key, &message);
                }
                Event::Up(hello) => {
                    info!(broker = %hello.name, zone = %hello.zone, id = %format_args!("{:016x}", hello.id), "peer session up");
                    let namesake = self
                        .links
                        .in_session()
                        .any(|h| h.name == hello.name && h.id != hello.id);
                    if namesake || hello.name == self.links.me().name {
                        warn!(broker = %hello.name, "two brokers share this name: requests for its built-ins (zhub.kv@NAME) may reach either; give each broker a name of its own");
                    }
                    if !hello.deliver.is_empty() {
                        self.bus.connect_peer(&hello);
                    }
                    out.push(Inbound::Up(hello));
                }
                Event::Down(hello) => {
                    warn!(broker = %hello.name, zone = %hello.zone, "peer session down");
                    if !hello.deliver.is_empty() {
                        self.bus.disconnect_peer(&hello);
                    }
                    out.push(Inbound::Down(hello));
                }
                Event::Renew(n) => self.renew(n),
            }
        }
    }

    /// Makes outgoing link `n`'s socket anew, so that what it queued for a lost session is
    /// never delivered to the next one.
    fn renew(&mut self, n: usize) {
        let Some(endpoint) = self.links.endpoints().nth(n).map(str::to_owned) else {
            return;
        };
        match self.dealer(n, &endpoint) {
            Ok(socket) => self.outs[n] = socket,
            Err(e) => warn!(%endpoint, error = %e, "cluster link could not be made anew"),
        }
    }

    fn send_on(&mut self, key: &LinkKey, message: &LinkMessage) -> bool {
        match message.encode() {
            Ok(frames) => self.send_frames(key, frames),
            Err(e) => {
                warn!(error = %e, "cluster message could not be encoded");
                false
            }
        }
    }

    fn send_frames(&mut self, key: &LinkKey, frames: Vec<Vec<u8>>) -> bool {
        let sent = match key {
            LinkKey::Out(n) => match self.outs.get(*n) {
                Some(socket) => socket.send_multipart(frames, zmq::DONTWAIT),
                None => return false,
            },
            LinkKey::In(rid) => match &self.router {
                Some(router) => {
                    let mut message = Vec::with_capacity(1 + frames.len());
                    message.push(rid.clone());
                    message.extend(frames);
                    router.send_multipart(message, zmq::DONTWAIT)
                }
                None => return false,
            },
        };
        match sent {
            Ok(()) => true,
            Err(e) => {
                peer_fault!(self.faults, "cluster link send failed", link = ?key_text(key), error = %e);
                false
            }
        }
    }

    /// Sends encoded link frames to `peer` on its active link; `false` when it has none or
    /// the link is full.
    pub(crate) fn send(&mut self, peer: u64, frames: Vec<Vec<u8>>) -> bool {
        match self.links.route(peer) {
            Some(key) => self.send_frames(&key, frames),
            None => false,
        }
    }

    /// The peers in session, with their zones.
    pub(crate) fn sessions(&self) -> Vec<(u64, String)> {
        self.links
            .in_session()
            .map(|h| (h.id, h.zone.clone()))
            .collect()
    }

    /// The id of the peer in session named `name`.
    pub(crate) fn peer_named(&self, name: &str) -> Option<u64> {
        self.links
            .in_session()
            .find(|h| h.name == name)
            .map(|h| h.id)
    }

    /// Sends `message` to `peer`.
    pub(crate) fn send_message(&mut self, peer: u64, message: &LinkMessage) -> bool {
        match message.encode() {
            Ok(frames) => self.send(peer, frames),
            Err(_) => false,
        }
    }

    /// What `zhub.peers` answers.
    pub(crate) fn peers(&self, now: Instant) -> Peers {
        let me = self.links.me();
        let mut links: Vec<PeerLink> = self
            .links
            .view()
            .into_iter()
            .map(|v| PeerLink {
                outgoing: v.outgoing,
                endpoint: v.endpoint,
                broker: v.peer.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
                zone: v.peer.as_ref().map(|p| p.zone.clone()).unwrap_or_default(),
                state: match (&v.peer, v.active) {
                    (None, _) => "connecting",
                    (Some(_), true) => "up",
                    (Some(_), false) => "standby",
                }
                .to_owned(),
                rtt_us: v
                    .rtt
                    .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                up_ms: v.since.map_or(0, |at| {
                    u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
                }),
            })
            .collect();
        links.sort_by(|a, b| {
            b.outgoing
                .cmp(&a.outgoing)
                .then(a.endpoint.cmp(&b.endpoint))
        });
        Peers {
            name: me.name.clone(),
            zone: me.zone.clone(),
            id: format!("{:016x}", me.id),
            links,
            malformed: self.malformed,
        }
    }
}

fn key_text(key: &LinkKey) -> String {
    match key {
        LinkKey::Out(n) => format!("out {n}"),
        LinkKey::In(rid) => format!("in {}", hex(rid)),
    }
}
