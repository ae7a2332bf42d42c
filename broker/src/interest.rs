//! Who wants which topics: the bus thread's table of subscribers and their prefixes, and the
//! matching of a topic to the subscribers it goes to (see [`zhub_protocol::delivery`]).
//!
//! Pure state, decided here and acted on by the bus loop: a subscription comes in as bytes, and
//! [`Interest::subscribe`] / [`Interest::unsubscribe`] say what, if anything, the XPUB socket
//! must be told. zhub subscribers' prefixes stay in this table (the XPUB only knows their
//! addresses); plain ZeroMQ subscribers' prefixes go to the XPUB, as ZeroMQ would apply them.
//!
//! Everything here comes from the network, so it is bounded: a prefix is at most
//! [`MAX_TOPIC_LEN`] bytes (the XPUB cuts off a peer sending a longer subscription), a zhub
//! subscriber holds at most [`MAX_PREFIXES_PER_SUBSCRIBER`] prefixes, there are at most
//! [`MAX_SUBSCRIBERS`] zhub subscribers and [`MAX_PLAIN`] plain subscriptions. Maps are keyed
//! with the standard library's keyed hash, since a peer chooses the keys.

use std::collections::HashMap;

use zhub_protocol::bus::MAX_TOPIC_LEN;
use zhub_protocol::delivery::{self, Subscription, ENVELOPE_LEN};

/// Most prefixes one zhub subscriber may hold; more are refused.
pub(crate) const MAX_PREFIXES_PER_SUBSCRIBER: usize = 10_000;
/// Most zhub subscribers at once; more addresses are refused.
pub(crate) const MAX_SUBSCRIBERS: usize = 100_000;
/// Most plain subscriptions (with repeats) at once; more are refused.
pub(crate) const MAX_PLAIN: usize = 100_000;

/// One zhub subscriber.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// The envelope its copies go out with; its last eight bytes are rewritten with the drop
    /// count before each send.
    pub(crate) envelope: [u8; ENVELOPE_LEN],
    /// Messages dropped for it since the last envelope it was sent.
    pub(crate) missed: u64,
    /// Its prefixes, to remove them when it goes.
    prefixes: Vec<Box<[u8]>>,
}

/// What the bus loop must tell the XPUB socket about the pipe the subscription came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Apply {
    /// Nothing: the subscription stays in this table.
    Nothing,
    /// Subscribe (or unsubscribe) the pipe to these prefixes.
    Xpub(Vec<Vec<u8>>),
    /// The subscription was refused: nothing applied. The reason is for the log.
    Refused(&'static str),
}

/// The table. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    subscribers: HashMap<u64, Subscriber>,
    /// Prefix -> the zhub subscribers holding it.
    prefixes: HashMap<Box<[u8]>, Vec<u64>>,
    /// Distinct prefix lengths in `prefixes`, ascending, with how many prefixes have each:
    /// matching a topic looks up only these lengths, usually one or two.
    lengths: Vec<(usize, usize)>,
    /// Plain subscriptions by prefix, counting repeats from different pipes.
    plain: HashMap<Box<[u8]>, usize>,
    plain_total: usize,
}

impl Interest {
    /// Takes a subscription (the bytes after ZeroMQ's subscribe byte).
    pub(crate) fn subscribe(&mut self, data: &[u8]) -> Apply {
        match delivery::parse_subscription(data) {
            Err(_) => Apply::Refused("malformed addressed subscription"),
            Ok(Subscription::Address(id)) => {
                if !self.subscribers.contains_key(&id) {
                    if self.subscribers.len() >= MAX_SUBSCRIBERS {
                        return Apply::Refused("too many subscribers");
                    }
                    self.subscribers.insert(
                        id,
                        Subscriber {
                            envelope: delivery::envelope(id, 0),
                            missed: 0,
                            prefixes: Vec::new(),
                        },
                    );
                }
                Apply::Xpub(vec![data.to_vec()])
            }
            Ok(Subscription::Interest { subscriber, prefix }) => {
                if prefix.len() > MAX_TOPIC_LEN {
                    return Apply::Refused("subscription prefix too long");
                }
                let Some(slot) = self.subscribers.get_mut(&subscriber) else {
                    return Apply::Refused("interest from a subscriber with no address");
                };
                if slot.prefixes.iter().any(|p| **p == *prefix) {
                    return Apply::Nothing;
                }
                if slot.prefixes.len() >= MAX_PREFIXES_PER_SUBSCRIBER {
                    return Apply::Refused("too many prefixes for one subscriber");
                }
                slot.prefixes.push(prefix.into());
                let holders = self.prefixes.entry(prefix.into()).or_default();
                if holders.is_empty() {
                    count_length(&mut self.lengths, prefix.len(), true);
                }
                holders.push(subscriber);
                Apply::Nothing
            }
            Ok(Subscription::Plain(prefix)) => {
                if self.plain_total >= MAX_PLAIN {
                    return Apply::Refused("too many plain subscriptions");
                }
                self.plain_total += 1;
                *self.plain.entry(prefix.into()).or_default() += 1;
                Apply::Xpub(plain_prefixes(prefix))
            }
        }
    }

