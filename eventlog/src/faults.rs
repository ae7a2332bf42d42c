//! The segment files' writes and syncs, through one place so that tests can make them fail
//! as a full or failing disk does: with the crate's own tests, or with the feature
//! `fault-injection` for the tests of crates built on it. Without either, the wrappers are
//! the plain calls.
//!
//! Failures are set per thread: the engine is owned by one thread, and tests running in
//! parallel on other threads are not touched.

use std::fs::File;
use std::io::{self, Write};

/// `ENOSPC` on Linux: a write that fails here says what a full disk says.
#[cfg(any(test, feature = "fault-injection"))]
const ENOSPC: i32 = 28;
/// `EIO` on Linux: what a failed `fsync` says.
#[cfg(any(test, feature = "fault-injection"))]
const EIO: i32 = 5;

#[cfg(any(test, feature = "fault-injection"))]
mod plan {
    use std::cell::Cell;

    thread_local! {
        /// Bytes the thread may still write before writes fail (`None`: no limit).
        pub(super) static WRITE_BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
        /// `sync_data` calls still to fail.
        pub(super) static SYNC_FAILURES: Cell<u32> = const { Cell::new(0) };
    }
}

/// Lets the calling thread write `bytes` more bytes to segment files; the write that goes
/// past them writes the part that fits, as a filling disk does, then fails with `ENOSPC`, and
/// so does every write after it until [`clear`].
#[cfg(any(test, feature = "fault-injection"))]
pub fn fail_writes_after(bytes: u64) {
    plan::WRITE_BUDGET.with(|b| b.set(Some(bytes)));
}

/// Makes the calling thread's next `n` syncs of segment files fail with `EIO`.
#[cfg(any(test, feature = "fault-injection"))]
pub fn fail_syncs(n: u32) {
    plan::SYNC_FAILURES.with(|s| s.set(n));
}

/// Ends every failure set on the calling thread: the disk has room again.
#[cfg(any(test, feature = "fault-injection"))]
pub fn clear() {
    plan::WRITE_BUDGET.with(|b| b.set(None));
    plan::SYNC_FAILURES.with(|s| s.set(0));
}

/// `file.write_all(buf)`, or what a full disk makes of it.
pub(crate) fn write_all(file: &mut File, buf: &[u8]) -> io::Result<()> {
    #[cfg(any(test, feature = "fault-injection"))]
    if let Some(budget) = plan::WRITE_BUDGET.with(|b| b.get()) {
        let fits = usize::try_from(budget).unwrap_or(usize::MAX).min(buf.len());
        file.write_all(&buf[..fits])?;
        plan::WRITE_BUDGET.with(|b| b.set(Some(budget - fits as u64)));
        if fits < buf.len() {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        return Ok(());
    }
    file.write_all(buf)
}

/// `file.sync_data()`, or a failed fsync.
pub(crate) fn sync_data(file: &File) -> io::Result<()> {
    #[cfg(any(test, feature = "fault-injection"))]
    if plan::SYNC_FAILURES.with(|s| s.get()) > 0 {
        plan::SYNC_FAILURES.with(|s| s.set(s.get() - 1));
        return Err(io::Error::from_raw_os_error(EIO));
    }
    file.sync_data()
}
