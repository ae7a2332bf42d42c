//! The node API: the trait an algorithm implements, the context it acts through, and
//! [`Gather`], which waits for any, all or a quorum of replies.
//!
//! A node is a plain state machine, in the shape of the broker's services: the kernel calls
//! it with one input at a time (start, a client request, a message, a reply, a timer) and it
//! answers by pushing actions into its [`Ctx`] (send, reply, answer the client, set a timer).
//! It never sees a socket, a thread or the wall clock, so the same code runs event by event
//! in simulation and, because its messages are serde types, over a real transport.
//!
//! Determinism is the node's duty too: draw randomness from [`Ctx::rng`], never from
//! elsewhere, and do not iterate a `HashMap` where the order can reach a message (use a
//! `BTreeMap`): std's maps are seeded afresh in every process.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::workload::{Op, Outcome};

/// A node's index in the run: 0 to nodes - 1, named `n1`, `n2`, ... in traces.
pub type NodeId = usize;

/// A client request in flight at a node, to be answered once with [`Ctx::answer`]; unique in
/// a run, so that a node may forward it and recognise it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub(crate) u64);

/// A timer set with [`Ctx::set_timer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(crate) u64);

/// A request to another node, made with [`Ctx::request`]; its reply (or its timeout) comes
/// back to [`Node::on_reply`] under the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub(crate) u64);

/// A request from another node, kept to be replied to later with [`Ctx::reply_to`] (when
/// the answer needs more messages first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyTo {
    caller: NodeId,
    call: u64,
}

/// An algorithm's node.
///
/// State in `self` is lost when the node crashes: on restart the kernel builds the node
/// afresh with the run's factory and calls [`Node::on_start`]. State in [`Node::Store`],
/// reached through [`Ctx::storage`], survives (as a disk would, every write synced).
pub trait Node: Sized {
    /// The messages nodes exchange. Serde types, so that the same node can run over a real
    /// broker; in simulation they are cloned, not encoded (see [`crate::kernel::SimConfig`]'s
    /// `serialize` to measure the cost of encoding).
    type Msg: Serialize + DeserializeOwned + Clone + Debug;
    /// The node's durable storage; `()` for none.
    type Store: Default + Debug;

    /// Called once when the node starts, and again after each restart.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
        let _ = ctx;
    }

    /// A client's operation, forwarded by the gateway; answer it with [`Ctx::answer`], now or
    /// later (an unanswered request times out at the client and is recorded as indefinite).
    fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op);

    /// A message from another node (or itself). If it was sent with [`Ctx::request`],
    /// [`Ctx::reply`] answers it.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, from: NodeId, msg: Self::Msg);

    /// The reply to a [`Ctx::request`], or `None` when its timeout passed first. Each call
    /// gets exactly one of the two; a later duplicate reply is dropped by the kernel.
    fn on_reply(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        call: CallId,
        from: NodeId,
        reply: Option<Self::Msg>,
    ) {
        let _ = (ctx, call, from, reply);
    }

    /// A timer set with [`Ctx::set_timer`] fired; `tag` is the one it was set with.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, timer: TimerId, tag: u64) {
        let _ = (ctx, timer, tag);
    }

    /// A line about the node's state, for a live view (`zhub sim run --serve`): what it
    /// holds in memory and in `store`, briefly. Empty by default; never called in a plain run.
    fn describe(&self, store: &Self::Store) -> String {
        let _ = store;
        String::new()
    }
}

/// How a node message travels: plain, as a request awaiting a reply, or as that reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Plain,
    Call(u64),
    Reply(u64),
}

/// What a node asked the kernel to do, in the order it asked.
#[derive(Debug)]
pub(crate) enum Action<M> {
    Send {
        to: NodeId,
        msg: M,
        wire: Wire,
    },
    Answer {
        request: RequestId,
        outcome: Outcome,
    },
    Timer {
        id: u64,
        after: u64,
        tag: u64,
    },
    CancelTimer(u64),
    CallTimeout {
        call: u64,
        to: NodeId,
        after: u64,
    },
    Leader,
}

