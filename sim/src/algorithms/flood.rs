//! Broadcast by flooding, repaired by gossip: a node that learns a message for the first time
//! keeps it and forwards it to every other node; every 100 ms each node also sends all it has
//! to one random peer, so that messages lost to drops, partitions or crashes still reach
//! everyone once the network lets them. Seen messages are kept in storage.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::{Ctx, Node, NodeId, RequestId, TimerId};
use crate::workload::{Op, Outcome, Value};

const GOSSIP_EVERY: Duration = Duration::from_millis(100);

/// What nodes send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// One message, forwarded on first sight.
    One(u64),
    /// Everything the sender has seen.
    All(Vec<u64>),
}

/// A flooding node.
#[derive(Debug, Default)]
pub struct Flood;

impl Flood {
    fn learn(ctx: &mut Ctx<'_, Self>, message: u64) {
        if ctx.storage().insert(message) {
            let me = ctx.me();
            for peer in ctx.all().filter(|&n| n != me) {
                ctx.send(peer, Msg::One(message));
            }
        }
    }
}

impl Node for Flood {
    type Msg = Msg;
    type Store = BTreeSet<u64>;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.set_timer(GOSSIP_EVERY, 0);
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        match op {
            Op::Broadcast { message } => {
                Self::learn(ctx, message);
                ctx.answer(request, Outcome::Ok(Value::None));
            }
            Op::Messages { .. } => {
                let seen = ctx.storage().iter().copied().collect();
                ctx.answer(request, Outcome::Ok(Value::List(seen)));
            }
            _ => ctx.answer(request, Outcome::Fail("unsupported".into())),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, msg: Msg) {
        match msg {
            Msg::One(message) => Self::learn(ctx, message),
            Msg::All(messages) => {
                // Gossip is a repair, not a flood: keep what is new without forwarding it,
                // the next rounds of gossip spread it further.
                ctx.storage().extend(messages);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _timer: TimerId, _tag: u64) {
        let me = ctx.me();
        let nodes = ctx.nodes();
        if nodes > 1 {
            let peer = (me + 1 + ctx.rng().index(nodes - 1)) % nodes;
            let all = ctx.storage().iter().copied().collect();
            ctx.send(peer, Msg::All(all));
        }
        ctx.set_timer(GOSSIP_EVERY, 0);
    }
}

/// Runs flooding broadcast under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Flood)
}

/// Starts flooding broadcast under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Flood))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Flood)
}
