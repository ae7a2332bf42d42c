//! Synchronous replication to every node, as distributed-game's first example: the node that
//! gets a write keeps it, sends it to every other node and acknowledges once all have kept
//! it; reads answer from the node's own replica.
//!
//! Reads are fast and writes need every node up: one crashed or cut-off node makes every
//! write time out (indefinite). Nor is it linearizable while a write is in flight: a read at
//! a replica that has it, then a read at one that has not, see new then old.

use super::quorum::{Mode, Read, Register};
use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::Need;

/// The replication: own version plus one, kept by all, reads local.
pub const MODE: Mode = Mode {
    write_query: false,
    write_need: Need::All,
    read: Read::Local,
};

/// Runs synchronous replication to all under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Register::new(MODE))
}

/// Starts synchronous replication to all under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Register::new(MODE)))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Register::new(MODE))
}
