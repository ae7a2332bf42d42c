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
    pub(crate) credentials: Option<Credentials>,
}

/// A user name and password for a broker that requires a login (ZeroMQ's PLAIN mechanism).
/// Its `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// `user` logging in with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user name and the password, for another library's options.
    pub fn into_parts(self) -> (String, String) {
        (self.user, self.password)
    }

    /// Makes `socket` log in with these credentials on every connection it makes (set
    /// before `connect`). Used on every socket a client opens; workers use it too.
    ///
    /// # Errors
    /// ZeroMQ's error if the options cannot be set.
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_plain_username(Some(&self.user))?;
        socket.set_plain_password(Some(&self.password))
    }

    /// Reads credentials from text: `user:password` on the first line (the password is the
    /// rest of the line, colons included), the format of `--creds` files and `ZHUB_CREDS`.
    ///
    /// # Errors
    /// A message when there is no `user:` part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let line = text.lines().next().unwrap_or_default();
        match line.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credentials::new(user, password)),
            _ => Err("expected user:password".to_owned()),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Default for ClientOptions {
    /// - `timeout`: 5 s, for connecting, requests, publishes pushed back by a full broker queue,
    ///   and subscriptions to be confirmed;
    /// - `linger`: 2 s that dropping the client waits for queued messages to leave;
    /// - `publish_hwm` and `subscribe_hwm`: 10 000 messages queued locally per socket;
    /// - `credentials`: none (for a broker without an auth file).
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            publish_hwm: 10_000,
            subscribe_hwm: 10_000,
            credentials: None,
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

    /// Logs in as `user` with `password` on every socket the client opens (main, publish,
    /// subscribe), for a broker started with an auth file. A wrong password looks like a
    /// broker that does not answer: ZeroMQ closes the connection during the handshake, so
    /// connecting fails with `TimedOut`.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(user, password));
        self
    }

    /// As [`Self::credentials`], from a [`Credentials`] value.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Applies the login settings to a socket about to connect.
    pub(crate) fn secure(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        match &self.credentials {
            Some(credentials) => credentials.apply(socket),
            None => Ok(()),
        }
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
