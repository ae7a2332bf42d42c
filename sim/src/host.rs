//! One node run outside the kernel, for a real transport: [`Host`] owns the node, its
//! storage, its generator, its timers and its calls, turns inputs (start, a client operation,
//! an encoded message from a peer, the time) into [`Output`]s (encoded messages to send,
//! answers to clients, leader announcements), and says when it next needs the time.
//!
//! Like the kernel it has no sockets, threads or clock: the caller passes the time (its own
//! clock since the node started) and carries the outputs. Both build a node's [`Ctx`](crate::Ctx) through
//! the same books and follow the same rules: a call gets its reply or its timeout, the first
//! of the two and once; a late or duplicate reply is dropped; a cancelled timer never fires;
//! a node's message to itself is delivered at once, without leaving it, after the handler
//! that sent it.
//!
//! `zhub sim serve` runs each node as a process around a host, connected to a zhub broker;
//! [`NodeHost`] is the type-erased handle it builds from the table of
//! [`crate::algorithms`].
//!
//! # Envelope
//! A message between nodes travels as one JSON object (serde_json of the algorithm's `Msg`):
//!
//! | field   | type              | meaning                                                  |
//! |---------|-------------------|----------------------------------------------------------|
//! | `msg`   | the node's `Msg`  | the message itself, as serde_json writes it              |
//! | `call`  | integer or absent | a request ([`Ctx::request`](crate::Ctx::request)) awaiting a reply: its id    |
//! | `reply` | integer or absent | the reply to the request of this id                      |
//!
//! At most one of `call` and `reply` is present; without either the message is plain
//! ([`Ctx::send`](crate::Ctx::send)). The sender and the receiver are the transport's to say (in
//! `zhub sim serve`, the topic).
//!
//! ```text
//! {"call":4,"msg":{"Get":{"key":3}}}
//! {"reply":4,"msg":{"Got":{"tag":[2,1],"value":7}}}
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::node::{Action, Books, CallId, Node, NodeId, RequestId, TimerId, Wire};
use crate::rng::Rng;
use crate::workload::{Op, Outcome};

/// What a host asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes (an [envelope](self#envelope)) to node `to`.
    Send {
        /// The node to send to (never this one: those are delivered inside the host).
        to: NodeId,
        /// The encoded envelope.
        bytes: Vec<u8>,
    },
    /// Answer the client request `request` (the id given to [`NodeHost::client`]).
    Answer {
        /// The request.
        request: u64,
        /// The node's answer.
        outcome: Outcome,
    },
    /// This node says it is the leader: the gateway sends client requests to it from now on.
    Leader,
}

/// Why a host refused an input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A peer's message is not an envelope of this algorithm's messages.
    #[error("undecodable message from n{}: {cause}", from + 1)]
    Decode {
        /// The sender.
        from: NodeId,
        /// What serde_json said.
        cause: serde_json::Error,
    },
    /// A message with both `call` and `reply`.
    #[error("a message from n{} is both a call and a reply", from + 1)]
    Ambiguous {
        /// The sender.
        from: NodeId,
    },
    /// A message from a node the run does not have.
    #[error("a message from node index {from}, in a run of {nodes} nodes")]
    NoSuchNode {
        /// The sender as given.
        from: NodeId,
        /// The run's nodes.
        nodes: usize,
    },
}

/// One node of some algorithm behind a host, its message type erased: what
/// [`crate::algorithms::Algorithm::host`] builds. Times are since the node started, and must
/// not go back (a time earlier than one already given counts as that one).
pub trait NodeHost {
    /// Starts the node ([`Node::on_start`]).
    fn start(&mut self, now: Duration, out: &mut Vec<Output>);
    /// Hands the node a client's operation under `request`, an id unique in the run.
    fn client(&mut self, now: Duration, request: u64, op: Op, out: &mut Vec<Output>);
    /// Hands the node an encoded message from node `from`.
    ///
    /// # Errors
    /// [`HostError`] when the bytes are not an envelope of this algorithm's messages, or
    /// `from` is not a node of the run; the host is unchanged then.
    fn message(
        &mut self,
        now: Duration,
        from: NodeId,
        bytes: &[u8],
        out: &mut Vec<Output>,
    ) -> Result<(), HostError>;
    /// Fires the timers and call timeouts due by `now`.
    fn tick(&mut self, now: Duration, out: &mut Vec<Output>);
    /// When a timer or a call timeout is next due, if any: call [`NodeHost::tick`] then.
    fn next_deadline(&self) -> Option<Duration>;
}

/// The wire form of an envelope (see the module docs).
#[derive(Serialize, Deserialize)]
struct Envelope<M> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<u64>,
    msg: M,
}

