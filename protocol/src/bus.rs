//! The publish/subscribe message: one ZeroMQ frame holding topic, header and body.
//!
//! A bus message is a single frame so that the broker's proxy moves one frame per message
//! (multipart messages cost the proxy a poll and a send per part), and it starts with the topic
//! so that ZeroMQ's prefix subscriptions match topics directly.
//!
//! # Frame layout (integers big-endian)
//!
//! | offset    | size | field                                                       |
//! |-----------|------|-------------------------------------------------------------|
//! | 0         | t    | topic, UTF-8, 1..=[`MAX_TOPIC_LEN`] bytes ([`check_topic`]) |
//! | t         | 1    | `0x00`, the topic terminator                                |
//! | t+1       | 1    | header version, [`HEADER_VERSION`]                          |
//! | t+2       | 1    | body encoding: 0 raw bytes, 1 MessagePack ([`Encoding`])    |
//! | t+3       | 8    | publisher id (`u64`, random per publishing client)          |
//! | t+11      | 8    | sequence number, per publisher and topic, from 1            |
//! | t+19      | 8    | wall-clock timestamp, microseconds since the Unix epoch     |
//! | t+27      | 8    | Lamport clock of the sender after its increment for this send |
//! | t+35      | rest | body                                                        |
//!
//! Sequence numbers count per publisher *and topic*, so that a subscriber whose prefixes take
//! only some of a publisher's topics still sees an unbroken run on each topic it receives, and
//! any hole it sees is a message lost on the way.
//!
//! Topics starting with `$` are reserved for zhub itself (for example the subscription probes
//! under [`PROBE_PREFIX`]); clients refuse to publish on them.

pub use crate::names::{check_topic, MAX_TOPIC_LEN};
use crate::ProtocolError;

/// The header version this build writes and reads.
pub const HEADER_VERSION: u8 = 1;
/// Size of the fixed header that follows the topic terminator.
pub const HEADER_LEN: usize = 34;
/// Prefix of the topics a subscriber uses to prove its subscription is live end to end.
pub const PROBE_PREFIX: &str = "$zhub.probe.";

/// How a bus message's body is encoded, so that generic tools (the CLI) can show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Opaque bytes (`publish_bytes`).
    Raw,
    /// A MessagePack value (`publish`).
    MsgPack,
}

impl Encoding {
    fn to_byte(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::MsgPack => 1,
        }
    }

    fn from_byte(b: u8) -> Result<Self, ProtocolError> {
        match b {
            0 => Ok(Encoding::Raw),
            1 => Ok(Encoding::MsgPack),
            other => Err(ProtocolError::UnknownEncoding(other)),
        }
    }
}

/// The fixed header every bus message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusHeader {
    /// Random id of the publishing client, fixed for its lifetime.
    pub publisher: u64,
    /// Sequence number of this message among the publisher's messages on the same topic.
    pub seq: u64,
    /// Wall-clock send time in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The sender's Lamport clock, incremented for this send.
    pub lamport: u64,
    /// Encoding of the body.
    pub encoding: Encoding,
}

/// A decoded view of a bus frame, borrowing topic and body from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusFrame<'a> {
    /// The topic the message was published on.
    pub topic: &'a str,
    /// The message header.
    pub header: BusHeader,
    /// The body, encoded as `header.encoding` says.
    pub body: &'a [u8],
}

/// Whether `topic` is reserved for zhub's own traffic.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with('$')
}

/// Length of the frame [`write()`] lays out for `topic` and `body`.
pub fn encoded_len(topic: &str, body: &[u8]) -> usize {
    topic.len() + 1 + HEADER_LEN + body.len()
}

/// Lays out the frame for `topic`, `header` and `body` in `out`, which must be exactly
/// [`encoded_len`] bytes long (a publisher writes straight into a ZeroMQ message this way,
/// copying the body once).
///
/// The caller has checked the topic with [`check_topic`]; this function only lays out bytes.
///
/// # Panics
/// When `out` has the wrong length: a bug in the caller, never a matter of peer input.
pub fn write(out: &mut [u8], topic: &str, header: &BusHeader, body: &[u8]) {
    assert_eq!(
        out.len(),
        encoded_len(topic, body),
        "bus::write buffer size"
    );
    let (t, rest) = out.split_at_mut(topic.len());
    t.copy_from_slice(topic.as_bytes());
    let (h, b) = rest.split_at_mut(1 + HEADER_LEN);
    h[0] = 0;
    h[1] = HEADER_VERSION;
    h[2] = header.encoding.to_byte();
    h[3..11].copy_from_slice(&header.publisher.to_be_bytes());
    h[11..19].copy_from_slice(&header.seq.to_be_bytes());
    h[19..27].copy_from_slice(&header.timestamp_us.to_be_bytes());
    h[27..35].copy_from_slice(&header.lamport.to_be_bytes());
    b.copy_from_slice(body);
}

/// Appends the encoded frame for `topic`, `header` and `body` to `out`. See [`write()`].
pub fn encode_into(out: &mut Vec<u8>, topic: &str, header: &BusHeader, body: &[u8]) {
    let start = out.len();
    out.resize(start + encoded_len(topic, body), 0);
    write(&mut out[start..], topic, header, body);
}

/// Encodes a bus frame into a new buffer. See [`encode_into`].
pub fn encode(topic: &str, header: &BusHeader, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, topic, header, body);
    out
}

/// Finds the topic of a bus frame without decoding the rest (the broker's hot path).
///
/// # Errors
/// [`ProtocolError::MissingTopicEnd`] when the frame has no terminator within
/// [`MAX_TOPIC_LEN`] + 1 bytes, [`ProtocolError::InvalidName`] when the topic is empty or not
/// UTF-8.
pub fn topic_of(frame: &[u8]) -> Result<&str, ProtocolError> {
    let window = &frame[..frame.len().min(MAX_TOPIC_LEN + 1)];
    let end = window
        .iter()
        .position(|&b| b == 0)
        .ok_or(ProtocolError::MissingTopicEnd)?;
    let topic = std::str::from_utf8(&frame[..end]).map_err(|_| ProtocolError::InvalidName {
        what: "topic",
        name: String::from_utf8_lossy(&frame[..end]).into_owned(),
        reason: "not UTF-8",
    })?;
    if topic.is_empty() {
        return Err(ProtocolError::InvalidName {
            what: "topic",
            name: String::new(),
            reason: "empty",
        });
    }
    Ok(topic)
}

/// Decodes a bus frame.
///
/// # Errors
/// Any of the topic errors of [`topic_of`], [`ProtocolError::TruncatedHeader`],
/// [`ProtocolError::UnsupportedVersion`] or [`ProtocolError::UnknownEncoding`].
pub fn decode(frame: &[u8]) -> Result<BusFrame<'_>, ProtocolError> {
    let topic = topic_of(frame)?;
    let rest = &frame[topic.len() + 1..];
    if rest.len() < HEADER_LEN {
        return Err(ProtocolError::TruncatedHeader {
            expected: HEADER_LEN,
            got: rest.len(),
        });
    }
    if rest[0] != HEADER_VERSION {
        return Err(ProtocolError::UnsupportedVersion(rest[0]));
    }
    let encoding = Encoding::from_byte(rest[1])?;
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rest[at..at + 8]);
        u64::from_be_bytes(b)
    };
    Ok(BusFrame {
        topic,
        header: BusHeader {
            publisher: word(2),
            seq: word(10),
            timestamp_us: word(18),
            lamport: word(26),
            encoding,
        },
        body: &rest[HEADER_LEN..],
    })
}