/// What the runtime keeps for a node beside the node itself: the ids it hands out, its calls
/// awaiting a reply and its timers not yet fired. The kernel and the [`crate::host`] keep one
/// per node and apply the same rules through it: a call gets its reply or its timeout, the
/// first of the two and only once (a late or duplicate reply finds nothing); a cancelled
/// timer never fires; ids are never reused, so an event of a node's past life finds nothing.
#[derive(Debug, Default)]
pub(crate) struct Books {
    next_id: u64,
    /// Calls awaiting a reply: call id -> the node called.
    calls: HashMap<u64, NodeId>,
    timers: HashSet<u64>,
}

impl Books {
    /// A context for one input of node `me`, whose actions go to `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ctx<'a, N: Node>(
        &'a mut self,
        me: NodeId,
        nodes: usize,
        now: u64,
        store: &'a mut N::Store,
        rng: &'a mut Rng,
        out: &'a mut Vec<Action<N::Msg>>,
        replying_to: Option<(NodeId, u64)>,
    ) -> Ctx<'a, N> {
        Ctx {
            me,
            nodes,
            now,
            store,
            rng,
            out,
            next_id: &mut self.next_id,
            replying_to,
        }
    }

    /// Notes the timers and calls an action sets or cancels, before the runtime carries it out.
    pub(crate) fn note<M>(&mut self, action: &Action<M>) {
        match *action {
            Action::Timer { id, .. } => {
                self.timers.insert(id);
            }
            Action::CancelTimer(id) => {
                self.timers.remove(&id);
            }
            Action::CallTimeout { call, to, .. } => {
                self.calls.insert(call, to);
            }
            Action::Send { .. } | Action::Answer { .. } | Action::Leader => {}
        }
    }

    /// A reply or the timeout of `call` came: the node called, the first time; `None` after.
    pub(crate) fn end_call(&mut self, call: u64) -> Option<NodeId> {
        self.calls.remove(&call)
    }

    /// Timer `id` is due: true the first time, unless it was cancelled.
    pub(crate) fn fire_timer(&mut self, id: u64) -> bool {
        self.timers.remove(&id)
    }

    /// The node crashed: its calls and timers are gone (ids go on counting).
    pub(crate) fn clear(&mut self) {
        self.calls.clear();
        self.timers.clear();
    }
}

