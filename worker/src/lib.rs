//! zhub-worker: serve a named service through a zhub broker.
//!
//! ```no_run
//! use zhub_worker::{Worker, WorkerError};
//!
//! // A worker for the `print` service: print what comes, answer who served it.
//! let worker = Worker::connect("tcp://127.0.0.1:5555", "print")?;
//! worker.run(|body| {
//!     println!("{}", String::from_utf8_lossy(body));
//!     b"printed".to_vec()
//! })?;
//! # Ok::<(), WorkerError>(())
//! ```
//!
//! A service whose requests and replies are MessagePack (what `Client::request` sends)
//! takes typed values with [`Worker::run_typed`]; [`WorkerOptions`] sets the heartbeat,
//! liveness and reconnection backoff:
//!
//! ```no_run
//! use std::time::Duration;
//! use zhub_worker::WorkerOptions;
//!
//! let worker = WorkerOptions::new()
//!     .heartbeat(Duration::from_secs(1))
//!     .connect("tcp://127.0.0.1:5555", "sum")?;
//! let stopper = worker.stopper(); // Stopper::stop, from another thread, ends `run`.
//! worker.run_typed(|numbers: Vec<i64>| numbers.iter().sum::<i64>())?;
//! # drop(stopper);
//! # Ok::<(), zhub_worker::WorkerError>(())
//! ```
//!
//! Workers speak Majordomo 7/MDP (`MDPW01`), so a zhub broker also serves workers written
//! in other languages, and these workers serve any MDP broker.
//!
//! [`Worker::run`] serves on the calling thread with the least latency, heartbeating between
//! requests; [`Worker::recv`] and [`Worker::reply`] keep the broker connection on a background
//! thread, so heartbeats flow while the application spends as long as it likes on a request.
//! A worker may take several requests at once ([`WorkerOptions::concurrency`]): the broker
//! keeps up to that many in flight to it, `run` calls its handler on that many threads, and
//! `recv` hands requests out as they come while `reply` takes their replies in any order.
//!
//! Either way the worker notices a dead or restarted broker (no traffic for `liveness`
//! heartbeats, or a DISCONNECT) and reconnects with an exponential backoff, registering again.
//!
//! # Layout
//! Everything public is at the crate root; the source files behind it are:
//! - `worker.rs` — [`Worker`], [`Request`], [`Stopper`], [`Waker`].
//! - `options.rs` — [`WorkerOptions`]; logins are [`Login`] (with [`CurveKeyPair`]), shared
//!   with `zhub-client`.
//! - `io.rs` — the MDP session loop: registration, heartbeats, reconnection, framing.
//! - `pool.rs` — the handler threads of [`Worker::run`] for a worker with a concurrency.
//! - `error.rs` — [`WorkerError`].
#![deny(missing_docs)]

mod error;
mod io;
mod options;
mod pool;
mod worker;

pub use error::WorkerError;
pub use options::WorkerOptions;
pub use worker::{Request, Stopper, Waker, Worker};
pub use zhub_client::{CurveKeyPair, Login};
