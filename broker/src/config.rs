//! Broker settings: embedded defaults, a TOML file (`--config`), then command-line flags, each
//! overriding the one before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::{Deserialize, Serialize};
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
}

/// Default heartbeat interval between broker and workers.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(2500);

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
            io_threads: 1,
            heartbeat: DEFAULT_HEARTBEAT,
            liveness: 3,
            service_queue: 10_000,
            max_attempts: 3,
            mdp_timeout: Duration::from_secs(30),
            journal: Vec::new(),
            kv_fsync: FsyncPolicy::Always,
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
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
    /// file, then flags given explicitly.
    ///
    /// # Errors
    /// Clap's error for bad flags (it prints itself), or [`BrokerError::Config`].
    pub fn from_command_line<I, T>(args: I) -> Result<Self, ConfigCliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Args::command().try_get_matches_from(args)?;
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
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        macro_rules! flags_override {
            ($($field:ident),*) => {$(
                if given(stringify!($field)) {
                    config.$field = args.$field;
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
            max_attempts,
            mdp_timeout,
            kv_fsync,
            max_streams
        );
        if given("journal") {
            config.journal.extend(args.journal);
        }
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
    #[arg(long, value_name = "URL", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Publish endpoint (XSUB) where publishers connect; clients learn it from the broker.
    #[arg(long, value_name = "URL", default_value = DEFAULT_PUBLISH)]
    pub publish: String,
    /// Subscribe endpoint (XPUB) where plain ZeroMQ SUB sockets connect.
    #[arg(long, value_name = "URL", default_value = DEFAULT_SUBSCRIBE)]
    pub subscribe: String,
    /// Deliver endpoint (XPUB) where zhub subscribers connect; clients learn it from the broker.
    #[arg(long, value_name = "URL", default_value = DEFAULT_DELIVER)]
    pub deliver: String,
    /// Directory for durable state (event log, key-value store); created if missing.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Messages queued per publisher connection before the publisher is pushed back.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HWM)]
    pub publish_hwm: i32,
    /// Messages queued per subscriber before messages to it are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HWM)]
    pub subscribe_hwm: i32,
    /// Messages queued per peer on the main endpoint.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_HWM)]
    pub request_hwm: i32,
    /// ZeroMQ I/O threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub io_threads: i32,
    /// Interval of heartbeats between broker and workers (e.g. 2500ms, 2.5s).
    #[arg(long, value_name = "DURATION", default_value = "2.5s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before it is expired and its request retried elsewhere.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub liveness: u32,
    /// Requests that may wait per service before new ones are answered "busy".
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub service_queue: usize,
    /// Times a request is handed to a worker before the client is told the worker failed.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: u32,
    /// Deadline of requests from plain Majordomo clients, which carry none.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub mdp_timeout: Duration,
    /// Journal bus messages whose topic starts with PREFIX into the event log stream STREAM
    /// (a durable topic); repeatable, added to the config file's `[[journal]]` routes.
    #[arg(long, value_name = "PREFIX=STREAM", value_parser = parse_route)]
    pub journal: Vec<JournalRoute>,
    /// Durability of the key-value store: always (a write is acknowledged once synced; many
    /// writers share each sync), interval:MS, or never (left to the OS).
    #[arg(long, value_name = "POLICY", default_value = "always")]
    pub kv_fsync: FsyncPolicy,
    /// Most event log streams; creating one more is refused.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,
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

/// Parses `500ms`, `2.5s`, `1m`, `1h`, or a bare number of seconds.
///
/// # Errors
/// A message saying what is wrong with the text.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 500ms, 2.5s, 1m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
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
        std::fs::write(&path, "max_streams = 7\n").unwrap();
        assert_eq!(Config::from_file(&path).unwrap().max_streams, 7);
        let c = Config::from_command_line(["zhub-broker", "--max-streams", "9"]).unwrap();
        assert_eq!(c.max_streams, 9);
        std::fs::write(&path, "kv_fsync = \"interval:50\"\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.kv_fsync, FsyncPolicy::Interval { ms: 50 });
        std::fs::write(&path, "kv_fsync = \"sometimes\"\n").unwrap();
        assert!(Config::from_file(&path).is_err());
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
    fn durations_parse() {
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
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
