//! zhub-sim: a deterministic simulator of distributed algorithms, and the checkers that judge
//! what their clients saw.
//!
//! # Layout
//! - [`rng`] — the run's one seeded generator, stable across versions.
//! - [`history`] — what clients invoked and what they saw, and its JSON-lines form.
//! - [`trace`] — the messages of a run, for reports and trace hashes.
#![deny(missing_docs)]

pub mod history;
pub mod rng;
pub mod trace;
