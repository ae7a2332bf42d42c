//! The `zhub.log` built-in service: requests and replies of the event log, as MessagePack
//! bodies of native (`ZHC01`) requests.
//!
//! Every request is one [`LogRequest`]; every successful reply one [`LogReply`]. Failures are
//! reply statuses: `400` for a malformed request, `422` (rejected) with a reason for a request
//! the log refuses (no such stream, stream exists, record too large), `500` for a storage
//! failure.

use serde::{Deserialize, Serialize};

/// The event log's service name.
pub const LOG_SERVICE: &str = "zhub.log";

/// When a stream's appends reach the disk (see the eventlog crate's `Fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Acknowledge only after the data is synced (group commit).
    Always,
    /// Sync every `ms` milliseconds.
    Interval {
        /// The interval in milliseconds.
        ms: u64,
    },
    /// Leave syncing to the OS.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// Parses `always`, `never` or `interval:MILLISECONDS`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => match other.strip_prefix("interval:") {
                Some(ms) => ms
                    .parse()
                    .map(|ms| FsyncPolicy::Interval { ms })
                    .map_err(|_| format!("{other:?}: expected interval:MILLISECONDS")),
                None => Err(format!("{other:?}: expected always, interval:MS or never")),
            },
        }
    }
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval { ms } => write!(f, "interval:{ms}"),
        }
    }
}

/// Settings of a new stream; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// Durability policy (default: always).
    pub fsync: Option<FsyncPolicy>,
    /// Segment size in bytes (default: 64 MiB).
    pub segment_bytes: Option<u64>,
    /// Largest record in bytes (default: 8 MiB).
    pub max_record_bytes: Option<u64>,
    /// Drop old segments beyond this many bytes.
    pub retention_bytes: Option<u64>,
    /// Drop segments whose records are older than this many milliseconds.
    pub retention_ms: Option<u64>,
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecord {
    /// Optional key.
    #[serde(default, with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Timestamp in microseconds since the epoch; the broker's clock when absent.
    #[serde(default)]
    pub timestamp_us: Option<i64>,
}

/// A record read back from a stream: what the broker sends and what a client's reads return.
///
/// A record a durable topic's journal holds is a whole bus message; the client's
/// `Message::from_record` reads it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// Its offset.
    pub offset: u64,
    /// Its timestamp in microseconds since the epoch.
    pub timestamp_us: i64,
    /// Its key.
    #[serde(default, with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// Its value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

impl StoredRecord {
    /// Decodes a value appended as MessagePack (the client's `Log::append`).
    ///
    /// # Errors
    /// [`ProtocolError::Decode`](crate::ProtocolError::Decode) when the value is not a
    /// MessagePack `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::ProtocolError> {
        crate::body::decode(&self.value)
    }
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// At this offset (the first held when it is older).
    Offset(u64),
    /// At the first record stamped at or after this time (microseconds since the epoch).
    Time(i64),
}

/// One stream, as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSummary {
    /// Its name.
    pub name: String,
    /// Oldest offset held.
    pub first_offset: u64,
    /// Offset of the next record.
    pub next_offset: u64,
    /// Records held.
    pub records: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// A request to the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LogRequest {
    /// Create a stream.
    Create {
        /// Its name.
        stream: String,
        /// Its settings.
        #[serde(default)]
        settings: StreamSettings,
    },
    /// Append records; the reply comes once the stream's policy is met.
    Append {
        /// The stream.
        stream: String,
        /// The records, in order.
        records: Vec<NewRecord>,
    },
    /// Read records.
    Read {
        /// The stream.
        stream: String,
        /// Where to start.
        from: ReadFrom,
        /// Most bytes of values to return (at least one record is returned).
        max_bytes: u64,
        /// Most records to return.
        max_records: u64,
        /// When nothing is there yet, wait this long for new records (long poll).
        #[serde(default)]
        wait_ms: u64,
    },
    /// List the streams.
    Streams,
    /// Delete a stream (with its consumer groups' offsets and the journal routes into it).
    Delete {
        /// The stream.
        stream: String,
    },
    /// Store a consumer group's position durably: the next offset it will read.
    Commit {
        /// The stream.
        stream: String,
        /// The consumer group.
        group: String,
        /// The next offset the group will read (one past the last record it processed).
        offset: u64,
    },
    /// A consumer group's committed position.
    Position {
        /// The stream.
        stream: String,
        /// The consumer group.
        group: String,
    },
    /// Journal every bus message whose topic starts with `prefix` into `stream` (created with
    /// default settings when missing), from now on and across restarts.
    Journal {
        /// Topic prefix (not `$`).
        prefix: String,
        /// The stream.
        stream: String,
    },
    /// Stop journaling `prefix` into `stream`.
    Unjournal {
        /// Topic prefix.
        prefix: String,
        /// The stream.
        stream: String,
    },
    /// List the journal routes.
    Journals,
    /// Publish journaled messages of a stream on the bus again, as they were published
    /// (topic, header, body). Sends at most `max_records`; fewer when the bus is full.
    Republish {
        /// The stream.
        stream: String,
        /// Where to start.
        from: ReadFrom,
        /// Most records to send in this request.
        max_records: u64,
    },
}

