//! Checkers: what a history says about the system that produced it.
//!
//! # Layout
//! - [`ops`] — a history's events paired into operations (invoke and completion).
//! - [`registers`] — linearizability of read / write / compare-and-set registers, per key.
//! - [`workloads`] — each other workload's own check: counter, broadcast, unique ids,
//!   append-only log.
//! - [`stats`] — availability and latency.
//! - `time` — how checkers print a simulated time.

pub mod ops;
pub mod registers;
pub mod stats;
mod time;
pub mod workloads;

pub(crate) use time::format_time;
