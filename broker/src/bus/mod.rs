//! The publish/subscribe plane: publishers -> XSUB ==> proxy ==> XPUBs -> subscribers.
//!
//! The proxy is a loop of our own rather than `zmq_proxy`, for these reasons:
//! - **Publishers send everything to the broker.** The XSUB subscribes to every topic once,
//!   and subscriptions arriving on the XPUBs are *not* forwarded upstream. Filtering happens
//!   only here, so a subscription is live as soon as this loop has taken it, and a subscriber
//!   can prove that with one probe message (no slow-joiner loss).
//! - **zhub subscribers get addressed copies, and every drop is counted.** They connect to the
//!   deliver endpoint, a second XPUB, subscribing there to their own address and declaring
//!   their filters and queue groups ([`zhub_protocol::delivery`]). This loop matches topics
//!   against its own table of those ([`crate::interest`]) and sends each matching subscriber,
//!   and one member of each matching queue group, a copy behind its envelope, with
//!   `XPUB_NODROP` on. A queue group's copy goes to the next member in turn, or to the one
//!   after when that member's queue is full; only when every member's is full is it dropped,
//!   counted against the member whose turn it was. A full queue refuses exactly that subscriber's
//!   copy: the loop counts it against that subscriber (`slow_subscriber`), goes on with the
//!   others, and reports the count in the next envelope it delivers to it (or in a notice, if
//!   no message follows). ZeroMQ's own fan-out could do neither: once a queue has overflowed
//!   it skips that subscriber silently until it has caught up.
//! - **Plain ZeroMQ subscribers still work**, on the subscribe endpoint: bus frames go to them
//!   unaddressed, through ZeroMQ's fan-out; a message a full queue refuses is counted once
//!   (`slow_plain_subscriber`, a lower bound for the reason above) and sent again in lossy
//!   mode, so that one slow reader never stalls the others.
//! - **Malformed input stops here**, counted: bus frames that are not well formed, messages
//!   sent up by subscribers, subscriptions longer than a topic (the XPUBs cut off a peer that
//!   sends one) or beyond the table's limits.
//!
//! (ZeroMQ's manual XPUB mode, which would let one XPUB serve both kinds of subscriber, is not
//! used: in libzmq 4.3.4 a message sent up by a subscriber shifts every later subscription onto
//! the wrong connection, and a connection that closes with subscriptions still queued leaves a
//! dangling pointer behind.)
//!
//! Messages move in batches of up to [`BATCH`] per poll. Two more inputs join the loop: the
//! journal tap ([`crate::journal`]) copies messages on journaled prefixes to the storage
//! thread, and the storage thread's republished messages come in on an inproc socket and go
//! out like any other (without being journaled again).

mod dedup;
pub(crate) mod peers;
mod raw;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use zhub_protocol::builtin::{BusDrops, BusStats, TopicRoute};
use zhub_protocol::bus;
use zhub_protocol::delivery::{self, Subscription, ADDRESS_LEN, ENVELOPE_LEN, INLINE_MAX};

use crate::auth::{actions, Gate};
use crate::fault_rules::{FaultGate, Verdict};
use crate::interest::zones::Route;
use crate::interest::{Interest, Member};
use crate::journal::JournalTap;
use crate::ratelimit::Sparse;
use raw::{send_small, set_nodrop, RawMessage};

/// Endpoint where the storage thread sends messages to publish again (a PUSH to our PULL).
pub(crate) const REPUBLISH_ENDPOINT: &str = "inproc://republish";

/// Most messages forwarded, or subscriptions read, per poll: large enough to amortise the
/// poll, small enough that subscriptions and shutdown are still seen promptly under a flood.
const BATCH: usize = 1024;

/// How often the loop tries again to tell subscribers of drops that no delivered message has
/// reported yet.
const NOTICE_INTERVAL: Duration = Duration::from_millis(50);

/// Longest subscription a subscriber may send, with ZeroMQ's subscribe byte, an address and an
/// interest mark: longer ones make the XPUB drop the connection.
const MAX_SUBSCRIPTION: i64 = (1 + ADDRESS_LEN + 1 + bus::MAX_TOPIC_LEN) as i64;

