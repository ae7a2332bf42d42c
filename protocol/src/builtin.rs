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
/// `zhub.services`: the services, their workers and queues ([`ServiceInfo`] list).
pub const SERVICES_SERVICE: &str = "zhub.services";
/// The storage statistics service's name: its reply is a [`StorageStats`].
pub const STORAGE_SERVICE: &str = "zhub.storage";
/// The links to peer brokers and the peers in session (empty body); replies [`Peers`].
pub const PEERS_SERVICE: &str = "zhub.peers";
/// Where messages on which topics go (empty body): the filters this broker's subscribers
/// hold and those peers declared to it, with their zone paths; replies a list of
/// [`TopicRoute`].
pub const TOPICS_SERVICE: &str = "zhub.topics";
/// Prefix of the broker's own services; workers cannot register names under it.
pub const BUILTIN_PREFIX: &str = "zhub.";

/// The built-in services a client may ask of another broker by name (`zhub.kv@B1`): each
/// broker offers them to its peers, so that requests for them are routed across zones like
/// any service's.
pub const REACHABLE: &[&str] = &[
    crate::kv::KV_SERVICE,
    crate::log::LOG_SERVICE,
    crate::group::GROUP_SERVICE,
    INFO_SERVICE,
    STATS_SERVICE,
    SERVICES_SERVICE,
    STORAGE_SERVICE,
    PEERS_SERVICE,
    TOPICS_SERVICE,
    crate::fault::FAULT_SERVICE,
];

/// `zhub.kv@B1`: the name of built-in `service` of the broker named `broker`.
#[must_use]
pub fn at_home(service: &str, broker: &str) -> String {
    format!("{service}@{broker}")
}

/// `("zhub.kv", "B1")` for `zhub.kv@B1`: a built-in service of the peer broker named `B1`,
/// which the broker a client is connected to passes on to that broker.
#[must_use]
pub fn split_home(service: &str) -> Option<(&str, &str)> {
    // At the first `@`: a built-in's name has none, and a broker's name has none either, so
    // `zhub.fault@x@b1` names broker `x@b1`, which does not exist.
    let (name, broker) = service.split_once('@')?;
    (name.starts_with(BUILTIN_PREFIX) && !broker.is_empty()).then_some((name, broker))
}

/// Reply body of [`INFO_SERVICE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Broker version (the crate version it was built from).
    pub version: String,
    /// The main (ROUTER) endpoint as bound, with any wildcard port resolved.
    pub main: String,
    /// The endpoint publishers connect to (the broker's XSUB), as bound.
    pub publish: String,
    /// The endpoint plain ZeroMQ subscribers connect to (the broker's XPUB), as bound.
    pub subscribe: String,
    /// The endpoint zhub subscribers connect to for addressed copies (a second XPUB), as
    /// bound. See [`crate::delivery`].
    #[serde(default)]
    pub deliver: String,
    /// Largest message body the broker takes, in bytes (`0`: not said): a larger request is
    /// answered `413 Too Large`, a larger bus message cuts its publisher off.
    #[serde(default)]
    pub max_message: u64,
    /// The broker's HTTP endpoint (`http://IP:PORT`, as bound), or empty when it serves none.
    #[serde(default)]
    pub http: String,
    /// The broker's name among its peers.
    #[serde(default)]
    pub name: String,
    /// Its zone.
    #[serde(default)]
    pub zone: String,
    /// Its cluster endpoint, as bound, or empty when it accepts no peer links.
    #[serde(default)]
    pub cluster: String,
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
    /// zhub subscribers connected (plain ZeroMQ subscribers are not counted: the broker sees
    /// only their subscriptions).
    pub subscribers: u64,
    /// Subscriptions refused: malformed, too long, or over a limit (see the README).
    pub refused_subscriptions: u64,
    /// Messages held back by fault rules ([`crate::fault`]), in all.
    pub fault_delayed: u64,
    /// Of those, messages held right now.
    pub fault_held: u64,
    /// Of `messages_in`, messages that peer brokers sent (published there, for subscribers
    /// here).
    pub from_peers: u64,
}

