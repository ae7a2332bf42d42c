//! Who wants which topics: the bus thread's table of zhub subscribers and their prefixes, and
//! the matching of a topic to the subscribers it goes to (see [`zhub_protocol::delivery`]).
//!
//! Pure state, fed with the subscriptions that come in on the deliver endpoint. ZeroMQ has
//! already applied each one to its own connection there, where only the address matters (it
//! is what an envelope matches); the prefixes are matched here.
//!
//! Everything here comes from the network, so it is bounded: a prefix is at most
//! [`MAX_TOPIC_LEN`] bytes (the XPUB cuts off a peer sending a longer subscription), a zhub
//! subscriber holds at most [`MAX_PREFIXES_PER_SUBSCRIBER`] prefixes and there are at most
//! [`MAX_SUBSCRIBERS`] subscribers. Maps use the standard library's keyed hash, since a peer
//! chooses the keys.

use std::collections::HashMap;

use zhub_protocol::bus::MAX_TOPIC_LEN;
use zhub_protocol::delivery::{self, Subscription, ENVELOPE_LEN};

/// Most prefixes one zhub subscriber may hold; more are refused.
pub(crate) const MAX_PREFIXES_PER_SUBSCRIBER: usize = 10_000;
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
    /// Its prefixes, to remove them when it goes.
    prefixes: Vec<Box<[u8]>>,
}

/// Why a subscription was not taken, for the log.
pub(crate) type Refused = &'static str;

/// The table. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    subscribers: HashMap<u64, Subscriber>,
    /// Prefix -> the zhub subscribers holding it.
    prefixes: HashMap<Box<[u8]>, Vec<u64>>,
    /// Distinct prefix lengths in `prefixes`, ascending, with how many prefixes have each:
    /// matching a topic looks up only these lengths, usually one or two.
    lengths: Vec<(usize, usize)>,
}

impl Interest {
    /// Takes a subscription (the bytes after ZeroMQ's subscribe byte).
    pub(crate) fn subscribe(&mut self, data: &[u8]) -> Result<(), Refused> {
        match delivery::parse_subscription(data) {
            Err(_) => Err("malformed addressed subscription"),
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
                            prefixes: Vec::new(),
                        },
                    );
                }
                Ok(())
            }
            Ok(Subscription::Interest { subscriber, prefix }) => {
                if prefix.len() > MAX_TOPIC_LEN {
                    return Err("subscription prefix too long");
                }
                let Some(slot) = self.subscribers.get_mut(&subscriber) else {
                    return Err("interest from a subscriber with no address");
                };
                if slot.prefixes.iter().any(|p| **p == *prefix) {
                    return Ok(());
                }
                if slot.prefixes.len() >= MAX_PREFIXES_PER_SUBSCRIBER {
                    return Err("too many prefixes for one subscriber");
                }
                slot.prefixes.push(prefix.into());
                let holders = self.prefixes.entry(prefix.into()).or_default();
                if holders.is_empty() {
                    count_length(&mut self.lengths, prefix.len(), true);
                }
                holders.push(subscriber);
                Ok(())
            }
            // Only zhub subscribers connect to the deliver endpoint, and every message sent
            // there is addressed: a plain subscription matches nothing useful.
            Ok(Subscription::Plain(_)) => Err("plain subscription on the deliver endpoint"),
        }
    }

    /// Takes an unsubscription: from a subscriber, or from the XPUB for each subscription of a
    /// connection that has gone.
    pub(crate) fn unsubscribe(&mut self, data: &[u8]) {
        match delivery::parse_subscription(data) {
            Err(_) | Ok(Subscription::Plain(_)) => {}
            Ok(Subscription::Address(id)) => {
                if let Some(slot) = self.subscribers.remove(&id) {
                    for prefix in slot.prefixes {
                        self.forget(&prefix, id);
                    }
                }
            }
            Ok(Subscription::Interest { subscriber, prefix }) => {
                if let Some(slot) = self.subscribers.get_mut(&subscriber) {
                    if let Some(at) = slot.prefixes.iter().position(|p| **p == *prefix) {
                        slot.prefixes.swap_remove(at);
                        self.forget(prefix, subscriber);
                    }
                }
            }
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

    /// zhub subscribers at present.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Distinct prefixes held by zhub subscribers.
    pub(crate) fn distinct_prefixes(&self) -> usize {
        self.prefixes.len()
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
        assert!(t.lengths.is_empty());
        assert_eq!(t.subscribers(), 0);
    }

    #[test]
    fn hostile_subscriptions_are_bounded() {
        let mut t = Interest::default();
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
        assert!(t.subscribe(&[0, 1]).is_err());
        t.unsubscribe(&address(9));
        assert_eq!(t.distinct_prefixes(), 0);
    }
}
