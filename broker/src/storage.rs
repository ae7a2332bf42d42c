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
    FsyncPolicy, JournalRoute, LogReply, LogRequest, ReadFrom, StoredRecord, StreamSettings,
    StreamSummary,
};
use zhub_protocol::names::Named;
use zhub_protocol::{body, Status};

use crate::consumers::{self, Consumers};
use crate::journal::{self, JournalTable};
use crate::kv::{Handled, KvService};
use crate::link::{StorageReply, StorageRequest, StorageService, Ticket};
use crate::ratelimit::{peer_fault, Sparse};

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

fn stored(records: Vec<Record>) -> Vec<StoredRecord> {
    records
        .into_iter()
        .map(|r| StoredRecord {
            offset: r.offset,
            timestamp_us: r.timestamp,
            key: r.key,
            value: r.value,
        })
        .collect()
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
        let (status, body) = match result
            .and_then(|r| body::encode(&r).map_err(|e| Refusal(Status::Internal, e.to_string())))
        {
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

    fn handle(&mut self, message: Vec<Vec<u8>>) -> Result<(), zmq::Error> {
        let Some(StorageRequest {
            ticket,
            service,
            body: request,
        }) = StorageRequest::decode(message)
        else {
            peer_fault!(self.faults, "malformed message from the router ignored");
            return Ok(());
        };
        match service {
            StorageService::Kv => return self.handle_kv(&ticket, &request),
            StorageService::Stats => {
                let stats = StorageStats {
                    kv_syncs: self.parts.kv.syncs.clone(),
                    ..self.stats.clone()
                };
                return self.reply(&ticket, Ok(stats));
            }
            StorageService::Log => {}
        }
        let Some(request) = self.decode::<LogRequest>(&ticket, &request)? else {
            self.stats.log_refused += 1;
            return Ok(());
        };
        *self
            .stats
            .log_ops
            .entry(request.op().to_owned())
            .or_default() += 1;
        let result = match request {
            LogRequest::Create { stream, settings } => self
                .check_room(&stream)
                .and_then(|()| {
                    self.log
                        .create_stream(&stream, config_from(&settings))
                        .map_err(Refusal::from)
                })
                .map(|_| LogReply::Created),
            LogRequest::Append { stream, records } => match self.append(&stream, &records) {
                Ok(first_offset) => {
                    self.stats.log_records_appended += records.len() as u64;
                    // Acknowledged after this turn's commit.
                    self.acks.push(Ack {
                        ticket,
                        stream,
                        first_offset,
                        count: records.len() as u64,
                    });
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            LogRequest::Read {
                stream,
                from,
                max_bytes,
                max_records,
                wait_ms,
            } => {
                let max_bytes = max_bytes.clamp(1, MAX_READ_BYTES);
                let max_records = max_records.max(1);
                match self.read(&stream, from, max_bytes, max_records) {
                    Ok((records, from)) if records.is_empty() && wait_ms > 0 => {
                        let wait = Duration::from_millis(wait_ms).min(MAX_WAIT);
                        self.waiting.push(WaitingRead {
                            ticket,
                            stream,
                            from,
                            max_bytes,
                            max_records,
                            deadline: Instant::now() + wait,
                        });
                        return Ok(());
                    }
                    Ok((records, from)) => Ok(records_reply(records, from)),
                    Err(e) => Err(e),
                }
            }
            LogRequest::Streams => Ok(LogReply::Streams {
                streams: self
                    .log
                    .list()
                    .into_iter()
                    .map(|i| StreamSummary {
                        name: i.name,
                        first_offset: i.first_offset,
                        next_offset: i.next_offset,
                        records: i.records,
                        size_bytes: i.size_bytes,
                    })
                    .collect(),
            }),
            LogRequest::Delete { stream } => {
                let result = self
                    .log
                    .delete_stream(&stream)
                    .map(|()| LogReply::Deleted)
                    .map_err(Refusal::from);
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                    .into_iter()
                    .partition(|w| w.stream == stream);
                self.waiting = kept;
                for w in gone {
                    self.reply::<()>(
                        &w.ticket,
                        Err(Refusal(
                            Status::Rejected,
                            format!("stream {stream} was deleted"),
                        )),
                    )?;
                }
                self.forget_stream(&stream);
                result
            }
            LogRequest::Commit {
                stream,
                group,
                offset,
            } => match self.commit_position(&stream, &group, offset) {
                Ok(()) => {
                    // Acknowledged after this turn's sync.
                    self.commit_acks.push(ticket);
                    return Ok(());
                }
                Err(e) => Err(e),
            },
            LogRequest::Position { stream, group } => self
                .log
                .get(&stream)
                .map(|_| LogReply::Position {
                    offset: self.parts.consumers.position(&stream, &group),
                })
                .map_err(Refusal::from),
            LogRequest::Journal { prefix, stream } => self.journal(prefix, stream),
            LogRequest::Unjournal { prefix, stream } => {
                let mut routes = self.parts.journals.routes();
                let before = routes.len();
                routes.retain(|r| !(r.prefix == prefix && r.stream == stream));
                if routes.len() == before {
                    Err(Refusal(
                        Status::Rejected,
                        format!("no journal route from {prefix:?} to {stream}"),
                    ))
                } else {
                    self.save_routes(routes).map(|()| LogReply::Unjournaled)
                }
            }
            LogRequest::Journals => Ok(LogReply::Journals {
                journals: self.parts.journals.routes(),
            }),
            LogRequest::Republish {
                stream,
                from,
                max_records,
            } => self.republish(&stream, from, max_records),
        };
        if result.is_err() {
            self.stats.log_refused += 1;
        }
        self.reply(&ticket, result)
    }

    /// Decodes a request body and checks the names it carries, answering `400 Bad Request`
    /// (and returning `None`) when it is malformed or a name breaks its rule.
    fn decode<T: serde::de::DeserializeOwned + Named>(
        &self,
        ticket: &Ticket,
        request: &[u8],
    ) -> Result<Option<T>, zmq::Error> {
        match body::decode::<T>(request).and_then(|r| r.check_names().map(|()| r)) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                let refusal = Refusal(Status::BadRequest, e.to_string());
                self.reply::<()>(ticket, Err(refusal))?;
                Ok(None)
            }
        }
    }

    fn handle_kv(&mut self, ticket: &Ticket, request: &[u8]) -> Result<(), zmq::Error> {
        let Some(request) = self.decode::<KvRequest>(ticket, request)? else {
            self.stats.kv_refused += 1;
            return Ok(());
        };
        *self
            .stats
            .kv_ops
            .entry(request.op().to_owned())
            .or_default() += 1;
        match self.parts.kv.handle(ticket, request) {
            Handled::Reply(result) => {
                if result.is_err() {
                    self.stats.kv_refused += 1;
                }
                self.reply(ticket, result)
            }
            Handled::Later => Ok(()),
        }
    }

    fn commit_position(&mut self, stream: &str, group: &str, offset: u64) -> Result<(), Refusal> {
        consumers::check_group(group).map_err(|why| Refusal(Status::Rejected, why))?;
        self.log.get(stream)?;
        self.parts.consumers.commit(stream, group, offset)?;
        Ok(())
    }

    /// Refuses a new stream when the log holds `max_streams` already.
    fn check_room(&self, stream: &str) -> Result<(), Refusal> {
        let max = self.parts.max_streams;
        if self.log.len() >= max {
            return Err(Refusal(
                Status::Rejected,
                format!("cannot create stream {stream}: the broker holds {max} streams, its max_streams"),
            ));
        }
        Ok(())
    }

    /// Adds a journal route, creating its stream when missing.
    fn journal(&mut self, prefix: String, stream: String) -> Result<LogReply, Refusal> {
        journal::check_prefix(&prefix).map_err(|why| Refusal(Status::Rejected, why))?;
        if self.log.stream(&stream).is_none() {
            self.check_room(&stream)?;
            self.log.create_stream(&stream, StreamConfig::default())?;
        }
        let mut routes = self.parts.journals.routes();
        routes.push(JournalRoute {
            prefix: prefix.clone(),
            stream: stream.clone(),
        });
        self.save_routes(routes)?;
        info!(?prefix, ?stream, "journaling topics");
        Ok(LogReply::Journaling)
    }

    /// Saves the routes durably, then hands them to the tap.
    fn save_routes(&mut self, mut routes: Vec<JournalRoute>) -> Result<(), Refusal> {
        routes.sort();
        routes.dedup();
        journal::save(&self.parts.log_dir, &routes).map_err(|e| {
            error!(error = %e, "cannot save the journal routes");
            Refusal(
                Status::Internal,
                format!("cannot save the journal routes: {e}"),
            )
        })?;
        self.parts.journals.set(routes);
        Ok(())
    }

    /// Drops what refers to a deleted stream: its routes and its groups' positions.
    fn forget_stream(&mut self, stream: &str) {
        let mut routes = self.parts.journals.routes();
        let before = routes.len();
        routes.retain(|r| r.stream != stream);
        if routes.len() != before {
            // A failure is logged inside; the tap drops (and counts) messages for the
            // missing stream meanwhile.
            let _ = self.save_routes(routes);
        }
        if let Err(e) = self.parts.consumers.forget_stream(stream) {
            error!(?stream, error = %e, "cannot forget the stream's consumer groups");
        }
    }

    /// Appends up to `limit` journaled messages waiting from the tap.
    fn drain_journal(&mut self, limit: usize) {
        for _ in 0..limit {
            let Ok(message) = self.parts.journal_in.recv_multipart(zmq::DONTWAIT) else {
                return;
            };
            let Ok([stream, frame]) = <[Vec<u8>; 2]>::try_from(message) else {
                peer_fault!(
                    self.faults,
                    "malformed message from the journal tap dropped"
                );
                continue;
            };
            let name = String::from_utf8_lossy(&stream);
            let Ok(decoded) = bus::decode(&frame) else {
                peer_fault!(self.faults, "malformed journaled frame dropped");
                continue;
            };
            let timestamp = i64::try_from(decoded.header.timestamp_us).ok();
            let topic = decoded.topic.as_bytes();
            let Some(target) = self.log.stream(&name) else {
                peer_fault!(self.faults, "journaled message for a missing stream dropped", stream = ?name);
                continue;
            };
            // Touched either way: the commit's flush or sync also reports (and so clears) a
            // failure, after which appends are taken again.
            match target.append(timestamp, Some(topic), &frame) {
                Ok(_) => self.stats.journal_records += 1,
                Err(e) => error!(stream = ?name, error = %e, "journal append failed"),
            }
            self.touched.insert(name.into_owned());
        }
    }

    /// Sends journaled messages to the bus thread until `max_records`, the end of the stream,
    /// or a full queue.
    fn republish(
        &mut self,
        name: &str,
        from: ReadFrom,
        max_records: u64,
    ) -> Result<LogReply, Refusal> {
        let max_records = max_records.clamp(1, MAX_REPUBLISH);
        let (records, from) = self.read(name, from, MAX_READ_BYTES, max_records)?;
        let mut next_offset = from;
        let mut count = 0;
        for record in &records {
            let reserved = bus::decode(&record.value).map(|f| bus::is_reserved(f.topic));
            if reserved != Ok(false) {
                return Err(Refusal(
                    Status::Rejected,
                    format!(
                        "offset {} of stream {name} is not a journaled bus message",
                        record.offset
                    ),
                ));
            }
            match self.parts.republish.send(&record.value[..], zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => return Err(Refusal(Status::Internal, e.to_string())),
            }
            count += 1;
            next_offset = record.offset + 1;
        }
        let at_end = self
            .log
            .stream(name)
            .is_some_and(|s| next_offset >= s.next_offset());
        debug!(stream = name, count, next_offset, "republished");
        Ok(LogReply::Republished {
            count,
            next_offset,
            at_end,
        })
    }

    /// Appends a batch, all or nothing: every record is checked against the limit first.
    fn append(
        &mut self,
        name: &str,
        records: &[zhub_protocol::log::NewRecord],
    ) -> Result<u64, Refusal> {
        let stream = self.log.get(name)?;
        let limit = stream.config().max_record_bytes;
        for r in records {
            let size = zhub_eventlog::codec::framed_len(r.key.as_deref(), &r.value);
            if size > limit {
                return Err(EventLogError::RecordTooLarge { size, limit }.into());
            }
        }
        let first = stream.next_offset();
        // Touched even when an append fails: the commit's flush or sync then reports the
        // failure to this turn's other appends, and clears it for the next turn.
        self.touched.insert(name.to_owned());
        for r in records {
            // A failure takes back this batch's earlier records too (and the turn's other
            // unconfirmed ones, whose acknowledgements the commit fails).
            stream.append(r.timestamp_us, r.key.as_deref(), &r.value)?;
        }
        Ok(first)
    }

    fn read(
        &mut self,
        name: &str,
        from: ReadFrom,
        max_bytes: u64,
        max_records: u64,
    ) -> Result<(Vec<Record>, u64), Refusal> {
        let stream = self.log.get(name)?;
        let from = match from {
            ReadFrom::Offset(o) => o,
            ReadFrom::Time(t) => stream
                .offset_for_time(t)?
                .unwrap_or_else(|| stream.next_offset()),
        };
        let records = stream.read(
            from,
            usize::try_from(max_bytes).unwrap_or(usize::MAX),
            usize::try_from(max_records).unwrap_or(usize::MAX),
        )?;
        Ok((records, from.max(stream.first_offset())))
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
                let result = self
                    .read(
                        &w.stream,
                        ReadFrom::Offset(w.from),
                        w.max_bytes,
                        w.max_records,
                    )
                    .map(|(records, from)| records_reply(records, from));
                self.reply(&w.ticket, result)?;
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

fn records_reply(records: Vec<Record>, from: u64) -> LogReply {
    let next_offset = records.last().map_or(from, |r| r.offset + 1);
    LogReply::Records {
        records: stored(records),
        next_offset,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_protocol_and_the_engine_agree_on_stream_names() {
        let long = "s".repeat(zhub_protocol::names::MAX_STREAM_LEN);
        let too_long = format!("{long}s");
        let samples = [
            "orders", "a.b_c-1", ".hidden", "", "a/b", "a b", "été", "a\nb", &long, &too_long,
        ];
        for name in samples {
            assert_eq!(
                zhub_protocol::names::check_stream(name).is_ok(),
                zhub_eventlog::check_name(name).is_ok(),
                "{name:?}"
            );
        }
    }
}