/// Messages the bus did not deliver, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BusDrops {
    /// Not a valid bus frame (no topic terminator, short header, unknown version, multipart).
    pub malformed: u64,
    /// Copies not delivered to zhub subscribers whose queue at the broker was full (a
    /// subscriber reading more slowly than publishers write), summed over subscribers: each
    /// message a subscriber lost counts once. Each subscriber is told its own count.
    pub slow_subscriber: u64,
    /// Messages that at least one plain ZeroMQ subscriber's full queue refused, counted once
    /// each. A lower bound: ZeroMQ skips such a subscriber without a word until it has caught
    /// up, so what it loses then is not seen.
    pub slow_plain_subscriber: u64,
    /// Messages dropped by fault rules ([`crate::fault`]), or because the broker already
    /// held as many delayed messages as it may.
    pub fault: u64,
    /// Messages a peer broker dropped for this one (its queue there was full), as the
    /// peer reported them.
    pub peer: u64,
    /// Messages whose publisher may not publish on their topic (under an auth file).
    pub forbidden: u64,
    /// Second copies of messages that came from peer brokers by two routes (redundant
    /// gateways between zones), or back into a zone they had been in: dropped, so that each
    /// subscriber gets a message once.
    pub duplicate: u64,
}

/// Counters of the request path.
///
/// Every reply answers one received request, and each request gets at most one reply, so
/// `replied <= received` always holds; the difference is requests still waiting, replies
/// that could not be routed, and requests from Majordomo clients that MDP gives no error
/// reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestStats {
    /// Requests received from clients (native and Majordomo), counting the malformed ones
    /// that were answered `400` (those are in `malformed` too).
    pub received: u64,
    /// Replies sent to clients, errors included.
    pub replied: u64,
    /// Messages dropped as malformed (logged, answered with an error where possible), from
    /// clients and workers alike.
    pub malformed: u64,
    /// Replies that could not be routed because the client had gone.
    pub unroutable: u64,
    /// Requests answered "busy" because their service's queue was full.
    pub busy: u64,
    /// Requests whose timeout passed before a reply.
    pub timed_out: u64,
    /// Requests handed to another worker after theirs died or went silent.
    pub requeued: u64,
    /// Requests answered worker-failed: given up after their last attempt's worker died, or
    /// reported failed by their worker.
    pub worker_failed: u64,
    /// Workers expired for silence.
    pub workers_expired: u64,
    /// Messages refused by the auth file's permissions (answered `403 Forbidden` where the
    /// protocol allows).
    pub forbidden: u64,
}

/// One service, as `zhub.services` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceInfo {
    /// The service name.
    pub name: String,
    /// Workers registered for it.
    pub workers: u64,
    /// Requests its local workers take at once, in all.
    pub credit: u64,
    /// Of those, workers with free credit (able to take one more request now).
    pub idle: u64,
    /// Requests waiting for a worker.
    pub queued: u64,
    /// Requests being served right now.
    pub in_flight: u64,
    /// Replies delivered since the broker started.
    pub served: u64,
    /// How long those replies took, from the request's arrival at the broker to its
    /// worker's reply.
    pub latency: LatencyHistogram,
    /// Peer brokers that serve it too (requests go to them when no local worker is free).
    #[serde(default)]
    pub peers: Vec<ServicePeer>,
}

/// Reply body of [`PEERS_SERVICE`]: this broker and its links to peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peers {
    /// This broker's name.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its random id, in hex.
    pub id: String,
    /// Every link: outgoing ones (to configured peers) first.
    pub links: Vec<PeerLink>,
    /// Messages on cluster links that could not be decoded (each closed its link).
    pub malformed: u64,
}

/// One link to a peer broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerLink {
    /// Whether this broker opened it (to a configured peer).
    pub outgoing: bool,
    /// The configured endpoint of an outgoing link; the peer's routing id of an incoming one.
    pub endpoint: String,
    /// The peer's name, once it greeted; empty before.
    pub broker: String,
    /// The peer's zone.
    pub zone: String,
    /// `up` (greeted, carrying traffic), `standby` (greeted, the other link carries it) or
    /// `connecting`.
    pub state: String,
    /// Last measured round trip on the link, in microseconds (0: not yet).
    pub rtt_us: u64,
    /// How long the peer's session has been up, in milliseconds.
    pub up_ms: u64,
}

/// A peer broker serving a service, as this broker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServicePeer {
    /// The peer's name.
    pub broker: String,
    /// The requests its workers take at once, in all, as it said.
    pub credit: u64,
    /// Requests this broker has forwarded to it and not yet had answered.
    pub in_flight: u64,
    /// The peer's zone.
    pub zone: String,
    /// The zones a request for the service crosses from here through that peer, nearest
    /// first; empty when it is served in this broker's own zone.
    pub path: Vec<String>,
}

