//! zhub-client: talk to a zhub broker: publish and subscribe, send requests to named
//! services, keep keys in its key-value store, append to and replay its event log, and form
//! process groups.
//!
//! ```no_run
//! use std::time::Duration;
//! use zhub_client::{Client, StreamSettings};
//!
//! // The broker's main endpoint; the client learns the others from the broker.
//! let mut client = Client::connect("tcp://127.0.0.1:5555")?;
//!
//! // Publish and subscribe: `subscribe` returns once the subscription is live.
//! let mut sub = client.subscribe(&["sensors."])?;
//! client.publish("sensors.temp", &21.5)?;
//! let msg = sub.recv()?;
//! assert_eq!(msg.topic(), "sensors.temp");
//! assert_eq!(msg.decode::<f64>()?, 21.5);
//!
//! // A request to a named service (served by a `zhub_worker::Worker`), MessagePack both ways.
//! let reply: String = client.request("echo", &"hello")?;
//! println!("echo said {reply}");
//!
//! // The key-value store: a put returns the key's new revision.
//! let revision = client.kv().put("config.mode", &"fast")?;
//! let mode: Option<String> = client.kv().get("config.mode")?;
//! assert_eq!(mode.as_deref(), Some("fast"));
//! println!("config.mode is at revision {revision}");
//!
//! // The event log: create a stream, append (acknowledged once on disk), read it back.
//! client.log().create("orders", StreamSettings::default())?;
//! let offset = client.log().append("orders", &("apples", 3))?;
//! for record in client.log().read("orders", offset) {
//!     let (item, count): (String, u32) = record?.decode()?;
//!     println!("{count} {item}");
//! }
//!
//! // Per-request options: a shorter timeout for this one.
//! let options = zhub_client::RequestOptions::new().timeout(Duration::from_secs(1));
//! let _: String = client.request_with("echo", &"quick", &options)?;
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
//! - A request gets a reply or an error whose [`kind`](RequestError::kind) says why (no
//!   service, busy, timed out, ...), never silence.
//! - An append to the log or a write to the store is acknowledged once the stream's (or the
//!   broker's `kv_fsync`) policy is met: by default, once it is on disk.
//!
//! # Layout
//! Everything public is at the crate root; the source files behind it are:
//! - `client.rs` — [`Client`]: connecting, requests, publishing, subscribing.
//! - `discover.rs` — [`Client::discover`]: finding a broker by its UDP beacon.
//! - `options.rs` — [`ClientOptions`], [`RequestOptions`], [`Login`] (PLAIN or CURVE).
//! - `subscriber.rs` — [`Subscriber`], [`Message`], [`Subscription`].
//! - `publisher.rs` — the publishing socket, its handshake and sequence numbers.
//! - `pipeline.rs` — [`Pipeline`]: many requests in flight, outcomes in order.
//! - `kv.rs` — [`Kv`], [`Watcher`], [`Replica`]: the key-value store through the broker;
//!   `kv_batch.rs` many keys in one request, `kv_pipeline.rs` ([`KvPipeline`]) single
//!   operations pipelined.
//! - `log.rs` — [`Log`], [`LogReader`], [`Consumer`]: the event log through the broker;
//!   `log_appender.rs` ([`Appender`]) appends pipelined.
//! - `group/` — [`Group`], [`GroupOptions`], [`LaunchEnv`]: process groups (membership and
//!   views, messages with Lamport stamps, synchronous sends, barriers, a token-ring lock).
//! - `curve.rs` — [`CurveKeyPair`]: CURVE keys in Z85 and their key files.
//! - `error.rs` — [`Error`] and the kinds of each operation.
//! - `util.rs` — clocks, the Lamport clock, endpoint rewriting.
#![deny(missing_docs)]

mod client;
mod curve;
mod discover;
mod error;
mod group;
mod kv;
mod kv_batch;
mod kv_pipeline;
mod log;
mod log_appender;
mod options;
mod pipeline;
mod publisher;
mod subscriber;
mod util;

pub use client::Client;
pub use curve::{CurveKeyPair, CURVE_KEY_Z85_LEN};
pub use discover::{beacon_socket, listen_for_broker};
pub use error::{
    ConnectError, ConnectErrorKind, Error, GroupError, GroupErrorKind, KeyError, KeyErrorKind,
    PublishError, PublishErrorKind, RecvError, RecvErrorKind, RequestError, RequestErrorKind,
    SubscribeError, SubscribeErrorKind,
};
pub use group::{Group, GroupMessage, GroupOptions, GroupPage, LaunchEnv, LockGuard, View};
pub use kv::{CasOutcome, ChangeKind, Kv, KvChange, KvEntry, Replica, Watcher};
pub use kv_batch::{KvWrite, MAX_BATCH};
pub use kv_pipeline::{KvDone, KvPipeline};
pub use log::{
    Consumer, FsyncPolicy, JournalRoute, Log, LogReader, NewRecord, ReadFrom, StoredRecord,
    StreamSettings, StreamSummary,
};
pub use log_appender::Appender;
pub use options::{ClientOptions, Credentials, Login, RequestOptions, DEFAULT_URL};
pub use pipeline::{Outcome, Pipeline};
pub use subscriber::{Message, Messages, Subscriber, Subscription};
pub use util::connectable;
pub use zhub_protocol::builtin::{BrokerInfo, Stats, StorageStats};
pub use zhub_protocol::group::GroupSummary;
pub use zhub_protocol::{BusHeader, Encoding, ProtocolError};
