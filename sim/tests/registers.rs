//! The register linearizability checker on hand-made histories.

mod common;

use std::time::Duration;

use common::Script;
use serde_json::{json, Value};
use zhub_sim::check::registers::{check, Verdict};
use zhub_sim::history::{EventType, History};

const BUDGET: Duration = Duration::from_secs(10);

fn verdict(history: &History) -> Verdict {
    check(history, BUDGET).verdict
}

#[test]
fn a_sequential_history_is_linearizable_in_its_own_order() {
    let history = Script::new()
        .read(0, 1, Value::Null, 0, 1)
        .write(0, 1, 5, 2, 3)
        .read(1, 1, json!(5), 4, 5)
        .cas(1, 1, 5, 6, 6, 7)
        .read(0, 1, json!(6), 8, 9)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!((report.keys, report.ops), (1, 5));
    // The order is the history's: invokes are events 0, 2, 4, 6, 8.
    assert_eq!(report.linearization[&1], vec![0, 2, 4, 6, 8]);
    assert!(report.violation.is_none());
}

#[test]
fn concurrent_operations_may_take_effect_in_any_order_their_results_allow() {
    // Two overlapping writes; reads overlapping both see them in either order, and the
    // later reads agree on the one that was last.
    let history = Script::new()
        .invoke(0, "write", 1, json!(1), 0)
        .invoke(1, "write", 1, json!(2), 1)
        .invoke(2, "read", 1, Value::Null, 2)
        .end(2, EventType::Ok, "read", Some(1), json!(2), 3)
        .end(0, EventType::Ok, "write", Some(1), json!(1), 10)
        .end(1, EventType::Ok, "write", Some(1), json!(2), 11)
        .read(2, 1, json!(1), 12, 13)
        .cas(3, 1, 1, 3, 14, 15)
        .read(2, 1, json!(3), 16, 17)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::Linearizable, "{report}");
    // Write 2 must come before write 1 for the later read of 1.
    let order = &report.linearization[&1];
    let position = |invoke: usize| order.iter().position(|&i| i == invoke).unwrap();
    assert!(position(1) < position(0));
}

#[test]
fn keys_are_independent_registers() {
    let history = Script::new()
        .write(0, 1, 1, 0, 1)
        .write(0, 2, 2, 2, 3)
        .read(1, 1, json!(1), 4, 5)
        .read(1, 2, json!(2), 6, 7)
        .read(1, 3, Value::Null, 8, 9)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!(report.keys, 3);
}

#[test]
fn a_stale_read_after_a_completed_write_is_caught_and_explained() {
    let history = Script::new()
        .write(0, 3, 1, 0, 10)
        .write(4, 3, 2, 20, 30)
        .read(1, 3, json!(1), 40, 50)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let violation = report.violation.unwrap();
    assert_eq!(violation.key, 3);
    assert_eq!(violation.culprit, 4, "the read's invoke is event 4");
    assert!(
        violation
            .explanation
            .starts_with("read of key 3 by process 1 returned 1 between t=40.000µs and t=50.000µs, but the only value that could be current then is 2 (write by process 4, t=20.000µs..30.000µs)"),
        "{}",
        violation.explanation
    );
    assert!(violation
        .explanation
        .contains("1 was last written by the write by process 0"));
    assert!(violation.ops.contains(&4) && violation.ops.contains(&2));
}

#[test]
fn two_reads_seeing_values_in_an_impossible_order_are_caught() {
    // Writes of 1 then 2 overlap both reads, but once a read has seen 2 a later read cannot
    // see 1 again.
    let history = Script::new()
        .invoke(0, "write", 1, json!(1), 0)
        .invoke(1, "write", 1, json!(2), 1)
        .read(2, 1, json!(2), 2, 3)
        .read(3, 1, json!(1), 4, 5)
        .end(0, EventType::Ok, "write", Some(1), json!(1), 100)
        .end(1, EventType::Ok, "write", Some(1), json!(2), 100)
        .done();
    // Here it is fine: write 1 may land after the first read.
    assert_eq!(verdict(&history), Verdict::Linearizable);

    let history = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .read(2, 1, json!(2), 3, 4)
        .read(3, 1, json!(1), 5, 6)
        .end(1, EventType::Ok, "write", Some(1), json!(2), 100)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let violation = report.violation.unwrap();
    // The culprit is the second read (invoke event 5); the first read (event 3) is part of
    // the story.
    assert_eq!(violation.culprit, 5);
    assert!(violation
        .explanation
        .starts_with("read of key 1 by process 3 returned 1"));
    assert!(violation
        .explanation
        .contains("only value that could be current then is 2"));
    assert!(violation.ops.contains(&3), "{:?}", violation.ops);
}

