//! The `zhub.kv` built-in service: requests and replies of the key-value store, as
//! MessagePack bodies of native (`ZHC01`) requests, and the change messages it publishes on
//! the bus for watchers.
//!
//! Every request is one [`KvRequest`]; every successful reply one [`KvReply`]. A missing key
//! and a failed compare-and-set are answers ([`KvReply::NotFound`], [`KvReply::Mismatch`]),
//! not errors. Failures are reply statuses: `400` for a malformed request or a key that
//! breaks [`check_key`](crate::names::check_key), `422` (rejected) with a reason for an
//! oversized value or a value that is not a counter, `500` for a storage failure.
//!
//! Every change (put, delete, expiry) is published on the bus as a [`KvChange`] on the topic
//! [`WATCH_PREFIX`] followed by the key, so that watching a key prefix is subscribing to
//! `WATCH_PREFIX + prefix`.

use serde::{Deserialize, Serialize};

/// The key-value store's service name.
pub const KV_SERVICE: &str = "zhub.kv";
/// Topic prefix of the change messages: the key follows it.
pub const WATCH_PREFIX: &str = "$zhub.kv.";

/// Most keys of one [`KvRequest::GetMany`] and writes of one [`KvRequest::WriteMany`].
pub const MAX_BATCH: usize = 10_000;

/// One write of a [`KvRequest::WriteMany`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvWrite {
    /// Set the key, as [`KvRequest::Put`].
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Time to live in milliseconds; none for no expiry.
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    /// Delete the key, as [`KvRequest::Delete`].
    Delete {
        /// The key.
        key: String,
    },
}

impl KvWrite {
    /// The key written.
    pub fn key(&self) -> &str {
        match self {
            KvWrite::Put { key, .. } | KvWrite::Delete { key } => key,
        }
    }
}

/// A request to the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvRequest {
    /// The key's value.
    Get {
        /// The key.
        key: String,
    },
    /// Set the key's value.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Expire the key this many milliseconds from now.
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    /// Remove the key.
    Delete {
        /// The key.
        key: String,
    },
    /// Set the key only if its revision is `expected` (`None`: only if it is absent).
    Cas {
        /// The key.
        key: String,
        /// The revision the key must have.
        expected: Option<u64>,
        /// The value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// Expire the key this many milliseconds from now.
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    /// Add `delta` to the counter at the key (absent: 0) and return the result.
    Incr {
        /// The key.
        key: String,
        /// The amount.
        delta: i64,
    },
    /// Keys starting with `prefix`, in order, after `after`, at most `limit`.
    List {
        /// The prefix.
        prefix: String,
        /// Start after this key (the last of the previous page).
        #[serde(default)]
        after: Option<String>,
        /// Most entries returned.
        limit: u64,
    },
    /// The key's last changes, newest first.
    History {
        /// The key.
        key: String,
        /// Most changes returned.
        limit: u64,
    },
    /// Every entry under a prefix and the revision they are consistent at: the start of a
    /// local replica.
    Snapshot {
        /// The prefix.
        prefix: String,
    },
    /// Several keys' entries at once (at most [`MAX_BATCH`]); answered with
    /// [`KvReply::Values`].
    GetMany {
        /// The keys, in the order of the reply's slots.
        keys: Vec<String>,
    },
    /// Several writes at once (at most [`MAX_BATCH`]), applied in order and acknowledged
    /// together once durable (one sync for all of them under `always`); answered with
    /// [`KvReply::Revisions`]. A batch with a bad key or a value over the limit is refused
    /// whole, before any write. A failure of the disk in the middle fails the reply, and the
    /// writes before it may then be kept or not, as after a crash.
    WriteMany {
        /// The writes, in order.
        writes: Vec<KvWrite>,
    },
    /// Changes under a prefix from revision `from` on, waiting up to `wait_ms` when there are
    /// none yet: how a replica follows the store.
    Changes {
        /// The prefix.
        prefix: String,
        /// First revision wanted.
        from: u64,
        /// Most changes returned.
        max: u64,
        /// How long to wait for a change.
        #[serde(default)]
        wait_ms: u64,
    },
}

/// A key with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// The revision of its last change.
    pub revision: u64,
    /// When it expires, microseconds since the epoch.
    #[serde(default)]
    pub expires_at_us: Option<i64>,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The key was set.
    Put,
    /// The key was deleted.
    Delete,
    /// The key's time to live ran out.
    Expire,
}

/// One change of the store, as published to watchers and read by replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvChange {
    /// Its revision (the store's change log offset).
    pub revision: u64,
    /// The key.
    pub key: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The new value, for a put.
    #[serde(default, with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    /// When the key expires, for a put with a time to live.
    #[serde(default)]
    pub expires_at_us: Option<i64>,
    /// When the change was made, microseconds since the epoch.
    pub timestamp_us: i64,
}

