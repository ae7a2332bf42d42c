//! On-disk layouts: change records, counters and snapshots, with their encoders and
//! decoders. Pure functions over bytes.
//!
//! All integers are little-endian unless said otherwise.
//!
//! # Change record
//!
//! Each change is one record of the `changes` stream of the change log; the eventlog frames
//! it (length, CRC-32C, offset, timestamp). The record's offset is the change's revision,
//! its timestamp is the `now_us` of the operation, its key is the KV key (UTF-8), and its
//! value is:
//!
//! | offset | size | field                                                                |
//! |--------|------|----------------------------------------------------------------------|
//! | 0      | 1    | format version, [`CHANGE_VERSION`]                                   |
//! | 1      | 1    | operation: 1 put, 2 delete, 3 expire                                 |
//! | 2      | 1    | flags: bit 0 `prev` present, bit 1 `expires_at_us` present; others 0 |
//! | 3      | 8    | `prev`: the key's previous revision (`u64`), when bit 0 is set       |
//! | ...    | 8    | `expires_at_us`: absolute expiry, µs since the epoch (`i64`), when bit 1 is set (put only) |
//! | ...    | rest | the value (put only; empty for delete and expire)                    |
//!
//! `prev` links the changes of one key backwards through the log, so history needs no memory.
//!
//! # Counter value
//!
//! [`crate::KvStore::incr`] stores its counter as a MessagePack integer, in the smallest
//! encoding (as `rmp-serde` writes an `i64`), so a client that decodes the value as `i64`
//! reads it. [`decode_counter`] accepts every MessagePack integer encoding that fits `i64`.
//!
//! # Snapshot file (`snapshots/{offset:020}.snap`)
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 8    | magic `ZHKVSNAP`                                             |
//! | 8      | 2    | format version, [`SNAPSHOT_VERSION`]                         |
//! | 10     | 2    | reserved, zero                                               |
//! | 12     | 8    | `offset`: the state includes every change below this offset  |
//! | 20     | 8    | number of live entries                                       |
//! | 28     | 8    | number of tombstones                                         |
//! | 36     | ...  | live entries in key order, then tombstones in key order      |
//! | end-4  | 4    | CRC-32C of every byte before it                              |
//!
//! Live entry:
//!
//! | offset | size | field                                               |
//! |--------|------|-----------------------------------------------------|
//! | 0      | 1    | flags: bit 0 `expires_at_us` present; others 0      |
//! | 1      | 8    | revision (`u64`)                                    |
//! | 9      | 8    | `expires_at_us` (`i64`), when bit 0 is set          |
//! | ...    | 4    | key length `k` (`u32`)                              |
//! | ...    | k    | key, UTF-8                                          |
//! | ...    | 4    | value length `v` (`u32`)                            |
//! | ...    | v    | value                                               |
//!
//! Tombstone (the last change of a deleted or expired key, kept so history reaches it):
//!
//! | offset | size | field                        |
//! |--------|------|------------------------------|
//! | 0      | 8    | revision of the delete (`u64`) |
//! | 8      | 4    | key length `k` (`u32`)       |
//! | 12     | k    | key, UTF-8                   |

use crate::ChangeKind;

/// Change record format version.
pub const CHANGE_VERSION: u8 = 1;
/// Largest fixed part of a change record (before the value).
pub const CHANGE_HEADER_MAX: usize = 19;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_EXPIRE: u8 = 3;
const HAS_PREV: u8 = 1;
const HAS_EXPIRY: u8 = 2;

/// Magic bytes opening every snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"ZHKVSNAP";
/// Snapshot format version.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Size of the snapshot header.
pub const SNAPSHOT_HEADER: usize = 36;
/// Size of the snapshot trailer (the CRC).
pub const SNAPSHOT_TRAILER: usize = 4;
/// Flag of a live snapshot entry with an expiry.
pub const ENTRY_HAS_EXPIRY: u8 = 1;

/// A change record's value, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRecord<'a> {
    /// What the change did.
    pub kind: ChangeKind,
    /// The key's previous revision, if the log still knew one when it was written.
    pub prev: Option<u64>,
    /// Absolute expiry (put only).
    pub expires_at_us: Option<i64>,
    /// The value (put only).
    pub value: &'a [u8],
}

