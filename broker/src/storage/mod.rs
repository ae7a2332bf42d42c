//! The storage thread: serves `zhub.log` from the event log engine and `zhub.kv` from the
//! key-value store ([`crate::kv`]), off the routing thread, so that an fsync never stalls
//! routing.
//!
//! The router passes each request over a bounded inproc link ([`crate::link`]) and gets its
//! reply back the same way. Each turn of the loop
//! drains every waiting request, appends all the records, syncs each stream that needs it
//! once, and only then acknowledges the appends (group commit): concurrent writers share one
//! fsync. Reads that find nothing may wait (long poll) until their stream grows or their wait
//! ends.
//!
//! The thread also keeps consumer groups' positions ([`crate::consumers`]), synced in the
//! same commit step, appends the bus messages the journal tap sends it ([`crate::journal`]),
//! and publishes journaled messages again through the bus thread on request.
//!
//! Here: the thread's loop, group commit and waiting reads; `requests`, the dispatch of
//! `zhub.log` and `zhub.kv` requests, appends and reads; `journals`, durable topics' routes,
//! the tap's messages and republishing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};
use zhub_eventlog::{EventLog, EventLogError, Fsync, Record, StreamConfig};
use zhub_protocol::builtin::StorageStats;
use zhub_protocol::bus;
use zhub_protocol::kv::KvRequest;
use zhub_protocol::log::{
    FsyncPolicy, JournalRoute, LogReply, LogRequest, ReadFrom, StreamSettings, StreamSummary,
};
use zhub_protocol::log_records::RecordsBody;
use zhub_protocol::names::Named;
use zhub_protocol::{body, Status};

use crate::consumers::{self, Consumers};
use crate::journal::{self, JournalTable};
use crate::kv::{Handled, KvService};
use crate::link::{StorageReply, StorageRequest, StorageService, Ticket};
use crate::ratelimit::{peer_fault, Sparse};

mod journals;
mod requests;

/// Largest read the broker serves in one reply.
const MAX_READ_BYTES: u64 = 16 << 20;
/// Longest a read may wait for new records.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(10);
/// Most journaled messages appended per turn, so requests are still served under a flood.
const JOURNAL_BATCH: usize = 4096;
/// Most records one republish request sends.
const MAX_REPUBLISH: u64 = 10_000;

struct WaitingRead {
    ticket: Ticket,
    stream: String,
    from: u64,
    max_bytes: u64,
    max_records: u64,
    deadline: Instant,
}

struct Ack {
    ticket: Ticket,
    stream: String,
    first_offset: u64,
    count: u64,
}

/// What the storage thread owns besides the event log and its request socket.
pub(crate) struct StorageParts {
    /// The event log's directory, where the journal routes are kept.
    pub(crate) log_dir: PathBuf,
    /// Consumer groups' positions.
    pub(crate) consumers: Consumers,
    /// The journal routes, shared with the bus thread's tap.
    pub(crate) journals: Arc<JournalTable>,
    /// Journaled messages from the tap (PULL, bound at [`journal::ENDPOINT`]).
    pub(crate) journal_in: zmq::Socket,
    /// Messages to publish again, and key-value changes for watchers (PUSH, connected to
    /// the bus thread).
    pub(crate) republish: zmq::Socket,
    /// The key-value store.
    pub(crate) kv: KvService,
    /// Most streams the log may hold; creating one more is refused.
    pub(crate) max_streams: usize,
}

pub(crate) struct Storage {
    log: EventLog,
    socket: zmq::Socket,
    parts: StorageParts,
    waiting: Vec<WaitingRead>,
    acks: Vec<Ack>,
    /// Consumer commits acknowledged after this turn's sync.
    commit_acks: Vec<Ticket>,
    /// Streams appended to in this turn.
    touched: BTreeSet<String>,
    /// Faults of the storage thread's inputs, logged sparsely.
    faults: Sparse,
    next_retention: Instant,
    /// What `zhub.storage` tells (the key-value syncs are the store's own).
    stats: StorageStats,
}

/// A failure answered to the client: its status and reason.
pub(crate) struct Refusal(pub(crate) Status, pub(crate) String);

impl From<EventLogError> for Refusal {
    fn from(e: EventLogError) -> Self {
        match e {
            EventLogError::Io { .. }
            | EventLogError::BadFile { .. }
            | EventLogError::NotStored { .. } => {
                error!(error = %e, "storage failure");
                Refusal(Status::Internal, e.to_string())
            }
            other => Refusal(Status::Rejected, other.to_string()),
        }
    }
}

/// The engine's form of a durability policy.
pub(crate) fn fsync_from(policy: FsyncPolicy) -> Fsync {
    match policy {
        FsyncPolicy::Always => Fsync::Always,
        FsyncPolicy::Never => Fsync::Never,
        FsyncPolicy::Interval { ms } => Fsync::Interval(Duration::from_millis(ms.max(1))),
    }
}

