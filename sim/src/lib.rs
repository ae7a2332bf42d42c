//! zhub-sim: a deterministic simulator of distributed algorithms, and the checkers that judge
//! what their clients saw.
//!
//! # Layout
//! - [`algorithms`] — the examples, one file each, and their table.
//! - [`rng`] — the run's one seeded generator, stable across versions.
//! - [`kernel`] — the discrete-event queue, the network, the gateway and the clients: [`run`],
//!   and [`kernel::Live`], the same run taken a step at a time with faults taken by hand.
//! - [`node`] — the trait an algorithm implements, its context, and quorum waits.
//! - [`host`] — one node run outside the kernel, for a real transport: inputs in, encoded
//!   messages and answers out (`zhub sim serve`).
//! - [`faults`] — link behaviour, faults, the nemesis and its schedule files.
//! - [`workload`] — operations, answers, and how both read in a history.
//! - [`history`] — what clients invoked and what they saw, and its JSON-lines form.
//! - [`trace`] — the messages of a run, for reports and trace hashes.
//! - [`check`] — checkers: linearizability of registers, each workload's own check, and
//!   availability and latency.
//! - [`report`] — the HTML report of a run: timeline, linearization or violation, Lamport
//!   diagram.
//!
//! # Writing a node
//! A node is a state machine: the kernel hands it one input at a time and it answers through
//! its [`Ctx`]. Here, a register kept on whichever node the gateway picked, durable but not
//! replicated (so it is only right with one node), run under loss and checked:
//!
//! ```
//! use std::collections::HashMap;
//! use zhub_sim::check::registers::{check, Verdict};
//! use zhub_sim::{run, Ctx, Node, NodeId, Op, Outcome, RequestId, SimConfig, Value};
//!
//! struct Solo;
//!
//! impl Node for Solo {
//!     type Msg = ();                       // nodes say nothing to each other
//!     type Store = HashMap<u64, u64>;      // survives a crash
//!
//!     fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
//!         let outcome = match op {
//!             Op::Read { key } => {
//!                 Outcome::Ok(ctx.storage().get(&key).map_or(Value::None, |&v| Value::Int(v)))
//!             }
//!             Op::Write { key, value } => {
//!                 ctx.storage().insert(key, value);
//!                 Outcome::Ok(Value::None)
//!             }
//!             _ => Outcome::Fail("unsupported".into()),
//!         };
//!         ctx.answer(request, outcome);
//!     }
//!
//!     fn on_message(&mut self, _ctx: &mut Ctx<'_, Self>, _from: NodeId, _msg: ()) {}
//! }
//!
//! let mut config = SimConfig { nodes: 1, ops: 200, seed: 42, ..SimConfig::default() };
//! config.link.loss = 0.1;
//! let result = run(&config, |_id, _nodes| Solo);
//! assert_eq!(check(&result.history, std::time::Duration::from_secs(5)).verdict, Verdict::Linearizable);
//! println!("trace {:016x}", result.stats.trace_hash);
//! ```
//!
//! Nodes that talk use [`Ctx::send`], or [`Ctx::request`] with a timeout and
//! [`Node::on_reply`]; [`Gather`] waits for any, all or a majority of replies. The examples
//! in [`algorithms`] show each.
#![deny(missing_docs)]

pub mod algorithms;
pub mod check;
pub mod faults;
pub mod history;
pub mod host;
pub mod kernel;
pub mod node;
pub mod report;
pub mod rng;
pub mod trace;
pub mod workload;

pub use kernel::{run, RunResult, RunStats, SimConfig};
pub use node::{CallId, Ctx, Gather, Gathered, Need, Node, NodeId, ReplyTo, RequestId, TimerId};
pub use workload::{Op, Outcome, Value, Workload};
