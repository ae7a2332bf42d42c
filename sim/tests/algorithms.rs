//! The example algorithms, each run under faults and judged by its workload's checker: ABD
//! stays linearizable through 200 seeds of loss, partitions and crashes; the registers that
//! are wrong are caught, with their seed; every other workload's algorithm passes its check
//! (and the eventually consistent counter is caught).

use std::time::Duration;

use zhub_sim::algorithms::{self, Algorithm};
use zhub_sim::check::registers::{self, Verdict};
use zhub_sim::check::workloads::{self, WorkloadReport};
use zhub_sim::faults::{LinkConfig, Nemesis, NemesisKind};
use zhub_sim::history::History;
use zhub_sim::{SimConfig, Workload};

const BUDGET: Duration = Duration::from_secs(5);

fn algorithm(name: &str) -> &'static Algorithm {
    algorithms::find(name).unwrap()
}

fn faulty(seed: u64, workload: Workload) -> SimConfig {
    SimConfig {
        seed,
        ops: 200,
        workload,
        link: LinkConfig {
            loss: 0.05,
            duplicate: 0.01,
            ..LinkConfig::default()
        },
        nemesis: Nemesis {
            kinds: vec![NemesisKind::Partition, NemesisKind::Crash],
            interval: Duration::from_millis(150),
            schedule: Vec::new(),
        },
        ..SimConfig::default()
    }
}

fn workload_check(workload: Workload, history: &History, nodes: usize) -> WorkloadReport {
    match workload {
        Workload::Counter => workloads::counter(history),
        Workload::Broadcast => {
            let nodes: Vec<u64> = (0..nodes as u64).collect();
            workloads::broadcast(history, &nodes)
        }
        Workload::UniqueIds => workloads::unique_ids(history),
        Workload::AppendLog => workloads::append_log(history),
        Workload::Register => panic!("registers have their own checker"),
    }
}

#[test]
fn an_abd_seed_replays_its_run() {
    let abd = algorithm("abd");
    let first = (abd.run)(&faulty(7, Workload::Register));
    let again = (abd.run)(&faulty(7, Workload::Register));
    assert_eq!(first.stats.trace_hash, again.stats.trace_hash);
    assert_eq!(first.history, again.history);
    let other = (abd.run)(&faulty(8, Workload::Register));
    assert_ne!(first.stats.trace_hash, other.stats.trace_hash);
}

#[test]
fn every_algorithm_completes_its_workload_without_faults() {
    for a in algorithms::ALL {
        let config = SimConfig {
            ops: 300,
            workload: a.workload,
            ..SimConfig::default()
        };
        let result = (a.run)(&config);
        assert_eq!(result.stats.ops_info, 0, "{}: {:?}", a.name, result.stats);
        assert!(result.stats.ops_ok >= 150, "{}: {:?}", a.name, result.stats);
        if a.workload == Workload::Register && a.correct {
            let report = registers::check(&result.history, BUDGET);
            assert_eq!(
                report.verdict,
                Verdict::Linearizable,
                "{}: {report}",
                a.name
            );
        }
    }
}

#[test]
fn abd_passes_200_seeds_of_loss_partitions_and_crashes() {
    let abd = algorithm("abd");
    let mut ok = 0;
    for seed in 1..=200 {
        let result = (abd.run)(&faulty(seed, Workload::Register));
        let report = registers::check(&result.history, BUDGET);
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "seed {seed}: {report}"
        );
        ok += result.stats.ops_ok;
    }
    assert!(ok > 200 * 100, "ABD stays mostly available: {ok} ok");
}

/// The first seed in 1..=50 whose run the register checker finds not linearizable.
fn caught(name: &str) -> Option<(u64, String)> {
    let a = algorithm(name);
    (1..=50).find_map(|seed| {
        let result = (a.run)(&faulty(seed, Workload::Register));
        let report = registers::check(&result.history, BUDGET);
        (report.verdict == Verdict::NotLinearizable).then(|| (seed, report.to_string()))
    })
}

#[test]
fn the_wrong_register_is_caught_with_a_seed() {
    let (seed, report) = caught("read-any").expect("read-any passed 50 seeds of faults");
    println!("read-any caught with seed {seed}: {report}");
    // The seed replays the failure.
    let result = (algorithm("read-any").run)(&faulty(seed, Workload::Register));
    assert_eq!(
        registers::check(&result.history, BUDGET).verdict,
        Verdict::NotLinearizable
    );
}

#[test]
fn synchronous_replication_to_all_is_caught_too() {
    let (seed, report) = caught("sync-all").expect("sync-all passed 50 seeds of faults");
    println!("sync-all caught with seed {seed}: {report}");
}

#[test]
fn the_other_workloads_pass_their_checks_under_faults() {
    for a in algorithms::ALL
        .iter()
        .filter(|a| a.workload != Workload::Register)
    {
        for seed in 1..=5 {
            let config = faulty(seed, a.workload);
            let result = (a.run)(&config);
            let report = workload_check(a.workload, &result.history, config.nodes);
            if a.correct {
                assert!(report.ok, "{} seed {seed}: {report}", a.name);
            }
        }
    }
}

#[test]
fn the_eventually_consistent_counter_is_caught() {
    let gcounter = algorithm("gcounter");
    let seed = (1..=20).find(|&seed| {
        let result = (gcounter.run)(&faulty(seed, Workload::Counter));
        !workloads::counter(&result.history).ok
    });
    assert!(seed.is_some(), "a stale counter read shows within 20 seeds");
}

#[test]
fn the_leader_survives_crashes_and_is_caught_under_partitions() {
    let leader = algorithm("leader");
    let mut cas_ok = 0;
    for seed in 1..=20 {
        let config = SimConfig {
            nemesis: Nemesis {
                kinds: vec![NemesisKind::Crash],
                interval: Duration::from_millis(150),
                schedule: Vec::new(),
            },
            ..faulty(seed, Workload::Register)
        };
        let result = (leader.run)(&config);
        let report = registers::check(&result.history, BUDGET);
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "seed {seed}: {report}"
        );
        cas_ok += result
            .history
            .events
            .iter()
            .filter(|e| e.f == "cas" && e.kind == zhub_sim::history::EventType::Ok)
            .count();
    }
    // Compare-and-set works here, unlike in the quorum registers.
    assert!(cas_ok > 0);
    // Long partitions, so that a cut-off leader outlives its failure detector's patience.
    let partitioned = |seed| SimConfig {
        ops: 1000,
        nemesis: Nemesis {
            kinds: vec![NemesisKind::Partition],
            interval: Duration::from_secs(1),
            schedule: Vec::new(),
        },
        ..faulty(seed, Workload::Register)
    };
    let (seed, report) = (1..=50)
        .find_map(|seed| {
            let result = (leader.run)(&partitioned(seed));
            let report = registers::check(&result.history, BUDGET);
            (report.verdict == Verdict::NotLinearizable).then(|| (seed, report.to_string()))
        })
        .expect("a cut-off leader's stale read within 50 seeds");
    println!("leader caught with seed {seed}: {report}");
}