fn config_from(settings: &StreamSettings) -> StreamConfig {
    let mut c = StreamConfig::default();
    if let Some(policy) = settings.fsync {
        c.fsync = fsync_from(policy);
    }
    if let Some(v) = settings.segment_bytes {
        c.segment_bytes = v;
    }
    if let Some(v) = settings.max_record_bytes {
        c.max_record_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    c.retention_bytes = settings.retention_bytes;
    c.retention_age = settings.retention_ms.map(Duration::from_millis);
    c
}

impl Storage {
    /// Takes over the log and applies the journal routes: those saved at runtime and those
    /// of the config, creating their streams (default settings) where missing.
    pub(crate) fn new(
        mut log: EventLog,
        socket: zmq::Socket,
        parts: StorageParts,
        configured: &[JournalRoute],
    ) -> Result<Self, crate::BrokerError> {
        let mut routes =
            journal::load(&parts.log_dir).map_err(|cause| crate::BrokerError::DataDir {
                path: parts.log_dir.clone(),
                cause,
            })?;
        // Routes saved by an older broker that accepted prefixes refused now: dropped, so
        // that the broker still starts; the configured ones are checked as settings.
        routes.retain(|route| match journal::check_prefix(&route.prefix) {
            Ok(()) => true,
            Err(reason) => {
                warn!(prefix = ?route.prefix, stream = ?route.stream, %reason, "saved journal route dropped");
                false
            }
        });
        routes.extend_from_slice(configured);
        for route in &routes {
            journal::check_prefix(&route.prefix).map_err(|reason| crate::BrokerError::Config {
                path: PathBuf::from("journal"),
                reason,
            })?;
            if log.stream(&route.stream).is_none() {
                log.create_stream(&route.stream, StreamConfig::default())?;
                info!(stream = ?route.stream, "journal stream created");
            }
            info!(prefix = ?route.prefix, stream = ?route.stream, "journaling topics");
        }
        parts.journals.set(routes);
        Ok(Storage {
            log,
            socket,
            parts,
            waiting: Vec::new(),
            acks: Vec::new(),
            commit_acks: Vec::new(),
            touched: BTreeSet::new(),
            faults: Sparse::default(),
            next_retention: Instant::now() + RETENTION_EVERY,
            stats: StorageStats::default(),
        })
    }

    /// Serves until a message arrives on `control`; then syncs everything and returns.
    pub(crate) fn run(mut self, control: zmq::Socket) -> Result<(), zmq::Error> {
        loop {
            let now = Instant::now();
            let mut wake = self.next_retention;
            if let Some(first) = self.waiting.iter().map(|w| w.deadline).min() {
                wake = wake.min(first);
            }
            if let Some(at) = self.parts.kv.next_wake() {
                wake = wake.min(at);
            }
            if self.parts.kv.has_outbox() {
                // Changes wait for room on the bus: look again soon.
                wake = wake.min(now + Duration::from_millis(10));
            }
            if let Some(at) = self
                .log
                .streams_mut()
                .filter_map(|s| s.sync_deadline())
                .min()
            {
                wake = wake.min(at);
            }
            let timeout = crate::wake::poll_timeout(now, wake);
            let mut items = [
                self.socket.as_poll_item(zmq::POLLIN),
                control.as_poll_item(zmq::POLLIN),
                self.parts.journal_in.as_poll_item(zmq::POLLIN),
            ];
            match zmq::poll(&mut items, timeout) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
            let [requests, stop, journaled] = items.map(|i| i.is_readable());
            if stop {
                #[cfg(feature = "fault-injection")]
                crate::faults::crash_if_asked(
                    &control.recv_bytes(zmq::DONTWAIT).unwrap_or_default(),
                );
                // Journaled messages already taken from publishers are kept.
                self.drain_journal(usize::MAX);
                self.parts.kv.shutdown();
                for stream in self.log.streams_mut() {
                    if let Err(e) = stream.sync() {
                        error!(stream = stream.name(), error = %e, "final sync failed");
                    }
                }
                return Ok(());
            }
            if requests {
                while let Ok(message) = self.socket.recv_multipart(zmq::DONTWAIT) {
                    self.handle(message)?;
                }
            }
            if journaled {
                self.drain_journal(JOURNAL_BATCH);
            }
            // Housekeeping first: key expiries it makes are committed in this same turn.
            self.housekeeping(Instant::now());
            self.commit()?;
            self.serve_waiting(Instant::now())?;
        }
    }

    /// Answers `ticket`. Blocks while the link's replies are at their bound: the router
    /// takes them off as fast as it routes, and routing never waits on this thread.
    fn reply<R: serde::Serialize>(
        &self,
        ticket: &Ticket,
        result: Result<R, Refusal>,
    ) -> Result<(), zmq::Error> {
        let body = result
            .and_then(|r| body::encode(&r).map_err(|e| Refusal(Status::Internal, e.to_string())));
        self.reply_body(ticket, body)
    }

    /// Answers `ticket` with a body already encoded, or the refusal.
    fn reply_body(
        &self,
        ticket: &Ticket,
        result: Result<Vec<u8>, Refusal>,
    ) -> Result<(), zmq::Error> {
        let (status, body) = match result {
            Ok(bytes) => (Status::Ok, bytes),
            Err(Refusal(status, reason)) => (status, reason.into_bytes()),
        };
        let reply = StorageReply {
            ticket: ticket.clone(),
            status,
            body,
        };
        self.socket.send_multipart(reply.into_frames(), 0)
    }

    /// Syncs every stream appended to whose policy asks for it (once each), then sends the
    /// acknowledgements of this turn.
    fn commit(&mut self) -> Result<(), zmq::Error> {
        let mut failed: Vec<(String, String)> = Vec::new();
        let mut synced = BTreeSet::new();
        for name in std::mem::take(&mut self.touched) {
            let Some(stream) = self.log.stream(&name) else {
                continue;
            };
            if stream.needs_sync() {
                match self.stats.log_syncs.time(|| stream.sync()) {
                    Ok(()) => {
                        synced.insert(name);
                    }
                    Err(e) => {
                        error!(stream = ?name, error = %e, "sync failed; appends not acknowledged");
                        failed.push((name, e.to_string()));
                    }
                }
            } else if let Err(e) = stream.flush() {
                // Acknowledged after a flush under `interval` and `never`: not after a failed one.
                error!(stream = ?name, error = %e, "flush failed; appends not acknowledged");
                failed.push((name, e.to_string()));
            }
        }
        let commits = std::mem::take(&mut self.commit_acks);
        if !commits.is_empty() {
            let result = match self.parts.consumers.sync() {
                Ok(()) => Ok(LogReply::Committed),
                Err(e) => {
                    error!(error = %e, "consumer positions not synced");
                    Err(e.to_string())
                }
            };
            for ticket in commits {
                let result = result
                    .clone()
                    .map_err(|why| Refusal(Status::Internal, format!("not durable: {why}")));
                self.reply(&ticket, result)?;
            }
        }
        for (ticket, result) in self.parts.kv.commit() {
            self.reply(&ticket, result)?;
        }
        self.parts.kv.publish(&self.parts.republish);
        for ack in std::mem::take(&mut self.acks) {
            if let Some((_, why)) = failed.iter().find(|(n, _)| *n == ack.stream) {
                self.reply::<()>(
                    &ack.ticket,
                    Err(Refusal(Status::Internal, format!("not durable: {why}"))),
                )?;
                continue;
            }
            let reply = LogReply::Appended {
                first_offset: ack.first_offset,
                count: ack.count,
                synced: synced.contains(&ack.stream),
            };
            self.reply(&ack.ticket, Ok(reply))?;
        }
        Ok(())
    }

    /// Answers waiting reads whose stream has records for them, or whose wait is over.
    fn serve_waiting(&mut self, now: Instant) -> Result<(), zmq::Error> {
        for (ticket, result) in self.parts.kv.serve_waiting(now) {
            self.reply(&ticket, result)?;
        }
        if self.waiting.is_empty() {
            return Ok(());
        }
        let mut still = Vec::new();
        for w in std::mem::take(&mut self.waiting) {
            let ready = self
                .log
                .stream(&w.stream)
                .is_some_and(|s| s.next_offset() > w.from);
            if ready || now >= w.deadline {
                let body = self
                    .read_body(
                        &w.stream,
                        ReadFrom::Offset(w.from),
                        w.max_bytes,
                        w.max_records,
                    )
                    .map(|(body, next_offset)| body.finish(next_offset));
                self.reply_body(&w.ticket, body)?;
            } else {
                still.push(w);
            }
        }
        self.waiting = still;
        Ok(())
    }

    /// Interval syncs, key expiry and snapshots, and periodic retention.
    fn housekeeping(&mut self, now: Instant) {
        self.parts.kv.housekeeping(now);
        for stream in self.log.streams_mut() {
            if stream.sync_due(now) {
                if let Err(e) = self.stats.log_syncs.time(|| stream.sync()) {
                    error!(stream = stream.name(), error = %e, "interval sync failed");
                }
            }
        }
        if now >= self.next_retention {
            self.next_retention = now + RETENTION_EVERY;
            let now_us = zhub_eventlog::now_micros();
            for stream in self.log.streams_mut() {
                if let Err(e) = stream.apply_retention(now_us) {
                    error!(stream = stream.name(), error = %e, "retention failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
