//! Live runs: the kernel driven step by step, faults taken by hand, and their replay from the
//! seed and the recorded actions, event for event.

use std::time::Duration;

use zhub_sim::algorithms;
use zhub_sim::faults::{parse_plan, Fault, LinkConfig, Nemesis, NemesisKind, Plan};
use zhub_sim::kernel::{LiveError, LiveRun};
use zhub_sim::{RunResult, SimConfig};

const MS: u64 = 1_000_000;

fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        ops: 150,
        record_messages: true,
        link: LinkConfig {
            loss: 0.02,
            duplicate: 0.02,
            ..LinkConfig::default()
        },
        nemesis: Nemesis {
            kinds: vec![NemesisKind::Pause],
            interval: Duration::from_millis(40),
            schedule: vec![(30 * MS, Fault::Block { from: 0, to: 1 })],
        },
        ..SimConfig::default()
    }
}

/// The first message in flight between two nodes (not the gateway), by number.
fn peer_message(live: &dyn LiveRun) -> Option<u64> {
    live.snapshot()
        .messages
        .iter()
        .find(|m| m.from != "gw" && m.to != "gw" && !m.held)
        .map(|m| m.number)
}

/// A live ABD run with faults taken at several points, some exactly at an event's instant
/// (after `step`), some between events (after `advance_to`); the result and the numbers of
/// the messages dropped.
fn live_run(seed: u64) -> (RunResult, Vec<u64>) {
    let algorithm = algorithms::find("abd").unwrap();
    let mut live = (algorithm.live)(&config(seed));
    let mut dropped = Vec::new();
    live.advance_to(5 * MS);
    for _ in 0..7 {
        assert!(live.step());
    }
    let number = peer_message(live.as_ref()).expect("a message in flight");
    live.inject(Fault::Drop(number)).unwrap();
    dropped.push(number);
    live.inject(Fault::Crash(2)).unwrap();
    live.advance_to(12 * MS + 345);
    live.inject(Fault::Block { from: 3, to: 4 }).unwrap();
    live.inject(Fault::Block { from: 4, to: 3 }).unwrap();
    for _ in 0..3 {
        live.step();
    }
    let number = peer_message(live.as_ref()).expect("a message in flight");
    live.inject(Fault::Drop(number)).unwrap();
    dropped.push(number);
    live.advance_to(45 * MS);
    live.inject(Fault::Restart(2)).unwrap();
    live.inject(Fault::Unblock { from: 3, to: 4 }).unwrap();
    live.advance_to(80 * MS);
    live.inject(Fault::Unblock { from: 4, to: 3 }).unwrap();
    (live.finish(), dropped)
}

#[test]
fn a_live_run_replays_exactly_from_its_seed_and_actions() {
    for seed in [1, 2, 3] {
        let (result, _) = live_run(seed);
        assert_eq!(result.actions.len(), 8, "{:?}", result.actions);
        let replay = (algorithms::find("abd").unwrap().run)(&SimConfig {
            actions: result.actions.clone(),
            ..config(seed)
        });
        assert_eq!(
            replay.stats.trace_hash, result.stats.trace_hash,
            "seed {seed}"
        );
        assert_eq!(replay.history, result.history);
        assert_eq!(replay.faults, result.faults);
        assert_eq!(replay.messages, result.messages);
        assert_eq!(replay.actions, result.actions);
        assert_eq!(
            replay.stats.sim_time, result.stats.sim_time,
            "the clock ends where it did"
        );
        // The actions change the run: without them it is another one.
        let plain = (algorithms::find("abd").unwrap().run)(&config(seed));
        assert_ne!(plain.stats.trace_hash, result.stats.trace_hash);
    }
}

#[test]
fn recorded_actions_replay_through_a_schedule_file() {
    let (result, _) = live_run(4);
    let plan = Plan {
        faults: config(4).nemesis.schedule,
        actions: result.actions.clone(),
    };
    let text = plan.to_text();
    assert!(text.contains("@"), "{text}");
    assert!(text.contains("drop #"), "{text}");
    let read = parse_plan(&text, 5).unwrap();
    assert_eq!(read, plan, "{text}");
    let mut replayed = config(4);
    replayed.nemesis.schedule = read.faults;
    replayed.actions = read.actions;
    let replay = (algorithms::find("abd").unwrap().run)(&replayed);
    assert_eq!(replay.stats.trace_hash, result.stats.trace_hash);
    assert_eq!(replay.history, result.history);
}

#[test]
fn a_dropped_message_is_never_delivered_and_the_trace_says_so() {
    let (result, dropped) = live_run(5);
    for number in dropped {
        let record = &result.messages[number as usize];
        assert_eq!(record.delivered, None, "#{number}: {record:?}");
        let drop = Fault::Drop(number);
        assert!(result.faults.iter().any(|(_, f)| *f == drop));
        assert!(result.actions.iter().any(|(_, f)| *f == drop));
    }
}