/// A successful reply of the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KvReply {
    /// The key's entry.
    Value {
        /// The entry.
        entry: KvEntry,
    },
    /// The key is absent.
    NotFound,
    /// The change was made (durably, under the store's policy) at this revision.
    Revision {
        /// Its revision.
        revision: u64,
    },
    /// A compare-and-set found another revision.
    Mismatch {
        /// The key's current revision (`None`: absent).
        current: Option<u64>,
    },
    /// A counter's new value.
    Counter {
        /// The value after the increment.
        value: i64,
        /// The change's revision.
        revision: u64,
    },
    /// A page of entries.
    Entries {
        /// The entries, by key.
        entries: Vec<KvEntry>,
        /// Whether more entries follow the last one.
        more: bool,
    },
    /// A key's changes, newest first.
    History {
        /// The changes.
        changes: Vec<KvChange>,
    },
    /// Entries consistent at a revision.
    Snapshot {
        /// The entries.
        entries: Vec<KvEntry>,
        /// Changes from this revision on are not in `entries`.
        revision: u64,
    },
    /// Changes after a revision.
    Changes {
        /// The changes, oldest first.
        changes: Vec<KvChange>,
        /// The revision to ask from next.
        next: u64,
    },
    /// The entries of a [`KvRequest::GetMany`], one slot per key asked, in order.
    Values {
        /// `None` where the key is absent.
        entries: Vec<Option<KvEntry>>,
    },
    /// The revisions of a [`KvRequest::WriteMany`], one per write, in order.
    Revisions {
        /// `None` for a delete of a key that was absent.
        revisions: Vec<Option<u64>>,
    },
    /// The changes asked for were compacted away: start again from a snapshot.
    Compacted {
        /// The oldest revision still held.
        first: u64,
    },
}

impl KvRequest {
    /// The request's `op`, as it travels.
    pub fn op(&self) -> &'static str {
        match self {
            KvRequest::Get { .. } => "get",
            KvRequest::Put { .. } => "put",
            KvRequest::Delete { .. } => "delete",
            KvRequest::Cas { .. } => "cas",
            KvRequest::Incr { .. } => "incr",
            KvRequest::List { .. } => "list",
            KvRequest::History { .. } => "history",
            KvRequest::Snapshot { .. } => "snapshot",
            KvRequest::Changes { .. } => "changes",
            KvRequest::GetMany { .. } => "get_many",
            KvRequest::WriteMany { .. } => "write_many",
        }
    }
}

/// A batch holds 1 to [`MAX_BATCH`] items.
fn check_batch(len: usize) -> Result<(), crate::ProtocolError> {
    if (1..=MAX_BATCH).contains(&len) {
        Ok(())
    } else {
        Err(crate::ProtocolError::OutOfRange {
            field: "batch size",
            value: len as u64,
            min: 1,
            max: MAX_BATCH as u64,
        })
    }
}

impl crate::names::Named for KvRequest {
    fn check_names(&self) -> Result<(), crate::ProtocolError> {
        use crate::names::{check_key, check_key_prefix};
        match self {
            KvRequest::Get { key }
            | KvRequest::Put { key, .. }
            | KvRequest::Delete { key }
            | KvRequest::Cas { key, .. }
            | KvRequest::Incr { key, .. }
            | KvRequest::History { key, .. } => check_key(key),
            KvRequest::List { prefix, after, .. } => {
                check_key_prefix(prefix)?;
                after.as_deref().map_or(Ok(()), check_key)
            }
            KvRequest::Snapshot { prefix } | KvRequest::Changes { prefix, .. } => {
                check_key_prefix(prefix)
            }
            KvRequest::GetMany { keys } => {
                check_batch(keys.len())?;
                keys.iter().try_for_each(|k| check_key(k))
            }
            KvRequest::WriteMany { writes } => {
                check_batch(writes.len())?;
                writes.iter().try_for_each(|w| check_key(w.key()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;

    #[test]
    fn requests_and_replies_round_trip() {
        let requests = [
            KvRequest::Put {
                key: "a".into(),
                value: vec![1, 2],
                ttl_ms: Some(10),
            },
            KvRequest::Cas {
                key: "a".into(),
                expected: None,
                value: vec![],
                ttl_ms: None,
            },
            KvRequest::Changes {
                prefix: "".into(),
                from: 7,
                max: 100,
                wait_ms: 0,
            },
            KvRequest::Get { key: "a".into() },
            KvRequest::Incr {
                key: "n".into(),
                delta: -1,
            },
            KvRequest::Snapshot { prefix: "".into() },
        ];
        #[derive(serde::Deserialize)]
        struct Tag {
            op: String,
        }
        for r in requests {
            let bytes = body::encode(&r).unwrap();
            assert_eq!(body::decode::<Tag>(&bytes).unwrap().op, r.op());
            assert_eq!(body::decode::<KvRequest>(&bytes).unwrap(), r);
        }
        let reply = KvReply::Mismatch { current: Some(3) };
        assert_eq!(
            body::decode::<KvReply>(&body::encode(&reply).unwrap()).unwrap(),
            reply
        );
    }
}
