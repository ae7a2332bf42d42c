//! [`Kv`]: the key-value store through the broker (`zhub.kv`); [`Watcher`]: its changes
//! over the bus; [`Replica`]: a local copy of a prefix that follows the store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tracing::{debug, warn};
use zhub_protocol::body;
pub use zhub_protocol::kv::{ChangeKind, KvChange, KvEntry};
use zhub_protocol::kv::{KvReply, KvRequest, KV_SERVICE, WATCH_PREFIX};
use zhub_protocol::ProtocolError;

use crate::error::{RecvError, RequestError, RequestErrorKind, SubscribeError, WithKind};
use crate::{Client, ClientOptions, Subscriber};

/// Entries fetched per page by [`Kv::list_all`].
const PAGE: u64 = 1000;
/// Changes a replica fetches per request.
const CHANGES_BATCH: u64 = 1000;
/// How long a replica's request for changes waits for one.
const CHANGES_WAIT: Duration = Duration::from_millis(500);

pub(crate) fn protocol(detail: &str) -> RequestError {
    RequestError::new(RequestErrorKind::Protocol, detail)
}

pub(crate) fn codec(e: ProtocolError) -> RequestError {
    RequestError::with_source(RequestErrorKind::Codec, "value", e)
}

pub(crate) fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// The request that sets `key` to `value`, expiring after `ttl` if given.
pub(crate) fn put_request(key: &str, value: &[u8], ttl: Option<Duration>) -> KvRequest {
    KvRequest::Put {
        key: key.to_owned(),
        value: value.to_vec(),
        ttl_ms: ttl_ms(ttl),
    }
}

/// The entry a get's reply carries (`None`: the key is absent).
pub(crate) fn entry_of(reply: KvReply) -> Result<Option<KvEntry>, RequestError> {
    match reply {
        KvReply::Value { entry } => Ok(Some(entry)),
        KvReply::NotFound => Ok(None),
        _ => Err(protocol("unexpected reply to get")),
    }
}

/// The revision a put's reply carries.
pub(crate) fn revision_of(reply: KvReply) -> Result<u64, RequestError> {
    match reply {
        KvReply::Revision { revision } => Ok(revision),
        _ => Err(protocol("unexpected reply to put")),
    }
}

/// The revision a delete's reply carries (`None`: the key was absent).
pub(crate) fn deleted_of(reply: KvReply) -> Result<Option<u64>, RequestError> {
    match reply {
        KvReply::Revision { revision } => Ok(Some(revision)),
        KvReply::NotFound => Ok(None),
        _ => Err(protocol("unexpected reply to delete")),
    }
}

/// The value and revision an increment's reply carries.
pub(crate) fn counter_of(reply: KvReply) -> Result<(i64, u64), RequestError> {
    match reply {
        KvReply::Counter { value, revision } => Ok((value, revision)),
        _ => Err(protocol("unexpected reply to incr")),
    }
}

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was stored at this revision.
    Stored(u64),
    /// The key had another revision (`None`: it was absent); nothing was stored.
    Mismatch {
        /// The key's current revision.
        current: Option<u64>,
    },
}

/// The key-value store, reached through a [`Client`] (see [`Client::kv`]).
///
/// Keys are UTF-8 strings; values are MessagePack (typed methods) or raw bytes (`_bytes`
/// methods). Every change has a revision, the offset of its record in the store's change
/// log, and is acknowledged once durable under the store's policy.
pub struct Kv<'a> {
    pub(crate) client: &'a mut Client,
}

impl<'a> Kv<'a> {
    pub(crate) fn new(client: &'a mut Client) -> Self {
        Kv { client }
    }

    pub(crate) fn call(&mut self, request: &KvRequest) -> Result<KvReply, RequestError> {
        let timeout = self.client.timeout();
        self.call_with(request, timeout)
    }

    fn call_with(
        &mut self,
        request: &KvRequest,
        timeout: Duration,
    ) -> Result<KvReply, RequestError> {
        self.client.call_builtin(KV_SERVICE, request, timeout)
    }

