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
//! | `0x00`, id (8), `0x03`, zone path, filter (0..=1024) | a peer broker's interest, reached through the zones of the path (see below) |
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
//! # Peer brokers
//!
//! A peer broker subscribes like a zhub subscriber, with peer interests. Each carries a *zone
//! path*: a count (1..=16), then each zone as a length (1..=64) and its name. The path of an
//! interest names the zones it has come through, the sending broker's own zone first. The
//! copy of a message sent to a peer carries a zone path too, between the envelope and the bus
//! frame: the zones the message has been in, oldest first, the sending broker's zone last. A
//! broker never sends a message into a zone it has been in, nor declares an interest to a
//! zone on its path, so neither can go round a cycle of zones (see the broker's `bus::peers`).
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

use crate::cluster::{MAX_NAME_LEN, MAX_PATH_ZONES};
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
/// Longest zone path, in bytes: its count, then each zone's length and name.
pub const MAX_PATH_LEN: usize = 1 + MAX_PATH_ZONES * (1 + MAX_NAME_LEN);
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

/// The subscription that declares a peer broker's interest in the topics `filter` matches,
/// reached through the zones of `path`, a zone path as [`write_path`] writes it (the
/// declaring broker's zone first).
pub fn peer_interest(subscriber: u64, path: &[u8], filter: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ADDRESS_LEN + 1 + path.len() + filter.len());
    out.extend_from_slice(&address(subscriber));
    out.push(PEER_MARK);
    out.extend_from_slice(path);
    out.extend_from_slice(filter);
    out
}

/// Appends a zone path naming `zones` in order. The caller keeps to the bounds: 1 to
/// [`MAX_PATH_ZONES`] zones of 1 to [`MAX_NAME_LEN`] bytes (longer names are cut, extra zones
/// left out, so that what is written always decodes).
pub fn write_path<Z: AsRef<[u8]>>(out: &mut Vec<u8>, zones: impl IntoIterator<Item = Z>) {
    let count_at = out.len();
    out.push(0);
    let mut count = 0u8;
    for zone in zones.into_iter().take(MAX_PATH_ZONES) {
        let zone = zone.as_ref();
        let name = &zone[..zone.len().min(MAX_NAME_LEN)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        count += 1;
    }
    out[count_at] = count;
}

/// A zone path as it came off the wire, checked: see [`read_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZonePath<'a> {
    /// The path as written: the count, then the zones' length-prefixed names.
    raw: &'a [u8],
}

impl<'a> ZonePath<'a> {
    /// The path as written ([`write_path`]).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The zones, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = &self.raw[1..];
        std::iter::from_fn(move || {
            let (&n, tail) = rest.split_first()?;
            let (name, tail) = tail.split_at(usize::from(n));
            rest = tail;
            Some(name)
        })
    }

    /// Whether `zone` is on the path.
    pub fn contains(&self, zone: &str) -> bool {
        self.iter().any(|z| z == zone.as_bytes())
    }

    /// The first zone.
    pub fn first(&self) -> &'a [u8] {
        self.iter().next().unwrap_or_default()
    }

    /// The last zone.
    pub fn last(&self) -> &'a [u8] {
        self.iter().last().unwrap_or_default()
    }

    /// How many zones it names.
    pub fn len(&self) -> usize {
        usize::from(self.raw[0])
    }

    /// Never true for a path that was read: a path names one zone at least.
    pub fn is_empty(&self) -> bool {
        self.raw[0] == 0
    }

    /// The zones as text (names are UTF-8 when a broker wrote them; anything else is
    /// replaced).
    pub fn zones(&self) -> Vec<String> {
        self.iter()
            .map(|z| String::from_utf8_lossy(z).into_owned())
            .collect()
    }
}

