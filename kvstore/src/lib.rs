//! zhub-kvstore: the key-value engine (no sockets).
//!
//! This crate will hold the store whose state is the fold of a change log (a `zhub-eventlog`
//! stream) plus periodic snapshots: revisions, compare-and-set, counters, TTLs, prefix
//! listing and key history. The broker serves it; clients watch it over the bus.
#![deny(missing_docs)]
