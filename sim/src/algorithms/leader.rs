//! A single leader with failover, and without leases: the lowest-numbered node a node has
//! heard from in the last 200 ms is its leader (heartbeats every 50 ms). A node that finds
//! itself leader first pulls every replica's state from a majority, keeps the newest of each
//! key, then announces itself to the gateway; other nodes forward client operations to their
//! leader. The leader serves reads from its own replica and replicates writes and
//! compare-and-sets (checked against its replica) to a majority before acknowledging; a
//! leader that stops hearing from a majority stops serving until it has synced again.
//!
//! Correct while there is one leader. Without leases there can be two: a leader cut off in a
//! minority serves reads (and checks compare-and-sets) from its own replica until its
//! failure detector notices, while the majority's new leader takes writes. The checker
//! catches those stale reads under partitions; leases (a leader serves only while a majority
//! has promised not to elect another) are what would close the window.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::quorum::{Store, Tag};
use crate::kernel::{run as simulate, Live, LiveRun, RunResult, SimConfig};
use crate::node::{CallId, Ctx, Gather, Need, Node, NodeId, ReplyTo, RequestId, TimerId};
use crate::workload::{Op, Outcome, Value};

const BEAT_EVERY: Duration = Duration::from_millis(50);
const DEAD_AFTER: Duration = Duration::from_millis(200);
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
const FORWARD_TIMEOUT: Duration = Duration::from_millis(300);

/// What nodes say to each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// A heartbeat.
    Beat,
    /// Asks for the replica's whole state.
    Dump,
    /// A replica's whole state: (key, tag, value), by key.
    State(Vec<(u64, Tag, Option<u64>)>),
    /// Keep this value if its tag is newer.
    Put {
        /// The register.
        key: u64,
        /// The write's tag.
        tag: Tag,
        /// The value.
        value: Option<u64>,
    },
    /// Kept (or newer kept).
    PutOk,
    /// A client operation forwarded to the leader.
    Forward(RequestId, Op),
    /// The leader's answer to a forward.
    Done(Outcome),
}

/// Who waits for an operation's outcome: a client, or the node that forwarded it.
#[derive(Clone, Copy, Debug)]
enum Asker {
    Client(RequestId),
    Peer(ReplyTo),
}

#[derive(Debug)]
enum Phase {
    Sync,
    Write { asker: Asker },
}

/// One node.
#[derive(Debug, Default)]
pub struct Leader {
    /// When each node was last heard from, by this node's clock.
    heard: HashMap<NodeId, Duration>,
    /// Serving as leader: synced since it last became leader or lost its majority.
    ready: bool,
    syncing: bool,
    gather: Gather<Phase, Msg>,
    /// Versions handed out and not yet kept, so that concurrent writes get distinct tags.
    next_version: HashMap<u64, u64>,
    forwarded: HashMap<CallId, (RequestId, Op)>,
    /// Forwards already carried out: a duplicate is not carried out twice.
    seen: HashSet<RequestId>,
    /// Whom the failure detector named leader when last reviewed (for [`Node::describe`]).
    named: Option<NodeId>,
}

fn keep(store: &mut Store, key: u64, tag: Tag, value: Option<u64>) {
    let entry = store.entry(key).or_insert(((0, 0), None));
    if tag > entry.0 {
        *entry = (tag, value);
    }
}

impl Leader {
    fn alive(&self, ctx: &Ctx<'_, Self>, node: NodeId) -> bool {
        node == ctx.me()
            || self
                .heard
                .get(&node)
                .is_some_and(|&at| ctx.now().saturating_sub(at) < DEAD_AFTER)
    }

    fn leader(&self, ctx: &Ctx<'_, Self>) -> NodeId {
        ctx.all().find(|&n| self.alive(ctx, n)).unwrap_or(ctx.me())
    }

    fn has_majority(&self, ctx: &Ctx<'_, Self>) -> bool {
        ctx.all().filter(|&n| self.alive(ctx, n)).count() >= ctx.majority()
    }

    /// Starts or stops leading as the failure detector now says.
    fn review(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.named = Some(self.leader(ctx));
        let leading = self.leader(ctx) == ctx.me() && self.has_majority(ctx);
        if !leading {
            self.ready = false;
            return;
        }
        if !self.ready && !self.syncing {
            self.syncing = true;
            let all: Vec<NodeId> = ctx.all().collect();
            let _ = self.gather.start(
                ctx,
                all,
                &Msg::Dump,
                Need::Majority,
                CALL_TIMEOUT,
                Phase::Sync,
            );
        }
    }

    fn finish(ctx: &mut Ctx<'_, Self>, asker: Asker, outcome: Outcome) {
        match asker {
            Asker::Client(request) => ctx.answer(request, outcome),
            Asker::Peer(to) => ctx.reply_to(to, Msg::Done(outcome)),
        }
    }

