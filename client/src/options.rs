//! [`ClientOptions`]: how a client connects, with every default documented.

use std::time::Duration;

use crate::{Client, ConnectError, CurveKeyPair, KeyError};

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
    pub(crate) login: Option<Login>,
}

/// How a client or a worker logs in to a broker started with an auth file.
///
/// A broker whose auth file has a `[curve]` section takes CURVE logins only; one without it
/// takes PLAIN logins only (a ZeroMQ socket is a server of one mechanism).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Login {
    /// ZeroMQ's PLAIN mechanism: a user name and a password, sent in clear.
    Plain(Credentials),
    /// ZeroMQ's CURVE mechanism: the connection is encrypted, the broker proves that it holds
    /// the secret key of `server`, and this side that it holds `keys`; the broker logs it in
    /// as the user whose `curve_keys` hold `keys`' public key.
    Curve {
        /// The broker's public key, Z85 (the `public` of the broker's `[curve]`).
        server: String,
        /// This side's key pair.
        keys: CurveKeyPair,
    },
}

impl Login {
    /// A PLAIN login as `user` with `password`.
    pub fn plain(user: impl Into<String>, password: impl Into<String>) -> Login {
        Login::Plain(Credentials::new(user, password))
    }

    /// A CURVE login with `keys` to the broker whose public key is `server_public` (Z85).
    pub fn curve(server_public: impl Into<String>, keys: CurveKeyPair) -> Login {
        Login::Curve {
            server: server_public.into(),
            keys,
        }
    }

    /// Checks what can be checked before connecting: that a CURVE login's server key is a
    /// Z85 CURVE key (the key pair was checked when it was made).
    ///
    /// # Errors
    /// [`crate::KeyErrorKind::InvalidKey`], saying what is wrong with the server key.
    pub fn check(&self) -> Result<(), KeyError> {
        match self {
            Login::Plain(_) => Ok(()),
            Login::Curve { server, .. } => CurveKeyPair::validate_public(server),
        }
    }

    /// Makes `socket` log in this way on every connection it makes (set before `connect`).
    /// Used on every socket a client opens, and by workers.
    ///
    /// # Errors
    /// ZeroMQ's error if the options cannot be set (`EINVAL` for a server key that
    /// [`Login::check`] refuses).
    pub fn apply(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        match self {
            Login::Plain(credentials) => credentials.apply(socket),
            Login::Curve { server, keys } => {
                socket.set_curve_serverkey(server.as_bytes())?;
                socket.set_curve_publickey(keys.public().as_bytes())?;
                socket.set_curve_secretkey(keys.secret().as_bytes())
            }
        }
    }
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
    /// - `login`: none, neither [`credentials`](Self::credentials) nor
    ///   [`curve`](Self::curve) (for a broker without an auth file).
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            linger: Duration::from_secs(2),
            publish_hwm: 10_000,
            subscribe_hwm: 10_000,
            login: None,
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
    /// subscribe), for a broker started with an auth file without `[curve]` (ZeroMQ's PLAIN
    /// mechanism). A wrong password or an unknown user makes connecting fail at once with
    /// `Refused`. Replaces a login set before ([`Self::curve`] included).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.login = Some(Login::plain(user, password));
        self
    }

    /// As [`Self::credentials`], from a [`Credentials`] value.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.login = Some(Login::Plain(credentials));
        self
    }

    /// Logs in with CURVE on every socket the client opens (main, publish, subscribe), for a
    /// broker whose auth file has `[curve]`: `server_public` is the broker's public key (Z85,
    /// the `public` of its `[curve]`, or [`CurveKeyPair::load_public`] of its `.pub` file)
    /// and `keys` this client's key pair, whose public key the auth file lists in a user's
    /// `curve_keys`. The connection is encrypted, and each end proves that it holds its
    /// secret key.
    ///
    /// As with a wrong password, a key the broker does not know makes connecting fail at once
    /// with `Refused`. A server key that is not the broker's looks like a broker that does
    /// not answer (`TimedOut`): the broker cannot read that greeting, and says nothing. A
    /// server key that is not a Z85 CURVE key fails at once, with `InvalidKey`.
    /// Replaces a login set before ([`Self::credentials`] included).
    ///
    /// ```no_run
    /// use zhub_client::{ClientOptions, CurveKeyPair};
    /// let server = CurveKeyPair::load_public("broker.key.pub")?;
    /// let keys = CurveKeyPair::load("app.key")?;
    /// let client = ClientOptions::new()
    ///     .curve(server, keys)
    ///     .connect("tcp://broker.example:5555")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn curve(mut self, server_public: impl Into<String>, keys: CurveKeyPair) -> Self {
        self.login = Some(Login::curve(server_public, keys));
        self
    }

    /// Logs in as `login` says; `None` connects without a login.
    pub fn login(mut self, login: Option<Login>) -> Self {
        self.login = login;
        self
    }

    /// Applies the login settings to a socket about to connect.
    pub(crate) fn secure(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        match &self.login {
            Some(login) => login.apply(socket),
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
