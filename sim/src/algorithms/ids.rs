//! Unique ids without talking: node `i` of `n` hands out `k * n + i` for k = 1, 2, ...,
//! its counter `k` in storage, so that a restarted node never repeats an id. Always
//! available, whatever the network does.

use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::{Ctx, Node, NodeId, RequestId};
use crate::workload::{Op, Outcome, Value};

/// An id-generating node.
#[derive(Debug, Default)]
pub struct Ids;

impl Node for Ids {
    type Msg = ();
    type Store = u64;

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        if op != Op::Generate {
            ctx.answer(request, Outcome::Fail("unsupported".into()));
            return;
        }
        let (me, nodes) = (ctx.me() as u64, ctx.nodes() as u64);
        let counter = ctx.storage();
        *counter += 1;
        let id = *counter * nodes + me;
        ctx.answer(request, Outcome::Ok(Value::Int(id)));
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Self>, _from: NodeId, _msg: ()) {}
}

/// Runs the id generator under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Ids)
}

/// Starts the id generator under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Ids))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Ids)
}