    /// Takes an unsubscription: from a subscriber, or from the XPUB for each subscription of a
    /// pipe that has gone.
    pub(crate) fn unsubscribe(&mut self, data: &[u8]) -> Apply {
        match delivery::parse_subscription(data) {
            Err(_) => Apply::Nothing,
            Ok(Subscription::Address(id)) => {
                if let Some(slot) = self.subscribers.remove(&id) {
                    for prefix in slot.prefixes {
                        self.forget(&prefix, id);
                    }
                }
                Apply::Xpub(vec![data.to_vec()])
            }
            Ok(Subscription::Interest { subscriber, prefix }) => {
                if let Some(slot) = self.subscribers.get_mut(&subscriber) {
                    if let Some(at) = slot.prefixes.iter().position(|p| **p == *prefix) {
                        slot.prefixes.swap_remove(at);
                        self.forget(prefix, subscriber);
                    }
                }
                Apply::Nothing
            }
            Ok(Subscription::Plain(prefix)) => match self.plain.get_mut(prefix) {
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        self.plain.remove(prefix);
                    }
                    self.plain_total -= 1;
                    Apply::Xpub(plain_prefixes(prefix))
                }
                // Refused when it came, so never applied.
                None => Apply::Nothing,
            },
        }
    }

    fn forget(&mut self, prefix: &[u8], id: u64) {
        if let Some(holders) = self.prefixes.get_mut(prefix) {
            holders.retain(|&h| h != id);
            if holders.is_empty() {
                self.prefixes.remove(prefix);
                count_length(&mut self.lengths, prefix.len(), false);
            }
        }
    }

    /// Puts in `out` every zhub subscriber with a prefix of `topic`, each once.
    pub(crate) fn matching(&self, topic: &[u8], out: &mut Vec<u64>) {
        out.clear();
        let mut lengths_hit = 0;
        for &(len, _) in &self.lengths {
            if len > topic.len() {
                break;
            }
            if let Some(holders) = self.prefixes.get(&topic[..len]) {
                out.extend_from_slice(holders);
                lengths_hit += 1;
            }
        }
        if lengths_hit > 1 {
            // A subscriber holding both `a` and `ab` gets `abc` once.
            out.sort_unstable();
            out.dedup();
        }
    }

    /// The zhub subscriber with this id.
    pub(crate) fn subscriber(&mut self, id: u64) -> Option<&mut Subscriber> {
        self.subscribers.get_mut(&id)
    }

    /// Whether any plain ZeroMQ subscription is held, so that bus frames must also go out
    /// unaddressed.
    pub(crate) fn has_plain(&self) -> bool {
        self.plain_total > 0
    }

    /// zhub subscribers at present.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Distinct prefixes held, by zhub and plain subscribers together.
    pub(crate) fn distinct_prefixes(&self) -> usize {
        self.prefixes.len() + self.plain.len()
    }
}

/// What a plain subscription to `prefix` applies to the XPUB. An empty prefix would also
/// match every addressed envelope (each starts with `0x00`), so it becomes the 255 one-byte
/// prefixes that a topic may start with.
fn plain_prefixes(prefix: &[u8]) -> Vec<Vec<u8>> {
    if prefix.is_empty() {
        (1..=u8::MAX).map(|b| vec![b]).collect()
    } else {
        vec![prefix.to_vec()]
    }
}