#[test]
fn a_cas_succeeding_on_a_value_never_current_is_caught() {
    let history = Script::new()
        .write(0, 7, 1, 0, 1)
        .cas(1, 7, 9, 10, 2, 3)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let violation = report.violation.unwrap();
    assert!(
        violation
            .explanation
            .starts_with("cas of key 7 by process 1 from 9 to 10 succeeded"),
        "{}",
        violation.explanation
    );
    assert!(violation
        .explanation
        .contains("9 was never written to key 7"));
}

#[test]
fn a_failed_operation_did_not_happen() {
    let history = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .end(1, EventType::Fail, "write", Some(1), Value::Null, 3)
        .invoke(2, "cas", 1, json!([2, 3]), 4)
        .end(2, EventType::Fail, "cas", Some(1), Value::Null, 5)
        .read(0, 1, json!(1), 6, 7)
        .done();
    assert_eq!(verdict(&history), Verdict::Linearizable);
    // A read of the failed write's value is wrong.
    let history = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .end(1, EventType::Fail, "write", Some(1), Value::Null, 3)
        .read(0, 1, json!(2), 6, 7)
        .done();
    assert_eq!(verdict(&history), Verdict::NotLinearizable);
}

#[test]
fn an_indefinite_write_may_take_effect_late_or_never() {
    // Seen long after its timeout: fine.
    let seen = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .end(1, EventType::Info, "write", Some(1), Value::Null, 5)
        .read(0, 1, json!(1), 10, 11)
        .read(0, 1, json!(2), 20, 21)
        .done();
    assert_eq!(verdict(&seen), Verdict::Linearizable);
    // Never seen, and never completed at all: fine.
    let never = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .invoke(2, "cas", 1, json!([5, 6]), 3)
        .end(2, EventType::Info, "cas", Some(1), Value::Null, 4)
        .read(0, 1, json!(1), 10, 11)
        .done();
    assert_eq!(verdict(&never), Verdict::Linearizable);
    // But it cannot take effect before it was invoked.
    let early = Script::new()
        .read(0, 1, json!(2), 0, 1)
        .invoke(1, "write", 1, json!(2), 2)
        .done();
    assert_eq!(verdict(&early), Verdict::NotLinearizable);
    // An indefinite read has no effect, whatever it returned.
    let read = Script::new()
        .write(0, 1, 1, 0, 1)
        .invoke(1, "read", 1, Value::Null, 2)
        .end(1, EventType::Info, "read", Some(1), json!(99), 3)
        .done();
    assert_eq!(verdict(&read), Verdict::Linearizable);
}

#[test]
fn the_failing_part_is_small_and_holds_the_culprit() {
    // A long linearizable run on key 1, then one stale read, then more operations.
    let mut script = Script::new();
    let mut t = 0;
    for value in 0..200 {
        script = script.write(value as u64 % 3, 1, value, t, t + 2).read(
            3,
            1,
            json!(value),
            t + 3,
            t + 4,
        );
        t += 10;
    }
    let stale_read_invoke = script.history.events.len() + 2;
    script = script
        .write(0, 1, 1000, t, t + 2)
        .read(5, 1, json!(198), t + 3, t + 4);
    t += 10;
    for value in 0..50 {
        script = script.write(1, 1, 2000 + value, t, t + 2);
        t += 10;
    }
    let history = script.done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let violation = report.violation.unwrap();
    assert_eq!(violation.culprit, stale_read_invoke);
    assert!(violation.ops.len() <= 4, "{:?}", violation.ops);
    assert!(violation.explanation.contains("returned 198"));
    assert!(
        violation.explanation.contains("is 1000"),
        "{}",
        violation.explanation
    );
    // Every event shown is one of the operations named, and the culprit's are there.
    assert_eq!(violation.events.len(), 2 * violation.ops.len());
    assert!(violation
        .events
        .contains(&history.events[stale_read_invoke]));
}