/// A journal route: bus messages on `prefix` are appended to `stream`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JournalRoute {
    /// Topic prefix.
    pub prefix: String,
    /// The stream.
    pub stream: String,
}

/// A successful reply of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LogReply {
    /// The stream was created.
    Created,
    /// The records were appended.
    Appended {
        /// Offset of the first record appended.
        first_offset: u64,
        /// Records appended (offsets run on from `first_offset`).
        count: u64,
        /// Whether they were synced to disk before this reply.
        synced: bool,
    },
    /// Records read (possibly none, at the end of the stream).
    Records {
        /// The records.
        records: Vec<StoredRecord>,
        /// The offset to read from next.
        next_offset: u64,
    },
    /// The streams.
    Streams {
        /// One summary per stream.
        streams: Vec<StreamSummary>,
    },
    /// The stream was deleted.
    Deleted,
    /// The consumer group's position was stored durably.
    Committed,
    /// A consumer group's committed position (`None`: it never committed).
    Position {
        /// The next offset the group will read.
        offset: Option<u64>,
    },
    /// The journal route is in place (or was already).
    Journaling,
    /// The journal route is gone.
    Unjournaled,
    /// The journal routes.
    Journals {
        /// Every route.
        journals: Vec<JournalRoute>,
    },
    /// Records were published on the bus again.
    Republished {
        /// Records sent.
        count: u64,
        /// The offset to continue from.
        next_offset: u64,
        /// Whether the stream's end was reached.
        at_end: bool,
    },
}

impl LogRequest {
    /// The request's `op`, as it travels.
    pub fn op(&self) -> &'static str {
        match self {
            LogRequest::Create { .. } => "create",
            LogRequest::Append { .. } => "append",
            LogRequest::Read { .. } => "read",
            LogRequest::Streams => "streams",
            LogRequest::Delete { .. } => "delete",
            LogRequest::Commit { .. } => "commit",
            LogRequest::Position { .. } => "position",
            LogRequest::Journal { .. } => "journal",
            LogRequest::Unjournal { .. } => "unjournal",
            LogRequest::Journals => "journals",
            LogRequest::Republish { .. } => "republish",
        }
    }
}

impl crate::names::Named for LogRequest {
    fn check_names(&self) -> Result<(), crate::ProtocolError> {
        use crate::names::{check_consumer, check_prefix, check_stream};
        match self {
            LogRequest::Create { stream, .. }
            | LogRequest::Append { stream, .. }
            | LogRequest::Read { stream, .. }
            | LogRequest::Delete { stream }
            | LogRequest::Republish { stream, .. } => check_stream(stream),
            LogRequest::Commit { stream, group, .. } | LogRequest::Position { stream, group } => {
                check_stream(stream)?;
                check_consumer(group)
            }
            LogRequest::Journal { prefix, stream } | LogRequest::Unjournal { prefix, stream } => {
                check_prefix(prefix)?;
                check_stream(stream)
            }
            LogRequest::Streams | LogRequest::Journals => Ok(()),
        }
    }
}