/// Encodes a message between nodes as an [envelope](self#envelope).
fn encode<M: Serialize>(msg: M, wire: Wire) -> Result<Vec<u8>, serde_json::Error> {
    let (call, reply) = match wire {
        Wire::Plain => (None, None),
        Wire::Call(id) => (Some(id), None),
        Wire::Reply(id) => (None, Some(id)),
    };
    serde_json::to_vec(&Envelope { call, reply, msg })
}

/// What is due at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Timer { id: u64, tag: u64 },
    Call { call: u64 },
}

/// A [`Node`] run by itself. See the module docs.
pub struct Host<N: Node> {
    node: N,
    me: NodeId,
    nodes: usize,
    store: N::Store,
    rng: Rng,
    books: Books,
    /// Scratch for the node's actions.
    actions: Vec<Action<N::Msg>>,
    /// (due time, sequence, what): the sequence keeps equal times in the order set.
    due: BinaryHeap<Reverse<(u64, u64, Due)>>,
    seq: u64,
    /// The node's messages to itself, not yet handled.
    local: VecDeque<(N::Msg, Wire)>,
    now: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The generator of node `id` in a run of `seed`: the `id + 1`-th fork of the run's, so that
/// every node draws its own stream and the same seed gives each node the same one.
pub fn node_rng(seed: u64, id: NodeId) -> Rng {
    let mut root = Rng::new(seed);
    let mut rng = root.fork();
    for _ in 0..id {
        rng = root.fork();
    }
    rng
}

/// A boxed [`Host`] for `node`, node `id` of `nodes`, drawing from [`node_rng`]`(seed, id)`.
pub fn boxed<N: Node + 'static>(id: NodeId, nodes: usize, seed: u64, node: N) -> Box<dyn NodeHost> {
    Box::new(Host::new(id, nodes, node_rng(seed, id), node))
}

/// Which node the gateway hands an operation to: the one it is aimed at, else the last that
/// announced itself leader, else the next in turn (`round_robin` is the last one picked).
/// The kernel's gateway and `zhub sim serve`'s both use it.
pub fn route(op: &Op, leader: Option<NodeId>, round_robin: &mut usize, nodes: usize) -> NodeId {
    let nodes = nodes.max(1);
    match (op.target(), leader) {
        (Some(node), _) => usize::try_from(node).unwrap_or(usize::MAX).min(nodes - 1),
        (None, Some(leader)) => leader,
        (None, None) => {
            *round_robin = (*round_robin + 1) % nodes;
            *round_robin
        }
    }
}

impl<N: Node> Host<N> {
    /// Node `me` of `nodes`, with empty storage, drawing from `rng`.
    pub fn new(me: NodeId, nodes: usize, rng: Rng, node: N) -> Self {
        Host {
            node,
            me,
            nodes: nodes.max(1),
            store: N::Store::default(),
            rng,
            books: Books::default(),
            actions: Vec::new(),
            due: BinaryHeap::new(),
            seq: 0,
            local: VecDeque::new(),
            now: 0,
        }
    }

    /// The node's storage.
    pub fn storage(&self) -> &N::Store {
        &self.store
    }

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(nanos(now));
    }

    /// Calls one of the node's handlers with a fresh context, carries out its actions, then
    /// delivers the messages the node sent itself.
    fn call(
        &mut self,
        replying_to: Option<(NodeId, u64)>,
        out: &mut Vec<Output>,
        f: impl FnOnce(&mut N, &mut crate::node::Ctx<'_, N>),
    ) {
        let mut ctx = self.books.ctx(
            self.me,
            self.nodes,
            self.now,
            &mut self.store,
            &mut self.rng,
            &mut self.actions,
            replying_to,
        );
        f(&mut self.node, &mut ctx);
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            self.act(action, out);
        }
        self.actions = actions;
        while let Some((msg, wire)) = self.local.pop_front() {
            self.deliver(self.me, msg, wire, out);
        }
    }

    fn act(&mut self, action: Action<N::Msg>, out: &mut Vec<Output>) {
        self.books.note(&action);
        match action {
            Action::Send { to, msg, wire } => {
                if to == self.me {
                    self.local.push_back((msg, wire));
                } else if to < self.nodes {
                    // A message that cannot be encoded is lost, as the kernel's are.
                    if let Ok(bytes) = encode(msg, wire) {
                        out.push(Output::Send { to, bytes });
                    }
                }
            }
            Action::Answer { request, outcome } => out.push(Output::Answer {
                request: request.0,
                outcome,
            }),
            Action::Timer { id, after, tag } => self.at(after, Due::Timer { id, tag }),
            Action::CancelTimer(_) => {}
            Action::CallTimeout { call, after, .. } => self.at(after, Due::Call { call }),
            Action::Leader => out.push(Output::Leader),
        }
    }

    fn at(&mut self, after: u64, due: Due) {
        self.seq += 1;
        self.due
            .push(Reverse((self.now.saturating_add(after), self.seq, due)));
    }

    fn deliver(&mut self, from: NodeId, msg: N::Msg, wire: Wire, out: &mut Vec<Output>) {
        match wire {
            Wire::Plain => self.call(None, out, |n, ctx| n.on_message(ctx, from, msg)),
            Wire::Call(call) => self.call(Some((from, call)), out, |n, ctx| {
                n.on_message(ctx, from, msg)
            }),
            Wire::Reply(call) => {
                if self.books.end_call(call).is_some() {
                    self.call(None, out, |n, ctx| {
                        n.on_reply(ctx, CallId(call), from, Some(msg))
                    });
                }
            }
        }
    }
}

