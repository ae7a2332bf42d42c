//! ABD (Attiya, Bar-Noy, Dolev): a linearizable register from majority quorums, without a
//! leader. A write asks a majority for the highest tag and writes its value with a higher one
//! to a majority; a read asks a majority for the highest-tagged value and writes it back to a
//! majority before answering, so that no later read can see an older value.
//!
//! It stays linearizable under loss, partitions, crashes (replicas keep their registers in
//! storage) and pauses; it is available whenever a majority is reachable. Compare-and-set is
//! refused: it needs consensus.

use super::quorum::{Mode, Read, Register};
use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::Need;

/// ABD's replication.
pub const MODE: Mode = Mode {
    write_query: true,
    write_need: Need::Majority,
    read: Read::MajorityWriteBack,
};

/// Runs ABD under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Register::new(MODE))
}

/// Starts ABD under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Register::new(MODE)))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Register::new(MODE))
}
