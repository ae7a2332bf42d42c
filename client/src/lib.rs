//! zhub-client: talk to a zhub broker: publish and subscribe, and send requests.
//!
//! ```no_run
//! use zhub_client::Client;
//!
//! let mut client = Client::connect("tcp://127.0.0.1:5555")?;
//! let mut sub = client.subscribe(&["sensors."])?;
//! client.publish("sensors.temp", &21.5)?;
//! let msg = sub.recv()?;
//! assert_eq!(msg.decode::<f64>()?, 21.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Guarantees
//! - Pub/sub is at-most-once. A `subscribe` call returns once the subscription is live end to
//!   end, so nothing published afterwards is missed while the subscriber keeps up; a publisher
//!   is pushed back (never silently dropped) when the broker's queue for it is full; a
//!   subscriber that falls behind loses messages at the broker, and sees how many in
//!   [`Subscriber::gaps`].
//! - Every message carries its publisher's id, a sequence number per publisher and topic, a
//!   wall-clock timestamp and a Lamport stamp.
//!
//! # Layout
//! - `client` — [`Client`], requests and publishing.
//! - `log` — [`Log`]: the event log through the broker.
//! - `kv` — [`Kv`], [`Watcher`], [`Replica`]: the key-value store through the broker.
//! - `group` — [`Group`]: process groups' membership, ranks and views.
//! - `options` — [`ClientOptions`].
//! - `subscriber` — [`Subscriber`], [`Message`], [`Subscription`].
//! - `publisher` — the publishing socket, its handshake and sequence numbers.
//! - `error` — [`Error`] and the kinds of each operation.
//! - `util` — ids, clocks, endpoint rewriting.
#![deny(missing_docs)]

mod client;
mod error;
mod group;
mod kv;
mod log;
mod options;
mod publisher;
mod subscriber;
mod util;

pub use client::Client;
pub use error::{
    ConnectError, ConnectErrorKind, Error, GroupError, GroupErrorKind, PublishError,
    PublishErrorKind, RecvError, RecvErrorKind, RequestError, RequestErrorKind, SubscribeError,
    SubscribeErrorKind,
};
pub use group::{Group, GroupMessage, GroupOptions, LaunchEnv, LockGuard, View};
pub use kv::{CasOutcome, ChangeKind, Kv, KvChange, KvEntry, Replica, Watcher};
pub use log::{
    Consumer, FsyncPolicy, JournalRoute, Log, LogReader, NewRecord, ReadFrom, StoredRecord,
    StreamSettings, StreamSummary,
};
pub use options::{ClientOptions, RequestOptions, DEFAULT_URL};
pub use subscriber::{Message, Messages, Subscriber, Subscription};
pub use zhub_protocol::builtin::{BrokerInfo, Stats};
pub use zhub_protocol::{BusHeader, Encoding, ProtocolError};