    fn execute(&mut self, ctx: &mut Ctx<'_, Self>, asker: Asker, op: Op) {
        let (key, value) = match op {
            Op::Read { key } => {
                let value = ctx.storage().get(&key).and_then(|(_, v)| *v);
                Self::finish(
                    ctx,
                    asker,
                    Outcome::Ok(value.map_or(Value::None, Value::Int)),
                );
                return;
            }
            Op::Write { key, value } => (key, value),
            Op::Cas { key, from, to } => {
                let current = ctx.storage().get(&key).and_then(|(_, v)| *v);
                if current != Some(from) {
                    Self::finish(ctx, asker, Outcome::Fail("value differs".into()));
                    return;
                }
                (key, to)
            }
            _ => {
                Self::finish(ctx, asker, Outcome::Fail("unsupported".into()));
                return;
            }
        };
        let stored = ctx.storage().get(&key).map_or(0, |((v, _), _)| *v);
        let version = stored.max(self.next_version.get(&key).copied().unwrap_or(0)) + 1;
        self.next_version.insert(key, version);
        let tag = (version, ctx.me());
        // The leader's own replica takes it at once, so that its next reads and
        // compare-and-sets see it.
        keep(ctx.storage(), key, tag, Some(value));
        let me = ctx.me();
        let others: Vec<NodeId> = ctx.all().filter(|&n| n != me).collect();
        let need = Need::Count(ctx.majority() - 1);
        let put = Msg::Put {
            key,
            tag,
            value: Some(value),
        };
        let phase = Phase::Write { asker };
        if need == Need::Count(0) {
            Self::finish(ctx, asker, Outcome::Ok(Value::None));
        } else if let Err(Phase::Write { asker }) =
            self.gather
                .start(ctx, others, &put, need, CALL_TIMEOUT, phase)
        {
            Self::finish(ctx, asker, Outcome::Ok(Value::None));
        }
    }

    fn serve(&mut self, ctx: &mut Ctx<'_, Self>, asker: Asker, op: Op) {
        if self.ready && self.leader(ctx) == ctx.me() {
            self.execute(ctx, asker, op);
        } else {
            Self::finish(ctx, asker, Outcome::Fail("not the leader".into()));
        }
    }
}

impl Node for Leader {
    type Msg = Msg;
    type Store = Store;

    fn describe(&self, store: &Store) -> String {
        let leader = self
            .named
            .map_or("leader ?".to_string(), |n| format!("leader n{}", n + 1));
        let role = match (self.ready, self.syncing) {
            (true, _) => ", serving",
            (false, true) => ", syncing",
            (false, false) => "",
        };
        format!("{leader}{role}; {}", super::quorum::describe_store(store))
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        // Everyone is presumed alive at start, so that the lowest node leads from the outset.
        let now = ctx.now();
        for n in ctx.all() {
            self.heard.insert(n, now);
        }
        ctx.set_timer(Duration::ZERO, 0);
    }

    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
        let leader = self.leader(ctx);
        if leader == ctx.me() {
            self.serve(ctx, Asker::Client(request), op);
        } else {
            let call = ctx.request(leader, Msg::Forward(request, op.clone()), FORWARD_TIMEOUT);
            self.forwarded.insert(call, (request, op));
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Msg) {
        let now = ctx.now();
        self.heard.insert(from, now);
        match msg {
            Msg::Beat => {}
            Msg::Dump => {
                let mut state: Vec<(u64, Tag, Option<u64>)> = ctx
                    .storage()
                    .iter()
                    .map(|(&k, &(tag, value))| (k, tag, value))
                    .collect();
                // By key, so that the message does not depend on the map's order.
                state.sort_unstable_by_key(|(k, _, _)| *k);
                ctx.reply(Msg::State(state));
            }
            Msg::Put { key, tag, value } => {
                keep(ctx.storage(), key, tag, value);
                ctx.reply(Msg::PutOk);
            }
            Msg::Forward(request, op) => {
                if !self.seen.insert(request) {
                    return;
                }
                if let Some(to) = ctx.defer_reply() {
                    self.serve(ctx, Asker::Peer(to), op);
                }
            }
            Msg::State(_) | Msg::PutOk | Msg::Done(_) => {}
        }
    }

    fn on_reply(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        call: CallId,
        from: NodeId,
        reply: Option<Msg>,
    ) {
        if reply.is_some() {
            let now = ctx.now();
            self.heard.insert(from, now);
        }
        if let Some((request, op)) = self.forwarded.remove(&call) {
            let outcome = match reply {
                Some(Msg::Done(outcome)) => outcome,
                _ if matches!(op, Op::Read { .. }) => Outcome::Fail("leader unreachable".into()),
                _ => Outcome::Unknown,
            };
            ctx.answer(request, outcome);
            return;
        }
        let Some(done) = self.gather.on_reply(call, from, reply) else {
            return;
        };
        match done.state {
            Phase::Sync => {
                self.syncing = false;
                if done.reached && self.leader(ctx) == ctx.me() {
                    for (_, reply) in done.replies {
                        if let Msg::State(state) = reply {
                            for (key, tag, value) in state {
                                keep(ctx.storage(), key, tag, value);
                            }
                        }
                    }
                    self.ready = true;
                    ctx.announce_leader();
                }
            }
            Phase::Write { asker } => {
                // Some replicas may keep a write that did not reach its majority.
                let outcome = if done.reached {
                    Outcome::Ok(Value::None)
                } else {
                    Outcome::Unknown
                };
                Self::finish(ctx, asker, outcome);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _timer: TimerId, _tag: u64) {
        let me = ctx.me();
        for peer in ctx.all().filter(|&n| n != me) {
            ctx.send(peer, Msg::Beat);
        }
        self.review(ctx);
        ctx.set_timer(BEAT_EVERY, 0);
    }
}

/// Runs the leader register under `config`.
pub fn run(config: &SimConfig) -> RunResult {
    simulate(config, |_, _| Leader::default())
}

/// Starts the leader register under `config`, to drive step by step.
pub fn live(config: &SimConfig) -> Box<dyn LiveRun> {
    Box::new(Live::new(config, |_, _| Leader::default()))
}

/// One node of it behind a [`crate::host::Host`], for `zhub sim serve`.
pub fn host(id: crate::node::NodeId, nodes: usize, seed: u64) -> Box<dyn crate::host::NodeHost> {
    crate::host::boxed(id, nodes, seed, Leader::default())
}