/// Appends the encoding of `change` to `out`.
pub fn encode_change(out: &mut Vec<u8>, change: &ChangeRecord<'_>) {
    let op = match change.kind {
        ChangeKind::Put => OP_PUT,
        ChangeKind::Delete => OP_DELETE,
        ChangeKind::Expire => OP_EXPIRE,
    };
    let mut flags = 0;
    if change.prev.is_some() {
        flags |= HAS_PREV;
    }
    if change.expires_at_us.is_some() {
        flags |= HAS_EXPIRY;
    }
    out.reserve(CHANGE_HEADER_MAX + change.value.len());
    out.extend_from_slice(&[CHANGE_VERSION, op, flags]);
    if let Some(prev) = change.prev {
        out.extend_from_slice(&prev.to_le_bytes());
    }
    if let Some(at) = change.expires_at_us {
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.extend_from_slice(change.value);
}

/// Decodes a change record's value.
///
/// # Errors
/// What is wrong with it.
pub fn decode_change(bytes: &[u8]) -> Result<ChangeRecord<'_>, &'static str> {
    let [version, op, flags, rest @ ..] = bytes else {
        return Err("shorter than a change header");
    };
    if *version != CHANGE_VERSION {
        return Err("unknown change format version");
    }
    let kind = match *op {
        OP_PUT => ChangeKind::Put,
        OP_DELETE => ChangeKind::Delete,
        OP_EXPIRE => ChangeKind::Expire,
        _ => return Err("unknown operation"),
    };
    if flags & !(HAS_PREV | HAS_EXPIRY) != 0 {
        return Err("unknown flags");
    }
    let mut rest = rest;
    let take8 = |rest: &mut &[u8]| -> Result<[u8; 8], &'static str> {
        let (head, tail) = rest.split_first_chunk::<8>().ok_or("cut short")?;
        *rest = tail;
        Ok(*head)
    };
    let prev = if flags & HAS_PREV != 0 {
        Some(u64::from_le_bytes(take8(&mut rest)?))
    } else {
        None
    };
    let expires_at_us = if flags & HAS_EXPIRY != 0 {
        Some(i64::from_le_bytes(take8(&mut rest)?))
    } else {
        None
    };
    if kind != ChangeKind::Put && (expires_at_us.is_some() || !rest.is_empty()) {
        return Err("a delete or expire carries a value or an expiry");
    }
    Ok(ChangeRecord {
        kind,
        prev,
        expires_at_us,
        value: rest,
    })
}

