//! `zhub request`, `zhub serve`, `zhub services`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use zhub_client::RequestOptions;
use zhub_protocol::builtin::{ServiceInfo, SERVICES_SERVICE};
use zhub_worker::WorkerOptions;

use crate::render;

/// Arguments of `zhub request`.
#[derive(Debug, clap::Args)]
pub(crate) struct RequestArgs {
    /// The service to ask.
    service: String,
    /// The request body: a string, or JSON with --json, or bytes with --raw.
    body: String,
    /// Parse BODY as JSON and send it as a MessagePack value.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Send BODY's bytes as they are.
    #[arg(long)]
    raw: bool,
}

/// Arguments of `zhub serve`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["echo", "exec"])))]
pub(crate) struct ServeArgs {
    /// The service to serve.
    service: String,
    /// Answer every request with its own body.
    #[arg(long)]
    echo: bool,
    /// Run this shell command for every request: the request body on its stdin, its stdout
    /// as the reply (a MessagePack string body is given as its text, and text output is
    /// answered as a string).
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
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
    let mut client = crate::connect(url, timeout)?;
    let body = if args.raw {
        args.body.as_bytes().to_vec()
    } else if args.json {
        let value: serde_json::Value =
            serde_json::from_str(&args.body).context("BODY is not valid JSON")?;
        rmp_serde::to_vec_named(&value)?
    } else {
        rmp_serde::to_vec_named(&args.body)?
    };
    let reply = client.request_bytes_with(
        &args.service,
        &body,
        &RequestOptions::new().timeout(timeout),
    )?;
    println!("{}", render::reply_text(&reply));
    Ok(())
}

pub(crate) fn serve(url: &str, args: &ServeArgs) -> anyhow::Result<()> {
    let mut worker = WorkerOptions::new()
        .heartbeat(args.heartbeat)
        .concurrency(args.concurrency)
        .connect(url, &args.service)?;
    eprintln!("serving {} at {url}", args.service);
    match &args.exec {
        None => worker.run(|body| body.to_vec())?,
        // A command may run for any time: serve in threaded mode, so heartbeats go on while
        // it runs and the broker does not take the worker for dead.
        Some(command) => loop {
            let request = worker.recv()?;
            let reply = run_command(command, request.body()).unwrap_or_else(|e| {
                eprintln!("zhub serve: {e:#}");
                rmp_serde::to_vec_named(&format!("error: {e:#}")).unwrap_or_default()
            });
            worker.reply(&request, &reply)?;
        },
    }
    Ok(())
}

/// Runs `command` with `body` on stdin and returns its stdout as the reply body.
fn run_command(command: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let input = render::string_body(body)
        .map(String::into_bytes)
        .unwrap_or_else(|| body.to_vec());
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {command:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its input is fine.
        let _ = stdin.write_all(&input);
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("{command:?} exited with {}", output.status);
    }
    Ok(match String::from_utf8(output.stdout) {
        Ok(text) => rmp_serde::to_vec_named(&text)?,
        Err(raw) => raw.into_bytes(),
    })
}

pub(crate) fn list(url: &str, timeout: Duration, args: &ServicesArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let services: Vec<ServiceInfo> = client.request(SERVICES_SERVICE, &())?;
    if args.json {
        println!("{}", serde_json::to_string(&services)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>7} {:>5} {:>7} {:>9} {:>9}",
        "service", "workers", "idle", "queued", "in-flight", "served"
    );
    for s in services {
        println!(
            "{:<24} {:>7} {:>5} {:>7} {:>9} {:>9}",
            s.name, s.workers, s.idle, s.queued, s.in_flight, s.served
        );
    }
    Ok(())
}
