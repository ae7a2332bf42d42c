//! The workload checks (counter, broadcast, unique ids, append-only log) on hand-made
//! histories, each passing and failing.

mod common;

use common::Script;
use serde_json::{json, Value};
use zhub_sim::check::workloads::{append_log, broadcast, counter, unique_ids};
use zhub_sim::history::EventType::{Fail, Info, Ok};

#[test]
fn a_counter_read_within_the_possible_totals_passes() {
    let history = Script::new()
        .op(0, "add", json!(2), (Ok, Value::Null), (0, 1))
        .op(1, "add", json!(5), (Info, Value::Null), (2, 3))
        .op(2, "add", json!(100), (Fail, Value::Null), (2, 3))
        .op(0, "add", json!(-1), (Ok, Value::Null), (4, 5))
        // Only the first add certainly counts here; the -1 overlaps.
        .call(3, "read", Value::Null, 4)
        .end(3, Ok, "read", None, json!(2), 6)
        // Final reads: 1 (the info add never landed) or 6 (it did).
        .op(3, "read", Value::Null, (Ok, json!(1)), (10, 11))
        .op(4, "read", Value::Null, (Ok, json!(6)), (12, 13))
        .done();
    let report = counter(&history);
    assert!(report.ok, "{report}");
}

#[test]
fn a_counter_read_outside_the_possible_totals_fails() {
    let history = Script::new()
        .op(0, "add", json!(2), (Ok, Value::Null), (0, 1))
        .op(1, "add", json!(5), (Fail, Value::Null), (2, 3))
        .op(3, "read", Value::Null, (Ok, json!(7)), (10, 11))
        .op(3, "read", Value::Null, (Ok, json!(0)), (12, 13))
        .done();
    let report = counter(&history);
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 2, "{report}");
    assert!(
        report.problems[0].contains("returned 7, but the counter could only be between 2 and 2")
    );
    // Never read at all is a problem too.
    let unread = Script::new()
        .op(0, "add", json!(2), (Ok, Value::Null), (0, 1))
        .done();
    assert!(!counter(&unread).ok);
}

#[test]
fn broadcast_passes_when_every_node_ends_with_every_acknowledged_message() {
    let history = Script::new()
        .op(0, "broadcast", json!(1), (Ok, Value::Null), (0, 1))
        .op(1, "broadcast", json!(2), (Info, Value::Null), (0, 1))
        .op(2, "broadcast", json!(3), (Fail, Value::Null), (0, 1))
        // An early read may lack messages; the indefinite one may or may not arrive.
        .invoke(0, "read", 1, Value::Null, 2)
        .end(0, Ok, "read", Some(1), json!([]), 3)
        .invoke(0, "read", 1, Value::Null, 10)
        .end(0, Ok, "read", Some(1), json!([1, 2]), 11)
        .invoke(1, "read", 2, Value::Null, 10)
        .end(1, Ok, "read", Some(2), json!([1]), 11)
        .done();
    let report = broadcast(&history, &[1, 2]);
    assert!(report.ok, "{report}");
}

#[test]
fn broadcast_fails_on_a_missing_or_an_invented_message() {
    let history = Script::new()
        .op(0, "broadcast", json!(1), (Ok, Value::Null), (0, 1))
        .op(2, "broadcast", json!(3), (Fail, Value::Null), (0, 1))
        .invoke(0, "read", 1, Value::Null, 10)
        .end(0, Ok, "read", Some(1), json!([1, 3, 9]), 11)
        .invoke(1, "read", 2, Value::Null, 10)
        .end(1, Ok, "read", Some(2), json!([]), 11)
        .done();
    let report = broadcast(&history, &[1, 2, 3]);
    assert!(!report.ok);
    let text = report.problems.join("\n");
    assert!(
        text.contains("saw message 3, whose broadcast failed"),
        "{text}"
    );
    assert!(
        text.contains("saw message 9, which nobody broadcast"),
        "{text}"
    );
    assert!(text.contains("node 2's final read"), "{text}");
    assert!(
        text.contains("misses 1 acknowledged message(s): 1"),
        "{text}"
    );
    assert!(text.contains("node 3 has no successful read"), "{text}");
    assert_eq!(report.problems.len(), 4);
}

#[test]
fn unique_ids_pass_when_distinct_and_fail_on_a_repeat() {
    let distinct = Script::new()
        .op(0, "generate", Value::Null, (Ok, json!("a-1")), (0, 1))
        .op(1, "generate", Value::Null, (Ok, json!("a-2")), (0, 1))
        .op(2, "generate", Value::Null, (Info, Value::Null), (0, 1))
        .op(3, "generate", Value::Null, (Info, Value::Null), (0, 1))
        .done();
    assert!(unique_ids(&distinct).ok);
    let repeated = Script::new()
        .op(0, "generate", Value::Null, (Ok, json!(7)), (0, 1))
        .op(1, "generate", Value::Null, (Ok, json!(8)), (0, 1))
        .op(2, "generate", Value::Null, (Ok, json!(7)), (2, 3))
        .done();
    let report = unique_ids(&repeated);
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].starts_with("id 7 was returned twice: to the generate by process 0"));
}

#[test]
fn an_append_only_log_passes_when_reads_grow_one_log() {
    let history = Script::new()
        .op(0, "append", json!("x"), (Ok, Value::Null), (0, 1))
        .op(1, "append", json!("y"), (Info, Value::Null), (2, 3))
        .op(2, "append", json!("z"), (Fail, Value::Null), (2, 3))
        .op(3, "read", Value::Null, (Ok, json!(["x"])), (4, 5))
        .call(0, "append", json!("w"), 6)
        .op(4, "read", Value::Null, (Ok, json!(["x", "y"])), (7, 8))
        .end(0, Ok, "append", None, Value::Null, 9)
        .op(
            3,
            "read",
            Value::Null,
            (Ok, json!(["x", "y", "w"])),
            (10, 11),
        )
        .done();
    let report = append_log(&history);
    assert!(report.ok, "{report}");
}

#[test]
fn an_append_only_log_fails_on_forks_repeats_losses_and_inventions() {
    let history = Script::new()
        .op(0, "append", json!(1), (Ok, Value::Null), (0, 1))
        .op(0, "append", json!(2), (Ok, Value::Null), (2, 3))
        .op(1, "append", json!(3), (Fail, Value::Null), (2, 3))
        .op(3, "read", Value::Null, (Ok, json!([1, 2])), (4, 5))
        .op(3, "read", Value::Null, (Ok, json!([1])), (6, 7))
        .op(4, "read", Value::Null, (Ok, json!([2, 1, 3])), (8, 9))
        .op(4, "read", Value::Null, (Ok, json!([1, 2, 2, 5])), (10, 11))
        .done();
    let report = append_log(&history);
    assert!(!report.ok);
    let text = report.problems.join("\n");
    for expected in [
        "holds element 3, whose append failed",
        "holds element 2 twice",
        "holds element 5, which nobody appended",
        "they are not prefixes of one log",
        "misses 1 element(s) acknowledged before it began: 2",
        "returned 1 element(s), but the read by process 3 (t=4.000µs..5.000µs) had already returned 2",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}
