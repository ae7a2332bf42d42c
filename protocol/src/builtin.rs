//! The broker's built-in services: their names and MessagePack bodies.
//!
//! Built-in services answer on the main endpoint like any other service, through the native
//! request protocol ([`crate::request`]); their reply body is one MessagePack frame holding the
//! struct named here. New fields are added with `#[serde(default)]` so that older peers keep
//! decoding newer replies.

use serde::{Deserialize, Serialize};

/// `zhub.info`: where the publish and subscribe endpoints are, and what the broker is.
pub const INFO_SERVICE: &str = "zhub.info";
/// `zhub.stats`: the broker's counters.
pub const STATS_SERVICE: &str = "zhub.stats";

/// Reply body of [`INFO_SERVICE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Broker version (the crate version it was built from).
    pub version: String,
    /// The main (ROUTER) endpoint as bound, with any wildcard port resolved.
    pub main: String,
    /// The endpoint publishers connect to (the broker's XSUB), as bound.
    pub publish: String,
    /// The endpoint subscribers connect to (the broker's XPUB), as bound.
    pub subscribe: String,
}

/// Reply body of [`STATS_SERVICE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Milliseconds since the broker started.
    pub uptime_ms: u64,
    /// The publish/subscribe plane.
    pub bus: BusStats,
    /// The request path on the main endpoint.
    pub requests: RequestStats,
    /// Resident memory of the broker process in bytes, where the platform tells it.
    pub rss_bytes: Option<u64>,
    /// Peak resident memory of the broker process in bytes, where the platform tells it.
    pub peak_rss_bytes: Option<u64>,
}

/// Counters of the publish/subscribe plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusStats {
    /// Messages received from publishers.
    pub messages_in: u64,
    /// Bytes received from publishers.
    pub bytes_in: u64,
    /// Messages handed on to the subscribe side (each is then fanned out to every matching
    /// subscriber).
    pub messages_out: u64,
    /// Bytes handed on to the subscribe side.
    pub bytes_out: u64,
    /// Messages not delivered, by reason.
    pub dropped: BusDrops,
    /// Distinct subscription prefixes currently held by subscribers.
    pub subscriptions: u64,
}

/// Messages the bus did not deliver, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusDrops {
    /// Not a valid bus frame (no topic terminator, short header, unknown version, multipart).
    pub malformed: u64,
    /// Delivered to some subscribers but not to at least one whose queue was full (a
    /// subscriber reading more slowly than publishers write).
    pub slow_subscriber: u64,
}

/// Counters of the request path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestStats {
    /// Requests received.
    pub received: u64,
    /// Replies sent.
    pub replied: u64,
    /// Messages dropped as malformed (logged, answered with an error where possible).
    pub malformed: u64,
    /// Replies that could not be routed because the client had gone.
    pub unroutable: u64,
}
