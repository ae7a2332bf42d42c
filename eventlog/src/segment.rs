//! One segment: a `.log` file of records from `base` on, with its sparse `.index` and
//! `.timeindex`, kept in memory too. Writes are buffered; reads see buffered data (they flush
//! first); recovery validates and repairs on open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::codec::{self, Invalid, RawRecord};
use crate::error::{EventLogError, Result};

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

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(EventLogError::io(path))
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
    file: File,
    /// Bytes of the `.log` on disk.
    written: u64,
    /// Bytes appended but not yet written.
    pending: Vec<u8>,
    pub(crate) next_offset: u64,
    index: Vec<(u32, u32)>,
    times: Vec<(i64, u32)>,
    index_file: File,
    time_file: File,
    index_pending: Vec<u8>,
    time_pending: Vec<u8>,
    since_index: u64,
    pub(crate) max_ts: i64,
    corrupt: Vec<u64>,
    /// Whether data was written since the last `sync_data`.
    pub(crate) unsynced: bool,
}

impl Segment {
    /// Creates an empty segment starting at `base`.
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment> {
        let path = log_path(dir, base);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(EventLogError::io(&path))?;
        for p in [index_path(dir, base), time_path(dir, base)] {
            let _ = std::fs::remove_file(&p);
        }
        let mut segment = Segment {
            base,
            dir: dir.to_owned(),
            file,
            written: 0,
            pending: codec::segment_header().to_vec(),
            next_offset: base,
            index: Vec::new(),
            times: Vec::new(),
            index_file: open_append(&index_path(dir, base))?,
            time_file: open_append(&time_path(dir, base))?,
            index_pending: Vec::new(),
            time_pending: Vec::new(),
            since_index: u64::MAX,
            max_ts: i64::MIN,
            corrupt: Vec::new(),
            unsynced: true,
        };
        segment.flush()?;
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
            file,
            written: len,
            pending: Vec::new(),
            next_offset: base,
            index: Vec::new(),
            times: Vec::new(),
            index_file: open_append(&index_path(dir, base))?,
            time_file: open_append(&time_path(dir, base))?,
            index_pending: Vec::new(),
            time_pending: Vec::new(),
            since_index: 0,
            max_ts: i64::MIN,
            corrupt: Vec::new(),
            unsynced: false,
        };
        if let (Some(next_base), true) = (next_base, segment.load_indexes(len)) {
            segment.next_offset = next_base;
            return Ok(segment);
        }
        segment.rebuild(stream, next_base.is_none(), max_record, interval)?;
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
            self.file
                .set_len(scan.end as u64)
                .map_err(EventLogError::io(&path))?;
            self.file.sync_data().map_err(EventLogError::io(&path))?;
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
        // Rewrite both index files from memory.
        let mut index = Vec::with_capacity(self.index.len() * codec::INDEX_ENTRY);
        for &(rel, pos) in &self.index {
            index.extend_from_slice(&codec::index_entry(rel, pos));
        }
        let mut times = Vec::with_capacity(self.times.len() * codec::TIME_ENTRY);
        for &(ts, rel) in &self.times {
            times.extend_from_slice(&codec::time_entry(ts, rel));
        }
        for (p, data) in [
            (index_path(&self.dir, self.base), index),
            (time_path(&self.dir, self.base), times),
        ] {
            std::fs::write(&p, data).map_err(EventLogError::io(&p))?;
        }
        self.index_file = open_append(&index_path(&self.dir, self.base))?;
        self.time_file = open_append(&time_path(&self.dir, self.base))?;
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

    /// Appends a record (buffered).
    pub(crate) fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: &[u8],
        interval: u64,
    ) -> Result<u64> {
        let offset = self.next_offset;
        let rel = (offset - self.base) as u32;
        let position = self.size();
        self.max_ts = self.max_ts.max(timestamp);
        if self.since_index >= interval {
            self.index.push((rel, position as u32));
            self.times.push((self.max_ts, rel));
            self.index_pending
                .extend_from_slice(&codec::index_entry(rel, position as u32));
            self.time_pending
                .extend_from_slice(&codec::time_entry(self.max_ts, rel));
            self.since_index = 0;
        }
        let before = self.pending.len();
        codec::encode_record(&mut self.pending, offset, timestamp, key, value);
        self.since_index += (self.pending.len() - before) as u64;
        self.next_offset += 1;
        self.unsynced = true;
        if self.pending.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(offset)
    }

    /// Writes buffered bytes to the files (no fsync).
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            let path = log_path(&self.dir, self.base);
            self.file
                .write_all(&self.pending)
                .map_err(EventLogError::io(&path))?;
            self.written += self.pending.len() as u64;
            self.pending.clear();
        }
        if !self.index_pending.is_empty() {
            let p = index_path(&self.dir, self.base);
            self.index_file
                .write_all(&self.index_pending)
                .map_err(EventLogError::io(&p))?;
            self.index_pending.clear();
            let p = time_path(&self.dir, self.base);
            self.time_file
                .write_all(&self.time_pending)
                .map_err(EventLogError::io(&p))?;
            self.time_pending.clear();
        }
        Ok(())
    }

    /// Flushes and makes the log durable (`sync_data`). Index files are not synced: recovery
    /// rebuilds them from the log.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        if self.unsynced {
            let path = log_path(&self.dir, self.base);
            self.file.sync_data().map_err(EventLogError::io(&path))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Records the final time index entry, so that a sealed segment's newest timestamp is
    /// known without reading it, and flushes.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if !self.is_empty() {
            let rel = (self.next_offset - 1 - self.base) as u32;
            if self
                .times
                .last()
                .is_none_or(|&(ts, r)| ts < self.max_ts || r < rel)
            {
                self.times.push((self.max_ts, rel));
                self.time_pending
                    .extend_from_slice(&codec::time_entry(self.max_ts, rel));
                if self.index_pending.is_empty() {
                    // Keep the two pending buffers written together.
                    let p = time_path(&self.dir, self.base);
                    self.time_file
                        .write_all(&self.time_pending)
                        .map_err(EventLogError::io(&p))?;
                    self.time_pending.clear();
                }
            }
        }
        self.flush()
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
    /// record) or `max_records`. Returns `Ok(true)` when a limit stopped it.
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
        self.flush()?;
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
                self.file
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

    /// Deletes the segment's files.
    pub(crate) fn delete(self) -> Result<()> {
        for p in [
            log_path(&self.dir, self.base),
            index_path(&self.dir, self.base),
            time_path(&self.dir, self.base),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(EventLogError::Io { path: p, source: e }),
            }
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
