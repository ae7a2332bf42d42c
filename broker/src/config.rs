//! Broker settings: embedded defaults, a TOML file (`--config`), then command-line flags, each
//! overriding the one before; then [`Config::validate`], which refuses any value that cannot
//! work, naming the setting and its allowed range.
//!
//! Each default has one source, [`Config::default`] (from the `DEFAULT_*` constants); the
//! command line shows the same values in `--help` ([`Args::command_with_defaults`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};
use zhub_protocol::duration::parse_duration;
pub use zhub_protocol::log::{FsyncPolicy, JournalRoute};

use crate::BrokerError;

/// Default main (ROUTER) endpoint: requests, workers and built-in services.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:5555";
/// Default publish endpoint (the broker's XSUB), where publishers connect.
pub const DEFAULT_PUBLISH: &str = "tcp://127.0.0.1:5556";
/// Default subscribe endpoint (the broker's XPUB), where plain ZeroMQ SUB sockets connect.
pub const DEFAULT_SUBSCRIBE: &str = "tcp://127.0.0.1:5557";
/// Default deliver endpoint (the broker's second XPUB), where zhub subscribers connect to get
/// addressed copies (see `zhub_protocol::delivery`).
pub const DEFAULT_DELIVER: &str = "tcp://127.0.0.1:5558";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./zhub-data";
/// Default high-water mark of each queue, in messages.
///
/// 10 000 messages bound a slow peer's queue to about 1 MB at 100 bytes and 160 MB at
/// 16 KiB, while leaving room for bursts at full speed (the publisher side pushes back
/// rather than dropping, so a larger value only buys latency).
pub const DEFAULT_HWM: i32 = 10_000;

/// Default most event log streams the broker holds: far more than a deployment of one
/// machine or a LAN needs, few enough that their directories and memory stay small.
pub const DEFAULT_MAX_STREAMS: usize = 10_000;

/// Everything the broker needs to start.
///
/// `Default` gives the embedded defaults: endpoints [`DEFAULT_LISTEN`], [`DEFAULT_PUBLISH`],
/// [`DEFAULT_SUBSCRIBE`], [`DEFAULT_DELIVER`], data directory [`DEFAULT_DATA_DIR`], every high-water mark
/// [`DEFAULT_HWM`] and one ZeroMQ I/O thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Main endpoint (ROUTER): requests, workers, built-in services.
    pub listen: String,
    /// Publish endpoint (XSUB): publishers connect here.
    pub publish: String,
    /// Subscribe endpoint (XPUB): plain ZeroMQ subscribers connect here.
    pub subscribe: String,
    /// Deliver endpoint (XPUB): zhub subscribers connect here for addressed copies.
    pub deliver: String,
    /// Directory for the broker's durable state.
    pub data_dir: PathBuf,
    /// Messages queued per publisher connection before that publisher is pushed back.
    pub publish_hwm: i32,
    /// Messages queued per subscriber connection before messages to it are dropped (and
    /// counted as `slow_subscriber`).
    pub subscribe_hwm: i32,
    /// Messages queued per peer on the main endpoint.
    pub request_hwm: i32,
    /// ZeroMQ I/O threads.
    pub io_threads: i32,
    /// Interval of heartbeats between broker and workers.
    #[serde(with = "duration_text")]
    pub heartbeat: Duration,
    /// Heartbeat intervals a worker may stay silent before it is expired and its request
    /// handed to another worker.
    pub liveness: u32,
    /// Requests that may wait per service; one more is answered "busy".
    pub service_queue: usize,
    /// Log and key-value requests that may wait for the storage thread (each way on the
    /// link to it); one more is answered "busy" at once, so that a slow disk never stalls
    /// routing.
    pub storage_queue: usize,
    /// Bytes of request bodies a service may hold (waiting or being served, kept for
    /// retries); a request that would pass it is answered "busy".
    pub service_queue_bytes: usize,
    /// Largest request accepted on the main endpoint, in bytes (all its frames): a larger
    /// one is answered `413 Too Large`. Frames beyond twice this (plus 64 KiB) are cut by
    /// ZeroMQ itself (`ZMQ_MAXMSGSIZE`), which drops the sender's connection, so that a
    /// huge frame is never even buffered. A publisher's message body is bounded by it too: a
    /// longer bus frame makes the broker drop that publisher's connection.
    pub max_message: usize,
    /// Longest deadline a request may ask for: a longer timeout is cut to this, and the
    /// client is answered at this deadline (so a waiting request holds its memory at most
    /// this long). Majordomo clients' `mdp_timeout` must fit in it.
    #[serde(with = "duration_text")]
    pub max_deadline: Duration,
    /// Times a request is handed to a worker before the client is told the worker failed.
    pub max_attempts: u32,
    /// Deadline for requests from plain Majordomo clients, which carry none.
    #[serde(with = "duration_text")]
    pub mdp_timeout: Duration,
    /// Durable topics: bus messages on each prefix are journaled into its stream (created
    /// when missing). In TOML: `[[journal]]` tables with `prefix` and `stream`. Routes added
    /// at runtime are kept in the data directory; these are added again at every start.
    pub journal: Vec<JournalRoute>,
    /// Durability of the key-value store: `always` (acknowledge a write once synced, with
    /// group commit), `interval:MS` or `never`.
    #[serde(with = "policy_text")]
    pub kv_fsync: FsyncPolicy,
    /// Most event log streams; creating one more is refused with a clear error.
    pub max_streams: usize,
    /// Address of the HTTP endpoint (`/metrics`, `/api/...`, the dashboard at `/`), as
    /// `IP:PORT` (port 0: one chosen by the OS, told in `zhub.info`); `None`: no HTTP.
    pub http: Option<String>,
    /// Whether `zhub.fault` may add rules that drop or delay bus messages (for testing
    /// distributed programs under faults); off by default, so that a broker in service is
    /// never one request away from losing its traffic.
    pub allow_faults: bool,
    /// This broker's name among its peers (`zhub peers`, `--broker NAME`); `None`: `zhub-`
    /// and the first hex digits of its random id.
    pub name: Option<String>,
    /// The zone this broker belongs to; brokers of one zone form a full mesh.
    pub zone: String,
    /// Cluster endpoint (ROUTER) where peer brokers connect; `None`: this broker accepts no
    /// peer links (it may still connect to peers).
    pub cluster: Option<String>,
    /// Peer brokers to link to: in TOML, `[[peer]]` tables with `endpoint`, each a peer's
    /// cluster endpoint.
    pub peer: Vec<PeerConfig>,
    /// Interval of heartbeats on each cluster link; a peer silent for
    /// `cluster_liveness` of them is dropped, and what it held is dispatched again.
    #[serde(with = "duration_text")]
    pub cluster_heartbeat: Duration,
    /// Heartbeat intervals a peer may stay silent before it is dropped.
    pub cluster_liveness: u32,
    /// Broadcast a beacon on UDP `discover_port` every cluster heartbeat, and link to the
    /// brokers of this zone heard there (needs `cluster`).
    pub discover: bool,
    /// UDP port of discovery beacons.
    pub discover_port: u16,
    /// Where beacons are sent: a broadcast address (`127.255.255.255` keeps them on this
    /// host).
    pub discover_address: String,
    /// The auth file (users, password hashes, CURVE keys, permissions; see
    /// `zhub_broker::auth::config`): every endpoint then asks each connection to log in, and
    /// every message is checked against its user's permissions. `None`: anyone who reaches an
    /// endpoint may do anything (the broker warns at start when it listens beyond loopback).
    pub auth: Option<PathBuf>,
}

