//! [`Pipeline`]: many requests in flight on one client, up to a window the caller chooses,
//! their outcomes handed back in the order the requests were sent.
//!
//! Every pipelined API of the crate ([`crate::KvPipeline`], [`crate::Appender`]) is one of
//! these with a typed face. The broker takes one client's requests in the order it sent them,
//! so requests to one service are also served in that order; replies may come back in any
//! order (from workers with credit, say) and are matched by request id.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use zhub_protocol::body;

use crate::error::{RequestError, RequestErrorKind, WithKind};
use crate::Client;

/// The outcome of one pipelined request: its reply body, or why there is none.
pub type Outcome = Result<Vec<u8>, RequestError>;

/// Requests in flight on one [`Client`] (see [`Client::pipeline`]).
///
/// [`Pipeline::send_bytes`] (or [`Pipeline::send`], MessagePack) sends at once while fewer
/// than the window's requests are in flight, and otherwise first waits for the oldest reply (kept, in order, for
/// [`Pipeline::recv`]). Each request is answered before its timeout (the client's, unless
/// [`Pipeline::timeout`] sets another), so a pipeline never waits forever.
///
/// Dropping a pipeline waits for the requests still in flight and drops their outcomes, so
/// that they are not left for [`Client::recv_reply`].
///
/// ```no_run
/// let mut client = zhub_client::Client::connect("tcp://127.0.0.1:5555")?;
/// let mut pipeline = client.pipeline(64);
/// for i in 0..1000u32 {
///     pipeline.send_bytes("echo", &i.to_be_bytes())?;
/// }
/// while let Some(outcome) = pipeline.recv() {
///     let reply = outcome?;
///     assert_eq!(reply.len(), 4);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pipeline<'a> {
    client: &'a mut Client,
    window: usize,
    timeout: Duration,
    /// Request ids in flight, in the order they were sent.
    sent: VecDeque<u64>,
    /// Outcomes taken to make room in the window and not yet handed out.
    ready: VecDeque<Outcome>,
}

impl Client {
    /// A pipeline on this client keeping up to `window` requests in flight (at least 1).
    pub fn pipeline(&mut self, window: usize) -> Pipeline<'_> {
        let timeout = self.timeout();
        Pipeline {
            client: self,
            window: window.max(1),
            timeout,
            sent: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }
}

impl Pipeline<'_> {
    /// Sets the timeout of the requests sent from now on.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends raw `body` to `service`, first waiting for the oldest reply when the window is
    /// full.
    ///
    /// # Errors
    /// As for [`Client::send_request_bytes`]: a request refused before it left (bad service
    /// name, over the broker's size limit, not taken in time) is not in the pipeline, and
    /// what was sent before it is unaffected.
    pub fn send_bytes(&mut self, service: &str, body: &[u8]) -> Result<(), RequestError> {
        while self.sent.len() >= self.window {
            let outcome = self.wait_oldest();
            self.ready.push_back(outcome);
        }
        let id = self
            .client
            .send_request_bytes(service, body, self.timeout)?;
        self.sent.push_back(id);
        Ok(())
    }

    /// Sends `body`, encoded as MessagePack, to `service` (as [`Pipeline::send_bytes`]).
    ///
    /// # Errors
    /// [`RequestErrorKind::Codec`] when `body` cannot be encoded; as for
    /// [`Pipeline::send_bytes`].
    pub fn send<T: Serialize + ?Sized>(
        &mut self,
        service: &str,
        body: &T,
    ) -> Result<(), RequestError> {
        let bytes = body::encode(body).kind(RequestErrorKind::Codec, "request body")?;
        self.send_bytes(service, &bytes)
    }

    /// As [`Pipeline::recv`], with the reply decoded as `R` (MessagePack).
    pub fn recv_typed<R: DeserializeOwned>(&mut self) -> Option<Result<R, RequestError>> {
        let outcome = self.recv()?;
        Some(
            outcome
                .and_then(|bytes| body::decode(&bytes).kind(RequestErrorKind::Codec, "reply body")),
        )
    }

    /// The outcome of the oldest request not yet handed out, waiting for it; `None` when every
    /// request sent has been handed out.
    pub fn recv(&mut self) -> Option<Outcome> {
        if let Some(outcome) = self.ready.pop_front() {
            return Some(outcome);
        }
        if self.sent.is_empty() {
            return None;
        }
        Some(self.wait_oldest())
    }

    /// Waits for every request sent and returns the outcomes not yet handed out, in the order
    /// the requests were sent.
    pub fn flush(&mut self) -> Vec<Outcome> {
        std::iter::from_fn(|| self.recv()).collect()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// Requests sent whose outcome has not been handed out (answered or not).
    pub fn pending(&self) -> usize {
        self.sent.len() + self.ready.len()
    }

    /// The most requests this pipeline keeps in flight.
    pub fn window(&self) -> usize {
        self.window
    }

    fn wait_oldest(&mut self) -> Outcome {
        let Some(oldest) = self.sent.pop_front() else {
            return Err(RequestError::new(
                RequestErrorKind::BadRequest,
                "no request in flight",
            ));
        };
        let timeout = self.timeout;
        self.client
            .wait_reply(oldest, || {
                format!("pipelined request {oldest}: no reply within {timeout:?}")
            })
            .map(|frames| frames.into_iter().next().unwrap_or_default())
    }
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.sent) {
            let _ = self.client.wait_reply(id, String::new);
        }
    }
}
