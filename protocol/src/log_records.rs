//! The body of a read's reply (`LogReply::Records`), the bulk of what a replay moves, written
//! and read without going through serde's view of the reply.
//!
//! [`RecordsBody`] writes it record by record as the records are read, so that a reader's
//! bytes go from the segment into the reply with one copy and no record built in between.
//! The body is the MessagePack a client decodes as `LogReply::Records`, the same as
//! [`crate::body::encode`] would make of it, except that the array's length is written in its
//! 32-bit form (it is known only at the end): valid MessagePack that every decoder reads.
//!
//! [`peek_next_offset`] reads where the next batch starts from the front of such a body, so a
//! reader asks for it before decoding this one. [`decode_reply`] reads any `LogReply`, the records of a read straight into
//! [`StoredRecord`]s: serde reads an internally tagged enum by first buffering the whole map
//! as a tree of values, which made decoding a megabyte of small records the slowest step of
//! a replay.

use crate::log::{LogReply, StoredRecord};
use crate::ProtocolError;

/// Marker of a 32-bit array length.
const ARRAY32: u8 = 0xdd;

/// A [`LogReply::Records`] body being written:
/// [`RecordsBody::push`] each record in offset order, then [`RecordsBody::finish`].
#[derive(Debug)]
pub struct RecordsBody {
    bytes: Vec<u8>,
    /// Where the array's length goes.
    count_at: usize,
    count: u32,
}

/// Where a [`RecordsBody`]'s `next_offset` is (as a `u64`, after its marker): in front of the
/// records, so that a reader can ask for the next batch before it decodes this one
/// ([`peek_next_offset`]).
const NEXT_OFFSET_AT: usize = 1 + 7 + 8 + 12 + 1;

impl RecordsBody {
    /// An empty body. It grows as records are pushed, by doubling: made room for a whole
    /// read at once, a reply of large records was slower to send (a fresh mapping of memory
    /// per reply, and the unused part given back).
    pub fn new() -> Self {
        let mut bytes = Vec::new();
        // The enum is tagged by a `result` field; `next_offset` comes next (written by
        // `finish`), then the records.
        bytes.push(0x83);
        str(&mut bytes, "result");
        str(&mut bytes, "records");
        str(&mut bytes, "next_offset");
        bytes.push(0xcf);
        debug_assert_eq!(bytes.len(), NEXT_OFFSET_AT);
        bytes.extend_from_slice(&[0; 8]);
        str(&mut bytes, "records");
        bytes.push(ARRAY32);
        let count_at = bytes.len();
        bytes.extend_from_slice(&[0; 4]);
        RecordsBody {
            bytes,
            count_at,
            count: 0,
        }
    }