/// A peer broker to link to (`[[peer]]` in TOML, `--peer` on the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's cluster endpoint (`tcp://HOST:PORT` or `ipc://PATH`).
    pub endpoint: String,
}

/// Default zone.
pub const DEFAULT_ZONE: &str = "default";
/// Default interval of heartbeats on cluster links.
pub const DEFAULT_CLUSTER_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default heartbeats a peer may miss: a silent peer is dropped within 3 s.
pub const DEFAULT_CLUSTER_LIVENESS: u32 = 3;
/// Default broadcast address of discovery beacons.
pub const DEFAULT_DISCOVER_ADDRESS: &str = "255.255.255.255";

/// Default heartbeat interval between broker and workers.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(2500);
/// Default number of ZeroMQ I/O threads.
pub const DEFAULT_IO_THREADS: i32 = 1;
/// Default heartbeats a worker may miss.
pub const DEFAULT_LIVENESS: u32 = 3;
/// Default requests waiting per service.
pub const DEFAULT_SERVICE_QUEUE: usize = 10_000;
/// Default log and key-value requests waiting for the storage thread.
pub const DEFAULT_STORAGE_QUEUE: usize = 10_000;
/// Default attempts per request.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Default deadline of Majordomo clients' requests.
pub const DEFAULT_MDP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bytes held per service.
pub const DEFAULT_SERVICE_QUEUE_BYTES: usize = 64 << 20;
/// Default largest request.
pub const DEFAULT_MAX_MESSAGE: usize = 8 << 20;
/// Default longest request deadline.
pub const DEFAULT_MAX_DEADLINE: Duration = Duration::from_secs(3600);
/// Default durability of the key-value store.
pub const DEFAULT_KV_FSYNC: FsyncPolicy = FsyncPolicy::Always;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.to_owned(),
            publish: DEFAULT_PUBLISH.to_owned(),
            subscribe: DEFAULT_SUBSCRIBE.to_owned(),
            deliver: DEFAULT_DELIVER.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            publish_hwm: DEFAULT_HWM,
            subscribe_hwm: DEFAULT_HWM,
            request_hwm: DEFAULT_HWM,
            io_threads: DEFAULT_IO_THREADS,
            heartbeat: DEFAULT_HEARTBEAT,
            liveness: DEFAULT_LIVENESS,
            service_queue: DEFAULT_SERVICE_QUEUE,
            storage_queue: DEFAULT_STORAGE_QUEUE,
            service_queue_bytes: DEFAULT_SERVICE_QUEUE_BYTES,
            max_message: DEFAULT_MAX_MESSAGE,
            max_deadline: DEFAULT_MAX_DEADLINE,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            mdp_timeout: DEFAULT_MDP_TIMEOUT,
            journal: Vec::new(),
            kv_fsync: DEFAULT_KV_FSYNC,
            max_streams: DEFAULT_MAX_STREAMS,
            http: None,
            allow_faults: false,
            name: None,
            zone: DEFAULT_ZONE.to_owned(),
            cluster: None,
            peer: Vec::new(),
            cluster_heartbeat: DEFAULT_CLUSTER_HEARTBEAT,
            cluster_liveness: DEFAULT_CLUSTER_LIVENESS,
            discover: false,
            discover_port: zhub_protocol::beacon::DEFAULT_PORT,
            discover_address: DEFAULT_DISCOVER_ADDRESS.to_owned(),
            auth: None,
        }
    }
}

