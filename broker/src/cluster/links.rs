//! The state of the links to peer brokers: greetings, sessions, heartbeats, round trips and
//! liveness. Pure state over an injected clock; the sockets are [`super::Cluster`]'s.
//!
//! A link is *outgoing* (our DEALER to a peer's cluster endpoint, one per configured peer)
//! or *incoming* (a peer's DEALER on our ROUTER, known by its routing id). An outgoing link
//! greets with `HELLO` until it is answered with `WELCOME`; an incoming one is greeted when
//! its `HELLO` arrives. A greeted link belongs to a peer, known by its id; a peer is *in
//! session* while at least one of its links is alive, and the session is that peer process's
//! (`PeerHello::session`): a peer that restarted starts a new session, and everything
//! learned from the old one is dropped first.
//!
//! Two brokers that each list the other have two links. Both sides send on the one the
//! broker with the smaller id opened, and fall back to the other while it is down, so that
//! nothing is sent twice and the spare link stands by with heartbeats only.
//!
//! Every link heartbeats each `heartbeat`; a link silent for `heartbeat * liveness` is
//! dead. A dead outgoing link is made anew (the caller drops its socket's queue) and greets
//! again; a dead incoming one is forgotten. A message on a link that has not been greeted is
//! answered `BYE`, which tells an outgoing side to greet again (the peer restarted and lost
//! the link).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use zhub_protocol::cluster::{Beat, LinkMessage, PeerHello};

/// Which link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum LinkKey {
    /// Our link to configured peer number `n`.
    Out(usize),
    /// A peer's link to us, by its routing id on our ROUTER.
    In(Vec<u8>),
}

/// What the caller must do after an input or a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Send this on that link.
    Send(LinkKey, LinkMessage),
    /// A peer's session began: tell it everything, and listen to it.
    Up(PeerHello),
    /// A peer's session ended: forget what it said, take back what it held.
    Down(PeerHello),
    /// Make this outgoing link's socket anew (dropping what it queued); it greets again.
    Renew(usize),
}

#[derive(Debug)]
struct Link {
    /// The peer, once greeted.
    peer: Option<u64>,
    last_heard: Instant,
    /// The last heartbeat heard: its stamp and when it came.
    heard_beat: Option<(u64, Instant)>,
    rtt: Option<Duration>,
}

impl Link {
    fn new(now: Instant) -> Self {
        Link {
            peer: None,
            last_heard: now,
            heard_beat: None,
            rtt: None,
        }
    }
}

#[derive(Debug)]
struct OutLink {
    endpoint: String,
    link: Link,
    /// When the last `HELLO` went out.
    greeted_at: Option<Instant>,
}

/// A peer in session.
#[derive(Debug, Clone)]
struct Peer {
    hello: PeerHello,
    since: Instant,
}

/// What `zhub peers` shows of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkView {
    /// Whether we opened it.
    pub outgoing: bool,
    /// The configured endpoint (outgoing) or the routing id in hex (incoming).
    pub endpoint: String,
    /// The peer's hello, once greeted.
    pub peer: Option<PeerHello>,
    /// Whether it carries the traffic to its peer.
    pub active: bool,
    /// Its last measured round trip.
    pub rtt: Option<Duration>,
    /// Since when the peer's session has been up.
    pub since: Option<Instant>,
}

/// The links and sessions. See the module docs.
pub(crate) struct Links {
    me: PeerHello,
    heartbeat: Duration,
    dead_after: Duration,
    /// The clock the heartbeats' stamps count from.
    epoch: Instant,
    outs: Vec<OutLink>,
    ins: HashMap<Vec<u8>, Link>,
    peers: HashMap<u64, Peer>,
    next_beat: Instant,
}

impl Links {
    pub(crate) fn new(
        me: PeerHello,
        endpoints: Vec<String>,
        heartbeat: Duration,
        liveness: u32,
        now: Instant,
    ) -> Self {
        Links {
            me,
            heartbeat,
            dead_after: heartbeat * liveness.max(1),
            epoch: now,
            outs: endpoints
                .into_iter()
                .map(|endpoint| OutLink {
                    endpoint,
                    link: Link::new(now),
                    greeted_at: None,
                })
                .collect(),
            ins: HashMap::new(),
            peers: HashMap::new(),
            next_beat: now,
        }
    }

    /// Adds an outgoing link to `endpoint` (a peer found by discovery); returns its number.
    pub(crate) fn add_out(&mut self, endpoint: String, now: Instant) -> usize {
        self.outs.push(OutLink {
            endpoint,
            link: Link::new(now),
            greeted_at: None,
        });
        self.outs.len() - 1
    }

