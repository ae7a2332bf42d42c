//! The kernel: a discrete-event queue over simulated time that runs nodes, the network
//! between them, the gateway and the clients, with every random choice drawn from one
//! [`Rng`].
//!
//! # Determinism
//! Events are ordered by (time in nanoseconds, sequence number), the sequence number counting
//! every event ever scheduled, so two events at the same instant run in the order they were
//! scheduled and nothing depends on a heap's tie-breaking. There are no threads, no sockets
//! and no wall clock in a run (the wall time is measured, never read by the run). Hence the
//! same seed and [`SimConfig`] give the same run, event for event, which the trace hash
//! ([`RunStats::trace_hash`]) shows: FNV-1a over every delivery, drop, timer, fault and
//! history event, in order.
//!
//! # The gateway and clients
//! Clients are closed loops: each issues one operation, waits for its answer or its timeout,
//! and issues the next, until the run's `ops` are spent. The gateway hands each operation to
//! a node, to the last node that announced itself leader or else round robin, over a link
//! with the run's latency and loss (partitions cut links between nodes only, as Maelstrom's
//! do, and duplicates only messages between nodes: a request is carried out at most once); a
//! client's hop to the gateway is instant. An answer turns into an `ok` or `fail` event; a
//! timeout into `info`, after which the client continues as a new process.
//!
//! When the operations are spent, workloads judged by their end state (counter, broadcast,
//! append-log) get a settling time: every fault is healed (links, crashed and paused nodes,
//! skews; the nemesis rests) and after [`SimConfig::settle`] the clients issue the final reads
//! of [`crate::workload::Generator::final_ops`], each asked again until it succeeds.
//!
//! # Live runs
//! [`Live`] is a run in the caller's hands ([`LiveRun`]: advance the clock, step, look at a
//! [`Snapshot`], inject a fault); [`run`] is the same loop taken to its end at once, so the
//! two cannot drift apart. Messages carry a number (how many were sent before them) that
//! [`Fault::Drop`] names. A fault injected at clock `t` runs after every event due by `t`
//! and is recorded in [`RunResult::actions`]; replayed as [`SimConfig::actions`], each runs
//! after every other event of its instant, which puts it back where it was taken. Actions
//! are taken in any phase: unlike the nemesis, they do not rest once the operations are spent.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::{Fault, LinkConfig, Nemesis};
use crate::history::{completion, Event, EventType, History, Process};
use crate::node::{Action, Books, Ctx, Node, NodeId, RequestId, Wire};
use crate::rng::Rng;
use crate::trace::MessageRecord;
use crate::workload::{Generator, Op, Outcome, Workload};

/// The gateway's address in the kernel; nodes are 0..nodes.
const GATEWAY: usize = usize::MAX;
/// How many times, in all, final reads are asked again after failing.
const MAX_FINAL_RETRIES: u32 = 100;

/// Everything a run depends on besides the algorithm: the same config and seed give the same
/// run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// How many nodes.
    pub nodes: usize,
    /// How many concurrent clients.
    pub clients: usize,
    /// How many operations the clients issue in all.
    pub ops: u64,
    /// The seed of the run's generator.
    pub seed: u64,
    /// What the clients do.
    pub workload: Workload,
    /// Keys of keyed workloads (register, append-log).
    pub keys: u64,
    /// How long a client waits for an answer before recording the operation as indefinite.
    pub timeout: Duration,
    /// What every link does to messages, unless overridden in `links`.
    pub link: LinkConfig,
    /// Links with their own behaviour: (from, to) and what it does.
    pub links: Vec<((NodeId, NodeId), LinkConfig)>,
    /// The faults injected during the run.
    pub nemesis: Nemesis,
    /// Faults taken by hand in a [`Live`] run (its [`RunResult::actions`]), in nanoseconds
    /// since the start: each runs after every other event of its instant, as it did live, so
    /// that a run replays exactly from its seed and its actions.
    pub actions: Vec<(u64, Fault)>,
    /// Keep a [`MessageRecord`] of every message (for reports; costs time and memory).
    pub record_messages: bool,
    /// Encode and decode every node message with serde_json as it is sent, as a real
    /// transport would, to measure that cost ([`RunStats::bytes`] counts the bytes).
    pub serialize: bool,
    /// Once the operations are spent: how long the healed system settles before the
    /// workload's final reads (see [`crate::workload::Generator::final_ops`]).
    pub settle: Duration,
    /// Simulated time after which the run stops, finished or not.
    pub time_limit: Duration,
}

impl Default for SimConfig {
    /// 5 nodes, 3 clients, 1000 ops, seed 0, the register workload over 10 keys, a 500 ms
    /// client timeout, the default [`LinkConfig`] (1 ms to 10 ms, no loss), no nemesis, no
    /// message records, no encoding, 1 s to settle before final reads, a one-hour limit.
    fn default() -> Self {
        SimConfig {
            nodes: 5,
            clients: 3,
            ops: 1000,
            seed: 0,
            workload: Workload::Register,
            keys: 10,
            timeout: Duration::from_millis(500),
            link: LinkConfig::default(),
            links: Vec::new(),
            nemesis: Nemesis::default(),
            actions: Vec::new(),
            record_messages: false,
            serialize: false,
            settle: Duration::from_secs(1),
            time_limit: Duration::from_secs(3600),
        }
    }
}

