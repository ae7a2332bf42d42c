//! The algorithms shipped as examples, one file each, and the table `zhub sim` finds them in.
//!
//! The register examples share one replica ([`quorum`]) and differ in how they replicate;
//! each of the other workloads has one algorithm of its own.

pub mod abd;
pub mod flood;
pub mod gcounter;
pub mod ids;
pub mod leader;
pub mod majority;
pub mod primary;
pub mod quorum;
pub mod read_any;
pub mod sync_all;

use crate::host::NodeHost;
use crate::kernel::{LiveRun, RunResult, SimConfig};
use crate::node::NodeId;
use crate::workload::Workload;

/// An algorithm `zhub sim run` can run.
#[derive(Clone, Copy, Debug)]
pub struct Algorithm {
    /// Its name on the command line.
    pub name: &'static str,
    /// The workload it serves.
    pub workload: Workload,
    /// Whether it is meant to pass its workload's check (false for the counter-examples).
    pub correct: bool,
    /// One line about it.
    pub about: &'static str,
    /// Runs it.
    pub run: fn(&SimConfig) -> RunResult,
    /// Starts it, to drive step by step (the same run as `run`'s, given the same actions).
    pub live: fn(&SimConfig) -> Box<dyn LiveRun>,
    /// One of its nodes behind a host, outside the kernel: `host(id, nodes, seed)` (see
    /// [`crate::host`]).
    pub host: fn(NodeId, usize, u64) -> Box<dyn NodeHost>,
}

/// Every algorithm, in the order `zhub sim list` prints them.
pub const ALL: &[Algorithm] = &[
    Algorithm {
        name: "abd",
        workload: Workload::Register,
        correct: true,
        about: "ABD quorum register: majority reads with write-back, majority writes",
        run: abd::run,
        live: abd::live,
        host: abd::host,
    },
    Algorithm {
        name: "leader",
        workload: Workload::Register,
        correct: false,
        about: "single leader with failover, no leases: a cut-off leader serves stale reads",
        run: leader::run,
        live: leader::live,
        host: leader::host,
    },
    Algorithm {
        name: "majority",
        workload: Workload::Register,
        correct: false,
        about: "versioned majority quorums without read write-back (distributed-game)",
        run: majority::run,
        live: majority::live,
        host: majority::host,
    },
    Algorithm {
        name: "sync-all",
        workload: Workload::Register,
        correct: false,
        about: "synchronous replication to all nodes, local reads (distributed-game)",
        run: sync_all::run,
        live: sync_all::live,
        host: sync_all::host,
    },
    Algorithm {
        name: "read-any",
        workload: Workload::Register,
        correct: false,
        about: "wrong on purpose: majority writes, reads from any one replica",
        run: read_any::run,
        live: read_any::live,
        host: read_any::host,
    },
    Algorithm {
        name: "gcounter",
        workload: Workload::Counter,
        correct: false,
        about: "grow-only counter CRDT gossiped every 50 ms: reads may lag, and are caught",
        run: gcounter::run,
        live: gcounter::live,
        host: gcounter::host,
    },
    Algorithm {
        name: "primary-counter",
        workload: Workload::Counter,
        correct: true,
        about: "a counter on one fixed primary, n1",
        run: primary::run,
        live: primary::live,
        host: primary::host,
    },
    Algorithm {
        name: "flood",
        workload: Workload::Broadcast,
        correct: true,
        about: "broadcast by flooding, repaired by gossip",
        run: flood::run,
        live: flood::live,
        host: flood::host,
    },
    Algorithm {
        name: "ids",
        workload: Workload::UniqueIds,
        correct: true,
        about: "unique ids as counter * nodes + node, counter in storage",
        run: ids::run,
        live: ids::live,
        host: ids::host,
    },
    Algorithm {
        name: "primary-log",
        workload: Workload::AppendLog,
        correct: true,
        about: "append-only log on one fixed primary, n1",
        run: primary::run,
        live: primary::live,
        host: primary::host,
    },
];

/// The algorithm named `name`.
pub fn find(name: &str) -> Option<&'static Algorithm> {
    ALL.iter().find(|a| a.name == name)
}
