//! zhub-kvstore: the key-value engine (no sockets).
//!
//! ```
//! use std::time::Duration;
//! use zhub_kvstore::{ChangeKind, KvConfig, KvStore};
//!
//! # let tmp = tempfile::tempdir()?;
//! # let dir = tmp.path();
//! let now = 1_700_000_000_000_000; // µs since the epoch: the owner passes its clock
//! let mut kv = KvStore::open(dir, KvConfig::default())?;
//! let change = kv.put("sensors/room-1", b"21.5", None, now)?;
//! kv.incr("counters/visits", 1, now)?;
//! kv.put("sessions/abc", b"alice", Some(Duration::from_secs(30)), now)?;
//! if kv.needs_sync() {
//!     kv.sync()?; // one fsync for every change above (group commit); then acknowledge
//! }
//! // Compare-and-set against the revision read.
//! kv.cas("sensors/room-1", Some(change.revision), b"22.0", None, now)?;
//! let (page, more) = kv.list("sensors/", None, 100, now);
//! assert_eq!((page.len(), more), (1, false));
//! // Thirty seconds later the session expires, once, as a change the owner publishes.
//! let expired = kv.expire_due(now + 30_000_000)?;
//! assert_eq!(expired[0].kind, ChangeKind::Expire);
//! kv.maintenance()?; // a snapshot and compaction when one is due
//! # kv.sync()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Model
//!
//! The state is the fold of a change log plus the newest snapshot. The store's directory
//! holds an [`zhub_eventlog::EventLog`] root `log/` with one stream, `changes`, and
//! `snapshots/`. Every change (put, delete, expire) is one record of that stream; a key's
//! *revision* is the offset of its last change, so revisions grow with every change and
//! [`KvStore::revision`] (the next offset) is the store's version. Each change record links
//! to the key's previous revision, so [`KvStore::history`] walks a key's past through the log
//! without keeping any of it in memory. The byte layouts are in [`codec`].
//!
//! In memory there is one ordered map of key to value, revision and expiry (for prefix
//! listing), an index of expiries, and a tombstone (the revision of the last change) for
//! each deleted key whose change the log still holds, so history reaches deleted keys.
//!
//! # Time
//!
//! Nothing reads a clock: every operation that depends on time takes `now_us`, microseconds
//! since the Unix epoch, from the owner (the broker passes the wall clock, tests a number).
//! A TTL becomes an absolute `expires_at_us` written in the change, so it survives restarts.
//! A key is absent to readers from its expiry on; [`KvStore::expire_due`], which the owner
//! calls at [`KvStore::next_expiry`], removes it with an expire change that watchers and
//! history see exactly once. A write to a key past its expiry but not yet swept replaces it
//! (no expire change is then recorded for it).
//!
//! # Durability and group commit
//!
//! Writes append to the log's buffer and return at once, with the [`Change`] the owner
//! publishes to watchers. The owner handles every waiting request, then calls
//! [`KvStore::sync`] once when [`KvStore::needs_sync`] says so
//! ([`zhub_eventlog::Fsync::Always`]) and [`KvStore::flush`] otherwise, and only then
//! acknowledges; under `Interval` it also syncs at [`KvStore::sync_deadline`].
//!
//! A failed write or sync (a full disk) needs no reopen. The change log cuts itself back to
//! its last good change (see [`zhub_eventlog::EventLogError::NotStored`]); when that takes
//! back changes the store had handed out, the store rebuilds its memory from the newest
//! snapshot and the log, so that it holds exactly what the log does, and reports the loss
//! to the writes after it and once to the next sync or flush, which fails the owner's
//! acknowledgements. Writes are taken again after that, and succeed once the disk has room.
//!
//! Dropping the store without [`KvStore::sync`] or [`KvStore::close`] loses what is still
//! buffered, as a crash would; nothing acknowledged after a sync is lost.
//!
//! # Watchers and replicas
//!
//! Every write returns its [`Change`] for the owner to publish once synced. A local replica
//! (the Clone pattern) loads [`KvStore::snapshot_prefix`], which is consistent as of a
//! revision `r`, then follows with [`KvStore::changes_since`] from `r`, read back from the log
//! up to the end the owner knows is synced; [`KvError::Compacted`] tells it to reload.
//!
//! # Snapshots and compaction
//!
//! [`KvStore::maintenance`], which the owner calls between batches, takes a snapshot every
//! [`KvConfig::snapshot_every`] changes ([`KvStore::snapshot`] takes one at once). A snapshot
//! is written atomically and framed with a magic, a version and a CRC-32C. The newest two are
//! kept, and the log segments wholly below the older one are dropped: if the newest snapshot
//! is damaged, the older one plus the log still rebuild the state. History therefore reaches
//! back at least to the newest snapshot, usually to the older one.
//!
//! # Recovery
//!
//! [`KvStore::open`] loads the newest sound snapshot (a damaged or truncated one is renamed
//! `*.snap.damaged` with a warning, and the next older one, or a replay of the whole log, is
//! used), then replays the changes after it. The event log has already cut a torn tail (an
//! interrupted write), so every synced change is back. Damage it cannot repair (a damaged
//! record in the middle of the log, a log compacted past every usable snapshot) fails the
//! open, naming it, unless [`KvConfig::tolerate_damage`] is set.
//!
//! # Memory
//!
//! Each key is one 32-byte element of an ordered set (a pointer and length, the revision,
//! the expiry) and one heap block holding `[key length: u32][key][value]`; tree nodes are
//! half to completely full. A key with a TTL costs a second copy of the key and about 40
//! bytes in the expiry index; a tombstone about the same. `tests/memory.rs` measures it with
//! a counting allocator: for 1 000 000 keys of 16 bytes with 100-byte values (116 raw bytes)
//! the store holds 167 to 185 bytes a key after the puts (1.44x to 1.60x; 177 to 196 bytes,
//! up to 1.69x, counting malloc's rounding) and 155 bytes (1.34x) after a reopen, which
//! builds the tree packed from the sorted snapshot.
//!
//! # Layout
//! - [`codec`] — on-disk layouts (change record, counter, snapshot) and their encoders and
//!   decoders.
//! - `config` — [`KvConfig`], [`check_key`].
//! - `state` — the maps in memory and how a change folds into them.
//! - `snapshot` — snapshot files: atomic write, listing, checked load.
//! - `store` — [`KvStore`]: operations, open and replay, sync, snapshots and compaction.
//! - `error` — [`KvError`].
//! - `failure_tests` — failed log writes and syncs, made with `zhub_eventlog::faults`.
#![deny(missing_docs)]

