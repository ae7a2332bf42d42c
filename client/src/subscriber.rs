//! [`Subscriber`]: messages on a set of topic prefixes, with gap detection and Lamport clock;
//! [`Subscription`]: the same, delivered to a callback on a thread of its own.

use std::collections::VecDeque;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use tracing::debug;
use zhub_protocol::bus::{self, BusHeader, Encoding, PROBE_PREFIX};
use zhub_protocol::delivery::{self, ENVELOPE_LEN};
use zhub_protocol::log::StoredRecord;
use zhub_protocol::{body, ProtocolError};

use crate::error::{RecvError, RecvErrorKind, SubscribeError, SubscribeErrorKind, WithKind};
use crate::options::millis;
use crate::util::{FastMap, LamportClock};

/// One message received from the bus.
///
/// It keeps the frame as received; topic and body are slices of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    frame: Vec<u8>,
    topic_len: usize,
    header: BusHeader,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic())
            .field("header", &self.header)
            .field("body_len", &self.body().len())
            .finish()
    }
}

impl Message {
    /// Decodes a bus frame, as kept by a durable topic's journal.
    ///
    /// # Errors
    /// [`ProtocolError`] when the frame is not a well-formed bus message.
    pub fn from_frame(frame: Vec<u8>) -> Result<Message, ProtocolError> {
        let decoded = bus::decode(&frame)?;
        let header = decoded.header;
        let topic_len = decoded.topic.len();
        Ok(Message {
            frame,
            topic_len,
            header,
        })
    }

    /// The bus message a durable topic's journal holds in `record` (see
    /// [`Log::journal`](crate::Log::journal)): topic, original header and body, as a
    /// subscriber would have got it.
    ///
    /// # Errors
    /// [`ProtocolError`] when the record is not a journaled bus message.
    pub fn from_record(record: &StoredRecord) -> Result<Message, ProtocolError> {
        Self::from_frame(record.value.clone())
    }

    /// The topic it was published on.
    pub fn topic(&self) -> &str {
        // Checked to be UTF-8 when the frame was decoded.
        std::str::from_utf8(&self.frame[..self.topic_len]).unwrap_or_default()
    }

    /// Its header: publisher, sequence number, timestamp, Lamport stamp, body encoding.
    pub fn header(&self) -> &BusHeader {
        &self.header
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.frame[self.topic_len + 1 + bus::HEADER_LEN..]
    }

    /// Takes the raw body.
    pub fn into_body(mut self) -> Vec<u8> {
        self.frame.drain(..self.topic_len + 1 + bus::HEADER_LEN);
        self.frame
    }

    /// Decodes a body published with `publish` (MessagePack) into `T`.
    ///
    /// # Errors
    /// [`ProtocolError::Decode`] when the body is not a MessagePack `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        body::decode(self.body())
    }

    /// The sender's Lamport stamp for this message.
    pub fn lamport(&self) -> u64 {
        self.header.lamport
    }

    /// When the publisher sent it, by the publisher's clock.
    pub fn timestamp(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.header.timestamp_us)
    }

    /// Whether the body is MessagePack (`publish`) rather than raw bytes (`publish_bytes`).
    pub fn is_msgpack(&self) -> bool {
        self.header.encoding == Encoding::MsgPack
    }
}

/// Receives the messages published on the topic prefixes it was created with.
///
/// Made by [`crate::Client::subscribe`], which returns only once the subscription is live end
/// to end: every message published after that is delivered, unless this subscriber falls so
/// far behind that its queue at the broker overflows. The broker counts each message it drops
/// for this subscriber and says so with the next message it delivers (or in a notice soon
/// after, if none follows): see [`Self::missed`]. Dropping it unsubscribes.
pub struct Subscriber {
    socket: zmq::Socket,
    /// The id the broker addresses this subscriber's messages to.
    id: u64,
    /// Where each incoming frame lands first, reused.
    scratch: zmq::Message,
    pending: VecDeque<Message>,
    /// Last sequence number seen, per publisher, then per topic (looked up by `&str`, so
    /// the hot path allocates nothing for it).
    last_seq: FastMap<u64, FastMap<String, u64>>,
    gaps: u64,
    missed: u64,
    malformed: u64,
    received: u64,
    clock: LamportClock,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("received", &self.received)
            .field("gaps", &self.gaps)
            .field("missed", &self.missed)
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

/// What a raw frame turned out to be.
pub(crate) enum Incoming {
    /// A user message, already counted and clock-merged.
    Message(Message),
    /// A probe on `topic` carrying `body`.
    Probe { topic: String, body: Vec<u8> },
    /// Nothing to deliver (malformed, counted).
    Nothing,
}

fn transport(detail: &str, e: zmq::Error) -> RecvError {
    RecvError::with_source(RecvErrorKind::Transport, detail, e)
}

impl Subscriber {
    pub(crate) fn new(socket: zmq::Socket, id: u64, clock: LamportClock) -> Self {
        Subscriber {
            socket,
            id,
            scratch: zmq::Message::new(),
            pending: VecDeque::new(),
            last_seq: FastMap::default(),
            gaps: 0,
            missed: 0,
            malformed: 0,
            received: 0,
            clock,
        }
    }

