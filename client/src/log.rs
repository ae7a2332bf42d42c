//! [`Log`]: the event log through the broker (`zhub.log`).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use zhub_protocol::body;
pub use zhub_protocol::log::{
    FsyncPolicy, JournalRoute, NewRecord, ReadFrom, StoredRecord, StreamSettings, StreamSummary,
};
use zhub_protocol::log::{LogReply, LogRequest, LOG_SERVICE};
use zhub_protocol::log_records::{decode_reply, peek_next_offset};

use crate::error::{RequestError, RequestErrorKind, WithKind};
use crate::Client;

/// Bytes fetched per batch by [`LogReader`].
const BATCH_BYTES: u64 = 1 << 20;

/// The event log, reached through a [`Client`] (see [`Client::log`]).
pub struct Log<'a> {
    pub(crate) client: &'a mut Client,
}

fn protocol(detail: &str) -> RequestError {
    RequestError::new(RequestErrorKind::Protocol, detail)
}

impl<'a> Log<'a> {
    pub(crate) fn new(client: &'a mut Client) -> Self {
        Log { client }
    }

    fn call(&mut self, request: &LogRequest, timeout: Duration) -> Result<LogReply, RequestError> {
        self.client
            .call_builtin_with(LOG_SERVICE, request, timeout, decode_reply)
    }

    fn timeout(&self) -> Duration {
        self.client.timeout()
    }

    /// Creates a stream.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] when it exists, [`RequestErrorKind::BadRequest`] when
    /// the name is invalid (1 to 200 of `A-Z a-z 0-9 . _ -`, not starting with `.`; see
    /// [`zhub_protocol::names::check_stream`]).
    pub fn create(&mut self, stream: &str, settings: StreamSettings) -> Result<(), RequestError> {
        let request = LogRequest::Create {
            stream: stream.to_owned(),
            settings,
        };
        match self.call(&request, self.timeout())? {
            LogReply::Created => Ok(()),
            _ => Err(protocol("unexpected reply to create")),
        }
    }

