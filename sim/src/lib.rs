//! zhub-sim: a deterministic simulator of distributed algorithms, and the checkers that judge
//! what their clients saw.
//!
//! # Layout
//! - [`algorithms`] — the examples, one file each, and their table.
//! - [`rng`] — the run's one seeded generator, stable across versions.
//! - [`kernel`] — the discrete-event queue, the network, the gateway and the clients: [`run`].
//! - [`node`] — the trait an algorithm implements, its context, and quorum waits.
//! - [`faults`] — link behaviour, faults, the nemesis and its schedule files.
//! - [`workload`] — operations, answers, and how both read in a history.
//! - [`history`] — what clients invoked and what they saw, and its JSON-lines form.
//! - [`trace`] — the messages of a run, for reports and trace hashes.
//! - [`check`] — checkers: linearizability of registers, each workload's own check, and
//!   availability and latency.
#![deny(missing_docs)]

pub mod algorithms;
pub mod check;
pub mod faults;
pub mod history;
pub mod kernel;
pub mod node;
pub mod rng;
pub mod trace;
pub mod workload;

pub use kernel::{run, RunResult, RunStats, SimConfig};
pub use node::{CallId, Ctx, Gather, Gathered, Need, Node, NodeId, RequestId, TimerId};
pub use workload::{Op, Outcome, Value, Workload};
