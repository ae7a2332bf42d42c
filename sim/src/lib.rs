//! zhub-sim: a deterministic simulator of distributed algorithms, and the checkers that judge
//! what their clients saw.
//!
//! # Layout
//! - [`history`] — what clients invoked and what they saw, and its JSON-lines form.
//! - [`trace`] — the messages of a run, for reports and trace hashes.
//! - [`check`] — checkers: linearizability of registers, each workload's own check, and
//!   availability and latency.
//! - [`report`] — the HTML report of a run: timeline, linearization or violation, Lamport
//!   diagram.
#![deny(missing_docs)]

pub mod check;
pub mod history;
pub mod report;
pub mod trace;
