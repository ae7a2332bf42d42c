//! On-disk layouts: segment header, record framing, index entries. Pure functions over bytes.
//!
//! All integers are little-endian.
//!
//! # Segment file (`{base_offset:020}.log`)
//!
//! | offset | size | field                              |
//! |--------|------|------------------------------------|
//! | 0      | 6    | magic `ZHLOG\0`                    |
//! | 6      | 2    | format version, [`VERSION`]        |
//! | 8      | ...  | records, back to back              |
//!
//! # Record
//!
//! | offset | size | field                                                            |
//! |--------|------|------------------------------------------------------------------|
//! | 0      | 4    | `len`: bytes after this field (so a record is `4 + len` bytes)   |
//! | 4      | 4    | CRC-32C of the `len - 4` bytes after this field                  |
//! | 8      | 8    | offset of the record in its stream                               |
//! | 16     | 8    | timestamp, microseconds since the Unix epoch (`i64`)             |
//! | 24     | 4    | key length, or `0xFFFF_FFFF` for no key                          |
//! | 28     | k    | key                                                              |
//! | 28 + k | v    | value (the rest)                                                 |
//!
//! # Offset index (`.index`): sparse, one entry per `index_interval_bytes` of log
//!
//! | offset | size | field                                          |
//! |--------|------|------------------------------------------------|
//! | 0      | 4    | offset relative to the segment's base (`u32`)  |
//! | 4      | 4    | position of that record in the `.log` (`u32`)  |
//!
//! # Time index (`.timeindex`): one entry per offset index entry
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 8    | largest timestamp in the segment up to this record (`i64`)   |
//! | 8      | 4    | offset relative to the segment's base (`u32`)                |

/// Magic bytes opening every segment file.
pub const MAGIC: &[u8; 6] = b"ZHLOG\0";
/// Segment format version.
pub const VERSION: u16 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER: usize = 8;
/// Size of a record's fixed part (before key and value).
pub const RECORD_HEADER: usize = 28;
/// Size of an offset index entry.
pub const INDEX_ENTRY: usize = 8;
/// Size of a time index entry.
pub const TIME_ENTRY: usize = 12;
const NO_KEY: u32 = u32::MAX;

/// The segment header bytes.
pub fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..6].copy_from_slice(MAGIC);
    h[6..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Size of the framed record for a key and value.
pub fn framed_len(key: Option<&[u8]>, value: &[u8]) -> usize {
    RECORD_HEADER + key.map_or(0, <[u8]>::len) + value.len()
}

/// Appends one framed record to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    offset: u64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
) {
    let start = out.len();
    let len = framed_len(key, value) - 4;
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    match key {
        Some(k) => {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
        }
        None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    out.extend_from_slice(value);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record decoded from bytes, borrowing key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Its timestamp in microseconds since the Unix epoch.
    pub timestamp: i64,
    /// Its key, if any.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: &'a [u8],
    /// Its framed size in bytes.
    pub size: usize,
}

/// Why bytes do not hold a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than the record needs: the end of what was written.
    Truncated,
    /// The record's bytes are there but wrong.
    Damaged(&'static str),
}

fn word32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn word64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The framed size a record at the start of `bytes` claims, when its length field is there
/// and plausible (at least a header, at most `max_record`).
pub fn claimed_len(bytes: &[u8], max_record: usize) -> Option<usize> {
    if bytes.len() < 4 {
        return None;
    }
    let len = word32(bytes, 0) as usize + 4;
    (RECORD_HEADER..=max_record).contains(&len).then_some(len)
}

/// Decodes the record at the start of `bytes`, checking its CRC.
///
/// # Errors
/// [`Invalid::Truncated`] when `bytes` ends inside the record, [`Invalid::Damaged`] when its
/// length or CRC is wrong.
pub fn decode_record(bytes: &[u8], max_record: usize) -> Result<RawRecord<'_>, Invalid> {
    if bytes.len() < 4 {
        return Err(Invalid::Truncated);
    }
    let size = word32(bytes, 0) as usize + 4;
    if size < RECORD_HEADER || size > max_record {
        return Err(Invalid::Damaged("impossible length"));
    }
    if bytes.len() < size {
        return Err(Invalid::Truncated);
    }
    let record = &bytes[..size];
    if crc32c::crc32c(&record[8..]) != word32(record, 4) {
        return Err(Invalid::Damaged("CRC mismatch"));
    }
    let key_len = word32(record, 24);
    let (key, value_at) = if key_len == NO_KEY {
        (None, RECORD_HEADER)
    } else {
        let end = RECORD_HEADER + key_len as usize;
        if end > size {
            return Err(Invalid::Damaged("key longer than record"));
        }
        (Some(&record[RECORD_HEADER..end]), end)
    };
    Ok(RawRecord {
        offset: word64(record, 8),
        timestamp: word64(record, 16) as i64,
        key,
        value: &record[value_at..],
        size,
    })
}

/// Encodes an offset index entry.
pub fn index_entry(relative: u32, position: u32) -> [u8; INDEX_ENTRY] {
    let mut e = [0u8; INDEX_ENTRY];
    e[..4].copy_from_slice(&relative.to_le_bytes());
    e[4..].copy_from_slice(&position.to_le_bytes());
    e
}

/// Decodes an offset index entry.
pub fn decode_index_entry(e: &[u8]) -> (u32, u32) {
    (word32(e, 0), word32(e, 4))
}

/// Encodes a time index entry.
pub fn time_entry(timestamp: i64, relative: u32) -> [u8; TIME_ENTRY] {
    let mut e = [0u8; TIME_ENTRY];
    e[..8].copy_from_slice(&timestamp.to_le_bytes());
    e[8..].copy_from_slice(&relative.to_le_bytes());
    e
}

/// Decodes a time index entry.
pub fn decode_time_entry(e: &[u8]) -> (i64, u32) {
    (word64(e, 0) as i64, word32(e, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_damage() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, -5, Some(b"k"), b"value");
        encode_record(&mut buf, 8, 9, None, b"");
        let a = decode_record(&buf, 1 << 20).unwrap();
        assert_eq!(
            (a.offset, a.timestamp, a.key, a.value),
            (7, -5, Some(&b"k"[..]), &b"value"[..])
        );
        let b = decode_record(&buf[a.size..], 1 << 20).unwrap();
        assert_eq!((b.offset, b.key, b.value), (8, None, &b""[..]));
        for cut in 0..a.size {
            assert_eq!(
                decode_record(&buf[..cut], 1 << 20),
                Err(Invalid::Truncated),
                "cut {cut}"
            );
        }
        let mut flipped = buf.clone();
        flipped[30] ^= 1;
        assert_eq!(
            decode_record(&flipped, 1 << 20),
            Err(Invalid::Damaged("CRC mismatch"))
        );
        assert!(matches!(
            decode_record(&[0xff; 40], 1 << 20),
            Err(Invalid::Damaged(_))
        ));
    }
}