/// The figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunStats {
    /// Operations that completed `ok`.
    pub ops_ok: u64,
    /// Operations that completed `fail`.
    pub ops_fail: u64,
    /// Operations whose outcome is unknown (`info`: timeouts, and `Outcome::Unknown`).
    pub ops_info: u64,
    /// Messages handed to the network (node to node, and gateway to node and back); a
    /// duplicate counts once here and once more in `duplicated`.
    pub sent: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost: dropped by the link, cut by a partition, or sent to a crashed node.
    pub dropped: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Faults applied.
    pub faults: u64,
    /// Events the kernel handled.
    pub events: u64,
    /// Bytes of encoded node messages, when [`SimConfig::serialize`] is on.
    pub bytes: u64,
    /// Simulated time at the end, in nanoseconds.
    pub sim_time: u64,
    /// Wall time the run took, in nanoseconds (the only figure that differs between two
    /// runs of the same seed).
    pub wall_nanos: u64,
    /// FNV-1a over the run's events (see the module docs).
    pub trace_hash: u64,
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// What the clients invoked and saw.
    pub history: History,
    /// Every message, when [`SimConfig::record_messages`] is on.
    pub messages: Vec<MessageRecord>,
    /// Every fault applied, with its time in nanoseconds, in order (whatever the recording).
    pub faults: Vec<(u64, Fault)>,
    /// The faults taken by hand ([`Live::inject`], or [`SimConfig::actions`] replayed), with
    /// their times: what [`SimConfig::actions`] takes to replay the run.
    pub actions: Vec<(u64, Fault)>,
    /// The run's figures.
    pub stats: RunStats,
}

/// What travels on a link.
#[derive(Clone, Debug)]
enum Payload<M> {
    Peer { msg: M, wire: Wire },
    Request { id: u64, op: Op },
    Answer { id: u64, outcome: Outcome },
}

#[derive(Debug)]
enum Ev<M> {
    Deliver {
        from: usize,
        to: usize,
        payload: Payload<M>,
        /// The message's number: how many messages were sent before it (see [`Fault::Drop`]).
        number: u64,
        /// When it was sent.
        sent: u64,
    },
    Timer {
        node: NodeId,
        id: u64,
        tag: u64,
    },
    CallTimeout {
        node: NodeId,
        call: u64,
    },
    Fault(Fault),
    Nemesis(usize),
    ClientNext(usize),
    /// The settling after the last operation is over: the final reads begin.
    Settled,
    ClientTimeout {
        client: usize,
        seq: u64,
    },
}

#[derive(Debug)]
struct Scheduled<M> {
    time: u64,
    seq: u64,
    ev: Ev<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Scheduled<M> {
    /// Reversed, so that std's max-heap pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// One node's place in the run: the node itself (absent while crashed) and what outlives it.
struct Slot<N: Node> {
    node: Option<N>,
    store: N::Store,
    paused: bool,
    /// Events that reached the node while it was paused, in order.
    held: Vec<Ev<N::Msg>>,
    skew: i64,
    /// Ids, calls and timers, by the rules the host shares.
    books: Books,
}

/// Where a run is: its operations, the settling after them, the final reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Main,
    Settling,
    Final,
}

struct Current {
    seq: u64,
    op: Op,
    /// When it was invoked.
    since: u64,
}

struct Client {
    process: Process,
    current: Option<Current>,
    seq: u64,
    /// The history index of its last completion.
    last: Option<usize>,
}

/// FNV-1a, 64 bits, over little-endian words.
struct TraceHash(u64);

impl TraceHash {
    fn new() -> Self {
        TraceHash(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn words(&mut self, words: &[u64]) {
        for w in words {
            self.bytes(&w.to_le_bytes());
        }
    }
}

/// Why a message was lost, as the trace hash records it.
#[derive(Clone, Copy)]
enum Loss {
    Link = 1,
    Partition = 2,
    Down = 3,
    /// Dropped by hand ([`Fault::Drop`]).
    Dropped = 4,
}

struct Sim<N: Node, F> {
    config: SimConfig,
    factory: F,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled<N::Msg>>,
    slots: Vec<Slot<N>>,
    /// blocked[from * nodes + to]: the link is cut.
    blocked: Vec<bool>,
    loss: Option<f64>,
    clients: Vec<Client>,
    finished_clients: usize,
    next_process: Process,
    generator: Generator,
    issued: u64,
    phase: Phase,
    final_ops: std::collections::VecDeque<Op>,
    /// Final reads that failed or timed out and were issued again.
    final_retries: u32,
    /// Gateway: request id -> (client, the client's op seq).
    requests: HashMap<u64, (usize, u64)>,
    next_request: u64,
    round_robin: usize,
    leader: Option<NodeId>,
    out: Vec<Action<N::Msg>>,
    history: History,
    messages: Vec<MessageRecord>,
    faults: Vec<(u64, Fault)>,
    stats: RunStats,
    trace: TraceHash,
    /// The faults to take by hand, sorted by time, and how many have been taken.
    plan: Vec<(u64, Fault)>,
    planned: usize,
    /// The faults taken by hand so far.
    actions: Vec<(u64, Fault)>,
    /// Messages sent so far: the next one's number.
    next_message: u64,
    /// Messages in flight that [`Fault::Drop`] dooms: lost when they arrive.
    doomed: HashSet<u64>,
    /// The queue ran dry, or reached the time limit.
    ended: bool,
}

fn name(addr: usize) -> String {
    if addr == GATEWAY {
        "gw".to_string()
    } else {
        format!("n{}", addr + 1)
    }
}

fn label(text: String) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// What a message says, as records and snapshots show it.
fn payload_text<M: Debug>(payload: &Payload<M>) -> String {
    match payload {
        Payload::Peer { msg, wire } => match wire {
            Wire::Plain => format!("{msg:?}"),
            Wire::Call(id) => format!("{msg:?} #{id}"),
            Wire::Reply(id) => format!("{msg:?} re #{id}"),
        },
        Payload::Request { id, op } => format!("{op:?} req {id}"),
        Payload::Answer { id, outcome } => format!("{outcome:?} req {id}"),
    }
}

/// A duration around `mean`: uniform from half of it to one and a half times it.
fn around(rng: &mut Rng, mean: u64) -> u64 {
    rng.range(mean / 2, mean + mean / 2).max(1)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one simulation of the nodes `factory` builds (`factory(id, nodes)`, called at start
/// and at each restart) under `config`, to the end of its operations or its time limit.
///
/// The same loop as a [`Live`] run's, taken to its end at once.
pub fn run<N: Node>(config: &SimConfig, factory: impl FnMut(NodeId, usize) -> N) -> RunResult {
    Live::new(config, factory).into_result()
}

/// Why a [`LiveRun`] refused a fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The run is over: nothing more happens in it.
    #[error("the run is over")]
    Over,
    /// The fault names a node the run does not have.
    #[error("the run has no node n{}", .0 + 1)]
    NoNode(NodeId),
    /// A link from a node to itself, which no fault can cut.
    #[error("n{} to itself is not a link", .0 + 1)]
    SelfLink(NodeId),
    /// [`Fault::Drop`] of a message that is not in flight (delivered, lost, or never sent).
    #[error("message #{0} is not in flight")]
    NotInFlight(u64),
}

/// A node as [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    /// Its index.
    pub id: NodeId,
    /// Its name, `n1`, `n2`, ...
    pub name: String,
    /// `up`, `paused` or `crashed`.
    pub status: &'static str,
    /// What [`Node::describe`] says of it (empty while crashed).
    pub state: String,
    /// Its clock's skew, in nanoseconds.
    pub skew: i64,
    /// Whether it is the node the gateway takes for the leader.
    pub leader: bool,
}

/// A message in flight, as [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// Its number, for [`Fault::Drop`].
    pub number: u64,
    /// The sender: `n1`, ..., or `gw`, the gateway.
    pub from: String,
    /// The receiver.
    pub to: String,
    /// When it was sent, in nanoseconds.
    pub sent: u64,
    /// When it is due; for one held by a paused node, when the node was reached.
    pub due: u64,
    /// Whether it waits at a paused node.
    pub held: bool,
    /// What it says, cut short.
    pub label: String,
}

/// A client as [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientView {
    /// Its index.
    pub id: usize,
    /// The history process it records as now.
    pub process: Process,
    /// The operation it waits on, if any.
    pub current: Option<String>,
    /// When that operation was invoked.
    pub since: Option<u64>,
    /// Its last completed operation and what came of it.
    pub last: Option<String>,
}

/// A fault with its time, as [`Snapshot`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimedFault {
    /// When, in nanoseconds.
    pub time: u64,
    /// The fault, as a schedule file writes it.
    pub fault: String,
}

