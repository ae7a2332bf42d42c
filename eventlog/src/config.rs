//! [`StreamConfig`] and [`Fsync`]: a stream's settings, persisted in its `stream.conf`.

use std::path::Path;
use std::time::Duration;

use crate::error::{EventLogError, Result};

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Acknowledge only after `sync_data`. The owner batches: it appends everything waiting
    /// from every writer, syncs once, then acknowledges them all (group commit), so many
    /// writers share one fsync. The default: an acknowledged record survives a crash.
    Always,
    /// Sync every interval; a crash loses at most that much acknowledged data.
    Interval(Duration),
    /// Leave it to the OS; a crash of the machine can lose acknowledged data, a crash of the
    /// process cannot (the data is in the page cache).
    Never,
}

/// A stream's settings. `Default` gives: 64 MiB segments, an index entry every 4 KiB,
/// records up to 8 MiB, [`Fsync::Always`], no retention limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// A segment is rolled when it would grow past this many bytes.
    pub segment_bytes: u64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u64,
    /// Largest framed record accepted (key, value and 28 bytes of framing).
    pub max_record_bytes: usize,
    /// Durability policy.
    pub fsync: Fsync,
    /// Drop the oldest segments while the stream is larger than this.
    pub retention_bytes: Option<u64>,
    /// Drop segments whose newest record is older than this.
    pub retention_age: Option<Duration>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            segment_bytes: 64 << 20,
            index_interval_bytes: 4096,
            max_record_bytes: 8 << 20,
            fsync: Fsync::Always,
            retention_bytes: None,
            retention_age: None,
        }
    }
}

impl StreamConfig {
    /// The `key=value` lines of `stream.conf`.
    pub(crate) fn to_text(&self) -> String {
        let fsync = match self.fsync {
            Fsync::Always => "always".to_owned(),
            Fsync::Never => "never".to_owned(),
            Fsync::Interval(d) => format!("interval:{}", d.as_millis()),
        };
        let opt = |v: Option<u64>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        format!(
            "segment_bytes={}\nindex_interval_bytes={}\nmax_record_bytes={}\nfsync={}\nretention_bytes={}\nretention_age_ms={}\n",
            self.segment_bytes,
            self.index_interval_bytes,
            self.max_record_bytes,
            fsync,
            opt(self.retention_bytes),
            opt(self.retention_age.map(|d| d.as_millis() as u64)),
        )
    }

    /// Parses `stream.conf`; keys not given keep their defaults.
    pub(crate) fn from_text(path: &Path, text: &str) -> Result<Self> {
        let bad = |reason: String| EventLogError::BadFile {
            path: path.to_owned(),
            reason,
        };
        let mut c = StreamConfig::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("bad line {line:?}")))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{key}: {v:?} is not a number")))
            };
            let optional = |v: &str| {
                if v == "none" {
                    Ok(None)
                } else {
                    number(v).map(Some)
                }
            };
            match key {
                "segment_bytes" => c.segment_bytes = number(value)?,
                "index_interval_bytes" => c.index_interval_bytes = number(value)?,
                "max_record_bytes" => c.max_record_bytes = number(value)? as usize,
                "fsync" => {
                    c.fsync = match value {
                        "always" => Fsync::Always,
                        "never" => Fsync::Never,
                        other => match other.strip_prefix("interval:") {
                            Some(ms) => Fsync::Interval(Duration::from_millis(number(ms)?)),
                            None => return Err(bad(format!("fsync: unknown policy {other:?}"))),
                        },
                    }
                }
                "retention_bytes" => c.retention_bytes = optional(value)?,
                "retention_age_ms" => c.retention_age = optional(value)?.map(Duration::from_millis),
                other => return Err(bad(format!("unknown setting {other:?}"))),
            }
        }
        Ok(c)
    }
}
