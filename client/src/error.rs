//! Errors of the client's operations: one type per operation, each with a matchable `kind()`.

use std::fmt;

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of one client operation; `K` says which kinds that operation can fail with.
///
/// Match on [`Error::kind`]; the `Display` text adds the details, and
/// [`std::error::Error::source`] the underlying cause where there is one.
pub struct Error<K> {
    kind: K,
    detail: String,
    source: Option<Cause>,
}

impl<K: Copy> Error<K> {
    pub(crate) fn new(kind: K, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: K,
        detail: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            detail: detail.into(),
            source: Some(Box::new(source)),
        }
    }

    /// What went wrong, to match on.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// The details the `Display` text adds to the kind.
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }
}

impl<K: fmt::Display> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.detail)
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("source", &self.source)
            .finish()
    }
}

impl<K: fmt::Debug + fmt::Display> std::error::Error for Error<K> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// A name its rule refuses, said once: `invalid topic: "orders.*": has a wildcard token ...`,
/// naming the kind of name only where the error's kind does not (`invalid topic filter: queue
/// group "": empty`). The protocol error would say it all again, so it is not kept as the
/// source.
pub(crate) fn refused_name<K: Copy + fmt::Display>(
    kind: K,
    e: zhub_protocol::ProtocolError,
) -> Error<K> {
    let detail = match e {
        zhub_protocol::ProtocolError::InvalidName { what, name, reason }
            if kind.to_string().ends_with(what) =>
        {
            format!("{name:?}: {reason}")
        }
        zhub_protocol::ProtocolError::InvalidName { what, name, reason } => {
            format!("{what} {name:?}: {reason}")
        }
        other => other.to_string(),
    };
    Error::new(kind, detail)
}

/// Gives a failure its kind and detail: `.kind(K, "detail")?` says once what
/// `.map_err(|e| Error::with_source(K, "detail", e))?` spells out, keeping the failure as the
/// [`std::error::Error::source`]. (async-nats's `WithKind` does the same.)
pub(crate) trait WithKind<T> {
    /// The error, if any, as an [`Error`] of `kind` with `detail`, caused by the original.
    fn kind<K: Copy>(self, kind: K, detail: impl Into<String>) -> Result<T, Error<K>>;

    /// As [`WithKind::kind`], with a detail made only when there is an error.
    fn kind_with<K: Copy, D: Into<String>>(
        self,
        kind: K,
        detail: impl FnOnce() -> D,
    ) -> Result<T, Error<K>>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> WithKind<T> for Result<T, E> {
    fn kind<K: Copy>(self, kind: K, detail: impl Into<String>) -> Result<T, Error<K>> {
        self.map_err(|e| Error::with_source(kind, detail, e))
    }

    fn kind_with<K: Copy, D: Into<String>>(
        self,
        kind: K,
        detail: impl FnOnce() -> D,
    ) -> Result<T, Error<K>> {
        self.map_err(|e| Error::with_source(kind, detail(), e))
    }
}

macro_rules! kinds {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self {
                    $($name::$variant => $text,)*
                })
            }
        }
    };
}

kinds! {
    /// Why [`crate::Client::connect`] failed.
    ConnectErrorKind {
        /// The URL is not `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME`.
        InvalidUrl => "invalid broker URL",
        /// The broker's public key given to [`crate::ClientOptions::curve`] is not a Z85
        /// CURVE key.
        InvalidKey => "invalid server key",
        /// The broker did not answer within the connect timeout.
        TimedOut => "broker did not answer",
        /// The broker refused the login: an unknown user, a wrong password, a key it does
        /// not know. (A wrong server key cannot be told from a broker that does not answer:
        /// the broker cannot read such a greeting, and says nothing.)
        Refused => "login refused",
        /// The broker answered something this client cannot read.
        Protocol => "protocol error",
        /// A ZeroMQ call failed.
        Transport => "transport error",
    }
}