/// Everything a live view draws at one instant of a [`LiveRun`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// The clock, in nanoseconds.
    pub now: u64,
    /// Whether the run is over.
    pub over: bool,
    /// `ops` (clients issuing), `settling` (healed, before final reads), `final reads`, or
    /// `over`.
    pub phase: &'static str,
    /// Operations issued, and the run's total.
    pub issued: u64,
    /// The run's operations in all.
    pub ops: u64,
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// Messages in flight, by number, at most [`Snapshot::MAX_MESSAGES`].
    pub messages: Vec<InFlight>,
    /// Messages in flight left out beyond that.
    pub more_messages: usize,
    /// Cut links, one way each: (from, to).
    pub cut: Vec<(NodeId, NodeId)>,
    /// The clients.
    pub clients: Vec<ClientView>,
    /// The faults taken by hand, in order.
    pub actions: Vec<TimedFault>,
    /// The last faults applied (the nemesis's and the hand's), at most
    /// [`Snapshot::MAX_FAULTS`], newest last.
    pub faults: Vec<TimedFault>,
    /// The run's figures so far (the trace hash so far, no wall time).
    pub stats: RunStats,
}

impl Snapshot {
    /// Messages in flight a snapshot lists at most.
    pub const MAX_MESSAGES: usize = 500;
    /// Recent faults a snapshot lists at most.
    pub const MAX_FAULTS: usize = 50;
}

/// A run of any algorithm, driven step by step (what `zhub sim run --serve` drives): the
/// object-safe face of [`Live`].
pub trait LiveRun {
    /// The clock, in nanoseconds since the start.
    fn now(&self) -> u64;

    /// Whether the run is over: its operations (and final reads) done, its queue dry, or
    /// its time limit reached.
    fn is_over(&self) -> bool;

    /// Handles every event (and planned action) due at or before `t`, then sets the clock
    /// to `t` unless the run ended first; returns how many it handled.
    fn advance_to(&mut self, t: u64) -> u64;

    /// Handles the next event (or planned action), moving the clock to it; false when the
    /// run is over.
    fn step(&mut self) -> bool;

    /// Applies `fault` now, after every event due by now, and records it as an action.
    ///
    /// # Errors
    /// The run is over, the fault names a node the run lacks or a link from a node to
    /// itself, or it drops a message that is not in flight; nothing is applied or recorded.
    fn inject(&mut self, fault: Fault) -> Result<(), LiveError>;

    /// What a view draws now.
    fn snapshot(&self) -> Snapshot;

    /// The history so far.
    fn history(&self) -> &History;

    /// Every message so far, indexed by number, when [`SimConfig::record_messages`] is on.
    fn messages(&self) -> &[MessageRecord];

    /// Runs to the end (with no more actions than planned) and returns the result.
    fn finish(self: Box<Self>) -> RunResult;
}

