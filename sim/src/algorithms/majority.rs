//! Versioned majority quorums, as distributed-game's second example: writes as ABD's (ask a
//! majority for the highest version, write a higher one to a majority), reads from a majority
//! answering the highest version, but without ABD's write-back.
//!
//! Not linearizable: while a write has reached only some replicas, one read's majority may
//! see it and a later read's majority may not (a new value, then an old one). Rare without
//! faults, it shows under loss and partitions, which is what the checker is for.

use super::quorum::{Mode, Read, Register};
use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::Need;

/// The replication: ABD's without the read's write-back.
pub const MODE: Mode = Mode {
    write_query: true,
    write_need: Need::Majority,
    read: Read::Majority,
};

/// Runs versioned majority quorums under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Register::new(MODE))
}

/// Starts versioned majority quorums under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Register::new(MODE)))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Register::new(MODE))
}