    pub(crate) fn socket(&self) -> &zmq::Socket {
        &self.socket
    }

    /// Keeps a message that arrived while the subscription was being confirmed.
    pub(crate) fn hold(&mut self, message: Message) {
        self.pending.push_back(message);
    }

    /// Takes the next message if one is waiting: `Ok(None)` when none is.
    ///
    /// Each comes addressed to this subscriber (see [`zhub_protocol::delivery`]): an envelope,
    /// which carries the count of messages the broker dropped for it since the last one, then
    /// the bus frame, in the same frame or the next; an envelope alone only reports drops.
    pub(crate) fn take(&mut self) -> Result<Option<Incoming>, zmq::Error> {
        match self.socket.recv(&mut self.scratch, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        }
        let envelope = delivery::decode_envelope(&self.scratch);
        let frame = if self.scratch.get_more() {
            let frame = self.socket.recv_bytes(0)?;
            while self.socket.get_rcvmore()? {
                self.socket.recv_bytes(0)?;
            }
            frame
        } else {
            self.scratch
                .get(ENVELOPE_LEN..)
                .unwrap_or_default()
                .to_vec()
        };
        match envelope {
            Ok(e) if e.subscriber == self.id => self.missed += e.missed,
            _ => {
                self.malformed += 1;
                debug!(
                    len = self.scratch.len(),
                    "frame without this subscriber's envelope ignored"
                );
                return Ok(Some(Incoming::Nothing));
            }
        }
        if frame.is_empty() {
            return Ok(Some(Incoming::Nothing));
        }
        Ok(Some(self.classify(frame)))
    }

    /// Decodes one bus frame: counts malformed ones, separates probes, and for user messages
    /// checks the sequence and merges the Lamport clock.
    fn classify(&mut self, frame: Vec<u8>) -> Incoming {
        let decoded = match bus::decode(&frame) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.malformed += 1;
                debug!(error = %e, "malformed bus message ignored");
                return Incoming::Nothing;
            }
        };
        if decoded.topic.starts_with(PROBE_PREFIX) {
            return Incoming::Probe {
                topic: decoded.topic.to_owned(),
                body: decoded.body.to_vec(),
            };
        }
        let header = decoded.header;
        let topics = self.last_seq.entry(header.publisher).or_default();
        match topics.get_mut(decoded.topic) {
            Some(last) => {
                if header.seq > *last + 1 {
                    self.gaps += header.seq - *last - 1;
                }
                *last = header.seq.max(*last);
            }
            None => {
                // The first message seen from this publisher on this topic: earlier ones were
                // published before we subscribed, so they are not gaps.
                topics.insert(decoded.topic.to_owned(), header.seq);
            }
        }
        let topic_len = decoded.topic.len();
        self.clock.observe(header.lamport);
        self.received += 1;
        Incoming::Message(Message {
            frame,
            topic_len,
            header,
        })
    }

    /// Waits for the next message, without limit.
    ///
    /// # Errors
    /// [`RecvErrorKind::Transport`] when the socket fails.
    pub fn recv(&mut self) -> Result<Message, RecvError> {
        loop {
            if let Some(message) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(message);
            }
        }
    }

    /// Waits up to `timeout` for the next message; `Ok(None)` when none came.
    ///
    /// # Errors
    /// [`RecvErrorKind::Transport`] when the socket fails.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, RecvError> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(Some(message));
        }
        // The clock is read only once the queue is empty: at full speed most calls find a
        // message waiting and return without a system call for the time.
        let mut deadline = None;
        loop {
            match self.take() {
                Ok(Some(Incoming::Message(message))) => return Ok(Some(message)),
                Ok(Some(Incoming::Probe { .. } | Incoming::Nothing)) => continue,
                Ok(None) => {}
                Err(e) => return Err(transport("recv failed", e)),
            }
            let now = Instant::now();
            let until = *deadline.get_or_insert(now + timeout);
            let left = until.saturating_duration_since(now);
            if left.is_zero() {
                return Ok(None);
            }
            match self
                .socket
                .poll(zmq::POLLIN, i64::from(millis(left).max(1)))
            {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(transport("poll failed", e)),
            }
        }
    }

    /// Returns a message if one is already here, without waiting.
    ///
    /// # Errors
    /// [`RecvErrorKind::Transport`] when the socket fails.
    pub fn try_recv(&mut self) -> Result<Option<Message>, RecvError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// Blocking iterator over messages; it ends only if the socket fails (the error is the
    /// last item).
    pub fn iter(&mut self) -> Messages<'_> {
        Messages {
            subscriber: self,
            failed: false,
        }
    }

    /// Messages found missing so far: holes in a publisher's sequence on a topic, which are
    /// messages dropped on the way (this subscriber's queue at the broker overflowed). A hole
    /// shows only once a later message on that topic from that publisher arrives; see
    /// [`Self::missed`] for the broker's own count.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Messages the broker dropped for this subscriber so far because its queue there was
    /// full, as the broker reported them: with the next message delivered, or in a notice
    /// about 50 ms later when no message follows. Counts every lost message, on any topic.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Messages received and delivered so far (probes excluded).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Frames that were not valid bus messages, ignored.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The Lamport clock this subscriber shares with its client.
    pub fn lamport(&self) -> u64 {
        self.clock.get()
    }
}

