//! [`BrokerError`]: what can stop the broker from starting or running.

use std::path::PathBuf;

/// Why the broker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// An endpoint is not a URL zhub can bind.
    #[error("invalid {role} endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// Which endpoint (`main`, `publish`, `subscribe`).
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding an endpoint failed (address in use, no such interface, permission).
    #[error("cannot bind {role} endpoint {endpoint}: {source}")]
    Bind {
        /// Which endpoint.
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
        /// ZeroMQ's reason.
        #[source]
        source: zmq::Error,
    },
    /// An `ipc://` endpoint's socket file is served by another live process.
    #[error("cannot bind {role} endpoint {endpoint}: address in use by another process")]
    IpcInUse {
        /// Which endpoint.
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
    },
    /// The data directory cannot be created, written or locked.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another broker holds the data directory's lock.
    #[error("data directory {0} is in use by another broker")]
    DataDirLocked(PathBuf),
    /// The configuration file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting has a value that cannot work (see [`crate::Config::validate`]).
    #[error("invalid setting {name} (--{}): {reason}", name.replace('_', "-"))]
    Setting {
        /// The setting, as named in the config file (the flag is the same with `-` for `_`).
        name: &'static str,
        /// What is wrong, with the allowed range.
        reason: String,
    },
    /// The event log could not be opened or recovered.
    #[error("event log: {0}")]
    Storage(#[from] zhub_eventlog::EventLogError),
    /// The key-value store could not be opened or recovered.
    #[error("key-value store: {0}")]
    Kv(#[from] zhub_kvstore::KvError),
    /// A ZeroMQ call failed while setting up sockets.
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    /// A broker thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}
