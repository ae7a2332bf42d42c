//! One segment: a `.log` file of records from `base` on, with its sparse index and time
//! index kept in memory and written to `.index` and `.timeindex` when the segment is sealed
//! (the last segment's are rebuilt from its records on open, so they need no file before).
//! Writes are buffered; recovery validates and repairs on open.
//!
//! The `.log` is opened when first needed and closed by [`Segment::close`], so that a
//! segment holds no file descriptor while nobody uses it: a stream needs one for its active
//! segment while it is written, and one for a sealed segment only during a read.
//!
//! A [`Mark`] records where the segment stood (bytes, next offset, index lengths);
//! [`Segment::cut`] takes it back there exactly, the file and the bookkeeping alike, which is
//! how a failed write leaves no partial record behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::codec::{self, Invalid, RawRecord};
use crate::error::{EventLogError, Result};
use crate::faults;

/// Bytes buffered before the log buffer is written out.
const WRITE_BUFFER: usize = 256 << 10;
/// Bytes read from the log at a time when reading records.
const READ_CHUNK: usize = 256 << 10;

pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

fn time_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.timeindex"))
}

/// Removes a file that may not exist.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EventLogError::Io {
            path: path.to_owned(),
            cause: e,
        }),
    }
}

/// Where a segment stood at one moment, at a record boundary: what [`Segment::cut`] needs to
/// take it back there exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The segment's base offset.
    pub(crate) base: u64,
    /// Bytes of `.log`, buffered ones included.
    len: u64,
    /// The offset the next record gets.
    pub(crate) next_offset: u64,
    index_len: usize,
    times_len: usize,
    max_ts: i64,
    since_index: u64,
}

/// What a scan of a segment's bytes found.
struct Scan {
    /// Position after the last valid record (where a torn tail starts).
    end: usize,
    next_offset: u64,
    index: Vec<(u32, u32)>,
    times: Vec<(i64, u32)>,
    max_ts: i64,
    /// Offsets of damaged records that valid records follow.
    corrupt: Vec<u64>,
    /// Whether bytes after `end` are a torn (partial or damaged, unfollowed) tail.
    torn: bool,
}

/// Walks the records of a segment, building its indexes.
fn scan(bytes: &[u8], base: u64, max_record: usize, interval: u64) -> Scan {
    let mut s = Scan {
        end: codec::SEGMENT_HEADER,
        next_offset: base,
        index: Vec::new(),
        times: Vec::new(),
        max_ts: i64::MIN,
        corrupt: Vec::new(),
        torn: false,
    };
    let mut since_index = interval;
    let mut pos = codec::SEGMENT_HEADER;
    while pos < bytes.len() {
        let rel = (s.next_offset - base) as u32;
        match codec::decode_record(&bytes[pos..], max_record) {
            Ok(r) if r.offset == s.next_offset => {
                s.max_ts = s.max_ts.max(r.timestamp);
                if since_index >= interval {
                    s.index.push((rel, pos as u32));
                    s.times.push((s.max_ts, rel));
                    since_index = 0;
                }
                since_index += r.size as u64;
                pos += r.size;
                s.next_offset += 1;
                s.end = pos;
            }
            other => {
                // Damaged in the middle (a valid next record follows where the length field
                // says), or the torn tail of an interrupted write.
                let next = codec::claimed_len(&bytes[pos..], max_record).map(|len| pos + len);
                let followed = next.is_some_and(|n| {
                    n < bytes.len()
                        && matches!(codec::decode_record(&bytes[n..], max_record),
                            Ok(r) if r.offset == s.next_offset + 1)
                });
                match (followed, next) {
                    (true, Some(n)) if !matches!(other, Err(Invalid::Truncated)) => {
                        s.corrupt.push(s.next_offset);
                        if since_index >= interval {
                            s.index.push((rel, pos as u32));
                            s.times.push((s.max_ts, rel));
                            since_index = 0;
                        }
                        since_index += (n - pos) as u64;
                        pos = n;
                        s.next_offset += 1;
                        s.end = pos;
                    }
                    _ => {
                        s.torn = true;
                        break;
                    }
                }
            }
        }
    }
    s
}

