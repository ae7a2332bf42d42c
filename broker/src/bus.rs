//! The publish/subscribe plane: publishers -> XSUB ==> proxy ==> XPUB -> subscribers.
//!
//! The proxy is a loop of our own rather than `zmq_proxy`, for these reasons:
//! - **Publishers send everything to the broker.** The XSUB subscribes to every topic once,
//!   and subscriptions arriving on the XPUB are *not* forwarded upstream. Filtering happens
//!   only here, so a subscription is live as soon as this loop has taken it, and a subscriber
//!   can prove that with one probe message (no slow-joiner loss).
//! - **The broker matches, and every drop is counted.** The XPUB runs in manual mode: every
//!   subscription comes to this loop, which keeps zhub subscribers' prefixes in its own table
//!   ([`crate::interest`]) and sends each matching subscriber an addressed copy
//!   ([`zhub_protocol::delivery`]) with `XPUB_NODROP` on. A full queue refuses exactly that
//!   subscriber's copy: the loop counts it against that subscriber (`slow_subscriber`), goes on
//!   with the others, and reports the count in the next envelope it delivers to it (or in a
//!   notice, if no message follows). ZeroMQ's own fan-out could do neither: once a queue has
//!   overflowed it skips that subscriber silently until it has caught up.
//! - **Plain ZeroMQ subscribers still work.** Their subscriptions are applied to the XPUB as
//!   ZeroMQ would, and bus frames go to them unaddressed, through ZeroMQ's fan-out; a message
//!   a full queue refuses is counted once (`slow_plain_subscriber`, a lower bound for the reason
//!   above) and sent again in lossy mode, so that one slow reader never stalls the others.
//! - **Malformed frames stop here**, counted, instead of reaching every subscriber, and every
//!   subscription is bounded in length (the XPUB cuts off a peer that sends a longer one) and
//!   in number.
//!
//! Messages move in batches of up to [`BATCH`] per poll, addressed copies without copying the
//! message (ZeroMQ counts references). Two more inputs join the loop: the journal tap
//! ([`crate::journal`]) copies messages on journaled prefixes to the storage thread, and the
//! storage thread's republished messages come in on an inproc socket and go out like any other
//! (without being journaled again).

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
use zhub_protocol::builtin::{BusDrops, BusStats};
use zhub_protocol::bus;
use zhub_protocol::delivery::{self, ADDRESS_LEN};

use crate::interest::{Apply, Interest};
use crate::journal::JournalTap;

/// Endpoint where the storage thread sends messages to publish again (a PUSH to our PULL).
pub(crate) const REPUBLISH_ENDPOINT: &str = "inproc://republish";

/// Most messages forwarded, or subscriptions read, per poll: large enough to amortise the
/// poll, small enough that subscriptions and shutdown are still seen promptly under a flood.
const BATCH: usize = 1024;

/// How often the loop tries again to tell subscribers of drops that no delivered message has
/// reported yet.
const NOTICE_INTERVAL: Duration = Duration::from_millis(50);

/// Longest subscription a subscriber may send, with ZeroMQ's subscribe byte, an address and an
/// interest mark: longer ones make the XPUB drop the connection.
const MAX_SUBSCRIPTION: i64 = (1 + ADDRESS_LEN + 1 + bus::MAX_TOPIC_LEN) as i64;

/// Longest bus frame a publisher may send for bodies of up to `max_body` bytes.
pub(crate) fn max_frame(max_body: usize) -> i64 {
    (bus::MAX_TOPIC_LEN + 1 + bus::HEADER_LEN + max_body) as i64
}

/// Counters the proxy thread publishes for `zhub.stats`, written only by that thread.
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    malformed: AtomicU64,
    slow_subscriber: AtomicU64,
    slow_plain_subscriber: AtomicU64,
    subscriptions: AtomicU64,
    subscribers: AtomicU64,
    refused_subscriptions: AtomicU64,
}