/// Longest bus frame a publisher may send for bodies of up to `max_body` bytes.
pub(crate) fn max_frame(max_body: usize) -> i64 {
    i64::try_from(bus::MAX_TOPIC_LEN + 1 + bus::HEADER_LEN + max_body).unwrap_or(i64::MAX)
}

/// Counters the proxy thread publishes for `zhub.stats`, written only by that thread.
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    malformed: AtomicU64,
    slow_subscriber: AtomicU64,
    slow_plain_subscriber: AtomicU64,
    subscriptions: AtomicU64,
    subscribers: AtomicU64,
    refused_subscriptions: AtomicU64,
    fault_dropped: AtomicU64,
    forbidden: AtomicU64,
    fault_delayed: AtomicU64,
    fault_held: AtomicU64,
    from_peers: AtomicU64,
    peer_dropped: AtomicU64,
    duplicate: AtomicU64,
}

impl BusCounters {
    pub(crate) fn snapshot(&self) -> BusStats {
        BusStats {
            messages_in: self.messages_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            dropped: BusDrops {
                malformed: self.malformed.load(Relaxed),
                slow_subscriber: self.slow_subscriber.load(Relaxed),
                slow_plain_subscriber: self.slow_plain_subscriber.load(Relaxed),
                fault: self.fault_dropped.load(Relaxed),
                peer: self.peer_dropped.load(Relaxed),
                duplicate: self.duplicate.load(Relaxed),
                forbidden: self.forbidden.load(Relaxed),
            },
            subscriptions: self.subscriptions.load(Relaxed),
            subscribers: self.subscribers.load(Relaxed),
            refused_subscriptions: self.refused_subscriptions.load(Relaxed),
            fault_delayed: self.fault_delayed.load(Relaxed),
            fault_held: self.fault_held.load(Relaxed),
            from_peers: self.from_peers.load(Relaxed),
        }
    }

    fn store(&self, c: &BusStats) {
        self.messages_in.store(c.messages_in, Relaxed);
        self.bytes_in.store(c.bytes_in, Relaxed);
        self.messages_out.store(c.messages_out, Relaxed);
        self.bytes_out.store(c.bytes_out, Relaxed);
        self.malformed.store(c.dropped.malformed, Relaxed);
        self.slow_subscriber
            .store(c.dropped.slow_subscriber, Relaxed);
        self.slow_plain_subscriber
            .store(c.dropped.slow_plain_subscriber, Relaxed);
        self.subscriptions.store(c.subscriptions, Relaxed);
        self.subscribers.store(c.subscribers, Relaxed);
        self.refused_subscriptions
            .store(c.refused_subscriptions, Relaxed);
        self.fault_dropped.store(c.dropped.fault, Relaxed);
        self.forbidden.store(c.dropped.forbidden, Relaxed);
        self.fault_delayed.store(c.fault_delayed, Relaxed);
        self.fault_held.store(c.fault_held, Relaxed);
        self.from_peers.store(c.from_peers, Relaxed);
        self.peer_dropped.store(c.dropped.peer, Relaxed);
        self.duplicate.store(c.dropped.duplicate, Relaxed);
    }
}

/// Where messages on which topics go, as the bus thread last saw it: what `zhub.topics`
/// answers. Rebuilt at most every [`TOPICS_INTERVAL`] while interest changes.
#[derive(Debug, Default)]
pub(crate) struct TopicRoutes(Mutex<Vec<TopicRoute>>);

impl TopicRoutes {
    /// The routes last seen.
    pub(crate) fn get(&self) -> Vec<TopicRoute> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn set(&self, routes: Vec<TopicRoute>) {
        if let Ok(mut held) = self.0.lock() {
            *held = routes;
        }
    }
}

/// Most routes `zhub.topics` lists.
const MAX_TOPIC_ROUTES: usize = 10_000;

/// How often, at most, the bus thread rebuilds its [`TopicRoutes`] while interest changes.
const TOPICS_INTERVAL: Duration = Duration::from_millis(100);

/// The topic's length when a frame is a bus message the broker will forward.
fn topic_len(frame: &[u8]) -> Option<usize> {
    let topic = bus::topic_of(frame).ok()?;
    let header = &frame[topic.len() + 1..];
    (header.len() >= bus::HEADER_LEN && header[0] == bus::HEADER_VERSION).then_some(topic.len())
}