/// A read in progress: its limits, what it has gathered so far, and where records go.
pub(crate) struct Batch<'f> {
    /// Records handed to the sink.
    count: usize,
    /// Bytes of values handed to the sink.
    bytes: usize,
    max_bytes: usize,
    max_records: usize,
    sink: &'f mut dyn FnMut(RawRecord<'_>),
}

impl<'f> Batch<'f> {
    pub(crate) fn new(
        max_bytes: usize,
        max_records: usize,
        sink: &'f mut dyn FnMut(RawRecord<'_>),
    ) -> Self {
        Batch {
            count: 0,
            bytes: 0,
            max_bytes,
            max_records: max_records.max(1),
            sink,
        }
    }

    /// Records handed to the sink so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Whether `value_len` more bytes would go over the limits (the first record always fits).
    fn would_overflow(&self, value_len: usize) -> bool {
        self.count > 0
            && (self.bytes + value_len > self.max_bytes || self.count >= self.max_records)
    }

    fn push(&mut self, record: RawRecord<'_>) {
        self.bytes += record.value.len();
        self.count += 1;
        (self.sink)(record);
    }

    fn full(&self) -> bool {
        self.bytes >= self.max_bytes || self.count >= self.max_records
    }
}

pub(crate) struct Segment {
    pub(crate) base: u64,
    dir: PathBuf,
    /// The `.log`, opened when first needed and closed by [`Segment::close`].
    file: Option<File>,
    /// Bytes of the `.log` on disk.
    written: u64,
    /// Bytes appended but not yet written.
    pending: Vec<u8>,
    /// A length the `.log` must be cut to before anything else is written: set when a write
    /// failed part way (the file may hold part of a record after `written`) and the cut
    /// could not be made at once.
    cut_to: Option<u64>,
    pub(crate) next_offset: u64,
    index: Vec<(u32, u32)>,
    times: Vec<(i64, u32)>,
    since_index: u64,
    pub(crate) max_ts: i64,
    corrupt: Vec<u64>,
    /// Whether data was written since the last `sync_data`.
    pub(crate) unsynced: bool,
}

impl Segment {
    /// Creates an empty segment starting at `base`. Files left at `base` by a creation that
    /// failed (a full disk) hold no record, since `base` is past every record kept, and are
    /// replaced; a failure now removes what it made.
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment> {
        let path = log_path(dir, base);
        for p in [&path, &index_path(dir, base), &time_path(dir, base)] {
            remove_if_present(p)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(EventLogError::io(&path))?;
        let mut segment = Segment {
            base,
            dir: dir.to_owned(),
            file: Some(file),
            written: 0,
            pending: codec::segment_header().to_vec(),
            cut_to: None,
            next_offset: base,
            index: Vec::new(),
            times: Vec::new(),
            since_index: u64::MAX,
            max_ts: i64::MIN,
            corrupt: Vec::new(),
            unsynced: true,
        };
        if let Err(e) = segment.flush() {
            drop(segment);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(segment)
    }

    /// Opens a segment. The last one (`next_base` is `None`) is validated record by record
    /// and a torn tail cut; a sealed one trusts its indexes when they are sound and is
    /// rebuilt from its records when they are not.
    pub(crate) fn open(
        dir: &Path,
        stream: &str,
        base: u64,
        next_base: Option<u64>,
        max_record: usize,
        interval: u64,
    ) -> Result<Segment> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&path)
            .map_err(EventLogError::io(&path))?;
        let len = file.metadata().map_err(EventLogError::io(&path))?.len();
        let mut header = [0u8; codec::SEGMENT_HEADER];
        if len < codec::SEGMENT_HEADER as u64
            || file.read_exact_at(&mut header, 0).is_err()
            || header != codec::segment_header()
        {
            if next_base.is_none() && len < codec::SEGMENT_HEADER as u64 {
                // Created but never completed: start it again.
                warn!(stream, base, "empty last segment rewritten");
                drop(file);
                std::fs::remove_file(&path).map_err(EventLogError::io(&path))?;
                return Segment::create(dir, base);
            }
            return Err(EventLogError::BadFile {
                path,
                reason: "not a zhub log segment (bad magic or version)".into(),
            });
        }
        let mut segment = Segment {
            base,
            dir: dir.to_owned(),
            file: Some(file),
            written: len,
            pending: Vec::new(),
            cut_to: None,
            next_offset: base,
            index: Vec::new(),
            times: Vec::new(),
            since_index: 0,
            max_ts: i64::MIN,
            corrupt: Vec::new(),
            unsynced: false,
        };
        // Opened again when first used: a stream at rest holds no descriptor.
        if let (Some(next_base), true) = (next_base, segment.load_indexes(len)) {
            segment.next_offset = next_base;
            segment.file = None;
            return Ok(segment);
        }
        segment.rebuild(stream, next_base.is_none(), max_record, interval)?;
        segment.file = None;
        if let Some(next_base) = next_base {
            if segment.next_offset != next_base {
                warn!(
                    stream,
                    base,
                    found = segment.next_offset,
                    expected = next_base,
                    "sealed segment ends early"
                );
                for missing in segment.next_offset..next_base {
                    segment.corrupt.push(missing);
                }
                segment.next_offset = next_base;
            }
        }
        Ok(segment)
    }

