//! Snapshot files: writing one atomically, listing them, and loading one with every check
//! (the layout is in [`crate::codec`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use crate::codec::{self, ENTRY_HAS_EXPIRY, SNAPSHOT_HEADER};
use crate::error::{KvError, Result};
use crate::state::{Item, State, NO_EXPIRY};

/// Snapshots kept: the newest, and the one before it so that a damaged newest one still
/// leaves a snapshot the log continues (compaction keeps the log from the older one on).
pub(crate) const KEEP: usize = 2;

const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
/// Suffix given to a snapshot found unusable on open: kept for inspection, never read again.
pub(crate) const SET_ASIDE_SUFFIX: &str = ".snap.damaged";
const IO_BUFFER: usize = 1 << 20;

/// The path of the snapshot as of `offset`.
pub(crate) fn path(dir: &Path, offset: u64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

/// fsyncs a directory, so that files created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(KvError::io(dir))
}

/// Offsets of the snapshots in `dir`, oldest first. Removes the temporary files of
/// interrupted writes; ignores (with a warning) files it does not know.
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(KvError::io(dir))? {
        let entry = entry.map_err(KvError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(file = ?entry.file_name(), "unexpected file in snapshot directory ignored");
            continue;
        };
        if name.ends_with(TMP_SUFFIX) {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(KvError::io(&p))?;
            tracing::info!(file = name, "unfinished snapshot removed");
            continue;
        }
        if name.ends_with(SET_ASIDE_SUFFIX) {
            continue;
        }
        match name
            .strip_suffix(SUFFIX)
            .map(|s| (s.len(), s.parse::<u64>()))
        {
            Some((20, Ok(offset))) => offsets.push(offset),
            _ => tracing::warn!(file = name, "unexpected file in snapshot directory ignored"),
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the state as of `offset` to `dir` so that after a crash the file is either whole
/// or absent: a temporary file, `sync_all`, rename, fsync of the directory.
pub(crate) fn write(dir: &Path, offset: u64, state: &State) -> Result<PathBuf> {
    let target = path(dir, offset);
    let tmp = dir.join(format!("{offset:020}{TMP_SUFFIX}"));
    let result = write_file(&tmp, offset, state).and_then(|()| {
        std::fs::rename(&tmp, &target).map_err(KvError::io(&target))?;
        sync_dir(dir)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

fn write_file(tmp: &Path, offset: u64, state: &State) -> Result<()> {
    let file = File::create(tmp).map_err(KvError::io(tmp))?;
    let mut out = BufWriter::with_capacity(IO_BUFFER, file);
    let mut crc = 0u32;
    let mut put = |out: &mut BufWriter<File>, bytes: &[u8]| -> Result<()> {
        crc = crc32c::crc32c_append(crc, bytes);
        out.write_all(bytes).map_err(KvError::io(tmp))
    };
    let header = codec::snapshot_header(
        offset,
        state.map.len() as u64,
        state.tombstones.len() as u64,
    );
    put(&mut out, &header)?;
    let mut scratch = Vec::new();
    for item in &state.map {
        scratch.clear();
        codec::encode_snapshot_entry(
            &mut scratch,
            item.key(),
            item.value(),
            item.revision,
            item.expiry(),
        );
        put(&mut out, &scratch)?;
    }
    for (key, &revision) in &state.tombstones {
        scratch.clear();
        codec::encode_snapshot_tombstone(&mut scratch, key, revision);
        put(&mut out, &scratch)?;
    }
    out.write_all(&crc.to_le_bytes())
        .map_err(KvError::io(tmp))?;
    let file = out
        .into_inner()
        .map_err(|e| KvError::io(tmp)(e.into_error()))?;
    file.sync_all().map_err(KvError::io(tmp))
}

/// Reads bytes while keeping the CRC-32C of everything read.
struct CrcReader<'a> {
    inner: BufReader<File>,
    crc: u32,
    path: &'a Path,
}

impl CrcReader<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner
            .read_exact(buf)
            .map_err(|e| damaged_or_io(self.path, e))?;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64> {
        self.array::<8>().map(u64::from_le_bytes)
    }

    /// A length-prefixed field of at most `max` bytes.
    fn field(&mut self, max: usize, what: &str) -> Result<Vec<u8>> {
        let len = self.len(max, what)?;
        let mut v = vec![0u8; len];
        self.fill(&mut v)?;
        Ok(v)
    }

    fn len(&mut self, max: usize, what: &str) -> Result<usize> {
        let len = u32::from_le_bytes(self.array::<4>()?) as usize;
        if len > max {
            return Err(damaged(
                self.path,
                format!("{what} of {len} bytes is too long"),
            ));
        }
        Ok(len)
    }

    /// A live entry's key and value, read straight into the item's block.
    fn item(&mut self, max: usize, revision: u64, expires_at: i64) -> Result<Item> {
        let key_len = self.len(max, "key")?;
        let mut key = vec![0u8; key_len];
        self.fill(&mut key)?;
        let value_len = self.len(max, "value")?;
        let mut block = Vec::with_capacity(4 + key_len + value_len);
        block.extend_from_slice(&(key_len as u32).to_le_bytes());
        block.extend_from_slice(&key);
        block.resize(4 + key_len + value_len, 0);
        self.fill(&mut block[4 + key_len..])?;
        Item::from_block(block.into_boxed_slice(), revision, expires_at)
            .ok_or_else(|| damaged(self.path, "key is not UTF-8"))
    }

    fn key(&mut self, max: usize) -> Result<Box<str>> {
        let bytes = self.field(max, "key")?;
        String::from_utf8(bytes)
            .map(String::into_boxed_str)
            .map_err(|_| damaged(self.path, "key is not UTF-8"))
    }
}

fn damaged(path: &Path, reason: impl Into<String>) -> KvError {
    KvError::BadSnapshot {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn damaged_or_io(path: &Path, e: std::io::Error) -> KvError {
    if e.kind() == ErrorKind::UnexpectedEof {
        damaged(path, "cut short")
    } else {
        KvError::io(path)(e)
    }
}

/// Loads the snapshot as of `offset` from `dir`. Keys and values longer than `max_field`
/// (the log's largest record, which every key and value fits) mark the file as damaged, so
/// a damaged length never makes it allocate without bound.
///
/// # Errors
/// [`KvError::BadSnapshot`] when the file is not a sound snapshot as of `offset`;
/// [`KvError::Io`] when it cannot be read.
pub(crate) fn read(dir: &Path, offset: u64, max_field: usize) -> Result<State> {
    let path = path(dir, offset);
    let file = File::open(&path).map_err(KvError::io(&path))?;
    let mut r = CrcReader {
        inner: BufReader::with_capacity(IO_BUFFER, file),
        crc: 0,
        path: &path,
    };
    let header = r.array::<SNAPSHOT_HEADER>()?;
    let header = codec::decode_snapshot_header(&header).map_err(|why| damaged(&path, why))?;
    if header.offset != offset {
        return Err(damaged(
            &path,
            format!("holds offset {} but is named {offset}", header.offset),
        ));
    }
    // Not preallocated from the counts: a damaged count must not allocate.
    let mut live: Vec<Item> = Vec::new();
    let mut expiry = Vec::new();
    for _ in 0..header.live {
        let [flags] = r.array::<1>()?;
        if flags & !ENTRY_HAS_EXPIRY != 0 {
            return Err(damaged(&path, "unknown entry flags"));
        }
        let revision = r.u64()?;
        let expires_at = if flags & ENTRY_HAS_EXPIRY != 0 {
            r.array::<8>().map(i64::from_le_bytes)?
        } else {
            NO_EXPIRY
        };
        let item = r.item(max_field, revision, expires_at)?;
        if revision >= offset {
            return Err(damaged(&path, "entry newer than the snapshot"));
        }
        if live.last().is_some_and(|prev| *prev >= item) {
            return Err(damaged(&path, "entries out of order"));
        }
        if expires_at != NO_EXPIRY {
            expiry.push((expires_at, Box::from(item.key())));
        }
        live.push(item);
    }
    let mut tombstones: Vec<(Box<str>, u64)> = Vec::new();
    for _ in 0..header.tombstones {
        let revision = r.u64()?;
        let key = r.key(max_field)?;
        if revision >= offset {
            return Err(damaged(&path, "tombstone newer than the snapshot"));
        }
        if tombstones.last().is_some_and(|(prev, _)| *prev >= key) {
            return Err(damaged(&path, "tombstones out of order"));
        }
        tombstones.push((key, revision));
    }
    let computed = r.crc;
    let stored = u32::from_le_bytes(r.array::<4>()?);
    if stored != computed {
        return Err(damaged(&path, "CRC mismatch"));
    }
    let mut rest = [0u8; 1];
    match r.inner.read(&mut rest) {
        Ok(0) => {}
        Ok(_) => return Err(damaged(&path, "bytes after the trailer")),
        Err(e) => return Err(KvError::io(&path)(e)),
    }
    // Built from sorted input, the trees are packed full (about half the nodes of a tree
    // grown one insert at a time).
    let state = State {
        map: live.into_iter().collect::<BTreeSet<_>>(),
        expiry: expiry.into_iter().collect(),
        tombstones: tombstones.into_iter().collect(),
    };
    if state.tombstones.keys().any(|k| state.get(k).is_some()) {
        return Err(damaged(&path, "a key is both live and deleted"));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::default();
        s.put("a", b"1", 0, None);
        s.put("b/x", b"", 3, Some(77));
        s.put("c", &[9u8; 5000], 4, Some(-1));
        s.put("gone", b"x", 1, None);
        s.remove("gone", 5);
        s
    }

    fn same(a: &State, b: &State) {
        let items = |s: &State| {
            s.map
                .iter()
                .map(|i| (i.key().to_owned(), i.to_entry()))
                .collect::<Vec<_>>()
        };
        assert_eq!(items(a), items(b));
        assert_eq!(a.expiry, b.expiry);
        assert_eq!(a.tombstones, b.tombstones);
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        write(dir.path(), 6, &s).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![6]);
        same(&read(dir.path(), 6, 1 << 20).unwrap(), &s);
        let empty = State::default();
        write(dir.path(), 0, &empty).unwrap();
        same(&read(dir.path(), 0, 1 << 20).unwrap(), &empty);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 6, &sample()).unwrap();
        let good = std::fs::read(&p).unwrap();
        // Small values so that the whole file is tried quickly.
        let step = (good.len() / 400).max(1);
        for at in (0..good.len()).step_by(step) {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            std::fs::write(&p, &bad).unwrap();
            match read(dir.path(), 6, 1 << 20) {
                Err(KvError::BadSnapshot { .. }) => {}
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        for len in (0..good.len()).step_by(step) {
            std::fs::write(&p, &good[..len]).unwrap();
            assert!(
                matches!(
                    read(dir.path(), 6, 1 << 20),
                    Err(KvError::BadSnapshot { .. })
                ),
                "cut at {len}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&p, &longer).unwrap();
        assert!(matches!(
            read(dir.path(), 6, 1 << 20),
            Err(KvError::BadSnapshot { .. })
        ));
    }

    #[test]
    fn a_snapshot_under_another_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 6, &sample()).unwrap();
        std::fs::rename(&p, path(dir.path(), 9)).unwrap();
        assert!(matches!(
            read(dir.path(), 9, 1 << 20),
            Err(KvError::BadSnapshot { .. })
        ));
    }

    #[test]
    fn listing_skips_strangers_and_removes_unfinished_writes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, &State::default()).unwrap();
        write(dir.path(), 2, &State::default()).unwrap();
        std::fs::write(dir.path().join("00000000000000000011.snap.tmp"), b"x").unwrap();
        std::fs::write(dir.path().join("00000000000000000001.snap.damaged"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join("12.snap"), b"x").unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![2, 10]);
        assert!(!dir.path().join("00000000000000000011.snap.tmp").exists());
    }
}
