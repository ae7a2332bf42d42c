//! [`KvPipeline`]: single key-value operations pipelined on one client, many in flight, their
//! outcomes in the order they were made.
//!
//! Where [`Kv::write_many`](crate::Kv::write_many) sends many writes in one request, a
//! pipeline sends one request per operation without waiting for each reply: operations of
//! different kinds can be mixed, each has its own outcome, and the store takes them in the
//! order they were sent. Each write is acknowledged once durable under the store's policy; a
//! store that syncs shares one sync among the writes that arrived together.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use zhub_protocol::body;
use zhub_protocol::kv::{KvReply, KvRequest, KV_SERVICE};

use crate::error::{RequestError, RequestErrorKind, WithKind};
use crate::kv::{codec, counter_of, deleted_of, entry_of, put_request, revision_of};
use crate::{Kv, KvEntry, Pipeline};

/// What a pipelined key-value operation did, by kind of operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvDone {
    /// A get: the key's entry, `None` when it is absent.
    Entry(Option<KvEntry>),
    /// A put: the change's revision.
    Stored(u64),
    /// A delete: the change's revision, `None` when the key was absent.
    Deleted(Option<u64>),
    /// An increment: the counter's new value and the change's revision.
    Counter {
        /// The value after the increment.
        value: i64,
        /// The change's revision.
        revision: u64,
    },
}

/// The kinds of operation, remembered in order to read each reply.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Put,
    Delete,
    Incr,
}

/// Key-value operations in flight on one client; made by [`Kv::pipeline`].
///
/// Each operation is sent at once while fewer than the window's are in flight, and otherwise
/// after the oldest reply (kept for [`KvPipeline::recv`]). An operation that fails (an invalid
/// key, a value over the limit) fails alone: the others go on.
///
/// ```no_run
/// use zhub_client::{Client, KvDone};
///
/// let mut client = Client::connect("tcp://127.0.0.1:5555")?;
/// let mut kv = client.kv().pipeline(64);
/// for i in 0..1000 {
///     kv.put(&format!("sensor.{i}"), &i)?;
/// }
/// kv.get("sensor.7")?;
/// let outcomes = kv.flush();
/// assert!(matches!(outcomes[1000], Ok(KvDone::Entry(Some(_)))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KvPipeline<'a> {
    pipeline: Pipeline<'a>,
    /// The kind of each operation whose outcome is not handed out yet, oldest first.
    ops: VecDeque<Op>,
}

impl<'a> Kv<'a> {
    /// A pipeline of single operations keeping up to `window` in flight (at least 1).
    pub fn pipeline(self, window: usize) -> KvPipeline<'a> {
        KvPipeline {
            pipeline: self.client.pipeline(window),
            ops: VecDeque::new(),
        }
    }
}

impl KvPipeline<'_> {
    /// Sets the timeout of the operations sent from now on.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        KvPipeline {
            pipeline: self.pipeline.timeout(timeout),
            ops: self.ops,
        }
    }

    fn send(&mut self, op: Op, request: &KvRequest) -> Result<(), RequestError> {
        let bytes = body::encode(request).kind(RequestErrorKind::Codec, "zhub.kv request")?;
        self.pipeline.send_bytes(KV_SERVICE, &bytes)?;
        self.ops.push_back(op);
        Ok(())
    }

    /// Reads the key's entry ([`KvDone::Entry`]).
    ///
    /// # Errors
    /// As for [`Pipeline::send_bytes`].
    pub fn get(&mut self, key: &str) -> Result<(), RequestError> {
        let key = key.to_owned();
        self.send(Op::Get, &KvRequest::Get { key })
    }

    /// Sets the key to `value` (MessagePack) ([`KvDone::Stored`]).
    ///
    /// # Errors
    /// [`RequestErrorKind::Codec`] when `value` cannot be encoded; as for
    /// [`Pipeline::send_bytes`].
    pub fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), RequestError> {
        let value = body::encode(value).map_err(codec)?;
        self.put_bytes(key, &value, None)
    }

    /// Sets the key to raw bytes, expiring after `ttl` if given ([`KvDone::Stored`]).
    ///
    /// # Errors
    /// As for [`Pipeline::send_bytes`].
    pub fn put_bytes(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), RequestError> {
        self.send(Op::Put, &put_request(key, value, ttl))
    }

    /// Deletes the key ([`KvDone::Deleted`]).
    ///
    /// # Errors
    /// As for [`Pipeline::send_bytes`].
    pub fn delete(&mut self, key: &str) -> Result<(), RequestError> {
        let key = key.to_owned();
        self.send(Op::Delete, &KvRequest::Delete { key })
    }

    /// Adds `delta` to the counter at `key` ([`KvDone::Counter`]).
    ///
    /// # Errors
    /// As for [`Pipeline::send_bytes`].
    pub fn incr(&mut self, key: &str, delta: i64) -> Result<(), RequestError> {
        let key = key.to_owned();
        self.send(Op::Incr, &KvRequest::Incr { key, delta })
    }

    /// The outcome of the oldest operation not yet handed out, waiting for it; `None` when
    /// every operation sent has been handed out.
    pub fn recv(&mut self) -> Option<Result<KvDone, RequestError>> {
        let outcome = self.pipeline.recv()?;
        let op = self.ops.pop_front()?;
        Some(outcome.and_then(|bytes| {
            let reply = body::decode::<KvReply>(&bytes)
                .kind(RequestErrorKind::Protocol, "zhub.kv reply")?;
            Ok(match op {
                Op::Get => KvDone::Entry(entry_of(reply)?),
                Op::Put => KvDone::Stored(revision_of(reply)?),
                Op::Delete => KvDone::Deleted(deleted_of(reply)?),
                Op::Incr => {
                    let (value, revision) = counter_of(reply)?;
                    KvDone::Counter { value, revision }
                }
            })
        }))
    }

    /// Waits for every operation sent and returns the outcomes not yet handed out, in the
    /// order the operations were made.
    pub fn flush(&mut self) -> Vec<Result<KvDone, RequestError>> {
        std::iter::from_fn(|| self.recv()).collect()
    }

    /// Operations sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.pipeline.in_flight()
    }

    /// Operations sent whose outcome has not been handed out.
    pub fn pending(&self) -> usize {
        self.ops.len()
    }
}
