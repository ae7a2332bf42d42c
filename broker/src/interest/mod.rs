//! Who wants which topics: the bus thread's table of zhub subscribers, their filters and queue
//! groups, and the matching of a topic to the subscribers it goes to (see
//! [`zhub_protocol::delivery`]).
//!
//! Pure state, fed with the subscriptions that come in on the deliver endpoint. ZeroMQ has
//! already applied each one to its own connection there, where only the address matters (it
//! is what an envelope matches); the filters are matched here ([`crate::filters`]).
//!
//! Peer brokers subscribe here too, with peer interests that carry zone paths ([`zones`]).
//! The table also keeps the filters its own subscribers hold (zhub and plain alike), counted,
//! and notes each filter whose declaration to peers may have changed
//! ([`Interest::take_changes`]), for the bus thread to declare to its peers in turn.
//!
//! Everything here comes from the network, so it is bounded: a filter is at most
//! [`MAX_TOPIC_LEN`] bytes (the XPUB cuts off a peer sending a longer subscription), a zhub
//! subscriber holds at most [`MAX_PREFIXES_PER_SUBSCRIBER`] filters and memberships together
//! and there are at most [`MAX_SUBSCRIBERS`] subscribers. Maps use the standard library's
//! keyed hash, since a peer chooses the keys.

pub(crate) mod zones;

use std::collections::{HashMap, HashSet};

use zhub_protocol::bus::MAX_TOPIC_LEN;
use zhub_protocol::delivery::{self, Subscription, ZonePath, ENVELOPE_LEN};
use zhub_protocol::subject;

use crate::filters::Filters;
use zones::Zones;

/// Most filters and queue memberships one zhub subscriber may hold; more are refused.
pub(crate) const MAX_PREFIXES_PER_SUBSCRIBER: usize = 10_000;
/// Most filters one peer broker may declare: everything its zone and the zones behind it
/// want.
pub(crate) const MAX_FILTERS_PER_PEER: usize = 1_000_000;
/// Most zhub subscribers at once; more addresses are refused.
pub(crate) const MAX_SUBSCRIBERS: usize = 100_000;

/// One zhub subscriber.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// The envelope its copies go out with; its last eight bytes are rewritten with the drop
    /// count before each send.
    pub(crate) envelope: [u8; ENVELOPE_LEN],
    /// Messages dropped for it since the last envelope it was sent.
    pub(crate) missed: u64,
    /// What it subscribed to, as the bytes after its address (the mark, then the filter or
    /// the queue membership), to remove them all when it goes.
    held: HashSet<Box<[u8]>>,
    /// The user its connection logged in as (under an auth file): what it may receive.
    user: Option<Box<str>>,
    /// A peer broker's zone, once it has declared an interest.
    zone: Option<Box<str>>,
}

/// A member of a queue group: the group's number and the subscriber's id. Sorted, a topic's
/// matching members come grouped by queue group.
pub(crate) type Member = (u32, u64);

/// Why a subscription was not taken, for the log.
pub(crate) type Refused = &'static str;

/// The queue groups in use, numbered so that members are small copyable pairs.
#[derive(Debug, Default)]
struct Queues {
    numbers: HashMap<Box<[u8]>, u32>,
    /// Per number: memberships held, and whose turn it is (a counter, taken modulo the
    /// members matching each message).
    slots: Vec<QueueSlot>,
    free: Vec<u32>,
}

#[derive(Debug, Default)]
struct QueueSlot {
    memberships: usize,
    turn: u64,
}

impl Queues {
    fn join(&mut self, name: &[u8]) -> u32 {
        let number = match self.numbers.get(name) {
            Some(&n) => n,
            None => {
                let n = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(QueueSlot::default());
                    (self.slots.len() - 1) as u32
                });
                self.numbers.insert(name.into(), n);
                n
            }
        };
        self.slots[number as usize].memberships += 1;
        number
    }

    fn leave(&mut self, name: &[u8]) -> Option<u32> {
        let number = *self.numbers.get(name)?;
        let slot = &mut self.slots[number as usize];
        slot.memberships -= 1;
        if slot.memberships == 0 {
            *slot = QueueSlot::default();
            self.numbers.remove(name);
            self.free.push(number);
        }
        Some(number)
    }
}