/// One run taken a step at a time: the kernel [`run`] itself drives, here with the clock in
/// the caller's hands and faults taken by hand ([`LiveRun::inject`]).
///
/// # Replaying a live run
/// An action taken at clock `t` runs after every event at or before `t`. Handed back as
/// [`SimConfig::actions`], each runs at the same point again (after every other event of its
/// instant), so the same seed and actions give the same run, trace hash and history.
///
/// ```
/// use zhub_sim::algorithms::quorum::Register;
/// use zhub_sim::faults::Fault;
/// use zhub_sim::kernel::{Live, LiveRun};
/// use zhub_sim::{run, SimConfig};
///
/// let config = SimConfig { ops: 100, seed: 5, ..SimConfig::default() };
/// let factory = |_, _| Register::new(zhub_sim::algorithms::abd::MODE);
/// let mut live = Live::new(&config, factory);
/// live.advance_to(20_000_000);
/// live.inject(Fault::Crash(2)).unwrap();
/// live.advance_to(60_000_000);
/// live.inject(Fault::Restart(2)).unwrap();
/// let result = live.into_result();
///
/// let replay = run(&SimConfig { actions: result.actions.clone(), ..config }, factory);
/// assert_eq!(replay.stats.trace_hash, result.stats.trace_hash);
/// assert_eq!(replay.history, result.history);
/// ```
pub struct Live<N: Node, F> {
    sim: Sim<N, F>,
    started: Instant,
}

impl<N: Node, F: FnMut(NodeId, usize) -> N> Live<N, F> {
    /// Starts a run of the nodes `factory` builds under `config`: nodes started, clients
    /// ready, the clock at 0 and nothing else handled.
    pub fn new(config: &SimConfig, factory: F) -> Self {
        let started = Instant::now();
        let nodes = config.nodes.max(1);
        let mut plan = config.actions.clone();
        plan.sort_by_key(|(time, _)| *time);
        let mut sim = Sim {
            config: SimConfig {
                nodes,
                ..config.clone()
            },
            factory,
            rng: Rng::new(config.seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            blocked: vec![false; nodes * nodes],
            loss: None,
            clients: Vec::new(),
            finished_clients: 0,
            next_process: config.clients as Process,
            generator: Generator::new(config.workload, config.keys, nodes),
            issued: 0,
            phase: Phase::Main,
            final_ops: std::collections::VecDeque::new(),
            final_retries: 0,
            requests: HashMap::new(),
            next_request: 0,
            round_robin: 0,
            leader: None,
            out: Vec::new(),
            history: History::new(),
            messages: Vec::new(),
            faults: Vec::new(),
            stats: RunStats::default(),
            trace: TraceHash::new(),
            plan,
            planned: 0,
            actions: Vec::new(),
            next_message: 0,
            doomed: HashSet::new(),
            ended: false,
        };
        sim.start();
        Live { sim, started }
    }

    /// Runs to the end and returns the result (what [`LiveRun::finish`] does, unboxed).
    pub fn into_result(mut self) -> RunResult {
        while self.sim.next(u64::MAX) {}
        let mut sim = self.sim;
        sim.stats.sim_time = sim.now;
        sim.stats.trace_hash = sim.trace.0;
        sim.stats.wall_nanos = nanos(self.started.elapsed());
        RunResult {
            history: sim.history,
            messages: sim.messages,
            faults: sim.faults,
            actions: sim.actions,
            stats: sim.stats,
        }
    }
}

impl<N: Node, F: FnMut(NodeId, usize) -> N> LiveRun for Live<N, F> {
    fn now(&self) -> u64 {
        self.sim.now
    }

    fn is_over(&self) -> bool {
        self.sim.over()
    }

    fn advance_to(&mut self, t: u64) -> u64 {
        let before = self.sim.stats.events + self.sim.planned as u64;
        while self.sim.next(t) {}
        if !self.sim.over() {
            self.sim.now = self.sim.now.max(t);
        }
        self.sim.stats.events + self.sim.planned as u64 - before
    }

    fn step(&mut self) -> bool {
        self.sim.next(u64::MAX)
    }

    fn inject(&mut self, fault: Fault) -> Result<(), LiveError> {
        // An action comes after every event of its instant, here as in a replay.
        let now = self.sim.now;
        self.advance_to(now);
        if self.sim.over() {
            return Err(LiveError::Over);
        }
        self.sim.check(&fault)?;
        self.sim.take_action(fault);
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        self.sim.snapshot()
    }

    fn history(&self) -> &History {
        &self.sim.history
    }

    fn messages(&self) -> &[MessageRecord] {
        &self.sim.messages
    }

    fn finish(self: Box<Self>) -> RunResult {
        self.into_result()
    }
}

impl<N: Node, F: FnMut(NodeId, usize) -> N> Sim<N, F> {
    fn schedule(&mut self, time: u64, ev: Ev<N::Msg>) {
        self.seq += 1;
        self.queue.push(Scheduled {
            time,
            seq: self.seq,
            ev,
        });
    }

    fn start(&mut self) {
        for id in 0..self.config.nodes {
            let node = (self.factory)(id, self.config.nodes);
            self.slots.push(Slot {
                node: Some(node),
                store: N::Store::default(),
                paused: false,
                held: Vec::new(),
                skew: 0,
                books: Books::default(),
            });
        }
        for id in 0..self.config.nodes {
            self.call(id, None, |node, ctx| node.on_start(ctx));
        }
        for (time, fault) in self.config.nemesis.schedule.clone() {
            self.schedule(time, Ev::Fault(fault));
        }
        let interval = nanos(self.config.nemesis.interval);
        if interval > 0 {
            for kind in 0..self.config.nemesis.kinds.len() {
                let at = around(&mut self.rng, interval);
                self.schedule(at, Ev::Nemesis(kind));
            }
        }
        for c in 0..self.config.clients {
            self.clients.push(Client {
                process: c as Process,
                current: None,
                seq: 0,
                last: None,
            });
            self.schedule(0, Ev::ClientNext(c));
        }
    }

