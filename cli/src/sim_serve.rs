//! `zhub sim serve`: a simulator algorithm's nodes as real processes connected to a zhub
//! broker, driven by clients over the broker, their history checked as `zhub sim run`'s is.
//!
//! Each node is this executable again (`zhub sim node`, hidden) around a
//! [`zhub_sim::host::NodeHost`]: a worker of its own service for client operations (with a
//! concurrency, answering them in any order) and a subscriber of its own inbox topic for
//! messages from the other nodes. The serving process runs the clients (closed loops, as the
//! kernel's: one operation at a time each, drawn from the same generator), the gateway (the
//! announced leader, else round robin, or the node an operation is aimed at), records the
//! history with real times since the run began, and checks it. The broker's fault rules
//! (`zhub fault`) act on the nodes' messages, so a partition is `zhub fault partition --run R
//! n1 n2,n3`.
//!
//! # Subjects
//! | what                                        | name                                   |
//! |---------------------------------------------|----------------------------------------|
//! | client operations to node K (from 1)        | service `sim.RUN.nK`                   |
//! | a message from node J to node K             | topic `sim.RUN.nK.nJ` (a host envelope) |
//! | node K announces itself leader              | topic `sim.RUN.leader`, body `K - 1` (JSON) |
//!
//! A client operation's request body is the JSON object `{"id": N, "op": OP}` (`N` unique in
//! the run, `OP` a [`zhub_sim::Op`] as serde_json writes it); the reply body is the node's
//! [`zhub_sim::Outcome`] in JSON. A request that times out is an indefinite (`info`)
//! operation; one the broker refused before any node saw it (no service, busy) is a `fail`.
//!
//! The node processes end when the serving process does: it closes their stdin when done,
//! kills them when they do not stop, and each node stops when its stdin closes (so that even
//! a killed `zhub sim serve` leaves no node behind for long). Nodes keep their storage in
//! memory: a node process that dies loses it, unlike a simulated crash.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};
use zhub_client::{Client, RequestErrorKind};
use zhub_protocol::builtin::{ServiceInfo, SERVICES_SERVICE};
use zhub_sim::algorithms::{self, Algorithm};
use zhub_sim::history::{completion, Event, EventType, History, Process};
use zhub_sim::host::{route, Output};
use zhub_sim::rng::Rng;
use zhub_sim::workload::Generator;
use zhub_sim::{Op, Outcome, RunResult, RunStats, SimConfig};
use zhub_worker::{Request, WorkerOptions};

/// Most nodes a served run may have: each is a process.
const MAX_NODES: usize = 64;
/// Most client operations a node takes at once.
const NODE_CONCURRENCY: u32 = 64;
/// How many times, in all, final reads are asked again after failing (as in the kernel).
const MAX_FINAL_RETRIES: u32 = 100;
/// Peer messages queued between a node's subscription thread and its loop; beyond it the
/// subscription waits, and the broker counts what its queue then drops.
const INBOX: usize = 10_000;
/// How long nodes may take to stop once told to, before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The topic prefix of run `run`.
pub(crate) fn run_prefix(run: &str) -> String {
    format!("sim.{run}.")
}

/// The service of node `node` (an index from 0).
fn service(run: &str, node: usize) -> String {
    format!("sim.{run}.n{}", node + 1)
}

/// The topic of messages from node `from` to node `to` (indices from 0).
pub(crate) fn peer_topic(run: &str, to: usize, from: usize) -> String {
    format!("sim.{run}.n{}.n{}", to + 1, from + 1)
}

fn leader_topic(run: &str) -> String {
    format!("sim.{run}.leader")
}

/// Reads a node's name, `n1` or `1`, as its index from 0.
pub(crate) fn parse_node(text: &str) -> Result<usize, String> {
    let digits = text.strip_prefix('n').unwrap_or(text);
    match digits.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n - 1),
        _ => Err(format!("{text:?} is not a node (n1, n2, ...)")),
    }
}

/// Checks a run's name: one token of letters, digits, `-` and `_`.
pub(crate) fn check_run(run: &str) -> anyhow::Result<()> {
    let ok = !run.is_empty()
        && run.len() <= 64
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("run name {run:?}: use up to 64 letters, digits, '-' and '_'");
    }
    Ok(())
}

