//! [`RecordsBody`]: the body of a read's reply (`LogReply::Records`), written record by record
//! as the records are read, so that a reader's bytes go from the segment into the reply with
//! one copy and no record built in between.
//!
//! The body is the MessagePack a client decodes as `LogReply::Records`, the same as
//! [`crate::body::encode`] would make of it, except that the array's length is written in its
//! 32-bit form (it is known only at the end): valid MessagePack that every decoder reads.

/// Marker of a 32-bit array length.
const ARRAY32: u8 = 0xdd;

/// A [`LogReply::Records`](crate::log::LogReply::Records) body being written:
/// [`RecordsBody::push`] each record in offset order, then [`RecordsBody::finish`].
#[derive(Debug)]
pub struct RecordsBody {
    bytes: Vec<u8>,
    /// Where the array's length goes.
    count_at: usize,
    count: u32,
}

impl RecordsBody {
    /// A body with room for about `capacity` bytes of records.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity + 64);
        // The enum is tagged by a `result` field; the records field comes next, then
        // `next_offset` (written by `finish`).
        bytes.push(0x83);
        str(&mut bytes, "result");
        str(&mut bytes, "records");
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
        str(&mut self.bytes, "next_offset");
        uint(&mut self.bytes, next_offset);
        self.bytes
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogReply, StoredRecord};

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
            let mut body = RecordsBody::with_capacity(16);
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
            // Only the array's length is written otherwise than serde writes it.
            let serde = crate::body::encode(&expected).unwrap();
            assert_eq!(bytes.len() - serde.len(), if n < 16 { 4 } else { 2 });
        }
    }
}
