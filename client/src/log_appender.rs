//! Pipelined appends: one producer keeps many appends in flight to one stream, each
//! acknowledged once its stream's policy is met (under `always`: after the fsync that covers
//! it), so that a single producer shares each sync among many records instead of waiting a
//! sync per record.
//!
//! Order is kept: the broker takes one client's requests in the order it sent them and the
//! storage thread appends them in that order, so records land in the stream in the order
//! they were given, and acknowledgements are reported in that order too.

use std::collections::VecDeque;
use std::time::Duration;

use zhub_protocol::body;
use zhub_protocol::log::{LogReply, LogRequest, NewRecord, LOG_SERVICE};

use crate::error::{RequestError, RequestErrorKind, WithKind};
use crate::{Client, Log};

/// Appends in flight from one producer to one stream; made by [`Log::appender`].
///
/// [`Appender::append_bytes`] sends at once while fewer than the window's appends are
/// unacknowledged, and otherwise first waits for the oldest acknowledgement.
/// [`Appender::flush`] waits for every one. Acknowledged offsets are handed out in the order
/// the records were given.
///
/// When an append fails (a record over the limit, the stream deleted, a sync that failed)
/// the failure is returned by the call that meets it, and the appender refuses further
/// appends: records sent after the failed one may have been written, so the caller decides
/// what to do from the offsets it was given.
pub struct Appender<'a> {
    client: &'a mut Client,
    stream: String,
    window: usize,
    timeout: Duration,
    /// Request ids in flight, in the order the records were given.
    sent: VecDeque<u64>,
    /// Offsets acknowledged and not yet taken.
    acked: Vec<u64>,
    failed: bool,
}

impl<'a> Log<'a> {
    /// An appender to `stream` keeping up to `window` appends in flight (at least 1).
    pub fn appender(self, stream: &str, window: usize) -> Appender<'a> {
        let timeout = self.client.timeout();
        Appender {
            client: self.client,
            stream: stream.to_owned(),
            window: window.max(1),
            timeout,
            sent: VecDeque::new(),
            acked: Vec::new(),
            failed: false,
        }
    }
}

impl Appender<'_> {
    /// Sends one record (raw bytes, optional key). Waits first for the oldest
    /// acknowledgement when the window is full.
    ///
    /// # Errors
    /// The failure of an earlier append met while waiting, or of this send; after one, every
    /// call fails with [`RequestErrorKind::Rejected`].
    pub fn append_bytes(&mut self, key: Option<&[u8]>, value: &[u8]) -> Result<(), RequestError> {
        if self.failed {
            return Err(RequestError::new(
                RequestErrorKind::Rejected,
                "an earlier append failed; this appender takes no more",
            ));
        }
        while self.sent.len() >= self.window {
            self.wait_oldest()?;
        }
        let request = LogRequest::Append {
            stream: self.stream.clone(),
            records: vec![NewRecord {
                key: key.map(<[u8]>::to_vec),
                value: value.to_vec(),
                timestamp_us: None,
            }],
        };
        let bytes = body::encode(&request).kind(RequestErrorKind::Codec, "append request")?;
        match self
            .client
            .send_request_bytes(LOG_SERVICE, &bytes, self.timeout)
        {
            Ok(id) => {
                self.sent.push_back(id);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Appends in flight.
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// Offsets acknowledged since the last call, in the order their records were given.
    pub fn take_acked(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.acked)
    }

    /// Waits until every append sent is acknowledged; returns the offsets acknowledged since
    /// the last [`Appender::take_acked`] or `flush`, in order.
    ///
    /// # Errors
    /// The first failure among them (the offsets before it are kept for
    /// [`Appender::take_acked`]).
    pub fn flush(&mut self) -> Result<Vec<u64>, RequestError> {
        while !self.sent.is_empty() {
            self.wait_oldest()?;
        }
        Ok(self.take_acked())
    }

    /// Waits for the reply to the oldest append in flight and records its offset.
    fn wait_oldest(&mut self) -> Result<(), RequestError> {
        let Some(&oldest) = self.sent.front() else {
            return Ok(());
        };
        let stream = &self.stream;
        let reply = self
            .client
            .wait_reply(oldest, || format!("append to {stream}: no reply in time"));
        self.sent.pop_front();
        let result = reply.and_then(|frames| {
            let bytes = frames.into_iter().next().unwrap_or_default();
            match body::decode::<LogReply>(&bytes)
                .kind(RequestErrorKind::Protocol, "append reply")?
            {
                LogReply::Appended { first_offset, .. } => Ok(first_offset),
                _ => Err(RequestError::new(
                    RequestErrorKind::Protocol,
                    "unexpected reply to append",
                )),
            }
        });
        match result {
            Ok(offset) => {
                self.acked.push(offset);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

impl Drop for Appender<'_> {
    /// Waits for the appends still in flight, so that their replies are not left for the
    /// client's [`Client::recv_reply`]; their outcomes are dropped (call [`Appender::flush`]
    /// to see them).
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.sent) {
            let _ = self.client.wait_reply(id, String::new);
        }
    }
}