    /// Whether the run is over: clients done (and not settling), or the queue ended.
    fn over(&self) -> bool {
        self.ended || (self.phase != Phase::Settling && self.finished_clients >= self.clients.len())
    }

    /// Handles the next thing due at or before `until`: a planned action, which runs after
    /// every event of its instant, or else the next event. False when nothing is due by
    /// then or the run is over.
    fn next(&mut self, until: u64) -> bool {
        if self.over() {
            return false;
        }
        let limit = nanos(self.config.time_limit);
        let event = self.queue.peek().map(|e| e.time);
        if let Some(&(time, _)) = self.plan.get(self.planned) {
            if event.is_none_or(|e| time < e) {
                if time > limit {
                    self.ended = true;
                    return false;
                }
                if time > until {
                    return false;
                }
                let fault = self.plan[self.planned].1.clone();
                self.planned += 1;
                self.now = self.now.max(time);
                self.take_action(fault);
                return true;
            }
        }
        match event {
            Some(time) if time > limit => {
                self.ended = true;
                false
            }
            Some(time) if time > until => false,
            Some(_) => {
                let Some(next) = self.queue.pop() else {
                    return false;
                };
                self.now = next.time;
                self.stats.events += 1;
                self.handle(next.ev);
                true
            }
            None => {
                self.ended = true;
                false
            }
        }
    }

    /// Applies a fault taken by hand and records it.
    fn take_action(&mut self, fault: Fault) {
        self.actions.push((self.now, fault.clone()));
        self.apply_fault(fault);
    }

    /// Whether a fault fits this run (see [`LiveRun::inject`]).
    fn check(&self, fault: &Fault) -> Result<(), LiveError> {
        let nodes = self.config.nodes;
        let node = |n: NodeId| {
            if n < nodes {
                Ok(())
            } else {
                Err(LiveError::NoNode(n))
            }
        };
        match fault {
            Fault::Partition(groups) => groups.iter().flatten().try_for_each(|&n| node(n)),
            Fault::Block { from, to } | Fault::Unblock { from, to } => {
                node(*from)?;
                node(*to)?;
                if from == to {
                    return Err(LiveError::SelfLink(*from));
                }
                Ok(())
            }
            Fault::Crash(n)
            | Fault::Restart(n)
            | Fault::Pause(n)
            | Fault::Resume(n)
            | Fault::Skew(n, _) => node(*n),
            Fault::Drop(number) => {
                if self.in_flight(*number) {
                    Ok(())
                } else {
                    Err(LiveError::NotInFlight(*number))
                }
            }
            Fault::Heal | Fault::Loss(_) => Ok(()),
        }
    }

    /// Whether message `number` is on its way, or held by a paused node, and not doomed.
    fn in_flight(&self, number: u64) -> bool {
        let is = |ev: &Ev<N::Msg>| matches!(ev, Ev::Deliver { number: n, .. } if *n == number);
        !self.doomed.contains(&number)
            && (self.queue.iter().any(|s| is(&s.ev))
                || self.slots.iter().any(|slot| slot.held.iter().any(is)))
    }

    fn snapshot(&self) -> Snapshot {
        let mut messages: Vec<InFlight> = Vec::new();
        let mut view = |ev: &Ev<N::Msg>, due: u64, held: bool| {
            if let Ev::Deliver {
                from,
                to,
                payload,
                number,
                sent,
            } = ev
            {
                if !self.doomed.contains(number) {
                    messages.push(InFlight {
                        number: *number,
                        from: name(*from),
                        to: name(*to),
                        sent: *sent,
                        due,
                        held,
                        label: label(payload_text(payload)),
                    });
                }
            }
        };
        for scheduled in self.queue.iter() {
            view(&scheduled.ev, scheduled.time, false);
        }
        for slot in &self.slots {
            for ev in &slot.held {
                view(ev, self.now, true);
            }
        }
        messages.sort_by_key(|m| m.number);
        let more_messages = messages.len().saturating_sub(Snapshot::MAX_MESSAGES);
        messages.truncate(Snapshot::MAX_MESSAGES);
        let nodes = self.config.nodes;
        let cut = (0..nodes)
            .flat_map(|a| (0..nodes).map(move |b| (a, b)))
            .filter(|&(a, b)| self.blocked[a * nodes + b])
            .collect();
        let timed = |(time, fault): &(u64, Fault)| TimedFault {
            time: *time,
            fault: fault.to_string(),
        };
        let completion = |index: usize| {
            let event = &self.history.events[index];
            let kind = match event.kind {
                EventType::Ok => "ok",
                EventType::Fail => "fail",
                EventType::Info => "info",
                EventType::Invoke => "invoke",
            };
            let key = event.key.map(|k| format!(" k{k}")).unwrap_or_default();
            format!("{}{key} {} {kind}", event.f, event.value)
        };
        Snapshot {
            now: self.now,
            over: self.over(),
            phase: match (self.over(), self.phase) {
                (true, _) => "over",
                (false, Phase::Main) => "ops",
                (false, Phase::Settling) => "settling",
                (false, Phase::Final) => "final reads",
            },
            issued: self.issued,
            ops: self.config.ops,
            nodes: self
                .slots
                .iter()
                .enumerate()
                .map(|(id, slot)| NodeView {
                    id,
                    name: name(id),
                    status: match (&slot.node, slot.paused) {
                        (None, _) => "crashed",
                        (Some(_), true) => "paused",
                        (Some(_), false) => "up",
                    },
                    state: slot
                        .node
                        .as_ref()
                        .map(|node| label(node.describe(&slot.store)))
                        .unwrap_or_default(),
                    skew: slot.skew,
                    leader: self.leader == Some(id),
                })
                .collect(),
            messages,
            more_messages,
            cut,
            clients: self
                .clients
                .iter()
                .enumerate()
                .map(|(id, client)| ClientView {
                    id,
                    process: client.process,
                    current: client.current.as_ref().map(|c| format!("{:?}", c.op)),
                    since: client.current.as_ref().map(|c| c.since),
                    last: client.last.map(completion),
                })
                .collect(),
            actions: self.actions.iter().map(timed).collect(),
            faults: self.faults[self.faults.len().saturating_sub(Snapshot::MAX_FAULTS)..]
                .iter()
                .map(timed)
                .collect(),
            stats: RunStats {
                sim_time: self.now,
                trace_hash: self.trace.0,
                ..self.stats.clone()
            },
        }
    }

