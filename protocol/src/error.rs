//! The error every decoder in this crate returns for input it cannot accept.

/// Why a frame or a message was rejected.
///
/// Decoders never panic on peer input: every way input can be wrong ends up here, with enough
/// detail to log it and, where the protocol allows, to answer the peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message has fewer or more frames than its command requires.
    #[error("{what}: expected {expected} frames, got {got}")]
    FrameCount {
        /// Which message was being decoded.
        what: &'static str,
        /// The number (or minimum number) of frames required.
        expected: usize,
        /// The number of frames received.
        got: usize,
    },
    /// A frame does not start with a protocol signature this decoder knows.
    #[error("unknown protocol signature {0:?}")]
    UnknownProtocol(Vec<u8>),
    /// A command byte is not one this protocol defines.
    #[error("unknown command {0:#04x}")]
    UnknownCommand(u8),
    /// A fixed-size field has the wrong length.
    #[error("{field}: expected {expected} bytes, got {got}")]
    FieldSize {
        /// The field.
        field: &'static str,
        /// Its required size.
        expected: usize,
        /// The size received.
        got: usize,
    },
    /// A bus message has no NUL byte ending its topic.
    #[error("bus message has no topic terminator")]
    MissingTopicEnd,
    /// A bus message header is shorter than its fixed size.
    #[error("bus header truncated: {got} of {expected} bytes")]
    TruncatedHeader {
        /// Bytes required.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// An addressed subscription carries a kind byte this build does not know.
    #[error("unknown addressed subscription kind {0}")]
    UnknownSubscription(u8),
    /// A bus message header carries a version this build does not read.
    #[error("unsupported bus header version {0}")]
    UnsupportedVersion(u8),
    /// A bus message says its body has an encoding this build does not know.
    #[error("unknown body encoding {0}")]
    UnknownEncoding(u8),
    /// A topic or service name breaks the naming rules.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// The kind of name (`"topic"`, `"service"`, `"stream"`, `"key"`, `"group"`...).
        what: &'static str,
        /// The offending name (lossily decoded; a long one cut to its first 64 bytes).
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A numeric field holds a value outside the range its protocol allows.
    #[error("{field}: {value} is out of range {min}..={max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value received.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A status code on the wire is not one zhub defines.
    #[error("unknown status code {0}")]
    UnknownStatus(u16),
    /// A MessagePack body could not be decoded into the requested type.
    #[error("cannot decode MessagePack body: {0}")]
    Decode(String),
    /// A value could not be encoded as MessagePack.
    #[error("cannot encode MessagePack body: {0}")]
    Encode(String),
}