    /// Adds a record, as a [`crate::log::StoredRecord`] would be encoded.
    pub fn push(&mut self, offset: u64, timestamp_us: i64, key: Option<&[u8]>, value: &[u8]) {
        let b = &mut self.bytes;
        b.push(0x84);
        str(b, "offset");
        uint(b, offset);
        str(b, "timestamp_us");
        sint(b, timestamp_us);
        str(b, "key");
        match key {
            Some(key) => bin(b, key),
            None => b.push(0xc0),
        }
        str(b, "value");
        bin(b, value);
        self.count += 1;
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The whole body, telling the reader to go on from `next_offset`.
    pub fn finish(mut self, next_offset: u64) -> Vec<u8> {
        self.bytes[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        self.bytes[NEXT_OFFSET_AT..NEXT_OFFSET_AT + 8].copy_from_slice(&next_offset.to_be_bytes());
        self.bytes
    }
}

impl Default for RecordsBody {
    fn default() -> Self {
        Self::new()
    }
}

/// The offset to read from next, read from the front of a body written by [`RecordsBody`]
/// without decoding its records; `None` for any other body (one serde wrote puts it last).
pub fn peek_next_offset(body: &[u8]) -> Option<u64> {
    let mut reader = Reader { bytes: body, at: 0 };
    if reader.map_len()? != 3
        || reader.str()? != b"result"
        || reader.str()? != b"records"
        || reader.str()? != b"next_offset"
    {
        return None;
    }
    u64::try_from(reader.int()?).ok()
}

/// A short string (every key written here is under 32 bytes: a fixstr).
fn str(b: &mut Vec<u8>, s: &str) {
    debug_assert!(s.len() < 32);
    b.push(0xa0 | s.len() as u8);
    b.extend_from_slice(s.as_bytes());
}

fn uint(b: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        b.push(v as u8);
    } else if let Ok(v) = u8::try_from(v) {
        b.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(v) {
        b.push(0xcd);
        b.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        b.push(0xce);
        b.extend_from_slice(&v.to_be_bytes());
    } else {
        b.push(0xcf);
        b.extend_from_slice(&v.to_be_bytes());
    }
}

fn sint(b: &mut Vec<u8>, v: i64) {
    if let Ok(v) = u64::try_from(v) {
        uint(b, v);
    } else if v >= -32 {
        b.push(v as u8);
    } else if let Ok(v) = i8::try_from(v) {
        b.extend_from_slice(&[0xd0, v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        b.push(0xd1);
        b.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        b.push(0xd2);
        b.extend_from_slice(&v.to_be_bytes());
    } else {
        b.push(0xd3);
        b.extend_from_slice(&v.to_be_bytes());
    }
}

/// Binary data. A record is far under 4 GiB (a segment frames it with a 32-bit length).
fn bin(b: &mut Vec<u8>, data: &[u8]) {
    if let Ok(len) = u8::try_from(data.len()) {
        b.extend_from_slice(&[0xc4, len]);
    } else if let Ok(len) = u16::try_from(data.len()) {
        b.push(0xc5);
        b.extend_from_slice(&len.to_be_bytes());
    } else {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        b.push(0xc6);
        b.extend_from_slice(&len.to_be_bytes());
    }
    b.extend_from_slice(data);
}

/// Decodes a reply of the event log: a read's records directly, any other reply through
/// serde.
///
/// # Errors
/// [`ProtocolError::Decode`] when the bytes are not a `LogReply`.
pub fn decode_reply(bytes: &[u8]) -> Result<LogReply, ProtocolError> {
    match (Reader { bytes, at: 0 }).records() {
        Some(reply) => Ok(reply),
        // Not a read's records as written by a broker (or malformed): serde says which.
        None => crate::body::decode(bytes),
    }
}

/// A MessagePack reader of the few forms a read's reply holds; `None` for anything else.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8).
    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        )
    }

    fn len(&mut self, n: usize) -> Option<usize> {
        usize::try_from(self.be(n)?).ok()
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            m @ 0x80..=0x8f => Some(usize::from(m & 0x0f)),
            0xde => self.len(2),
            0xdf => self.len(4),
            _ => None,
        }
    }

    fn array_len(&mut self) -> Option<usize> {
        match self.byte()? {
            m @ 0x90..=0x9f => Some(usize::from(m & 0x0f)),
            0xdc => self.len(2),
            0xdd => self.len(4),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a [u8]> {
        let n = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.len(1)?,
            0xda => self.len(2)?,
            0xdb => self.len(4)?,
            _ => return None,
        };
        self.take(n)
    }

    /// Binary data, or `None` inside for nil.
    fn bin_or_nil(&mut self) -> Option<Option<&'a [u8]>> {
        let n = match self.byte()? {
            0xc0 => return Some(None),
            0xc4 => self.len(1)?,
            0xc5 => self.len(2)?,
            0xc6 => self.len(4)?,
            _ => return None,
        };
        self.take(n).map(Some)
    }