/// Bounds what peers of the bus sockets may send, before they are bound (a socket's
/// listener takes its options when it binds): a publisher frame longer than `max_frame`, or a
/// subscription longer than a topic allows, makes the socket drop that connection.
pub(crate) fn limit(
    xsub: &zmq::Socket,
    xpub: &zmq::Socket,
    deliver: &zmq::Socket,
    max_frame: i64,
) -> Result<(), zmq::Error> {
    xsub.set_maxmsgsize(max_frame)?;
    xpub.set_maxmsgsize(MAX_SUBSCRIPTION)?;
    // A peer broker's interest carries a zone path besides.
    deliver.set_maxmsgsize(MAX_SUBSCRIPTION + delivery::MAX_PATH_LEN as i64)
}

/// Prepares the bus sockets, once bound, for [`run`].
pub(crate) fn setup(xsub: &zmq::Socket) -> Result<(), zmq::Error> {
    // Subscribe to everything: every publisher sends all its messages to the broker, and
    // only the broker filters.
    xsub.send(&[1u8][..], 0)
}

/// The bus thread's sockets.
pub(crate) struct BusSockets {
    /// Publishers' side, bound.
    pub(crate) xsub: zmq::Socket,
    /// Plain subscribers' side, bound.
    pub(crate) xpub: zmq::Socket,
    /// zhub subscribers' side, bound.
    pub(crate) deliver: zmq::Socket,
    /// Messages the storage thread publishes again (PULL, bound at [`REPUBLISH_ENDPOINT`]).
    pub(crate) republish: zmq::Socket,
    /// Copies of journaled messages to the storage thread.
    pub(crate) tap: JournalTap,
    /// The fault rules of `zhub.fault`, and the messages they hold back.
    pub(crate) faults: FaultGate,
    /// The links to peer brokers' deliver endpoints.
    pub(crate) peers: peers::PeerLinks,
    /// This broker's zone.
    pub(crate) zone: String,
    /// Where the bus publishes its topic routes for `zhub.topics`.
    pub(crate) topics: Arc<TopicRoutes>,
    /// Permissions under an auth file: publishes and deliveries are checked against them.
    pub(crate) auth: Option<Gate>,
}

/// The loop's state besides its sockets.
struct Plane {
    interest: Interest,
    /// Distinct prefixes plain subscribers hold: while there are none, nothing goes out
    /// unaddressed.
    plain_prefixes: u64,
    /// Scratch: the subscribers matching the message at hand.
    matching: Vec<u64>,
    /// Scratch: the queue group members matching it, grouped by queue group.
    members: Vec<Member>,
    /// Subscribers whose drops no envelope has reported yet.
    owed: Vec<u64>,
    last_notice: Instant,
    /// Scratch: the addressed copy being sent.
    copy: RawMessage,
    c: BusStats,
    /// Peer faults by reason, for sparse logging.
    faults: Sparse,
    /// Permissions, under an auth file.
    auth: Option<Gate>,
    /// Scratch: the user of the message at hand.
    user: String,
    /// Messages from peers already taken, to drop second copies.
    seen: dedup::Seen,
    /// Scratch: the envelope and zone path of a copy for a peer.
    head: Vec<u8>,
}

/// Where a message may go among peer brokers.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// To none: the storage thread published it again, and it went to peers the first time.
    Nowhere,
    /// Along this route.
    Route(&'a Route),
}