impl<N: Node> NodeHost for Host<N> {
    fn start(&mut self, now: Duration, out: &mut Vec<Output>) {
        self.advance(now);
        self.call(None, out, |n, ctx| n.on_start(ctx));
    }

    fn client(&mut self, now: Duration, request: u64, op: Op, out: &mut Vec<Output>) {
        self.advance(now);
        self.call(None, out, |n, ctx| n.on_client(ctx, RequestId(request), op));
    }

    fn message(
        &mut self,
        now: Duration,
        from: NodeId,
        bytes: &[u8],
        out: &mut Vec<Output>,
    ) -> Result<(), HostError> {
        if from >= self.nodes {
            return Err(HostError::NoSuchNode {
                from,
                nodes: self.nodes,
            });
        }
        let envelope: Envelope<N::Msg> =
            serde_json::from_slice(bytes).map_err(|cause| HostError::Decode { from, cause })?;
        let wire = match (envelope.call, envelope.reply) {
            (None, None) => Wire::Plain,
            (Some(call), None) => Wire::Call(call),
            (None, Some(reply)) => Wire::Reply(reply),
            (Some(_), Some(_)) => return Err(HostError::Ambiguous { from }),
        };
        self.advance(now);
        self.deliver(from, envelope.msg, wire, out);
        Ok(())
    }