    /// Any integer, as an i128 that holds both u64 and i64.
    fn int(&mut self) -> Option<i128> {
        let m = self.byte()?;
        Some(match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xcc => i128::from(self.be(1)?),
            0xcd => i128::from(self.be(2)?),
            0xce => i128::from(self.be(4)?),
            0xcf => i128::from(self.be(8)?),
            0xd0 => i128::from(self.be(1)? as u8 as i8),
            0xd1 => i128::from(self.be(2)? as u16 as i16),
            0xd2 => i128::from(self.be(4)? as u32 as i32),
            0xd3 => i128::from(self.be(8)? as i64),
            _ => return None,
        })
    }

    fn records(mut self) -> Option<LogReply> {
        let (mut tag, mut records, mut next_offset) = (None, None, None);
        for _ in 0..self.map_len()? {
            match self.str()? {
                b"result" => tag = Some(self.str()?),
                b"records" => records = Some(self.record_list()?),
                b"next_offset" => next_offset = Some(u64::try_from(self.int()?).ok()?),
                _ => return None,
            }
        }
        if tag? != b"records" || self.at != self.bytes.len() {
            return None;
        }
        Some(LogReply::Records {
            records: records?,
            next_offset: next_offset?,
        })
    }

    fn record_list(&mut self) -> Option<Vec<StoredRecord>> {
        let n = self.array_len()?;
        // A record takes at least a few bytes: a length that cannot fit is not believed.
        let mut records = Vec::with_capacity(n.min(self.bytes.len() - self.at));
        for _ in 0..n {
            records.push(self.record()?);
        }
        Some(records)
    }

    fn record(&mut self) -> Option<StoredRecord> {
        let (mut offset, mut timestamp_us, mut key, mut value) = (None, None, None, None);
        for _ in 0..self.map_len()? {
            match self.str()? {
                b"offset" => offset = Some(u64::try_from(self.int()?).ok()?),
                b"timestamp_us" => timestamp_us = Some(i64::try_from(self.int()?).ok()?),
                b"key" => key = Some(self.bin_or_nil()?.map(<[u8]>::to_vec)),
                b"value" => value = Some(self.bin_or_nil()??.to_vec()),
                _ => return None,
            }
        }
        Some(StoredRecord {
            offset: offset?,
            timestamp_us: timestamp_us?,
            key: key.flatten(),
            value: value?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, timestamp_us: i64, key: Option<Vec<u8>>, len: usize) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_us,
            key,
            value: (0..len).map(|i| i as u8).collect(),
        }
    }

    #[test]
    fn a_body_written_record_by_record_decodes_as_the_reply_serde_would_encode() {
        let records = vec![
            record(0, 0, None, 0),
            record(1, -1, Some(b"k".to_vec()), 1),
            record(127, -33, Some(Vec::new()), 100),
            record(128, -129, None, 255),
            record(255, -40_000, Some(vec![7; 300]), 256),
            record(65_535, i64::from(i32::MIN) - 1, None, 65_535),
            record(65_536, 1_700_000_000_000_000, Some(vec![1; 70_000]), 65_536),
            record(u64::from(u32::MAX) + 1, i64::MAX, None, 3),
            record(u64::MAX, i64::MIN, None, 70_000),
        ];
        for n in [0, 1, records.len()] {
            let mut body = RecordsBody::new();
            for r in &records[..n] {
                body.push(r.offset, r.timestamp_us, r.key.as_deref(), &r.value);
            }
            assert_eq!(body.len(), n);
            let next_offset = 1 << 40;
            let bytes = body.finish(next_offset);
            let expected = LogReply::Records {
                records: records[..n].to_vec(),
                next_offset,
            };
            assert_eq!(crate::body::decode::<LogReply>(&bytes).unwrap(), expected);
            // Only the array's length is written in a wider form than serde's (the next
            // offset, 2^40, takes eight bytes in both; serde writes it last).
            let serde = crate::body::encode(&expected).unwrap();
            assert_eq!(bytes.len() - serde.len(), if n < 16 { 4 } else { 2 });
            assert_eq!(peek_next_offset(&bytes), Some(next_offset));
            assert_eq!(peek_next_offset(&serde), None);
            // Both read back the same without serde.
            let direct = Reader {
                bytes: &bytes,
                at: 0,
            };
            assert_eq!(direct.records(), Some(expected.clone()));
            let direct = Reader {
                bytes: &serde,
                at: 0,
            };
            assert_eq!(direct.records(), Some(expected.clone()));
            assert_eq!(decode_reply(&bytes).unwrap(), expected);
        }
    }

    #[test]
    fn other_replies_and_damaged_bodies_go_to_serde() {
        let other = LogReply::Appended {
            first_offset: 3,
            count: 2,
            synced: true,
        };
        let bytes = crate::body::encode(&other).unwrap();
        assert_eq!(decode_reply(&bytes).unwrap(), other);
        let mut body = RecordsBody::new();
        body.push(1, 2, Some(b"k"), b"value");
        let whole = body.finish(2);
        // Every cut is refused with serde's error, never a panic; bytes after the reply are
        // left to serde, which ignores them.
        for end in 0..whole.len() {
            assert!(decode_reply(&whole[..end]).is_err(), "cut at {end}");
        }
        let mut longer = whole.clone();
        longer.push(0);
        assert_eq!(
            decode_reply(&longer).ok(),
            crate::body::decode::<LogReply>(&longer).ok()
        );
        // A count far beyond the bytes is not believed.
        let mut lying = whole.clone();
        let at = whole.iter().position(|&b| b == ARRAY32).unwrap();
        lying[at + 1..at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_reply(&lying).is_err());
    }
}
