//! An append-only log on one fixed primary, `n1`: every node forwards appends and reads to
//! it and relays its answer. Linearizable (there is one copy, kept in the primary's storage)
//! and unavailable whenever `n1` is down or cut off: the simplest correct log, and the
//! baseline a replicated one must beat.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::{run as simulate, RunResult, SimConfig};
use crate::node::{CallId, Ctx, Node, NodeId, RequestId};
use crate::workload::{Op, Outcome, Value};

const PRIMARY: NodeId = 0;
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

/// What nodes send the primary, and what it answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// A client's operation, forwarded.
    Forward(Op),
    /// The primary's answer.
    Done(Outcome),
}

/// A log node: the primary, or a relay to it.
#[derive(Debug, Default)]
pub struct PrimaryLog {
    /// Forwarded requests awaiting the primary: call -> (the client request, the op).
    relayed: HashMap<CallId, (RequestId, Op)>,
}

fn apply(lists: &mut HashMap<u64, Vec<u64>>, op: &Op) -> Outcome {
    match *op {
        Op::Append { key, value } => {
            lists.entry(key).or_default().push(value);
            Outcome::Ok(Value::None)
        }
        Op::ReadList { key } => {
            Outcome::Ok(Value::List(lists.get(&key).cloned().unwrap_or_default()))
        }
        _ => Outcome::Fail("unsupported".into()),
    }
}

impl Node for PrimaryLog {
    type Msg = Msg;
    type Store = HashMap<u64, Vec<u64>>;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        if ctx.me() == PRIMARY {
            let outcome = apply(ctx.storage(), &op);
            ctx.answer(request, outcome);
        } else {
            let call = ctx.request(PRIMARY, Msg::Forward(op.clone()), CALL_TIMEOUT);
            self.relayed.insert(call, (request, op));
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, msg: Msg) {
        if let Msg::Forward(op) = msg {
            if ctx.me() == PRIMARY {
                let outcome = apply(ctx.storage(), &op);
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
            // The forward or its answer was lost: an append may have happened; a read did not
            // change anything.
            _ if matches!(op, Op::Append { .. }) => Outcome::Unknown,
            _ => Outcome::Fail("primary unreachable".into()),
        };
        ctx.answer(request, outcome);
    }
}

/// Runs the primary log under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| PrimaryLog::default())
}
