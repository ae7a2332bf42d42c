//! The publish/subscribe plane: publishers -> XSUB ==> proxy ==> XPUB -> subscribers.
//!
//! The proxy is a loop of our own rather than `zmq_proxy`, for three reasons:
//! - **Publishers send everything to the broker.** The XSUB subscribes to every topic once,
//!   and subscriptions arriving on the XPUB are *not* forwarded upstream. Filtering therefore
//!   happens only at the XPUB, so a subscription is live as soon as the XPUB has applied it,
//!   and a subscriber can prove that with one probe message (no slow-joiner loss).
//! - **Drops are counted.** The XPUB runs with `XPUB_NODROP`, so a send that would overflow a
//!   subscriber's queue fails with `EAGAIN` instead of vanishing. The proxy then counts a
//!   `slow_subscriber` drop and sends the message once more in lossy mode, so every subscriber
//!   with room still gets it: one slow reader never stalls the others, and the broker's memory
//!   stays bounded by the high-water marks.
//! - **Malformed frames stop here**, counted, instead of reaching every subscriber.
//!
//! Messages move in batches of up to [`BATCH`] per poll, as single frames, without copies.
//! Two more inputs join the loop: the journal tap ([`crate::journal`]) copies messages on
//! journaled prefixes to the storage thread, and the storage thread's republished messages
//! come in on an inproc socket and go out like any other (without being journaled again).

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tracing::{debug, warn};
use zhub_protocol::builtin::{BusDrops, BusStats};
use zhub_protocol::bus;

use crate::journal::JournalTap;

/// Endpoint where the storage thread sends messages to publish again (a PUSH to our PULL).
pub(crate) const REPUBLISH_ENDPOINT: &str = "inproc://republish";

/// Most messages forwarded per poll: large enough to amortise the poll, small enough that
/// subscriptions and shutdown are still seen promptly under a flood.
const BATCH: usize = 1024;

/// Counters the proxy thread publishes for `zhub.stats`, written only by that thread.
#[derive(Debug, Default)]
pub(crate) struct BusCounters {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
    malformed: AtomicU64,
    slow_subscriber: AtomicU64,
    subscriptions: AtomicU64,
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
            },
            subscriptions: self.subscriptions.load(Relaxed),
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
        self.subscriptions.store(c.subscriptions, Relaxed);
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

/// Switches `XPUB_NODROP` on a socket the calling thread owns.
fn set_nodrop(xpub: *mut c_void, on: bool) -> Result<(), zmq::Error> {
    let value: c_int = c_int::from(on);
    // SAFETY: `xpub` is a live XPUB socket of this thread; the option takes an int.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            xpub,
            zmq_sys::ZMQ_XPUB_NODROP as c_int,
            (&value as *const c_int).cast(),
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == -1 {
        return Err(last_error());
    }
    Ok(())
}

/// Whether a frame is a bus message the broker will forward.
fn well_formed(frame: &[u8]) -> bool {
    match bus::topic_of(frame) {
        Ok(topic) => {
            let header = &frame[topic.len() + 1..];
            header.len() >= bus::HEADER_LEN && header[0] == bus::HEADER_VERSION
        }
        Err(_) => false,
    }
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

/// Prepares the two bus sockets (already bound) for [`run`].
pub(crate) fn setup(xsub: &zmq::Socket) -> Result<(), zmq::Error> {
    // Subscribe to everything: every publisher sends all its messages to the broker, and
    // only the XPUB filters (see the module docs).
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
    let mut c = BusStats::default();
    let mut msg = RawMessage::new();
    loop {
        let mut items = [
            xsub.as_poll_item(zmq::POLLIN),
            xpub.as_poll_item(zmq::POLLIN),
            control.as_poll_item(zmq::POLLIN),
            republish.as_poll_item(zmq::POLLIN),
        ];
        match zmq::poll(&mut items, -1) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        if items[2].is_readable() {
            counters.store(&c);
            return Ok(());
        }
        if items[0].is_readable() {
            forward_batch(&mut msg, xsub_raw, xpub_raw, &mut c, Some(&mut tap))?;
        }
        if items[3].is_readable() {
            forward_batch(&mut msg, republish_raw, xpub_raw, &mut c, None)?;
        }
        if items[1].is_readable() {
            read_subscriptions(&xpub, &mut c)?;
        }
        counters.store(&c);
    }
}

/// Forwards up to [`BATCH`] waiting messages from `input` to the XPUB, giving each to the
/// journal `tap` first when there is one.
fn forward_batch(
    msg: &mut RawMessage,
    input: *mut c_void,
    xpub: *mut c_void,
    c: &mut BusStats,
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
            c.dropped.malformed += 1;
            log_sparsely(c.dropped.malformed, "multipart bus message dropped");
            continue;
        }
        let len = msg.data().len() as u64;
        if !well_formed(msg.data()) {
            c.dropped.malformed += 1;
            log_sparsely(c.dropped.malformed, "malformed bus frame dropped");
            continue;
        }
        c.messages_in += 1;
        c.bytes_in += len;
        if let Some(tap) = tap.as_deref_mut() {
            tap.tap(msg.data())?;
        }
        match msg.send(xpub, zmq::DONTWAIT) {
            Ok(()) => {}
            Err(zmq::Error::EAGAIN) => {
                // Some matching subscriber's queue is full: deliver to the others, count it.
                c.dropped.slow_subscriber += 1;
                log_sparsely(
                    c.dropped.slow_subscriber,
                    "slow subscriber missed a message",
                );
                set_nodrop(xpub, false)?;
                let sent = msg.send(xpub, zmq::DONTWAIT);
                set_nodrop(xpub, true)?;
                sent?;
            }
            Err(e) => return Err(e),
        }
        c.messages_out += 1;
        c.bytes_out += len;
    }
    Ok(())
}

/// Reads subscription messages (`0x01` subscribe / `0x00` unsubscribe, then the prefix). The
/// XPUB passes on only the first subscription to a prefix and the last unsubscription, so the
/// running sum is the number of distinct prefixes held.
fn read_subscriptions(xpub: &zmq::Socket, c: &mut BusStats) -> Result<(), zmq::Error> {
    loop {
        let frame = match xpub.recv_bytes(zmq::DONTWAIT) {
            Ok(frame) => frame,
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        };
        match frame.first() {
            Some(1) => c.subscriptions += 1,
            Some(0) => c.subscriptions = c.subscriptions.saturating_sub(1),
            _ => debug!(
                len = frame.len(),
                "unexpected frame on the subscribe side ignored"
            ),
        }
    }
}
