//! Workloads: the operations clients issue, what nodes answer, and how both read in a history.
//!
//! A client draws its next operation from its workload with the run's generator; the node that
//! gets it (through the gateway) answers with an [`Outcome`]. Values written are unique within
//! a run (a counter), which is what lets a checker tell writes apart.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::rng::Rng;

/// The workloads a run can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Read, write and compare-and-set over many keys.
    Register,
    /// Increments of one counter, and reads of its total.
    Counter,
    /// Messages that must reach every node, and reads of what a node has seen.
    Broadcast,
    /// Requests for ids that must all differ.
    UniqueIds,
    /// Appends to lists over many keys, and reads of a whole list.
    AppendLog,
}

impl Workload {
    /// Every workload, in the order `zhub sim list` prints them.
    pub const ALL: [Workload; 5] = [
        Workload::Register,
        Workload::Counter,
        Workload::Broadcast,
        Workload::UniqueIds,
        Workload::AppendLog,
    ];

    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Counter => "counter",
            Workload::Broadcast => "broadcast",
            Workload::UniqueIds => "unique-ids",
            Workload::AppendLog => "append-log",
        }
    }

    /// The workload named `name`, if any.
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One operation a client asks of the system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Read a register.
    Read {
        /// The register.
        key: u64,
    },
    /// Write a register.
    Write {
        /// The register.
        key: u64,
        /// The value written (unique within a run).
        value: u64,
    },
    /// Set a register to `to` if it holds `from`.
    Cas {
        /// The register.
        key: u64,
        /// The value it must hold.
        from: u64,
        /// The value it then takes.
        to: u64,
    },
    /// Add to the counter.
    Add {
        /// The increment.
        delta: u64,
    },
    /// Read the counter's total.
    Total,
    /// Broadcast a message to every node.
    Broadcast {
        /// The message (unique within a run).
        message: u64,
    },
    /// Read the broadcast messages a node has seen; the gateway sends it to that node.
    Messages {
        /// The node asked (its index; it is the `key` in a history).
        node: u64,
    },
    /// Generate a unique id.
    Generate,
    /// Append to a list.
    Append {
        /// The list.
        key: u64,
        /// The element (unique within a run).
        value: u64,
    },
    /// Read a whole list.
    ReadList {
        /// The list.
        key: u64,
    },
}

/// What a node's answer carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Nothing (a write's acknowledgement, or a register never written).
    None,
    /// A number (a register's value, a counter's total, an id).
    Int(u64),
    /// A list (messages seen, a log).
    List(Vec<u64>),
}

/// A node's answer to an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// It took effect; for reads, with the value read.
    Ok(Value),
    /// It certainly did not take effect (a compare-and-set that did not match, an operation
    /// the algorithm refuses); the reason is for people.
    Fail(String),
    /// The node cannot say whether it took effect (some replicas may have it).
    Unknown,
}

impl Op {
    /// The operation's name in a history.
    pub fn f(&self) -> &'static str {
        match self {
            Op::Read { .. } | Op::Total | Op::Messages { .. } | Op::ReadList { .. } => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::Add { .. } => "add",
            Op::Broadcast { .. } => "broadcast",
            Op::Generate => "generate",
            Op::Append { .. } => "append",
        }
    }

    /// The key, for keyed operations.
    pub fn key(&self) -> Option<u64> {
        match *self {
            Op::Read { key }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::Append { key, .. }
            | Op::ReadList { key }
            | Op::Messages { node: key } => Some(key),
            _ => None,
        }
    }

    /// The node the gateway must send this operation to, if it is aimed at one.
    pub fn target(&self) -> Option<u64> {
        match *self {
            Op::Messages { node } => Some(node),
            _ => None,
        }
    }

    /// The value an `invoke` event carries (see [`crate::history`]).
    pub fn argument(&self) -> Json {
        match *self {
            Op::Write { value, .. } | Op::Append { value, .. } => value.into(),
            Op::Cas { from, to, .. } => Json::Array(vec![from.into(), to.into()]),
            Op::Add { delta } => delta.into(),
            Op::Broadcast { message } => message.into(),
            Op::Read { .. }
            | Op::Total
            | Op::Messages { .. }
            | Op::Generate
            | Op::ReadList { .. } => Json::Null,
        }
    }

    /// The value an `ok` event carries, given what the node answered: a read's result, or
    /// the argument again for operations that return nothing.
    pub fn result(&self, value: &Value) -> Json {
        match (self, value) {
            (
                Op::Read { .. }
                | Op::Total
                | Op::Messages { .. }
                | Op::Generate
                | Op::ReadList { .. },
                v,
            ) => match v {
                Value::None => Json::Null,
                Value::Int(n) => (*n).into(),
                Value::List(items) => Json::Array(items.iter().map(|&n| n.into()).collect()),
            },
            _ => self.argument(),
        }
    }
}