/// What a subscription holding a filter is.
#[derive(Clone, Copy)]
enum Kind<'a> {
    /// A zhub subscriber's own interest.
    Direct,
    /// A membership of this queue group.
    Queue(&'a [u8]),
    /// A peer broker's interest, through the zones of this path.
    Peer(ZonePath<'a>),
}

/// The table. See the module docs.
#[derive(Debug)]
pub(crate) struct Interest {
    subscribers: HashMap<u64, Subscriber>,
    /// Filters of plain interests, held by subscriber id.
    direct: Filters<u64>,
    /// Filters of queue memberships, held by (group, subscriber).
    queued: Filters<Member>,
    queues: Queues,
    /// Filters of peer brokers' interests, held by subscriber id.
    peers: Filters<u64>,
    /// What this broker's own subscribers (interests, queue memberships and plain prefixes)
    /// and its peers hold, for the declarations to peers.
    zones: Zones,
}

impl Interest {
    /// An empty table for a broker of `zone`.
    pub(crate) fn new(zone: &str) -> Self {
        Interest {
            subscribers: HashMap::new(),
            direct: Filters::default(),
            queued: Filters::default(),
            queues: Queues::default(),
            peers: Filters::default(),
            zones: Zones::new(zone),
        }
    }

    /// Takes a subscription (the bytes after ZeroMQ's subscribe byte).
    pub(crate) fn subscribe(&mut self, data: &[u8]) -> Result<(), Refused> {
        let (subscriber, filter, kind) = match delivery::parse_subscription(data) {
            Err(_) => return Err("malformed addressed subscription"),
            Ok(Subscription::Address(id)) => {
                if !self.subscribers.contains_key(&id) {
                    if self.subscribers.len() >= MAX_SUBSCRIBERS {
                        return Err("too many subscribers");
                    }
                    self.subscribers.insert(
                        id,
                        Subscriber {
                            envelope: delivery::envelope(id, 0),
                            missed: 0,
                            held: HashSet::new(),
                            user: None,
                            zone: None,
                        },
                    );
                }
                return Ok(());
            }
            // Only zhub subscribers connect to the deliver endpoint, and every message sent
            // there is addressed: a plain subscription matches nothing useful.
            Ok(Subscription::Plain(_)) => {
                return Err("plain subscription on the deliver endpoint");
            }
            Ok(Subscription::Interest { subscriber, prefix }) => (subscriber, prefix, Kind::Direct),
            Ok(Subscription::Queue {
                subscriber,
                group,
                filter,
            }) => (subscriber, filter, Kind::Queue(group)),
            Ok(Subscription::Peer {
                subscriber,
                path,
                filter,
            }) => {
                if !self.zones.accepts(&path) {
                    return Err("peer interest that came round to this zone");
                }
                (subscriber, filter, Kind::Peer(path))
            }
        };
        if filter.len() > MAX_TOPIC_LEN {
            return Err("subscription filter too long");
        }
        if std::str::from_utf8(filter).map_or(true, |f| subject::check_filter(f).is_err()) {
            return Err("malformed subscription filter");
        }
        let Some(slot) = self.subscribers.get_mut(&subscriber) else {
            return Err("interest from a subscriber with no address");
        };
        let held = &data[delivery::ADDRESS_LEN..];
        if slot.held.contains(held) {
            return Ok(());
        }
        match kind {
            Kind::Peer(_) if slot.held.len() >= MAX_FILTERS_PER_PEER => {
                return Err("too many filters for one peer broker");
            }
            Kind::Direct | Kind::Queue(_) if slot.held.len() >= MAX_PREFIXES_PER_SUBSCRIBER => {
                return Err("too many filters for one subscriber");
            }
            _ => {}
        }
        slot.held.insert(held.into());
        match kind {
            Kind::Direct => {
                self.direct.add(filter, subscriber);
                self.zones.own(filter, true);
            }
            Kind::Queue(group) => {
                let number = self.queues.join(group);
                self.queued.add(filter, (number, subscriber));
                self.zones.own(filter, true);
            }
            Kind::Peer(path) => {
                let zone = String::from_utf8_lossy(path.first());
                if slot.zone.as_deref() != Some(&*zone) {
                    slot.zone = Some(zone.into());
                }
                if self.zones.learn(filter, subscriber, &path) {
                    self.peers.add(filter, subscriber);
                }
            }
        }
        Ok(())
    }

    /// Takes a plain subscriber's first subscription to `prefix`, or the last unsubscription
    /// (ZeroMQ passes on only those), for the filters declared to peers.
    pub(crate) fn plain(&mut self, prefix: &[u8], subscribed: bool) {
        self.zones.own(prefix, subscribed);
    }

    /// The filters whose declarations to peers may have changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Vec<Box<[u8]>> {
        self.zones.take_dirty()
    }

    /// What is held here and by peers, for the declarations to peers.
    pub(crate) fn zones(&self) -> &Zones {
        &self.zones
    }

    /// The zone of peer broker `id`; `None` for a subscriber that is not a peer broker.
    pub(crate) fn peer_zone(&self, id: u64) -> Option<&str> {
        self.subscribers.get(&id).and_then(|s| s.zone.as_deref())
    }

    /// Takes an unsubscription: from a subscriber, or from the XPUB for each subscription of a
    /// connection that has gone.
    pub(crate) fn unsubscribe(&mut self, data: &[u8]) {
        let Ok(subscription) = delivery::parse_subscription(data) else {
            return;
        };
        let subscriber = match subscription {
            Subscription::Plain(_) => return,
            Subscription::Address(id) => {
                if let Some(slot) = self.subscribers.remove(&id) {
                    for held in slot.held {
                        let mut data = delivery::address(id).to_vec();
                        data.extend_from_slice(&held);
                        self.forget(&data, id);
                    }
                }
                return;
            }
            Subscription::Interest { subscriber, .. }
            | Subscription::Queue { subscriber, .. }
            | Subscription::Peer { subscriber, .. } => subscriber,
        };
        let Some(slot) = self.subscribers.get_mut(&subscriber) else {
            return;
        };
        let held = &data[delivery::ADDRESS_LEN..];
        if slot.held.remove(held) {
            self.forget(data, subscriber);
        }
    }

    /// Removes one subscription that was taken (its whole bytes, address included).
    fn forget(&mut self, data: &[u8], id: u64) {
        match delivery::parse_subscription(data) {
            Ok(Subscription::Interest { prefix, .. }) => {
                self.direct.remove(prefix, id);
                self.zones.own(prefix, false);
            }
            Ok(Subscription::Queue { group, filter, .. }) => {
                if let Some(number) = self.queues.leave(group) {
                    self.queued.remove(filter, (number, id));
                }
                self.zones.own(filter, false);
            }
            Ok(Subscription::Peer { path, filter, .. }) => {
                let last_path = self.zones.unlearn(filter, id, &path);
                if last_path {
                    self.peers.remove(filter, id);
                }
            }
            _ => {}
        }
    }

    /// Puts in `direct` every zhub subscriber with an interest matching `topic`, each once,
    /// then every peer broker with one, each once (the caller asks [`Interest::peer_zone`]
    /// where the message may go among them), and in `queued` every queue group member with a
    /// membership matching it, each once, sorted so that each group's members are together.
    /// Returns how many of `direct` are zhub subscribers, in front of the peers.
    pub(crate) fn matching(
        &self,
        topic: &[u8],
        direct: &mut Vec<u64>,
        queued: &mut Vec<Member>,
    ) -> usize {
        direct.clear();
        queued.clear();
        self.direct.matching(topic, direct);
        let subscribers = direct.len();
        if !self.peers.is_empty() {
            self.peers.matching(topic, direct);
        }
        if !self.queued.is_empty() {
            self.queued.matching(topic, queued);
            queued.sort_unstable();
        }
        subscribers
    }

    /// Whose turn it is in queue group `group` among `members` matching members: an index
    /// below `members`, advancing with each call so that the members take turns.
    pub(crate) fn turn(&mut self, group: u32, members: usize) -> usize {
        let slot = &mut self.queues.slots[group as usize];
        let at = (slot.turn % members.max(1) as u64) as usize;
        slot.turn = slot.turn.wrapping_add(1);
        at
    }

    /// The zhub subscriber with this id.
    pub(crate) fn subscriber(&mut self, id: u64) -> Option<&mut Subscriber> {
        self.subscribers.get_mut(&id)
    }

    /// Records the user whose connection sent subscriber `id`'s address.
    pub(crate) fn set_user(&mut self, id: u64, user: Option<&str>) {
        if let Some(subscriber) = self.subscribers.get_mut(&id) {
            subscriber.user = user.map(Into::into);
        }
    }

    /// The user subscriber `id` logged in as, if known.
    pub(crate) fn user_of(&self, id: u64) -> Option<&str> {
        self.subscribers.get(&id).and_then(|s| s.user.as_deref())
    }

    /// zhub subscribers at present.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Distinct filters held by zhub subscribers, plain interests and queue memberships, and
    /// by peer brokers.
    pub(crate) fn distinct_prefixes(&self) -> usize {
        self.direct.distinct() + self.queued.distinct() + self.peers.distinct()
    }

    /// Queue groups with at least one member.
    #[cfg(test)]
    pub(crate) fn queue_groups(&self) -> usize {
        self.queues.numbers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhub_protocol::delivery::{address, interest, peer_interest, queue_interest, write_path};

    fn matching(table: &Interest, topic: &str) -> Vec<u64> {
        let (mut out, mut queued) = (Vec::new(), Vec::new());
        table.matching(topic.as_bytes(), &mut out, &mut queued);
        out.sort_unstable();
        out
    }

    fn members(table: &Interest, topic: &str) -> Vec<Member> {
        let (mut out, mut queued) = (Vec::new(), Vec::new());
        table.matching(topic.as_bytes(), &mut out, &mut queued);
        queued
    }

    #[test]
    fn topics_reach_each_subscriber_with_a_prefix_of_them_once() {
        let mut t = Interest::new("z");
        for id in [1, 2, 3] {
            assert_eq!(t.subscribe(&address(id)), Ok(()));
        }
        assert_eq!(t.subscribe(&interest(1, b"a")), Ok(()));
        assert_eq!(t.subscribe(&interest(1, b"ab")), Ok(()));
        assert_eq!(t.subscribe(&interest(1, b"ab")), Ok(()), "repeat ignored");
        t.subscribe(&interest(2, b"ab")).unwrap();
        t.subscribe(&interest(3, b"")).unwrap();
        assert_eq!(matching(&t, "abc"), vec![1, 2, 3]);
        assert_eq!(matching(&t, "a"), vec![1, 3]);
        assert_eq!(matching(&t, "b"), vec![3]);
        assert_eq!(t.distinct_prefixes(), 3);

        t.unsubscribe(&interest(1, b"a"));
        assert_eq!(matching(&t, "a"), vec![3]);
        assert_eq!(matching(&t, "abc"), vec![1, 2, 3]);
        // A connection that goes: the XPUB passes on its address's unsubscription.
        t.unsubscribe(&address(1));
        assert_eq!(matching(&t, "abc"), vec![2, 3]);
        t.unsubscribe(&interest(1, b"ab"));
        t.unsubscribe(&address(2));
        t.unsubscribe(&address(3));
        assert_eq!(matching(&t, "abc"), Vec::<u64>::new());
        assert_eq!(t.distinct_prefixes(), 0);
        assert_eq!(t.subscribers(), 0);
    }

    #[test]
    fn subject_patterns_reach_their_subscribers() {
        let mut t = Interest::new("z");
        for id in [1, 2] {
            t.subscribe(&address(id)).unwrap();
        }
        t.subscribe(&interest(1, b"orders.*.new")).unwrap();
        t.subscribe(&interest(2, b"orders.>")).unwrap();
        assert_eq!(matching(&t, "orders.eu.new"), vec![1, 2]);
        assert_eq!(matching(&t, "orders.eu.old"), vec![2]);
        assert_eq!(matching(&t, "orders"), Vec::<u64>::new());
        assert!(
            t.subscribe(&interest(1, b"a.>.b")).is_err(),
            "'>' must come last"
        );
        t.unsubscribe(&address(1));
        assert_eq!(matching(&t, "orders.eu.new"), vec![2]);
    }

    #[test]
    fn queue_members_are_grouped_and_take_turns() {
        let mut t = Interest::new("z");
        for id in [1, 2, 3, 4] {
            t.subscribe(&address(id)).unwrap();
        }
        t.subscribe(&queue_interest(1, b"w", b"jobs.")).unwrap();
        t.subscribe(&queue_interest(1, b"w", b"jobs.>")).unwrap();
        t.subscribe(&queue_interest(2, b"w", b"jobs.")).unwrap();
        t.subscribe(&queue_interest(3, b"other", b"jobs.*"))
            .unwrap();
        t.subscribe(&interest(4, b"jobs.")).unwrap();
        assert_eq!(matching(&t, "jobs.a"), vec![4], "plain interests apart");
        let got = members(&t, "jobs.a");
        assert_eq!(
            got.len(),
            3,
            "member 1 once though two filters match: {got:?}"
        );
        let w = got[0].0;
        assert_eq!(got.iter().filter(|m| m.0 == w).count(), 2);
        assert_eq!(t.queue_groups(), 2);
        let turns: Vec<usize> = (0..4).map(|_| t.turn(w, 2)).collect();
        assert_eq!(turns, vec![0, 1, 0, 1]);

        t.unsubscribe(&address(1));
        let got = members(&t, "jobs.a");
        assert_eq!(got.iter().filter(|m| m.1 == 1).count(), 0);
        t.unsubscribe(&queue_interest(2, b"w", b"jobs."));
        assert_eq!(t.queue_groups(), 1, "an empty group is forgotten");
        t.unsubscribe(&address(3));
        assert_eq!(t.queue_groups(), 0);
        assert!(members(&t, "jobs.a").is_empty());
    }

    #[test]
    fn own_filters_are_noted_once_and_peers_matched_once() {
        let mut t = Interest::new("z");
        for id in [1, 2, 9] {
            t.subscribe(&address(id)).unwrap();
        }
        t.subscribe(&interest(1, b"orders.")).unwrap();
        t.subscribe(&interest(2, b"orders.")).unwrap();
        t.subscribe(&queue_interest(2, b"w", b"jobs.>")).unwrap();
        t.plain(b"logs.", true);
        let filters =
            |v: Vec<Box<[u8]>>| -> Vec<Vec<u8>> { v.iter().map(|f| f.to_vec()).collect() };
        assert_eq!(
            filters(t.take_changes()),
            vec![b"jobs.>".to_vec(), b"logs.".to_vec(), b"orders.".to_vec()],
            "each filter once, however many hold it"
        );
        let mut path = Vec::new();
        write_path(&mut path, ["y"]);
        t.subscribe(&peer_interest(9, &path, b"orders.")).unwrap();
        t.subscribe(&peer_interest(9, &path, b"orders.>")).unwrap();
        assert_eq!(t.peer_zone(9), Some("y"));
        assert_eq!(t.peer_zone(1), None);
        let (mut out, mut queued) = (Vec::new(), Vec::new());
        let subscribers = t.matching(b"orders.eu", &mut out, &mut queued);
        assert_eq!(
            (subscribers, out[2]),
            (2, 9),
            "subscribers first, then the peer"
        );
        out.sort_unstable();
        assert_eq!(
            out,
            vec![1, 2, 9],
            "the peer once, though two filters match"
        );
        let mut round = Vec::new();
        write_path(&mut round, ["y", "z"]);
        assert!(
            t.subscribe(&peer_interest(9, &round, b"x.")).is_err(),
            "an interest that went round to this zone"
        );

        t.take_changes();
        t.unsubscribe(&interest(1, b"orders."));
        assert!(t.take_changes().is_empty(), "still held by 2");
        t.unsubscribe(&address(2));
        t.plain(b"logs.", false);
        assert_eq!(
            filters(t.take_changes()),
            vec![b"jobs.>".to_vec(), b"logs.".to_vec(), b"orders.".to_vec()]
        );
        assert_eq!(t.zones().own_filters().count(), 0);
        t.unsubscribe(&address(9));
        t.matching(b"orders.eu", &mut out, &mut queued);
        assert!(out.is_empty());
        assert!(
            t.zones().filters().is_empty(),
            "the peer's interest went with it"
        );
    }

    #[test]
    fn hostile_subscriptions_are_bounded() {
        let mut t = Interest::new("z");
        assert!(t.subscribe(&interest(9, b"no-address")).is_err());
        assert!(t.subscribe(b"plain.").is_err());
        t.subscribe(&address(9)).unwrap();
        let long = vec![b'a'; MAX_TOPIC_LEN + 1];
        assert!(t.subscribe(&interest(9, &long)).is_err());
        for i in 0..MAX_PREFIXES_PER_SUBSCRIBER {
            assert_eq!(
                t.subscribe(&interest(9, format!("p{i}").as_bytes())),
                Ok(())
            );
        }
        assert!(t.subscribe(&interest(9, b"one-more")).is_err());
        assert!(t.subscribe(&queue_interest(9, b"q", b"one-more")).is_err());
        assert!(t.subscribe(&[0, 1]).is_err());
        t.unsubscribe(&address(9));
        assert_eq!(t.distinct_prefixes(), 0);
    }
}