/// The proxy loop. Returns when a message arrives on `control`.
pub(crate) fn run(
    sockets: BusSockets,
    control: zmq::Socket,
    counters: Arc<BusCounters>,
) -> Result<(), zmq::Error> {
    let BusSockets {
        mut xsub,
        mut xpub,
        mut deliver,
        mut republish,
        mut tap,
        mut faults,
        mut peers,
        auth,
        zone,
        topics,
    } = sockets;
    // When the topic routes were last rebuilt, and whether interest changed since.
    let (mut topics_built, mut topics_stale) = (Instant::now(), false);
    let xsub_raw = xsub.as_mut_ptr();
    let out = Outputs {
        plain: xpub.as_mut_ptr(),
        deliver: deliver.as_mut_ptr(),
    };
    let republish_raw = republish.as_mut_ptr();
    set_nodrop(out.plain, true)?;
    set_nodrop(out.deliver, true)?;
    let mut local = Route::default();
    local.set_local(&zone);
    let mut from_peer = Route::default();
    let mut plane = Plane {
        interest: Interest::new(&zone),
        plain_prefixes: 0,
        matching: Vec::new(),
        members: Vec::new(),
        owed: Vec::new(),
        last_notice: Instant::now(),
        copy: RawMessage::new(),
        c: BusStats::default(),
        faults: Sparse::default(),
        auth,
        user: String::new(),
        seen: dedup::Seen::default(),
        head: Vec::new(),
    };
    let mut msg = RawMessage::new();
    loop {
        let mut items = vec![
            xsub.as_poll_item(zmq::POLLIN),
            xpub.as_poll_item(zmq::POLLIN),
            control.as_poll_item(zmq::POLLIN),
            republish.as_poll_item(zmq::POLLIN),
            deliver.as_poll_item(zmq::POLLIN),
            peers.control.as_poll_item(zmq::POLLIN),
        ];
        let fixed = items.len();
        items.extend(peers.links.iter().map(|l| l.sub.as_poll_item(zmq::POLLIN)));
        let notice = (!plane.owed.is_empty()).then(|| Instant::now() + NOTICE_INTERVAL);
        let rebuild = topics_stale.then(|| topics_built + TOPICS_INTERVAL);
        let wake = [notice, faults.next_due(), rebuild]
            .into_iter()
            .flatten()
            .min();
        let timeout = wake.map_or(-1, |at| crate::wake::poll_timeout(Instant::now(), at));
        match zmq::poll(&mut items, timeout) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        let readable: Vec<bool> = items.iter().map(|i| i.is_readable()).collect();
        drop(items);
        let [publishers, plain, control_in, republished, zhub_subs, peer_changes] =
            [0, 1, 2, 3, 4, 5].map(|i| readable[i]);
        if control_in {
            counters.store(&plane.c);
            return Ok(());
        }
        for (link, _) in peers
            .links
            .iter_mut()
            .zip(&readable[fixed..])
            .filter(|(_, &r)| r)
        {
            let input = link.sub.as_mut_ptr();
            plane.forward_from_peer(&mut msg, input, out, &mut tap, &zone, &mut from_peer)?;
        }
        if peer_changes {
            peers.read_control(&plane.interest)?;
            topics_stale = true;
        }
        if plain {
            plane.read_plain_subscriptions(&xpub)?;
        }
        if zhub_subs {
            plane.read_subscriptions(&deliver)?;
        }
        if plain || zhub_subs {
            let changes = plane.interest.take_changes();
            peers.declare(&plane.interest, &changes)?;
            topics_stale |= !changes.is_empty();
        }
        if topics_stale && topics_built.elapsed() >= TOPICS_INTERVAL {
            let routes = plane
                .interest
                .zones()
                .topic_routes(|id| peers.name_of(id), MAX_TOPIC_ROUTES);
            topics.set(routes);
            (topics_built, topics_stale) = (Instant::now(), false);
        }
        if publishers {
            let input = Input::Publishers(&mut tap, &mut faults, &local);
            plane.forward_batch(&mut msg, xsub_raw, out, input)?;
        }
        if republished {
            plane.forward_batch(&mut msg, republish_raw, out, Input::Republished)?;
        }
        if faults.next_due().is_some() {
            plane.release_held(&mut msg, &mut faults, out, &mut tap, &local)?;
        }
        if !plane.owed.is_empty() && plane.last_notice.elapsed() >= NOTICE_INTERVAL {
            plane.send_notices(out.deliver)?;
        }
        counters.store(&plane.c);
    }
}

