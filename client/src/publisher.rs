//! The client's publishing socket and its per-topic sequence numbers.
//!
//! The socket is an XPUB rather than a PUB: the broker's XSUB subscribes to everything as
//! soon as it sees a publisher, and an XPUB can *read* that subscription. Until it arrives a
//! publisher's messages would be dropped locally (the publisher-side slow joiner), so
//! [`Publisher::connect`] waits for it. `XPUB_NODROP` then makes a full queue push back on the
//! caller (up to the client's timeout) instead of dropping silently.

use std::time::Instant;

use zhub_protocol::bus::{self, BusHeader, Encoding};

use crate::error::{refused_name, PublishError, PublishErrorKind, WithKind};
use crate::options::{millis, ClientOptions};
use crate::util::{now_micros, FastMap, LamportClock};

/// Publishes between two drains of the XPUB's incoming subscription messages (one arrives per
/// reconnect to the broker; they must be read or they accumulate).
const DRAIN_EVERY: u32 = 1024;

pub(crate) struct Publisher {
    socket: zmq::Socket,
    id: u64,
    seqs: FastMap<String, u64>,
    since_drain: u32,
    /// Largest body the broker takes (`0`: not said); a larger one would only get this
    /// publisher's connection cut.
    max_body: u64,
}

impl Publisher {
    /// Connects to the broker's publish endpoint and waits until the broker subscribes.
    pub(crate) fn connect(
        context: &zmq::Context,
        endpoint: &str,
        id: u64,
        max_body: u64,
        options: &ClientOptions,
    ) -> Result<Self, PublishError> {
        const SETUP: &str = "cannot set up the publish socket";
        let mut socket = context
            .socket(zmq::XPUB)
            .kind(PublishErrorKind::Transport, SETUP)?;
        socket
            .set_linger(millis(options.linger))
            .kind(PublishErrorKind::Transport, SETUP)?;
        socket
            .set_sndhwm(options.publish_hwm)
            .kind(PublishErrorKind::Transport, SETUP)?;
        socket
            .set_sndtimeo(millis(options.timeout))
            .kind(PublishErrorKind::Transport, SETUP)?;
        set_nodrop(&mut socket).kind(PublishErrorKind::Transport, SETUP)?;
        options
            .secure(&socket)
            .kind(PublishErrorKind::Transport, SETUP)?;
        socket
            .connect(endpoint)
            .kind(PublishErrorKind::Transport, SETUP)?;
        let deadline = Instant::now() + options.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PublishError::new(
                    PublishErrorKind::TimedOut,
                    format!(
                        "publish endpoint {endpoint} did not answer within {:?}",
                        options.timeout
                    ),
                ));
            }
            let ready = socket
                .poll(zmq::POLLIN, i64::from(millis(left).max(1)))
                .kind(PublishErrorKind::Transport, "poll failed")?;
            if ready > 0 {
                let frame = socket
                    .recv_bytes(zmq::DONTWAIT)
                    .kind(PublishErrorKind::Transport, "recv failed")?;
                if frame.first() == Some(&1) {
                    break;
                }
            }
        }
        Ok(Publisher {
            socket,
            id,
            seqs: FastMap::default(),
            since_drain: 0,
            max_body,
        })
    }

    /// Publishes one message on a user topic, stamping sequence number, time and clock.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        encoding: Encoding,
        body: &[u8],
        clock: &LamportClock,
    ) -> Result<(), PublishError> {
        bus::check_topic(topic).map_err(|e| refused_name(PublishErrorKind::InvalidTopic, e))?;
        if bus::is_reserved(topic) {
            return Err(PublishError::new(
                PublishErrorKind::InvalidTopic,
                format!("{topic:?}: topics starting with '$' are reserved for zhub"),
            ));
        }
        self.publish_sequenced(topic, encoding, body, clock)
    }

    /// Publishes on a topic zhub itself owns (process groups' traffic), numbered and stamped
    /// like a user message so that subscribers see gaps.
    pub(crate) fn publish_sequenced(
        &mut self,
        topic: &str,
        encoding: Encoding,
        body: &[u8],
        clock: &LamportClock,
    ) -> Result<(), PublishError> {
        let seq = match self.seqs.get_mut(topic) {
            Some(seq) => {
                *seq += 1;
                *seq
            }
            None => {
                self.seqs.insert(topic.to_owned(), 1);
                1
            }
        };
        let header = BusHeader {
            publisher: self.id,
            seq,
            timestamp_us: now_micros(),
            lamport: clock.tick(),
            encoding,
        };
        self.send(topic, &header, body)
    }

    /// Sends zhub's own traffic (subscription probes) on a reserved topic. It takes no
    /// sequence number and leaves the Lamport clock alone.
    pub(crate) fn publish_system(
        &mut self,
        topic: &str,
        body: &[u8],
        clock: &LamportClock,
    ) -> Result<(), PublishError> {
        let header = BusHeader {
            publisher: self.id,
            seq: 0,
            timestamp_us: now_micros(),
            lamport: clock.get(),
            encoding: Encoding::Raw,
        };
        self.send(topic, &header, body)
    }

    fn send(&mut self, topic: &str, header: &BusHeader, body: &[u8]) -> Result<(), PublishError> {
        if self.max_body > 0 && body.len() as u64 > self.max_body {
            return Err(PublishError::new(
                PublishErrorKind::TooLarge,
                format!(
                    "a body of {} bytes on {topic:?}: the broker takes at most {}",
                    body.len(),
                    self.max_body
                ),
            ));
        }
        let mut frame = zmq::Message::with_size(bus::encoded_len(topic, body));
        bus::write(&mut frame, topic, header, body);
        match self.socket.send(frame, 0) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                return Err(PublishError::new(
                    PublishErrorKind::TimedOut,
                    "the broker's queue stayed full for the whole timeout",
                ))
            }
            Err(e) => {
                return Err(PublishError::with_source(
                    PublishErrorKind::Transport,
                    "send failed",
                    e,
                ))
            }
        }
        self.since_drain += 1;
        if self.since_drain >= DRAIN_EVERY {
            self.since_drain = 0;
            while self.socket.recv_bytes(zmq::DONTWAIT).is_ok() {}
        }
        Ok(())
    }
}

/// Sets `ZMQ_XPUB_NODROP`, which the `zmq` crate has no setter for.
fn set_nodrop(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let value: std::os::raw::c_int = 1;
    // SAFETY: the socket is live and owned by this thread; the option takes a C int that
    // outlives the call.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as std::os::raw::c_int,
            (&value as *const std::os::raw::c_int).cast(),
            std::mem::size_of::<std::os::raw::c_int>(),
        )
    };
    if rc == -1 {
        // SAFETY: reads libzmq's thread-local errno.
        return Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }));
    }
    Ok(())
}
