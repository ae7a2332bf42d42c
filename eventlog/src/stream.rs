//! [`Stream`]: a named, append-only sequence of records in a directory of segments.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::info;

use crate::codec;
use crate::codec::RawRecord;
use crate::config::{Fsync, StreamConfig};
use crate::error::{EventLogError, Result};
use crate::segment::{self, Batch, Segment};
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

/// A stream, owned by one thread (the broker's storage thread, or a test).
pub struct Stream {
    name: String,
    dir: PathBuf,
    config: StreamConfig,
    /// Oldest first; the last is the active one. Never empty.
    segments: Vec<Segment>,
    last_sync: Instant,
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
                source: e,
            },
        })?;
        write_atomically(&dir.join(CONFIG_FILE), config.to_text().as_bytes())?;
        let segment = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(Stream {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            segments: vec![segment],
            last_sync: Instant::now(),
        })
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
        Ok(Stream {
            name: name.to_owned(),
            dir: dir.to_owned(),
            config,
            segments,
            last_sync: Instant::now(),
        })
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

    /// Appends a record, buffered; returns its offset. `timestamp` defaults to now. Under
    /// [`Fsync::Always`] the caller must [`Stream::sync`] before acknowledging it.
    ///
    /// # Errors
    /// [`EventLogError::RecordTooLarge`], or an I/O error.
    pub fn append(
        &mut self,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<u64> {
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
        self.active_mut().append(timestamp, key, value, interval)
    }

    /// Seals the active segment and starts a new one.
    fn roll(&mut self) -> Result<()> {
        let fsync = self.config.fsync;
        let active = self.active_mut();
        active.seal()?;
        if fsync != Fsync::Never {
            active.sync()?;
        }
        let base = active.next_offset;
        let segment = Segment::create(&self.dir, base)?;
        sync_dir(&self.dir)?;
        info!(stream = %self.name, base, "segment rolled");
        self.segments.push(segment);
        Ok(())
    }

    /// Writes buffered records to the files without syncing them.
    ///
    /// # Errors
    /// An I/O error.
    pub fn flush(&mut self) -> Result<()> {
        self.active_mut().flush()
    }

    /// Makes every appended record durable (`sync_data`).
    ///
    /// # Errors
    /// An I/O error.
    pub fn sync(&mut self) -> Result<()> {
        self.active_mut().sync()?;
        self.last_sync = Instant::now();
        Ok(())
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
        let mut batch = Batch::new(max_bytes, max_records, &mut visit);
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
        let max_record = self.config.max_record_bytes;
        for segment in &mut self.segments {
            if let Some(offset) = segment.offset_for_time(&self.name, timestamp, max_record)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
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
            let segment = self.segments.remove(0);
            info!(stream = %self.name, base = segment.base, "segment dropped by retention");
            segment.delete()?;
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
            let segment = self.segments.remove(0);
            info!(stream = %self.name, base = segment.base, "segment dropped by compaction");
            segment.delete()?;
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