/// The allowed range of each numeric setting, checked by [`Config::validate`].
pub mod limits {
    use std::ops::RangeInclusive;
    use std::time::Duration;

    /// High-water marks, in messages. 0 would mean "unbounded" to ZeroMQ, and every queue
    /// of the broker is bounded.
    pub const HWM: RangeInclusive<i32> = 1..=i32::MAX;
    /// ZeroMQ I/O threads.
    pub const IO_THREADS: RangeInclusive<i32> = 1..=64;
    /// Heartbeat interval: 0 makes every worker look dead at once and the router spin.
    pub const HEARTBEAT: RangeInclusive<Duration> =
        Duration::from_millis(10)..=Duration::from_secs(3600);
    /// Heartbeats a worker may miss.
    pub const LIVENESS: RangeInclusive<u32> = 1..=1000;
    /// Requests waiting per service.
    pub const SERVICE_QUEUE: RangeInclusive<usize> = 1..=10_000_000;
    /// Requests waiting for the storage thread (a ZeroMQ high-water mark, so an `i32`).
    pub const STORAGE_QUEUE: RangeInclusive<usize> = 1..=1_000_000;
    /// Attempts per request.
    pub const MAX_ATTEMPTS: RangeInclusive<u32> = 1..=100;
    /// Deadline of Majordomo clients' requests.
    pub const MDP_TIMEOUT: RangeInclusive<Duration> =
        Duration::from_millis(1)..=Duration::from_secs(24 * 3600);
    /// Largest request, in bytes: from 1 KiB (room for any built-in request) to 256 MiB.
    pub const MAX_MESSAGE: RangeInclusive<usize> = 1 << 10..=256 << 20;
    /// Bytes held per service: at least `max_message` (checked apart), at most 64 GiB.
    pub const SERVICE_QUEUE_BYTES: RangeInclusive<usize> = 1 << 10..=64 << 30;
    /// Longest request deadline: the wire carries milliseconds in a `u32` (about 49 days).
    pub const MAX_DEADLINE: RangeInclusive<Duration> =
        Duration::from_secs(1)..=Duration::from_millis(u32::MAX as u64);
    /// Interval of `kv_fsync = "interval:MS"`, in milliseconds.
    pub const KV_FSYNC_INTERVAL_MS: RangeInclusive<u64> = 1..=3_600_000;
    /// `max_streams`: at least one stream.
    pub const MAX_STREAMS: RangeInclusive<usize> = 1..=10_000_000;
}

/// A duration as the config file and flags write it: `2500ms`, `30s`.
fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `Ok` when `value` is in `range`, else the setting's error saying so.
fn in_range<T: PartialOrd + std::fmt::Debug>(
    name: &'static str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), BrokerError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(BrokerError::Setting {
        name,
        reason: format!(
            "{value:?} is out of range; allowed {:?}..={:?}",
            range.start(),
            range.end()
        ),
    })
}

