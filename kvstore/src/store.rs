//! [`KvStore`]: the store, its operations, recovery on open, snapshots and compaction.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use zhub_eventlog::codec::RECORD_HEADER;
use zhub_eventlog::{EventLog, EventLogError, Fsync, Record, Stream, StreamConfig};

use crate::codec::{self, ChangeRecord, CHANGE_HEADER_MAX};
use crate::config::{check_key, expiry_time, KvConfig};
use crate::error::{KvError, Result};
use crate::snapshot::{self, KEEP, SET_ASIDE_SUFFIX};
use crate::state::State;
use crate::{Change, ChangeKind, Entry, HistoryEntry};

/// Subdirectory of the store holding the change log (an [`EventLog`] root).
pub const LOG_DIR: &str = "log";
/// Subdirectory of the store holding the snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// Name of the change log's stream.
pub const CHANGES_STREAM: &str = "changes";
/// Bytes of values read from the log at a time when replaying it.
const REPLAY_BATCH: usize = 4 << 20;
/// Bytes of values read from the log at a time by [`KvStore::changes_since`].
const SCAN_BATCH: usize = 1 << 20;
/// Bytes of values one [`KvStore::changes_since`] call scans at most, so that a replica
/// following a rare prefix does not make the owner read the whole log in one call.
const SCAN_BUDGET: usize = 8 << 20;

/// What [`KvStore::stats`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvStats {
    /// Keys held, including keys past their expiry that [`KvStore::expire_due`] has not yet
    /// swept.
    pub keys: usize,
    /// Keys with a TTL.
    pub expiring_keys: usize,
    /// Deleted or expired keys whose last change the log still holds (kept for history).
    pub tombstones: usize,
    /// The revision the next change will get.
    pub next_revision: u64,
    /// The oldest change the log still holds; history reaches no further back.
    pub first_log_offset: u64,
    /// Bytes of change log on disk.
    pub log_bytes: u64,
    /// Segment files of the change log.
    pub log_segments: usize,
    /// Offset of the newest snapshot, if there is one.
    pub snapshot_offset: Option<u64>,
    /// Snapshot files kept.
    pub snapshots: usize,
    /// Changes appended since the newest snapshot.
    pub changes_since_snapshot: u64,
    /// Damaged changes skipped when opening with [`KvConfig::tolerate_damage`].
    pub skipped_changes: u64,
    /// Writes and syncs of the change log that failed (a full disk) since the store was
    /// opened; the store recovered from each by itself.
    pub failed_writes: u64,
}

/// The key-value store: an ordered map in memory, rebuilt on open from the newest snapshot
/// and the change log after it. Owned by one thread (the broker's storage thread, or a
/// test); see the crate documentation for the model.
pub struct KvStore {
    dir: PathBuf,
    snapshot_dir: PathBuf,
    config: KvConfig,
    log: EventLog,
    /// The log's policy (fixed when it was created).
    fsync: Fsync,
    state: State,
    next_revision: u64,
    /// Largest value accepted: the configured limit, lowered if the log's records are
    /// smaller.
    value_limit: usize,
    /// Offsets of the snapshot files kept, oldest first.
    snapshots: Vec<u64>,
    changes_since_snapshot: u64,
    skipped_changes: u64,
    /// Changes appended since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// Largest record of the change log.
    max_field: usize,
    /// A failed log write or sync took back changes already handed out: the next sync or
    /// flush reports it once, and writes are refused until then.
    lost: Option<String>,
    /// A failure after which memory could not yet be rebuilt from the log: writes are
    /// refused until a rebuild succeeds.
    stale: Option<String>,
    failed_writes: u64,
    /// Reused buffer for encoding changes.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("dir", &self.dir)
            .field("keys", &self.state.map.len())
            .field("next_revision", &self.next_revision)
            .finish_non_exhaustive()
    }
}

fn changes(log: &mut EventLog) -> Result<&mut Stream> {
    Ok(log.get(CHANGES_STREAM)?)
}

