//! zhub-worker: serve a named service through a zhub broker.
//!
//! This crate will hold `Worker::connect(url, "print")?.run(|request| reply)` and its typed
//! variants: Majordomo (7/MDP) workers with heartbeats, reconnection with backoff when the
//! broker restarts, and DISCONNECT on drop. Until then, any 7/MDP worker can serve a zhub
//! broker once the broker routes services.
#![deny(missing_docs)]
