//! [`KvConfig`]: the store's settings, and [`check_key`]: the key rules.

use std::time::Duration;

use zhub_eventlog::Fsync;

use crate::error::{KvError, Result};

/// A store's settings. `Default` gives: [`Fsync::Always`], 64 MiB log segments, keys up to
/// 1024 bytes, values up to 1 MiB, history up to 16 changes, a snapshot every 100 000
/// changes, and strict recovery (`tolerate_damage: false`).
///
/// `fsync` and `segment_bytes` are fixed when the change log is created (the log keeps them
/// in its `stream.conf`); on later opens the log's own values apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvConfig {
    /// Durability policy of the change log.
    pub fsync: Fsync,
    /// A log segment is rolled when it would grow past this many bytes (at least 4096).
    /// Compaction drops whole segments, so smaller segments free space sooner.
    pub segment_bytes: u64,
    /// Longest key, in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most changes [`crate::KvStore::history`] returns.
    pub max_history: usize,
    /// Changes between automatic snapshots taken by [`crate::KvStore::maintenance`];
    /// 0 turns automatic snapshots off.
    pub snapshot_every: u64,
    /// What `open` does about damage it cannot repair: with `false` (the default) it fails
    /// with the damaged offset, or with [`KvError::Unrecoverable`] when the log has been
    /// compacted past every usable snapshot; with `true` it skips damaged changes (counted in
    /// [`crate::KvStats::skipped_changes`]) and starts from whatever snapshot survives, logging
    /// a warning for each loss.
    pub tolerate_damage: bool,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            fsync: Fsync::Always,
            segment_bytes: 64 << 20,
            max_key_bytes: 1024,
            max_value_bytes: 1 << 20,
            max_history: 16,
            snapshot_every: 100_000,
            tolerate_damage: false,
        }
    }
}

impl KvConfig {
    /// Sets the log's durability policy.
    #[must_use]
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// Sets the log's segment size.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets the longest key.
    #[must_use]
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.max_key_bytes = bytes;
        self
    }

    /// Sets the largest value.
    #[must_use]
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = bytes;
        self
    }

    /// Sets the most changes history returns.
    #[must_use]
    pub fn max_history(mut self, changes: usize) -> Self {
        self.max_history = changes;
        self
    }

    /// Sets the changes between automatic snapshots (0: never).
    #[must_use]
    pub fn snapshot_every(mut self, changes: u64) -> Self {
        self.snapshot_every = changes;
        self
    }

    /// Sets whether open tolerates damage it cannot repair.
    #[must_use]
    pub fn tolerate_damage(mut self, tolerate: bool) -> Self {
        self.tolerate_damage = tolerate;
        self
    }
}

/// Microseconds a TTL adds to `now_us`, saturating: an absurd TTL means "never".
pub(crate) fn expiry_time(now_us: i64, ttl: Duration) -> i64 {
    let micros = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    now_us.saturating_add(micros)
}

/// Checks a key: 1 to `max_bytes` bytes of UTF-8 with no control character (no NUL, no
/// C0 or C1 control, no DEL). Keys are otherwise free-form; `/` and `.` are conventional
/// separators for prefix listing.
///
/// # Errors
/// [`KvError::BadKey`] naming the rule broken.
pub fn check_key(key: &str, max_bytes: usize) -> Result<()> {
    if key.is_empty() {
        return Err(KvError::bad_key("empty"));
    }
    if key.len() > max_bytes {
        return Err(KvError::bad_key(format!(
            "{} bytes, longer than the limit of {max_bytes}",
            key.len()
        )));
    }
    if let Some((at, c)) = key.char_indices().find(|(_, c)| c.is_control()) {
        return Err(KvError::bad_key(format!(
            "control character U+{:04X} at byte {at}",
            u32::from(c)
        )));
    }
    Ok(())
}