/// The share of each register operation, in percent: reads, writes, the rest cas.
const REGISTER_MIX: (u64, u64) = (50, 35);

/// Draws the operations of one run's clients; `next_value` makes every written value unique.
#[derive(Clone, Debug)]
pub struct Generator {
    workload: Workload,
    keys: u64,
    nodes: u64,
    next_value: u64,
}

impl Generator {
    /// A generator for `workload` over `keys` keys (at least 1) of a run of `nodes` nodes.
    pub fn new(workload: Workload, keys: u64, nodes: usize) -> Self {
        Generator {
            workload,
            keys: keys.max(1),
            nodes: nodes.max(1) as u64,
            next_value: 1,
        }
    }

    /// The reads issued once the faults are healed and the system has settled, which the
    /// workload's check judges the end state by: every node's messages for broadcast, the
    /// counter's total, the whole log. None for registers and ids.
    pub fn final_ops(&self) -> Vec<Op> {
        match self.workload {
            Workload::Register | Workload::UniqueIds => Vec::new(),
            Workload::Counter => vec![Op::Total],
            Workload::Broadcast => (0..self.nodes).map(|node| Op::Messages { node }).collect(),
            Workload::AppendLog => vec![Op::ReadList { key: 0 }],
        }
    }

    fn value(&mut self) -> u64 {
        let v = self.next_value;
        self.next_value += 1;
        v
    }

    /// The next operation.
    pub fn next(&mut self, rng: &mut Rng) -> Op {
        match self.workload {
            Workload::Register => {
                let key = rng.below(self.keys);
                let roll = rng.below(100);
                if roll < REGISTER_MIX.0 {
                    Op::Read { key }
                } else if roll < REGISTER_MIX.0 + REGISTER_MIX.1 || self.next_value == 1 {
                    Op::Write {
                        key,
                        value: self.value(),
                    }
                } else {
                    // Expect a recent value, so that some compare-and-sets succeed.
                    let recent = self.next_value.saturating_sub(1 + rng.below(4)).max(1);
                    Op::Cas {
                        key,
                        from: recent,
                        to: self.value(),
                    }
                }
            }
            Workload::Counter => {
                if rng.chance(0.7) {
                    Op::Add {
                        delta: rng.range(1, 5),
                    }
                } else {
                    Op::Total
                }
            }
            Workload::Broadcast => {
                if rng.chance(0.7) {
                    Op::Broadcast {
                        message: self.value(),
                    }
                } else {
                    Op::Messages {
                        node: rng.below(self.nodes),
                    }
                }
            }
            Workload::UniqueIds => Op::Generate,
            Workload::AppendLog => {
                // One log, as the append-log check reads it.
                let key = 0;
                if rng.chance(0.6) {
                    Op::Append {
                        key,
                        value: self.value(),
                    }
                } else {
                    Op::ReadList { key }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_values_follow_the_documented_form() {
        let cas = Op::Cas {
            key: 1,
            from: 2,
            to: 3,
        };
        assert_eq!(cas.argument(), serde_json::json!([2, 3]));
        assert_eq!(cas.result(&Value::None), serde_json::json!([2, 3]));
        let read = Op::Read { key: 4 };
        assert_eq!(read.argument(), Json::Null);
        assert_eq!(read.result(&Value::None), Json::Null);
        assert_eq!(read.result(&Value::Int(9)), serde_json::json!(9));
        assert_eq!(
            Op::Messages { node: 0 }.result(&Value::List(vec![1, 2])),
            serde_json::json!([1, 2])
        );
        assert_eq!(read.key(), Some(4));
        assert_eq!(Op::Generate.key(), None);
    }

    #[test]
    fn written_values_are_unique() {
        let mut rng = Rng::new(1);
        let mut generator = Generator::new(Workload::Register, 3, 5);
        let mut written = std::collections::HashSet::new();
        for _ in 0..1000 {
            match generator.next(&mut rng) {
                Op::Write { value, .. } | Op::Cas { to: value, .. } => {
                    assert!(written.insert(value))
                }
                _ => {}
            }
        }
        assert!(written.len() > 300);
    }
}