    /// Appends one event (MessagePack) and returns its offset, once the stream's durability
    /// policy is met (by default: synced to disk).
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an unknown stream or a record over the limit.
    pub fn append<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        event: &T,
    ) -> Result<u64, RequestError> {
        let value = body::encode(event).kind(RequestErrorKind::Codec, "event")?;
        self.append_bytes(stream, None, &value)
    }

    /// Appends one record of raw bytes, with an optional key; returns its offset.
    ///
    /// # Errors
    /// As for [`Log::append`].
    pub fn append_bytes(
        &mut self,
        stream: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<u64, RequestError> {
        let records = vec![NewRecord {
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            timestamp_us: None,
        }];
        Ok(self.append_records(stream, records)?.0)
    }

    /// Appends events in one request (all or none); returns their offsets.
    ///
    /// # Errors
    /// As for [`Log::append`].
    pub fn append_batch<T: Serialize>(
        &mut self,
        stream: &str,
        events: &[T],
    ) -> Result<Vec<u64>, RequestError> {
        let records = events
            .iter()
            .map(|e| {
                body::encode(e)
                    .map(|value| NewRecord {
                        key: None,
                        value,
                        timestamp_us: None,
                    })
                    .kind(RequestErrorKind::Codec, "event")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (first, count) = self.append_records(stream, records)?;
        Ok((first..first + count).collect())
    }

    /// Appends records as given; returns the first offset and the count.
    ///
    /// # Errors
    /// As for [`Log::append`].
    pub fn append_records(
        &mut self,
        stream: &str,
        records: Vec<NewRecord>,
    ) -> Result<(u64, u64), RequestError> {
        let request = LogRequest::Append {
            stream: stream.to_owned(),
            records,
        };
        match self.call(&request, self.timeout())? {
            LogReply::Appended {
                first_offset,
                count,
                ..
            } => Ok((first_offset, count)),
            _ => Err(protocol("unexpected reply to append")),
        }
    }

    /// One batch of records from `from`, waiting up to `wait` for new ones when there are
    /// none yet (long poll). Returns the records and the offset to read from next.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an unknown stream or a damaged record.
    pub fn read_batch(
        &mut self,
        stream: &str,
        from: ReadFrom,
        max_bytes: u64,
        wait: Duration,
    ) -> Result<(Vec<StoredRecord>, u64), RequestError> {
        let request = LogRequest::Read {
            stream: stream.to_owned(),
            from,
            max_bytes,
            max_records: u64::MAX,
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        match self.call(&request, self.timeout() + wait)? {
            LogReply::Records {
                records,
                next_offset,
            } => Ok((records, next_offset)),
            _ => Err(protocol("unexpected reply to read")),
        }
    }

    /// Reads the stream from offset `from` to its current end, fetching in batches.
    pub fn read(self, stream: &str, from: u64) -> LogReader<'a> {
        LogReader::new(self.client, stream, ReadFrom::Offset(from))
    }

    /// Reads the stream from the first record stamped at or after `timestamp_us`.
    pub fn read_from_time(self, stream: &str, timestamp_us: i64) -> LogReader<'a> {
        LogReader::new(self.client, stream, ReadFrom::Time(timestamp_us))
    }

    /// The streams.
    ///
    /// # Errors
    /// As for any request.
    pub fn streams(&mut self) -> Result<Vec<StreamSummary>, RequestError> {
        match self.call(&LogRequest::Streams, self.timeout())? {
            LogReply::Streams { streams } => Ok(streams),
            _ => Err(protocol("unexpected reply to streams")),
        }
    }

    /// Deletes a stream, with its consumer groups' positions and the journal routes into it.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an unknown stream.
    pub fn delete(&mut self, stream: &str) -> Result<(), RequestError> {
        match self.call(
            &LogRequest::Delete {
                stream: stream.to_owned(),
            },
            self.timeout(),
        )? {
            LogReply::Deleted => Ok(()),
            _ => Err(protocol("unexpected reply to delete")),
        }
    }

    /// A consumer in `group`: it reads on from the group's last committed position (from the
    /// stream's start when the group never committed), and [`Consumer::commit`] stores its
    /// position durably in the broker. Delivery is at least once: records read after the last
    /// commit are read again by the next consumer of the group.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an unknown stream.
    pub fn consumer(self, stream: &str, group: &str) -> Result<Consumer<'a>, RequestError> {
        let request = LogRequest::Position {
            stream: stream.to_owned(),
            group: group.to_owned(),
        };
        let timeout = self.timeout();
        let committed = match Log::new(self.client).call(&request, timeout)? {
            LogReply::Position { offset } => offset,
            _ => return Err(protocol("unexpected reply to position")),
        };
        Ok(Consumer {
            client: self.client,
            stream: stream.to_owned(),
            group: group.to_owned(),
            next: committed.unwrap_or(0),
            committed,
            buffer: VecDeque::new(),
        })
    }

    /// Journals every bus message whose topic starts with `prefix` into `stream` (created
    /// with default settings when missing), from now on and across broker restarts: the
    /// prefix becomes a durable topic. Each record keeps the whole message (topic, header,
    /// body; see [`Message::from_record`](crate::Message::from_record)) with the topic as its
    /// key.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an empty or reserved prefix (`$`),
    /// [`RequestErrorKind::BadRequest`] for a prefix or stream name that breaks its rule (see
    /// [`zhub_protocol::names`]).
    pub fn journal(&mut self, prefix: &str, stream: &str) -> Result<(), RequestError> {
        let request = LogRequest::Journal {
            prefix: prefix.to_owned(),
            stream: stream.to_owned(),
        };
        match self.call(&request, self.timeout())? {
            LogReply::Journaling => Ok(()),
            _ => Err(protocol("unexpected reply to journal")),
        }
    }

    /// Stops journaling `prefix` into `stream`.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] when there is no such route.
    pub fn unjournal(&mut self, prefix: &str, stream: &str) -> Result<(), RequestError> {
        let request = LogRequest::Unjournal {
            prefix: prefix.to_owned(),
            stream: stream.to_owned(),
        };
        match self.call(&request, self.timeout())? {
            LogReply::Unjournaled => Ok(()),
            _ => Err(protocol("unexpected reply to unjournal")),
        }
    }

    /// The journal routes (durable topics).
    ///
    /// # Errors
    /// As for any request.
    pub fn journals(&mut self) -> Result<Vec<JournalRoute>, RequestError> {
        match self.call(&LogRequest::Journals, self.timeout())? {
            LogReply::Journals { journals } => Ok(journals),
            _ => Err(protocol("unexpected reply to journals")),
        }
    }

    /// Publishes a journal's messages on the bus again, as they were first published (topic,
    /// header, body), from `from` to the stream's current end; returns how many. Subscribers
    /// receive them like live messages; their sequence numbers are the original ones.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] for an unknown stream or a record that is not a
    /// journaled message.
    pub fn republish(&mut self, stream: &str, from: ReadFrom) -> Result<u64, RequestError> {
        self.republish_with(stream, from, |_| {})
    }

    /// As [`Log::republish`], calling `progress` with the count of each batch sent.
    ///
    /// # Errors
    /// As for [`Log::republish`].
    pub fn republish_with(
        &mut self,
        stream: &str,
        from: ReadFrom,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, RequestError> {
        let mut from = from;
        let mut total = 0;
        let mut idle = Duration::from_millis(1);
        loop {
            let step = self.republish_batch(stream, from, 10_000)?;
            total += step.count;
            progress(step.count);
            if step.at_end {
                return Ok(total);
            }
            from = ReadFrom::Offset(step.next_offset);
            if step.count == 0 {
                // The bus's queue is full: let it drain.
                std::thread::sleep(idle);
                idle = (idle * 2).min(Duration::from_millis(100));
            } else {
                idle = Duration::from_millis(1);
            }
        }
    }

    /// One step of [`Log::republish`]: at most `max_records` (fewer when the bus's queue is
    /// full; the broker caps a step at 10 000).
    fn republish_batch(
        &mut self,
        stream: &str,
        from: ReadFrom,
        max_records: u64,
    ) -> Result<Republished, RequestError> {
        let request = LogRequest::Republish {
            stream: stream.to_owned(),
            from,
            max_records,
        };
        match self.call(&request, self.timeout())? {
            LogReply::Republished {
                count,
                next_offset,
                at_end,
            } => Ok(Republished {
                count,
                next_offset,
                at_end,
            }),
            _ => Err(protocol("unexpected reply to republish")),
        }
    }
}

/// What one step of [`Log::republish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Republished {
    count: u64,
    next_offset: u64,
    at_end: bool,
}

