//! [`Log`]: the event log through the broker (`zhub.log`).

use std::collections::VecDeque;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use zhub_protocol::body;
pub use zhub_protocol::log::{FsyncPolicy, NewRecord, ReadFrom, StreamSettings, StreamSummary};
use zhub_protocol::log::{LogReply, LogRequest, StoredRecord, LOG_SERVICE};
use zhub_protocol::ProtocolError;

use crate::error::{RequestError, RequestErrorKind};
use crate::{Client, RequestOptions};

/// Bytes fetched per batch by [`LogReader`].
const BATCH_BYTES: u64 = 1 << 20;

/// One record read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its offset in the stream.
    pub offset: u64,
    /// When it was appended (or the time its appender gave), microseconds since the epoch.
    pub timestamp_us: i64,
    /// Its key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
}

impl LogRecord {
    /// Decodes a value appended with [`Log::append`] (MessagePack).
    ///
    /// # Errors
    /// [`ProtocolError::Decode`] when the value is not a MessagePack `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        body::decode(&self.value)
    }
}

impl From<StoredRecord> for LogRecord {
    fn from(r: StoredRecord) -> Self {
        LogRecord {
            offset: r.offset,
            timestamp_us: r.timestamp_us,
            key: r.key,
            value: r.value,
        }
    }
}

/// The event log, reached through a [`Client`] (see [`Client::log`]).
pub struct Log<'a> {
    client: &'a mut Client,
}

fn protocol(detail: &str) -> RequestError {
    RequestError::new(RequestErrorKind::Protocol, detail)
}

impl<'a> Log<'a> {
    pub(crate) fn new(client: &'a mut Client) -> Self {
        Log { client }
    }

    fn call(&mut self, request: &LogRequest, timeout: Duration) -> Result<LogReply, RequestError> {
        let bytes = body::encode(request)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Codec, "log request", e))?;
        let reply = self.client.request_bytes_with(
            LOG_SERVICE,
            &bytes,
            &RequestOptions::new().timeout(timeout),
        )?;
        body::decode(&reply)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Protocol, "log reply", e))
    }

    fn timeout(&self) -> Duration {
        self.client.timeout()
    }

    /// Creates a stream.
    ///
    /// # Errors
    /// [`RequestErrorKind::Rejected`] when it exists or the name is invalid (1 to 200 of
    /// `A-Z a-z 0-9 . _ -`, not starting with `.`).
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
        let value = body::encode(event)
            .map_err(|e| RequestError::with_source(RequestErrorKind::Codec, "event", e))?;
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
                    .map_err(|e| RequestError::with_source(RequestErrorKind::Codec, "event", e))
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
    ) -> Result<(Vec<LogRecord>, u64), RequestError> {
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
            } => Ok((
                records.into_iter().map(LogRecord::from).collect(),
                next_offset,
            )),
            _ => Err(protocol("unexpected reply to read")),
        }
    }

    /// Reads the stream from offset `from` to its current end, fetching in batches.
    pub fn read(self, stream: &str, from: u64) -> LogReader<'a> {
        LogReader {
            client: self.client,
            stream: stream.to_owned(),
            next: ReadFrom::Offset(from),
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// Reads the stream from the first record stamped at or after `timestamp_us`.
    pub fn read_from_time(self, stream: &str, timestamp_us: i64) -> LogReader<'a> {
        LogReader {
            client: self.client,
            stream: stream.to_owned(),
            next: ReadFrom::Time(timestamp_us),
            buffer: VecDeque::new(),
            done: false,
        }
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

    /// Deletes a stream.
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
}

/// Iterator over a stream's records up to its end, fetching in batches; see [`Log::read`].
pub struct LogReader<'a> {
    client: &'a mut Client,
    stream: String,
    next: ReadFrom,
    buffer: VecDeque<LogRecord>,
    done: bool,
}

impl Iterator for LogReader<'_> {
    type Item = Result<LogRecord, RequestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(record) = self.buffer.pop_front() {
            return Some(Ok(record));
        }
        if self.done {
            return None;
        }
        let stream = self.stream.clone();
        match Log::new(self.client).read_batch(&stream, self.next, BATCH_BYTES, Duration::ZERO) {
            Ok((records, next)) => {
                self.next = ReadFrom::Offset(next);
                if records.is_empty() {
                    self.done = true;
                    return None;
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