impl BusCounters {
    pub(crate) fn snapshot(&self) -> BusStats {
        BusStats {
            messages_in: self.messages_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            dropped: BusDrops {
                malformed: self.malformed.load(Relaxed),
                slow_subscriber: self.slow_subscriber.load(Relaxed),
                slow_plain_subscriber: self.slow_plain_subscriber.load(Relaxed),
            },
            subscriptions: self.subscriptions.load(Relaxed),
            subscribers: self.subscribers.load(Relaxed),
            refused_subscriptions: self.refused_subscriptions.load(Relaxed),
        }
    }

    fn store(&self, c: &BusStats) {
        self.messages_in.store(c.messages_in, Relaxed);
        self.bytes_in.store(c.bytes_in, Relaxed);
        self.messages_out.store(c.messages_out, Relaxed);
        self.bytes_out.store(c.bytes_out, Relaxed);
        self.malformed.store(c.dropped.malformed, Relaxed);
        self.slow_subscriber
            .store(c.dropped.slow_subscriber, Relaxed);
        self.slow_plain_subscriber
            .store(c.dropped.slow_plain_subscriber, Relaxed);
        self.subscriptions.store(c.subscriptions, Relaxed);
        self.subscribers.store(c.subscribers, Relaxed);
        self.refused_subscriptions
            .store(c.refused_subscriptions, Relaxed);
    }
}

/// A `zmq_msg_t` owned by this module, so that a message whose send failed with `EAGAIN` can
/// be sent again (the `zmq` crate's `send` consumes its `Message`).
struct RawMessage(zmq_sys::zmq_msg_t);

impl RawMessage {
    fn new() -> Self {
        let mut raw = MaybeUninit::<zmq_sys::zmq_msg_t>::uninit();
        // SAFETY: zmq_msg_init initialises the opaque struct; it cannot fail.
        unsafe {
            zmq_sys::zmq_msg_init(raw.as_mut_ptr());
            RawMessage(raw.assume_init())
        }
    }