#[test]
fn the_budget_answers_unknown_on_a_pathological_history() {
    // Many concurrent writes of distinct values that never complete, and reads that each
    // saw one of them: the search must try orders of many writes, and it cannot finish in a
    // microsecond.
    let mut script = Script::new();
    for process in 0..40 {
        script = script.invoke(process, "write", 1, json!(process), 0);
    }
    for process in 0..40u64 {
        let value = (process * 7) % 40;
        script = script.read(
            100 + process,
            1,
            json!(value),
            10 + process * 2,
            11 + process * 2,
        );
    }
    // A final read of a value nobody wrote makes the search explore everything.
    script = script.read(200, 1, json!(-1), 1000, 1001);
    let history = script.done();
    let report = check(&history, Duration::from_micros(1));
    assert_eq!(report.verdict, Verdict::Unknown, "{report}");
    assert_eq!(report.unknown_keys, vec![1]);
    assert!(report.violation.is_none());
}

#[test]
fn non_register_events_are_ignored() {
    let history = Script::new()
        .op(0, "add", json!(1), (EventType::Ok, Value::Null), (0, 1))
        .invoke(1, "cas", 1, json!("not a pair"), 2)
        .end(1, EventType::Ok, "cas", Some(1), Value::Null, 3)
        .read(2, 1, Value::Null, 4, 5)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::Linearizable);
    assert_eq!(report.ops, 2);
}

#[test]
fn indefinite_writes_nobody_observed_do_not_blow_up_a_failing_search() {
    // Two hundred timed-out writes, never read, each of which may or may not have happened:
    // 2^200 combinations unless the checker sees that none of them matters.
    let mut script = Script::new().write(0, 1, 1, 0, 1);
    for process in 0..200 {
        script = script.invoke(10 + process, "write", 1, json!(1000 + process), 2);
    }
    let history = script
        .write(1, 1, 2, 3, 4)
        .read(2, 1, json!(1), 5, 6)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable, "{report}");
    assert!(report
        .violation
        .unwrap()
        .explanation
        .starts_with("read of key 1 by process 2 returned 1"));
}

#[test]
fn the_values_named_are_those_consistent_with_what_others_saw_later() {
    // Writes of 17 and 18 overlap; a read sees 17 after both, so 18 came first. A read
    // overlapping that one sees 18: just before it the register could hold 18 in orders that
    // explain everything up to it, but none that also explain the read of 17.
    let history = Script::new()
        .invoke(2, "write", 0, json!(17), 0)
        .invoke(3, "write", 0, json!(18), 1)
        .end(2, EventType::Ok, "write", Some(0), json!(17), 10)
        .end(3, EventType::Ok, "write", Some(0), json!(18), 11)
        .invoke(4, "read", 0, Value::Null, 20)
        .invoke(1, "read", 0, Value::Null, 25)
        .end(4, EventType::Ok, "read", Some(0), json!(17), 30)
        .end(1, EventType::Ok, "read", Some(0), json!(18), 40)
        .done();
    let report = check(&history, BUDGET);
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let violation = report.violation.unwrap();
    assert_eq!(violation.culprit, 5);
    assert!(
        violation
            .explanation
            .contains("but the only value that could be current then is 17 (write by process 2"),
        "{}",
        violation.explanation
    );
    assert!(violation
        .explanation
        .contains("; 18 was last written by the write by process 3"));
    assert!(
        violation.ops.contains(&4),
        "the read of 17 is shown: {:?}",
        violation.ops
    );
}

#[test]
fn a_completion_stamped_before_its_invoke_is_read_as_immediate() {
    let history = Script::new()
        .write(0, 1, 1, 10, 5)
        .read(1, 1, json!(1), 20, 21)
        .done();
    assert_eq!(verdict(&history), Verdict::Linearizable);
}
