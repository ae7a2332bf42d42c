//! The middleware's tour: members join, meet at a barrier, send asynchronously to one and to
//! all, broadcast synchronously, exchange in rendezvous, take the critical section in turn,
//! and stop together. Every line names the rank and its Lamport clock.
//!
//! Run a broker, then the example (it starts 3 members itself, `--size N` for N):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example middleware_demo
//! # or as a launched group of 2 or more:
//! cargo run --release --bin zhub -- launch 3 -- target/release/examples/middleware_demo
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::time::Duration;

use clap::Parser;
use zhub_client::Group;
use zhub_examples::{GroupSize, SizeArg};

/// Rank 1 takes the rendezvous from rank 0: two members at least.
const SIZES: GroupSize = GroupSize::at_least(2, 3);
const WAIT: Duration = Duration::from_secs(30);

/// The middleware's tour: barriers, messages to one and to all, a synchronous broadcast, a
/// rendezvous and the critical section, every line with its Lamport clock.
#[derive(Parser)]
#[command(after_help = SIZES.help("middleware_demo"))]
struct Args {
    #[command(flatten)]
    size: SizeArg,
}

fn demo(mut g: Group) -> anyhow::Result<()> {
    let rank = g.rank().ok_or_else(|| anyhow::anyhow!("not in the view"))?;
    let n = g.size();
    let say = |g: &Group, what: String| println!("rank {rank} (clock {}): {what}", g.clock());
    say(&g, format!("joined a group of {n}"));
    g.barrier(WAIT)?;
    say(&g, "passed the first barrier".into());

    // Asynchronous: one message to the next rank, one to everyone but me.
    g.send_to((rank + 1) % n, &format!("hello from {rank}"))?;
    g.broadcast(&format!("{rank} says hi to all"))?;
    for _ in 0..n {
        // 1 direct + (n - 1) broadcasts.
        let m = g
            .recv_timeout(WAIT)
            .ok_or_else(|| anyhow::anyhow!("a message is missing"))?;
        say(
            &g,
            format!(
                "got \"{}\" from {} (stamp {})",
                m.decode::<String>()?,
                sender(m.from_rank),
                m.lamport
            ),
        );
    }
    g.barrier(WAIT)?;

    // Synchronous broadcast from rank 0: it returns once everyone has it.
    if rank == 0 {
        g.broadcast_sync(&"sync news", WAIT)?;
        say(&g, "everyone has the sync news".into());
    } else {
        let m = g
            .recv_timeout(WAIT)
            .ok_or_else(|| anyhow::anyhow!("no sync news"))?;
        say(&g, format!("got \"{}\" from rank 0", m.decode::<String>()?));
    }
    g.barrier(WAIT)?;

    // Rendezvous: rank 0 to rank 1.
    if rank == 0 {
        g.send_to_sync(1, &"rendezvous", WAIT)?;
        say(&g, "rank 1 took the rendezvous".into());
    } else if rank == 1 {
        let m = g.recv_from_sync(0, WAIT)?;
        say(
            &g,
            format!("took \"{}\" from rank 0", m.decode::<String>()?),
        );
    }
    g.barrier(WAIT)?;

    // The critical section, in turn.
    {
        let guard = g.lock(WAIT)?;
        say(&guard, "in the critical section".into());
    }
    g.barrier(WAIT)?;
    say(&g, "stopping".into());
    Ok(())
}

/// Who sent a message: its rank, or a member that has left the view meanwhile.
fn sender(rank: Option<usize>) -> String {
    rank.map_or_else(|| "a member that left".to_owned(), |r| format!("rank {r}"))
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    zhub_examples::member_or_launch("middleware_demo", SIZES, args.size.size, demo)
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