/// Receives the next message waiting on `input` into `msg`; `false` when none is waiting.
fn next_message(msg: &mut RawMessage, input: *mut c_void) -> Result<bool, zmq::Error> {
    match msg.recv(input, zmq::DONTWAIT) {
        Ok(()) => Ok(true),
        Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `user` may receive messages on `topic`; no user, or one the file no longer holds,
/// receives nothing.
fn may_receive(gate: &mut Gate, user: Option<&str>, topic: &[u8]) -> bool {
    gate.permissions(user)
        .is_ok_and(|perms| actions::may_receive(perms, topic))
}

/// Where a batch of messages comes from.
enum Input<'a> {
    /// Publishers, with the journal tap, the fault rules and the route of local messages.
    Publishers(&'a mut JournalTap, &'a mut FaultGate, &'a Route),
    /// The storage thread, publishing journaled messages again.
    Republished,
}

/// The two XPUBs messages go out on.
#[derive(Clone, Copy)]
struct Outputs {
    /// Unaddressed, to plain subscribers.
    plain: *mut c_void,
    /// Addressed, to zhub subscribers.
    deliver: *mut c_void,
}

impl Plane {
    /// Logs a fault a peer can repeat at will, sparsely (see [`crate::ratelimit`]).
    fn fault(&mut self, reason: &'static str) {
        let (total, loud) = self.faults.hit(reason);
        if loud {
            warn!(total, "{reason}");
        } else {
            debug!(total, "{reason}");
        }
    }

    /// Drops the rest of the message at hand, counted as malformed and logged as `reason`.
    fn drop_rest(
        &mut self,
        msg: &mut RawMessage,
        input: *mut c_void,
        reason: &'static str,
    ) -> Result<(), zmq::Error> {
        while msg.more() {
            msg.recv(input, 0)?;
        }
        self.c.dropped.malformed += 1;
        self.fault(reason);
        Ok(())
    }

    /// Forwards up to [`BATCH`] waiting messages from `input`: publishers' messages are
    /// checked against permissions, judged by the fault rules, given to the journal tap and
    /// sent on to peers; messages the storage thread published again go to subscribers only.
    fn forward_batch(
        &mut self,
        msg: &mut RawMessage,
        input: *mut c_void,
        out: Outputs,
        from: Input<'_>,
    ) -> Result<(), zmq::Error> {
        let (mut tap, mut faults, via) = match from {
            Input::Publishers(tap, faults, route) => (Some(tap), Some(faults), Via::Route(route)),
            Input::Republished => (None, None, Via::Nowhere),
        };
        for _ in 0..BATCH {
            if !next_message(msg, input)? {
                return Ok(());
            }
            if msg.more() {
                // Bus messages are single frames: drop every part of this one.
                self.drop_rest(msg, input, "multipart bus message dropped")?;
                continue;
            }
            let len = msg.data().len() as u64;
            let Some(topic_len) = topic_len(msg.data()) else {
                self.c.dropped.malformed += 1;
                self.fault("malformed bus frame dropped");
                continue;
            };
            self.c.messages_in += 1;
            self.c.bytes_in += len;
            // Publishers' messages only: what the storage thread republishes is the broker's.
            if tap.is_some() && !self.may_publish(msg, topic_len) {
                self.c.dropped.forbidden += 1;
                self.fault("publish refused by permissions");
                continue;
            }
            if let Some(gate) = faults.as_deref_mut().filter(|g| g.has_rules()) {
                match gate.judge(&msg.data()[..topic_len], Instant::now()) {
                    Verdict::Pass => {}
                    Verdict::Drop => {
                        self.c.dropped.fault += 1;
                        continue;
                    }
                    Verdict::Hold(due) => {
                        if gate.hold(due, msg.data()) {
                            self.c.fault_delayed += 1;
                        } else {
                            self.c.dropped.fault += 1;
                            self.fault("fault rules hold too many messages: one dropped");
                        }
                        self.c.fault_held = gate.held() as u64;
                        continue;
                    }
                }
            }
            self.deliver(msg, topic_len, via, out, tap.as_deref_mut())?;
        }
        Ok(())
    }

    /// Delivers up to [`BATCH`] messages one peer broker sent: addressed copies carrying the
    /// zones they have been in (see [`zhub_protocol::delivery`]), whose bus frames go to this
    /// broker's own subscribers and on to the peers their route allows
    /// ([`crate::interest::zones`]), unless a copy came by another route first. A peer's drop
    /// count for this broker is counted as dropped here.
    fn forward_from_peer(
        &mut self,
        msg: &mut RawMessage,
        input: *mut c_void,
        out: Outputs,
        tap: &mut JournalTap,
        zone: &str,
        route: &mut Route,
    ) -> Result<(), zmq::Error> {
        for _ in 0..BATCH {
            if !next_message(msg, input)? {
                return Ok(());
            }
            let Ok(envelope) = delivery::decode_envelope(msg.data()) else {
                self.drop_rest(msg, input, "malformed message from a peer broker dropped")?;
                continue;
            };
            self.c.dropped.peer += envelope.missed;
            if msg.data().len() == ENVELOPE_LEN && !msg.more() {
                // A notice: the peer's drop count alone.
                continue;
            }
            let more = msg.more();
            let Ok((came, frame)) = delivery::read_path(&msg.data()[ENVELOPE_LEN..]) else {
                self.drop_rest(msg, input, "malformed message from a peer broker dropped")?;
                continue;
            };
            // Taken unless it has been in this zone before; then only read to its end.
            let taken = route.set_from_peer(zone, &came);
            let inline = (!frame.is_empty()).then(|| frame.to_vec());
            // The bus frame follows inline, or in a second and last frame.
            match (inline, more) {
                (Some(frame), false) => msg.fill(&frame, &[])?,
                (None, true) => {
                    msg.recv(input, 0)?;
                    if msg.more() {
                        self.drop_rest(msg, input, "malformed message from a peer broker dropped")?;
                        continue;
                    }
                }
                (Some(_), true) => {
                    self.drop_rest(msg, input, "malformed message from a peer broker dropped")?;
                    continue;
                }
                (None, false) => {
                    self.c.dropped.malformed += 1;
                    self.fault("message from a peer broker without a bus frame dropped");
                    continue;
                }
            }
            let Some(topic_len) = topic_len(msg.data()) else {
                self.c.dropped.malformed += 1;
                self.fault("malformed bus frame from a peer broker dropped");
                continue;
            };
            if !taken {
                self.c.dropped.duplicate += 1;
                self.fault("message from a peer broker that had been in this zone dropped");
                continue;
            }
            let first = bus::decode(msg.data()).is_ok_and(|frame| {
                self.seen.first(
                    frame.header.publisher,
                    frame.topic.as_bytes(),
                    frame.header.seq,
                )
            });
            if !first {
                self.c.dropped.duplicate += 1;
                continue;
            }
            self.c.messages_in += 1;
            self.c.from_peers += 1;
            self.c.bytes_in += msg.data().len() as u64;
            self.deliver(msg, topic_len, Via::Route(route), out, Some(tap))?;
        }
        Ok(())
    }

    /// Whether the message's publisher may publish on its topic (always, without auth).
    fn may_publish(&mut self, msg: &mut RawMessage, topic_len: usize) -> bool {
        let Some(gate) = &mut self.auth else {
            return true;
        };
        let user = msg.user_into(&mut self.user).then_some(self.user.as_str());
        match gate.permissions(user) {
            Ok(perms) => actions::may_publish(perms, &msg.data()[..topic_len]),
            Err(_) => false,
        }
    }

    /// Delivers the held messages now due, as if just published (journaled then too).
    fn release_held(
        &mut self,
        msg: &mut RawMessage,
        faults: &mut FaultGate,
        out: Outputs,
        tap: &mut JournalTap,
        local: &Route,
    ) -> Result<(), zmq::Error> {
        let now = Instant::now();
        while let Some(held) = faults.pop_due(now) {
            msg.fill(&held.frame, &[])?;
            // Checked on arrival; the frame is unchanged.
            let Some(topic_len) = topic_len(msg.data()) else {
                continue;
            };
            self.deliver(msg, topic_len, Via::Route(local), out, Some(tap))?;
        }
        self.c.fault_held = faults.held() as u64;
        Ok(())
    }

    /// Hands one well-formed message on: to the journal tap, the matching subscribers (and
    /// peer brokers, where `via` allows), one member of each matching queue group, and the
    /// plain subscribers.
    fn deliver(
        &mut self,
        msg: &mut RawMessage,
        topic_len: usize,
        via: Via<'_>,
        out: Outputs,
        tap: Option<&mut JournalTap>,
    ) -> Result<(), zmq::Error> {
        let len = msg.data().len() as u64;
        if let Some(tap) = tap {
            tap.tap(msg.data(), topic_len)?;
        }
        let mut subscribers = self.interest.matching(
            &msg.data()[..topic_len],
            &mut self.matching,
            &mut self.members,
        );
        if let Some(gate) = &mut self.auth {
            let topic = &msg.data()[..topic_len];
            let interest = &self.interest;
            let mut at = 0;
            let before = subscribers;
            self.matching.retain(|&id| {
                let keep = may_receive(gate, interest.user_of(id), topic);
                if at < before && !keep {
                    subscribers -= 1;
                }
                at += 1;
                keep
            });
            self.members
                .retain(|&(_, id)| may_receive(gate, interest.user_of(id), topic));
        }
        for at in 0..self.matching.len() {
            let id = self.matching[at];
            // zhub subscribers first, then peer brokers, where the route allows.
            let path = if at < subscribers {
                None
            } else {
                let Via::Route(route) = via else {
                    break;
                };
                match self.interest.peer_zone(id) {
                    Some(to) if route.allows(self.interest.zones().zone(), to) => {
                        Some(route.path())
                    }
                    _ => continue,
                }
            };
            if !self.send_copy(id, msg, out.deliver, path)? {
                self.missed(id);
            }
        }
        if !self.members.is_empty() {
            self.deliver_to_queues(msg, out.deliver)?;
        }
        if self.plain_prefixes > 0 {
            self.send_plain(msg, out.plain)?;
        }
        self.c.messages_out += 1;
        self.c.bytes_out += len;
        Ok(())
    }

    /// Sends each matching queue group's copy of `msg` to one of its members: the next in
    /// turn, or the one after when that one's queue is full, and so round the group.
    fn deliver_to_queues(
        &mut self,
        msg: &mut RawMessage,
        xpub: *mut c_void,
    ) -> Result<(), zmq::Error> {
        let mut start = 0;
        while start < self.members.len() {
            let group = self.members[start].0;
            let len = self.members[start..]
                .iter()
                .take_while(|m| m.0 == group)
                .count();
            let first = self.interest.turn(group, len);
            let mut sent = false;
            for step in 0..len {
                let id = self.members[start + (first + step) % len].1;
                if self.send_copy(id, msg, xpub, None)? {
                    sent = true;
                    break;
                }
            }
            if !sent {
                self.missed(self.members[start + first].1);
            }
            start += len;
        }
        Ok(())
    }

    /// Sends subscriber `id` its addressed copy of `msg`, with the zone `path` after the
    /// envelope for a peer broker: false when its queue is full (the caller counts the drop).
    /// A small message is copied behind the envelope, one frame; a large one follows the
    /// envelope in a frame of its own, shared with the other subscribers.
    fn send_copy(
        &mut self,
        id: u64,
        msg: &mut RawMessage,
        xpub: *mut c_void,
        path: Option<&[u8]>,
    ) -> Result<bool, zmq::Error> {
        let Some(subscriber) = self.interest.subscriber(id) else {
            return Ok(true);
        };
        delivery::set_missed(&mut subscriber.envelope, subscriber.missed);
        let head: &[u8] = match path {
            None => &subscriber.envelope,
            Some(path) => {
                self.head.clear();
                self.head.extend_from_slice(&subscriber.envelope);
                self.head.extend_from_slice(path);
                &self.head
            }
        };
        let sent = if msg.data().len() <= INLINE_MAX {
            self.copy.fill(head, msg.data())?;
            self.copy.send(xpub, zmq::DONTWAIT)
        } else {
            send_small(xpub, head, zmq::SNDMORE | zmq::DONTWAIT).and_then(|()| {
                // The envelope went, so the pipe takes the rest of the message.
                self.copy.share(msg)?;
                self.copy.send(xpub, 0)
            })
        };
        match sent {
            Ok(()) => {
                subscriber.missed = 0;
                Ok(true)
            }
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Counts a message dropped for subscriber `id`, to be reported to it.
    fn missed(&mut self, id: u64) {
        let Some(subscriber) = self.interest.subscriber(id) else {
            return;
        };
        if subscriber.missed == 0 {
            self.owed.push(id);
        }
        subscriber.missed += 1;
        self.c.dropped.slow_subscriber += 1;
        self.fault("slow subscriber missed a message");
    }

    /// Sends `msg` unaddressed to the plain ZeroMQ subscribers whose prefixes match it.
    fn send_plain(&mut self, msg: &mut RawMessage, xpub: *mut c_void) -> Result<(), zmq::Error> {
        match msg.send(xpub, zmq::DONTWAIT) {
            Ok(()) => Ok(()),
            Err(zmq::Error::EAGAIN) => {
                // A plain subscriber's queue is full: deliver to the others, count it.
                self.c.dropped.slow_plain_subscriber += 1;
                self.fault("slow plain subscriber missed a message");
                set_nodrop(xpub, false)?;
                let sent = msg.send(xpub, zmq::DONTWAIT);
                set_nodrop(xpub, true)?;
                sent
            }
            Err(e) => Err(e),
        }
    }

    /// Tells subscribers of drops that no delivered message has reported, with an envelope
    /// alone; those whose queues are still full are tried again later.
    fn send_notices(&mut self, xpub: *mut c_void) -> Result<(), zmq::Error> {
        self.last_notice = Instant::now();
        let mut owed = std::mem::take(&mut self.owed);
        let mut failed = None;
        owed.retain(|&id| {
            let Some(subscriber) = self.interest.subscriber(id) else {
                return false;
            };
            if subscriber.missed == 0 || failed.is_some() {
                return subscriber.missed > 0;
            }
            delivery::set_missed(&mut subscriber.envelope, subscriber.missed);
            match send_small(xpub, &subscriber.envelope, zmq::DONTWAIT) {
                Ok(()) => {
                    subscriber.missed = 0;
                    false
                }
                Err(zmq::Error::EAGAIN) => true,
                Err(e) => {
                    failed = Some(e);
                    true
                }
            }
        });
        self.owed = owed;
        failed.map_or(Ok(()), Err)
    }

    /// Takes up to [`BATCH`] waiting subscriptions from zhub subscribers (`0x01` subscribe /
    /// `0x00` unsubscribe, then an address or an interest).
    fn read_subscriptions(&mut self, deliver: &zmq::Socket) -> Result<(), zmq::Error> {
        for _ in 0..BATCH {
            let Some(mut frame) = self.next_subscription(deliver)? else {
                break;
            };
            let user = match self.auth {
                Some(_) => frame.gets("User-Id").map(str::to_owned),
                None => None,
            };
            match frame.split_first() {
                Some((1, data)) => {
                    if let Err(reason) = self.interest.subscribe(data) {
                        self.c.refused_subscriptions += 1;
                        self.fault(reason);
                    } else if self.auth.is_some() {
                        // The connection that sends the address is the one its copies go
                        // to: its user is what the subscriber may receive.
                        if let Ok(Subscription::Address(id)) = delivery::parse_subscription(data) {
                            self.interest.set_user(id, user.as_deref());
                        }
                    }
                }
                Some((_, data)) => self.interest.unsubscribe(data),
                None => {}
            }
        }
        self.c.subscriptions = self.interest.distinct_prefixes() as u64 + self.plain_prefixes;
        self.c.subscribers = self.interest.subscribers() as u64;
        Ok(())
    }

    /// Takes up to [`BATCH`] waiting subscription changes from plain subscribers. ZeroMQ has
    /// applied them already and passes on only the first subscription to a prefix and the last
    /// unsubscription, so the running sum is the number of distinct prefixes held.
    fn read_plain_subscriptions(&mut self, xpub: &zmq::Socket) -> Result<(), zmq::Error> {
        for _ in 0..BATCH {
            let Some(frame) = self.next_subscription(xpub)? else {
                break;
            };
            match frame.split_first() {
                Some((1, prefix)) => {
                    self.plain_prefixes += 1;
                    self.interest.plain(prefix, true);
                }
                Some((_, prefix)) => {
                    self.plain_prefixes = self.plain_prefixes.saturating_sub(1);
                    self.interest.plain(prefix, false);
                }
                None => {}
            }
        }
        self.c.subscriptions = self.interest.distinct_prefixes() as u64 + self.plain_prefixes;
        Ok(())
    }

    /// The next subscription change waiting on an XPUB, counting and skipping anything else a
    /// subscriber sent up (subscribers have nothing to send).
    fn next_subscription(
        &mut self,
        xpub: &zmq::Socket,
    ) -> Result<Option<zmq::Message>, zmq::Error> {
        loop {
            // A `Message`, not bytes: it keeps the connection's `User-Id`.
            let frame = match xpub.recv_msg(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(None),
                Err(e) => return Err(e),
            };
            if matches!(frame.first(), Some(0 | 1)) {
                return Ok(Some(frame));
            }
            self.c.dropped.malformed += 1;
            self.fault("message from a subscriber dropped");
        }
    }
}