    /// Receives the next frame on `socket` into this message, replacing its content.
    fn recv(&mut self, socket: *mut c_void, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: `socket` is a live socket used only by this thread; `self.0` is initialised.
        let rc = unsafe { zmq_sys::zmq_msg_recv(&mut self.0, socket, flags as c_int) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Sends this message on `socket`. On success the message is left empty; on failure it is
    /// untouched and can be sent again.
    fn send(&mut self, socket: *mut c_void, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: as for `recv`.
        let rc = unsafe { zmq_sys::zmq_msg_send(&mut self.0, socket, flags as c_int) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Makes this message share `other`'s content (ZeroMQ counts references; small messages
    /// are copied).
    fn share(&mut self, other: &mut RawMessage) -> Result<(), zmq::Error> {
        // SAFETY: both messages are initialised; zmq_msg_copy releases our old content.
        let rc = unsafe { zmq_sys::zmq_msg_copy(&mut self.0, &mut other.0) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    fn more(&self) -> bool {
        // SAFETY: `self.0` is initialised.
        unsafe { zmq_sys::zmq_msg_more(&self.0) != 0 }
    }

    fn data(&mut self) -> &[u8] {
        // SAFETY: data and size describe the message's buffer, valid while `self` is borrowed.
        unsafe {
            let len = zmq_sys::zmq_msg_size(&self.0);
            if len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(zmq_sys::zmq_msg_data(&mut self.0) as *const u8, len)
        }
    }
}

impl Drop for RawMessage {
    fn drop(&mut self) {
        // SAFETY: `self.0` is initialised and closed exactly once.
        unsafe {
            zmq_sys::zmq_msg_close(&mut self.0);
        }
    }
}

fn last_error() -> zmq::Error {
    // SAFETY: reads libzmq's thread-local errno.
    zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() })
}

/// Sends a small frame (copied by ZeroMQ) on a socket the calling thread owns.
fn send_small(socket: *mut c_void, bytes: &[u8], flags: i32) -> Result<(), zmq::Error> {
    // SAFETY: `socket` is live and ours; the buffer is valid for the call, which copies it.
    let rc = unsafe { zmq_sys::zmq_send(socket, bytes.as_ptr().cast(), bytes.len(), flags) };
    if rc == -1 {
        return Err(last_error());
    }
    Ok(())
}

/// Sets an integer XPUB option the `zmq` crate does not expose, on a socket this thread owns.
fn set_xpub_flag(xpub: *mut c_void, option: u32, on: bool) -> Result<(), zmq::Error> {
    let value: c_int = c_int::from(on);
    // SAFETY: `xpub` is a live XPUB socket of this thread; the option takes an int.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            xpub,
            option as c_int,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == -1 {
        return Err(last_error());
    }
    Ok(())
}

fn set_nodrop(xpub: *mut c_void, on: bool) -> Result<(), zmq::Error> {
    set_xpub_flag(xpub, zmq_sys::ZMQ_XPUB_NODROP, on)
}

/// The topic's length when a frame is a bus message the broker will forward.
fn topic_len(frame: &[u8]) -> Option<usize> {
    let topic = bus::topic_of(frame).ok()?;
    let header = &frame[topic.len() + 1..];
    (header.len() >= bus::HEADER_LEN && header[0] == bus::HEADER_VERSION).then_some(topic.len())
}

/// Logs the 1st, 2nd, 4th, 8th... occurrence of a per-peer fault, so a flood of bad input is
/// visible without flooding the log.
fn log_sparsely(count: u64, what: &str) {
    if count.is_power_of_two() {
        warn!(total = count, "{what}");
    } else {
        debug!(total = count, "{what}");
    }
}

/// Prepares the two bus sockets (already bound) for [`run`]. `max_frame` bounds what a
/// publisher may send: a longer frame makes the XSUB drop that connection.
pub(crate) fn setup(
    xsub: &zmq::Socket,
    xpub: &mut zmq::Socket,
    max_frame: i64,
) -> Result<(), zmq::Error> {
    xsub.set_maxmsgsize(max_frame)?;
    xpub.set_maxmsgsize(MAX_SUBSCRIPTION)?;
    // Every subscription comes to the loop, which applies it (see the module docs).
    set_xpub_flag(xpub.as_mut_ptr(), zmq_sys::ZMQ_XPUB_MANUAL, true)?;
    // Subscribe to everything: every publisher sends all its messages to the broker, and
    // only the broker filters.
    xsub.send(&[1u8][..], 0)
}

/// The bus thread's sockets.
pub(crate) struct BusSockets {
    /// Publishers' side, bound.
    pub(crate) xsub: zmq::Socket,
    /// Subscribers' side, bound.
    pub(crate) xpub: zmq::Socket,
    /// Messages the storage thread publishes again (PULL, bound at [`REPUBLISH_ENDPOINT`]).
    pub(crate) republish: zmq::Socket,
    /// Copies of journaled messages to the storage thread.
    pub(crate) tap: JournalTap,
}

/// The loop's state besides its sockets.
struct Plane {
    interest: Interest,
    /// Scratch: the subscribers matching the message at hand.
    matching: Vec<u64>,
    /// Subscribers whose drops no envelope has reported yet.
    owed: Vec<u64>,
    last_notice: Instant,
    /// Scratch: the addressed copy being sent.
    copy: RawMessage,
    c: BusStats,
}

/// The proxy loop. Returns when a message arrives on `control`.
pub(crate) fn run(
    sockets: BusSockets,
    control: zmq::Socket,
    counters: Arc<BusCounters>,
) -> Result<(), zmq::Error> {
    let BusSockets {
        mut xsub,
        mut xpub,
        mut republish,
        mut tap,
    } = sockets;
    let xsub_raw = xsub.as_mut_ptr();
    let xpub_raw = xpub.as_mut_ptr();
    let republish_raw = republish.as_mut_ptr();
    set_nodrop(xpub_raw, true)?;
    let mut plane = Plane {
        interest: Interest::default(),
        matching: Vec::new(),
        owed: Vec::new(),
        last_notice: Instant::now(),
        copy: RawMessage::new(),
        c: BusStats::default(),
    };
    let mut msg = RawMessage::new();
    loop {
        let mut items = [
            xsub.as_poll_item(zmq::POLLIN),
            xpub.as_poll_item(zmq::POLLIN),
            control.as_poll_item(zmq::POLLIN),
            republish.as_poll_item(zmq::POLLIN),
        ];
        let timeout = if plane.owed.is_empty() {
            -1
        } else {
            NOTICE_INTERVAL.as_millis() as i64
        };
        match zmq::poll(&mut items, timeout) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        if items[2].is_readable() {
            counters.store(&plane.c);
            return Ok(());
        }
        if items[1].is_readable() {
            plane.read_subscriptions(&xpub)?;
        }
        if items[0].is_readable() {
            plane.forward_batch(&mut msg, xsub_raw, xpub_raw, Some(&mut tap))?;
        }
        if items[3].is_readable() {
            plane.forward_batch(&mut msg, republish_raw, xpub_raw, None)?;
        }
        if !plane.owed.is_empty() && plane.last_notice.elapsed() >= NOTICE_INTERVAL {
            plane.send_notices(xpub_raw)?;
        }
        counters.store(&plane.c);
    }
}

impl Plane {
    /// Forwards up to [`BATCH`] waiting messages from `input`, giving each to the journal
    /// `tap` first when there is one.
    fn forward_batch(
        &mut self,
        msg: &mut RawMessage,
        input: *mut c_void,
        xpub: *mut c_void,
        mut tap: Option<&mut JournalTap>,
    ) -> Result<(), zmq::Error> {
        for _ in 0..BATCH {
            match msg.recv(input, zmq::DONTWAIT) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
                Err(e) => return Err(e),
            }
            if msg.more() {
                // Bus messages are single frames: drop every part of this one.
                while msg.more() {
                    msg.recv(input, 0)?;
                }
                self.c.dropped.malformed += 1;
                log_sparsely(self.c.dropped.malformed, "multipart bus message dropped");
                continue;
            }
            let len = msg.data().len() as u64;
            let Some(topic_len) = topic_len(msg.data()) else {
                self.c.dropped.malformed += 1;
                log_sparsely(self.c.dropped.malformed, "malformed bus frame dropped");
                continue;
            };
            self.c.messages_in += 1;
            self.c.bytes_in += len;
            if let Some(tap) = tap.as_deref_mut() {
                tap.tap(msg.data())?;
            }
            self.interest
                .matching(&msg.data()[..topic_len], &mut self.matching);
            for at in 0..self.matching.len() {
                let id = self.matching[at];
                self.deliver(id, msg, xpub)?;
            }
            if self.interest.has_plain() {
                self.send_plain(msg, xpub)?;
            }
            self.c.messages_out += 1;
            self.c.bytes_out += len;
        }
        Ok(())
    }

    /// Sends subscriber `id` its addressed copy of `msg`, or counts a drop against it when its
    /// queue is full.
    fn deliver(
        &mut self,
        id: u64,
        msg: &mut RawMessage,
        xpub: *mut c_void,
    ) -> Result<(), zmq::Error> {
        let Some(subscriber) = self.interest.subscriber(id) else {
            return Ok(());
        };
        delivery::set_missed(&mut subscriber.envelope, subscriber.missed);
        match send_small(xpub, &subscriber.envelope, zmq::SNDMORE | zmq::DONTWAIT) {
            Ok(()) => {
                subscriber.missed = 0;
                // The envelope went, so the pipe takes the rest of the message.
                self.copy.share(msg)?;
                self.copy.send(xpub, 0)
            }
            Err(zmq::Error::EAGAIN) => {
                if subscriber.missed == 0 {
                    self.owed.push(id);
                }
                subscriber.missed += 1;
                self.c.dropped.slow_subscriber += 1;
                log_sparsely(
                    self.c.dropped.slow_subscriber,
                    "slow subscriber missed a message",
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends `msg` unaddressed to the plain ZeroMQ subscribers whose prefixes match it.
    fn send_plain(&mut self, msg: &mut RawMessage, xpub: *mut c_void) -> Result<(), zmq::Error> {
        match msg.send(xpub, zmq::DONTWAIT) {
            Ok(()) => Ok(()),
            Err(zmq::Error::EAGAIN) => {
                // A plain subscriber's queue is full: deliver to the others, count it.
                self.c.dropped.slow_plain_subscriber += 1;
                log_sparsely(
                    self.c.dropped.slow_plain_subscriber,
                    "slow plain subscriber missed a message",
                );
                set_nodrop(xpub, false)?;
                let sent = msg.send(xpub, zmq::DONTWAIT);
                set_nodrop(xpub, true)?;
                sent
            }
            Err(e) => Err(e),
        }
    }

    /// Tells subscribers of drops that no delivered message has reported, with an envelope
    /// and an empty frame; those whose queues are still full are tried again later.
    fn send_notices(&mut self, xpub: *mut c_void) -> Result<(), zmq::Error> {
        self.last_notice = Instant::now();
        let mut owed = std::mem::take(&mut self.owed);
        let mut failed = None;
        owed.retain(|&id| {
            let Some(subscriber) = self.interest.subscriber(id) else {
                return false;
            };
            if subscriber.missed == 0 || failed.is_some() {
                return subscriber.missed > 0;
            }
            delivery::set_missed(&mut subscriber.envelope, subscriber.missed);
            let sent = send_small(xpub, &subscriber.envelope, zmq::SNDMORE | zmq::DONTWAIT)
                .and_then(|()| send_small(xpub, &[], 0));
            match sent {
                Ok(()) => {
                    subscriber.missed = 0;
                    false
                }
                Err(zmq::Error::EAGAIN) => true,
                Err(e) => {
                    failed = Some(e);
                    true
                }
            }
        });
        self.owed = owed;
        failed.map_or(Ok(()), Err)
    }

    /// Takes up to [`BATCH`] waiting subscriptions (`0x01` subscribe / `0x00` unsubscribe,
    /// then the bytes), applying to the XPUB what the table says, for the pipe each came from.
    fn read_subscriptions(&mut self, xpub: &zmq::Socket) -> Result<(), zmq::Error> {
        for _ in 0..BATCH {
            let frame = match xpub.recv_bytes(zmq::DONTWAIT) {
                Ok(frame) => frame,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                Err(e) => return Err(e),
            };
            let (subscribe, apply) = match frame.split_first() {
                Some((1, data)) => (true, self.interest.subscribe(data)),
                Some((0, data)) => (false, self.interest.unsubscribe(data)),
                _ => {
                    // A message, not a subscription: subscribers have nothing to send.
                    self.c.dropped.malformed += 1;
                    log_sparsely(
                        self.c.dropped.malformed,
                        "message from a subscriber dropped",
                    );
                    continue;
                }
            };
            match apply {
                Apply::Nothing => {}
                Apply::Xpub(prefixes) => {
                    for prefix in prefixes {
                        if subscribe {
                            xpub.set_subscribe(&prefix)?;
                        } else {
                            xpub.set_unsubscribe(&prefix)?;
                        }
                    }
                }
                Apply::Refused(reason) => {
                    self.c.refused_subscriptions += 1;
                    log_sparsely(self.c.refused_subscriptions, reason);
                }
            }
        }
        self.c.subscriptions = self.interest.distinct_prefixes() as u64;
        self.c.subscribers = self.interest.subscribers() as u64;
        Ok(())
    }
}
