//! The `zhub.kv` service, run by the storage thread beside the event log.
//!
//! Writes are appended to the store's change log at once and acknowledged in the storage
//! thread's commit step, after one sync for all of them (group commit) under the `always`
//! policy. Each change is then published on the bus (topic `$zhub.kv.KEY`) for watchers, in
//! revision order, only once it is durable. Reads are answered at once. Replicas follow the
//! change log itself with long polls (`changes`), so they never miss a change.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{error, warn};
use zhub_eventlog::Fsync;
use zhub_kvstore::{Change, ChangeKind, Entry, KvConfig, KvError, KvStore};
use zhub_protocol::builtin::LatencyHistogram;
use zhub_protocol::bus::{self, BusHeader, Encoding};
use zhub_protocol::kv::{self, KvChange, KvEntry, KvReply, KvRequest, KvWrite, WATCH_PREFIX};
use zhub_protocol::{body, Status};

use crate::link::Ticket;
use crate::storage::Refusal;

/// Longest a `changes` request may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most entries in one `list` page and changes in one `changes` reply.
const MAX_PAGE: u64 = 10_000;

/// A client waiting for its write to be durable.
struct Ack {
    ticket: Ticket,
    reply: KvReply,
}

/// A replica's `changes` request waiting for a change.
struct WaitingChanges {
    ticket: Ticket,
    prefix: String,
    from: u64,
    max: u64,
    deadline: Instant,
}

/// A reply owed to a request that waited (for the commit, or for a change): whom to answer,
/// and the outcome. The storage thread encodes and sends it.
pub(crate) type Answer = (Ticket, Result<KvReply, Refusal>);

/// What the service did with a request.
pub(crate) enum Handled {
    /// Answer now.
    Reply(Result<KvReply, Refusal>),
    /// Answered later: after the commit, or when a change arrives.
    Later,
}

pub(crate) struct KvService {
    store: KvStore,
    /// Publisher id of the change messages.
    publisher: u64,
    acks: Vec<Ack>,
    /// Changes appended since the last commit, published once durable.
    unsynced: Vec<Change>,
    /// How long the store's syncs took.
    pub(crate) syncs: LatencyHistogram,
    /// Change frames waiting for room in the bus's queue.
    outbox: VecDeque<Vec<u8>>,
    waiting: Vec<WaitingChanges>,
}

fn now_us() -> i64 {
    zhub_eventlog::now_micros()
}

fn entry(key: String, e: Entry) -> KvEntry {
    KvEntry {
        key,
        value: e.value,
        revision: e.revision,
        expires_at_us: e.expires_at_us,
    }
}

fn kind(k: ChangeKind) -> kv::ChangeKind {
    match k {
        ChangeKind::Put => kv::ChangeKind::Put,
        ChangeKind::Delete => kv::ChangeKind::Delete,
        ChangeKind::Expire => kv::ChangeKind::Expire,
    }
}

fn wire_change(c: &Change) -> KvChange {
    KvChange {
        revision: c.revision,
        key: c.key.clone(),
        kind: kind(c.kind),
        value: (c.kind == ChangeKind::Put).then(|| c.value.clone()),
        expires_at_us: c.expires_at_us,
        timestamp_us: c.timestamp_us,
    }
}

impl From<KvError> for Refusal {
    fn from(e: KvError) -> Self {
        match e {
            KvError::BadKey { .. }
            | KvError::ValueTooLarge { .. }
            | KvError::NotACounter { .. }
            | KvError::Overflow { .. }
            | KvError::RevisionMismatch { .. } => Refusal(Status::Rejected, e.to_string()),
            other => {
                error!(error = %other, "key-value store failure");
                Refusal(Status::Internal, other.to_string())
            }
        }
    }
}

impl KvService {
    /// Opens (recovering) the store in `dir`.
    pub(crate) fn open(dir: &Path, fsync: Fsync) -> Result<KvService, KvError> {
        // The protocol's key rule and the store's agree on the longest key.
        let config = KvConfig::default()
            .fsync(fsync)
            .max_key_bytes(zhub_protocol::names::MAX_KEY_LEN);
        let store = KvStore::open(dir, config)?;
        Ok(KvService {
            store,
            publisher: zhub_protocol::ids::random_u64(),
            acks: Vec::new(),
            unsynced: Vec::new(),
            syncs: LatencyHistogram::default(),
            outbox: VecDeque::new(),
            waiting: Vec::new(),
        })
    }

