//! The dice game (seed 000): N players play R rounds. Each round every player rolls a
//! 100-sided die and tells everyone; the highest roll wins (the lower rank on a tie); the
//! winner appends its line to a shared file inside the group's critical section; a barrier
//! ends the round. Any number of players from 1 up.
//!
//! Run a broker, then the example (it starts 4 players itself, `--size N` for N):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example dice_game -- --rounds 5
//! # or as a launched group of any size:
//! cargo run --release --bin zhub -- launch 6 -- target/release/examples/dice_game --rounds 5
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use zhub_client::Group;
use zhub_examples::{GroupSize, SizeArg};

const SIZES: GroupSize = GroupSize::at_least(1, 4);
const WAIT: Duration = Duration::from_secs(30);

/// The dice game: every round each player rolls 1-100, the highest roll wins and writes its
/// line to a shared file inside the critical section.
#[derive(Parser)]
#[command(after_help = SIZES.help("dice_game"))]
struct Args {
    /// Rounds to play.
    #[arg(long, default_value_t = 5, value_name = "N")]
    rounds: u32,
    #[command(flatten)]
    size: SizeArg,
}

/// A roll of 1-100 from a small generator seeded by the member and the round.
fn roll(member: u64, round: u32) -> u32 {
    let mut x = member ^ (u64::from(round) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 100) as u32 + 1
}

fn play(mut group: Group, rounds: u32) -> anyhow::Result<()> {
    let rank = group
        .rank()
        .ok_or_else(|| anyhow::anyhow!("not in the view"))?;
    let n = group.size();
    let file = std::env::temp_dir().join(format!("zhub-dice-{}.txt", group.name()));
    if rank == 0 {
        std::fs::write(&file, "")?;
    }
    group.barrier(WAIT)?;
    for round in 1..=rounds {
        let mine = roll(group.member_id(), round);
        group.publish(&(round, mine))?;
        let mut rolls = vec![0u32; n];
        for _ in 0..n {
            let m = group
                .recv_timeout(WAIT)
                .ok_or_else(|| anyhow::anyhow!("rank {rank}: a roll is missing"))?;
            let (r, value): (u32, u32) = m.decode()?;
            anyhow::ensure!(
                r == round,
                "rank {rank}: a roll for round {r} in round {round}"
            );
            let from = m
                .from_rank
                .ok_or_else(|| anyhow::anyhow!("roll from a non-member"))?;
            rolls[from] = value;
        }
        // The highest roll; the lower rank on a tie.
        let winner = (0..n)
            .max_by_key(|&r| (rolls[r], std::cmp::Reverse(r)))
            .unwrap_or(0);
        let all = rolls
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "round {round}: rank {rank} rolled {mine}; rolls by rank: {all}; winner rank {winner}"
        );
        if winner == rank {
            let _turn = group.lock(WAIT)?;
            let mut f = std::fs::OpenOptions::new().append(true).open(&file)?;
            writeln!(f, "round {round}: rank {rank} wins with {mine}")?;
        }
        group.barrier(WAIT)?;
    }
    if rank == 0 {
        let lines = std::fs::read_to_string(&file)?;
        std::fs::remove_file(&file)?;
        print!("{lines}");
        let count = lines.lines().count();
        anyhow::ensure!(
            count == rounds as usize,
            "{count} lines for {rounds} rounds"
        );
        println!("{rounds} rounds of {n} players, one winner line each (file removed)");
    }
    group.barrier(WAIT)?;
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    zhub_examples::member_or_launch("dice_game", SIZES, args.size.size, |group| {
        play(group, args.rounds)
    })
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