    /// The key's entry (value, revision, expiry), or `None` when it is absent.
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] for an invalid key (see
    /// [`zhub_protocol::names::check_key`]).
    pub fn get_entry(&mut self, key: &str) -> Result<Option<KvEntry>, RequestError> {
        entry_of(self.call(&KvRequest::Get {
            key: key.to_owned(),
        })?)
    }

    /// The key's raw value, or `None`.
    ///
    /// # Errors
    /// As for [`Kv::get_entry`].
    pub fn get_bytes(&mut self, key: &str) -> Result<Option<Vec<u8>>, RequestError> {
        Ok(self.get_entry(key)?.map(|e| e.value))
    }

    /// The key's value decoded as `T` (MessagePack), or `None`.
    ///
    /// # Errors
    /// As for [`Kv::get_entry`]; [`RequestErrorKind::Codec`] when the value is not a `T`.
    pub fn get<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, RequestError> {
        self.get_bytes(key)?
            .map(|v| body::decode(&v).map_err(codec))
            .transpose()
    }

    /// Sets the key to `value` (MessagePack); returns the change's revision.
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] for an invalid key (see
    /// [`zhub_protocol::names::check_key`]), [`RequestErrorKind::Rejected`] for an oversized
    /// value.
    pub fn put<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<u64, RequestError> {
        let value = body::encode(value).map_err(codec)?;
        self.put_bytes(key, &value, None)
    }

    /// Sets the key to raw bytes, expiring after `ttl` if given; returns the revision.
    ///
    /// # Errors
    /// As for [`Kv::put`].
    pub fn put_bytes(
        &mut self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64, RequestError> {
        revision_of(self.call(&put_request(key, value, ttl))?)
    }

    /// Sets the key to `value`, expiring after `ttl` (also across a broker restart).
    ///
    /// # Errors
    /// As for [`Kv::put`].
    pub fn put_ttl<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<u64, RequestError> {
        let value = body::encode(value).map_err(codec)?;
        self.put_bytes(key, &value, Some(ttl))
    }

    /// Deletes the key; returns the change's revision, or `None` when it was absent.
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] for an invalid key (see
    /// [`zhub_protocol::names::check_key`]).
    pub fn delete(&mut self, key: &str) -> Result<Option<u64>, RequestError> {
        deleted_of(self.call(&KvRequest::Delete {
            key: key.to_owned(),
        })?)
    }

    /// Sets the key to `value` only if its revision is `expected` (`None`: only if absent).
    /// Of many clients racing from the same revision, exactly one stores its value.
    ///
    /// # Errors
    /// As for [`Kv::put`].
    pub fn cas<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &T,
    ) -> Result<CasOutcome, RequestError> {
        let value = body::encode(value).map_err(codec)?;
        self.cas_bytes(key, expected, &value, None)
    }

    /// [`Kv::cas`] with raw bytes and an optional time to live.
    ///
    /// # Errors
    /// As for [`Kv::put`].
    pub fn cas_bytes(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<CasOutcome, RequestError> {
        match self.call(&KvRequest::Cas {
            key: key.to_owned(),
            expected,
            value: value.to_vec(),
            ttl_ms: ttl_ms(ttl),
        })? {
            KvReply::Revision { revision } => Ok(CasOutcome::Stored(revision)),
            KvReply::Mismatch { current } => Ok(CasOutcome::Mismatch { current }),
            _ => Err(protocol("unexpected reply to cas")),
        }
    }

    /// Adds `delta` to the counter at `key` (an absent key counts from 0), atomically;
    /// returns the new value and the change's revision. The value is a MessagePack integer,
    /// so `get::<i64>` reads it.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] when the value is not an integer or would overflow.
    pub fn incr(&mut self, key: &str, delta: i64) -> Result<(i64, u64), RequestError> {
        counter_of(self.call(&KvRequest::Incr {
            key: key.to_owned(),
            delta,
        })?)
    }

    /// One page of the keys starting with `prefix`, in key order, after `after`; with
    /// whether more follow.
    ///
    /// # Errors
    /// As for any request.
    pub fn list(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<(Vec<KvEntry>, bool), RequestError> {
        match self.call(&KvRequest::List {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        })? {
            KvReply::Entries { entries, more } => Ok((entries, more)),
            _ => Err(protocol("unexpected reply to list")),
        }
    }

    /// Every key starting with `prefix`, fetched page by page.
    ///
    /// # Errors
    /// As for any request.
    pub fn list_all(&mut self, prefix: &str) -> Result<Vec<KvEntry>, RequestError> {
        let mut all: Vec<KvEntry> = Vec::new();
        loop {
            let after = all.last().map(|e| e.key.clone());
            let (page, more) = self.list(prefix, after.as_deref(), PAGE)?;
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// The key's last changes, newest first, at most `limit` (and at most the store's
    /// history setting).
    ///
    /// # Errors
    /// [`RequestErrorKind::BadRequest`] for an invalid key (see
    /// [`zhub_protocol::names::check_key`]).
    pub fn history(&mut self, key: &str, limit: u64) -> Result<Vec<KvChange>, RequestError> {
        match self.call(&KvRequest::History {
            key: key.to_owned(),
            limit,
        })? {
            KvReply::History { changes } => Ok(changes),
            _ => Err(protocol("unexpected reply to history")),
        }
    }

    /// Every change to keys starting with `prefix`, as it happens, over the bus. Returns once
    /// the watch is live: every change made after it returns is delivered, in order.
    ///
    /// `prefix` may also be a subject pattern over keys written as `.`-separated tokens
    /// (`users.*.email`, `users.>`; see [`zhub_protocol::subject`]).
    ///
    /// # Errors
    /// As for [`Client::subscribe`].
    pub fn watch(&mut self, prefix: &str) -> Result<Watcher, SubscribeError> {
        let topic = format!("{WATCH_PREFIX}{prefix}");
        Ok(Watcher {
            subscriber: self.client.subscribe(&[&topic])?,
        })
    }

    /// A local copy of every key starting with `prefix`, kept up to date by a thread of its
    /// own with its own connection (see [`Replica`]). Returns once the first snapshot is in.
    ///
    /// # Errors
    /// As for [`Client::connect`] and any request.
    pub fn replica(&mut self, prefix: &str) -> Result<Replica, RequestError> {
        Replica::start(
            &self.client.info().main,
            self.client.options().clone(),
            prefix,
        )
    }
}

/// Changes to a key prefix, received over the bus; see [`Kv::watch`]. Dropping it stops
/// the watch.
pub struct Watcher {
    subscriber: Subscriber,
}

impl Watcher {
    fn decode(message: &crate::Message) -> Result<KvChange, RecvError> {
        message
            .decode()
            .kind(crate::RecvErrorKind::Codec, "key-value change")
    }

    /// The next change, waiting as long as it takes.
    ///
    /// # Errors
    /// As for [`Subscriber::recv`].
    pub fn recv(&mut self) -> Result<KvChange, RecvError> {
        let message = self.subscriber.recv()?;
        Self::decode(&message)
    }

    /// The next change, or `None` after `timeout`.
    ///
    /// # Errors
    /// As for [`Subscriber::recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<KvChange>, RecvError> {
        self.subscriber
            .recv_timeout(timeout)?
            .map(|m| Self::decode(&m))
            .transpose()
    }

    /// Changes lost on the way because this watcher fell too far behind: what the broker
    /// reported dropping for it ([`Subscriber::missed`]), or the holes seen in the change
    /// sequence ([`Subscriber::gaps`]) if those are more.
    pub fn lost(&self) -> u64 {
        self.subscriber.missed().max(self.subscriber.gaps())
    }
}

#[derive(Default)]
struct ReplicaState {
    entries: BTreeMap<String, KvEntry>,
    /// The next revision the replica will apply: everything before it is applied.
    revision: u64,
    /// Snapshots taken (1 for the first; more after compaction outran a disconnection).
    snapshots: u64,
    connected: bool,
}

struct Shared {
    state: Mutex<ReplicaState>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A local, in-memory copy of a key prefix, following the store: a snapshot consistent at
/// some revision, then every change from that revision on, in order, each applied once (the
/// Clone pattern's rule). When the broker goes away, the replica keeps its data, reconnects
/// on its own and goes on from the revision it had reached; if the store compacted those
/// changes away meanwhile, it takes a new snapshot. Dropping it stops its thread.
pub struct Replica {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Replica {
    /// Connects to the broker at `url` and follows `prefix`; returns once the first snapshot
    /// is applied.
    ///
    /// # Errors
    /// As for [`Client::connect`] and any request.
    pub fn connect(url: &str, prefix: &str) -> Result<Replica, RequestError> {
        Self::start(url, ClientOptions::default(), prefix)
    }

    fn start(url: &str, options: ClientOptions, prefix: &str) -> Result<Replica, RequestError> {
        let mut client = Client::connect_with(url, options.clone())
            .kind(RequestErrorKind::Transport, "connect")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(ReplicaState::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        snapshot(&mut client, prefix, &shared)?;
        let thread = {
            let shared = Arc::clone(&shared);
            let (url, prefix) = (url.to_owned(), prefix.to_owned());
            std::thread::Builder::new()
                .name("zhub-kv-replica".into())
                .spawn(move || follow(client, &url, options, &prefix, &shared))
                .kind(RequestErrorKind::Transport, "thread")?
        };
        Ok(Replica {
            shared,
            thread: Some(thread),
        })
    }

    /// The key's entry in the replica.
    pub fn get_entry(&self, key: &str) -> Option<KvEntry> {
        self.shared.lock().entries.get(key).cloned()
    }

    /// The key's value decoded as `T`, or `None` when absent.
    ///
    /// # Errors
    /// [`ProtocolError::Decode`] when the value is not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ProtocolError> {
        self.shared
            .lock()
            .entries
            .get(key)
            .map(|e| body::decode(&e.value))
            .transpose()
    }

    /// A copy of every entry.
    pub fn entries(&self) -> BTreeMap<String, KvEntry> {
        self.shared.lock().entries.clone()
    }

    /// The revision the replica has reached: every change before it is applied.
    pub fn revision(&self) -> u64 {
        self.shared.lock().revision
    }

    /// Snapshots taken so far (1 unless the replica had to start over after compaction).
    pub fn snapshots(&self) -> u64 {
        self.shared.lock().snapshots
    }

    /// Whether the replica's connection is up (it keeps serving its data either way).
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Waits until the change at `revision` is applied (say, the revision a put returned);
    /// `false` after `timeout`.
    pub fn wait_for(&self, revision: u64, timeout: Duration) -> bool {
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(self.shared.lock(), timeout, |s| s.revision <= revision)
            .unwrap_or_else(PoisonError::into_inner);
        state.revision > revision
    }

    /// Waits for the next change after revision `after`; returns the revision reached, or
    /// `None` after `timeout`.
    pub fn wait_change(&self, after: u64, timeout: Duration) -> Option<u64> {
        self.wait_for(after, timeout).then(|| self.revision())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn snapshot(client: &mut Client, prefix: &str, shared: &Shared) -> Result<(), RequestError> {
    match client.kv().call(&KvRequest::Snapshot {
        prefix: prefix.to_owned(),
    })? {
        KvReply::Snapshot { entries, revision } => {
            let mut state = shared.lock();
            state.entries = entries.into_iter().map(|e| (e.key.clone(), e)).collect();
            state.revision = revision;
            state.snapshots += 1;
            state.connected = true;
            drop(state);
            shared.changed.notify_all();
            Ok(())
        }
        _ => Err(protocol("unexpected reply to snapshot")),
    }
}

fn apply(shared: &Shared, changes: Vec<KvChange>, next: u64) {
    let mut state = shared.lock();
    for change in changes {
        // The sequence rule: a change before the revision reached is already applied.
        if change.revision < state.revision {
            continue;
        }
        match change.kind {
            ChangeKind::Put => {
                let entry = KvEntry {
                    key: change.key.clone(),
                    value: change.value.unwrap_or_default(),
                    revision: change.revision,
                    expires_at_us: change.expires_at_us,
                };
                state.entries.insert(change.key, entry);
            }
            ChangeKind::Delete | ChangeKind::Expire => {
                state.entries.remove(&change.key);
            }
        }
        state.revision = change.revision + 1;
    }
    state.revision = state.revision.max(next);
    state.connected = true;
    drop(state);
    shared.changed.notify_all();
}

/// The replica's thread: asks for changes from the revision reached, reconnecting with
/// backoff when the broker goes away, until the replica is dropped.
fn follow(client: Client, url: &str, options: ClientOptions, prefix: &str, shared: &Shared) {
    let mut client = Some(client);
    let mut backoff = Duration::from_millis(50);
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_mut() else {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            client = Client::connect_with(url, options.clone()).ok();
            continue;
        };
        let from = shared.lock().revision;
        let request = KvRequest::Changes {
            prefix: prefix.to_owned(),
            from,
            max: CHANGES_BATCH,
            wait_ms: CHANGES_WAIT.as_millis() as u64,
        };
        let timeout = c.timeout() + CHANGES_WAIT;
        match c.kv().call_with(&request, timeout) {
            Ok(KvReply::Changes { changes, next }) => {
                backoff = Duration::from_millis(50);
                apply(shared, changes, next);
            }
            Ok(KvReply::Compacted { first }) => {
                debug!(
                    from,
                    first, "replica fell behind compaction; taking a new snapshot"
                );
                if let Err(e) = snapshot(c, prefix, shared) {
                    warn!(error = %e, "replica snapshot failed");
                    client = None;
                }
            }
            Ok(_) => warn!("unexpected reply to a replica's changes request"),
            Err(e) => {
                debug!(error = %e, "replica lost the broker; reconnecting");
                shared.lock().connected = false;
                client = None;
            }
        }
    }
}
