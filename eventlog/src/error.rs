//! [`EventLogError`]: everything the engine can report.

use std::path::PathBuf;

/// What went wrong in the event log engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// A file operation failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said (in the message, and not also the error's `source()`, so that
        /// reporters print it once).
        cause: std::io::Error,
    },
    /// A stream name breaks the naming rules.
    #[error("invalid stream name {0:?}: 1 to 200 characters of A-Z a-z 0-9 . _ -, not starting with '.'")]
    InvalidName(String),
    /// The stream already exists.
    #[error("stream {0} already exists")]
    StreamExists(String),
    /// No such stream.
    #[error("no such stream: {0}")]
    NoSuchStream(String),
    /// A record is larger than the stream allows.
    #[error("record of {size} bytes exceeds the stream's limit of {limit} bytes")]
    RecordTooLarge {
        /// The record's framed size.
        size: usize,
        /// The stream's `max_record_bytes`.
        limit: usize,
    },
    /// A record on disk fails its check: the data is damaged.
    #[error("stream {stream}: record at offset {offset} is corrupt ({reason})")]
    Corrupt {
        /// The stream.
        stream: String,
        /// The offset of the damaged record.
        offset: u64,
        /// What failed (CRC, length, offset sequence).
        reason: String,
    },
    /// A write or an fsync of the stream failed (a full disk, an I/O error), so the stream
    /// cut itself back to its last confirmed record: none of the records from `from` on,
    /// appended since the owner's last successful [`crate::Stream::flush`] or
    /// [`crate::Stream::sync`], was kept, and none may be acknowledged. The append that met
    /// the failure returns it, and so do the appends after it until the owner's next flush or
    /// sync, which returns it once more and clears it.
    #[error("stream {stream}: {reason}; nothing from offset {from} on was stored")]
    NotStored {
        /// The stream.
        stream: String,
        /// The first offset not stored; the next record appended gets it.
        from: u64,
        /// What the OS said, with the file (`ErrorKind::StorageFull` for a full disk).
        kind: std::io::ErrorKind,
        /// The failure, as text.
        reason: String,
    },
    /// A segment or config file is not in a format this build reads.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl EventLogError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EventLogError {
        let path = path.into();
        move |cause| EventLogError::Io { path, cause }
    }
}

/// Result of the engine's operations.
pub type Result<T> = std::result::Result<T, EventLogError>;