    /// A write's outcome: appended, it is acknowledged after the commit; refused, at once.
    fn write(&mut self, ticket: &Ticket, result: Result<(Change, KvReply), KvError>) -> Handled {
        match result {
            Ok((change, reply)) => {
                self.unsynced.push(change);
                self.defer(ticket, reply);
                Handled::Later
            }
            Err(e) => {
                // A failed log write may have taken back this turn's earlier changes: they
                // are not published (their acknowledgements fail at the commit).
                let kept = self.store.revision();
                self.unsynced.retain(|c| c.revision < kept);
                Handled::Reply(Err(e.into()))
            }
        }
    }

    /// Applies a batch of writes in order; their revisions leave after this turn's sync.
    fn write_many(&mut self, ticket: &Ticket, writes: Vec<KvWrite>, now: i64) -> Handled {
        // Refused whole, before any write, when one of them would be refused.
        for write in &writes {
            if let KvWrite::Put { key, value, .. } = write {
                if let Err(e) = self.store.check_put(key, value) {
                    return Handled::Reply(Err(e.into()));
                }
            }
        }
        let mut revisions = Vec::with_capacity(writes.len());
        for write in writes {
            let result = match write {
                KvWrite::Put { key, value, ttl_ms } => {
                    let ttl = ttl_ms.map(Duration::from_millis);
                    self.store.put(&key, &value, ttl, now).map(Some)
                }
                KvWrite::Delete { key } => self.store.delete(&key, now),
            };
            match result {
                Ok(Some(change)) => {
                    revisions.push(Some(change.revision));
                    self.unsynced.push(change);
                }
                Ok(None) => revisions.push(None),
                Err(e) => return self.write(ticket, Err(e)),
            }
        }
        // Only deletes of absent keys: nothing to wait for.
        let wrote = revisions.iter().any(Option::is_some);
        let reply = KvReply::Revisions { revisions };
        if !wrote {
            return Handled::Reply(Ok(reply));
        }
        self.defer(ticket, reply);
        Handled::Later
    }

    /// Holds a reply until this turn's writes are synced.
    fn defer(&mut self, ticket: &Ticket, reply: KvReply) {
        self.acks.push(Ack {
            ticket: ticket.clone(),
            reply,
        });
    }

