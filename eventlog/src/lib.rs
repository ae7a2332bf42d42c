//! zhub-eventlog: the append-only event log engine (no sockets).
//!
//! ```no_run
//! use zhub_eventlog::{EventLog, StreamConfig};
//!
//! let mut log = EventLog::open("./zhub-data/log")?;
//! let stream = log.create_stream("orders", StreamConfig::default())?;
//! let offset = stream.append(None, Some(b"order-1"), b"{\"qty\": 3}")?;
//! stream.sync()?; // the default policy acknowledges only after this
//! let records = stream.read(offset, 1 << 20, 100)?;
//! assert_eq!(records[0].value, b"{\"qty\": 3}");
//! # Ok::<(), zhub_eventlog::EventLogError>(())
//! ```
//!
//! A stream is a directory of segments `{base_offset:020}.log` with a sparse `.index`
//! (offset to position) and `.timeindex` (timestamp to offset). Every record is framed with
//! its length and a CRC-32C. On open the last segment is checked record by record and a torn
//! tail (an interrupted write) is cut; a damaged record in the middle is reported, naming its
//! stream and offset, while the records around it stay readable; missing or damaged indexes
//! are rebuilt. The byte layouts are in [`codec`].
//!
//! The engine is owned by one thread. Durability is the owner's to drive: with
//! [`Fsync::Always`] (the default) it appends every waiting record, calls [`Stream::sync`]
//! once, then acknowledges them all (group commit). A failed write or fsync (a full disk)
//! cuts the stream back to its last confirmed record, so that no partial record stays
//! behind and no acknowledged offset is given out again; the rules are in `stream`'s
//! documentation and [`EventLogError::NotStored`].
//!
//! A stream holds file descriptors only while it is used; [`EventLog`] keeps the most
//! recently used ones open and closes the others, so many streams need few descriptors.
//!
//! # Layout
//! - [`codec`] — on-disk layouts and their encoders and decoders.
//! - `config` — [`StreamConfig`], [`Fsync`].
//! - `segment` — one segment: buffered writes, reads, recovery.
//! - `stream` — [`Stream`], [`Reader`]: appends, reads, time lookups, retention.
//! - `log` — [`EventLog`]: the directory of streams.
//! - `error` — [`EventLogError`].
//! - `faults` — segment writes and syncs, which tests can make fail (feature
//!   `fault-injection`).
#![deny(missing_docs)]

pub mod codec;
mod config;
mod error;
#[cfg(test)]
mod failure_tests;
#[cfg(any(test, feature = "fault-injection"))]
pub mod faults;
#[cfg(not(any(test, feature = "fault-injection")))]
mod faults;
mod log;
mod segment;
mod stream;

pub use config::{Fsync, StreamConfig};
pub use error::{EventLogError, Result};
pub use log::{EventLog, DEFAULT_MAX_OPEN_STREAMS};
pub use stream::{check_name, now_micros, segment_log_path, Reader, Stream, StreamInfo};

/// One record read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its offset in the stream.
    pub offset: u64,
    /// Its timestamp, microseconds since the Unix epoch.
    pub timestamp: i64,
    /// Its key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
}