#[test]
fn inject_refuses_what_does_not_fit_and_records_nothing() {
    let algorithm = algorithms::find("abd").unwrap();
    let mut live = (algorithm.live)(&config(6));
    live.advance_to(3 * MS);
    assert_eq!(live.inject(Fault::Crash(9)), Err(LiveError::NoNode(9)));
    assert_eq!(
        live.inject(Fault::Block { from: 1, to: 1 }),
        Err(LiveError::SelfLink(1))
    );
    assert_eq!(
        live.inject(Fault::Drop(1_000_000)),
        Err(LiveError::NotInFlight(1_000_000))
    );
    let number = peer_message(live.as_ref()).unwrap();
    live.inject(Fault::Drop(number)).unwrap();
    // Doomed already: not in flight any more.
    assert_eq!(
        live.inject(Fault::Drop(number)),
        Err(LiveError::NotInFlight(number))
    );
    assert!(live.snapshot().messages.iter().all(|m| m.number != number));
    assert_eq!(live.snapshot().actions.len(), 1);
    let result = live.finish();
    assert_eq!(result.actions.len(), 1);
    assert_eq!(result.messages[number as usize].delivered, None);
}

#[test]
fn a_snapshot_shows_nodes_messages_links_and_clients() {
    let algorithm = algorithms::find("abd").unwrap();
    let mut live = (algorithm.live)(&config(7));
    let snapshot = live.snapshot();
    assert_eq!(snapshot.now, 0);
    assert_eq!(snapshot.phase, "ops");
    assert_eq!(snapshot.nodes.len(), 5);
    assert!(snapshot.nodes.iter().all(|n| n.status == "up"));
    live.advance_to(20 * MS);
    live.inject(Fault::Crash(1)).unwrap();
    live.inject(Fault::Pause(2)).unwrap();
    live.advance_to(40 * MS);
    let snapshot = live.snapshot();
    assert_eq!(snapshot.now, 40 * MS);
    assert_eq!(snapshot.nodes[1].status, "crashed");
    assert_eq!(snapshot.nodes[2].status, "paused");
    assert!(
        snapshot.nodes[0].state.contains("v"),
        "ABD replicas describe their registers: {:?}",
        snapshot.nodes[0].state
    );
    assert_eq!(snapshot.cut, vec![(0, 1)], "the scheduled block");
    assert!(snapshot.messages.iter().all(|m| m.sent <= 40 * MS));
    assert!(snapshot.messages.iter().all(|m| m.held || m.due >= 40 * MS));
    assert!(
        snapshot.messages.iter().any(|m| m.held && m.to == "n3"),
        "messages wait at the paused node"
    );
    assert!(snapshot.clients.iter().any(|c| c.last.is_some()));
    assert_eq!(
        snapshot
            .actions
            .iter()
            .map(|a| a.fault.as_str())
            .collect::<Vec<_>>(),
        ["crash n2", "pause n3"]
    );
    live.inject(Fault::Resume(2)).unwrap();
    let result = live.finish();
    assert_eq!(
        result.stats.ops_ok + result.stats.ops_fail + result.stats.ops_info,
        150
    );
    // Over: nothing more is taken.
    let mut live = (algorithm.live)(&SimConfig {
        ops: 5,
        ..config(7)
    });
    live.advance_to(u64::MAX / 2);
    assert!(live.is_over());
    assert_eq!(live.snapshot().phase, "over");
    assert_eq!(live.inject(Fault::Heal), Err(LiveError::Over));
}

#[test]
fn unblock_heals_one_way_only() {
    let mut config = config(8);
    config.nemesis = Nemesis::default();
    config.link = LinkConfig::default();
    let algorithm = algorithms::find("abd").unwrap();
    let mut live = (algorithm.live)(&config);
    live.inject(Fault::Partition(vec![vec![0], vec![1, 2, 3, 4]]))
        .unwrap();
    live.inject(Fault::Unblock { from: 0, to: 1 }).unwrap();
    let cut = live.snapshot().cut;
    assert!(!cut.contains(&(0, 1)));
    assert!(cut.contains(&(1, 0)));
    assert!(cut.contains(&(0, 2)) && cut.contains(&(2, 0)));
    live.advance_to(100 * MS);
    let result = live.finish();
    let heard = |from: &str, to: &str| {
        result
            .messages
            .iter()
            .any(|m| m.from == from && m.to == to && m.delivered.is_some())
    };
    assert!(heard("n1", "n2"));
    assert!(!heard("n2", "n1"));
    assert!(!heard("n1", "n3"));
}
