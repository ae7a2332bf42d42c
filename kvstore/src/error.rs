//! [`KvError`]: everything the key-value engine can report.

use std::path::PathBuf;

use zhub_eventlog::EventLogError;

/// What went wrong in the key-value engine.
///
/// `BadKey`, `ValueTooLarge`, `RevisionMismatch`, `NotACounter`, `Overflow` and `Compacted`
/// answer the caller's request (the store is unchanged and stays usable); the others are
/// storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key breaks the key rules (see [`crate::check_key`]).
    #[error("bad key: {reason}")]
    BadKey {
        /// Which rule it breaks.
        reason: String,
    },
    /// The value is larger than the store accepts.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's size.
        size: usize,
        /// The store's limit.
        limit: usize,
    },
    /// A compare-and-set found another revision than the one expected.
    #[error(
        "key {key:?}: expected {}, found {}",
        show_revision(.expected),
        show_revision(.current)
    )]
    RevisionMismatch {
        /// The key.
        key: String,
        /// The revision the caller expected (`None`: the key must be absent).
        expected: Option<u64>,
        /// The key's revision now (`None`: it is absent).
        current: Option<u64>,
    },
    /// An increment met a value that is not a MessagePack integer.
    #[error("key {key:?} does not hold an integer counter")]
    NotACounter {
        /// The key.
        key: String,
    },
    /// An increment would leave the range of `i64`.
    #[error("key {key:?}: {value} + {delta} overflows a 64-bit counter")]
    Overflow {
        /// The key.
        key: String,
        /// The counter's value.
        value: i64,
        /// The increment asked for.
        delta: i64,
    },
    /// The change log failed (I/O, or a damaged record when opening or reading history).
    #[error("change log: {0}")]
    Log(EventLogError),
    /// A file operation on a snapshot or the store's directory failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said (in the message, and not also the error's `source()`, so that
        /// reporters print it once).
        cause: std::io::Error,
    },
    /// A change record in the log passed the log's checksum but is not a change this build
    /// reads (unknown version or operation, missing or non-UTF-8 key).
    #[error("change at offset {offset} is unreadable: {reason}")]
    BadChange {
        /// The record's offset (the change's revision).
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot file is damaged or not a snapshot (on open such a file is set aside and an
    /// older snapshot or the log is used instead).
    #[error("{path}: damaged snapshot: {reason}")]
    BadSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state cannot be rebuilt completely: the log has been compacted past every usable
    /// snapshot. [`crate::KvConfig::tolerate_damage`] opens the store with what survives.
    #[error("cannot rebuild the key-value state: {reason}")]
    Unrecoverable {
        /// Why.
        reason: String,
    },
    /// Changes asked for are no longer in the log: compaction dropped them after a
    /// snapshot. A replica reloads a snapshot and follows on from its revision.
    #[error("changes from revision {from} are compacted away; the log starts at {first}")]
    Compacted {
        /// The revision asked from.
        from: u64,
        /// The oldest revision the log still holds.
        first: u64,
    },
    /// A failed write or sync of the change log (a full disk) took back changes that had
    /// been handed out (their [`crate::Change`] returned) but not yet synced or flushed: the
    /// store went back to what the log holds, and none of them may be acknowledged. Returned
    /// by the writes after the failure and once by the next [`crate::KvStore::sync`] or
    /// [`crate::KvStore::flush`]; after that the store takes writes again.
    #[error(
        "changes since the last sync were not stored ({reason}); the store holds what the log does"
    )]
    NotStored {
        /// The failure.
        reason: String,
    },
}

// By hand rather than `#[from]`, which would make the change log's error a `source()` too and
// have reporters print it twice.
impl From<EventLogError> for KvError {
    fn from(e: EventLogError) -> Self {
        KvError::Log(e)
    }
}

fn show_revision(r: &Option<u64>) -> String {
    match r {
        Some(r) => format!("revision {r}"),
        None => "no key".to_owned(),
    }
}

impl KvError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> KvError {
        let path = path.into();
        move |cause| KvError::Io { path, cause }
    }

    pub(crate) fn bad_key(reason: impl Into<String>) -> KvError {
        KvError::BadKey {
            reason: reason.into(),
        }
    }
}

/// Result of the engine's operations.
pub type Result<T> = std::result::Result<T, KvError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// What an error reporter prints: the message, then each source's.
    fn report(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }

    #[test]
    fn a_cause_is_reported_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full here");
        let errors = [
            KvError::Io {
                path: "/kv/snap".into(),
                cause: io(),
            },
            KvError::from(EventLogError::Io {
                path: "/kv/log".into(),
                cause: io(),
            }),
        ];
        for e in &errors {
            let text = report(e);
            assert_eq!(text.matches("disk full here").count(), 1, "{text}");
        }
    }
}