/// Iterator returned by [`Subscriber::iter`].
pub struct Messages<'a> {
    subscriber: &'a mut Subscriber,
    failed: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<Message, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.subscriber.recv();
        self.failed = next.is_err();
        Some(next)
    }
}

/// A callback subscription running on its own thread; made by
/// [`crate::Client::subscribe_with`]. Dropping it, or [`Subscription::unregister`], stops the
/// thread and unsubscribes.
pub struct Subscription {
    control: Option<zmq::Socket>,
    thread: Option<JoinHandle<Subscriber>>,
}

impl Subscription {
    pub(crate) fn spawn<F>(
        context: &zmq::Context,
        mut subscriber: Subscriber,
        mut callback: F,
    ) -> Result<Self, SubscribeError>
    where
        F: FnMut(Message) + Send + 'static,
    {
        const SETUP: &str = "cannot set up the callback thread";
        let endpoint = format!(
            "inproc://zhub-subscription-{:016x}",
            zhub_protocol::ids::random_u64()
        );
        let stop_rx = context
            .socket(zmq::PAIR)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        stop_rx
            .set_linger(0)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        stop_rx
            .bind(&endpoint)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        let stop_tx = context
            .socket(zmq::PAIR)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        stop_tx
            .set_linger(0)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        stop_tx
            .connect(&endpoint)
            .kind(SubscribeErrorKind::Transport, SETUP)?;
        let thread = std::thread::Builder::new()
            .name("zhub-subscription".to_owned())
            .spawn(move || {
                loop {
                    while let Ok(Some(message)) = subscriber.try_recv() {
                        callback(message);
                    }
                    let mut items = [
                        subscriber.socket().as_poll_item(zmq::POLLIN),
                        stop_rx.as_poll_item(zmq::POLLIN),
                    ];
                    match zmq::poll(&mut items, -1) {
                        Ok(_) | Err(zmq::Error::EINTR) => {}
                        Err(_) => break,
                    }
                    if items[1].is_readable() {
                        break;
                    }
                }
                subscriber
            })
            .kind(
                SubscribeErrorKind::Transport,
                "cannot start the callback thread",
            )?;
        Ok(Subscription {
            control: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stops delivering, joins the callback thread and unsubscribes. Returns the subscriber's
    /// counters as they ended (`gaps`, `received`).
    pub fn unregister(mut self) -> Option<Subscriber> {
        self.stop()
    }

    fn stop(&mut self) -> Option<Subscriber> {
        if let Some(control) = self.control.take() {
            let _ = control.send(&b"stop"[..], 0);
        }
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop();
    }
}
