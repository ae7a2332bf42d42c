//! `zhub request`, `zhub serve`, `zhub services`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use zhub_client::RequestOptions;
use zhub_protocol::builtin::{LatencyHistogram, ServiceInfo, LATENCY_BOUNDS_US, SERVICES_SERVICE};
use zhub_worker::WorkerOptions;

use crate::body::{self, BodyFlags};

/// Bodies, as `zhub request --help` and `zhub serve --help` tell them.
const BODIES_HELP: &str = "\
Bodies:
  (default)  plain bytes: request sends BODY as typed and prints the reply's bytes;
             serve gives the request's bytes to the command and answers its stdout.
  --json     JSON text: request checks BODY is JSON and prints the reply as JSON (it
             must be JSON text); serve gives the command JSON (a body that is JSON
             text as it is, else one MessagePack value as JSON) and answers its
             stdout, which must be JSON, as JSON text.
  --msgpack  MessagePack, written and shown as JSON: request sends BODY (JSON) as one
             MessagePack value and prints the reply (one MessagePack value) as JSON;
             serve gives the command the request (one MessagePack value) as JSON and
             answers its stdout, which must be JSON, as MessagePack.";

/// Arguments of `zhub request`.
#[derive(Debug, clap::Args)]
#[command(after_help = BODIES_HELP)]
pub(crate) struct RequestArgs {
    /// The service to ask.
    service: String,
    /// The request body: its bytes as typed, or JSON with --json / --msgpack.
    body: String,
    #[command(flatten)]
    bodies: BodyFlags,
}

/// Arguments of `zhub serve`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["echo", "exec"])))]
#[command(after_help = BODIES_HELP)]
pub(crate) struct ServeArgs {
    /// The service to serve.
    service: String,
    /// Answer every request with its own body (re-encoded with --json / --msgpack).
    #[arg(long)]
    echo: bool,
    /// Run this shell command for every request: the request body on its stdin, its stdout
    /// as the reply.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    #[command(flatten)]
    bodies: BodyFlags,
    /// Heartbeat interval; match the broker's --heartbeat.
    #[arg(long, value_parser = parse_heartbeat, default_value = "2.5s")]
    heartbeat: Duration,
    /// Requests this worker takes at once (its credit at the broker), answered on that many
    /// threads. Not with --exec, which runs one command at a time.
    #[arg(
        long,
        default_value_t = 1,
        conflicts_with = "exec",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(zhub_protocol::mdp::MAX_CREDIT))
    )]
    concurrency: u32,
}

/// Arguments of `zhub services`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServicesArgs {
    /// Print one JSON array.
    #[arg(long)]
    json: bool,
}

/// A duration within the worker's heartbeat range: a zero heartbeat would make the worker
/// spin and the broker expire it at once.
fn parse_heartbeat(text: &str) -> Result<Duration, String> {
    let heartbeat = crate::parse_duration(text)?;
    let range = WorkerOptions::HEARTBEAT;
    if range.contains(&heartbeat) {
        Ok(heartbeat)
    } else {
        Err(format!(
            "{heartbeat:?} is out of range; allowed {:?}..={:?}",
            range.start(),
            range.end()
        ))
    }
}

pub(crate) fn request(url: &str, timeout: Duration, args: &RequestArgs) -> anyhow::Result<()> {
    let mode = args.bodies.mode();
    let body = body::request_body(mode, &args.body)?;
    let mut client = crate::connect(url, timeout)?;
    let reply = client.request_bytes_with(
        &args.service,
        &body,
        &RequestOptions::new().timeout(timeout),
    )?;
    let mut output = body::reply_output(mode, &reply)?;
    // One line for the shell; a reply that already ends its line is not given a second.
    if output.last() != Some(&b'\n') {
        output.push(b'\n');
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&output)?;
    stdout.flush()?;
    Ok(())
}

pub(crate) fn serve(url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let mut worker = crate::creds::worker(WorkerOptions::new())
        .heartbeat(args.heartbeat)
        .concurrency(args.concurrency)
        .connect(url, &args.service)?;
    eprintln!("serving {} at {url}", args.service);
    crate::watch::spawn(url, args.heartbeat * 2);
    let mode = args.bodies.mode();
    let failed = |e: anyhow::Error| {
        eprintln!("zhub serve: {e:#}");
        format!("error: {e:#}").into_bytes()
    };
    match &args.exec {
        None => worker.run(|body| {
            body::command_input(mode, body)
                .and_then(|input| body::serve_reply(mode, &input))
                .unwrap_or_else(failed)
        })?,
        // A command may run for any time: serve in threaded mode, so heartbeats go on while
        // it runs and the broker does not take the worker for dead.
        // A command that fails is a failure to the client (a worker-failed error with the
        // command's status and the end of its stderr), never a reply whose body is an error.
        Some(command) => loop {
            let request = worker.recv()?;
            let outcome = body::command_input(mode, request.body())
                .and_then(|input| run_command(command, &input))
                .and_then(|output| body::serve_reply(mode, &output));
            match outcome {
                Ok(reply) => worker.reply(&request, &reply)?,
                Err(e) => {
                    eprintln!("zhub serve: {e:#}");
                    worker.fail(&request, &format!("{e:#}"))?;
                }
            }
        },
    }
    Ok(())
}

/// Runs `command` with `input` on stdin and returns its stdout.
fn run_command(command: &str, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(input);
    }
    let output = child.wait_with_output()?;
    // The command's stderr goes on to ours, as it would without the pipe.
    let _ = std::io::stderr().write_all(&output.stderr);
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let last = said.lines().rev().find(|l| !l.trim().is_empty());
        match last {
            Some(line) => bail!("{command:?} exited with {}: {}", output.status, line.trim()),
            None => bail!("{command:?} exited with {}", output.status),
        }
    }
    Ok(output.stdout)
}

/// The bound of the latency bucket holding quantile `q`: `250us`, `2.5ms`, `>10s`, or `-`
/// before any reply.
fn latency_bound(latency: &LatencyHistogram, q: f64) -> String {
    if latency.count() == 0 {
        return "-".to_owned();
    }
    match latency.quantile_bound_us(q) {
        Some(us) if us < 1000 => format!("{us}us"),
        Some(us) if us < 1_000_000 => format!("{}ms", us as f64 / 1000.0),
        Some(us) => format!("{}s", us as f64 / 1e6),
        None => format!(
            ">{}s",
            LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1] / 1_000_000
        ),
    }
}

pub(crate) fn list(url: &str, timeout: Duration, args: &ServicesArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &())?;
    if args.json {
        println!("{}", serde_json::to_string(&services)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>7} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9}  peers(credit)",
        "service", "workers", "idle", "queued", "in-flight", "served", "p50<=", "p99<="
    );
    for s in services {
        let bound = |q| latency_bound(&s.latency, q);
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| format!("{}({})", p.broker, p.credit))
            .collect();
        println!(
            "{:<24} {:>7} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9}  {}",
            s.name,
            s.workers,
            s.idle,
            s.queued,
            s.in_flight,
            s.served,
            bound(0.5),
            bound(0.99),
            if peers.is_empty() {
                "-".to_owned()
            } else {
                peers.join(" ")
            }
        );
    }
    Ok(())
}
