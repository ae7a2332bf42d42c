//! Addressed delivery on the deliver endpoint: how the broker sends each zhub subscriber its
//! own copy of a bus message, so that every message a subscriber loses is counted, for that
//! subscriber, and the subscriber is told how many it missed.
//!
//! ZeroMQ's XPUB fans a message out to every matching subscriber at once and, once a
//! subscriber's queue has overflowed, skips that subscriber without a word until it catches up.
//! A broker using it can neither count those losses nor tell the subscriber. So the zhub broker
//! does the matching itself and sends each matching subscriber an addressed copy, led by an
//! envelope that matches that subscriber alone. A full queue then refuses exactly one
//! subscriber's copy, which the broker counts against it and reports in the next envelope it
//! manages to deliver.
//!
//! An addressed message is one frame, the envelope followed by the bus frame; or, for a bus
//! frame longer than [`INLINE_MAX`] (which the broker shares between subscribers rather than
//! copy), two frames: the envelope, then the bus frame. A *notice* is the envelope alone: the
//! broker sends one only to report drops when no message has followed them.
//!
//! zhub subscribers connect a SUB socket to the broker's *deliver* endpoint (a second XPUB,
//! named in `zhub.info`), where only addressed messages go out; plain ZeroMQ SUB sockets
//! connect to the *subscribe* endpoint and get bus frames as published.
//!
//! # Subscriptions a zhub subscriber sends (as ZeroMQ subscriptions on its SUB socket)
//!
//! | bytes                                     | meaning                                          |
//! |-------------------------------------------|--------------------------------------------------|
//! | `0x00`, id (8)                            | the subscriber's address: its envelopes match it |
//! | `0x00`, id (8), `0x01`, filter (0..=1024) | interest in the topics `filter` matches          |
//! | `0x00`, id (8), `0x02`, n (1), queue group (n), filter (0..=1024) | membership of a queue group for the topics `filter` matches |
//! | `0x00`, id (8), `0x03`, filter (0..=1024) | a peer broker's interest: only messages published at this broker, never those that came from another peer, go to it |
//!
//! A filter is a topic prefix or a subject pattern ([`crate::subject`]). A message goes to
//! every subscriber with a matching interest, and to one member of each queue group with a
//! matching membership (the next in turn whose queue has room), so that a group's members
//! share the load of its topics. A subscriber is told of the drops counted against it; a
//! message a whole queue group could not take is counted against the member whose turn it
//! was.
//!
//! The id is random per subscriber (big-endian `u64`). ZeroMQ applies the address to the
//! subscriber's own connection, so that envelopes starting with it reach that subscriber
//! alone; the broker keeps the prefixes in a table of its own and matches topics there. ZeroMQ
//! resends these subscriptions in this order after a reconnect (a prefix before its
//! extensions), so a subscriber survives a broker restart. Any other subscription on the
//! deliver endpoint is refused (counted).
//!
//! # Envelope (the start of an addressed message's first frame; integers big-endian)
//!
//! | offset | size | field                                                             |
//! |--------|------|-------------------------------------------------------------------|
//! | 0      | 1    | `0x00`                                                            |
//! | 1      | 8    | subscriber id                                                     |
//! | 9      | 8    | messages the broker dropped for this subscriber since the last    |
//! |        |      | envelope it delivered (its queue was full)                       |
//!

use crate::ProtocolError;

/// First byte of every addressed subscription and envelope. No topic starts with it.
pub const ADDRESS_MARK: u8 = 0x00;
/// Length of a subscriber's address: the mark and the id.
pub const ADDRESS_LEN: usize = 9;
/// The byte after the address that marks an interest.
pub const INTEREST_MARK: u8 = 0x01;
/// The byte after the address that marks a queue group membership.
pub const QUEUE_MARK: u8 = 0x02;
/// The byte after the address that marks a peer broker's interest (see [`peer_interest`]).
pub const PEER_MARK: u8 = 0x03;
/// Length of an envelope.
pub const ENVELOPE_LEN: usize = ADDRESS_LEN + 8;
/// Longest bus frame the broker sends in the envelope's frame; longer ones follow it in a
/// frame of their own, shared between subscribers instead of copied for each.
pub const INLINE_MAX: usize = 2048;

