//! Routing over a fixed graph: five members are linked to their neighbours only (a ring with
//! one chord), and a message finds its way hop by hop, each member passing it on to its
//! neighbours, never back along its path, until it arrives or its hop limit runs out.
//!
//! Run a broker, then the example (it starts 5 members itself):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example p2p_graph
//! # or: cargo run --release --bin zhub -- launch 5 -- target/release/examples/p2p_graph
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zhub_client::Group;

const MEMBERS: usize = 5;
const HOP_LIMIT: u32 = 3;
const WAIT: Duration = Duration::from_secs(30);

/// Neighbours: the ring 0-1-2-3-4-0 and the chord 0-2.
fn neighbours(rank: usize, n: usize) -> Vec<usize> {
    let mut v = vec![(rank + 1) % n, (rank + n - 1) % n];
    match rank {
        0 => v.push(2),
        2 => v.push(0),
        _ => {}
    }
    v
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
    anyhow::ensure!(n == MEMBERS, "this graph is for {MEMBERS} members");
    let links = neighbours(rank, n);
    group.barrier(WAIT)?;
    // Rank 0 routes one message to every other member.
    if rank == 0 {
        for to in 1..n {
            for &next in &links {
                let m = Message::Routed {
                    id: to as u32,
                    to,
                    hops_left: HOP_LIMIT,
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
                        println!("rank {rank}: message {id} arrived via {path:?}");
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
                    "rank 0: message {id} reached rank {} in {} hops",
                    path.last().unwrap_or(&0),
                    path.len() - 1
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
        println!("every message arrived within {HOP_LIMIT} hops");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    zhub_examples::member_or_launch(MEMBERS, "p2p", member)
}