/// A client operation as a node's request carries it.
#[derive(Debug, Serialize, Deserialize)]
struct ClientOp {
    id: u64,
    op: Op,
}

/// Arguments of `zhub sim serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// The algorithm (see `zhub sim list`).
    algorithm: String,
    /// Nodes, each a process.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Operations, in all.
    #[arg(long, default_value_t = 200)]
    ops: u64,
    /// The seed of the clients' operations and of each node's generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keys of the register workload.
    #[arg(long, default_value_t = 10)]
    keys: u64,
    /// The run's name, in its subjects (`sim.RUN.…`); default: a random one.
    #[arg(long)]
    run: Option<String>,
    /// Once the operations are spent: how long the healed system settles before the
    /// workload's final reads (counter, broadcast, append-log).
    #[arg(long, value_parser = crate::parse_duration, default_value = "1s")]
    settle: Duration,
    /// How long the nodes may take to start and register.
    #[arg(long, value_parser = crate::parse_duration, default_value = "10s")]
    ready_timeout: Duration,
    /// Write the history, as JSON lines, to this file.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Write the run as one self-contained HTML page (the history as a timeline, with the
    /// linearization or the violation marked).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// Arguments of `zhub sim node` (started by `zhub sim serve`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NodeArgs {
    /// The algorithm.
    algorithm: String,
    /// The run's name.
    #[arg(long)]
    run: String,
    /// This node's index, from 0.
    #[arg(long)]
    node: usize,
    /// The run's nodes.
    #[arg(long)]
    nodes: usize,
    /// The run's seed.
    #[arg(long)]
    seed: u64,
}

fn find(name: &str) -> anyhow::Result<&'static Algorithm> {
    algorithms::find(name).ok_or_else(|| anyhow!("unknown algorithm {name:?} (see zhub sim list)"))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `zhub sim node`: one node, until its stdin closes or its worker stops.
