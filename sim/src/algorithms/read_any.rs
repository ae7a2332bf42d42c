//! Wrong on purpose: writes as ABD's, to a majority, but reads from whichever one replica the
//! gateway picked. A replica outside the last write's majority answers an older value, so a
//! read can miss a write that finished before it began. The checker must catch it, and the
//! tests make sure it does, with the seed it prints.

use super::quorum::{Mode, Read, Register};
use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::Need;

/// The replication: ABD's writes, local reads.
pub const MODE: Mode = Mode {
    write_query: true,
    write_need: Need::Majority,
    read: Read::Local,
};

/// Runs the wrong-on-purpose register under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Register::new(MODE))
}

/// Starts the wrong-on-purpose register under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Register::new(MODE)))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Register::new(MODE))
}