    /// Who this broker is.
    pub(crate) fn me(&self) -> &PeerHello {
        &self.me
    }

    /// The configured peers' endpoints, by outgoing link number.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.outs.iter().map(|o| o.endpoint.as_str())
    }

    fn link_mut(&mut self, key: &LinkKey) -> Option<&mut Link> {
        match key {
            LinkKey::Out(n) => self.outs.get_mut(*n).map(|o| &mut o.link),
            LinkKey::In(rid) => self.ins.get_mut(rid),
        }
    }

    fn links(&self) -> impl Iterator<Item = (LinkKey, &Link)> {
        let outs = (self.outs.iter().enumerate()).map(|(n, o)| (LinkKey::Out(n), &o.link));
        let ins = self
            .ins
            .iter()
            .map(|(rid, l)| (LinkKey::In(rid.clone()), l));
        outs.chain(ins)
    }

    /// The peer a link belongs to, once greeted.
    pub(crate) fn peer_of(&self, key: &LinkKey) -> Option<u64> {
        match key {
            LinkKey::Out(n) => self.outs.get(*n).and_then(|o| o.link.peer),
            LinkKey::In(rid) => self.ins.get(rid).and_then(|l| l.peer),
        }
    }

    /// The name a peer in session goes by.
    pub(crate) fn name_of(&self, peer: u64) -> Option<&str> {
        self.peers.get(&peer).map(|p| p.hello.name.as_str())
    }

    /// The peers in session.
    pub(crate) fn in_session(&self) -> impl Iterator<Item = &PeerHello> {
        self.peers.values().map(|p| &p.hello)
    }

    /// The link to send to `peer` on: the one the broker with the smaller id opened, or
    /// else any that is greeted.
    pub(crate) fn route(&self, peer: u64) -> Option<LinkKey> {
        let prefer_out = self.me.id < peer;
        let mut fallback = None;
        for (key, link) in self.links() {
            if link.peer != Some(peer) {
                continue;
            }
            if matches!(key, LinkKey::Out(_)) == prefer_out {
                return Some(key);
            }
            fallback.get_or_insert(key);
        }
        fallback
    }

    fn stamp(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Takes a message that came in on `key`. An incoming link not seen before is made here.
    pub(crate) fn input(
        &mut self,
        now: Instant,
        key: &LinkKey,
        message: &LinkMessage,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        if let LinkKey::In(rid) = key {
            if !self.ins.contains_key(rid) {
                if !matches!(message, LinkMessage::Hello(_)) {
                    // A link from before a restart of ours: greet again, please.
                    if !matches!(message, LinkMessage::Bye) {
                        out.push(Event::Send(key.clone(), LinkMessage::Bye));
                    }
                    return out;
                }
                self.ins.insert(rid.clone(), Link::new(now));
            }
        }
        let Some(link) = self.link_mut(key) else {
            return out;
        };
        link.last_heard = now;
        match message {
            LinkMessage::Hello(hello) if matches!(key, LinkKey::In(_)) => {
                if hello.id == self.me.id {
                    // Our own cluster endpoint, listed as a peer.
                    out.push(Event::Send(key.clone(), LinkMessage::Bye));
                    if let LinkKey::In(rid) = key {
                        self.ins.remove(rid);
                    }
                    return out;
                }
                out.push(Event::Send(
                    key.clone(),
                    LinkMessage::Welcome(self.me.clone()),
                ));
                self.greeted(now, key, hello, &mut out);
            }
            LinkMessage::Welcome(hello) if matches!(key, LinkKey::Out(_)) => {
                if hello.id == self.me.id {
                    return out;
                }
                // A deliver endpoint bound to every address (0.0.0.0) is reached at the host
                // this link reached the peer at.
                let mut hello = hello.clone();
                if let LinkKey::Out(n) = key {
                    if let Some(o) = self.outs.get(*n) {
                        hello.deliver = zhub_client::connectable(&hello.deliver, &o.endpoint);
                    }
                }
                self.greeted(now, key, &hello, &mut out);
            }
            LinkMessage::Heartbeat(beat) => {
                // The echo is our own stamp: a peer sending a wild one gets a wild round trip
                // for its link, and nothing else.
                let rtt = (beat.echo_us > 0).then(|| {
                    let echoed = self
                        .epoch
                        .checked_add(Duration::from_micros(beat.echo_us))
                        .unwrap_or(now);
                    now.saturating_duration_since(echoed)
                        .saturating_sub(Duration::from_micros(beat.held_us))
                });
                if let Some(link) = self.link_mut(key) {
                    link.heard_beat = Some((beat.sent_us, now));
                    if rtt.is_some() {
                        link.rtt = rtt;
                    }
                }
            }
            LinkMessage::Bye => self.close(now, key, &mut out),
            _ => {
                if self.peer_of(key).is_none() {
                    out.push(Event::Send(key.clone(), LinkMessage::Bye));
                }
            }
        }
        out
    }

    /// A link was greeted by `hello`'s broker: it joins that peer's session (a new one when
    /// the peer restarted).
    fn greeted(&mut self, now: Instant, key: &LinkKey, hello: &PeerHello, out: &mut Vec<Event>) {
        match self.peers.get(&hello.id) {
            Some(p) if p.hello.session == hello.session => {}
            Some(_) => {
                // The peer restarted: its old session is over, links and all.
                self.end_session(hello.id, out);
                self.begin_session(now, hello, out);
            }
            None => self.begin_session(now, hello, out),
        }
        if let LinkKey::In(rid) = key {
            // The old session's end forgot its incoming links, this one among them.
            self.ins
                .entry(rid.clone())
                .or_insert_with(|| Link::new(now));
        }
        if let Some(link) = self.link_mut(key) {
            link.peer = Some(hello.id);
        }
    }

    fn begin_session(&mut self, now: Instant, hello: &PeerHello, out: &mut Vec<Event>) {
        self.peers.insert(
            hello.id,
            Peer {
                hello: hello.clone(),
                since: now,
            },
        );
        out.push(Event::Up(hello.clone()));
    }

    /// Ends `peer`'s session: its links are ungreeted (outgoing ones greet again).
    fn end_session(&mut self, peer: u64, out: &mut Vec<Event>) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        for (n, o) in self.outs.iter_mut().enumerate() {
            if o.link.peer == Some(peer) {
                o.link.peer = None;
                o.greeted_at = None;
                out.push(Event::Renew(n));
            }
        }
        self.ins.retain(|_, l| l.peer != Some(peer));
        out.push(Event::Down(p.hello));
    }

    /// Closes one link; the session ends with its last link.
    fn close(&mut self, now: Instant, key: &LinkKey, out: &mut Vec<Event>) {
        let peer = self.peer_of(key);
        match key {
            LinkKey::Out(n) => {
                if let Some(o) = self.outs.get_mut(*n) {
                    o.link = Link::new(now);
                    o.greeted_at = None;
                    out.push(Event::Renew(*n));
                }
            }
            LinkKey::In(rid) => {
                self.ins.remove(rid);
            }
        }
        if let Some(peer) = peer {
            if self.links().all(|(_, l)| l.peer != Some(peer)) {
                self.end_session(peer, out);
            }
        }
    }

    /// Greets, heartbeats and expires links as due.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        let dead: Vec<LinkKey> = self
            .links()
            .filter(|(key, l)| {
                let waited = now.saturating_duration_since(l.last_heard) > self.dead_after;
                // An outgoing link nobody answered yet is not dead: it greets on.
                waited && (l.peer.is_some() || matches!(key, LinkKey::In(_)))
            })
            .map(|(key, _)| key)
            .collect();
        for key in dead {
            self.close(now, &key, &mut out);
        }
        for (n, o) in self.outs.iter_mut().enumerate() {
            let due = o
                .greeted_at
                .is_none_or(|at| now.saturating_duration_since(at) >= self.heartbeat);
            if o.link.peer.is_none() && due {
                o.greeted_at = Some(now);
                o.link.last_heard = now;
                out.push(Event::Send(
                    LinkKey::Out(n),
                    LinkMessage::Hello(self.me.clone()),
                ));
            }
        }
        if now >= self.next_beat {
            self.next_beat = now + self.heartbeat;
            let sent_us = self.stamp(now);
            let greeted: Vec<(LinkKey, Beat)> = self
                .links()
                .filter(|(_, l)| l.peer.is_some())
                .map(|(key, l)| {
                    let (echo_us, held_us) = l.heard_beat.map_or((0, 0), |(stamp, at)| {
                        let held = now.saturating_duration_since(at).as_micros();
                        (stamp, u64::try_from(held).unwrap_or(u64::MAX))
                    });
                    let beat = Beat {
                        sent_us,
                        echo_us,
                        held_us,
                    };
                    (key, beat)
                })
                .collect();
            for (key, beat) in greeted {
                out.push(Event::Send(key, LinkMessage::Heartbeat(beat)));
            }
        }
        out
    }

    /// When [`Links::tick`] has something to do next.
    pub(crate) fn next_wakeup(&self) -> Instant {
        let expiry = self
            .links()
            .filter(|(_, l)| l.peer.is_some())
            .map(|(_, l)| l.last_heard + self.dead_after + Duration::from_millis(1))
            .min();
        let greeting = self
            .outs
            .iter()
            .filter(|o| o.link.peer.is_none())
            .map(|o| o.greeted_at.map_or(self.epoch, |at| at + self.heartbeat))
            .min();
        [Some(self.next_beat), expiry, greeting]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_beat)
    }

    /// Every link, for `zhub peers`.
    pub(crate) fn view(&self) -> Vec<LinkView> {
        self.links()
            .map(|(key, l)| {
                let peer = l.peer.and_then(|id| self.peers.get(&id));
                LinkView {
                    outgoing: matches!(key, LinkKey::Out(_)),
                    endpoint: match &key {
                        LinkKey::Out(n) => self.outs[*n].endpoint.clone(),
                        LinkKey::In(rid) => zhub_protocol::ids::hex(rid),
                    },
                    active: l.peer.is_some_and(|id| self.route(id) == Some(key.clone())),
                    peer: peer.map(|p| p.hello.clone()),
                    rtt: l.rtt,
                    since: peer.map(|p| p.since),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(id: u64, session: u64) -> PeerHello {
        PeerHello {
            version: zhub_protocol::cluster::VERSION,
            id,
            session,
            name: format!("b{id}"),
            zone: "z".into(),
            deliver: format!("inproc://deliver-{id}"),
            heartbeat_ms: 100,
            subscriber: id,
        }
    }

    fn links(id: u64, peers: usize, now: Instant) -> Links {
        let endpoints = (0..peers).map(|n| format!("inproc://peer-{n}")).collect();
        Links::new(hello(id, 1), endpoints, Duration::from_millis(100), 3, now)
    }

    fn sends(events: &[Event]) -> Vec<(LinkKey, LinkMessage)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Send(k, m) => Some((k.clone(), m.clone())),
                _ => None,
            })
            .collect()
    }

    fn ups(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Up(h) => Some(h.id),
                _ => None,
            })
            .collect()
    }

    fn downs(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Down(h) => Some(h.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_outgoing_link_greets_until_welcomed_then_heartbeats() {
        let t0 = Instant::now();
        let mut a = links(1, 1, t0);
        let first = a.tick(t0);
        assert!(matches!(
            sends(&first).as_slice(),
            [(LinkKey::Out(0), LinkMessage::Hello(h))] if h.id == 1
        ));
        assert!(sends(&a.tick(t0 + Duration::from_millis(50))).is_empty());
        // Nobody answered: greet again a heartbeat later, and never declare it dead.
        let again = a.tick(t0 + Duration::from_secs(10));
        assert!(sends(&again)
            .iter()
            .any(|(_, m)| matches!(m, LinkMessage::Hello(_))));
        let t1 = t0 + Duration::from_secs(10);
        let events = a.input(t1, &LinkKey::Out(0), &LinkMessage::Welcome(hello(2, 7)));
        assert_eq!(ups(&events), vec![2]);
        assert_eq!(a.route(2), Some(LinkKey::Out(0)));
        let beats = a.tick(t1 + Duration::from_millis(100));
        assert!(sends(&beats)
            .iter()
            .any(|(k, m)| *k == LinkKey::Out(0) && matches!(m, LinkMessage::Heartbeat(_))));
    }

    #[test]
    fn an_incoming_hello_is_welcomed_and_a_silent_peer_goes_down() {
        let t0 = Instant::now();
        let mut b = links(2, 0, t0);
        let rid = LinkKey::In(b"L1".to_vec());
        let events = b.input(t0, &rid, &LinkMessage::Hello(hello(1, 5)));
        assert!(matches!(
            sends(&events).as_slice(),
            [(_, LinkMessage::Welcome(h))] if h.id == 2
        ));
        assert_eq!(ups(&events), vec![1]);
        assert_eq!(b.name_of(1), Some("b1"));
        // Heard within the limit: alive. Silent past it: down.
        let beat = LinkMessage::Heartbeat(Beat::default());
        b.input(t0 + Duration::from_millis(250), &rid, &beat);
        assert!(downs(&b.tick(t0 + Duration::from_millis(500))).is_empty());
        let events = b.tick(t0 + Duration::from_millis(560));
        assert_eq!(downs(&events), vec![1]);
        assert_eq!(b.route(1), None);
        assert_eq!(b.in_session().count(), 0);
    }

    #[test]
    fn a_restarted_peer_starts_a_new_session_and_the_old_one_ends_first() {
        let t0 = Instant::now();
        let mut b = links(2, 0, t0);
        let rid = LinkKey::In(b"L1".to_vec());
        b.input(t0, &rid, &LinkMessage::Hello(hello(1, 5)));
        let events = b.input(t0, &rid, &LinkMessage::Hello(hello(1, 6)));
        let order: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Up(_) => Some("up"),
                Event::Down(_) => Some("down"),
                _ => None,
            })
            .collect();
        assert_eq!(order, vec!["down", "up"]);
        assert_eq!(b.route(1), Some(rid));
    }

    #[test]
    fn two_links_between_two_brokers_carry_traffic_on_the_smaller_ids_one() {
        let t0 = Instant::now();
        let mut a = links(1, 1, t0);
        let mut b = links(2, 1, t0);
        a.input(t0, &LinkKey::Out(0), &LinkMessage::Welcome(hello(2, 1)));
        a.input(
            t0,
            &LinkKey::In(b"L2".to_vec()),
            &LinkMessage::Hello(hello(2, 1)),
        );
        b.input(t0, &LinkKey::Out(0), &LinkMessage::Welcome(hello(1, 1)));
        b.input(
            t0,
            &LinkKey::In(b"L1".to_vec()),
            &LinkMessage::Hello(hello(1, 1)),
        );
        // Broker 1 opened its Out(0): both send on that link.
        assert_eq!(a.route(2), Some(LinkKey::Out(0)));
        assert_eq!(b.route(1), Some(LinkKey::In(b"L1".to_vec())));
        // When it closes, the other takes over and the session stays up.
        let events = b.input(t0, &LinkKey::In(b"L1".to_vec()), &LinkMessage::Bye);
        assert!(downs(&events).is_empty());
        assert_eq!(b.route(1), Some(LinkKey::Out(0)));
    }

    #[test]
    fn traffic_on_a_link_nobody_greeted_is_answered_bye() {
        let t0 = Instant::now();
        let mut b = links(2, 0, t0);
        let rid = LinkKey::In(b"stale".to_vec());
        let events = b.input(t0, &rid, &LinkMessage::Heartbeat(Beat::default()));
        assert_eq!(sends(&events), vec![(rid.clone(), LinkMessage::Bye)]);
        assert!(
            b.input(t0, &rid, &LinkMessage::Bye).is_empty(),
            "no bye for a bye"
        );
        // And our own endpoint listed as a peer is refused.
        let events = b.input(t0, &rid, &LinkMessage::Hello(hello(2, 1)));
        assert_eq!(sends(&events), vec![(rid, LinkMessage::Bye)]);
        assert!(ups(&events).is_empty());
    }

    #[test]
    fn a_wildcard_deliver_endpoint_is_reached_at_the_host_the_link_reached() {
        let t0 = Instant::now();
        let mut a = Links::new(
            hello(1, 1),
            vec!["tcp://10.1.2.3:7560".into()],
            Duration::from_millis(100),
            3,
            t0,
        );
        let mut peer = hello(2, 1);
        peer.deliver = "tcp://0.0.0.0:7558".into();
        let events = a.input(t0, &LinkKey::Out(0), &LinkMessage::Welcome(peer));
        assert!(
            matches!(
                events.as_slice(),
                [Event::Up(h)] if h.deliver == "tcp://10.1.2.3:7558"
            ),
            "{events:?}"
        );
    }

    #[test]
    fn round_trips_are_measured_from_echoed_stamps() {
        let t0 = Instant::now();
        let mut a = links(1, 1, t0);
        a.input(t0, &LinkKey::Out(0), &LinkMessage::Welcome(hello(2, 1)));
        let beats = a.tick(t0 + Duration::from_millis(100));
        let sent = sends(&beats)
            .into_iter()
            .find_map(|(_, m)| match m {
                LinkMessage::Heartbeat(b) => Some(b.sent_us),
                _ => None,
            })
            .unwrap();
        // The peer held it 3 ms; the whole trip took 10 ms.
        let echo = Beat {
            sent_us: 99,
            echo_us: sent,
            held_us: 3_000,
        };
        a.input(
            t0 + Duration::from_millis(110),
            &LinkKey::Out(0),
            &LinkMessage::Heartbeat(echo),
        );
        let view = a.view();
        assert_eq!(view[0].rtt, Some(Duration::from_millis(7)));
        assert!(view[0].active && view[0].outgoing);
    }
}
