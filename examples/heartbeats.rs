//! Heartbeats and a renumbered view (seed 001): the members beat in rounds, meeting at a
//! barrier after each. Kill one (`kill -9 PID`, the pids are in the first lines): its
//! heartbeats to the broker stop, the broker declares it dead after 2 s of silence, and the
//! others go on in the new view, where the ranks after the dead member's move down by one.
//! Each member prints every view it sees; rank 0 prints whose beats each round had.
//!
//! The run ends after `--rounds` rounds, or `--after-loss` rounds after a member was lost,
//! whichever comes first; the member at rank 0 says which round is the last, so that every
//! survivor ends at the same one.
//!
//! Run a broker, then the example (it starts 3 members itself, `--size N` for N):
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example heartbeats
//! # or as a launched group of 2 or more:
//! cargo run --release --bin zhub -- launch 4 -- target/release/examples/heartbeats
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use zhub_client::{Group, GroupErrorKind, View};
use zhub_examples::{GroupSize, SizeArg};

const SIZES: GroupSize = GroupSize::at_least(2, 3);
/// Longer than the broker takes to declare a silent member dead (2 s), so that a barrier
/// waiting for a killed member ends with the new view, not a timeout.
const WAIT: Duration = Duration::from_secs(30);

/// Members beat in rounds; kill one and the others go on in the renumbered view.
#[derive(Parser)]
#[command(after_help = SIZES.help("heartbeats"))]
struct Args {
    /// Rounds to beat when no member is lost.
    #[arg(long, default_value_t = 20, value_name = "N")]
    rounds: u64,
    /// Rounds to go on after a member was lost, then stop (at least 1).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    after_loss: u64,
    /// Pause between rounds (500ms, 2s, ...).
    #[arg(long, default_value = "500ms", value_name = "DURATION",
          value_parser = zhub_protocol::duration::parse_duration)]
    interval: Duration,
    #[command(flatten)]
    size: SizeArg,
}

/// One member's beat in one round. `last` is set by rank 0 on the run's last round.
#[derive(Debug, Serialize, Deserialize)]
struct Beat {
    round: u64,
    rank: usize,
    last: bool,
}

/// This member's rank in `view` (it is in every view it sees while it takes part).
fn rank_in(view: &View, me: u64) -> anyhow::Result<usize> {
    view.rank_of(me)
        .ok_or_else(|| anyhow::anyhow!("this member is not in view {}", view.version))
}

/// Says what changed from `old` to `new`, as this member sees it.
fn show_change(old: &View, new: &View, me: u64) -> anyhow::Result<()> {
    let was = rank_in(old, me)?;
    let now = rank_in(new, me)?;
    let gone: Vec<usize> = old
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| !new.members.contains(m))
        .map(|(rank, _)| rank)
        .collect();
    let moved = if was == now {
        format!("still rank {now}")
    } else {
        format!("now rank {now}")
    };
    let gone = match gone.as_slice() {
        [] => "none gone".to_owned(),
        [one] => format!("rank {one} gone"),
        many => format!("ranks {} gone", zhub_examples::ranks(many.iter().copied())),
    };
    println!(
        "rank {was}: view {} has {} members, {gone}; {moved}",
        new.version,
        new.size()
    );
    Ok(())
}

fn member(mut group: Group, args: &Args) -> anyhow::Result<()> {
    let me = group.member_id();
    let mut view = group.view();
    println!(
        "rank {} (pid {}): joined, view {} of {} members",
        rank_in(&view, me)?,
        std::process::id(),
        view.version,
        view.size()
    );
    // Beats by round, kept until their round is counted: a faster member's next beat can
    // come before this member has finished the round.
    let mut beats: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    let mut last_round: Option<u64> = None;
    let mut lost_at: Option<u64> = None;
    let mut round = 0;
    loop {
        round += 1;
        let rank = rank_in(&view, me)?;
        let last = rank == 0
            && (round >= args.rounds || lost_at.is_some_and(|at| round >= at + args.after_loss));
        group.publish(&Beat { round, rank, last })?;
        match group.barrier(WAIT) {
            Ok(()) => {}
            // A member died while we waited for it: the new view is shown below.
            Err(e) if e.kind() == GroupErrorKind::MemberGone => {}
            Err(e) => return Err(e.into()),
        }
        while let Some(m) = group.try_recv() {
            let beat: Beat = m.decode()?;
            if beat.last {
                last_round = Some(last_round.map_or(beat.round, |r| r.min(beat.round)));
            }
            beats.entry(beat.round).or_default().insert(beat.rank);
        }
        let now = group.view();
        if now.version != view.version {
            show_change(&view, &now, me)?;
            if now.size() < view.size() {
                lost_at.get_or_insert(round);
            }
            view = now;
        }
        let from = beats.remove(&round).unwrap_or_default();
        if rank_in(&view, me)? == 0 {
            println!(
                "round {round}: beats from ranks {}",
                zhub_examples::ranks(from)
            );
        }
        if last_round.is_some_and(|r| round >= r) {
            break;
        }
        std::thread::sleep(args.interval);
    }
    println!(
        "rank {}: done after {round} rounds, view {} of {} members",
        rank_in(&view, me)?,
        view.version,
        view.size()
    );
    Ok(())
}

/// The launcher's wait: a member killed by a signal is the scenario, not a failure, as long
/// as someone finished.
fn wait_members(children: Vec<Child>) -> anyhow::Result<()> {
    let n = children.len();
    let (mut finished, mut killed, mut failed) = (0, Vec::new(), 0);
    for mut child in children {
        let pid = child.id();
        let status = child.wait()?;
        if status.success() {
            finished += 1;
        } else if let Some(signal) = status.signal() {
            killed.push(format!("pid {pid} by signal {signal}"));
        } else {
            failed += 1;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {n} members failed");
    anyhow::ensure!(finished > 0, "no member finished");
    if killed.is_empty() {
        println!("{finished} members finished");
    } else {
        println!(
            "{finished} members finished; {} killed ({})",
            killed.len(),
            killed.join(", ")
        );
    }
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    zhub_examples::member_or_launch_with(
        "heartbeats",
        SIZES,
        args.size.size,
        |group| member(group, &args),
        wait_members,
    )
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
