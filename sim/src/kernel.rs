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

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

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
/// No message record (recording is off).
const NO_RECORD: u32 = u32::MAX;

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
            record_messages: false,
            serialize: false,
            settle: Duration::from_secs(1),
            time_limit: Duration::from_secs(3600),
        }
    }
}

/// The figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
        record: u32,
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
}

struct Client {
    process: Process,
    current: Option<Current>,
    seq: u64,
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

/// A duration around `mean`: uniform from half of it to one and a half times it.
fn around(rng: &mut Rng, mean: u64) -> u64 {
    rng.range(mean / 2, mean + mean / 2).max(1)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs one simulation of the nodes `factory` builds (`factory(id, nodes)`, called at start
/// and at each restart) under `config`, to the end of its operations or its time limit.
pub fn run<N: Node>(config: &SimConfig, factory: impl FnMut(NodeId, usize) -> N) -> RunResult {
    let started = Instant::now();
    let nodes = config.nodes.max(1);
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
    };
    sim.start();
    sim.run_loop();
    sim.stats.sim_time = sim.now;
    sim.stats.trace_hash = sim.trace.0;
    sim.stats.wall_nanos = nanos(started.elapsed());
    RunResult {
        history: sim.history,
        messages: sim.messages,
        faults: sim.faults,
        stats: sim.stats,
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
            });
            self.schedule(0, Ev::ClientNext(c));
        }
    }

    fn run_loop(&mut self) {
        let limit = nanos(self.config.time_limit);
        while self.phase == Phase::Settling || self.finished_clients < self.clients.len() {
            let Some(next) = self.queue.pop() else {
                break;
            };
            if next.time > limit {
                break;
            }
            self.now = next.time;
            self.stats.events += 1;
            self.handle(next.ev);
        }
    }

    fn handle(&mut self, ev: Ev<N::Msg>) {
        match ev {
            Ev::Deliver {
                from,
                to,
                payload,
                record,
            } => self.deliver(from, to, payload, record),
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

    fn record(&mut self, process: Process, kind: EventType, op: &Op, value: serde_json::Value) {
        self.trace.words(&[6, self.now, process, kind as u64]);
        self.history
            .push(Event::new(process, kind, op, value, self.now));
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
        self.record(process, kind, &current.op, value);
        if kind == EventType::Info {
            // An indefinite operation may still take effect at any time: the process that
            // issued it stays open forever, and the client goes on as a new one.
            self.clients[c].process = self.next_process;
            self.next_process += 1;
        }
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

    fn new_record(&mut self, from: usize, to: usize, payload: &Payload<N::Msg>) -> u32 {
        if !self.config.record_messages {
            return NO_RECORD;
        }
        let text = match payload {
            Payload::Peer { msg, wire } => match wire {
                Wire::Plain => format!("{msg:?}"),
                Wire::Call(id) => format!("{msg:?} #{id}"),
                Wire::Reply(id) => format!("{msg:?} re #{id}"),
            },
            Payload::Request { id, op } => format!("{op:?} req {id}"),
            Payload::Answer { id, outcome } => format!("{outcome:?} req {id}"),
        };
        self.messages.push(MessageRecord {
            from: name(from),
            to: name(to),
            sent: self.now,
            delivered: None,
            label: label(text),
        });
        u32::try_from(self.messages.len() - 1).unwrap_or(NO_RECORD)
    }

    /// Puts a message on the link from `from` to `to`: lost, delayed, or duplicated.
    fn transmit(&mut self, from: usize, to: usize, payload: Payload<N::Msg>) {
        self.stats.sent += 1;
        let record = self.new_record(from, to, &payload);
        if from == to {
            // A node's message to itself never leaves it: no latency, no faults.
            self.schedule(
                self.now,
                Ev::Deliver {
                    from,
                    to,
                    payload,
                    record,
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
            let copy = self.new_record(from, to, &payload);
            let delay = self.delay(&link);
            self.schedule(
                self.now + delay,
                Ev::Deliver {
                    from,
                    to,
                    payload: payload.clone(),
                    record: copy,
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
                record,
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

    fn delivered(&mut self, from: usize, to: usize, record: u32) {
        self.stats.delivered += 1;
        self.trace.words(&[1, self.now, from as u64, to as u64]);
        if record != NO_RECORD {
            if let Some(r) = self.messages.get_mut(record as usize) {
                r.delivered = Some(self.now);
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, payload: Payload<N::Msg>, record: u32) {
        if to == GATEWAY {
            self.delivered(from, to, record);
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
                record,
            });
            return;
        }
        if self.cut(from, to) {
            // Cut while in flight.
            self.lost(from, to, Loss::Partition);
            return;
        }
        self.delivered(from, to, record);
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
        }
    }
}