pub mod codec;
mod config;
mod error;
#[cfg(test)]
mod failure_tests;
mod snapshot;
mod state;
mod store;

pub use config::{check_key, KvConfig};
pub use error::{KvError, Result};
pub use store::{KvStats, KvStore, CHANGES_STREAM, LOG_DIR, SNAPSHOT_DIR};

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The key was set (by put, compare-and-set or increment).
    Put,
    /// The key was deleted.
    Delete,
    /// The key reached its expiry and was removed.
    Expire,
}

/// A key's current entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Vec<u8>,
    /// The revision of the key's last change.
    pub revision: u64,
    /// When the key expires, µs since the epoch, if it has a TTL.
    pub expires_at_us: Option<i64>,
}

/// A change a write made, for the owner to publish to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The change's revision (its offset in the change log).
    pub revision: u64,
    /// The key.
    pub key: String,
    /// What it did.
    pub kind: ChangeKind,
    /// The new value for a put; empty for a delete or an expire.
    pub value: Vec<u8>,
    /// The key's expiry after a put, if it has a TTL.
    pub expires_at_us: Option<i64>,
    /// The key's previous revision, if the store still knew one.
    pub prev_revision: Option<u64>,
    /// The `now_us` of the operation, also the log record's timestamp.
    pub timestamp_us: i64,
}

/// One past change of a key, read back from the log by [`KvStore::history`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The change's revision.
    pub revision: u64,
    /// What it did.
    pub kind: ChangeKind,
    /// The value a put set; empty for a delete or an expire.
    pub value: Vec<u8>,
    /// The expiry a put set.
    pub expires_at_us: Option<i64>,
    /// When it happened (the operation's `now_us`).
    pub timestamp_us: i64,
}
