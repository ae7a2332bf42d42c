//! The storage thread: serves `zhub.log` from the event log engine, off the routing thread, so
//! that an fsync never stalls routing.
//!
//! The router passes each request over an inproc PAIR socket as `[client identity, request id,
//! body]` and gets `[client identity, request id, status, body]` back. Each turn of the loop
//! drains every waiting request, appends all the records, syncs each stream that needs it
//! once, and only then acknowledges the appends (group commit): concurrent writers share one
//! fsync. Reads that find nothing may wait (long poll) until their stream grows or their wait
//! ends.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tracing::{error, warn};
use zhub_eventlog::{EventLog, EventLogError, Fsync, Record, StreamConfig};
use zhub_protocol::log::{
    FsyncPolicy, LogReply, LogRequest, ReadFrom, StoredRecord, StreamSettings, StreamSummary,
};
use zhub_protocol::{body, Status};

/// Endpoint of the router-storage pair.
pub(crate) const ENDPOINT: &str = "inproc://storage";
/// Largest read the broker serves in one reply.
const MAX_READ_BYTES: u64 = 16 << 20;
/// Longest a read may wait for new records.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

struct WaitingRead {
    identity: Vec<u8>,
    id: Vec<u8>,
    stream: String,
    from: u64,
    max_bytes: u64,
    max_records: u64,
    deadline: Instant,
}

struct Ack {
    identity: Vec<u8>,
    id: Vec<u8>,
    stream: String,
    first_offset: u64,
    count: u64,
}

pub(crate) struct Storage {
    log: EventLog,
    socket: zmq::Socket,
    waiting: Vec<WaitingRead>,
    acks: Vec<Ack>,
    /// Streams appended to in this turn.
    touched: BTreeSet<String>,
    next_retention: Instant,
}

/// A failure answered to the client.
struct Refusal(Status, String);

impl From<EventLogError> for Refusal {
    fn from(e: EventLogError) -> Self {
        match e {
            EventLogError::Io { .. } | EventLogError::BadFile { .. } => {
                error!(error = %e, "storage failure");
                Refusal(Status::Internal, e.to_string())
            }
            other => Refusal(Status::Rejected, other.to_string()),
        }
    }
}