/// A subscriber's address, which it subscribes to first: every envelope meant for it starts
/// with these bytes.
pub fn address(subscriber: u64) -> [u8; ADDRESS_LEN] {
    let mut out = [0u8; ADDRESS_LEN];
    out[0] = ADDRESS_MARK;
    out[1..].copy_from_slice(&subscriber.to_be_bytes());
    out
}

/// The subscription that declares `subscriber`'s interest in topics starting with `prefix`.
pub fn interest(subscriber: u64, prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ADDRESS_LEN + 1 + prefix.len());
    out.extend_from_slice(&address(subscriber));
    out.push(INTEREST_MARK);
    out.extend_from_slice(prefix);
    out
}

/// The subscription that declares a peer broker's interest in the topics `filter` matches:
/// the broker sends it the messages published there and none that came from its own peers,
/// so that in a full mesh of brokers every message crosses one link at most.
pub fn peer_interest(subscriber: u64, filter: &[u8]) -> Vec<u8> {
    let mut out = interest(subscriber, filter);
    out[ADDRESS_LEN] = PEER_MARK;
    out
}

/// The subscription that makes `subscriber` a member of queue group `group` for the topics
/// `filter` matches. The caller has checked `group` ([`crate::names::check_queue`]: at most
/// 255 bytes).
pub fn queue_interest(subscriber: u64, group: &[u8], filter: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ADDRESS_LEN + 2 + group.len() + filter.len());
    out.extend_from_slice(&address(subscriber));
    out.push(QUEUE_MARK);
    out.push(group.len().min(255) as u8);
    out.extend_from_slice(&group[..group.len().min(255)]);
    out.extend_from_slice(filter);
    out
}

/// The envelope that addresses a message to `subscriber`, reporting `missed` drops.
pub fn envelope(subscriber: u64, missed: u64) -> [u8; ENVELOPE_LEN] {
    let mut out = [0u8; ENVELOPE_LEN];
    out[..ADDRESS_LEN].copy_from_slice(&address(subscriber));
    out[ADDRESS_LEN..].copy_from_slice(&missed.to_be_bytes());
    out
}

/// Writes `missed` into an envelope laid out by [`envelope`].
pub fn set_missed(envelope: &mut [u8; ENVELOPE_LEN], missed: u64) {
    envelope[ADDRESS_LEN..].copy_from_slice(&missed.to_be_bytes());
}

/// A decoded envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// The subscriber it is addressed to.
    pub subscriber: u64,
    /// Messages dropped for that subscriber since the previous envelope delivered to it.
    pub missed: u64,
}

/// Decodes the envelope at the start of a frame; the bus frame, if any, follows it.
///
/// # Errors
/// [`ProtocolError::TruncatedHeader`] when the frame is shorter than [`ENVELOPE_LEN`] or does
/// not start with [`ADDRESS_MARK`].
pub fn decode_envelope(frame: &[u8]) -> Result<Envelope, ProtocolError> {
    if frame.len() < ENVELOPE_LEN || frame[0] != ADDRESS_MARK {
        return Err(ProtocolError::TruncatedHeader {
            expected: ENVELOPE_LEN,
            got: frame.len(),
        });
    }
    Ok(Envelope {
        subscriber: word(&frame[1..ADDRESS_LEN]),
        missed: word(&frame[ADDRESS_LEN..ENVELOPE_LEN]),
    })
}

/// What one subscription (the bytes after ZeroMQ's subscribe/cancel byte) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription<'a> {
    /// A zhub subscriber's address.
    Address(u64),
    /// A zhub subscriber's interest in the topics a filter matches.
    Interest {
        /// The subscriber.
        subscriber: u64,
        /// The filter: a topic prefix (`b""` for every topic) or a subject pattern.
        prefix: &'a [u8],
    },
    /// A zhub subscriber's membership of a queue group, for the topics a filter matches.
    Queue {
        /// The subscriber.
        subscriber: u64,
        /// The group's name (1..=255 bytes).
        group: &'a [u8],
        /// The filter, as for [`Subscription::Interest`].
        filter: &'a [u8],
    },
    /// A peer broker's interest in the topics a filter matches, for messages published at
    /// this broker only.
    Peer {
        /// The peer's subscriber id.
        subscriber: u64,
        /// The filter, as for [`Subscription::Interest`].
        filter: &'a [u8],
    },
    /// A plain ZeroMQ subscription to a topic prefix.
    Plain(&'a [u8]),
}

