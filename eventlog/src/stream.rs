//! [`Stream`]: a named, append-only sequence of records in a directory of segments.
//!
//! # Failed writes and syncs
//!
//! The owner confirms records by a successful [`Stream::flush`] or [`Stream::sync`], and
//! acknowledges only confirmed records. When a write fails (a full disk), part of a record
//! may be in the file and more may wait in the buffer: the stream cuts itself back to the
//! last confirmed record (the file is truncated there, segments created since are deleted,
//! the buffer and the indexes follow), so that the next record starts exactly after the last
//! good one and no offset that was confirmed is given out again. The failure is then
//! returned by the append or flush that met it, by every append until the owner's next
//! flush or sync, and by that flush or sync once: by then the owner has failed every record
//! it held since its last confirmation. Reads go on meanwhile, and records already written
//! stay readable.
//!
//! A failed fsync is worse: the kernel may have dropped the pages it could not write and
//! marked them clean, so neither the page cache nor a retried fsync tells what the disk
//! holds (PostgreSQL's lesson). Only what an earlier fsync confirmed is trusted: the stream
//! cuts back to the last synced record (never past the last confirmed one), fsyncs the cut,
//! and reports the failure as above. Under [`Fsync::Always`] nothing after the last sync was
//! acknowledged, so nothing acknowledged is lost; under [`Fsync::Interval`] the records
//! acknowledged since the last sync go, as a crash of the machine would take them; under
//! [`Fsync::Never`], which promises nothing against the disk, the failure is only reported.
//! A cut that itself fails (the truncation or the fsync after it) is retried before anything
//! else is written, and appends are refused until it succeeds.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{error, info};

use crate::codec;
use crate::codec::RawRecord;
use crate::config::{Fsync, StreamConfig};
use crate::error::{EventLogError, Result};
use crate::segment::{self, Batch, Mark, Segment};
use crate::Record;

