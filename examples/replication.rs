//! Replicas of a small dataset: every member holds a full copy; to change it, a member takes
//! the critical section (the permission), applies its update, and hands it to every other
//! replica with `broadcast_sync` before it lets go (the update). Updates are applied in the
//! order the token gave, so the replicas end equal although the updates do not commute.
//!
//! Run a broker, then the example (it starts 3 replicas itself, `--size N` for N):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example replication
//! # or as a launched group of any size:
//! cargo run --release --bin zhub -- launch 3 -- target/release/examples/replication
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use zhub_client::Group;
use zhub_examples::{GroupSize, SizeArg};

const SIZES: GroupSize = GroupSize::at_least(1, 3);
const UPDATES: u64 = 10;

/// Replicas of a dataset updated in the critical section with synchronous broadcasts, equal
/// at the end although the updates do not commute.
#[derive(Parser)]
#[command(after_help = SIZES.help("replication"))]
struct Args {
    #[command(flatten)]
    size: SizeArg,
}
const WAIT: Duration = Duration::from_secs(30);

/// `account = account * 3 + amount`: the order of updates matters.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Message {
    Update { account: String, amount: i64 },
    Digest(u64),
}

fn apply(data: &mut BTreeMap<String, i64>, account: &str, amount: i64) {
    let v = data.entry(account.to_owned()).or_insert(0);
    *v = v.wrapping_mul(3).wrapping_add(amount);
}

fn digest(data: &BTreeMap<String, i64>) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, (k, v)| {
        let h = k
            .bytes()
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (h ^ *v as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A replica's digest of its data, as another replica announced it: (its rank, the digest).
type Announced = (Option<usize>, u64);

/// Applies every update waiting in the mailbox. A digest found there (a faster replica has
/// finished already) is kept in `digests` for the final comparison, not dropped.
fn catch_up(
    group: &mut Group,
    data: &mut BTreeMap<String, i64>,
    digests: &mut Vec<Announced>,
) -> anyhow::Result<usize> {
    let mut applied = 0;
    while let Some(m) = group.try_recv() {
        match m.decode()? {
            Message::Update { account, amount } => {
                apply(data, &account, amount);
                applied += 1;
            }
            Message::Digest(d) => digests.push((m.from_rank, d)),
        }
    }
    Ok(applied)
}

fn replica(mut group: Group) -> anyhow::Result<()> {
    let rank = group
        .rank()
        .ok_or_else(|| anyhow::anyhow!("not in the view"))?;
    let n = group.size();
    let mut data = BTreeMap::new();
    let mut digests = Vec::new();
    for i in 0..UPDATES {
        let account = ["alice", "bob", "carol"][((i + rank as u64) % 3) as usize].to_owned();
        let amount = (rank as i64 + 1) * 10 + i as i64;
        {
            // Permission first: while we hold it, nobody else updates.
            let mut turn = group.lock(WAIT)?;
            // Everything before our turn is already in our mailbox (sync broadcasts).
            catch_up(&mut turn, &mut data, &mut digests)?;
            apply(&mut data, &account, amount);
            turn.broadcast_sync(
                &Message::Update {
                    account: account.clone(),
                    amount,
                },
                WAIT,
            )?;
        }
        println!(
            "replica {rank}: {account} {amount:+} (clock {})",
            group.clock()
        );
    }
    group.barrier(WAIT)?;
    catch_up(&mut group, &mut data, &mut digests)?;
    let mine = digest(&data);
    group.publish(&Message::Digest(mine))?;
    while digests.len() < n {
        let m = group
            .recv_timeout(WAIT)
            .ok_or_else(|| anyhow::anyhow!("a digest is missing"))?;
        if let Message::Digest(d) = m.decode()? {
            digests.push((m.from_rank, d));
        }
    }
    for (from, d) in digests {
        let from = from.map_or_else(
            || "a replica that left".to_owned(),
            |r| format!("replica {r}"),
        );
        anyhow::ensure!(d == mine, "replica {rank}: {from} differs");
    }
    let values = data
        .iter()
        .map(|(account, value)| format!("{account}={value}"))
        .collect::<Vec<_>>()
        .join(" ");
    println!("replica {rank}: {values}, equal to all {n} replicas");
    group.barrier(WAIT)?;
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    zhub_examples::member_or_launch("replication", SIZES, args.size.size, replica)
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