    fn tick(&mut self, now: Duration, out: &mut Vec<Output>) {
        self.advance(now);
        while let Some(&Reverse((at, _, due))) = self.due.peek() {
            if at > self.now {
                break;
            }
            self.due.pop();
            match due {
                Due::Timer { id, tag } => {
                    if self.books.fire_timer(id) {
                        self.call(None, out, |n, ctx| n.on_timer(ctx, TimerId(id), tag));
                    }
                }
                Due::Call { call } => {
                    if let Some(target) = self.books.end_call(call) {
                        self.call(None, out, |n, ctx| {
                            n.on_reply(ctx, CallId(call), target, None)
                        });
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.due
            .peek()
            .map(|Reverse((at, _, _))| Duration::from_nanos(*at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Ctx;
    use crate::workload::Value;

    /// A node that, for each client op, asks node 1 and answers what it replied (or Unknown
    /// on a timeout); node 1 replies `x + 1`. It also sets a timer at start, cancels a second
    /// one, and counts timer firings in its storage.
    #[derive(Default)]
    struct Asker {
        pending: std::collections::HashMap<CallId, RequestId>,
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    enum Msg {
        Ask(u64),
        Told(u64),
        Note,
    }

    impl Node for Asker {
        type Msg = Msg;
        type Store = Vec<u64>;

        fn on_start(&mut self, ctx: &mut Ctx<'_, Self>) {
            ctx.set_timer(Duration::from_millis(10), 7);
            let other = ctx.set_timer(Duration::from_millis(5), 8);
            ctx.cancel_timer(other);
        }

        fn on_client(&mut self, ctx: &mut Ctx<'_, Self>, request: RequestId, op: Op) {
            let Op::Write { value, .. } = op else {
                return;
            };
            let call = ctx.request(1, Msg::Ask(value), Duration::from_millis(100));
            self.pending.insert(call, request);
            ctx.send(ctx.me(), Msg::Note);
        }

        fn on_message(&mut self, ctx: &mut Ctx<'_, Self>, _from: NodeId, msg: Msg) {
            match msg {
                Msg::Ask(x) => ctx.reply(Msg::Told(x + 1)),
                Msg::Note => ctx.storage().push(0),
                Msg::Told(_) => {}
            }
        }

        fn on_reply(&mut self, ctx: &mut Ctx<'_, Self>, call: CallId, _: NodeId, r: Option<Msg>) {
            let Some(request) = self.pending.remove(&call) else {
                return;
            };
            let outcome = match r {
                Some(Msg::Told(x)) => Outcome::Ok(Value::Int(x)),
                _ => Outcome::Unknown,
            };
            ctx.answer(request, outcome);
        }

        fn on_timer(&mut self, ctx: &mut Ctx<'_, Self>, _: TimerId, tag: u64) {
            ctx.storage().push(tag);
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn write(value: u64) -> Op {
        Op::Write { key: 0, value }
    }

    /// Node 0 and node 1, started.
    fn pair() -> (Host<Asker>, Host<Asker>) {
        let mut a = Host::new(0, 2, Rng::new(1), Asker::default());
        let mut b = Host::new(1, 2, Rng::new(2), Asker::default());
        let mut out = Vec::new();
        a.start(ms(0), &mut out);
        b.start(ms(0), &mut out);
        assert!(out.is_empty());
        (a, b)
    }

    fn only_send(out: &mut Vec<Output>) -> (NodeId, Vec<u8>) {
        match std::mem::take(out).as_slice() {
            [Output::Send { to, bytes }] => (*to, bytes.clone()),
            other => panic!("expected one send, got {other:?}"),
        }
    }

    #[test]
    fn a_reply_answers_the_client_and_a_late_duplicate_is_dropped() {
        let (mut a, mut b) = pair();
        let mut out = Vec::new();
        a.client(ms(1), 42, write(5), &mut out);
        // The message to itself was handled at once, inside the host.
        assert_eq!(a.storage(), &vec![0]);
        let (to, call) = only_send(&mut out);
        assert_eq!(to, 1);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&call).unwrap(),
            // Ids 0 and 1 went to the timers set at start.
            serde_json::json!({"call": 2, "msg": {"Ask": 5}})
        );
        b.message(ms(2), 0, &call, &mut out).unwrap();
        let (to, reply) = only_send(&mut out);
        assert_eq!(to, 0);
        a.message(ms(3), 1, &reply, &mut out).unwrap();
        assert_eq!(
            out,
            vec![Output::Answer {
                request: 42,
                outcome: Outcome::Ok(Value::Int(6))
            }]
        );
        out.clear();
        // The same reply again, and the call's timeout: both find the call ended.
        a.message(ms(4), 1, &reply, &mut out).unwrap();
        a.tick(ms(500), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_call_without_reply_times_out_once_at_its_deadline() {
        let (mut a, _) = pair();
        let mut out = Vec::new();
        a.tick(ms(20), &mut out);
        a.client(ms(20), 1, write(1), &mut out);
        out.clear();
        assert_eq!(a.next_deadline(), Some(ms(120)));
        a.tick(ms(119), &mut out);
        assert!(out.is_empty());
        a.tick(ms(120), &mut out);
        assert_eq!(
            out,
            vec![Output::Answer {
                request: 1,
                outcome: Outcome::Unknown
            }]
        );
        out.clear();
        a.tick(ms(1000), &mut out);
        assert!(out.is_empty());
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn a_timer_fires_at_its_time_and_a_cancelled_one_never() {
        let (mut a, _) = pair();
        let mut out = Vec::new();
        // The cancelled timer (5 ms) is still queued, and is skipped.
        assert_eq!(a.next_deadline(), Some(ms(5)));
        a.tick(ms(9), &mut out);
        assert!(a.storage().is_empty());
        a.tick(ms(10), &mut out);
        assert_eq!(a.storage(), &vec![7]);
        a.tick(ms(100), &mut out);
        assert_eq!(a.storage(), &vec![7]);
        assert!(out.is_empty());
    }

    #[test]
    fn bad_messages_are_refused_and_change_nothing() {
        let (mut a, _) = pair();
        let mut out = Vec::new();
        for bytes in [
            &b"not json"[..],
            br#"{"msg":{"Nope":1}}"#,
            br#"{"call":1,"reply":2,"msg":"Note"}"#,
        ] {
            assert!(a.message(ms(1), 1, bytes, &mut out).is_err());
        }
        assert!(matches!(
            a.message(ms(1), 9, br#"{"msg":"Note"}"#, &mut out),
            Err(HostError::NoSuchNode { from: 9, nodes: 2 })
        ));
        assert!(out.is_empty());
        assert!(a.storage().is_empty());
        a.message(ms(1), 1, br#"{"msg":"Note"}"#, &mut out).unwrap();
        assert_eq!(a.storage(), &vec![0]);
    }

    #[test]
    fn the_gateway_routes_to_the_target_the_leader_or_in_turn() {
        let mut rr = 0;
        let read = Op::Read { key: 1 };
        assert_eq!(route(&read, None, &mut rr, 3), 1);
        assert_eq!(route(&read, None, &mut rr, 3), 2);
        assert_eq!(route(&read, None, &mut rr, 3), 0);
        assert_eq!(route(&read, Some(2), &mut rr, 3), 2);
        assert_eq!(route(&Op::Messages { node: 7 }, Some(2), &mut rr, 3), 2);
        assert_eq!(route(&Op::Messages { node: 0 }, Some(2), &mut rr, 3), 0);
    }
}