pub(crate) fn node(url: &str, timeout: Duration, args: &NodeArgs) -> anyhow::Result<()> {
    let algorithm = find(&args.algorithm)?;
    check_run(&args.run)?;
    if args.node >= args.nodes {
        bail!("node {} of {}", args.node, args.nodes);
    }
    let me = args.node;
    let mut host = (algorithm.host)(me, args.nodes, args.seed);
    let mut client = crate::connect(url, timeout)?;
    let mut worker = crate::creds::worker(WorkerOptions::new())
        .concurrency(NODE_CONCURRENCY)
        .connect(url, &service(&args.run, me))?;
    let stopper = worker.stopper();
    // The serving process closes our stdin when it is done, or when it dies. A node left
    // behind would hold what it inherited (a test's locks, say): it stops, and if it has
    // not within STOP_GRACE, it exits.
    std::thread::Builder::new()
        .name("zhub-sim-stdin".into())
        .spawn(move || {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            stopper.stop();
            std::thread::sleep(STOP_GRACE);
            std::process::exit(0);
        })?;
    let (inbox, messages) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(INBOX);
    let waker = worker.waker()?;
    let nodes = args.nodes;
    let inbox_topic = format!("sim.{}.n{}.*", args.run, me + 1);
    let _subscription = client.subscribe_with(&[inbox_topic.as_str()], move |message| {
        let from = message
            .topic()
            .rsplit('.')
            .next()
            .and_then(|n| parse_node(n).ok())
            .filter(|&n| n < nodes);
        match from {
            Some(from) => {
                if inbox.send((from, message.into_body())).is_ok() {
                    waker.wake();
                }
            }
            None => debug!(topic = message.topic(), "message from no node dropped"),
        }
    })?;
    let started = Instant::now();
    let mut pending: HashMap<u64, Request> = HashMap::new();
    let mut out = Vec::new();
    host.start(Duration::ZERO, &mut out);
    loop {
        let now = started.elapsed();
        while let Ok((from, bytes)) = messages.try_recv() {
            if let Err(e) = host.message(now, from, &bytes, &mut out) {
                warn!(error = %e, "peer message dropped");
            }
        }
        host.tick(now, &mut out);
        for output in out.drain(..) {
            match output {
                Output::Send { to, bytes } => {
                    client.publish_bytes(&peer_topic(&args.run, to, me), &bytes)?
                }
                Output::Answer { request, outcome } => {
                    if let Some(req) = pending.remove(&request) {
                        match worker.reply(&req, &serde_json::to_vec(&outcome)?) {
                            Err(zhub_worker::WorkerError::Stopped) => return Ok(()),
                            other => other?,
                        }
                    }
                }
                Output::Leader => {
                    client.publish_bytes(&leader_topic(&args.run), &serde_json::to_vec(&me)?)?
                }
            }
        }
        let wait = host
            .next_deadline()
            .map_or(Duration::from_secs(1), |at| {
                at.saturating_sub(started.elapsed())
            })
            .min(Duration::from_secs(1));
        match worker.recv_timeout(wait) {
            Ok(Some(request)) => match serde_json::from_slice::<ClientOp>(request.body()) {
                Ok(ClientOp { id, op }) => {
                    pending.insert(id, request);
                    host.client(started.elapsed(), id, op, &mut out);
                }
                Err(e) => match worker.fail(&request, &format!("not a client operation: {e}")) {
                    Err(zhub_worker::WorkerError::Stopped) => return Ok(()),
                    other => other?,
                },
            },
            Ok(None) => {}
            Err(zhub_worker::WorkerError::Stopped) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The node processes of a run: told to stop (stdin closed) and reaped when dropped, and
/// killed if they do not stop within [`STOP_GRACE`], on every way out of `serve`.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        let until = Instant::now() + STOP_GRACE;
        for child in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= until => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

fn spawn_nodes(
    url: &str,
    algorithm: &Algorithm,
    run: &str,
    nodes: usize,
    seed: u64,
) -> anyhow::Result<Nodes> {
    let exe = std::env::current_exe().context("cannot find the zhub executable")?;
    let mut children = Nodes(Vec::new());
    for k in 0..nodes {
        let child = Command::new(&exe)
            .args(["--url", url, "sim", "node", algorithm.name, "--run", run])
            .args(["--node", &k.to_string(), "--nodes", &nodes.to_string()])
            .args(["--seed", &seed.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a node process")?;
        children.0.push(child);
    }
    Ok(children)
}

/// Waits until every node's service has a worker (a node subscribes before it registers,
/// so its inbox is live by then).
fn wait_ready(
    client: &mut Client,
    children: &mut Nodes,
    run: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    let names: Vec<String> = (0..children.0.len()).map(|k| service(run, k)).collect();
    let mut interval = Duration::from_millis(5);
    loop {
        for (k, child) in children.0.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                bail!("node n{} exited before it was ready ({status})", k + 1);
            }
        }
        let list: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &())?;
        let ready = names
            .iter()
            .all(|name| list.iter().any(|s| &s.name == name && s.workers > 0));
        if ready {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("the nodes did not all register within {limit:?}");
        }
        // Polling the broker, with a growing pause: nothing tells us sooner.
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// One closed-loop client.
struct ClientLoop {
    process: Process,
    /// The operation in flight, by request id.
    current: Option<(u64, Op)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Main,
    Final,
}

/// The clients and gateway of a served run.
struct Driver<'a> {
    client: &'a mut Client,
    run: String,
    nodes: usize,
    timeout: Duration,
    started: Instant,
    rng: Rng,
    generator: Generator,
    ops: u64,
    issued: u64,
    phase: Phase,
    final_ops: VecDeque<Op>,
    final_retries: u32,
    clients: Vec<ClientLoop>,
    next_process: Process,
    /// Broker request id -> client.
    in_flight: HashMap<u64, usize>,
    next_id: u64,
    round_robin: usize,
    /// The announced leader plus one; 0 for none.
    leader: Arc<AtomicUsize>,
    history: History,
    stats: RunStats,
}

impl Driver<'_> {
    fn record(&mut self, process: Process, kind: EventType, op: &Op, value: serde_json::Value) {
        let time = nanos(self.started.elapsed());
        self.history
            .push(Event::new(process, kind, op, value, time));
    }

    /// The client's next operation, if any is left in this phase.
    fn next_op(&mut self) -> Option<Op> {
        match self.phase {
            Phase::Main if self.issued < self.ops => {
                self.issued += 1;
                Some(self.generator.next(&mut self.rng))
            }
            Phase::Main => None,
            Phase::Final => self.final_ops.pop_front(),
        }
    }

    /// Issues client `c`'s next operation, if any; false when it has none.
    fn issue(&mut self, c: usize) -> bool {
        let Some(op) = self.next_op() else {
            return false;
        };
        let process = self.clients[c].process;
        self.record(process, EventType::Invoke, &op, op.argument());
        let leader = match self.leader.load(Ordering::Relaxed) {
            0 => None,
            n => Some((n - 1).min(self.nodes - 1)),
        };
        let node = route(&op, leader, &mut self.round_robin, self.nodes);
        let id = self.next_id;
        self.next_id += 1;
        let body = match serde_json::to_vec(&ClientOp { id, op: op.clone() }) {
            Ok(body) => body,
            Err(_) => return false,
        };
        self.stats.sent += 1;
        match self
            .client
            .send_request_bytes(&service(&self.run, node), &body, self.timeout)
        {
            Ok(request) => {
                self.in_flight.insert(request, c);
                self.clients[c].current = Some((request, op));
            }
            Err(e) => {
                // Not handed to the broker: certainly not carried out.
                debug!(error = %e, "request not sent");
                self.clients[c].current = Some((u64::MAX, op));
                self.complete(c, Some(Outcome::Fail(e.to_string())));
            }
        }
        true
    }

    /// Ends client `c`'s operation with `outcome` (`None`: indefinite).
    fn complete(&mut self, c: usize, outcome: Option<Outcome>) {
        let Some((_, op)) = self.clients[c].current.take() else {
            return;
        };
        let process = self.clients[c].process;
        let succeeded = matches!(outcome, Some(Outcome::Ok(_)));
        if self.phase == Phase::Final && !succeeded && self.final_retries < MAX_FINAL_RETRIES {
            self.final_retries += 1;
            self.final_ops.push_back(op.clone());
        }
        let (kind, value) = completion(&op, outcome.as_ref());
        match kind {
            EventType::Ok => self.stats.ops_ok += 1,
            EventType::Fail => self.stats.ops_fail += 1,
            _ => self.stats.ops_info += 1,
        }
        self.record(process, kind, &op, value);
        if kind == EventType::Info {
            // As in the kernel: the indefinite operation's process stays open, and the
            // client goes on as a new one.
            self.clients[c].process = self.next_process;
            self.next_process += 1;
        }
    }

    /// Runs the clients until every operation of the phase has completed.
    fn run_phase(&mut self) -> anyhow::Result<()> {
        for c in 0..self.clients.len() {
            while self.clients[c].current.is_none() && self.issue(c) {}
        }
        while !self.in_flight.is_empty() {
            let (request, result) = self.client.recv_reply()?;
            let Some(c) = self.in_flight.remove(&request) else {
                continue;
            };
            self.stats.delivered += 1;
            let outcome = match result {
                Ok(body) => serde_json::from_slice::<Outcome>(&body).ok(),
                // Refused before any node saw it.
                Err(e)
                    if matches!(
                        e.kind(),
                        RequestErrorKind::NoService | RequestErrorKind::Busy
                    ) =>
                {
                    Some(Outcome::Fail(e.to_string()))
                }
                Err(_) => None,
            };
            self.complete(c, outcome);
            while self.clients[c].current.is_none() && self.issue(c) {}
        }
        Ok(())
    }
}

/// The bus counters that tell what the broker did to the nodes' messages.
fn bus_figures(client: &mut Client) -> anyhow::Result<[u64; 4]> {
    let bus = client.stats()?.bus;
    Ok([
        bus.messages_in,
        bus.messages_out,
        bus.dropped.fault,
        bus.fault_delayed,
    ])
}

/// `zhub sim serve`.
pub(crate) fn serve(
    url: &str,
    broker_timeout: Duration,
    op_timeout: Duration,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let algorithm = find(&args.algorithm)?;
    if args.nodes == 0 || args.clients == 0 {
        bail!("a run needs at least one node and one client");
    }
    if args.nodes > MAX_NODES {
        bail!("at most {MAX_NODES} nodes: each is a process");
    }
    let run = match &args.run {
        Some(run) => run.clone(),
        None => format!("r{:08x}", zhub_protocol::ids::random_u64() as u32),
    };
    check_run(&run)?;
    let mut client = crate::connect(url, broker_timeout)?;
    let mut nodes = spawn_nodes(url, algorithm, &run, args.nodes, args.seed)?;
    wait_ready(&mut client, &mut nodes, &run, args.ready_timeout)?;
    let leader = Arc::new(AtomicUsize::new(0));
    let heard = Arc::clone(&leader);
    let leader_topic = leader_topic(&run);
    let _leaders = client.subscribe_with(&[leader_topic.as_str()], move |message| {
        if let Ok(node) = serde_json::from_slice::<usize>(message.body()) {
            heard.store(node.saturating_add(1), Ordering::Relaxed);
        }
    })?;
    let before = bus_figures(&mut client)?;
    let config = SimConfig {
        nodes: args.nodes,
        clients: args.clients,
        ops: args.ops,
        seed: args.seed,
        workload: algorithm.workload,
        keys: args.keys,
        timeout: op_timeout,
        settle: args.settle,
        ..SimConfig::default()
    };
    let started = Instant::now();
    let mut driver = Driver {
        client: &mut client,
        run: run.clone(),
        nodes: args.nodes,
        timeout: op_timeout,
        started,
        rng: Rng::new(args.seed),
        generator: Generator::new(config.workload, config.keys, config.nodes),
        ops: args.ops,
        issued: 0,
        phase: Phase::Main,
        final_ops: VecDeque::new(),
        final_retries: 0,
        clients: (0..args.clients)
            .map(|c| ClientLoop {
                process: c as Process,
                current: None,
            })
            .collect(),
        next_process: args.clients as Process,
        in_flight: HashMap::new(),
        next_id: 0,
        round_robin: 0,
        leader,
        history: History::new(),
        stats: RunStats::default(),
    };
    driver.run_phase()?;
    let final_ops = driver.generator.final_ops();
    let mut healed = 0;
    if !final_ops.is_empty() {
        // As the kernel does: heal, settle, then the final reads, each asked until it works.
        healed = crate::fault::heal(driver.client, &run).unwrap_or(0);
        std::thread::sleep(args.settle);
        driver.phase = Phase::Final;
        driver.final_ops = final_ops.into();
        driver.run_phase()?;
    }
    let wall = started.elapsed();
    let mut result = RunResult {
        history: std::mem::take(&mut driver.history),
        stats: driver.stats.clone(),
        ..RunResult::default()
    };
    result.stats.wall_nanos = nanos(wall);
    result.stats.sim_time = nanos(wall);
    let after = bus_figures(&mut client)?;
    drop(nodes);

    if let Some(path) = &args.history {
        crate::sim::write_history(path, &result)?;
    }
    let judgement = crate::sim::judge(&config, &result);
    if let Some(path) = &args.report {
        let title = format!(
            "zhub sim serve: {}, run {run}, seed {}",
            algorithm.name, args.seed
        );
        crate::sim::write_report(path, &title, &result, &judgement)?;
    }
    println!(
        "{}: {} nodes (processes), {} clients, {} workload, seed {}",
        algorithm.name, config.nodes, config.clients, config.workload, config.seed
    );
    println!("broker       {url}, run {run} (topics sim.{run}.>)");
    let [d_in, d_out, d_dropped, d_delayed] =
        [0, 1, 2, 3].map(|i| after[i].saturating_sub(before[i]));
    println!(
        "bus          {d_in} published, {d_out} delivered; by fault rules {d_dropped} dropped, {d_delayed} delayed{}",
        if healed > 0 {
            format!("; {healed} rules healed before the final reads")
        } else {
            String::new()
        }
    );
    println!("{}", crate::sim::ops_line(&result.stats));
    println!("time         {wall:.1?} of wall time");
    crate::sim::print_history_stats(&result.history);
    println!("check        {}", judgement.verdict);
    if !judgement.ok {
        bail!("the check failed");
    }
    Ok(())
}
