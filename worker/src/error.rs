//! [`WorkerError`]: what can go wrong for a worker.

/// Why a worker could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The broker URL is not `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME`.
    #[error("invalid broker URL {0:?}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")]
    InvalidUrl(String),
    /// The service name breaks the naming rules or is reserved (`zhub.*`, `mmi.*`).
    #[error("invalid service name: {0}")]
    InvalidService(String),
    /// An option has a value that cannot work (a zero heartbeat makes the worker spin and
    /// the broker expire it at once).
    #[error("invalid worker option {name}: {reason}")]
    InvalidOption {
        /// The option (the [`crate::WorkerOptions`] method that sets it).
        name: &'static str,
        /// What is wrong, with the allowed range.
        reason: String,
    },
    /// A request body could not be decoded, or a reply encoded, as MessagePack.
    #[error("codec: {0}")]
    Codec(#[from] zhub_protocol::ProtocolError),
    /// A ZeroMQ call failed.
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    /// The I/O thread could not be started.
    #[error("cannot start the worker's I/O thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The worker was stopped (see [`crate::Stopper`]) or its I/O thread ended.
    #[error("worker stopped")]
    Stopped,
}