/// Reads the zone path at the start of `data`, returning it and the bytes after it.
///
/// # Errors
/// [`ProtocolError::OutOfRange`] for a count or a name length out of bounds,
/// [`ProtocolError::TruncatedHeader`] when the bytes end inside the path.
pub fn read_path(data: &[u8]) -> Result<(ZonePath<'_>, &[u8]), ProtocolError> {
    let truncated = || ProtocolError::TruncatedHeader {
        expected: MAX_PATH_LEN.min(data.len() + 1),
        got: data.len(),
    };
    let (&count, mut rest) = data.split_first().ok_or_else(truncated)?;
    for _ in 0..one_to("zone path count", count, MAX_PATH_ZONES)? {
        let (&n, tail) = rest.split_first().ok_or_else(truncated)?;
        let n = one_to("zone name length", n, MAX_NAME_LEN)?;
        if tail.len() < n {
            return Err(truncated());
        }
        rest = &tail[n..];
    }
    let used = data.len() - rest.len();
    Ok((ZonePath { raw: &data[..used] }, rest))
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
    /// A peer broker's interest in the topics a filter matches, reached through the zones of
    /// a path.
    Peer {
        /// The peer's subscriber id.
        subscriber: u64,
        /// The zones the interest came through, the peer's own zone first.
        path: ZonePath<'a>,
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
/// short to hold an id or a queue group's name, the errors of [`read_path`] for a peer
/// interest's zone path, [`ProtocolError::UnknownSubscription`] for an
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
                Some(&PEER_MARK) => {
                    let (path, filter) = read_path(&data[ADDRESS_LEN + 1..])?;
                    Ok(Subscription::Peer {
                        subscriber,
                        path,
                        filter,
                    })
                }
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

/// `value`, a count or a length byte, if it lies in `1..=max`.
fn one_to(field: &'static str, value: u8, max: usize) -> Result<usize, ProtocolError> {
    if value == 0 || usize::from(value) > max {
        return Err(ProtocolError::OutOfRange {
            field,
            value: value.into(),
            min: 1,
            max: max as u64,
        });
    }
    Ok(usize::from(value))
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
        let mut path = Vec::new();
        write_path(&mut path, ["east", "west"]);
        let peer = peer_interest(id, &path, b"orders.>");
        let Ok(Subscription::Peer {
            subscriber,
            path,
            filter,
        }) = parse_subscription(&peer)
        else {
            panic!("a peer interest: {peer:?}");
        };
        assert_eq!((subscriber, filter), (id, &b"orders.>"[..]));
        assert_eq!(path.zones(), ["east", "west"]);
        assert_eq!(path.as_bytes(), b"\x02\x04east\x04west");
        assert_eq!(
            (path.first(), path.last(), path.len()),
            (&b"east"[..], &b"west"[..], 2)
        );
        assert!(path.contains("west") && !path.contains("north"));
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

    #[test]
    fn zone_paths_are_bounded() {
        let mut out = Vec::new();
        write_path(&mut out, ["a", "bb"]);
        out.extend_from_slice(b"rest");
        let (path, rest) = read_path(&out).unwrap();
        assert_eq!(
            (path.zones(), rest),
            (vec!["a".to_owned(), "bb".to_owned()], &b"rest"[..])
        );
        // Too many zones or too long a name is cut when written, refused when read.
        let many: Vec<String> = (0..40).map(|i| format!("z{i}")).collect();
        let long = "x".repeat(200);
        let mut out = Vec::new();
        write_path(
            &mut out,
            many.iter().map(String::as_str).chain([long.as_str()]),
        );
        assert_eq!(read_path(&out).unwrap().0.len(), MAX_PATH_ZONES);
        let mut out = Vec::new();
        write_path(&mut out, [long.as_str()]);
        assert!(out.len() <= MAX_PATH_LEN);
        assert_eq!(read_path(&out).unwrap().0.first().len(), MAX_NAME_LEN);
        for bad in [
            &[][..],
            &[0][..],
            &[17, 1, b'a'][..],
            &[1, 0][..],
            &[1, 65][..],
            &[1, 3, b'a'][..],
            &[2, 1, b'a'][..],
        ] {
            assert!(read_path(bad).is_err(), "{bad:?}");
        }
        let mut no_path = address(7).to_vec();
        no_path.push(PEER_MARK);
        assert!(parse_subscription(&no_path).is_err());
    }
}