/// Classifies a subscription.
///
/// # Errors
/// [`ProtocolError::TruncatedHeader`] for bytes that start with [`ADDRESS_MARK`] but are too
/// short to hold an id or a queue group's name, [`ProtocolError::UnknownSubscription`] for an
/// address followed by anything but an interest or a membership.
pub fn parse_subscription(data: &[u8]) -> Result<Subscription<'_>, ProtocolError> {
    match data.first() {
        Some(&ADDRESS_MARK) if data.len() < ADDRESS_LEN => Err(ProtocolError::TruncatedHeader {
            expected: ADDRESS_LEN,
            got: data.len(),
        }),
        Some(&ADDRESS_MARK) => {
            let subscriber = word(&data[1..ADDRESS_LEN]);
            match data.get(ADDRESS_LEN) {
                None => Ok(Subscription::Address(subscriber)),
                Some(&INTEREST_MARK) => Ok(Subscription::Interest {
                    subscriber,
                    prefix: &data[ADDRESS_LEN + 1..],
                }),
                Some(&PEER_MARK) => Ok(Subscription::Peer {
                    subscriber,
                    filter: &data[ADDRESS_LEN + 1..],
                }),
                Some(&QUEUE_MARK) => {
                    let rest = &data[ADDRESS_LEN + 1..];
                    let n = usize::from(rest.first().copied().unwrap_or(0));
                    if n == 0 || rest.len() < 1 + n {
                        return Err(ProtocolError::TruncatedHeader {
                            expected: ADDRESS_LEN + 2 + n.max(1),
                            got: data.len(),
                        });
                    }
                    Ok(Subscription::Queue {
                        subscriber,
                        group: &rest[1..1 + n],
                        filter: &rest[1 + n..],
                    })
                }
                Some(&other) => Err(ProtocolError::UnknownSubscription(other)),
            }
        }
        _ => Ok(Subscription::Plain(data)),
    }
}

fn word(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_round_trip() {
        let id = 0x0102_0304_0506_0708;
        assert_eq!(
            parse_subscription(&address(id)),
            Ok(Subscription::Address(id))
        );
        assert_eq!(
            parse_subscription(&interest(id, b"sensors.")),
            Ok(Subscription::Interest {
                subscriber: id,
                prefix: b"sensors."
            })
        );
        assert_eq!(
            parse_subscription(&interest(id, b"")),
            Ok(Subscription::Interest {
                subscriber: id,
                prefix: b""
            })
        );
        assert_eq!(
            parse_subscription(&peer_interest(id, b"orders.>")),
            Ok(Subscription::Peer {
                subscriber: id,
                filter: b"orders.>"
            })
        );
        assert_eq!(
            parse_subscription(b"sensors."),
            Ok(Subscription::Plain(b"sensors."))
        );
        assert_eq!(parse_subscription(b""), Ok(Subscription::Plain(b"")));
        assert_eq!(
            parse_subscription(&queue_interest(id, b"workers", b"jobs.>")),
            Ok(Subscription::Queue {
                subscriber: id,
                group: b"workers",
                filter: b"jobs.>"
            })
        );
        assert_eq!(
            parse_subscription(&queue_interest(id, b"w", b"")),
            Ok(Subscription::Queue {
                subscriber: id,
                group: b"w",
                filter: b""
            })
        );
        let mut no_group = address(id).to_vec();
        no_group.extend_from_slice(&[QUEUE_MARK, 0]);
        assert!(parse_subscription(&no_group).is_err());
        let mut short_group = address(id).to_vec();
        short_group.extend_from_slice(&[QUEUE_MARK, 5, b'a']);
        assert!(parse_subscription(&short_group).is_err());
        let mut bare = address(id).to_vec();
        bare.push(QUEUE_MARK);
        assert!(parse_subscription(&bare).is_err());
        assert!(parse_subscription(&[0, 1, 2]).is_err());
        let mut odd = address(id).to_vec();
        odd.push(9);
        assert_eq!(
            parse_subscription(&odd),
            Err(ProtocolError::UnknownSubscription(9))
        );
    }

    #[test]
    fn envelopes_round_trip_and_match_their_address() {
        let mut e = envelope(7, 0);
        set_missed(&mut e, 42);
        assert!(e.starts_with(&address(7)));
        assert_eq!(
            decode_envelope(&e),
            Ok(Envelope {
                subscriber: 7,
                missed: 42
            })
        );
        assert!(decode_envelope(&e[..10]).is_err());
        assert!(decode_envelope(b"sensors.temp\0rest").is_err());
    }
}
