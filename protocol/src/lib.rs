//! zhub-protocol: zhub's wire format, as pure functions over frames (no sockets).
//!
//! Every peer of a zhub broker (the client, the worker, the CLI, the broker itself) encodes and
//! decodes its messages here, so there is exactly one definition of each frame layout.
//!
//! ```
//! use zhub_protocol::{body, bus, BusHeader, Encoding};
//!
//! // A bus message as a publisher sends it: topic, header and MessagePack body in one frame.
//! let header = BusHeader {
//!     publisher: 0x2a,
//!     seq: 1,
//!     timestamp_us: 1_700_000_000_000_000,
//!     lamport: 1,
//!     encoding: Encoding::MsgPack,
//! };
//! let frame = bus::encode("sensors.temp", &header, &body::encode(&21.5)?);
//!
//! // What a subscriber does with it. Malformed input is an error, never a panic.
//! let message = bus::decode(&frame)?;
//! assert_eq!(message.topic, "sensors.temp");
//! assert_eq!(message.header, header);
//! assert_eq!(body::decode::<f64>(message.body)?, 21.5);
//! assert!(bus::decode(&frame[..5]).is_err());
//! # Ok::<(), zhub_protocol::ProtocolError>(())
//! ```
//!
//! # Layout
//! - [`bus`] — the single-frame message carried by the publish/subscribe plane (topic, header,
//!   body) and topic rules.
//! - [`delivery`] — addressed delivery on the subscribe endpoint: subscriber addresses,
//!   interests and the envelope that carries each subscriber's drop count.
//! - [`request`] — the native request/reply protocol on the main endpoint (`ZHC01`): request ids,
//!   deadlines and status codes.
//! - [`builtin`] — names and MessagePack bodies of the broker's built-in services
//!   (`zhub.info`, `zhub.stats`).
//! - [`beacon`] — the UDP datagram brokers broadcast to be discovered.
//! - [`cluster`] — the link between peer brokers (`ZHL01`): greetings, heartbeats, service
//!   capacity, forwarded requests and their answers.
//! - [`mdp`] — Majordomo 7/MDP client and worker frames, and `mmi.service`.
//! - [`log`] — the `zhub.log` service's requests and replies; [`log_records`] writes a read's
//!   reply record by record.
//! - [`kv`] — the `zhub.kv` service's requests and replies, and its change messages.
//! - [`fault`] — the `zhub.fault` service: rules that drop or delay bus messages.
//! - [`group`] — the `zhub.group` service: process groups' membership and views.
//! - [`names`] — the rule of each kind of name (services, topics, streams, keys, groups).
//! - [`subject`] — topics as `.`-separated tokens, and filters: prefixes and NATS-style
//!   patterns with `*` and `>`.
//! - [`body`] — MessagePack helpers shared by every typed API.
//! - [`duration`] — durations written as text (`500ms`, `2.5s`), for flags and config files.
//! - [`ids`] — random ids and the hexadecimal form of ids and bytes.
//! - [`error`] — [`ProtocolError`], what a decoder says about malformed input.
#![deny(missing_docs)]

pub mod beacon;
pub mod body;
pub mod builtin;
pub mod bus;
pub mod cluster;
pub mod delivery;
pub mod duration;
pub mod error;
pub mod fault;
pub mod group;
pub mod ids;
pub mod kv;
pub mod log;
pub mod log_records;
pub mod mdp;
pub mod names;
pub mod request;
pub mod subject;

pub use bus::{BusFrame, BusHeader, Encoding};
pub use error::ProtocolError;
pub use request::{Reply, Request, Status};
