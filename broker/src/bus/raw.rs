//! ZeroMQ messages and sends below the `zmq` crate, for the bus loop: a message that can be
//! sent again after `EAGAIN`, shared between subscribers without copying, and `XPUB_NODROP`.

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

/// A `zmq_msg_t` owned by this module, so that a message whose send failed with `EAGAIN` can
/// be sent again (the `zmq` crate's `send` consumes its `Message`).
pub(super) struct RawMessage(zmq_sys::zmq_msg_t);

impl RawMessage {
    pub(super) fn new() -> Self {
        let mut raw = MaybeUninit::<zmq_sys::zmq_msg_t>::uninit();
        // SAFETY: zmq_msg_init initialises the opaque struct; it cannot fail.
        unsafe {
            zmq_sys::zmq_msg_init(raw.as_mut_ptr());
            RawMessage(raw.assume_init())
        }
    }

    /// Receives the next frame on `socket` into this message, replacing its content.
    pub(super) fn recv(&mut self, socket: *mut c_void, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: `socket` is a live socket used only by this thread; `self.0` is initialised.
        let rc = unsafe { zmq_sys::zmq_msg_recv(&mut self.0, socket, flags as c_int) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Sends this message on `socket`. On success the message is left empty; on failure it is
    /// untouched and can be sent again.
    pub(super) fn send(&mut self, socket: *mut c_void, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: as for `recv`.
        let rc = unsafe { zmq_sys::zmq_msg_send(&mut self.0, socket, flags as c_int) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Makes this message `head` followed by `tail`, in a buffer of its own.
    pub(super) fn fill(&mut self, head: &[u8], tail: &[u8]) -> Result<(), zmq::Error> {
        // SAFETY: `self.0` is initialised; closing it releases the old content, and init_size
        // leaves it initialised (empty) even when it fails.
        unsafe {
            zmq_sys::zmq_msg_close(&mut self.0);
            if zmq_sys::zmq_msg_init_size(&mut self.0, head.len() + tail.len()) == -1 {
                zmq_sys::zmq_msg_init(&mut self.0);
                return Err(last_error());
            }
            let out = zmq_sys::zmq_msg_data(&mut self.0) as *mut u8;
            std::ptr::copy_nonoverlapping(head.as_ptr(), out, head.len());
            std::ptr::copy_nonoverlapping(tail.as_ptr(), out.add(head.len()), tail.len());
        }
        Ok(())
    }

    /// Makes this message share `other`'s content (ZeroMQ counts references; small messages
    /// are copied).
    pub(super) fn share(&mut self, other: &mut RawMessage) -> Result<(), zmq::Error> {
        // SAFETY: both messages are initialised; zmq_msg_copy releases our old content.
        let rc = unsafe { zmq_sys::zmq_msg_copy(&mut self.0, &mut other.0) };
        if rc == -1 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Copies the `User-Id` its connection logged in as into `out`; false when it has none.
    pub(super) fn user_into(&self, out: &mut String) -> bool {
        out.clear();
        // SAFETY: `self.0` is initialised; the property name is a C string; the value, when
        // not null, is a C string owned by the message's metadata, read before any change.
        unsafe {
            let value = zmq_sys::zmq_msg_gets(&self.0, c"User-Id".as_ptr());
            if value.is_null() {
                return false;
            }
            out.push_str(&std::ffi::CStr::from_ptr(value).to_string_lossy());
        }
        true
    }

    pub(super) fn more(&self) -> bool {
        // SAFETY: `self.0` is initialised.
        unsafe { zmq_sys::zmq_msg_more(&self.0) != 0 }
    }

    pub(super) fn data(&mut self) -> &[u8] {
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
pub(super) fn send_small(socket: *mut c_void, bytes: &[u8], flags: i32) -> Result<(), zmq::Error> {
    // SAFETY: `socket` is live and ours; the buffer is valid for the call, which copies it.
    let rc = unsafe { zmq_sys::zmq_send(socket, bytes.as_ptr().cast(), bytes.len(), flags) };
    if rc == -1 {
        return Err(last_error());
    }
    Ok(())
}

/// Switches `XPUB_NODROP` (which the `zmq` crate does not expose) on a socket this thread
/// owns.
pub(super) fn set_nodrop(xpub: *mut c_void, on: bool) -> Result<(), zmq::Error> {
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