kinds! {
    /// Why a request failed.
    RequestErrorKind {
        /// No such service.
        NoService => "no such service",
        /// The service's queue is full; retry later.
        Busy => "service busy",
        /// No reply arrived before the request's timeout.
        TimedOut => "request timed out",
        /// The worker failed while serving the request.
        WorkerFailed => "worker failed",
        /// The broker refused the request as malformed.
        BadRequest => "bad request",
        /// The request is larger than the broker accepts (its `--max-message`).
        TooLarge => "request too large",
        /// The broker's auth file does not let this user do this; the message says what was
        /// refused and why.
        Forbidden => "forbidden",
        /// The service understood the request and refused it (say, no such stream).
        Rejected => "rejected",
        /// The broker failed while serving a built-in service.
        Internal => "broker internal error",
        /// The request body could not be encoded or the reply body decoded.
        Codec => "body codec error",
        /// A reply broke the protocol.
        Protocol => "protocol error",
        /// A ZeroMQ call failed.
        Transport => "transport error",
    }
}

kinds! {
    /// Why a publish failed.
    PublishErrorKind {
        /// The topic breaks the naming rules or is reserved (`$...`).
        InvalidTopic => "invalid topic",
        /// The value could not be encoded as MessagePack.
        Codec => "body codec error",
        /// The body is larger than the broker takes (its `max_message`).
        TooLarge => "message too large",
        /// The broker did not take the message within the timeout (its queue stayed full, or
        /// the publish endpoint never answered).
        TimedOut => "publish timed out",
        /// A ZeroMQ call failed.
        Transport => "transport error",
    }
}

kinds! {
    /// Why a subscription could not be made.
    SubscribeErrorKind {
        /// A filter or queue group name breaks the naming rules.
        InvalidTopic => "invalid topic filter",
        /// The subscription was not confirmed live end to end within the timeout.
        TimedOut => "subscription not confirmed",
        /// A ZeroMQ call failed.
        Transport => "transport error",
    }
}

kinds! {
    /// Why receiving from a subscriber failed.
    RecvErrorKind {
        /// A ZeroMQ call failed (for example the context was terminated).
        Transport => "transport error",
        /// A message's body could not be decoded as expected (a key-value change).
        Codec => "body codec error",
    }
}

kinds! {
    /// Why a process group operation failed.
    GroupErrorKind {
        /// No member has that rank in the current view.
        NoSuchRank => "no such rank",
        /// A member the operation waited for died or left meanwhile.
        MemberGone => "member gone",
        /// The operation did not complete within its timeout.
        TimedOut => "group operation timed out",
        /// This member was declared dead by the broker; join again.
        Expelled => "member expelled",
        /// A request was malformed: a group name the broker refuses, or a launch variable
        /// (`ZHUB_GROUP_SIZE`, `ZHUB_GROUP_MEMBER`) that does not parse.
        BadRequest => "bad request",
        /// The broker understood the request and refused it (say, no such group).
        Rejected => "rejected",
        /// The broker's auth file does not let this user use the group.
        Forbidden => "forbidden",
        /// A body could not be encoded or decoded.
        Codec => "body codec error",
        /// The broker's reply broke the group protocol (a reply of the wrong kind).
        Protocol => "protocol error",
        /// A [`crate::GroupOptions`] value that cannot work (a zero heartbeat, or a silence
        /// limit no longer than the heartbeat).
        InvalidOption => "invalid option",
        /// The request or the message could not be sent, or the broker failed to serve it.
        Transport => "transport error",
    }
}

kinds! {
    /// Why reading, writing or checking a [`crate::CurveKeyPair`] failed.
    KeyErrorKind {
        /// A key file could not be read or written.
        Io => "key file error",
        /// A key file is not TOML with `public` (and, for a secret-key file, `secret`).
        Format => "malformed key file",
        /// A key is not 40 characters of Z85 standing for 32 bytes.
        InvalidKey => "invalid CURVE key",
        /// The public key is not the one that belongs to the secret key.
        Mismatch => "mismatched CURVE keys",
        /// The linked libzmq was built without CURVE.
        Unsupported => "CURVE not supported",
    }
}

/// Error of [`crate::Client::connect`].
pub type ConnectError = Error<ConnectErrorKind>;
/// Error of a request.
pub type RequestError = Error<RequestErrorKind>;
/// Error of a publish.
pub type PublishError = Error<PublishErrorKind>;
/// Error of a subscribe.
pub type SubscribeError = Error<SubscribeErrorKind>;
/// Error of a subscriber's receive.
pub type RecvError = Error<RecvErrorKind>;
/// Error of a process group operation.
pub type GroupError = Error<GroupErrorKind>;
/// Error of a [`crate::CurveKeyPair`] operation.
pub type KeyError = Error<KeyErrorKind>;