fn config_from(settings: &StreamSettings) -> StreamConfig {
    let mut c = StreamConfig::default();
    if let Some(policy) = settings.fsync {
        c.fsync = match policy {
            FsyncPolicy::Always => Fsync::Always,
            FsyncPolicy::Never => Fsync::Never,
            FsyncPolicy::Interval { ms } => Fsync::Interval(Duration::from_millis(ms.max(1))),
        };
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
    pub(crate) fn new(log: EventLog, socket: zmq::Socket) -> Self {
        Storage {
            log,
            socket,
            waiting: Vec::new(),
            acks: Vec::new(),
            touched: BTreeSet::new(),
            next_retention: Instant::now() + RETENTION_EVERY,
        }
    }

    /// Serves until a message arrives on `control`; then syncs everything and returns.
    pub(crate) fn run(mut self, control: zmq::Socket) -> Result<(), zmq::Error> {
        loop {
            let now = Instant::now();
            let mut wake = self.next_retention;
            if let Some(first) = self.waiting.iter().map(|w| w.deadline).min() {
                wake = wake.min(first);
            }
            let interval_pending = self
                .log
                .streams_mut()
                .any(|s| matches!(s.config().fsync, Fsync::Interval(_)) && s.has_unsynced());
            if interval_pending {
                // An interval policy has data to sync: look again soon.
                wake = wake.min(now + Duration::from_millis(10));
            }
            let timeout =
                i64::try_from(wake.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
            let mut items = [
                self.socket.as_poll_item(zmq::POLLIN),
                control.as_poll_item(zmq::POLLIN),
            ];
            match zmq::poll(&mut items, timeout) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
            if items[1].is_readable() {
                for stream in self.log.streams_mut() {
                    if let Err(e) = stream.sync() {
                        error!(stream = stream.name(), error = %e, "final sync failed");
                    }
                }
                return Ok(());
            }
            if items[0].is_readable() {
                while let Ok(message) = self.socket.recv_multipart(zmq::DONTWAIT) {
                    self.handle(message)?;
                }
            }
            self.commit()?;
            self.serve_waiting(Instant::now())?;
            self.housekeeping(Instant::now());
        }
    }

    fn send(
        &self,
        identity: &[u8],
        id: &[u8],
        status: Status,
        body: Vec<u8>,
    ) -> Result<(), zmq::Error> {
        let status = status.code().to_be_bytes();
        self.socket
            .send_multipart([identity, id, &status[..], &body[..]], 0)
    }

    fn reply(
        &self,
        identity: &[u8],
        id: &[u8],
        result: Result<LogReply, Refusal>,
    ) -> Result<(), zmq::Error> {
        match result
            .and_then(|r| body::encode(&r).map_err(|e| Refusal(Status::Internal, e.to_string())))
        {
            Ok(bytes) => self.send(identity, id, Status::Ok, bytes),
            Err(Refusal(status, reason)) => self.send(identity, id, status, reason.into_bytes()),
        }
    }

    fn handle(&mut self, message: Vec<Vec<u8>>) -> Result<(), zmq::Error> {
        let Ok([identity, id, request]) = <[Vec<u8>; 3]>::try_from(message) else {
            warn!("malformed message from the router ignored");
            return Ok(());
        };
        let request: LogRequest = match body::decode(&request) {
            Ok(r) => r,
            Err(e) => {
                return self.reply(
                    &identity,
                    &id,
                    Err(Refusal(Status::BadRequest, e.to_string())),
                )
            }
        };
        let result = match request {
            LogRequest::Create { stream, settings } => self
                .log
                .create_stream(&stream, config_from(&settings))
                .map(|_| LogReply::Created)
                .map_err(Refusal::from),
            LogRequest::Append { stream, records } => match self.append(&stream, &records) {
                Ok(first_offset) => {
                    // Acknowledged after this turn's commit.
                    self.acks.push(Ack {
                        identity,
                        id,
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
                            identity,
                            id,
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
                    self.reply(
                        &w.identity,
                        &w.id,
                        Err(Refusal(
                            Status::Rejected,
                            format!("stream {stream} was deleted"),
                        )),
                    )?;
                }
                result
            }
        };
        self.reply(&identity, &id, result)
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
        for r in records {
            stream.append(r.timestamp_us, r.key.as_deref(), &r.value)?;
        }
        self.touched.insert(name.to_owned());
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
                match stream.sync() {
                    Ok(()) => {
                        synced.insert(name);
                    }
                    Err(e) => {
                        error!(stream = %name, error = %e, "sync failed; appends not acknowledged");
                        failed.push((name, e.to_string()));
                    }
                }
            } else if let Err(e) = stream.flush() {
                warn!(stream = %name, error = %e, "flush failed");
            }
        }
        for ack in std::mem::take(&mut self.acks) {
            if let Some((_, why)) = failed.iter().find(|(n, _)| *n == ack.stream) {
                self.reply(
                    &ack.identity,
                    &ack.id,
                    Err(Refusal(Status::Internal, format!("not durable: {why}"))),
                )?;
                continue;
            }
            let reply = LogReply::Appended {
                first_offset: ack.first_offset,
                count: ack.count,
                synced: synced.contains(&ack.stream),
            };
            self.reply(&ack.identity, &ack.id, Ok(reply))?;
        }
        Ok(())
    }

    /// Answers waiting reads whose stream has records for them, or whose wait is over.
    fn serve_waiting(&mut self, now: Instant) -> Result<(), zmq::Error> {
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
                self.reply(&w.identity, &w.id, result)?;
            } else {
                still.push(w);
            }
        }
        self.waiting = still;
        Ok(())
    }

    /// Interval syncs and periodic retention.
    fn housekeeping(&mut self, now: Instant) {
        for stream in self.log.streams_mut() {
            if stream.sync_due(now) {
                if let Err(e) = stream.sync() {
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