/// What a node can do while handling one input. The kernel makes one per call.
pub struct Ctx<'a, N: Node> {
    pub(crate) me: NodeId,
    pub(crate) nodes: usize,
    pub(crate) now: u64,
    pub(crate) store: &'a mut N::Store,
    pub(crate) rng: &'a mut Rng,
    pub(crate) out: &'a mut Vec<Action<N::Msg>>,
    pub(crate) next_id: &'a mut u64,
    /// The call the message being handled belongs to, if it was a request: (caller, id).
    pub(crate) replying_to: Option<(NodeId, u64)>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<N: Node> Ctx<'_, N> {
    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// How many nodes the run has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Every node of the run, this one included.
    pub fn all(&self) -> std::ops::Range<NodeId> {
        0..self.nodes
    }

    /// The smallest majority of the run's nodes.
    pub fn majority(&self) -> usize {
        self.nodes / 2 + 1
    }

    /// This node's clock: simulated time since the run began, plus the node's skew.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The node's durable storage.
    pub fn storage(&mut self) -> &mut N::Store {
        self.store
    }

    /// The run's random generator: the only source of randomness a node may use.
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    fn fresh_id(&mut self) -> u64 {
        let id = *self.next_id;
        *self.next_id += 1;
        id
    }

    /// Sends `msg` to node `to` (possibly this one), subject to the network's faults.
    pub fn send(&mut self, to: NodeId, msg: N::Msg) {
        self.out.push(Action::Send {
            to,
            msg,
            wire: Wire::Plain,
        });
    }

    /// Sends `msg` to `to` as a request: its reply, or `None` after `timeout`, comes to
    /// [`Node::on_reply`] with the returned id.
    pub fn request(&mut self, to: NodeId, msg: N::Msg, timeout: Duration) -> CallId {
        let call = self.fresh_id();
        self.out.push(Action::Send {
            to,
            msg,
            wire: Wire::Call(call),
        });
        self.out.push(Action::CallTimeout {
            call,
            to,
            after: nanos(timeout),
        });
        CallId(call)
    }

    /// Replies to the request being handled; does nothing when the message being handled
    /// was not a request (sent with [`Ctx::send`]), or when it is called a second time.
    pub fn reply(&mut self, msg: N::Msg) {
        if let Some((caller, call)) = self.replying_to.take() {
            self.out.push(Action::Send {
                to: caller,
                msg,
                wire: Wire::Reply(call),
            });
        }
    }

    /// Takes the request being handled, to reply to it later with [`Ctx::reply_to`]; `None`
    /// when the message being handled was not a request (or was replied to already).
    pub fn defer_reply(&mut self) -> Option<ReplyTo> {
        self.replying_to
            .take()
            .map(|(caller, call)| ReplyTo { caller, call })
    }

    /// Replies to a request kept with [`Ctx::defer_reply`].
    pub fn reply_to(&mut self, to: ReplyTo, msg: N::Msg) {
        self.out.push(Action::Send {
            to: to.caller,
            msg,
            wire: Wire::Reply(to.call),
        });
    }

    /// Answers a client's request (through the gateway, over the network).
    pub fn answer(&mut self, request: RequestId, outcome: Outcome) {
        self.out.push(Action::Answer { request, outcome });
    }

    /// Sets a timer that calls [`Node::on_timer`] with `tag` after `after`.
    pub fn set_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        let id = self.fresh_id();
        self.out.push(Action::Timer {
            id,
            after: nanos(after),
            tag,
        });
        TimerId(id)
    }

    /// Cancels a timer that has not fired yet.
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.out.push(Action::CancelTimer(timer.0));
    }

    /// Tells the gateway that this node is the leader: client requests go to it from now on
    /// (until another node says so). The gateway hears it at once.
    pub fn announce_leader(&mut self) {
        self.out.push(Action::Leader);
    }
}

/// How many replies a [`Gather`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The first reply (distributed-game's `wait_any`).
    Any,
    /// Every target's (`wait_all`).
    All,
    /// A majority of the run's nodes.
    Majority,
    /// This many.
    Count(usize),
}

/// A finished [`Gather`] round.
#[derive(Debug)]
pub struct Gathered<S, M> {
    /// The state the round was started with.
    pub state: S,
    /// The replies that came in before the round finished, in arrival order.
    pub replies: Vec<(NodeId, M)>,
    /// Whether enough replies came; false when too many timed out.
    pub reached: bool,
}

#[derive(Debug)]
struct Round<S, M> {
    state: S,
    need: usize,
    outstanding: usize,
    replies: Vec<(NodeId, M)>,
}

/// Rounds of requests to several nodes, each finished when enough replies came or too many
/// timed out: wait for any, all, or a quorum, with a timeout. A node keeps one `Gather` and
/// passes it each [`Node::on_reply`]; `S` is what the node needs to finish the round (the
/// client request it serves, the phase it is in).
#[derive(Debug)]
pub struct Gather<S, M> {
    next: u64,
    calls: HashMap<CallId, u64>,
    rounds: HashMap<u64, Round<S, M>>,
}

impl<S, M> Default for Gather<S, M> {
    fn default() -> Self {
        Gather {
            next: 0,
            calls: HashMap::new(),
            rounds: HashMap::new(),
        }
    }
}