    fn handle(&mut self, ev: Ev<N::Msg>) {
        match ev {
            Ev::Deliver {
                from,
                to,
                payload,
                number,
                sent,
            } => self.deliver(from, to, payload, number, sent),
            Ev::Timer { node, id, tag } => {
                let slot = &mut self.slots[node];
                if slot.node.is_none() {
                    return;
                }
                if slot.paused {
                    slot.held.push(Ev::Timer { node, id, tag });
                    return;
                }
                if slot.books.fire_timer(id) {
                    self.trace.words(&[3, self.now, node as u64, tag]);
                    self.call(node, None, |n, ctx| {
                        n.on_timer(ctx, crate::node::TimerId(id), tag)
                    });
                }
            }
            Ev::CallTimeout { node, call } => {
                let slot = &mut self.slots[node];
                if slot.node.is_none() {
                    return;
                }
                if slot.paused {
                    slot.held.push(Ev::CallTimeout { node, call });
                    return;
                }
                if let Some(target) = slot.books.end_call(call) {
                    self.trace.words(&[4, self.now, node as u64]);
                    self.call(node, None, |n, ctx| {
                        n.on_reply(ctx, crate::node::CallId(call), target, None)
                    });
                }
            }
            // Once the operations are spent the nemesis rests, so that final reads see the
            // healed system.
            Ev::Fault(_) | Ev::Nemesis(_) if self.phase != Phase::Main => {}
            Ev::Fault(fault) => self.apply_fault(fault),
            Ev::Nemesis(kind) => {
                let interval = nanos(self.config.nemesis.interval);
                let (begin, end) =
                    self.config.nemesis.kinds[kind].draw(&mut self.rng, self.config.nodes);
                self.apply_fault(begin);
                let heal_at = self.now + around(&mut self.rng, interval);
                self.schedule(heal_at, Ev::Fault(end));
                let next = heal_at + around(&mut self.rng, interval);
                self.schedule(next, Ev::Nemesis(kind));
            }
            Ev::ClientNext(c) => self.client_next(c),
            Ev::Settled => {
                self.phase = Phase::Final;
                self.finished_clients = 0;
                for c in 0..self.clients.len() {
                    self.schedule(self.now, Ev::ClientNext(c));
                }
            }
            Ev::ClientTimeout { client, seq } => {
                let matches = self.clients[client]
                    .current
                    .as_ref()
                    .is_some_and(|cur| cur.seq == seq);
                if matches {
                    self.complete(client, None);
                }
            }
        }
    }

    /// Appends an event to the history; its index.
    fn record(
        &mut self,
        process: Process,
        kind: EventType,
        op: &Op,
        value: serde_json::Value,
    ) -> usize {
        self.trace.words(&[6, self.now, process, kind as u64]);
        self.history
            .push(Event::new(process, kind, op, value, self.now));
        self.history.events.len() - 1
    }

    fn client_next(&mut self, c: usize) {
        let op = match self.phase {
            Phase::Main if self.issued < self.config.ops => {
                self.issued += 1;
                self.generator.next(&mut self.rng)
            }
            Phase::Final if !self.final_ops.is_empty() => match self.final_ops.pop_front() {
                Some(op) => op,
                None => return,
            },
            _ => {
                self.finished_clients += 1;
                if self.phase == Phase::Main && self.finished_clients == self.clients.len() {
                    self.settle();
                }
                return;
            }
        };
        let client = &mut self.clients[c];
        client.seq += 1;
        let seq = client.seq;
        let process = client.process;
        self.record(process, EventType::Invoke, &op, op.argument());
        let node = crate::host::route(&op, self.leader, &mut self.round_robin, self.config.nodes);
        let id = self.next_request;
        self.next_request += 1;
        self.requests.insert(id, (c, seq));
        self.clients[c].current = Some(Current {
            seq,
            op: op.clone(),
            since: self.now,
        });
        self.transmit(GATEWAY, node, Payload::Request { id, op });
        let deadline = self.now + nanos(self.config.timeout);
        self.schedule(deadline, Ev::ClientTimeout { client: c, seq });
    }

    /// Heals every fault, and schedules the final reads after the settling time, if the
    /// workload has any.
    fn settle(&mut self) {
        self.final_ops = self.generator.final_ops().into();
        if self.final_ops.is_empty() {
            return;
        }
        self.apply_fault(Fault::Heal);
        self.loss = None;
        for n in 0..self.config.nodes {
            if self.slots[n].node.is_none() {
                self.apply_fault(Fault::Restart(n));
            } else if self.slots[n].paused {
                self.apply_fault(Fault::Resume(n));
            }
            if self.slots[n].skew != 0 {
                self.apply_fault(Fault::Skew(n, 0));
            }
        }
        self.phase = Phase::Settling;
        let at = self.now + nanos(self.config.settle);
        self.schedule(at, Ev::Settled);
    }

