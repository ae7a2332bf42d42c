//! Batched key-value operations: many keys read, or many writes made, in one request and
//! one round trip, acknowledged together after one sync.

use std::time::Duration;

use zhub_protocol::kv::{KvReply, KvRequest};
pub use zhub_protocol::kv::{KvWrite, MAX_BATCH};

use crate::error::RequestError;
use crate::kv::{protocol, ttl_ms};
use crate::{Kv, KvEntry};

impl Kv<'_> {
    /// The entries of `keys`, in their order, `None` where a key is absent: one request for
    /// all of them (1 to [`MAX_BATCH`] keys).
    ///
    /// # Errors
    /// [`crate::RequestErrorKind::BadRequest`] for an invalid key or a batch of 0 or more
    /// than [`MAX_BATCH`] keys.
    pub fn get_many(&mut self, keys: &[&str]) -> Result<Vec<Option<KvEntry>>, RequestError> {
        let request = KvRequest::GetMany {
            keys: keys.iter().map(|&k| k.to_owned()).collect(),
        };
        match self.call(&request)? {
            KvReply::Values { entries } if entries.len() == keys.len() => Ok(entries),
            _ => Err(protocol("unexpected reply to get_many")),
        }
    }

    /// Makes `writes` in order, in one request; returns one revision per write (`None` for a
    /// delete of an absent key) once all of them are durable under the store's policy (one
    /// sync for the whole batch under `always`).
    ///
    /// A batch with an invalid key or a value over the store's limit is refused whole, before
    /// any write. If the disk fails in the middle, the reply is an error and the writes
    /// before the failure may be kept or lost, as after a crash: this is a pipeline in one
    /// request, not a transaction.
    ///
    /// # Errors
    /// [`crate::RequestErrorKind::BadRequest`] for an invalid key or a batch of 0 or more
    /// than [`MAX_BATCH`] writes; [`crate::RequestErrorKind::Rejected`] for a value over the
    /// limit; as for any request.
    pub fn write_many(&mut self, writes: Vec<KvWrite>) -> Result<Vec<Option<u64>>, RequestError> {
        let count = writes.len();
        match self.call(&KvRequest::WriteMany { writes })? {
            KvReply::Revisions { revisions } if revisions.len() == count => Ok(revisions),
            _ => Err(protocol("unexpected reply to write_many")),
        }
    }

    /// Sets every key to its value (raw bytes), in one request; returns their revisions in
    /// order. As [`Kv::write_many`].
    ///
    /// # Errors
    /// As for [`Kv::write_many`].
    pub fn put_many(
        &mut self,
        entries: &[(&str, &[u8])],
        ttl: Option<Duration>,
    ) -> Result<Vec<u64>, RequestError> {
        let writes = entries
            .iter()
            .map(|&(key, value)| KvWrite::Put {
                key: key.to_owned(),
                value: value.to_vec(),
                ttl_ms: ttl_ms(ttl),
            })
            .collect();
        self.write_many(writes)?
            .into_iter()
            .map(|r| r.ok_or_else(|| protocol("a put without a revision")))
            .collect()
    }

    /// Deletes every key, in one request; returns their revisions (`None` where a key was
    /// absent). As [`Kv::write_many`].
    ///
    /// # Errors
    /// As for [`Kv::write_many`].
    pub fn delete_many(&mut self, keys: &[&str]) -> Result<Vec<Option<u64>>, RequestError> {
        let writes = keys
            .iter()
            .map(|&key| KvWrite::Delete {
                key: key.to_owned(),
            })
            .collect();
        self.write_many(writes)
    }
}
