//! `zhub launch N -- COMMAND...`: N processes of one command as one process group.
//!
//! Each process gets the group's name, its size and a member id of its own in its
//! environment (a [`LaunchEnv`]; `Group::join_launched` reads it). Because the launcher chose the member ids, it can learn each process's rank
//! from the broker's view once the group is full; until then a process's lines wait, and
//! then every line is printed with its rank in front (`[2] ...`). A process that never
//! joins, or one whose group was never seen full (it came and went within milliseconds), is
//! shown by its start order (`[#2] ...`). Ctrl-C stops them all; so does the end
//! of the last one. The launcher exits non-zero if any process did.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use zhub_client::{Client, LaunchEnv};
use zhub_protocol::group::{GroupReply, GroupRequest, GROUP_SERVICE};

/// Arguments of `zhub launch`.
#[derive(Debug, clap::Args)]
pub(crate) struct LaunchArgs {
    /// How many processes.
    #[arg(value_parser = clap::value_parser!(u32).range(1..=1000))]
    count: u32,
    /// The group's name (default: launch-PID).
    #[arg(long)]
    group: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

enum Event {
    Line {
        index: usize,
        line: String,
    },
    Exited {
        index: usize,
        success: bool,
        code: Option<i32>,
    },
}

fn pipe_lines(index: usize, stream: impl Read + Send + 'static, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(Event::Line { index, line }).is_err() {
                break;
            }
        }
    });
}

/// The ranks of `members` in the group's view, once all of them are in it.
fn ranks(client: &mut Client, group: &str, members: &[u64]) -> Option<Vec<usize>> {
    let request = GroupRequest::View {
        group: group.to_owned(),
    };
    let body = zhub_protocol::body::encode(&request).ok()?;
    let reply = client.request_bytes(GROUP_SERVICE, &body).ok()?;
    let view = match zhub_protocol::body::decode(&reply).ok()? {
        GroupReply::View { view } | GroupReply::NotMember { view } => view,
        _ => return None,
    };
    members.iter().map(|&m| view.rank_of(m)).collect()
}

pub(crate) fn run(url: &str, timeout: Duration, args: &LaunchArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("launch-{}", std::process::id()));
    let n = args.count as usize;
    let envs = LaunchEnv::for_group(&group, n);
    let members: Vec<u64> = envs.iter().filter_map(|env| env.member).collect();
    let (tx, rx) = mpsc::channel();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for (index, env) in envs.iter().enumerate() {
        let mut command = Command::new(&args.command[0]);
        env.set_on(&mut command);
        let mut child = command
            .args(&args.command[1..])
            .env("ZHUB_URL", url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {:?}", args.command[0]))?;
        if let Some(out) = child.stdout.take() {
            pipe_lines(index, out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(index, err, tx.clone());
        }
        children.push(child);
    }
    // Reap children on threads of their own; Ctrl-C asks the main loop to stop them all.
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    for (index, mut child) in children.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let status = child.wait();
            let (success, code) = status.map_or((false, None), |s| (s.success(), s.code()));
            let _ = tx.send(Event::Exited {
                index,
                success,
                code,
            });
        });
    }
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let interrupted = std::sync::Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || {
            interrupted.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    drop(tx);

    let stop_all = |pids: &[u32]| {
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    };
    let mut rank_of: Option<Vec<usize>> = None;
    let mut held: Vec<(usize, String)> = Vec::new();
    let mut running = n;
    let mut failed = Vec::new();
    let mut next_look = Instant::now();
    // A closed stdout does not stop the group: its lines are dropped.
    let print = |label: String, line: &str| {
        crate::render::print_line(&format!("[{label}] {line}"));
    };
    let label = |ranks: &Option<Vec<usize>>, index: usize| match ranks {
        Some(r) => r[index].to_string(),
        None => format!("#{index}"),
    };
    let mut stopping = false;
    while running > 0 {
        if interrupted.load(std::sync::atomic::Ordering::SeqCst) && !stopping {
            stopping = true;
            stop_all(&pids);
        }
        if rank_of.is_none() && (Instant::now() >= next_look || !held.is_empty()) {
            // Often while the group forms: a short-lived group may be full only briefly.
            next_look = Instant::now() + Duration::from_millis(10);
            rank_of = ranks(&mut client, &group, &members);
            if rank_of.is_some() {
                for (index, line) in held.drain(..) {
                    print(label(&rank_of, index), &line);
                }
            }
        }
        let wait = if rank_of.is_none() { 10 } else { 100 };
        match rx.recv_timeout(Duration::from_millis(wait)) {
            Ok(Event::Line { index, line }) => {
                if rank_of.is_some() {
                    print(label(&rank_of, index), &line);
                } else {
                    held.push((index, line));
                }
            }
            Ok(Event::Exited {
                index,
                success,
                code,
            }) => {
                running -= 1;
                if !success {
                    failed.push((index, code));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Lines still in the pipes after the last exit, then whatever waited for ranks.
    while let Ok(event) = rx.recv_timeout(Duration::from_millis(200)) {
        if let Event::Line { index, line } = event {
            held.push((index, line));
        }
    }
    for (index, line) in held {
        print(label(&rank_of, index), &line);
    }
    if !failed.is_empty() {
        let what: Vec<String> = failed
            .iter()
            .map(|(i, code)| match code {
                Some(c) => format!("[{}] exit {c}", label(&rank_of, *i)),
                None => format!("[{}] killed", label(&rank_of, *i)),
            })
            .collect();
        bail!(
            "{} of {n} processes failed: {}",
            failed.len(),
            what.join(", ")
        );
    }
    Ok(())
}
