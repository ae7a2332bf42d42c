//! The dice game: N processes play R rounds. Each round every player rolls a die and tells
//! everyone; the highest roll wins (the lower rank on a tie); the winner appends its line to
//! a shared file inside the group's critical section; a barrier ends the round.
//!
//! Run a broker, then the example (it starts 4 players itself):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example dice_game -- --rounds 5
//! # or as a launched group:
//! cargo run --release --bin zhub -- launch 4 -- target/release/examples/dice_game --rounds 5
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::io::Write;
use std::time::Duration;

use zhub_client::Group;

const PLAYERS: usize = 4;
const WAIT: Duration = Duration::from_secs(30);

fn rounds() -> anyhow::Result<u32> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--rounds") {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or_else(|| anyhow::anyhow!("--rounds needs a number"))?
            .parse()?),
        None => Ok(5),
    }
}

/// A die roll from a small generator seeded by the member and the round.
fn roll(member: u64, round: u32) -> u32 {
    let mut x = member ^ (u64::from(round) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % 6) as u32 + 1
}

fn play(mut group: Group) -> anyhow::Result<()> {
    let rounds = rounds()?;
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
        println!("round {round}: rank {rank} rolled {mine}; rolls {rolls:?}, winner rank {winner}");
        if winner == rank {
            let _turn = group.lock(WAIT)?;
            let mut f = std::fs::OpenOptions::new().append(true).open(&file)?;
            writeln!(f, "round {round}: rank {rank} wins with {mine}")?;
        }
        group.barrier(WAIT)?;
    }
    if rank == 0 {
        let lines = std::fs::read_to_string(&file)?;
        print!("{lines}");
        let count = lines.lines().count();
        anyhow::ensure!(
            count == rounds as usize,
            "{count} lines for {rounds} rounds"
        );
        println!(
            "{rounds} rounds, one winner line each, in {}",
            file.display()
        );
        std::fs::remove_file(&file)?;
    }
    group.barrier(WAIT)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    zhub_examples::member_or_launch(PLAYERS, "dice", play)
}