/// A member of a consumer group reading a stream; see [`Log::consumer`].
pub struct Consumer<'a> {
    client: &'a mut Client,
    stream: String,
    group: String,
    /// Offset after the last record handed out.
    next: u64,
    committed: Option<u64>,
    buffer: VecDeque<StoredRecord>,
}

impl Consumer<'_> {
    /// The next record, waiting up to `wait` for one to be appended when the consumer is at
    /// the end of the stream (`None` then).
    ///
    /// # Errors
    /// As for [`Log::read_batch`].
    pub fn poll(&mut self, wait: Duration) -> Result<Option<StoredRecord>, RequestError> {
        if self.buffer.is_empty() {
            let from = self.next;
            let (records, _) = Log::new(self.client).read_batch(
                &self.stream,
                ReadFrom::Offset(from),
                BATCH_BYTES,
                wait,
            )?;
            self.buffer.extend(records);
        }
        let record = self.buffer.pop_front();
        if let Some(r) = &record {
            self.next = r.offset + 1;
        }
        Ok(record)
    }

    /// Stores the position after the last record returned by [`Consumer::poll`] as the
    /// group's, durably. A no-op when nothing was read since the last commit.
    ///
    /// # Errors
    /// As for any request; the position is not stored then.
    pub fn commit(&mut self) -> Result<(), RequestError> {
        if self.committed == Some(self.next) {
            return Ok(());
        }
        let request = LogRequest::Commit {
            stream: self.stream.clone(),
            group: self.group.clone(),
            offset: self.next,
        };
        let timeout = self.client.timeout();
        match Log::new(self.client).call(&request, timeout)? {
            LogReply::Committed => {
                self.committed = Some(self.next);
                Ok(())
            }
            _ => Err(protocol("unexpected reply to commit")),
        }
    }

    /// The offset of the next record [`Consumer::poll`] returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The group's committed position as last known (`None`: never committed).
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }

    /// Moves to `offset` (commit to make it the group's).
    pub fn seek(&mut self, offset: u64) {
        self.buffer.clear();
        self.next = offset;
    }
}