    /// Serves one request, to be answered to `ticket`.
    pub(crate) fn handle(&mut self, ticket: &Ticket, request: KvRequest) -> Handled {
        let now = now_us();
        // A change's reply is its revision.
        let revision = |c: Change| {
            let revision = c.revision;
            (c, KvReply::Revision { revision })
        };
        match request {
            KvRequest::Get { key } => Handled::Reply(
                zhub_kvstore::check_key(&key, self.store.config().max_key_bytes)
                    .map_err(Refusal::from)
                    .map(|()| match self.store.get(&key, now) {
                        Some(e) => KvReply::Value {
                            entry: entry(key, e),
                        },
                        None => KvReply::NotFound,
                    }),
            ),
            KvRequest::Put { key, value, ttl_ms } => {
                let ttl = ttl_ms.map(Duration::from_millis);
                let result = self.store.put(&key, &value, ttl, now).map(revision);
                self.write(ticket, result)
            }
            KvRequest::Cas {
                key,
                expected,
                value,
                ttl_ms,
            } => {
                let ttl = ttl_ms.map(Duration::from_millis);
                match self.store.cas(&key, expected, &value, ttl, now) {
                    Err(KvError::RevisionMismatch { current, .. }) => {
                        Handled::Reply(Ok(KvReply::Mismatch { current }))
                    }
                    result => self.write(ticket, result.map(revision)),
                }
            }
            KvRequest::Incr { key, delta } => {
                let result = self.store.incr(&key, delta, now).map(|(value, c)| {
                    let revision = c.revision;
                    (c, KvReply::Counter { value, revision })
                });
                self.write(ticket, result)
            }
            KvRequest::Delete { key } => match self.store.delete(&key, now) {
                Ok(None) => Handled::Reply(Ok(KvReply::NotFound)),
                Ok(Some(c)) => self.write(ticket, Ok(revision(c))),
                Err(e) => self.write(ticket, Err(e)),
            },
            KvRequest::List {
                prefix,
                after,
                limit,
            } => {
                let limit = limit.clamp(1, MAX_PAGE) as usize;
                let (entries, more) = self.store.list(&prefix, after.as_deref(), limit, now);
                Handled::Reply(Ok(KvReply::Entries {
                    entries: entries.into_iter().map(|(k, e)| entry(k, e)).collect(),
                    more,
                }))
            }
            KvRequest::History { key, limit } => Handled::Reply(
                zhub_kvstore::check_key(&key, self.store.config().max_key_bytes)
                    .and_then(|()| self.store.history(&key, limit as usize))
                    .map(|h| KvReply::History {
                        changes: h
                            .into_iter()
                            .map(|h| KvChange {
                                revision: h.revision,
                                key: key.clone(),
                                kind: kind(h.kind),
                                value: (h.kind == ChangeKind::Put).then_some(h.value),
                                expires_at_us: h.expires_at_us,
                                timestamp_us: h.timestamp_us,
                            })
                            .collect(),
                    })
                    .map_err(Refusal::from),
            ),
            KvRequest::Snapshot { prefix } => {
                let (entries, revision) = self.store.snapshot_prefix(&prefix, now);
                let reply = KvReply::Snapshot {
                    entries: entries.into_iter().map(|(k, e)| entry(k, e)).collect(),
                    revision,
                };
                if self.unsynced.is_empty() {
                    Handled::Reply(Ok(reply))
                } else {
                    // It holds writes of this turn: it leaves after they are synced, so a
                    // replica never holds a change that a crash could undo.
                    self.defer(ticket, reply);
                    Handled::Later
                }
            }
            KvRequest::GetMany { keys } => Handled::Reply(Ok(KvReply::Values {
                entries: keys
                    .into_iter()
                    .map(|key| self.store.get(&key, now).map(|e| entry(key, e)))
                    .collect(),
            })),
            KvRequest::WriteMany { writes } => self.write_many(ticket, writes, now),
            KvRequest::Changes {
                prefix,
                from,
                max,
                wait_ms,
            } => {
                let max = max.clamp(1, MAX_PAGE);
                match self.changes(&prefix, from, max) {
                    Ok(KvReply::Changes { changes, next }) if changes.is_empty() && wait_ms > 0 => {
                        let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
                        self.waiting.push(WaitingChanges {
                            ticket: ticket.clone(),
                            prefix,
                            from: next,
                            max,
                            deadline: Instant::now() + wait,
                        });
                        Handled::Later
                    }
                    other => Handled::Reply(other),
                }
            }
        }
    }

    /// The revision after the last durable change: the changes appended since the last
    /// commit are the newest ones, one revision each.
    fn durable_end(&self) -> u64 {
        self.store
            .revision()
            .saturating_sub(self.unsynced.len() as u64)
    }

    /// Durable changes under `prefix` from revision `from` on.
    fn changes(&mut self, prefix: &str, from: u64, max: u64) -> Result<KvReply, Refusal> {
        // Only what is synced: a replica must never see a change that a crash could undo.
        let durable_end = self.durable_end();
        match self
            .store
            .changes_since(prefix, from, durable_end, max as usize)
        {
            Ok((changes, next)) => Ok(KvReply::Changes {
                changes: changes.iter().map(wire_change).collect(),
                next,
            }),
            Err(KvError::Compacted { first, .. }) => Ok(KvReply::Compacted { first }),
            Err(e) => Err(e.into()),
        }
    }