    /// Loads `.index` and `.timeindex`; `false` when either is missing or unsound.
    fn load_indexes(&mut self, log_len: u64) -> bool {
        let (Ok(index), Ok(times)) = (
            std::fs::read(index_path(&self.dir, self.base)),
            std::fs::read(time_path(&self.dir, self.base)),
        ) else {
            return false;
        };
        if index.is_empty()
            || index.len() % codec::INDEX_ENTRY != 0
            || times.len() % codec::TIME_ENTRY != 0
            || index.len() / codec::INDEX_ENTRY > times.len() / codec::TIME_ENTRY
        {
            return false;
        }
        let entries: Vec<(u32, u32)> = index
            .chunks_exact(codec::INDEX_ENTRY)
            .map(codec::decode_index_entry)
            .collect();
        let time_entries: Vec<(i64, u32)> = times
            .chunks_exact(codec::TIME_ENTRY)
            .map(codec::decode_time_entry)
            .collect();
        let sorted = entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
        let inside = entries
            .iter()
            .all(|&(_, pos)| (pos as u64) < log_len && pos as usize >= codec::SEGMENT_HEADER);
        let times_sorted = time_entries
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1);
        if !(sorted && inside && times_sorted) {
            return false;
        }
        self.max_ts = time_entries.last().map_or(i64::MIN, |e| e.0);
        self.index = entries;
        self.times = time_entries;
        true
    }

    /// Scans the whole `.log`, rebuilds both indexes, and for the last segment cuts a torn
    /// tail.
    fn rebuild(
        &mut self,
        stream: &str,
        last: bool,
        max_record: usize,
        interval: u64,
    ) -> Result<()> {
        let path = log_path(&self.dir, self.base);
        let bytes = std::fs::read(&path).map_err(EventLogError::io(&path))?;
        let scan = scan(&bytes, self.base, max_record, interval);
        for &offset in &scan.corrupt {
            warn!(stream, offset, "corrupt record in the middle of a segment");
        }
        if scan.torn && last {
            warn!(
                stream,
                offset = scan.next_offset,
                cut_bytes = bytes.len() - scan.end,
                "torn tail truncated"
            );
            let file = self.file()?;
            file.set_len(scan.end as u64)
                .map_err(EventLogError::io(&path))?;
            faults::sync_data(file).map_err(EventLogError::io(&path))?;
            self.written = scan.end as u64;
        } else if scan.torn {
            self.corrupt.push(scan.next_offset);
        }
        self.next_offset = scan.next_offset;
        self.index = scan.index;
        self.times = scan.times;
        self.max_ts = scan.max_ts;
        self.corrupt.extend(scan.corrupt);
        self.since_index = match self.index.last() {
            Some(&(_, pos)) => self.written - u64::from(pos),
            None => u64::MAX,
        };
        if !last {
            // The last segment's indexes are written when it is sealed.
            self.write_indexes();
        }
        Ok(())
    }

    /// Writes both index files from memory. A failure (a full disk) is not the log's: the
    /// files are removed, and rebuilt from the records when the segment is next opened.
    fn write_indexes(&self) {
        let mut index = Vec::with_capacity(self.index.len() * codec::INDEX_ENTRY);
        for &(rel, pos) in &self.index {
            index.extend_from_slice(&codec::index_entry(rel, pos));
        }
        let mut times = Vec::with_capacity(self.times.len() * codec::TIME_ENTRY);
        for &(ts, rel) in &self.times {
            times.extend_from_slice(&codec::time_entry(ts, rel));
        }
        let index_file = index_path(&self.dir, self.base);
        let time_file = time_path(&self.dir, self.base);
        for (p, data) in [(&index_file, index), (&time_file, times)] {
            if let Err(e) = std::fs::write(p, data) {
                warn!(file = %p.display(), error = %e, "index not written; it is rebuilt on open");
                let _ = std::fs::remove_file(&index_file);
                let _ = std::fs::remove_file(&time_file);
                return;
            }
        }
    }

    /// The open `.log`, opening it when it is closed.
    fn file(&mut self) -> Result<&mut File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => {
                let path = log_path(&self.dir, self.base);
                OpenOptions::new()
                    .append(true)
                    .read(true)
                    .open(&path)
                    .map_err(EventLogError::io(&path))?
            }
        };
        Ok(self.file.insert(file))
    }

    /// Closes the `.log` when nothing waits to be written or cut, and, unless `unsynced_ok`,
    /// nothing written waits for a sync (an fsync on a descriptor opened later might not
    /// report a write-back error that happened before it). Returns whether it is closed.
    pub(crate) fn close(&mut self, unsynced_ok: bool) -> bool {
        if self.pending.is_empty() && self.cut_to.is_none() && (unsynced_ok || !self.unsynced) {
            self.file = None;
        }
        self.file.is_none()
    }

    /// Whether the `.log` is open.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Where the segment stands now.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            base: self.base,
            len: self.size(),
            next_offset: self.next_offset,
            index_len: self.index.len(),
            times_len: self.times.len(),
            max_ts: self.max_ts,
            since_index: self.since_index,
        }
    }

    /// Where the segment stood when it held no record.
    pub(crate) fn start_mark(&self) -> Mark {
        Mark {
            base: self.base,
            len: codec::SEGMENT_HEADER as u64,
            next_offset: self.base,
            index_len: 0,
            times_len: 0,
            max_ts: i64::MIN,
            since_index: u64::MAX,
        }
    }

    /// Takes the segment back to `mark` (taken from it earlier): the records after it are
    /// dropped from the buffer, the file and the indexes. The file is cut at once when it
    /// can be, and otherwise before the next write.
    ///
    /// # Errors
    /// The truncation failed; it is retried before the next write.
    pub(crate) fn cut(&mut self, mark: Mark) -> Result<()> {
        self.next_offset = mark.next_offset;
        self.index.truncate(mark.index_len);
        self.times.truncate(mark.times_len);
        self.max_ts = mark.max_ts;
        self.since_index = mark.since_index;
        if mark.len >= self.written {
            self.pending.truncate((mark.len - self.written) as usize);
        } else {
            self.pending.clear();
            self.written = mark.len;
            self.cut_to = Some(mark.len);
        }
        // The cut itself must reach the disk before what is written after it counts.
        self.unsynced = true;
        self.finish_cut()
    }

    /// Makes a cut still owed to the file.
    fn finish_cut(&mut self) -> Result<()> {
        if let Some(len) = self.cut_to {
            let path = log_path(&self.dir, self.base);
            self.file()?
                .set_len(len)
                .map_err(EventLogError::io(&path))?;
            self.cut_to = None;
        }
        Ok(())
    }

    /// Bytes of the segment, buffered ones included.
    pub(crate) fn size(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Whether the segment holds no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.next_offset == self.base
    }

    /// Appends a record to the buffer; [`Segment::wants_flush`] says when to write it out.
    pub(crate) fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
        interval: u64,
    ) -> u64 {
        let offset = self.next_offset;
        let rel = (offset - self.base) as u32;
        let position = self.size();
        self.max_ts = self.max_ts.max(timestamp);
        if self.since_index >= interval {
            self.index.push((rel, position as u32));
            self.times.push((self.max_ts, rel));
            self.since_index = 0;
        }
        let before = self.pending.len();
        codec::encode_record(&mut self.pending, offset, timestamp, key, value);
        self.since_index += (self.pending.len() - before) as u64;
        self.next_offset += 1;
        self.unsynced = true;
        offset
    }

    /// Whether enough is buffered to write it out.
    pub(crate) fn wants_flush(&self) -> bool {
        self.pending.len() >= WRITE_BUFFER
    }

    /// Writes buffered bytes to the `.log` (no fsync).
    ///
    /// # Errors
    /// The write failed, maybe part way: the file may then hold part of a record after the
    /// last one written, which is cut before anything else is written. The buffer is kept
    /// for the stream to [`Segment::cut`] back to a mark of its choosing.
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.finish_cut()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = log_path(&self.dir, self.base);
        let pending = std::mem::take(&mut self.pending);
        let result = self
            .file()
            .and_then(|file| faults::write_all(file, &pending).map_err(EventLogError::io(&path)));
        self.pending = pending;
        match result {
            Ok(()) => {
                self.written += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                self.cut_to = Some(self.written);
                Err(e)
            }
        }
    }

    /// Makes what is written durable (`sync_data`); call [`Segment::flush`] first. Index
    /// files are not synced: recovery rebuilds them from the log.
    ///
    /// # Errors
    /// The fsync failed: what the disk holds after the last sync is then unknown.
    pub(crate) fn sync_data(&mut self) -> Result<()> {
        if self.unsynced {
            let path = log_path(&self.dir, self.base);
            let file = self.file()?;
            faults::sync_data(file).map_err(EventLogError::io(&path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Flushes, records the final time index entry (so that a sealed segment's newest
    /// timestamp is known without reading it) and writes both index files.
    ///
    /// # Errors
    /// As for [`Segment::flush`]; an index that cannot be written is rebuilt on open instead.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.flush()?;
        if !self.is_empty() {
            let rel = (self.next_offset - 1 - self.base) as u32;
            if self
                .times
                .last()
                .is_none_or(|&(ts, r)| ts < self.max_ts || r < rel)
            {
                self.times.push((self.max_ts, rel));
            }
        }
        self.write_indexes();
        Ok(())
    }

    /// Position and offset of the last indexed record at or before `offset`.
    fn position_for(&self, offset: u64) -> (u64, u64) {
        let rel = offset.saturating_sub(self.base);
        match self.index.partition_point(|&(r, _)| u64::from(r) <= rel) {
            0 => (codec::SEGMENT_HEADER as u64, self.base),
            i => (
                u64::from(self.index[i - 1].1),
                self.base + u64::from(self.index[i - 1].0),
            ),
        }
    }

    /// Appends records from `from` on to `out`, until `max_bytes` of values (at least one
    /// record) or `max_records`. Returns `Ok(true)` when a limit stopped it. Reads what is
    /// written: the stream flushes the buffer first.
    pub(crate) fn read(
        &mut self,
        stream: &str,
        from: u64,
        max_record: usize,
        batch: &mut Batch,
    ) -> Result<bool> {
        if from >= self.next_offset {
            return Ok(false);
        }
        if let Some(&bad) = self.corrupt.iter().find(|&&o| o == from) {
            return Err(corrupt(
                stream,
                bad,
                "record failed its check when the segment was opened",
            ));
        }
        let (mut position, mut expected) = self.position_for(from);
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = position;
        let mut refilled_at = None;
        while position < self.written {
            let at = (position - buf_start) as usize;
            let have = buf.get(at..).unwrap_or_default();
            let need = codec::claimed_len(have, max_record).unwrap_or(codec::RECORD_HEADER);
            if have.len() < need && refilled_at != Some(position) {
                // Read from here on; once per position, so a record cut short at the end of
                // the file is decoded (and reported) rather than read again forever.
                buf_start = position;
                let want = READ_CHUNK.max(need).min((self.written - position) as usize);
                buf.resize(want, 0);
                let path = log_path(&self.dir, self.base);
                self.file()?
                    .read_exact_at(&mut buf, position)
                    .map_err(EventLogError::io(&path))?;
                refilled_at = Some(position);
                continue;
            }
            let record = match codec::decode_record(have, max_record) {
                Ok(r) if r.offset == expected => r,
                bad => {
                    let why = match bad {
                        Ok(_) => "offset out of sequence",
                        Err(Invalid::Damaged(why)) => why,
                        Err(Invalid::Truncated) => "record cut short",
                    };
                    // A damaged record before the one asked for is stepped over when its
                    // length field still leads on; otherwise the read stops at it.
                    if let (true, Some(len)) =
                        (expected < from, codec::claimed_len(have, max_record))
                    {
                        position += len as u64;
                        expected += 1;
                        continue;
                    }
                    return self.stop_at(stream, expected, batch.count(), why);
                }
            };
            position += record.size as u64;
            expected = record.offset + 1;
            if record.offset < from {
                continue;
            }
            if batch.would_overflow(record.value.len()) {
                return Ok(true);
            }
            batch.push(record);
            if batch.full() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A read met a bad record: return what was read before it, or the error when nothing was.
    fn stop_at(&self, stream: &str, offset: u64, read: usize, why: &str) -> Result<bool> {
        if read == 0 {
            return Err(corrupt(stream, offset, why));
        }
        Ok(true)
    }

    /// The first offset whose record has a timestamp at or after `ts`, if this segment has one.
    pub(crate) fn offset_for_time(
        &mut self,
        stream: &str,
        ts: i64,
        max_record: usize,
    ) -> Result<Option<u64>> {
        if self.is_empty() || self.max_ts < ts {
            return Ok(None);
        }
        // The first time entry whose running maximum reaches `ts`; the record sought lies
        // after the entry before it.
        let k = self.times.partition_point(|&(max, _)| max < ts);
        let start = if k == 0 {
            self.base
        } else {
            self.base + u64::from(self.times[k - 1].1)
        };
        let mut from = start;
        loop {
            let (mut found, mut last) = (None, None);
            let mut sink = |r: RawRecord<'_>| {
                if found.is_none() && r.timestamp >= ts {
                    found = Some(r.offset);
                }
                last = Some(r.offset);
            };
            let mut batch = Batch::new(1 << 20, 4096, &mut sink);
            self.read(stream, from, max_record, &mut batch)?;
            match (found, last) {
                (Some(offset), _) => return Ok(Some(offset)),
                (None, None) => return Ok(None),
                (None, Some(last)) => from = last + 1,
            }
        }
    }

    /// Closes and deletes the segment's files.
    pub(crate) fn delete(&mut self) -> Result<()> {
        self.file = None;
        for p in [
            log_path(&self.dir, self.base),
            index_path(&self.dir, self.base),
            time_path(&self.dir, self.base),
        ] {
            remove_if_present(&p)?;
        }
        Ok(())
    }
}

fn corrupt(stream: &str, offset: u64, why: &str) -> EventLogError {
    EventLogError::Corrupt {
        stream: stream.to_owned(),
        offset,
        reason: why.to_owned(),
    }
}
