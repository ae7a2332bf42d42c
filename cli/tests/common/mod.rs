//! Helpers shared by the CLI's integration tests.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `body` on its own thread and fails the test if it has not finished within `limit`.
pub fn deadline(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test exceeded its deadline of {limit:?}"),
    }
}