/// Folds one change record into `state`.
fn apply(state: &mut State, record: Record) -> std::result::Result<(), String> {
    let key = record.key.ok_or("no key")?;
    let key = std::str::from_utf8(&key).map_err(|_| "key is not UTF-8")?;
    let change = codec::decode_change(&record.value)?;
    match change.kind {
        ChangeKind::Put => state.put(key, change.value, record.offset, change.expires_at_us),
        ChangeKind::Delete | ChangeKind::Expire => state.remove(key, record.offset),
    }
    Ok(())
}

/// A snapshot loaded on open.
struct Loaded {
    offset: u64,
    state: State,
}

/// Finds the newest snapshot that loads soundly and is not ahead of the log (which ends at
/// `next`), setting aside (renaming `*.snap.damaged`) every newer one that is unusable.
/// Returns it with its offset, and the offsets of the snapshot files left, oldest first.
fn choose_snapshot(dir: &Path, next: u64, max_field: usize) -> Result<(Option<Loaded>, Vec<u64>)> {
    let mut snapshots = snapshot::list(dir)?;
    while let Some(&offset) = snapshots.last() {
        let why = if offset > next {
            // Possible only if the log lost synced data (Fsync::Never and a machine crash):
            // going on from it, revisions would go backwards.
            format!("snapshot at {offset} is ahead of the change log (which ends at {next})")
        } else {
            match snapshot::read(dir, offset, max_field) {
                Ok(state) => return Ok((Some(Loaded { offset, state }), snapshots)),
                Err(KvError::BadSnapshot { reason, .. }) => reason,
                Err(e) => return Err(e),
            }
        };
        let from = snapshot::path(dir, offset);
        let to = dir.join(format!("{offset:020}{SET_ASIDE_SUFFIX}"));
        warn!(file = %from.display(), reason = %why, "unusable snapshot set aside");
        std::fs::rename(&from, &to).map_err(KvError::io(&from))?;
        snapshot::sync_dir(dir)?;
        snapshots.pop();
    }
    Ok((None, snapshots))
}