    /// Syncs the store when writes are waiting, then returns the acknowledgements to send and
    /// queues the changes for the bus. A failed sync fails every waiting write.
    pub(crate) fn commit(&mut self) -> Vec<Answer> {
        if self.unsynced.is_empty() && self.acks.is_empty() {
            return Vec::new();
        }
        // Synced under `always`; otherwise at least in the file, so that only a crash of the
        // machine, never of the broker, can lose an acknowledged write.
        let synced = if self.store.needs_sync() {
            let store = &mut self.store;
            self.syncs.time(|| store.sync())
        } else {
            self.store.flush()
        };
        let acks = std::mem::take(&mut self.acks);
        let changes = std::mem::take(&mut self.unsynced);
        match synced {
            Ok(()) => {
                for change in &changes {
                    self.queue(change);
                }
                acks.into_iter().map(|a| (a.ticket, Ok(a.reply))).collect()
            }
            Err(e) => {
                error!(error = %e, "key-value write failed; writes not acknowledged");
                acks.into_iter()
                    .map(|a| {
                        let why = Refusal(Status::Internal, format!("not durable: {e}"));
                        (a.ticket, Err(why))
                    })
                    .collect()
            }
        }
    }

    /// Encodes a change as a bus message for watchers.
    fn queue(&mut self, change: &Change) {
        let Ok(body) = body::encode(&wire_change(change)) else {
            return;
        };
        let topic = format!("{WATCH_PREFIX}{}", change.key);
        let header = BusHeader {
            publisher: self.publisher,
            // Watchers follow revisions, not per-topic sequence numbers.
            seq: 0,
            timestamp_us: u64::try_from(change.timestamp_us).unwrap_or(0),
            lamport: 0,
            encoding: Encoding::MsgPack,
        };
        self.outbox.push_back(bus::encode(&topic, &header, &body));
    }

    /// Sends queued change messages to the bus thread until its queue is full.
    pub(crate) fn publish(&mut self, socket: &zmq::Socket) {
        while let Some(frame) = self.outbox.front() {
            match socket.send(&frame[..], zmq::DONTWAIT) {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    warn!(error = %e, "cannot publish a key-value change");
                    return;
                }
            }
        }
    }

    /// Whether change messages wait for room on the bus.
    pub(crate) fn has_outbox(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Expires keys that are due, takes snapshots when due, syncs an interval policy.
    pub(crate) fn housekeeping(&mut self, now: Instant) {
        match self.store.expire_due(now_us()) {
            Ok(expired) => self.unsynced.extend(expired),
            Err(e) => error!(error = %e, "key expiry failed"),
        }
        if self.store.sync_due(now) {
            let store = &mut self.store;
            if let Err(e) = self.syncs.time(|| store.sync()) {
                error!(error = %e, "key-value interval sync failed");
            }
        }
        if let Err(e) = self.store.maintenance() {
            error!(error = %e, "key-value snapshot failed");
        }
    }

    /// When the service next needs the loop: a key's expiry, a waiting read's deadline, or
    /// an interval policy's sync.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let expiry = self.store.next_expiry().map(|at| {
            let wait = u64::try_from(at.saturating_sub(now_us())).unwrap_or(0);
            Instant::now() + Duration::from_micros(wait)
        });
        let read = self.waiting.iter().map(|w| w.deadline).min();
        [expiry, read, self.store.sync_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Answers waiting `changes` requests that have something, or whose wait is over.
    pub(crate) fn serve_waiting(&mut self, now: Instant) -> Vec<Answer> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let durable_end = self.durable_end();
        let mut out = Vec::new();
        for w in std::mem::take(&mut self.waiting) {
            if durable_end > w.from || now >= w.deadline {
                let reply = self.changes(&w.prefix, w.from, w.max);
                match reply {
                    Ok(KvReply::Changes { ref changes, next })
                        if changes.is_empty() && now < w.deadline =>
                    {
                        // Changes came, none under this prefix: wait on from there.
                        self.waiting.push(WaitingChanges { from: next, ..w });
                    }
                    reply => out.push((w.ticket, reply)),
                }
            } else {
                self.waiting.push(w);
            }
        }
        out
    }

    /// Syncs everything at shutdown.
    pub(crate) fn shutdown(&mut self) {
        if let Err(e) = self.store.sync() {
            error!(error = %e, "key-value store: final sync failed");
        }
    }
}
