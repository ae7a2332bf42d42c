//! Two processes of one group talk in rendezvous: rank 0 asks with `send_to_sync`, which
//! returns only once rank 1 has taken the question with `recv_from_sync`; then they swap
//! roles. Every line shows the member's Lamport clock.
//!
//! Run a broker, then the example (it starts its two processes itself; a group of any other
//! size is refused):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example sync_exchange
//! # or as a launched group:
//! cargo run --release --bin zhub -- launch 2 -- target/release/examples/sync_exchange
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::time::Duration;

use clap::Parser;
use zhub_client::Group;
use zhub_examples::{GroupSize, SizeArg};

const SIZES: GroupSize = GroupSize::exactly(2);

/// Two processes in rendezvous: each question returns once the other rank has taken it.
#[derive(Parser)]
#[command(after_help = SIZES.help("sync_exchange"))]
struct Args {
    #[command(flatten)]
    size: SizeArg,
}

const ROUNDS: u32 = 3;
const WAIT: Duration = Duration::from_secs(30);

fn member(mut group: Group) -> anyhow::Result<()> {
    let rank = group
        .rank()
        .ok_or_else(|| anyhow::anyhow!("not in the view"))?;
    let other = 1 - rank;
    for round in 1..=ROUNDS {
        // Rank 0 asks in odd rounds, rank 1 in even ones.
        let asking = (round % 2 == 1) == (rank == 0);
        if asking {
            let question = format!("question {round} from rank {rank}");
            group.send_to_sync(other, &question, WAIT)?;
            println!(
                "rank {rank}: rank {other} took \"{question}\" (clock {})",
                group.clock()
            );
        } else {
            let m = group.recv_from_sync(other, WAIT)?;
            let question: String = m.decode()?;
            println!(
                "rank {rank}: took \"{question}\" stamped {} (clock {})",
                m.lamport,
                group.clock()
            );
        }
    }
    group.barrier(WAIT)?;
    println!("rank {rank}: done");
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    // Run alone, it is the launcher of two copies of itself.
    zhub_examples::member_or_launch("sync_exchange", SIZES, args.size.size, member)
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