/// A topic filter messages go to from a broker: held by its own subscribers, or declared by a
/// peer for its subscribers and those beyond it. One entry of [`TOPICS_SERVICE`]'s reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicRoute {
    /// The filter: a topic prefix or a subject pattern.
    pub filter: String,
    /// The peer that declared it; empty for this broker's own subscribers.
    pub broker: String,
    /// The peer's zone (empty for this broker's own subscribers).
    pub zone: String,
    /// The zones a message crosses from here through that peer to the subscribers, nearest
    /// first; empty when they are all in this broker's own zone.
    pub path: Vec<String>,
}

/// What the storage thread has done since the broker started: the `zhub.storage` built-in
/// service's reply (its request body is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageStats {
    /// Key-value requests by `op` (get, put, cas, ...), refused ones included.
    pub kv_ops: std::collections::BTreeMap<String, u64>,
    /// Key-value requests refused: malformed, bad names, failed writes.
    pub kv_refused: u64,
    /// How long the key-value store's syncs took (one per commit that wrote).
    pub kv_syncs: LatencyHistogram,
    /// Event log requests by `op` (append, read, commit, ...), refused ones included.
    pub log_ops: std::collections::BTreeMap<String, u64>,
    /// Event log requests refused: malformed, bad names, unknown streams, failed writes.
    pub log_refused: u64,
    /// Records appended by clients.
    pub log_records_appended: u64,
    /// Records appended from journaled bus messages.
    pub journal_records: u64,
    /// How long the event log's syncs took, one per stream synced (group commit: many
    /// appends share one).
    pub log_syncs: LatencyHistogram,
}

/// Upper bounds, in microseconds, of the buckets of a [`LatencyHistogram`]; one more bucket
/// holds everything slower.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Durations counted in fixed buckets ([`LATENCY_BOUNDS_US`]), as Prometheus histograms are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative): `counts[i]` took at most
    /// `LATENCY_BOUNDS_US[i]` and more than the bound before; the last, more than every
    /// bound. Empty before the first observation.
    pub counts: Vec<u64>,
    /// The sum of every observation, in microseconds.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn observe(&mut self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if self.counts.len() != LATENCY_BOUNDS_US.len() + 1 {
            self.counts = vec![0; LATENCY_BOUNDS_US.len() + 1];
        }
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Runs `f` and counts how long it took.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        self.observe(start.elapsed());
        out
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Observations of at most each bound, in bound order, then the total: what Prometheus
    /// writes as `_bucket{le=...}`. Empty buckets before the first observation.
    pub fn cumulative(&self) -> Vec<u64> {
        let mut total = 0;
        (0..=LATENCY_BOUNDS_US.len())
            .map(|i| {
                total += self.counts.get(i).copied().unwrap_or(0);
                total
            })
            .collect()
    }

    /// The duration below which `q` (0 to 1) of the observations fall, as the upper bound of
    /// the bucket that holds it; `None` with no observations or when it lies in the last,
    /// unbounded bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let bucket = self.cumulative().iter().position(|&c| c >= rank)?;
        LATENCY_BOUNDS_US.get(bucket).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_home_is_split_at_the_first_at_sign() {
        assert_eq!(split_home("zhub.kv@B1"), Some(("zhub.kv", "B1")));
        // Broker names hold no '@': this names broker "x@b1", which cannot exist, and the
        // service checked is zhub.fault, whatever follows.
        assert_eq!(split_home("zhub.fault@x@b1"), Some(("zhub.fault", "x@b1")));
        assert_eq!(split_home("zhub.kv@"), None);
        assert_eq!(split_home("echo@B1"), None);
        assert_eq!(at_home("zhub.kv", "B1"), "zhub.kv@B1");
    }

    #[test]
    fn latencies_fall_in_the_bucket_of_the_first_bound_not_below_them() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile_bound_us(0.5), None);
        for us in [50, 100, 101, 900, 20_000_000] {
            h.observe(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.counts[0], 2, "50 and 100 are at most 100");
        assert_eq!(h.counts[1], 1, "101");
        assert_eq!(h.counts[3], 1, "900 is at most 1000");
        assert_eq!(
            h.counts[LATENCY_BOUNDS_US.len()],
            1,
            "20 s is past every bound"
        );
        assert_eq!(h.sum_us, 50 + 100 + 101 + 900 + 20_000_000);
        let cumulative = h.cumulative();
        assert_eq!(cumulative[0], 2);
        assert_eq!(cumulative[3], 4);
        assert_eq!(*cumulative.last().unwrap(), 5);
        assert_eq!(h.quantile_bound_us(0.5), Some(250));
        assert_eq!(h.quantile_bound_us(0.8), Some(1_000));
        assert_eq!(h.quantile_bound_us(1.0), None);
    }
}
