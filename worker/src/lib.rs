//! zhub-worker: serve a named service through a zhub broker.
//!
//! ```no_run
//! // A worker for the `print` service: print what comes, answer who served it.
//! let worker = zhub_worker::Worker::connect("tcp://127.0.0.1:5555", "print")?;
//! worker.run(|body| {
//!     println!("{}", String::from_utf8_lossy(body));
//!     b"printed".to_vec()
//! })?;
//! # Ok::<(), zhub_worker::WorkerError>(())
//! ```
//!
//! Workers speak Majordomo 7/MDP (`MDPW01`), so a zhub broker also serves workers written
//! in other languages, and these workers serve any MDP broker.
//!
//! [`Worker::run`] serves on the calling thread with the least latency, heartbeating between
//! requests; [`Worker::recv`] and [`Worker::reply`] keep the broker connection on a background
//! thread, so heartbeats flow while the application spends as long as it likes on a request.
//! Either way the worker notices a dead or restarted broker (no traffic for `liveness`
//! heartbeats, or a DISCONNECT) and reconnects with an exponential backoff, registering again.
//!
//! # Layout
//! - `worker` — [`Worker`], [`Request`], [`Stopper`].
//! - `options` — [`WorkerOptions`].
//! - `io` — the MDP session loop: registration, heartbeats, reconnection, framing.
//! - `error` — [`WorkerError`].
#![deny(missing_docs)]

mod error;
mod io;
mod options;
mod worker;

pub use error::WorkerError;
pub use options::WorkerOptions;
pub use worker::{Request, Stopper, Worker};