impl Config {
    /// A broker on loopback TCP with ports chosen by the OS (`tcp://127.0.0.1:*`), keeping its
    /// state in `data_dir`: for tests, benchmarks and brokers embedded in another program.
    /// [`crate::Broker::info`] tells the ports it got.
    pub fn local_tcp(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: "tcp://127.0.0.1:*".to_owned(),
            publish: "tcp://127.0.0.1:*".to_owned(),
            subscribe: "tcp://127.0.0.1:*".to_owned(),
            deliver: "tcp://127.0.0.1:*".to_owned(),
            data_dir: data_dir.into(),
            ..Config::default()
        }
    }

    /// A broker on `ipc://` sockets inside `dir` (which also holds its state).
    pub fn local_ipc(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let ipc = |name: &str| format!("ipc://{}", dir.join(name).display());
        Config {
            listen: ipc("main.sock"),
            publish: ipc("publish.sock"),
            subscribe: ipc("subscribe.sock"),
            deliver: ipc("deliver.sock"),
            data_dir: dir.join("data"),
            ..Config::default()
        }
    }

    /// Checks every setting: each number and duration within its range ([`limits`]), the
    /// endpoints well-formed, the journal routes' prefixes and streams valid. Called by
    /// [`crate::Broker::start`]; the binary calls it too, to refuse a bad setting before
    /// anything else.
    ///
    /// # Errors
    /// [`BrokerError::Setting`] naming the first setting at fault and its allowed range, or
    /// [`BrokerError::InvalidEndpoint`].
    pub fn validate(&self) -> Result<(), BrokerError> {
        crate::endpoint::check("main", &self.listen)?;
        crate::endpoint::check("publish", &self.publish)?;
        crate::endpoint::check("subscribe", &self.subscribe)?;
        crate::endpoint::check("deliver", &self.deliver)?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(BrokerError::Setting {
                name: "data_dir",
                reason: "empty; name a directory".to_owned(),
            });
        }
        in_range("publish_hwm", self.publish_hwm, limits::HWM)?;
        in_range("subscribe_hwm", self.subscribe_hwm, limits::HWM)?;
        in_range("request_hwm", self.request_hwm, limits::HWM)?;
        in_range("io_threads", self.io_threads, limits::IO_THREADS)?;
        in_range("heartbeat", self.heartbeat, limits::HEARTBEAT)?;
        in_range("liveness", self.liveness, limits::LIVENESS)?;
        in_range("service_queue", self.service_queue, limits::SERVICE_QUEUE)?;
        in_range("storage_queue", self.storage_queue, limits::STORAGE_QUEUE)?;
        in_range("max_attempts", self.max_attempts, limits::MAX_ATTEMPTS)?;
        in_range("mdp_timeout", self.mdp_timeout, limits::MDP_TIMEOUT)?;
        in_range("max_streams", self.max_streams, limits::MAX_STREAMS)?;
        in_range("max_message", self.max_message, limits::MAX_MESSAGE)?;
        in_range(
            "service_queue_bytes",
            self.service_queue_bytes,
            limits::SERVICE_QUEUE_BYTES,
        )?;
        in_range("max_deadline", self.max_deadline, limits::MAX_DEADLINE)?;
        if self.service_queue_bytes < self.max_message {
            return Err(BrokerError::Setting {
                name: "service_queue_bytes",
                reason: format!(
                    "{} is less than max_message ({}): one request must fit",
                    self.service_queue_bytes, self.max_message
                ),
            });
        }
        if self.mdp_timeout > self.max_deadline {
            return Err(BrokerError::Setting {
                name: "mdp_timeout",
                reason: format!(
                    "{:?} is longer than max_deadline ({:?})",
                    self.mdp_timeout, self.max_deadline
                ),
            });
        }
        if let Some(address) = &self.http {
            crate::http::check_address(address).map_err(|reason| BrokerError::Setting {
                name: "http",
                reason,
            })?;
        }
        if let FsyncPolicy::Interval { ms } = self.kv_fsync {
            in_range("kv_fsync", ms, limits::KV_FSYNC_INTERVAL_MS)?;
        }
        if let Some(cluster) = &self.cluster {
            crate::endpoint::check("cluster", cluster)?;
        }
        for peer in &self.peer {
            crate::endpoint::check("peer", &peer.endpoint)?;
        }
        for (name, value) in [("name", self.name.as_deref()), ("zone", Some(&*self.zone))] {
            let Some(value) = value else { continue };
            if let Err(e) = zhub_protocol::cluster::check_name(name, value) {
                return Err(BrokerError::Setting {
                    name,
                    reason: e.to_string(),
                });
            }
        }
        in_range(
            "cluster_heartbeat",
            self.cluster_heartbeat,
            limits::HEARTBEAT,
        )?;
        in_range("cluster_liveness", self.cluster_liveness, limits::LIVENESS)?;
        if self.discover && self.cluster.is_none() {
            return Err(BrokerError::Setting {
                name: "discover",
                reason: "needs a cluster endpoint (--cluster) for the peers it finds to link to"
                    .to_owned(),
            });
        }
        if self.discover && self.discover_address.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(BrokerError::Setting {
                name: "discover_address",
                reason: format!("{:?} is not an IPv4 address", self.discover_address),
            });
        }
        for route in &self.journal {
            let refuse = |reason: String| BrokerError::Setting {
                name: "journal",
                reason: format!("route {:?} to {:?}: {reason}", route.prefix, route.stream),
            };
            crate::journal::check_prefix(&route.prefix).map_err(refuse)?;
            zhub_protocol::names::check_stream(&route.stream).map_err(|e| refuse(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads a TOML file whose keys are the field names of [`Config`]; missing keys keep their
    /// defaults, unknown keys are an error (a typo must not pass silently).
    ///
    /// # Errors
    /// [`BrokerError::Config`] naming the file and the problem.
    pub fn from_file(path: &Path) -> Result<Self, BrokerError> {
        let text = std::fs::read_to_string(path).map_err(|e| BrokerError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| BrokerError::Config {
            path: path.to_owned(),
            reason: e.message().to_owned(),
        })
    }

    /// Parses the command line (see [`Args`]) into a config: defaults, then the `--config`
    /// file, then flags given explicitly. The result is not validated yet: see
    /// [`Config::validate`].
    ///
    /// # Errors
    /// Clap's error for bad flags (it prints itself), or [`BrokerError::Config`].
    pub fn from_command_line<I, T>(args: I) -> Result<Self, ConfigCliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Args::command_with_defaults().try_get_matches_from(args)?;
        Ok(Self::from_matches(&matches)?)
    }

    fn from_matches(matches: &ArgMatches) -> Result<Self, BrokerError> {
        let args = Args::from_arg_matches(matches).map_err(|e| BrokerError::Config {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        let mut config = match &args.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! flags_override {
            ($($field:ident),*) => {$(
                if let Some(value) = args.$field {
                    config.$field = value;
                }
            )*};
        }
        flags_override!(
            listen,
            publish,
            subscribe,
            deliver,
            data_dir,
            publish_hwm,
            subscribe_hwm,
            request_hwm,
            io_threads,
            heartbeat,
            liveness,
            service_queue,
            storage_queue,
            service_queue_bytes,
            max_message,
            max_deadline,
            max_attempts,
            mdp_timeout,
            kv_fsync,
            max_streams
        );
        if args.http.is_some() {
            config.http = args.http;
        }
        config.allow_faults |= args.allow_faults;
        flags_override!(
            zone,
            cluster_heartbeat,
            cluster_liveness,
            discover_port,
            discover_address
        );
        config.discover |= args.discover;
        if args.name.is_some() {
            config.name = args.name;
        }
        if args.cluster.is_some() {
            config.cluster = args.cluster;
        }
        config.peer.extend(
            args.peer
                .into_iter()
                .map(|endpoint| PeerConfig { endpoint }),
        );
        if args.auth.is_some() {
            config.auth = args.auth;
        }
        config.journal.extend(args.journal);
        Ok(config)
    }
}

/// A command line that could not become a config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigCliError {
    /// Bad flags, or `--help` / `--version` (call `exit()` on it to print and exit).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// The `zhub-broker` command line.
#[derive(Debug, Parser)]
#[command(
    name = "zhub-broker",
    version,
    about = "The zhub broker: publish/subscribe, named services, key-value store and event log over ZeroMQ.",
    long_about = None,
    after_help = "Settings come from the embedded defaults, then the --config file (TOML, keys named \
                  like the flags with '_' for '-'), then the flags given. RUST_LOG sets the log \
                  filter (default: info)."
)]
pub struct Args {
    /// TOML file with any of the settings below (e.g. `listen = "ipc:///tmp/zhub.sock"`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Main endpoint (ROUTER): requests, workers, built-in services. tcp://HOST:PORT or ipc://PATH.
    #[arg(long, value_name = "URL")]
    pub listen: Option<String>,
    /// Publish endpoint (XSUB) where publishers connect; clients learn it from the broker.
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
    /// Subscribe endpoint (XPUB) where plain ZeroMQ SUB sockets connect.
    #[arg(long, value_name = "URL")]
    pub subscribe: Option<String>,
    /// Deliver endpoint (XPUB) where zhub subscribers connect; clients learn it from the broker.
    #[arg(long, value_name = "URL")]
    pub deliver: Option<String>,
    /// Directory for durable state (event log, key-value store); created if missing.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Messages queued per publisher connection before the publisher is pushed back.
    #[arg(long, value_name = "N")]
    pub publish_hwm: Option<i32>,
    /// Messages queued per subscriber before messages to it are dropped and counted.
    #[arg(long, value_name = "N")]
    pub subscribe_hwm: Option<i32>,
    /// Messages queued per peer on the main endpoint.
    #[arg(long, value_name = "N")]
    pub request_hwm: Option<i32>,
    /// ZeroMQ I/O threads.
    #[arg(long, value_name = "N")]
    pub io_threads: Option<i32>,
    /// Interval of heartbeats between broker and workers (e.g. 2500ms, 2.5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// Heartbeats a worker may miss before it is expired and its request retried elsewhere.
    #[arg(long, value_name = "N")]
    pub liveness: Option<u32>,
    /// Requests that may wait per service before new ones are answered "busy".
    #[arg(long, value_name = "N")]
    pub service_queue: Option<usize>,
    /// Log and key-value requests that may wait for the storage thread before new ones are
    /// answered "busy".
    #[arg(long, value_name = "N")]
    pub storage_queue: Option<usize>,
    /// Bytes of requests a service may hold (waiting or being served) before new ones are
    /// answered "busy".
    #[arg(long, value_name = "BYTES")]
    pub service_queue_bytes: Option<usize>,
    /// Largest request accepted on the main endpoint, in bytes; larger ones are answered
    /// "too large" (413).
    #[arg(long, value_name = "BYTES")]
    pub max_message: Option<usize>,
    /// Longest deadline a request may ask for; longer timeouts are cut to it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_deadline: Option<Duration>,
    /// Times a request is handed to a worker before the client is told the worker failed.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Deadline of requests from plain Majordomo clients, which carry none.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub mdp_timeout: Option<Duration>,
    /// Journal bus messages whose topic starts with PREFIX into the event log stream STREAM
    /// (a durable topic); repeatable, added to the config file's `[[journal]]` routes.
    #[arg(long, value_name = "PREFIX=STREAM", value_parser = parse_route)]
    pub journal: Vec<JournalRoute>,
    /// Durability of the key-value store: always (a write is acknowledged once synced; many
    /// writers share each sync), interval:MS, or never (left to the OS).
    #[arg(long, value_name = "POLICY")]
    pub kv_fsync: Option<FsyncPolicy>,
    /// Most event log streams; creating one more is refused.
    #[arg(long, value_name = "N")]
    pub max_streams: Option<usize>,
    /// Serve /metrics (Prometheus), /api/... (JSON) and the dashboard over HTTP at IP:PORT
    /// (e.g. 127.0.0.1:8222); off unless given.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<String>,
    /// Let `zhub fault` (the `zhub.fault` service) drop and delay bus messages on chosen
    /// topics, for tests under real faults; off unless given.
    #[arg(long)]
    pub allow_faults: bool,
    /// This broker's name among its peers, 1 to 64 bytes without '@' [default: zhub- and the
    /// start of its random id].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The zone this broker belongs to (1 to 64 bytes without '@'); brokers of one zone form
    /// a full mesh.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
    /// Cluster endpoint (ROUTER) where peer brokers connect, e.g. tcp://127.0.0.1:5560; off
    /// unless given.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// A peer broker's cluster endpoint to link to; repeatable, added to the config file's
    /// `[[peer]]` tables.
    #[arg(long, value_name = "URL")]
    pub peer: Vec<String>,
    /// Interval of heartbeats on each cluster link.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub cluster_heartbeat: Option<Duration>,
    /// Heartbeats a peer may miss before it is dropped and what it held dispatched again.
    #[arg(long, value_name = "N")]
    pub cluster_liveness: Option<u32>,
    /// Announce this broker by UDP beacon and link to the brokers of its zone it hears
    /// (needs --cluster).
    #[arg(long)]
    pub discover: bool,
    /// UDP port of discovery beacons.
    #[arg(long, value_name = "PORT")]
    pub discover_port: Option<u16>,
    /// Broadcast address beacons are sent to (127.255.255.255 keeps them on this host).
    #[arg(long, value_name = "IP")]
    pub discover_address: Option<String>,
    /// Require a login on every endpoint, with the users and permissions of this auth file
    /// (reloaded on SIGHUP); off unless given.
    #[arg(long, value_name = "FILE")]
    pub auth: Option<PathBuf>,
    /// Read a password from standard input, print its hash for the auth file's `password`
    /// (argon2id, PHC string), and exit.
    #[arg(long)]
    pub hash_password: bool,
}

impl Args {
    /// The command line, each flag's `[default: ...]` in `--help` taken from
    /// [`Config::default`], so that the defaults have one source.
    pub fn command_with_defaults() -> clap::Command {
        let d = Config::default();
        let defaults: [(&str, String); 25] = [
            ("listen", d.listen),
            ("publish", d.publish),
            ("subscribe", d.subscribe),
            ("deliver", d.deliver),
            ("data_dir", d.data_dir.display().to_string()),
            ("publish_hwm", d.publish_hwm.to_string()),
            ("subscribe_hwm", d.subscribe_hwm.to_string()),
            ("request_hwm", d.request_hwm.to_string()),
            ("io_threads", d.io_threads.to_string()),
            ("heartbeat", duration_text(d.heartbeat)),
            ("liveness", d.liveness.to_string()),
            ("service_queue", d.service_queue.to_string()),
            ("storage_queue", d.storage_queue.to_string()),
            ("service_queue_bytes", d.service_queue_bytes.to_string()),
            ("max_message", d.max_message.to_string()),
            ("max_deadline", duration_text(d.max_deadline)),
            ("max_attempts", d.max_attempts.to_string()),
            ("mdp_timeout", duration_text(d.mdp_timeout)),
            ("kv_fsync", d.kv_fsync.to_string()),
            ("max_streams", d.max_streams.to_string()),
            ("zone", d.zone),
            ("cluster_heartbeat", duration_text(d.cluster_heartbeat)),
            ("cluster_liveness", d.cluster_liveness.to_string()),
            ("discover_port", d.discover_port.to_string()),
            ("discover_address", d.discover_address),
        ];
        // Shown in the help only: a flag's value overrides the config file when it is given,
        // and a default here would look given.
        defaults
            .into_iter()
            .fold(Args::command(), |command, (id, text)| {
                command.mut_arg(id, |arg| {
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    arg.help(format!("{help} [default: {text}]"))
                })
            })
    }
}

/// Parses `PREFIX=STREAM` (split at the last `=`: stream names have none).
///
/// # Errors
/// A message when there is no `=` or no stream.
pub fn parse_route(text: &str) -> Result<JournalRoute, String> {
    match text.rsplit_once('=') {
        Some((prefix, stream)) if !stream.is_empty() => Ok(JournalRoute {
            prefix: prefix.to_owned(),
            stream: stream.to_owned(),
        }),
        _ => Err(format!("{text:?}: expected PREFIX=STREAM")),
    }
}

/// Durations in the config file, written as text: `heartbeat = "2.5s"`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Durability policies in the config file, written as text: `kv_fsync = "interval:100"`.
mod policy_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use zhub_protocol::log::FsyncPolicy;

    pub(super) fn serialize<S: Serializer>(p: &FsyncPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FsyncPolicy, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_and_zone_names_are_checked() {
        for (name, zone, ok) in [
            (Some("node1"), "lan1", true),
            (Some("a@b"), "lan1", false),
            (Some("node1"), "lan@1", false),
            (Some(""), "lan1", false),
            (Some("node1"), "", false),
            (Some("tab\there"), "lan1", false),
        ] {
            let config = Config {
                name: name.map(str::to_owned),
                zone: zone.to_owned(),
                ..Config::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{name:?} {zone:?}");
        }
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::from_command_line(["zhub-broker"]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen, "tcp://127.0.0.1:5555");
        assert_eq!(c.publish, "tcp://127.0.0.1:5556");
        assert_eq!(c.subscribe, "tcp://127.0.0.1:5557");
        assert_eq!(c.data_dir, PathBuf::from("./zhub-data"));
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhub.toml");
        std::fs::write(
            &path,
            "listen = \"ipc:///tmp/a\"\npublish = \"tcp://127.0.0.1:7000\"\nsubscribe_hwm = 5\nheartbeat = \"500ms\"\n",
        )
        .unwrap();
        let c = Config::from_command_line([
            "zhub-broker",
            "--config",
            path.to_str().unwrap(),
            "--publish",
            "tcp://127.0.0.1:7001",
        ])
        .unwrap();
        assert_eq!(c.listen, "ipc:///tmp/a");
        assert_eq!(c.publish, "tcp://127.0.0.1:7001");
        assert_eq!(c.subscribe, DEFAULT_SUBSCRIBE);
        assert_eq!(c.subscribe_hwm, 5);
        assert_eq!(c.heartbeat, Duration::from_millis(500));
        assert_eq!(c.kv_fsync, FsyncPolicy::Always);
        assert_eq!(c.max_streams, DEFAULT_MAX_STREAMS);
        assert_eq!(c.http, None);
        std::fs::write(&path, "http = \"127.0.0.1:8222\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:8222"));
        let c = Config::from_command_line(["zhub-broker", "--http", "127.0.0.1:0"]).unwrap();
        assert_eq!(c.http.as_deref(), Some("127.0.0.1:0"));
        std::fs::write(&path, "max_streams = 7\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().max_streams, 7);
        let c = Config::from_command_line(["zhub-broker", "--max-streams", "9"]).unwrap();
        assert_eq!(c.max_streams, 9);
        std::fs::write(&path, "kv_fsync = \"interval:50\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.kv_fsync, FsyncPolicy::Interval { ms: 50 });
        std::fs::write(&path, "kv_fsync = \"sometimes\"\n").unwrap();
        assert!(Config::from_file(&path).is_err());
        assert!(!Config::default().allow_faults);
        std::fs::write(&path, "allow_faults = true\n").unwrap();
        assert!(Config::from_file(&path).unwrap().allow_faults);
        let c = Config::from_command_line(["zhub-broker", "--allow-faults"]).unwrap();
        assert!(c.allow_faults);
    }

    #[test]
    fn cluster_settings_come_from_file_and_flags_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhub.toml");
        std::fs::write(
            &path,
            "name = \"node2\"\ncluster = \"tcp://127.0.0.1:7560\"\n\
             [[peer]]\nendpoint = \"tcp://127.0.0.1:6560\"\n",
        )
        .unwrap();
        let c = Config::from_command_line([
            "zhub-broker",
            "--config",
            path.to_str().unwrap(),
            "--peer",
            "tcp://127.0.0.1:8560",
            "--zone",
            "eu",
        ])
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("node2"));
        assert_eq!(c.zone, "eu");
        let peers: Vec<&str> = c.peer.iter().map(|p| p.endpoint.as_str()).collect();
        assert_eq!(peers, ["tcp://127.0.0.1:6560", "tcp://127.0.0.1:8560"]);
        assert!(c.validate().is_ok());
        let refused = |c: Config| c.validate().unwrap_err().to_string();
        let bad_peer = Config {
            peer: vec![PeerConfig {
                endpoint: "nonsense".into(),
            }],
            ..Config::default()
        };
        assert!(refused(bad_peer).contains("peer"));
        let no_cluster = Config {
            discover: true,
            ..Config::default()
        };
        assert!(refused(no_cluster).contains("--cluster"));
    }

    #[test]
    fn journal_routes_come_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhub.toml");
        std::fs::write(
            &path,
            "[[journal]]\nprefix = \"orders.\"\nstream = \"orders\"\n",
        )
        .unwrap();
        let c = Config::from_command_line([
            "zhub-broker",
            "--config",
            path.to_str().unwrap(),
            "--journal",
            "a=b=audit",
        ])
        .unwrap();
        let route = |prefix: &str, stream: &str| JournalRoute {
            prefix: prefix.into(),
            stream: stream.into(),
        };
        assert_eq!(
            c.journal,
            vec![route("orders.", "orders"), route("a=b", "audit")]
        );
        assert!(parse_route("no-stream=").is_err());
        assert!(parse_route("plain").is_err());
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_setting_and_its_range() {
        assert!(Config::default().validate().is_ok());
        let refused = |tweak: fn(&mut Config)| {
            let mut c = Config::default();
            tweak(&mut c);
            c.validate().unwrap_err().to_string()
        };
        let err = refused(|c| c.heartbeat = Duration::ZERO);
        assert!(err.contains("heartbeat") && err.contains("3600s"), "{err}");
        let err = refused(|c| c.publish_hwm = -1);
        assert!(err.contains("publish_hwm") && err.contains("-1"), "{err}");
        let err = refused(|c| c.subscribe_hwm = 0);
        assert!(err.contains("subscribe_hwm"), "{err}");
        assert!(refused(|c| c.request_hwm = -5).contains("request_hwm"));
        assert!(refused(|c| c.io_threads = 0).contains("io_threads"));
        assert!(refused(|c| c.liveness = 0).contains("liveness"));
        assert!(refused(|c| c.service_queue = 0).contains("service_queue"));
        assert!(refused(|c| c.storage_queue = 0).contains("storage_queue"));
        assert!(refused(|c| c.storage_queue = 2_000_000).contains("storage_queue"));
        assert!(refused(|c| c.max_attempts = 0).contains("max_attempts"));
        assert!(refused(|c| c.mdp_timeout = Duration::ZERO).contains("mdp_timeout"));
        assert!(refused(|c| c.kv_fsync = FsyncPolicy::Interval { ms: 0 }).contains("kv_fsync"));
        assert!(refused(|c| c.data_dir = PathBuf::new()).contains("data_dir"));
        assert!(refused(|c| c.max_message = 0).contains("max_message"));
        let err = refused(|c| c.http = Some("localhost:http".into()));
        assert!(err.contains("http") && err.contains("IP:PORT"), "{err}");
        let c = Config {
            http: Some("127.0.0.1:0".into()),
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        assert!(refused(|c| c.service_queue_bytes = 1 << 20).contains("service_queue_bytes"));
        assert!(
            refused(|c| c.max_deadline = Duration::from_secs(90 * 24 * 3600))
                .contains("max_deadline")
        );
        assert!(refused(|c| c.mdp_timeout = Duration::from_secs(7200)).contains("mdp_timeout"));
        let err = refused(|c| {
            c.journal.push(JournalRoute {
                prefix: String::new(),
                stream: "all".into(),
            })
        });
        assert!(err.contains("journal"), "{err}");
        let err = refused(|c| {
            c.journal.push(JournalRoute {
                prefix: "orders.".into(),
                stream: "a/b".into(),
            })
        });
        assert!(err.contains("journal") && err.contains("stream"), "{err}");
    }

    #[test]
    fn the_help_shows_the_defaults_of_config_default() {
        let help = Args::command_with_defaults().render_help().to_string();
        for shown in [
            "[default: tcp://127.0.0.1:5555]",
            "[default: 2500ms]",
            "[default: 30s]",
            "[default: 10000]",
            "[default: always]",
            "[default: ./zhub-data]",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
        // A flag not given leaves the config file's value alone.
        let c = Config::from_command_line(["zhub-broker", "--liveness", "7"]).unwrap();
        assert_eq!(c.liveness, 7);
        assert_eq!(c.heartbeat, DEFAULT_HEARTBEAT);
    }

    #[test]
    fn unknown_keys_and_bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zhub.toml");
        std::fs::write(&path, "lisen = \"tcp://127.0.0.1:1\"\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = Config::from_file(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
    }
}
