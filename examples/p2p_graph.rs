//! Routing over a fixed graph: the members are linked to their neighbours only (a ring, with
//! a chord from rank 0 across it once there are 4 or more), and a message finds its way hop
//! by hop, each member passing it on to its neighbours, never back along its path, until it
//! arrives or its hop limit runs out. Rank 0 routes one message to every other member.
//!
//! Run a broker, then the example (it starts 5 members itself, `--size N` for N):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example p2p_graph
//! # or as a launched group of 2 or more:
//! cargo run --release --bin zhub -- launch 5 -- target/release/examples/p2p_graph
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::collections::HashSet;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use zhub_client::Group;
use zhub_examples::{GroupSize, SizeArg};

const SIZES: GroupSize = GroupSize::at_least(2, 5);
const WAIT: Duration = Duration::from_secs(30);

/// Routing hop by hop over a ring with a chord, each message within a hop limit (the
/// farthest member's distance from rank 0).
#[derive(Parser)]
#[command(after_help = SIZES.help("p2p_graph"))]
struct Args {
    #[command(flatten)]
    size: SizeArg,
}

/// The rank rank 0's chord reaches: across the ring, when the ring is long enough for a
/// chord to be more than one of its links.
fn chord(n: usize) -> Option<usize> {
    (n >= 4).then_some(n / 2)
}

/// Neighbours: the ring 0-1-...-(n-1)-0 and the chord from 0.
fn neighbours(rank: usize, n: usize) -> Vec<usize> {
    let mut v = vec![(rank + 1) % n, (rank + n - 1) % n];
    if let Some(c) = chord(n) {
        match rank {
            0 => v.push(c),
            r if r == c => v.push(0),
            _ => {}
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Hops from rank 0 to the farthest member: half the ring, less what the chord saves.
fn farthest(n: usize) -> u32 {
    let ring = |a: usize, b: usize| a.abs_diff(b).min(n - a.abs_diff(b));
    let far = (1..n)
        .map(|to| match chord(n) {
            Some(c) => ring(0, to).min(1 + ring(c, to)),
            None => ring(0, to),
        })
        .max()
        .unwrap_or(0);
    u32::try_from(far).unwrap_or(u32::MAX)
}

/// `1 hop`, `2 hops`.
fn hops(n: usize) -> String {
    if n == 1 {
        "1 hop".to_owned()
    } else {
        format!("{n} hops")
    }
}

/// A path as the ranks it went through: `0 -> 4 -> 3`.
fn route(path: &[usize]) -> String {
    path.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(" -> ")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Message {
    /// A routed message and the ranks it went through.
    Routed {
        id: u32,
        to: usize,
        hops_left: u32,
        path: Vec<usize>,
    },
    /// Told to rank 0 by a destination.
    Arrived { id: u32, path: Vec<usize> },
    /// From rank 0: every message arrived.
    Stop,
}

fn member(mut group: Group) -> anyhow::Result<()> {
    let rank = group
        .rank()
        .ok_or_else(|| anyhow::anyhow!("not in the view"))?;
    let n = group.size();
    let links = neighbours(rank, n);
    // Just enough for the farthest member. `hops_left` counts the hops after the first: a
    // limit of 1 reaches only neighbours.
    let hop_limit = farthest(n).max(1);
    if rank == 0 {
        println!(
            "{n} members, rank 0 linked to ranks {}, hop limit {hop_limit}",
            zhub_examples::ranks(links.iter().copied())
        );
    }
    group.barrier(WAIT)?;
    // Rank 0 routes one message to every other member.
    if rank == 0 {
        for to in 1..n {
            for &next in &links {
                let m = Message::Routed {
                    id: to as u32,
                    to,
                    hops_left: hop_limit - 1,
                    path: vec![0],
                };
                group.send_to(next, &m)?;
            }
        }
    }
    let mut seen = HashSet::new();
    let mut arrived = 0;
    loop {
        let m = group
            .recv_timeout(WAIT)
            .ok_or_else(|| anyhow::anyhow!("rank {rank}: stuck"))?;
        match m.decode()? {
            Message::Routed {
                id,
                to,
                hops_left,
                mut path,
            } => {
                path.push(rank);
                if to == rank {
                    if seen.insert(id) {
                        println!("rank {rank}: message {id} arrived via {}", route(&path));
                        group.send_to(0, &Message::Arrived { id, path })?;
                    }
                } else if hops_left > 0 {
                    for &next in links.iter().filter(|r| !path.contains(r)) {
                        let fwd = Message::Routed {
                            id,
                            to,
                            hops_left: hops_left - 1,
                            path: path.clone(),
                        };
                        group.send_to(next, &fwd)?;
                    }
                }
            }
            Message::Arrived { id, path } => {
                arrived += 1;
                println!(
                    "rank 0: message {id} reached rank {} in {}",
                    path.last().unwrap_or(&0),
                    hops(path.len() - 1)
                );
                if arrived == n - 1 {
                    group.broadcast(&Message::Stop)?;
                    break;
                }
            }
            Message::Stop => break,
        }
    }
    group.barrier(WAIT)?;
    if rank == 0 {
        println!("every message arrived within {}", hops(hop_limit as usize));
    }
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    zhub_examples::member_or_launch("p2p_graph", SIZES, args.size.size, member)
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
