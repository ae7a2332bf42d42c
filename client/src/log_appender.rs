//! Pipelined appends: one producer keeps many appends in flight to one stream, each
//! acknowledged once its stream's policy is met (under `always`: after the fsync that covers
//! it), so that a single producer shares each sync among many records instead of waiting a
//! sync per record.
//!
//! Order is kept: the broker takes one client's requests in the order it sent them and the
//! storage thread appends them in that order, so records land in the stream in the order
//! they were given, and acknowledgements are reported in that order too.

use zhub_protocol::body;
use zhub_protocol::log::{LogReply, LogRequest, NewRecord, LOG_SERVICE};

use crate::error::{RequestError, RequestErrorKind, WithKind};
use crate::{Log, Pipeline};

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
///
/// Dropping an appender waits for the appends still in flight and drops their outcomes (call
/// [`Appender::flush`] to see them).
pub struct Appender<'a> {
    pipeline: Pipeline<'a>,
    stream: String,
    /// Offsets acknowledged and not yet taken.
    acked: Vec<u64>,
    failed: bool,
}

impl<'a> Log<'a> {
    /// An appender to `stream` keeping up to `window` appends in flight (at least 1).
    pub fn appender(self, stream: &str, window: usize) -> Appender<'a> {
        Appender {
            pipeline: self.client.pipeline(window),
            stream: stream.to_owned(),
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
        // Room is made here, so that an acknowledgement (or failure) is seen before the
        // next record goes.
        while self.pipeline.in_flight() >= self.pipeline.window() {
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
        let sent = self.pipeline.send_bytes(LOG_SERVICE, &bytes);
        self.failed = sent.is_err();
        sent
    }

    /// Appends in flight.
    pub fn in_flight(&self) -> usize {
        self.pipeline.in_flight()
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
        while self.pipeline.in_flight() > 0 {
            self.wait_oldest()?;
        }
        Ok(self.take_acked())
    }

    /// Waits for the reply to the oldest append in flight and records its offset.
    fn wait_oldest(&mut self) -> Result<(), RequestError> {
        let Some(reply) = self.pipeline.recv() else {
            return Ok(());
        };
        let result = reply.and_then(|bytes| {
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
