//! A grow-only counter (G-counter CRDT): each node counts its own increments in its slot, in
//! storage, and every 50 ms sends its slots to every other node, which keeps the highest of
//! each. A read answers the sum of the slots the node knows: always available, eventually
//! complete (a read may miss increments not yet gossiped to its node).

use std::time::Duration;

use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::{Ctx, Node, NodeId, RequestId, TimerId};
use crate::workload::{Op, Outcome, Value};

const GOSSIP_EVERY: Duration = Duration::from_millis(50);

/// A counter node.
#[derive(Debug, Default)]
pub struct GCounter;

fn slots<'a>(ctx: &'a mut Ctx<'_, GCounter>) -> &'a mut Vec<u64> {
    let nodes = ctx.nodes();
    let slots = ctx.storage();
    slots.resize(nodes, 0);
    slots
}

impl Node for GCounter {
    /// Every slot the sender knows.
    type Msg = Vec<u64>;
    type Store = Vec<u64>;

    fn describe(&self, store: &Vec<u64>) -> String {
        format!("total {}, slots {store:?}", store.iter().sum::<u64>())
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(GOSSIP_EVERY, 0);
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        let me = ctx.me();
        match op {
            Op::Add { delta } => {
                slots(ctx)[me] += delta;
                ctx.answer(request, Outcome::Ok(Value::None));
            }
            Op::Total => {
                let total = slots(ctx).iter().sum();
                ctx.answer(request, Outcome::Ok(Value::Int(total)));
            }
            _ => ctx.answer(request, Outcome::Fail("unsupported".into())),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, theirs: Vec<u64>) {
        for (mine, theirs) in slots(ctx).iter_mut().zip(theirs) {
            *mine = (*mine).max(theirs);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _timer: TimerId, _tag: u64) {
        let me = ctx.me();
        let mine = slots(ctx).clone();
        for peer in ctx.all().filter(|&n| n != me) {
            ctx.send(peer, mine.clone());
        }
        ctx.set_timer(GOSSIP_EVERY, 0);
    }
}

/// Runs the G-counter under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| GCounter)
}

/// Starts the G-counter under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| GCounter))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, GCounter)
}
