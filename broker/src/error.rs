//! [`BrokerError`]: what can stop the broker from starting or running.

use std::path::PathBuf;

/// Why the broker could not start or had to stop.
///
/// Each message includes its cause (the OS's or ZeroMQ's reason), so the broker's one-line
/// report says it all, and [`std::error::Error::source`] returns `None`: a reporter that
/// walks the chain of sources would otherwise print every cause twice. The cause itself is
/// in the variant's `cause` field.
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
    #[error("cannot bind {role} endpoint {endpoint}: {cause}")]
    Bind {
        /// Which endpoint.
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
        /// ZeroMQ's reason.
        cause: zmq::Error,
    },
    /// An `ipc://` endpoint's socket file is served by another live process.
    #[error("cannot bind {role} endpoint {endpoint}: address in use by another process")]
    IpcInUse {
        /// Which endpoint.
        role: &'static str,
        /// The endpoint as configured.
        endpoint: String,
    },
    /// The HTTP endpoint cannot be bound (address in use, no such interface, permission).
    #[error("cannot bind http endpoint {address}: {reason}")]
    HttpBind {
        /// The address as configured.
        address: String,
        /// Why not.
        reason: String,
    },
    /// The data directory cannot be created, written or locked.
    #[error("data directory {path}: {cause}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// The auth file cannot be used.
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
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
    Storage(zhub_eventlog::EventLogError),
    /// The key-value store could not be opened or recovered.
    #[error("key-value store: {0}")]
    Kv(zhub_kvstore::KvError),
    /// A ZeroMQ call failed while setting up sockets.
    #[error("zeromq: {0}")]
    Zmq(zmq::Error),
    /// A broker thread could not be started.
    #[error("cannot start thread {name}: {cause}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// A broker thread stopped on a failure (an error or a panic, logged where it happened):
    /// the broker cannot go on without it.
    #[error("broker thread {name} stopped on a failure; the broker cannot go on without it")]
    ThreadFailed {
        /// The thread's name.
        name: &'static str,
    },
}

// By hand rather than `#[from]`, which would make the cause a `source()` as well.
impl From<zhub_eventlog::EventLogError> for BrokerError {
    fn from(cause: zhub_eventlog::EventLogError) -> Self {
        BrokerError::Storage(cause)
    }
}

impl From<zhub_kvstore::KvError> for BrokerError {
    fn from(cause: zhub_kvstore::KvError) -> Self {
        BrokerError::Kv(cause)
    }
}

impl From<zmq::Error> for BrokerError {
    fn from(cause: zmq::Error) -> Self {
        BrokerError::Zmq(cause)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    /// The causes printed by a reporter that shows `Display` and then each `source()`.
    fn report(e: &dyn Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    #[test]
    fn a_cause_is_reported_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry here");
        let errors = [
            BrokerError::Bind {
                role: "main",
                endpoint: "tcp://127.0.0.1:1".into(),
                cause: zmq::Error::EADDRINUSE,
            },
            BrokerError::DataDir {
                path: "/data".into(),
                cause: io(),
            },
            BrokerError::Thread {
                name: "zhub-router",
                cause: io(),
            },
            BrokerError::Zmq(zmq::Error::EADDRINUSE),
            BrokerError::Storage(zhub_eventlog::EventLogError::NoSuchStream("s".into())),
        ];
        for e in &errors {
            let text = report(e);
            let cause = if text.contains("no entry here") {
                "no entry here"
            } else if text.contains("no such stream") {
                "no such stream"
            } else {
                "Address already in use"
            };
            assert_eq!(text.matches(cause).count(), 1, "{text}");
        }
    }
}