fn count_length(lengths: &mut Vec<(usize, usize)>, len: usize, add: bool) {
    match lengths.binary_search_by_key(&len, |&(l, _)| l) {
        Ok(at) if add => lengths[at].1 += 1,
        Ok(at) => {
            lengths[at].1 -= 1;
            if lengths[at].1 == 0 {
                lengths.remove(at);
            }
        }
        Err(at) if add => lengths.insert(at, (len, 1)),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhub_protocol::delivery::{address, interest};

    fn matching(table: &Interest, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        table.matching(topic.as_bytes(), &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn topics_reach_each_subscriber_with_a_prefix_of_them_once() {
        let mut t = Interest::default();
        for id in [1, 2, 3] {
            assert_eq!(
                t.subscribe(&address(id)),
                Apply::Xpub(vec![address(id).to_vec()])
            );
        }
        assert_eq!(t.subscribe(&interest(1, b"a")), Apply::Nothing);
        assert_eq!(t.subscribe(&interest(1, b"ab")), Apply::Nothing);
        assert_eq!(
            t.subscribe(&interest(1, b"ab")),
            Apply::Nothing,
            "repeat ignored"
        );
        t.subscribe(&interest(2, b"ab"));
        t.subscribe(&interest(3, b""));
        assert_eq!(matching(&t, "abc"), vec![1, 2, 3]);
        assert_eq!(matching(&t, "a"), vec![1, 3]);
        assert_eq!(matching(&t, "b"), vec![3]);
        assert_eq!(t.distinct_prefixes(), 3);

        t.unsubscribe(&interest(1, b"a"));
        assert_eq!(matching(&t, "a"), vec![3]);
        assert_eq!(matching(&t, "abc"), vec![1, 2, 3]);
        // A pipe that goes: the XPUB sends its address's unsubscription (and its others).
        t.unsubscribe(&address(1));
        assert_eq!(matching(&t, "abc"), vec![2, 3]);
        t.unsubscribe(&address(2));
        t.unsubscribe(&address(3));
        assert_eq!(matching(&t, "abc"), Vec::<u64>::new());
        assert_eq!(t.distinct_prefixes(), 0);
        assert!(t.lengths.is_empty());
        assert_eq!(t.subscribers(), 0);
    }

    #[test]
    fn plain_subscriptions_go_to_the_xpub_and_never_match_envelopes() {
        let mut t = Interest::default();
        assert_eq!(t.subscribe(b"x."), Apply::Xpub(vec![b"x.".to_vec()]));
        assert!(t.has_plain());
        let Apply::Xpub(all) = t.subscribe(b"") else {
            panic!("plain subscription refused");
        };
        assert_eq!(all.len(), 255);
        assert!(all.iter().all(|p| p.len() == 1 && p[0] != 0));
        assert_eq!(t.unsubscribe(b"x."), Apply::Xpub(vec![b"x.".to_vec()]));
        assert_eq!(t.unsubscribe(b"x."), Apply::Nothing, "never held twice");
        t.unsubscribe(b"");
        assert!(!t.has_plain());
    }

    #[test]
    fn hostile_subscriptions_are_bounded() {
        let mut t = Interest::default();
        assert!(matches!(
            t.subscribe(&interest(9, b"no-address")),
            Apply::Refused(_)
        ));
        t.subscribe(&address(9));
        let long = vec![b'a'; MAX_TOPIC_LEN + 1];
        assert!(matches!(
            t.subscribe(&interest(9, &long)),
            Apply::Refused(_)
        ));
        for i in 0..MAX_PREFIXES_PER_SUBSCRIBER {
            assert_eq!(
                t.subscribe(&interest(9, format!("p{i}").as_bytes())),
                Apply::Nothing
            );
        }
        assert!(matches!(
            t.subscribe(&interest(9, b"one-more")),
            Apply::Refused(_)
        ));
        assert!(matches!(t.subscribe(&[0, 1]), Apply::Refused(_)));
        t.unsubscribe(&address(9));
        assert_eq!(t.distinct_prefixes(), 0);
    }
}