/// Folds the changes `from..next` of the log into `state`. With `tolerate_damage`, damaged or
/// unreadable changes are skipped with a warning; returns how many were.
fn replay(
    stream: &mut Stream,
    state: &mut State,
    from: u64,
    next: u64,
    tolerate_damage: bool,
) -> Result<u64> {
    let mut skipped = 0u64;
    let mut from = from;
    while from < next {
        let batch = match stream.read(from, REPLAY_BATCH, usize::MAX) {
            Ok(batch) => batch,
            Err(EventLogError::Corrupt { offset, reason, .. }) if tolerate_damage => {
                warn!(offset, %reason, "damaged change skipped");
                skipped += 1;
                // The offset reported may lie before `from` when a damaged length hides
                // the records after it: step on regardless, so the loop always ends.
                from = from.max(offset) + 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(last) = batch.last().map(|r| r.offset) else {
            break;
        };
        for record in batch {
            let offset = record.offset;
            if let Err(reason) = apply(state, record) {
                if !tolerate_damage {
                    return Err(KvError::BadChange { offset, reason });
                }
                warn!(offset, %reason, "unreadable change skipped");
                skipped += 1;
            }
        }
        from = last + 1;
    }
    Ok(skipped)
}

/// The state rebuilt from the newest usable snapshot and the change log after it.
struct Rebuilt {
    state: State,
    /// Offsets of the snapshot files kept, oldest first.
    snapshots: Vec<u64>,
    /// The snapshot loaded.
    snapshot_offset: Option<u64>,
    /// Where the replay started.
    start: u64,
    /// The log's next offset.
    next: u64,
    /// Damaged changes skipped.
    skipped: u64,
}

/// Loads the newest usable snapshot and replays the log after it: on open, and after a
/// failed write took back changes that memory holds.
fn rebuild(
    stream: &mut Stream,
    snapshot_dir: &Path,
    max_field: usize,
    tolerate_damage: bool,
) -> Result<Rebuilt> {
    let first = stream.first_offset();
    let next = stream.next_offset();
    let (chosen, snapshots) = choose_snapshot(snapshot_dir, next, max_field)?;
    let (start, mut state, snapshot_offset) = match chosen {
        Some(Loaded { offset, state }) if offset >= first => (offset, state, Some(offset)),
        None if first == 0 => (0, State::default(), None),
        other => {
            let reason = match &other {
                Some(Loaded { offset, .. }) => format!(
                    "the change log starts at offset {first}, after the newest usable snapshot ({offset})"
                ),
                None => format!(
                    "the change log starts at offset {first} and no usable snapshot remains"
                ),
            };
            if !tolerate_damage {
                return Err(KvError::Unrecoverable { reason });
            }
            warn!(%reason, "changes lost: opening with what survives");
            match other {
                Some(Loaded { offset, state }) => (first, state, Some(offset)),
                None => (first, State::default(), None),
            }
        }
    };
    let skipped = replay(stream, &mut state, start, next, tolerate_damage)?;
    state.prune_tombstones(first);
    Ok(Rebuilt {
        state,
        snapshots,
        snapshot_offset,
        start,
        next,
        skipped,
    })
}

impl KvStore {
    /// Opens the store in `dir`, creating it if needed: loads the newest sound snapshot and
    /// replays the change log after it. A damaged snapshot is set aside (renamed
    /// `*.snap.damaged`, with a warning) and an older one, or the whole log, is used instead;
    /// a torn tail of the log (an interrupted write) is cut by the event log.
    ///
    /// # Errors
    /// An I/O error; a damaged change in the log ([`KvError::Log`] or
    /// [`KvError::BadChange`], naming the offset); [`KvError::Unrecoverable`] when the log
    /// has been compacted past every usable snapshot. With [`KvConfig::tolerate_damage`]
    /// the last three open with what survives.
    pub fn open(dir: &Path, config: KvConfig) -> Result<KvStore> {
        let snapshot_dir = dir.join(SNAPSHOT_DIR);
        let log_dir = dir.join(LOG_DIR);
        let fresh = !log_dir.exists();
        std::fs::create_dir_all(&snapshot_dir).map_err(KvError::io(&snapshot_dir))?;
        let mut log = EventLog::open(&log_dir)?;
        let needed = (RECORD_HEADER + CHANGE_HEADER_MAX)
            .saturating_add(config.max_key_bytes)
            .saturating_add(config.max_value_bytes);
        if log.stream(CHANGES_STREAM).is_none() {
            let defaults = StreamConfig::default();
            log.create_stream(
                CHANGES_STREAM,
                StreamConfig {
                    segment_bytes: config.segment_bytes,
                    fsync: config.fsync,
                    max_record_bytes: needed.max(defaults.max_record_bytes),
                    ..defaults
                },
            )?;
        }
        if fresh {
            snapshot::sync_dir(dir)?;
        }
        let stream = changes(&mut log)?;
        let stream_config = stream.config().clone();
        if stream_config.fsync != config.fsync {
            warn!(
                kept = ?stream_config.fsync,
                asked = ?config.fsync,
                "the change log keeps the fsync policy it was created with"
            );
        }
        let max_field = stream_config.max_record_bytes;
        let value_limit = config.max_value_bytes.min(
            max_field
                .saturating_sub(RECORD_HEADER + CHANGE_HEADER_MAX)
                .saturating_sub(config.max_key_bytes),
        );
        if value_limit < config.max_value_bytes {
            warn!(
                value_limit,
                "the change log's records are smaller than keys and values allow; values limited"
            );
        }
        let Rebuilt {
            state,
            snapshots,
            snapshot_offset,
            start,
            next,
            skipped,
        } = rebuild(stream, &snapshot_dir, max_field, config.tolerate_damage)?;
        info!(
            dir = %dir.display(),
            keys = state.map.len(),
            snapshot = ?snapshot_offset,
            replayed = next - start,
            "key-value store opened"
        );
        Ok(KvStore {
            dir: dir.to_owned(),
            snapshot_dir,
            config,
            log,
            fsync: stream_config.fsync,
            state,
            next_revision: next,
            value_limit,
            snapshots,
            changes_since_snapshot: next - snapshot_offset.unwrap_or(0).min(next),
            skipped_changes: skipped,
            dirty: false,
            last_sync: Instant::now(),
            max_field,
            lost: None,
            stale: None,
            failed_writes: 0,
            scratch: Vec::new(),
        })
    }

    /// Syncs the log, then drops the store.
    ///
    /// # Errors
    /// As for [`KvStore::sync`].
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// The largest value a write accepts.
    pub fn value_limit(&self) -> usize {
        self.value_limit
    }

    // ----- reads -----

    /// The key's entry, if it exists and has not expired at `now_us`.
    pub fn get(&self, key: &str, now_us: i64) -> Option<Entry> {
        self.state.live(key, now_us).map(|s| s.to_entry())
    }

    /// The key's revision, if it exists and has not expired at `now_us` (no copy of the
    /// value).
    pub fn revision_of(&self, key: &str, now_us: i64) -> Option<u64> {
        self.state.live(key, now_us).map(|s| s.revision)
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order, starting after
    /// the key `after` (the last key of the previous page) or at the first such key; and
    /// whether more follow. Keys past their expiry at `now_us` are left out.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now_us: i64,
    ) -> (Vec<(String, Entry)>, bool) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.as_bytes()),
            _ => Bound::Included(prefix.as_bytes()),
        };
        let mut out = Vec::new();
        for item in self.state.map.range::<[u8], _>((start, Bound::Unbounded)) {
            if !item.key_bytes().starts_with(prefix.as_bytes()) {
                break;
            }
            if !item.is_live(now_us) {
                continue;
            }
            if out.len() >= limit {
                return (out, true);
            }
            out.push((item.key().to_owned(), item.to_entry()));
        }
        (out, false)
    }

    /// Every live entry under `prefix`, with the revision it is consistent as of: the next
    /// revision. A replica loads the entries, then applies the changes it is sent whose
    /// revision is at or above it (the Clone pattern); changes below it are already in.
    pub fn snapshot_prefix(&self, prefix: &str, now_us: i64) -> (Vec<(String, Entry)>, u64) {
        let (entries, _) = self.list(prefix, None, usize::MAX, now_us);
        (entries, self.next_revision)
    }

    /// The revision the next change will get (the log's next offset). Every revision
    /// handed out so far is below it.
    pub fn revision(&self) -> u64 {
        self.next_revision
    }

    /// Keys held, including keys past their expiry not yet swept by
    /// [`KvStore::expire_due`].
    pub fn len(&self) -> usize {
        self.state.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.state.map.is_empty()
    }

    /// The earliest expiry of any key (µs since the epoch): when the owner should next call
    /// [`KvStore::expire_due`].
    pub fn next_expiry(&self) -> Option<i64> {
        self.state.expiry.first().map(|&(at, _)| at)
    }

    /// Newest first, up to `min(n, max_history)` changes of `key`, read back from the log by
    /// following each change's link to the previous one. It works for a deleted or expired
    /// key too. It reaches back only as far as the log does: compaction drops log segments
    /// older than the older of the two snapshots kept, so at least every change since the
    /// newest snapshot is reachable.
    ///
    /// # Errors
    /// A damaged record on the way ([`KvError::Log`], [`KvError::BadChange`]) or an I/O
    /// error.
    pub fn history(&mut self, key: &str, n: usize) -> Result<Vec<HistoryEntry>> {
        let limit = n.min(self.config.max_history);
        let mut out = Vec::new();
        let mut next = self.state.last_revision(key);
        let stream = changes(&mut self.log)?;
        while let Some(revision) = next {
            if out.len() >= limit || revision < stream.first_offset() {
                break;
            }
            let Some(record) = stream.read(revision, 1, 1)?.into_iter().next() else {
                break;
            };
            if record.offset != revision || record.key.as_deref() != Some(key.as_bytes()) {
                warn!(
                    key,
                    revision, "history link leads to another record; history cut"
                );
                break;
            }
            let change = codec::decode_change(&record.value).map_err(|why| KvError::BadChange {
                offset: revision,
                reason: why.to_owned(),
            })?;
            out.push(HistoryEntry {
                revision,
                kind: change.kind,
                value: change.value.to_vec(),
                expires_at_us: change.expires_at_us,
                timestamp_us: record.timestamp,
            });
            // Links go strictly backwards; anything else is damage, and must not loop.
            next = change.prev.filter(|&p| p < revision);
        }
        Ok(out)
    }

    /// The changes with revisions in `from..until` (`until` clamped to
    /// [`KvStore::revision`]) whose key starts with `prefix`, oldest first, at most `max`;
    /// and the revision to ask from next. Read back from the log, so a replica that loaded
    /// [`KvStore::snapshot_prefix`] at revision `r` follows the store by asking from `r`,
    /// then from each `next`; the owner passes as `until` the end of what is synced, so
    /// that a replica never sees a change a crash could undo. One call scans at most about
    /// 8 MiB of log, so `next` may advance with no change returned when few keys match.
    ///
    /// # Errors
    /// [`KvError::Compacted`] when `from` is older than the log's first change (the replica
    /// must load a new snapshot), or a damaged record ([`KvError::Log`],
    /// [`KvError::BadChange`]) or an I/O error.
    pub fn changes_since(
        &mut self,
        prefix: &str,
        from: u64,
        until: u64,
        max: usize,
    ) -> Result<(Vec<Change>, u64)> {
        let until = until.min(self.next_revision);
        let stream = changes(&mut self.log)?;
        let first = stream.first_offset();
        if from < first {
            return Err(KvError::Compacted { from, first });
        }
        let mut out = Vec::new();
        let mut next = from;
        let mut scanned = 0usize;
        while next < until && out.len() < max && scanned < SCAN_BUDGET {
            let batch = stream.read(next, SCAN_BATCH, (until - next) as usize)?;
            if batch.is_empty() {
                break;
            }
            for record in batch {
                if record.offset >= until || out.len() >= max {
                    break;
                }
                next = record.offset + 1;
                scanned += record.value.len();
                let Some(key) = record.key.as_deref() else {
                    return Err(KvError::BadChange {
                        offset: record.offset,
                        reason: "no key".into(),
                    });
                };
                if !key.starts_with(prefix.as_bytes()) {
                    continue;
                }
                let bad = |reason: &str| KvError::BadChange {
                    offset: record.offset,
                    reason: reason.to_owned(),
                };
                let key = std::str::from_utf8(key).map_err(|_| bad("key is not UTF-8"))?;
                let change = codec::decode_change(&record.value).map_err(bad)?;
                out.push(Change {
                    revision: record.offset,
                    key: key.to_owned(),
                    kind: change.kind,
                    value: change.value.to_vec(),
                    expires_at_us: change.expires_at_us,
                    prev_revision: change.prev,
                    timestamp_us: record.timestamp,
                });
            }
        }
        Ok((out, next.max(from)))
    }

    // ----- writes -----

    /// Sets `key` to `value`, with a time to live from `now_us` or none (a put without a TTL
    /// clears an existing one). A TTL of zero stores a key that is already expired.
    ///
    /// # Errors
    /// [`KvError::BadKey`], [`KvError::ValueTooLarge`], [`KvError::NotStored`], or a log
    /// error.
    pub fn put(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        now_us: i64,
    ) -> Result<Change> {
        self.check_write(key, value)?;
        let expires_at = ttl.map(|ttl| expiry_time(now_us, ttl));
        self.write_put(key, value, expires_at, now_us)
    }

    /// Puts only if the key's current revision is `expected`; `None` means the key must be
    /// absent (create only). A key past its expiry counts as absent.
    ///
    /// # Errors
    /// [`KvError::RevisionMismatch`] with the current revision, or as for [`KvStore::put`].
    pub fn cas(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl: Option<Duration>,
        now_us: i64,
    ) -> Result<Change> {
        self.check_write(key, value)?;
        let current = self.revision_of(key, now_us);
        if current != expected {
            return Err(KvError::RevisionMismatch {
                key: key.to_owned(),
                expected,
                current,
            });
        }
        let expires_at = ttl.map(|ttl| expiry_time(now_us, ttl));
        self.write_put(key, value, expires_at, now_us)
    }

    /// Adds `delta` to the counter at `key` (an absent key counts as 0) and returns the new
    /// value with the change. The value is stored as a MessagePack integer
    /// ([`crate::codec::encode_counter`]); the key keeps its TTL.
    ///
    /// # Errors
    /// [`KvError::NotACounter`] when the value is not a MessagePack integer,
    /// [`KvError::Overflow`] when the sum leaves `i64`, or as for [`KvStore::put`].
    pub fn incr(&mut self, key: &str, delta: i64, now_us: i64) -> Result<(i64, Change)> {
        self.check_write(key, b"")?;
        let (current, expires_at) = match self.state.live(key, now_us) {
            Some(item) => {
                let n =
                    codec::decode_counter(item.value()).ok_or_else(|| KvError::NotACounter {
                        key: key.to_owned(),
                    })?;
                (n, item.expiry())
            }
            None => (0, None),
        };
        let value = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Overflow {
                key: key.to_owned(),
                value: current,
                delta,
            })?;
        let change = self.write_put(key, &codec::encode_counter(value), expires_at, now_us)?;
        Ok((value, change))
    }

    /// Deletes `key`; `None` (and nothing written) when it is absent or past its expiry
    /// (an expired key is removed by [`KvStore::expire_due`], which records it as expired).
    ///
    /// # Errors
    /// [`KvError::BadKey`], [`KvError::NotStored`], or a log error.
    pub fn delete(&mut self, key: &str, now_us: i64) -> Result<Option<Change>> {
        self.check_write(key, b"")?;
        if self.state.live(key, now_us).is_none() {
            return Ok(None);
        }
        self.write_removal(key, ChangeKind::Delete, now_us)
            .map(Some)
    }

    /// Removes every key whose expiry is at or before `now_us`, each with an expire change
    /// (so history and watchers see it, once), and returns those changes. Cheap when nothing
    /// is due: it looks at the expiry index only.
    ///
    /// # Errors
    /// [`KvError::NotStored`] or a log error; the changes appended before it stay appended
    /// and applied.
    pub fn expire_due(&mut self, now_us: i64) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        while let Some((at, key)) = self.state.expiry.first() {
            if *at > now_us {
                break;
            }
            let key = key.to_string();
            self.check_writable()?;
            out.push(self.write_removal(&key, ChangeKind::Expire, now_us)?);
        }
        Ok(out)
    }

    // ----- durability -----

    /// Makes every change appended so far durable (one `sync_data` for all of them: group
    /// commit). Under [`Fsync::Always`] the owner acknowledges writes only after this.
    ///
    /// # Errors
    /// [`KvError::NotStored`] once after a failure took back changes handed out since the
    /// last sync or flush; or the error of this sync (the log then cuts back to its last
    /// synced change, and the store's memory follows, so the changes since are not stored).
    pub fn sync(&mut self) -> Result<()> {
        self.check_reported()?;
        if !self.dirty {
            return Ok(());
        }
        let result = changes(&mut self.log).and_then(|s| s.sync().map_err(KvError::from));
        match result {
            Ok(()) => {
                self.dirty = false;
                self.last_sync = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.on_failure(&e);
                // Reported here: not again.
                self.lost = None;
                Err(e)
            }
        }
    }

    /// Writes the changes appended so far to the log file without syncing them: from then
    /// on a crash of the process (not of the machine) loses none of them. Under the
    /// `interval` and `never` policies the owner calls this before acknowledging.
    ///
    /// # Errors
    /// As for [`KvStore::sync`].
    pub fn flush(&mut self) -> Result<()> {
        self.check_reported()?;
        let result = changes(&mut self.log).and_then(|s| s.flush().map_err(KvError::from));
        if let Err(e) = &result {
            self.on_failure(e);
            self.lost = None;
        }
        result
    }

    /// Reports lost changes once, and rebuilds memory if an earlier rebuild failed.
    fn check_reported(&mut self) -> Result<()> {
        if let Some(reason) = self.lost.take() {
            return Err(KvError::NotStored { reason });
        }
        if self.stale.is_some() {
            self.reload()?;
        }
        Ok(())
    }

    /// Whether the log's policy ([`Fsync::Always`]) asks for [`KvStore::sync`] before the
    /// changes appended since the last one are acknowledged.
    pub fn needs_sync(&self) -> bool {
        self.fsync == Fsync::Always && self.dirty
    }

    /// When an [`Fsync::Interval`] policy wants a sync: the last sync plus the interval,
    /// while changes wait unsynced (`None` otherwise, and under other policies). The owner
    /// wakes then to call [`KvStore::sync`].
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.fsync {
            Fsync::Interval(every) if self.dirty => Some(self.last_sync + every),
            _ => None,
        }
    }

    /// Whether an [`Fsync::Interval`] policy wants a sync at `now`.
    pub fn sync_due(&self, now: Instant) -> bool {
        self.sync_deadline().is_some_and(|at| now >= at)
    }

    /// Whether [`KvConfig::snapshot_every`] changes have been appended since the newest
    /// snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.config.snapshot_every > 0 && self.changes_since_snapshot >= self.config.snapshot_every
    }

    /// Housekeeping the owner calls when it is idle or after a batch: takes a snapshot (and
    /// compacts) when one is due. Snapshots are never taken inside a write, so a write's
    /// latency and errors are its own. Returns whether a snapshot was taken.
    ///
    /// # Errors
    /// As for [`KvStore::snapshot`].
    pub fn maintenance(&mut self) -> Result<bool> {
        if !self.snapshot_due() {
            return Ok(false);
        }
        self.snapshot()?;
        Ok(true)
    }

    /// Syncs the log, writes the whole state to `snapshots/{offset:020}.snap` (temporary
    /// file, `sync_all`, rename, directory fsync), keeps the newest two snapshots, then
    /// compacts: drops the log segments wholly below the older snapshot kept, so that either
    /// snapshot can rebuild the state. Returns the snapshot's offset (the next revision).
    /// Writing costs one pass over the state; the owner's thread is busy meanwhile.
    ///
    /// # Errors
    /// [`KvError::NotStored`] or an I/O error. A failure leaves the previous snapshots and
    /// the log as they were.
    pub fn snapshot(&mut self) -> Result<u64> {
        self.sync()?;
        let offset = self.next_revision;
        if self.snapshots.last() == Some(&offset) {
            return Ok(offset);
        }
        snapshot::write(&self.snapshot_dir, offset, &self.state)?;
        self.snapshots.push(offset);
        self.changes_since_snapshot = 0;
        let excess = self.snapshots.len().saturating_sub(KEEP);
        for old in self.snapshots.drain(..excess) {
            let p = snapshot::path(&self.snapshot_dir, old);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(KvError::Io { path: p, cause: e }),
            }
        }
        if excess > 0 {
            snapshot::sync_dir(&self.snapshot_dir)?;
        }
        let mut dropped = 0;
        if self.snapshots.len() >= KEEP {
            let stream = changes(&mut self.log)?;
            dropped = stream.drop_segments_before(self.snapshots[0])?;
            self.state.prune_tombstones(stream.first_offset());
        }
        info!(
            offset,
            keys = self.state.map.len(),
            dropped_segments = dropped,
            "snapshot written"
        );
        Ok(offset)
    }

    /// Counters for monitoring.
    pub fn stats(&self) -> KvStats {
        let info = self
            .log
            .list()
            .into_iter()
            .find(|s| s.name == CHANGES_STREAM);
        KvStats {
            keys: self.state.map.len(),
            expiring_keys: self.state.expiry.len(),
            tombstones: self.state.tombstones.len(),
            next_revision: self.next_revision,
            first_log_offset: info.as_ref().map_or(0, |i| i.first_offset),
            log_bytes: info.as_ref().map_or(0, |i| i.size_bytes),
            log_segments: info.as_ref().map_or(0, |i| i.segments),
            snapshot_offset: self.snapshots.last().copied(),
            snapshots: self.snapshots.len(),
            changes_since_snapshot: self.changes_since_snapshot,
            skipped_changes: self.skipped_changes,
            failed_writes: self.failed_writes,
        }
    }

    // ----- internals -----

    /// Refuses writes while a failure waits to be reported or memory to be rebuilt.
    fn check_writable(&mut self) -> Result<()> {
        if let Some(reason) = &self.lost {
            return Err(KvError::NotStored {
                reason: reason.clone(),
            });
        }
        if self.stale.is_some() {
            self.reload()?;
        }
        Ok(())
    }

    fn check_write(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.check_put(key, value)?;
        self.check_writable()
    }

    /// Whether a put of `value` at `key` passes the store's limits (key rules, value size),
    /// without writing: so that a batch can be refused whole before any of it is written.
    ///
    /// # Errors
    /// [`KvError::BadKey`] or [`KvError::ValueTooLarge`].
    pub fn check_put(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key, self.config.max_key_bytes)?;
        if value.len() > self.value_limit {
            return Err(KvError::ValueTooLarge {
                size: value.len(),
                limit: self.value_limit,
            });
        }
        Ok(())
    }

    /// A write or sync of the change log failed. The log has cut itself back to its last
    /// good change; when that took back changes memory holds, memory is rebuilt from the log
    /// (snapshot and replay) and the loss kept for the owner's next sync or flush, so that
    /// no write is acknowledged that the log does not hold.
    fn on_failure(&mut self, e: &KvError) {
        self.failed_writes += 1;
        let Ok(stream) = changes(&mut self.log) else {
            return;
        };
        // The log reports its failure to its owner's next flush; this store is that owner,
        // and has it in hand.
        let _ = stream.flush();
        let kept = stream.next_offset();
        if kept >= self.next_revision {
            warn!(error = %e, "change log write failed; no change was lost");
            return;
        }
        warn!(
            error = %e,
            from = kept,
            lost = self.next_revision - kept,
            "change log write failed; the store goes back to what the log holds"
        );
        self.lost = Some(e.to_string());
        self.stale = Some(e.to_string());
        if let Err(e) = self.reload() {
            error!(error = %e, "cannot rebuild the state from the log yet; writes refused until it can");
        }
    }

    /// Rebuilds memory from the newest snapshot and the change log as it now stands.
    fn reload(&mut self) -> Result<()> {
        let stream = changes(&mut self.log)?;
        let rebuilt = rebuild(
            stream,
            &self.snapshot_dir,
            self.max_field,
            self.config.tolerate_damage,
        )?;
        self.dirty = stream.has_unsynced();
        self.state = rebuilt.state;
        self.snapshots = rebuilt.snapshots;
        self.next_revision = rebuilt.next;
        self.changes_since_snapshot =
            rebuilt.next - rebuilt.snapshot_offset.unwrap_or(0).min(rebuilt.next);
        self.skipped_changes = rebuilt.skipped;
        self.stale = None;
        info!(
            keys = self.state.map.len(),
            next_revision = self.next_revision,
            "key-value state rebuilt from the change log"
        );
        Ok(())
    }

    /// Appends one change; returns its revision.
    fn append(&mut self, key: &str, change: &ChangeRecord<'_>, now_us: i64) -> Result<u64> {
        self.scratch.clear();
        codec::encode_change(&mut self.scratch, change);
        let result = changes(&mut self.log).and_then(|s| {
            s.append(Some(now_us), Some(key.as_bytes()), &self.scratch)
                .map_err(KvError::from)
        });
        match result {
            Ok(revision) => {
                self.next_revision = revision + 1;
                self.dirty = true;
                self.changes_since_snapshot += 1;
                Ok(revision)
            }
            // Refused before anything was written.
            Err(e @ KvError::Log(EventLogError::RecordTooLarge { .. })) => Err(e),
            Err(e) => {
                self.on_failure(&e);
                Err(e)
            }
        }
    }

    fn write_put(
        &mut self,
        key: &str,
        value: &[u8],
        expires_at_us: Option<i64>,
        now_us: i64,
    ) -> Result<Change> {
        let prev = self.state.last_revision(key);
        let revision = self.append(
            key,
            &ChangeRecord {
                kind: ChangeKind::Put,
                prev,
                expires_at_us,
                value,
            },
            now_us,
        )?;
        self.state.put(key, value, revision, expires_at_us);
        Ok(Change {
            revision,
            key: key.to_owned(),
            kind: ChangeKind::Put,
            value: value.to_vec(),
            expires_at_us,
            prev_revision: prev,
            timestamp_us: now_us,
        })
    }

    /// Appends and applies a delete or expire of a key held in the map.
    fn write_removal(&mut self, key: &str, kind: ChangeKind, now_us: i64) -> Result<Change> {
        let prev = self.state.get(key).map(|item| item.revision);
        let revision = self.append(
            key,
            &ChangeRecord {
                kind,
                prev,
                expires_at_us: None,
                value: b"",
            },
            now_us,
        )?;
        self.state.remove(key, revision);
        Ok(Change {
            revision,
            key: key.to_owned(),
            kind,
            value: Vec::new(),
            expires_at_us: None,
            prev_revision: prev,
            timestamp_us: now_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_moves_to_its_owner_thread() {
        fn send<T: Send>() {}
        send::<KvStore>();
    }
}