    /// Ends a client's current operation with `outcome` (`None`: timed out).
    fn complete(&mut self, c: usize, outcome: Option<Outcome>) {
        let Some(current) = self.clients[c].current.take() else {
            return;
        };
        let process = self.clients[c].process;
        let succeeded = matches!(outcome, Some(Outcome::Ok(_)));
        if self.phase == Phase::Final && !succeeded && self.final_retries < MAX_FINAL_RETRIES {
            // A final read lost to the link is asked again: the check needs one that succeeded.
            self.final_retries += 1;
            self.final_ops.push_back(current.op.clone());
        }
        let (kind, value) = completion(&current.op, outcome.as_ref());
        match kind {
            EventType::Ok => self.stats.ops_ok += 1,
            EventType::Fail => self.stats.ops_fail += 1,
            _ => self.stats.ops_info += 1,
        }
        let last = self.record(process, kind, &current.op, value);
        if kind == EventType::Info {
            // An indefinite operation may still take effect at any time: the process that
            // issued it stays open forever, and the client goes on as a new one.
            self.clients[c].process = self.next_process;
            self.next_process += 1;
        }
        self.clients[c].last = Some(last);
        self.schedule(self.now, Ev::ClientNext(c));
    }

    fn link(&self, from: usize, to: usize) -> LinkConfig {
        let mut link = self.config.link;
        for (pair, config) in &self.config.links {
            if *pair == (from, to) {
                link = *config;
            }
        }
        if let Some(loss) = self.loss {
            link.loss = loss;
        }
        link
    }

    fn cut(&self, from: usize, to: usize) -> bool {
        from != GATEWAY && to != GATEWAY && self.blocked[from * self.config.nodes + to]
    }

    fn lost(&mut self, from: usize, to: usize, why: Loss) {
        self.stats.dropped += 1;
        self.trace
            .words(&[2, self.now, from as u64, to as u64, why as u64]);
    }

    /// Numbers a new message (or copy of one), and records it when recording is on: the
    /// record's index is the number.
    fn new_message(&mut self, from: usize, to: usize, payload: &Payload<N::Msg>) -> u64 {
        let number = self.next_message;
        self.next_message += 1;
        if self.config.record_messages {
            self.messages.push(MessageRecord {
                from: name(from),
                to: name(to),
                sent: self.now,
                delivered: None,
                label: label(payload_text(payload)),
            });
        }
        number
    }

    /// Puts a message on the link from `from` to `to`: lost, delayed, or duplicated.
    fn transmit(&mut self, from: usize, to: usize, payload: Payload<N::Msg>) {
        self.stats.sent += 1;
        let number = self.new_message(from, to, &payload);
        let sent = self.now;
        if from == to {
            // A node's message to itself never leaves it: no latency, no faults.
            self.schedule(
                self.now,
                Ev::Deliver {
                    from,
                    to,
                    payload,
                    number,
                    sent,
                },
            );
            return;
        }
        if self.cut(from, to) {
            self.lost(from, to, Loss::Partition);
            return;
        }
        let link = self.link(from, to);
        if self.rng.chance(link.loss) {
            self.lost(from, to, Loss::Link);
            return;
        }
        // Client requests and answers travel as over a connection: at most once. A duplicated
        // request would be carried out twice, and its second answer would contradict the first.
        let duplicate = from != GATEWAY && to != GATEWAY && self.rng.chance(link.duplicate);
        if duplicate {
            self.stats.duplicated += 1;
            let copy = self.new_message(from, to, &payload);
            let delay = self.delay(&link);
            self.schedule(
                self.now + delay,
                Ev::Deliver {
                    from,
                    to,
                    payload: payload.clone(),
                    number: copy,
                    sent,
                },
            );
        }
        let delay = self.delay(&link);
        self.schedule(
            self.now + delay,
            Ev::Deliver {
                from,
                to,
                payload,
                number,
                sent,
            },
        );
    }

    fn delay(&mut self, link: &LinkConfig) -> u64 {
        let mut delay = link.latency.draw(&mut self.rng);
        if self.rng.chance(link.reorder) {
            delay = delay.saturating_add(link.latency.draw(&mut self.rng));
        }
        delay
    }

    fn delivered(&mut self, from: usize, to: usize, number: u64) {
        self.stats.delivered += 1;
        self.trace.words(&[1, self.now, from as u64, to as u64]);
        if self.config.record_messages {
            if let Some(r) = usize::try_from(number)
                .ok()
                .and_then(|i| self.messages.get_mut(i))
            {
                r.delivered = Some(self.now);
            }
        }
    }