/// Iterator over a stream's records up to its end, fetching in batches; see [`Log::read`].
///
/// While one batch is decoded and handed out, the broker is already reading the next (one
/// read is sent ahead), so a replay keeps the broker and the reader busy at once.
pub struct LogReader<'a> {
    client: &'a mut Client,
    stream: String,
    next: ReadFrom,
    /// The read sent for the batch after the buffered one.
    ahead: Option<u64>,
    buffer: VecDeque<StoredRecord>,
    done: bool,
}

impl<'a> LogReader<'a> {
    fn new(client: &'a mut Client, stream: &str, next: ReadFrom) -> Self {
        LogReader {
            client,
            stream: stream.to_owned(),
            next,
            ahead: None,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// Sends the read of the batch from `self.next`.
    fn send_read(&mut self) -> Result<u64, RequestError> {
        let request = LogRequest::Read {
            stream: self.stream.clone(),
            from: self.next,
            max_bytes: BATCH_BYTES,
            max_records: u64::MAX,
            wait_ms: 0,
        };
        let bytes = body::encode(&request).kind(RequestErrorKind::Codec, "zhub.log request")?;
        let timeout = self.client.timeout();
        self.client.send_request_bytes(LOG_SERVICE, &bytes, timeout)
    }

    /// The next batch: the one sent ahead, or one asked for now.
    fn fetch(&mut self) -> Result<Vec<StoredRecord>, RequestError> {
        let id = match self.ahead.take() {
            Some(id) => id,
            None => self.send_read()?,
        };
        let stream = &self.stream;
        let frames = self
            .client
            .wait_reply(id, || format!("read of {stream}: no reply in time"))?;
        let bytes = frames.into_iter().next().unwrap_or_default();
        // Ask for the batch after this one before decoding it, when the broker says up front
        // where it starts (and it is not where this one started: the end of the stream).
        if let Some(next) = peek_next_offset(&bytes) {
            if self.next != ReadFrom::Offset(next) {
                self.next = ReadFrom::Offset(next);
                // A failed send is sent again by the next fetch, which reports it.
                self.ahead = self.send_read().ok();
            }
        }
        match decode_reply(&bytes).kind(RequestErrorKind::Protocol, "zhub.log reply")? {
            LogReply::Records {
                records,
                next_offset,
            } => {
                self.next = ReadFrom::Offset(next_offset);
                Ok(records)
            }
            _ => Err(protocol("unexpected reply to read")),
        }
    }
}

impl Iterator for LogReader<'_> {
    type Item = Result<StoredRecord, RequestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(record) = self.buffer.pop_front() {
            return Some(Ok(record));
        }
        if self.done {
            return None;
        }
        match self.fetch() {
            Ok(records) if records.is_empty() => {
                self.done = true;
                None
            }
            Ok(records) => {
                if self.ahead.is_none() {
                    self.ahead = self.send_read().ok();
                }
                self.buffer.extend(records);
                self.buffer.pop_front().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for LogReader<'_> {
    /// Takes the reply to the read sent ahead, so that it is not left for
    /// [`Client::recv_reply`].
    fn drop(&mut self) {
        if let Some(id) = self.ahead.take() {
            let _ = self.client.wait_reply(id, String::new);
        }
    }
}