impl<S, M: Clone> Gather<S, M> {
    /// No rounds yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `msg` as a request to each of `targets` and starts a round that finishes when
    /// `need` replies came. A round that can no longer reach `need` (too many timeouts)
    /// finishes unreached; with no targets at all it never starts and `state` is returned.
    pub fn start<N: Node<Msg = M>>(
        &mut self,
        ctx: &mut Ctx<'_, N>,
        targets: impl IntoIterator<Item = NodeId>,
        msg: &M,
        need: Need,
        timeout: Duration,
        state: S,
    ) -> Result<(), S> {
        let round = self.next;
        let mut outstanding = 0;
        for to in targets {
            let call = ctx.request(to, msg.clone(), timeout);
            self.calls.insert(call, round);
            outstanding += 1;
        }
        if outstanding == 0 {
            return Err(state);
        }
        self.next += 1;
        let need = match need {
            Need::Any => 1,
            Need::All => outstanding,
            Need::Majority => ctx.majority(),
            Need::Count(n) => n,
        };
        self.rounds.insert(
            round,
            Round {
                state,
                need,
                outstanding,
                replies: Vec::new(),
            },
        );
        Ok(())
    }

    /// Takes one reply (or timeout); returns the round it finished, if it finished one.
    /// Replies to rounds already finished, and calls that are not this gather's, are ignored.
    pub fn on_reply(
        &mut self,
        call: CallId,
        from: NodeId,
        reply: Option<M>,
    ) -> Option<Gathered<S, M>> {
        let round_id = self.calls.remove(&call)?;
        let round = self.rounds.get_mut(&round_id)?;
        round.outstanding -= 1;
        if let Some(msg) = reply {
            round.replies.push((from, msg));
        }
        let reached = round.replies.len() >= round.need;
        if reached || round.replies.len() + round.outstanding < round.need {
            let round = self.rounds.remove(&round_id)?;
            return Some(Gathered {
                state: round.state,
                replies: round.replies,
                reached,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dummy;

    impl Node for Dummy {
        type Msg = u32;
        type Store = ();
        fn on_client(&mut self, _: &mut Ctx<'_, Self>, _: RequestId, _: Op) {}
        fn on_message(&mut self, _: &mut Ctx<'_, Self>, _: NodeId, _: u32) {}
    }

    /// Starts a round to nodes 0..5 and returns the gather, its calls in target order.
    fn round(need: Need) -> (Gather<&'static str, u32>, Vec<CallId>) {
        let (mut store, mut rng, mut out, mut next_id) = ((), Rng::new(1), Vec::new(), 0);
        let mut ctx = Ctx::<Dummy> {
            me: 0,
            nodes: 5,
            now: 0,
            store: &mut store,
            rng: &mut rng,
            out: &mut out,
            next_id: &mut next_id,
            replying_to: None,
        };
        let mut gather = Gather::new();
        gather
            .start(&mut ctx, 0..5, &7, need, Duration::from_millis(10), "state")
            .unwrap();
        let calls = out
            .iter()
            .filter_map(|a| match a {
                Action::CallTimeout { call, .. } => Some(CallId(*call)),
                _ => None,
            })
            .collect();
        (gather, calls)
    }

    #[test]
    fn a_majority_round_finishes_at_the_third_reply_and_ignores_the_rest() {
        let (mut gather, calls) = round(Need::Majority);
        assert!(gather.on_reply(calls[0], 0, Some(1)).is_none());
        assert!(gather.on_reply(calls[1], 1, None).is_none());
        assert!(gather.on_reply(calls[2], 2, Some(3)).is_none());
        let done = gather.on_reply(calls[3], 3, Some(4)).unwrap();
        assert!(done.reached);
        assert_eq!(done.state, "state");
        assert_eq!(done.replies, vec![(0, 1), (2, 3), (3, 4)]);
        assert!(gather.on_reply(calls[4], 4, Some(5)).is_none());
    }

    #[test]
    fn a_round_that_can_no_longer_reach_its_need_finishes_unreached() {
        let (mut gather, calls) = round(Need::All);
        assert!(gather.on_reply(calls[0], 0, Some(1)).is_none());
        let done = gather.on_reply(calls[1], 1, None).unwrap();
        assert!(!done.reached);
        assert_eq!(done.replies, vec![(0, 1)]);

        let (mut gather, calls) = round(Need::Any);
        for (i, call) in calls[..4].iter().enumerate() {
            assert!(gather.on_reply(*call, i, None).is_none());
        }
        assert!(gather.on_reply(calls[4], 4, Some(9)).unwrap().reached);
    }
}
