//! One fixed primary, `n1`, holding an append-only log and a counter: every node forwards
//! operations to it and relays its answer. Linearizable (there is one copy, kept in the
//! primary's storage) and unavailable whenever `n1` is down or cut off: the simplest correct
//! log and counter, and the baseline a replicated one must beat.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::{CallId, Ctx, Node, NodeId, RequestId};
use crate::workload::{Op, Outcome, Value};

const PRIMARY: NodeId = 0;
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// What nodes send the primary, and what it answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// A client's operation, forwarded under the client request's id.
    Forward(RequestId, Op),
    /// The primary's answer.
    Done(Outcome),
}

/// The primary's state.
#[derive(Debug, Default)]
pub struct Store {
    lists: HashMap<u64, Vec<u64>>,
    total: u64,
    /// Forwarded requests already carried out, with their outcome: a forward the network
    /// duplicated is answered again, not carried out twice.
    done: HashMap<RequestId, Outcome>,
}

/// A node: the primary, or a relay to it.
#[derive(Debug, Default)]
pub struct Primary {
    /// Forwarded requests awaiting the primary: call -> (the client request, the op).
    relayed: HashMap<CallId, (RequestId, Op)>,
}

fn apply(store: &mut Store, op: &Op) -> Outcome {
    match *op {
        Op::Append { key, value } => {
            store.lists.entry(key).or_default().push(value);
            Outcome::Ok(Value::None)
        }
        Op::ReadList { key } => Outcome::Ok(Value::List(
            store.lists.get(&key).cloned().unwrap_or_default(),
        )),
        Op::Add { delta } => {
            store.total += delta;
            Outcome::Ok(Value::None)
        }
        Op::Total => Outcome::Ok(Value::Int(store.total)),
        _ => Outcome::Fail("unsupported".into()),
    }
}

impl Node for Primary {
    type Msg = Msg;
    type Store = Store;

    fn describe(&self, store: &Store) -> String {
        let relaying = format!("{} relayed", self.relayed.len());
        if store.done.is_empty() && store.lists.is_empty() && store.total == 0 {
            return relaying;
        }
        let appended: usize = store.lists.values().map(Vec::len).sum();
        format!(
            "total {}, {} lists of {appended} items; {relaying}",
            store.total,
            store.lists.len()
        )
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        if ctx.me() == PRIMARY {
            let outcome = apply(ctx.storage(), &op);
            ctx.answer(request, outcome);
        } else {
            let call = ctx.request(PRIMARY, Msg::Forward(request, op.clone()), CALL_TIMEOUT);
            self.relayed.insert(call, (request, op));
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, msg: Msg) {
        if let Msg::Forward(request, op) = msg {
            if ctx.me() == PRIMARY {
                let store = ctx.storage();
                let outcome = match store.done.get(&request) {
                    Some(outcome) => outcome.clone(),
                    None => {
                        let outcome = apply(store, &op);
                        store.done.insert(request, outcome.clone());
                        outcome
                    }
                };
                ctx.reply(Msg::Done(outcome));
            }
        }
    }

    fn on_reply(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        call: CallId,
        _from: NodeId,
        reply: Option<Msg>,
    ) {
        let Some((request, op)) = self.relayed.remove(&call) else {
            return;
        };
        let outcome = match reply {
            Some(Msg::Done(outcome)) => outcome,
            // The forward or its answer was lost: an append or add may have happened; a read
            // did not change anything.
            _ if matches!(op, Op::Append { .. } | Op::Add { .. }) => Outcome::Unknown,
            _ => Outcome::Fail("primary unreachable".into()),
        };
        ctx.answer(request, outcome);
    }
}

/// Runs the primary under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Primary::default())
}

/// Starts the primary under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Primary::default()))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Primary::default())
}
