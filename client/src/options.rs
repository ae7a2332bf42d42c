//! [`ClientOptions`]: how a client connects, with every default documented.

use std::time::Duration;

use crate::{Client, ConnectError};

/// Default URL of the broker's main endpoint.
pub const DEFAULT_URL: &str = "tcp://127.0.0.1:5555";

/// Settings for [`Client`]; build with the methods, then [`ClientOptions::connect`].
///
/// ```no_run
/// use std::time::Duration;
/// let client = zhub_client::ClientOptions::new()
///     .timeout(Duration::from_secs(2))
///     .connect("tcp://127.0.0.1:5555")?;
/// # Ok::<(), zhub_client::ConnectError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ClientOptions {
    pub(crate) timeout: Duration,
    pub(crate) linger: Duration,
    pub(crate) publish_hwm: i32,
    pub(crate) subscribe_hwm: i32,
}

impl Default for ClientOptions {
    /// - `timeout`: 5 s, for connecting, requests, publishes pushed back by a full broker queue,
    ///   and subscriptions to be confirmed;
    /// - `linger`: 2 s that dropping the client waits for queued messages to leave;
    /// - `publish_hwm` and `subscribe_hwm`: 10 000 messages queued locally per socket.
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            publish_hwm: 10_000,
            subscribe_hwm: 10_000,
        }
    }
}

impl ClientOptions {
    /// The defaults (see [`ClientOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long connecting, a request, a publish pushed back by the broker, or a subscription
    /// waiting for its confirmation may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long dropping the client waits for messages still queued to reach the broker.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Messages queued locally for the broker before `publish` waits.
    pub fn publish_hwm(mut self, messages: i32) -> Self {
        self.publish_hwm = messages;
        self
    }

    /// Messages queued locally by each subscriber before the broker's copy of its queue fills.
    pub fn subscribe_hwm(mut self, messages: i32) -> Self {
        self.subscribe_hwm = messages;
        self
    }

    /// Connects to the broker's main endpoint with these options.
    ///
    /// # Errors
    /// See [`Client::connect`].
    pub fn connect(self, url: &str) -> Result<Client, ConnectError> {
        Client::connect_with(url, self)
    }
}

pub(crate) fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Options of one request; see [`Client::request_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RequestOptions {
    pub(crate) timeout: Duration,
}

impl Default for RequestOptions {
    /// `timeout`: 5 s, the broker's answer included (it replies "timed out" or "no service"
    /// at the deadline rather than leaving the client waiting).
    fn default() -> Self {
        RequestOptions {
            timeout: Duration::from_secs(5),
        }
    }
}

impl RequestOptions {
    /// The defaults (see [`RequestOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the request may take, reply included. The broker never hands the request to
    /// a worker once this has passed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