/// The MessagePack encoding of `n`, in its smallest form.
pub fn encode_counter(n: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    if (0..128).contains(&n) {
        out.push(n as u8);
    } else if (-32..0).contains(&n) {
        out.push(n as i8 as u8);
    } else if n >= 0 {
        let u = n as u64;
        if u <= u64::from(u8::MAX) {
            out.push(0xcc);
            out.push(u as u8);
        } else if u <= u64::from(u16::MAX) {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= u64::from(u32::MAX) {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if n >= i64::from(i8::MIN) {
        out.push(0xd0);
        out.push(n as i8 as u8);
    } else if n >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
    out
}

/// Decodes a value holding exactly one MessagePack integer that fits `i64` (any of its
/// encodings); `None` for anything else.
pub fn decode_counter(bytes: &[u8]) -> Option<i64> {
    let (&marker, rest) = bytes.split_first()?;
    let be = |n: usize| -> Option<u64> {
        if rest.len() != n {
            return None;
        }
        Some(rest.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    match marker {
        0x00..=0x7f if rest.is_empty() => Some(i64::from(marker)),
        0xe0..=0xff if rest.is_empty() => Some(i64::from(marker as i8)),
        0xcc => be(1).map(|u| u as i64),
        0xcd => be(2).map(|u| u as i64),
        0xce => be(4).map(|u| u as i64),
        0xcf => be(8).and_then(|u| i64::try_from(u).ok()),
        0xd0 => be(1).map(|u| i64::from(u as u8 as i8)),
        0xd1 => be(2).map(|u| i64::from(u as u16 as i16)),
        0xd2 => be(4).map(|u| i64::from(u as u32 as i32)),
        0xd3 => be(8).map(|u| u as i64),
        _ => None,
    }
}

/// The snapshot header for a state as of `offset`.
pub fn snapshot_header(offset: u64, live: u64, tombstones: u64) -> [u8; SNAPSHOT_HEADER] {
    let mut h = [0u8; SNAPSHOT_HEADER];
    h[..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..10].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&offset.to_le_bytes());
    h[20..28].copy_from_slice(&live.to_le_bytes());
    h[28..36].copy_from_slice(&tombstones.to_le_bytes());
    h
}

/// A decoded snapshot header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The state includes every change below this offset.
    pub offset: u64,
    /// Live entries that follow.
    pub live: u64,
    /// Tombstones that follow them.
    pub tombstones: u64,
}

/// Decodes a snapshot header.
///
/// # Errors
/// What is wrong with it.
pub fn decode_snapshot_header(h: &[u8; SNAPSHOT_HEADER]) -> Result<SnapshotHeader, &'static str> {
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if &h[..8] != SNAPSHOT_MAGIC {
        return Err("bad magic: not a zhub snapshot");
    }
    if h[8..10] != SNAPSHOT_VERSION.to_le_bytes() {
        return Err("unknown snapshot format version");
    }
    if h[10..12] != [0, 0] {
        return Err("reserved bytes are not zero");
    }
    Ok(SnapshotHeader {
        offset: u64_at(12),
        live: u64_at(20),
        tombstones: u64_at(28),
    })
}

/// Appends a live snapshot entry to `out`.
pub fn encode_snapshot_entry(
    out: &mut Vec<u8>,
    key: &str,
    value: &[u8],
    revision: u64,
    expires_at_us: Option<i64>,
) {
    out.push(if expires_at_us.is_some() {
        ENTRY_HAS_EXPIRY
    } else {
        0
    });
    out.extend_from_slice(&revision.to_le_bytes());
    if let Some(at) = expires_at_us {
        out.extend_from_slice(&at.to_le_bytes());
    }
    // Keys and values fit a log record, whose length is a u32.
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Appends a snapshot tombstone to `out`.
pub fn encode_snapshot_tombstone(out: &mut Vec<u8>, key: &str, revision: u64) {
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_round_trips_every_shape() {
        let cases = [
            ChangeRecord {
                kind: ChangeKind::Put,
                prev: None,
                expires_at_us: None,
                value: b"",
            },
            ChangeRecord {
                kind: ChangeKind::Put,
                prev: Some(7),
                expires_at_us: Some(-5),
                value: b"hello",
            },
            ChangeRecord {
                kind: ChangeKind::Put,
                prev: None,
                expires_at_us: Some(i64::MAX),
                value: &[0, 1, 2],
            },
            ChangeRecord {
                kind: ChangeKind::Delete,
                prev: Some(u64::MAX),
                expires_at_us: None,
                value: b"",
            },
            ChangeRecord {
                kind: ChangeKind::Expire,
                prev: Some(0),
                expires_at_us: None,
                value: b"",
            },
        ];
        for c in cases {
            let mut buf = Vec::new();
            encode_change(&mut buf, &c);
            assert!(buf.len() <= CHANGE_HEADER_MAX + c.value.len());
            assert_eq!(decode_change(&buf), Ok(c));
        }
    }

    #[test]
    fn malformed_changes_are_rejected() {
        assert!(decode_change(b"").is_err());
        assert!(decode_change(&[1, 1]).is_err());
        assert!(decode_change(&[2, 1, 0]).is_err(), "version");
        assert!(decode_change(&[1, 9, 0]).is_err(), "operation");
        assert!(decode_change(&[1, 1, 4]).is_err(), "flags");
        assert!(decode_change(&[1, 1, 1, 0, 0]).is_err(), "prev cut short");
        assert!(
            decode_change(&[1, 2, 0, b'x']).is_err(),
            "delete with a value"
        );
        assert!(decode_change(&[1, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Every prefix of a valid record either decodes as a shorter valid record or fails;
        // none panics.
        let mut buf = Vec::new();
        encode_change(
            &mut buf,
            &ChangeRecord {
                kind: ChangeKind::Put,
                prev: Some(1),
                expires_at_us: Some(2),
                value: b"v",
            },
        );
        for n in 0..buf.len() {
            let _ = decode_change(&buf[..n]);
        }
    }

    #[test]
    fn counters_match_rmp_serde_both_ways() {
        let mut values = vec![
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i32::MIN as i64,
            i32::MIN as i64 - 1,
            i64::MIN,
        ];
        values.extend((-300..300).map(|v| v * 997));
        for v in values {
            let ours = encode_counter(v);
            assert_eq!(ours, rmp_serde::to_vec(&v).unwrap(), "encoding of {v}");
            assert_eq!(rmp_serde::from_slice::<i64>(&ours).unwrap(), v);
            assert_eq!(decode_counter(&ours), Some(v));
        }
        // Other integer encodings that fit i64 are read too.
        assert_eq!(decode_counter(&rmp_serde::to_vec(&5u64).unwrap()), Some(5));
        assert_eq!(decode_counter(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 3]), Some(3));
        assert_eq!(decode_counter(&[0xcc, 200]), Some(200));
    }

    #[test]
    fn non_counters_are_rejected() {
        let bad: &[&[u8]] = &[
            b"",
            b"12",
            &[0x05, 0x00],                                           // trailing byte
            &[0xcd, 0x01],                                           // cut short
            &[0xc0],                                                 // nil
            &[0xc3],                                                 // true
            &[0xcb, 0, 0, 0, 0, 0, 0, 0, 0],                         // float 64
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // u64::MAX
            &[0xa1, b'1'],                                           // string "1"
        ];
        for b in bad {
            assert_eq!(decode_counter(b), None, "{b:?}");
        }
    }

    #[test]
    fn snapshot_header_round_trips_and_rejects_damage() {
        let h = snapshot_header(42, 3, 1);
        assert_eq!(
            decode_snapshot_header(&h),
            Ok(SnapshotHeader {
                offset: 42,
                live: 3,
                tombstones: 1
            })
        );
        for at in [0, 7, 8, 10] {
            let mut bad = h;
            bad[at] ^= 0x40;
            assert!(decode_snapshot_header(&bad).is_err(), "byte {at}");
        }
    }
}