    fn deliver(
        &mut self,
        from: usize,
        to: usize,
        payload: Payload<N::Msg>,
        number: u64,
        sent: u64,
    ) {
        if !self.doomed.is_empty() && self.doomed.remove(&number) {
            self.lost(from, to, Loss::Dropped);
            return;
        }
        if to == GATEWAY {
            self.delivered(from, to, number);
            if let Payload::Answer { id, outcome } = payload {
                if let Some((client, seq)) = self.requests.remove(&id) {
                    let current = self.clients[client].current.as_ref();
                    if current.is_some_and(|cur| cur.seq == seq) {
                        self.complete(client, Some(outcome));
                    }
                }
            }
            return;
        }
        let slot = &mut self.slots[to];
        if slot.node.is_none() {
            self.lost(from, to, Loss::Down);
            return;
        }
        if slot.paused {
            slot.held.push(Ev::Deliver {
                from,
                to,
                payload,
                number,
                sent,
            });
            return;
        }
        if self.cut(from, to) {
            // Cut while in flight.
            self.lost(from, to, Loss::Partition);
            return;
        }
        self.delivered(from, to, number);
        match payload {
            Payload::Peer { msg, wire } => match wire {
                Wire::Plain => self.call(to, None, |n, ctx| n.on_message(ctx, from, msg)),
                Wire::Call(call) => self.call(to, Some((from, call)), |n, ctx| {
                    n.on_message(ctx, from, msg)
                }),
                Wire::Reply(call) => {
                    if self.slots[to].books.end_call(call).is_some() {
                        self.call(to, None, |n, ctx| {
                            n.on_reply(ctx, crate::node::CallId(call), from, Some(msg))
                        });
                    }
                }
            },
            Payload::Request { id, op } => {
                self.call(to, None, |n, ctx| n.on_client(ctx, RequestId(id), op))
            }
            // Nodes are never sent answers; only the gateway is.
            Payload::Answer { .. } => {}
        }
    }

    /// Calls one of node `id`'s handlers with a fresh context, then carries out its actions.
    fn call(
        &mut self,
        id: NodeId,
        replying_to: Option<(NodeId, u64)>,
        f: impl FnOnce(&mut N, &mut Ctx<'_, N>),
    ) {
        let nodes = self.config.nodes;
        let now = self.now;
        let slot = &mut self.slots[id];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let mut ctx = slot.books.ctx(
            id,
            nodes,
            now.saturating_add_signed(slot.skew),
            &mut slot.store,
            &mut self.rng,
            &mut self.out,
            replying_to,
        );
        f(node, &mut ctx);
        let mut out = std::mem::take(&mut self.out);
        for action in out.drain(..) {
            self.act(id, action);
        }
        self.out = out;
    }

    fn act(&mut self, id: NodeId, action: Action<N::Msg>) {
        self.slots[id].books.note(&action);
        match action {
            Action::Send { to, msg, wire } => {
                if to >= self.config.nodes {
                    return;
                }
                let msg = if self.config.serialize {
                    match serde_json::to_vec(&msg) {
                        Ok(bytes) => {
                            self.stats.bytes += bytes.len() as u64;
                            match serde_json::from_slice(&bytes) {
                                Ok(msg) => msg,
                                Err(_) => return,
                            }
                        }
                        Err(_) => return,
                    }
                } else {
                    msg
                };
                self.transmit(id, to, Payload::Peer { msg, wire });
            }
            Action::Answer { request, outcome } => {
                self.transmit(
                    id,
                    GATEWAY,
                    Payload::Answer {
                        id: request.0,
                        outcome,
                    },
                );
            }
            Action::Timer {
                id: timer,
                after,
                tag,
            } => {
                self.schedule(
                    self.now.saturating_add(after),
                    Ev::Timer {
                        node: id,
                        id: timer,
                        tag,
                    },
                );
            }
            Action::CancelTimer(_) => {}
            Action::CallTimeout { call, after, .. } => {
                self.schedule(
                    self.now.saturating_add(after),
                    Ev::CallTimeout { node: id, call },
                );
            }
            Action::Leader => self.leader = Some(id),
        }
    }

    fn apply_fault(&mut self, fault: Fault) {
        self.stats.faults += 1;
        self.trace.words(&[5, self.now]);
        self.trace.bytes(fault.to_string().as_bytes());
        self.faults.push((self.now, fault.clone()));
        let nodes = self.config.nodes;
        match fault {
            Fault::Partition(groups) => {
                let group_of = |n: NodeId| groups.iter().position(|g| g.contains(&n));
                for a in 0..nodes {
                    for b in 0..nodes {
                        let (ga, gb) = (group_of(a), group_of(b));
                        self.blocked[a * nodes + b] = a != b && (ga.is_none() || ga != gb);
                    }
                }
            }
            Fault::Block { from, to } => {
                if from < nodes && to < nodes && from != to {
                    self.blocked[from * nodes + to] = true;
                }
            }
            Fault::Unblock { from, to } => {
                if from < nodes && to < nodes {
                    self.blocked[from * nodes + to] = false;
                }
            }
            Fault::Heal => self.blocked.iter_mut().for_each(|b| *b = false),
            Fault::Crash(n) => {
                if let Some(slot) = self.slots.get_mut(n) {
                    slot.node = None;
                    slot.paused = false;
                    slot.held.clear();
                    slot.books.clear();
                }
            }
            Fault::Restart(n) => {
                if self.slots.get(n).is_some_and(|s| s.node.is_none()) {
                    self.slots[n].node = Some((self.factory)(n, nodes));
                    self.call(n, None, |node, ctx| node.on_start(ctx));
                }
            }
            Fault::Pause(n) => {
                if let Some(slot) = self.slots.get_mut(n) {
                    slot.paused = slot.node.is_some();
                }
            }
            Fault::Resume(n) => {
                if let Some(slot) = self.slots.get_mut(n) {
                    slot.paused = false;
                    let held = std::mem::take(&mut slot.held);
                    for ev in held {
                        self.schedule(self.now, ev);
                    }
                }
            }
            Fault::Skew(n, by) => {
                if let Some(slot) = self.slots.get_mut(n) {
                    slot.skew = by;
                }
            }
            Fault::Loss(p) => self.loss = Some(p),
            Fault::Drop(number) => {
                if self.in_flight(number) {
                    self.doomed.insert(number);
                }
            }
        }
    }
}