/// Name of the file holding a stream's settings.
pub(crate) const CONFIG_FILE: &str = "stream.conf";

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Checks a stream name: 1 to 200 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`.
///
/// # Errors
/// [`EventLogError::InvalidName`].
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EventLogError::InvalidName(name.to_owned()))
    }
}

/// fsyncs a directory, so that files created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(EventLogError::io(dir))
}

/// What [`crate::EventLog::list`] says about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// The oldest offset still held.
    pub first_offset: u64,
    /// The offset the next record will get.
    pub next_offset: u64,
    /// Records held.
    pub records: u64,
    /// Bytes on disk (logs; indexes excluded).
    pub size_bytes: u64,
    /// Segment files.
    pub segments: usize,
}

/// A write failure not yet reported to the owner's flush or sync.
#[derive(Debug, Clone)]
struct Failure {
    from: u64,
    kind: std::io::ErrorKind,
    reason: String,
}

impl Failure {
    fn error(&self, stream: &str) -> EventLogError {
        EventLogError::NotStored {
            stream: stream.to_owned(),
            from: self.from,
            kind: self.kind,
            reason: self.reason.clone(),
        }
    }
}

/// A cut back that could not be finished: where to, and whether to fsync it.
#[derive(Debug, Clone, Copy)]
struct Repair {
    to: Mark,
    sync: bool,
}

/// A stream, owned by one thread (the broker's storage thread, or a test).
pub struct Stream {
    name: String,
    dir: PathBuf,
    config: StreamConfig,
    /// Oldest first; the last is the active one. Never empty.
    segments: Vec<Segment>,
    last_sync: Instant,
    /// The end of the records the owner last confirmed (its last successful flush or
    /// sync); a failed write cuts back to it.
    confirmed: Mark,
    /// The end of the records the last successful fsync covered; a failed fsync cuts back
    /// to it (or to `confirmed`, when that is older).
    synced: Mark,
    /// A failure the owner's next flush or sync reports; appends are refused until then.
    failure: Option<Failure>,
    /// A cut still owed to the files; appends are refused until it is made.
    repair: Option<Repair>,
    /// When the [`crate::EventLog`] last handed the stream out (0: it holds no file).
    pub(crate) last_used: u64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.name)
            .field("first_offset", &self.first_offset())
            .field("next_offset", &self.next_offset())
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Creates a stream in `dir` (which must not exist) with `config`.
    pub(crate) fn create(dir: &Path, name: &str, mut config: StreamConfig) -> Result<Stream> {
        check_name(name)?;
        // Positions in the index are u32.
        config.segment_bytes = config.segment_bytes.clamp(4096, u64::from(u32::MAX));
        std::fs::create_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => EventLogError::StreamExists(name.to_owned()),
            _ => EventLogError::Io {
                path: dir.to_owned(),
                cause: e,
            },
        })?;
        write_atomically(&dir.join(CONFIG_FILE), config.to_text().as_bytes())?;
        let mut segment = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        segment.sync_data()?;
        segment.close(false);
        Ok(Stream::assemble(name, dir, config, vec![segment]))
    }

    fn assemble(name: &str, dir: &Path, config: StreamConfig, segments: Vec<Segment>) -> Stream {
        // What is on disk after open or create counts as confirmed and synced: recovery has
        // cut what did not survive. Callers pass at least one segment.
        let here = segments[segments.len() - 1].mark();
        Stream {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            segments,
            last_sync: Instant::now(),
            confirmed: here,
            synced: here,
            failure: None,
            repair: None,
            last_used: 0,
        }
    }

    /// Opens an existing stream, recovering its last segment.
    pub(crate) fn open(dir: &Path, name: &str) -> Result<Stream> {
        let conf_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&conf_path).map_err(EventLogError::io(&conf_path))?;
        let config = StreamConfig::from_text(&conf_path, &text)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(EventLogError::io(dir))? {
            let entry = entry.map_err(EventLogError::io(dir))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            match stem.parse::<u64>() {
                Ok(base) if stem.len() == 20 => bases.push(base),
                _ => {
                    tracing::warn!(stream = name, file = ?file_name, "unexpected file in stream directory ignored")
                }
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            segments.push(Segment::open(
                dir,
                name,
                base,
                next,
                config.max_record_bytes,
                config.index_interval_bytes,
            )?);
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0)?);
            sync_dir(dir)?;
        }
        for segment in &mut segments {
            // A new last segment holds only its header; sync it before it counts as synced.
            segment.sync_data()?;
            segment.close(false);
        }
        Ok(Stream::assemble(name, dir, config, segments))
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream's settings.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// The oldest offset still held.
    pub fn first_offset(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.base)
    }

    /// The offset the next record will get.
    pub fn next_offset(&self) -> u64 {
        self.active().next_offset
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: create and open both leave one.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Bytes of log held.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// A summary for listings.
    pub fn info(&self) -> StreamInfo {
        StreamInfo {
            name: self.name.clone(),
            first_offset: self.first_offset(),
            next_offset: self.next_offset(),
            records: self.next_offset() - self.first_offset(),
            size_bytes: self.size_bytes(),
            segments: self.segments.len(),
        }
    }

    /// Appends a record, buffered; returns its offset. `timestamp` defaults to now. The
    /// caller acknowledges it only after a successful [`Stream::sync`] (under
    /// [`Fsync::Always`]) or [`Stream::flush`].
    ///
    /// # Errors
    /// [`EventLogError::RecordTooLarge`]; [`EventLogError::NotStored`] when a write failed,
    /// now or since the owner's last flush or sync (see the module documentation); or an I/O
    /// error that changed nothing (a new segment that could not be created).
    pub fn append(
        &mut self,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<u64> {
        if let Some(failure) = &self.failure {
            return Err(failure.error(&self.name));
        }
        self.finish_repair()?;
        let size = codec::framed_len(key, value);
        if size > self.config.max_record_bytes {
            return Err(EventLogError::RecordTooLarge {
                size,
                limit: self.config.max_record_bytes,
            });
        }
        if !self.active().is_empty()
            && self.active().size() + size as u64 > self.config.segment_bytes
        {
            self.roll()?;
        }
        let interval = self.config.index_interval_bytes;
        let timestamp = timestamp.unwrap_or_else(now_micros);
        let offset = self.active_mut().append(timestamp, key, value, interval);
        if self.active().wants_flush() {
            if let Err(e) = self.active_mut().flush() {
                return Err(self.write_failed(e));
            }
        }
        Ok(offset)
    }

    /// Seals the active segment and starts a new one.
    fn roll(&mut self) -> Result<()> {
        if let Err(e) = self.active_mut().seal() {
            return Err(self.write_failed(e));
        }
        if self.config.fsync != Fsync::Never {
            if let Err(e) = self.active_mut().sync_data() {
                return Err(self.sync_failed(e));
            }
            self.synced = self.position();
        }
        let base = self.active().next_offset;
        // A failure here changes nothing: the active segment stays, and a later append
        // tries again (replacing any file left behind).
        let mut segment = Segment::create(&self.dir, base)?;
        if let Err(e) = sync_dir(&self.dir) {
            let _ = segment.delete();
            return Err(e);
        }
        info!(stream = %self.name, base, "segment rolled");
        let unsynced_ok = self.config.fsync == Fsync::Never;
        self.active_mut().close(unsynced_ok);
        self.segments.push(segment);
        Ok(())
    }

    /// Writes buffered records to the files without syncing them, and confirms them.
    ///
    /// # Errors
    /// [`EventLogError::NotStored`] when this write failed or an earlier one did since the
    /// last flush or sync (reported once), or an I/O error finishing the cut of an earlier
    /// failure.
    pub fn flush(&mut self) -> Result<()> {
        self.take_failure()?;
        self.write_out(false).inspect_err(|_| self.failure = None)?;
        self.confirmed = self.position();
        Ok(())
    }

    /// Makes every appended record durable (`sync_data`), and confirms them.
    ///
    /// # Errors
    /// As for [`Stream::flush`]; a failed fsync also returns [`EventLogError::NotStored`]
    /// (under [`Fsync::Never`], the I/O error as it is).
    pub fn sync(&mut self) -> Result<()> {
        self.take_failure()?;
        // A failure met here is reported here: the owner has it.
        self.write_out(true).inspect_err(|_| self.failure = None)?;
        self.confirmed = self.position();
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Where the stream stands now: the end of its last record, buffered ones included.
    fn position(&self) -> Mark {
        self.active().mark()
    }

    /// Writes out the buffer, and syncs when `sync`, without confirming anything.
    fn write_out(&mut self, sync: bool) -> Result<()> {
        if let Err(e) = self.active_mut().flush() {
            return Err(self.write_failed(e));
        }
        if sync && self.active().unsynced {
            if let Err(e) = self.active_mut().sync_data() {
                return Err(self.sync_failed(e));
            }
            self.synced = self.position();
        }
        Ok(())
    }

    /// Finishes an owed cut, then reports a failure once.
    fn take_failure(&mut self) -> Result<()> {
        self.finish_repair()?;
        match self.failure.take() {
            Some(failure) => Err(failure.error(&self.name)),
            None => Ok(()),
        }
    }

    /// A write failed: back to the last confirmed record.
    fn write_failed(&mut self, e: EventLogError) -> EventLogError {
        let to = self.confirmed;
        self.fail(e, to, false)
    }

    /// An fsync failed: back to the last synced record, never past the last confirmed one.
    fn sync_failed(&mut self, e: EventLogError) -> EventLogError {
        if self.config.fsync == Fsync::Never {
            error!(stream = %self.name, error = %e, "fsync failed (the stream's policy is never)");
            return e;
        }
        let to = if self.synced.next_offset <= self.confirmed.next_offset {
            self.synced
        } else {
            self.confirmed
        };
        if to.next_offset < self.confirmed.next_offset {
            error!(
                stream = %self.name,
                from = to.next_offset,
                lost = self.confirmed.next_offset - to.next_offset,
                "fsync failed: records confirmed since the last sync are given up"
            );
        }
        self.fail(e, to, true)
    }

    /// Cuts back to `to` (fsyncing the cut when `sync`) and keeps the failure to report.
    fn fail(&mut self, e: EventLogError, to: Mark, sync: bool) -> EventLogError {
        error!(
            stream = %self.name,
            from = to.next_offset,
            dropped = self.next_offset() - to.next_offset,
            error = %e,
            "write failed; the stream goes back to its last good record"
        );
        let kind = match &e {
            EventLogError::Io { cause, .. } => cause.kind(),
            EventLogError::NotStored { kind, .. } => *kind,
            _ => std::io::ErrorKind::Other,
        };
        let failure = Failure {
            from: to.next_offset,
            kind,
            reason: match e {
                EventLogError::NotStored { reason, .. } => reason,
                other => other.to_string(),
            },
        };
        self.repair = Some(Repair { to, sync });
        if let Err(e) = self.finish_repair() {
            error!(stream = %self.name, error = %e, "cut not made yet; appends refused until it is");
        }
        self.confirmed = to;
        if self.synced.next_offset > to.next_offset || sync {
            self.synced = to;
        }
        self.failure = Some(failure.clone());
        failure.error(&self.name)
    }

    /// Makes an owed cut: deletes the segments after the mark's, truncates the mark's
    /// segment to it, and fsyncs the cut when asked.
    fn finish_repair(&mut self) -> Result<()> {
        let Some(Repair { to, sync }) = self.repair else {
            return Ok(());
        };
        // The mark's segment is gone only if retention dropped it since: then nothing that
        // remains was confirmed.
        let oldest = &self.segments[0];
        let to = if to.base < oldest.base {
            oldest.start_mark()
        } else {
            to
        };
        while self.segments.len() > 1 && self.active().base > to.base {
            self.active_mut().delete()?;
            self.segments.pop();
            sync_dir(&self.dir)?;
        }
        self.active_mut().cut(to)?;
        if sync {
            self.active_mut().sync_data()?;
        }
        self.repair = None;
        Ok(())
    }

    /// Writes out and syncs what waits, then closes every file, so that the stream holds no
    /// descriptor until it is used again. A failure is kept for the owner's next flush or
    /// sync, and the files it concerns stay open.
    pub(crate) fn release(&mut self) {
        if self.failure.is_none() && self.repair.is_none() {
            // A closed file holds nothing unsynced: an fsync through a descriptor opened
            // later might not see a write-back error that happened before it.
            let _ = self.write_out(true);
        }
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter_mut().enumerate() {
            // A sealed segment was synced when it was rolled, except under `never`.
            segment.close(i < last);
        }
    }

    /// How many of the stream's segments hold an open file.
    #[cfg(test)]
    pub(crate) fn open_files(&self) -> usize {
        self.segments.iter().filter(|s| s.is_open()).count()
    }

    /// Closes the sealed segments' files after a read: they are opened again for the next.
    fn close_sealed(&mut self) {
        let last = self.segments.len() - 1;
        for segment in &mut self.segments[..last] {
            segment.close(true);
        }
    }

    /// Whether records appended since the last sync are not yet on disk.
    pub fn has_unsynced(&self) -> bool {
        self.active().unsynced
    }

    /// Whether the policy asks for a sync before acknowledging: [`Fsync::Always`] with
    /// unsynced records. The owner appends every waiting record first, then syncs once.
    pub fn needs_sync(&self) -> bool {
        self.config.fsync == Fsync::Always && self.has_unsynced()
    }

    /// When an [`Fsync::Interval`] policy wants a sync: the last sync plus the interval,
    /// while records wait unsynced (`None` otherwise, and under other policies).
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.config.fsync {
            Fsync::Interval(every) if self.has_unsynced() => Some(self.last_sync + every),
            _ => None,
        }
    }

    /// Whether an [`Fsync::Interval`] policy wants a sync at `now`.
    pub fn sync_due(&self, now: Instant) -> bool {
        self.sync_deadline().is_some_and(|at| now >= at)
    }

    /// Reads records from offset `from` on (from the first offset held when `from` is older),
    /// across segments, until `max_bytes` of values (at least one record) or `max_records`.
    /// An empty result means `from` is at the end: call again later to follow the tail.
    ///
    /// # Errors
    /// [`EventLogError::Corrupt`] naming the offset of a damaged record (records before it
    /// are returned by the calls that reach them), or an I/O error.
    pub fn read(&mut self, from: u64, max_bytes: usize, max_records: usize) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        self.read_with(from, max_bytes, max_records, |r| {
            records.push(Record {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.to_vec(),
            });
        })?;
        Ok(records)
    }

    /// As [`Stream::read`], handing each record to `visit` as a view into the read buffer
    /// instead of copying it out: for readers that encode or count records as they go.
    /// Returns how many records were visited.
    ///
    /// # Errors
    /// As for [`Stream::read`].
    pub fn read_with(
        &mut self,
        from: u64,
        max_bytes: usize,
        max_records: usize,
        mut visit: impl FnMut(RawRecord<'_>),
    ) -> Result<usize> {
        if self.failure.is_none() && self.repair.is_none() {
            // Reads see what is buffered. A failure here is the writers' (kept for the
            // owner's next flush or sync); what is written stays readable.
            let _ = self.write_out(false);
        }
        let result = self.read_written(from, max_bytes, max_records, &mut visit);
        self.close_sealed();
        result
    }

    fn read_written(
        &mut self,
        from: u64,
        max_bytes: usize,
        max_records: usize,
        visit: &mut dyn FnMut(RawRecord<'_>),
    ) -> Result<usize> {
        let mut batch = Batch::new(max_bytes, max_records, visit);
        let from = from.max(self.first_offset());
        let start = self
            .segments
            .partition_point(|s| s.base <= from)
            .saturating_sub(1);
        let mut next = from;
        let max_record = self.config.max_record_bytes;
        for segment in &mut self.segments[start..] {
            if segment.read(&self.name, next, max_record, &mut batch)? {
                break;
            }
            next = segment.next_offset;
        }
        Ok(batch.count())
    }

    /// The offset of the first record whose timestamp is at or after `timestamp`
    /// (microseconds since the epoch); `None` when every record is older.
    ///
    /// # Errors
    /// As for [`Stream::read`].
    pub fn offset_for_time(&mut self, timestamp: i64) -> Result<Option<u64>> {
        if self.failure.is_none() && self.repair.is_none() {
            let _ = self.write_out(false);
        }
        let max_record = self.config.max_record_bytes;
        let mut found = Ok(None);
        for segment in &mut self.segments {
            match segment.offset_for_time(&self.name, timestamp, max_record) {
                Ok(None) => continue,
                other => {
                    found = other;
                    break;
                }
            }
        }
        self.close_sealed();
        found
    }

    /// Drops whole sealed segments beyond the retention limits: oldest first while the
    /// stream is over `retention_bytes`, and any whose newest record is older than
    /// `retention_age` at `now_us`. The active segment is never dropped. Returns how many
    /// segments went.
    ///
    /// # Errors
    /// An I/O error.
    pub fn apply_retention(&mut self, now_us: i64) -> Result<usize> {
        let mut dropped = 0;
        loop {
            if self.segments.len() < 2 {
                break;
            }
            let oldest = &self.segments[0];
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| self.size_bytes() > limit);
            let too_old = self.config.retention_age.is_some_and(|age| {
                let age = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
                oldest.max_ts < now_us.saturating_sub(age)
            });
            if !(too_big || too_old) {
                break;
            }
            self.segments[0].delete()?;
            let segment = self.segments.remove(0);
            info!(stream = %self.name, base = segment.base, "segment dropped by retention");
            dropped += 1;
        }
        if dropped > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(dropped)
    }

    /// Drops whole sealed segments whose records all lie below `offset` (compaction by an
    /// owner that has kept what it needs elsewhere). The active segment is never dropped.
    /// Returns how many segments went.
    ///
    /// # Errors
    /// An I/O error.
    pub fn drop_segments_before(&mut self, offset: u64) -> Result<usize> {
        let mut dropped = 0;
        while self.segments.len() > 1 && self.segments[0].next_offset <= offset {
            self.segments[0].delete()?;
            let segment = self.segments.remove(0);
            info!(stream = %self.name, base = segment.base, "segment dropped by compaction");
            dropped += 1;
        }
        if dropped > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(dropped)
    }

    /// Deletes the stream's directory.
    pub(crate) fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(EventLogError::io(&dir))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// A reader from `from` on that fetches in batches of about `batch_bytes`.
    pub fn reader(&self, from: u64, batch_bytes: usize) -> Reader {
        Reader {
            next: from,
            batch_bytes,
        }
    }
}

/// A position in a stream that reads on from where it stopped, following the tail: at the end
/// it returns nothing, and the records appended since on the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    next: u64,
    batch_bytes: usize,
}

impl Reader {
    /// The next offset this reader will return.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next batch (empty at the end of the stream).
    ///
    /// # Errors
    /// As for [`Stream::read`].
    pub fn next_batch(&mut self, stream: &mut Stream) -> Result<Vec<Record>> {
        let batch = stream.read(self.next, self.batch_bytes, usize::MAX)?;
        if let Some(last) = batch.last() {
            self.next = last.offset + 1;
        }
        Ok(batch)
    }
}

/// Writes `path` so that it is either the old or the new content after a crash.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(EventLogError::io(&tmp))?;
        std::io::Write::write_all(&mut f, data).map_err(EventLogError::io(&tmp))?;
        f.sync_all().map_err(EventLogError::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(EventLogError::io(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The path of a segment's log file, for tests and tools.
pub fn segment_log_path(stream_dir: &Path, base: u64) -> PathBuf {
    segment::log_path(stream_dir, base)
}

#[cfg(test)]
mod tests {
    use crate::{EventLog, StreamConfig};

    #[test]
    fn drop_segments_before_drops_only_whole_sealed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let config = StreamConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..StreamConfig::default()
        };
        let s = log.create_stream("s", config).unwrap();
        for i in 0..200u32 {
            s.append(Some(i64::from(i)), None, &[i as u8; 100]).unwrap();
        }
        s.sync().unwrap();
        let bases: Vec<u64> = s.segments.iter().map(|seg| seg.base).collect();
        assert!(bases.len() > 4, "{bases:?}");
        let stream_dir = dir.path().join("s");
        assert_eq!(s.drop_segments_before(0).unwrap(), 0);
        assert_eq!(
            s.drop_segments_before(bases[1] - 1).unwrap(),
            0,
            "not wholly below"
        );

        // Mid-segment: the segments before it go, the one holding the offset stays.
        assert_eq!(s.drop_segments_before(bases[3] + 1).unwrap(), 3);
        assert_eq!(s.first_offset(), bases[3]);
        for &base in &bases[..3] {
            for ext in ["log", "index", "timeindex"] {
                assert!(!stream_dir.join(format!("{base:020}.{ext}")).exists());
            }
        }
        assert!(stream_dir.join(format!("{:020}.log", bases[3])).exists());
        assert_eq!(s.read(0, 1 << 20, 1).unwrap()[0].offset, bases[3]);

        // Everything below the end: the active segment stays, and appends go on.
        let next = s.next_offset();
        let dropped = s.drop_segments_before(u64::MAX).unwrap();
        assert_eq!(dropped, bases.len() - 4);
        assert_eq!(s.segments.len(), 1);
        assert_eq!(s.first_offset(), *bases.last().unwrap());
        assert_eq!(s.append(None, None, b"more").unwrap(), next);
        s.sync().unwrap();
        drop(log);

        let mut log = EventLog::open(dir.path()).unwrap();
        let s = log.get("s").unwrap();
        assert_eq!(s.first_offset(), *bases.last().unwrap());
        assert_eq!(s.next_offset(), next + 1);
    }
}
