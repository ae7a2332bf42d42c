//! zhub-eventlog: the append-only event log engine (no sockets).
//!
//! Will hold named streams of segments with offset and time indexes, crash recovery,
//! retention and per-stream durability policies. The broker serves it over the wire.
#![deny(missing_docs)]
