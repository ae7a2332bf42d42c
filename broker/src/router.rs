//! The request path: one thread, one poll loop over the main ROUTER socket.
//!
//! It reads `[identity, "", signature, ...]`, decodes with `zhub-protocol`, answers built-in
//! services itself and replies through the same socket. A malformed message is counted,
//! logged, answered with `400 Bad Request` where the request id can be read, and dropped; it
//! never ends the loop.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, warn};
use zhub_protocol::builtin::{BrokerInfo, RequestStats, Stats, INFO_SERVICE, STATS_SERVICE};
use zhub_protocol::request::{split_envelope, REQUEST_COMMAND, SIGNATURE};
use zhub_protocol::{body, Reply, Request, Status};

use crate::bus::BusCounters;

/// Most messages handled per poll, so that shutdown is seen promptly under load.
const BATCH: usize = 256;

/// State of the request thread. Plain fields: only this thread touches them.
pub(crate) struct Router {
    socket: zmq::Socket,
    info: BrokerInfo,
    bus: Arc<BusCounters>,
    started: Instant,
    stats: RequestStats,
}

impl Router {
    pub(crate) fn new(socket: zmq::Socket, info: BrokerInfo, bus: Arc<BusCounters>) -> Self {
        Router {
            socket,
            info,
            bus,
            started: Instant::now(),
            stats: RequestStats::default(),
        }
    }

    /// Serves until a message arrives on `control`.
    pub(crate) fn run(mut self, control: zmq::Socket) -> Result<(), zmq::Error> {
        loop {
            let mut items = [
                self.socket.as_poll_item(zmq::POLLIN),
                control.as_poll_item(zmq::POLLIN),
            ];
            match zmq::poll(&mut items, -1) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
            if items[1].is_readable() {
                return Ok(());
            }
            if items[0].is_readable() {
                for _ in 0..BATCH {
                    match self.socket.recv_multipart(zmq::DONTWAIT) {
                        Ok(frames) => self.dispatch(&frames),
                        Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    fn dispatch(&mut self, frames: &[Vec<u8>]) {
        let Ok((identity, rest)) = split_envelope(frames) else {
            self.malformed(None, "message without envelope dropped");
            return;
        };
        match rest.first() {
            Some(signature) if signature == SIGNATURE => match Request::decode(rest) {
                Ok(request) => {
                    self.stats.received += 1;
                    let reply = self.answer(&request);
                    self.send(identity, &reply);
                }
                Err(e) => {
                    self.malformed(Some(identity), "malformed request dropped");
                    // Answer a REQUEST whose id can still be read, so the client is not left
                    // waiting for its timeout. Other commands' layouts are not ours to guess.
                    let is_request = rest.get(1).map(Vec::as_slice) == Some(&[REQUEST_COMMAND][..]);
                    let id = rest
                        .get(2)
                        .and_then(|f| <[u8; 8]>::try_from(f.as_slice()).ok());
                    if let (true, Some(id)) = (is_request, id) {
                        let reply =
                            Reply::error(u64::from_be_bytes(id), Status::BadRequest, e.to_string());
                        self.send(identity, &reply);
                    }
                }
            },
            _ => self.malformed(Some(identity), "message with unknown protocol dropped"),
        }
    }

    fn answer(&self, request: &Request) -> Reply {
        let encoded = match request.service.as_str() {
            INFO_SERVICE => body::encode(&self.info),
            STATS_SERVICE => body::encode(&self.stats()),
            other => {
                return Reply::error(
                    request.id,
                    Status::NoService,
                    format!("no such service: {other}"),
                )
            }
        };
        match encoded {
            Ok(bytes) => Reply::ok(request.id, vec![bytes]),
            Err(e) => Reply::error(request.id, Status::Internal, e.to_string()),
        }
    }

    fn stats(&self) -> Stats {
        let (rss_bytes, peak_rss_bytes) = crate::memory::rss();
        Stats {
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            bus: self.bus.snapshot(),
            requests: self.stats.clone(),
            rss_bytes,
            peak_rss_bytes,
        }
    }

    fn send(&mut self, identity: &[u8], reply: &Reply) {
        let mut frames = Vec::with_capacity(2 + 4 + reply.body.len());
        frames.push(identity.to_vec());
        frames.push(Vec::new());
        frames.extend(reply.encode());
        // DONTWAIT: a client that stopped reading must not stall the loop. With
        // ROUTER_MANDATORY a gone client is EHOSTUNREACH, a full one EAGAIN.
        match self.socket.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => self.stats.replied += 1,
            Err(e @ (zmq::Error::EHOSTUNREACH | zmq::Error::EAGAIN)) => {
                self.stats.unroutable += 1;
                debug!(error = %e, "reply dropped: client gone or not reading");
            }
            Err(e) => warn!(error = %e, "reply send failed"),
        }
    }

    fn malformed(&mut self, identity: Option<&[u8]>, what: &str) {
        self.stats.malformed += 1;
        let peer = identity.map(hex).unwrap_or_default();
        if self.stats.malformed.is_power_of_two() {
            warn!(peer = %peer, total = self.stats.malformed, "{what}");
        } else {
            debug!(peer = %peer, total = self.stats.malformed, "{what}");
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
