//! Each workload's own check, for the workloads that are not registers: a counter, broadcast,
//! unique ids and an append-only log.
//!
//! All four read the same history form (see [`crate::history`]) and share its conventions:
//! an `ok` operation took effect, a `fail` one did not, an indefinite one (`info`, or no
//! completion) may have. "Before" means in the history's order: an operation completed before
//! another began when its completion event comes before the other's invoke.
//!
//! Each check lists every problem it finds (the first [`MAX_PROBLEMS`] in full, then a count
//! of the rest), so that one report shows the size of a failure as well as its first case.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::format_time;
use super::ops::{pair, Op, Outcome};
use crate::history::History;

/// Problems listed in full; beyond them a report says how many more there were.
pub const MAX_PROBLEMS: usize = 20;

/// What a workload check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadReport {
    /// No problem found.
    pub ok: bool,
    /// What is wrong, one sentence each.
    pub problems: Vec<String>,
}

impl fmt::Display for WorkloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok {
            return f.write_str("ok");
        }
        write!(f, "{} problem(s)", self.problems.len())?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems, keeping the first [`MAX_PROBLEMS`].
#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.listed.len() < MAX_PROBLEMS {
            self.listed.push(problem);
        } else {
            self.more += 1;
        }
    }

    fn report(mut self) -> WorkloadReport {
        if self.more > 0 {
            self.listed
                .push(format!("... and {} more problem(s)", self.more));
        }
        WorkloadReport {
            ok: self.listed.is_empty(),
            problems: self.listed,
        }
    }
}

/// Whether `earlier` completed before `later` was invoked.
fn completed_before(earlier: &Op<'_>, later: &Op<'_>) -> bool {
    earlier
        .completion_index
        .is_some_and(|at| at < later.invoke_index)
}

fn describe(op: &Op<'_>) -> String {
    match op.completion {
        Some(end) => format!(
            "{} by process {} (t={}..{})",
            op.f(),
            op.process(),
            format_time(op.call()),
            format_time(end.time)
        ),
        None => format!(
            "{} by process {} (invoked at t={})",
            op.f(),
            op.process(),
            format_time(op.call())
        ),
    }
}

/// A JSON value as a map key (`serde_json::Value` is not `Hash`).
fn key_of(value: &serde_json::Value) -> String {
    value.to_string()
}

/// A counter: `add` carries the increment (an integer, possibly negative), `read` returns the
/// total. Every successful read must lie within the totals possible at its time: the adds that
/// completed before it began certainly count, those that were invoked before it returned and
/// did not fail may count, the others cannot. The final read, after everything, thus lies
/// between the sum of `ok` adds and the sum of `ok` and indefinite adds. A history with no
/// successful read is a problem: the counter was never observed.
pub fn counter(history: &History) -> WorkloadReport {
    let ops = pair(history);
    let adds: Vec<(&Op<'_>, i64)> = ops
        .iter()
        .filter(|op| op.f() == "add" && op.outcome != Outcome::Fail)
        .filter_map(|op| op.invoke.value.as_i64().map(|delta| (op, delta)))
        .collect();
    let mut problems = Problems::default();
    let mut reads = 0;
    for read in ops
        .iter()
        .filter(|op| op.f() == "read" && op.outcome == Outcome::Ok)
    {
        reads += 1;
        let Some(value) = read.result().and_then(serde_json::Value::as_i64) else {
            problems.push(format!(
                "{} returned {}, not an integer",
                describe(read),
                read.result().cloned().unwrap_or_default()
            ));
            continue;
        };
        let end = read.completion_index.unwrap_or(usize::MAX);
        let (mut low, mut high) = (0i64, 0i64);
        for &(add, delta) in &adds {
            if add.outcome == Outcome::Ok && completed_before(add, read) {
                low += delta;
                high += delta;
            } else if add.invoke_index < end {
                if delta < 0 {
                    low += delta;
                } else {
                    high += delta;
                }
            }
        }
        if value < low || value > high {
            problems.push(format!(
                "{} returned {value}, but the counter could only be between {low} and {high} then",
                describe(read)
            ));
        }
    }
    if reads == 0 {
        problems.push("no read succeeded, so the counter was never observed".into());
    }
    problems.report()
}

/// The outcome of each element the operations `f` carry (a broadcast message, an appended
/// element), by its JSON text: an element sent twice counts as its best outcome (ok over
/// indefinite over fail).
fn best_outcomes(ops: &[Op<'_>], f: &str) -> HashMap<String, Outcome> {
    let mut outcome_of: HashMap<String, Outcome> = HashMap::new();
    for op in ops.iter().filter(|op| op.f() == f) {
        let entry = outcome_of
            .entry(key_of(&op.invoke.value))
            .or_insert(op.outcome);
        if op.outcome == Outcome::Ok
            || (op.outcome == Outcome::Indefinite && *entry == Outcome::Fail)
        {
            *entry = op.outcome;
        }
    }
    outcome_of
}

/// Broadcast: `broadcast` carries a message; `read` returns the list of messages the node
/// serving it has seen, and its `key` names that node. For each node of `nodes`, its final
/// read (the last successful read with that key) must hold every message whose broadcast
/// succeeded before that read began; and no read may hold a message nobody broadcast (or
/// whose broadcast failed). A node with no successful read is a problem.
pub fn broadcast(history: &History, nodes: &[u64]) -> WorkloadReport {
    let ops = pair(history);
    let outcome_of = best_outcomes(&ops, "broadcast");
    let mut problems = Problems::default();
    let mut final_reads: HashMap<u64, &Op<'_>> = HashMap::new();
    let mut invented: HashSet<String> = HashSet::new();
    for read in ops
        .iter()
        .filter(|op| op.f() == "read" && op.outcome == Outcome::Ok)
    {
        let Some(messages) = read.result().and_then(serde_json::Value::as_array) else {
            problems.push(format!("{} did not return a list", describe(read)));
            continue;
        };
        for message in messages {
            let key = key_of(message);
            match outcome_of.get(&key) {
                Some(Outcome::Ok | Outcome::Indefinite) => {}
                Some(Outcome::Fail) => {
                    if invented.insert(key.clone()) {
                        problems.push(format!(
                            "{} saw message {key}, whose broadcast failed",
                            describe(read)
                        ));
                    }
                }
                None => {
                    if invented.insert(key.clone()) {
                        problems.push(format!(
                            "{} saw message {key}, which nobody broadcast",
                            describe(read)
                        ));
                    }
                }
            }
        }
        if let Some(node) = read.key() {
            final_reads.insert(node, read);
        }
    }
    for &node in nodes {
        let Some(read) = final_reads.get(&node) else {
            problems.push(format!("node {node} has no successful read"));
            continue;
        };
        let seen: HashSet<String> = read
            .result()
            .and_then(serde_json::Value::as_array)
            .map(|messages| messages.iter().map(key_of).collect())
            .unwrap_or_default();
        let missing: Vec<String> = ops
            .iter()
            .filter(|op| op.f() == "broadcast" && op.outcome == Outcome::Ok)
            .filter(|op| completed_before(op, read))
            .map(|op| key_of(&op.invoke.value))
            .filter(|message| !seen.contains(message))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
            let more = if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            problems.push(format!(
                "node {node}'s final read, {}, misses {} acknowledged message(s): {}{more}",
                describe(read),
                missing.len(),
                shown.join(", ")
            ));
        }
    }
    problems.report()
}

/// Unique ids: every successful `generate` returns an id no other successful one returned.
pub fn unique_ids(history: &History) -> WorkloadReport {
    let ops = pair(history);
    let mut first: HashMap<String, &Op<'_>> = HashMap::new();
    let mut problems = Problems::default();
    for op in ops
        .iter()
        .filter(|op| op.f() == "generate" && op.outcome == Outcome::Ok)
    {
        let id = key_of(op.result().unwrap_or(&serde_json::Value::Null));
        if let Some(earlier) = first.get(&id) {
            problems.push(format!(
                "id {id} was returned twice: to the {} and to the {}",
                describe(earlier),
                describe(op)
            ));
        } else {
            first.insert(id, op);
        }
    }
    problems.report()
}

/// An append-only log: `append` carries an element, `read` returns the whole log as a list.
/// Successful reads must be prefixes of one another (one log, only ever appended to), hold no
/// element twice and no element nobody appended (or whose append failed); each must hold every
/// element whose append succeeded before it began (so the last read holds every acknowledged
/// append), and be at least as long as any read that completed before it began.
pub fn append_log(history: &History) -> WorkloadReport {
    let ops = pair(history);
    let outcome_of = best_outcomes(&ops, "append");
    let mut problems = Problems::default();
    let mut reads: Vec<(&Op<'_>, Vec<String>)> = Vec::new();
    for read in ops
        .iter()
        .filter(|op| op.f() == "read" && op.outcome == Outcome::Ok)
    {
        let Some(list) = read.result().and_then(serde_json::Value::as_array) else {
            problems.push(format!("{} did not return a list", describe(read)));
            continue;
        };
        let list: Vec<String> = list.iter().map(key_of).collect();
        let mut seen = HashSet::new();
        for element in &list {
            if !seen.insert(element) {
                problems.push(format!("{} holds element {element} twice", describe(read)));
            }
            match outcome_of.get(element) {
                Some(Outcome::Ok | Outcome::Indefinite) => {}
                Some(Outcome::Fail) => problems.push(format!(
                    "{} holds element {element}, whose append failed",
                    describe(read)
                )),
                None => problems.push(format!(
                    "{} holds element {element}, which nobody appended",
                    describe(read)
                )),
            }
        }
        reads.push((read, list));
    }
    // Prefixes of one another: each read is a prefix of the next longer one.
    let mut by_length: Vec<&(&Op<'_>, Vec<String>)> = reads.iter().collect();
    by_length.sort_by_key(|(_, list)| list.len());
    for pair in by_length.windows(2) {
        let ((short_read, short), (long_read, long)) = (pair[0], pair[1]);
        if !long.starts_with(short) {
            let at = short
                .iter()
                .zip(long)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            problems.push(format!(
                "{} and {} disagree at position {at} ({} against {}): they are not prefixes of one log",
                describe(short_read),
                describe(long_read),
                short[at],
                long[at]
            ));
        }
    }
    // Acknowledged appends by completion, and reads by completion with the longest so far,
    // so that each read looks only at what completed before it began.
    let mut acknowledged: Vec<(usize, String)> = ops
        .iter()
        .filter(|op| op.f() == "append" && op.outcome == Outcome::Ok)
        .filter_map(|op| Some((op.completion_index?, key_of(&op.invoke.value))))
        .collect();
    acknowledged.sort();
    let mut by_completion: Vec<usize> = (0..reads.len()).collect();
    by_completion.sort_by_key(|&r| reads[r].0.completion_index);
    let mut longest_so_far: Vec<usize> = Vec::with_capacity(reads.len());
    for (position, &r) in by_completion.iter().enumerate() {
        let best = match position.checked_sub(1).map(|p| longest_so_far[p]) {
            Some(best) if reads[best].1.len() >= reads[r].1.len() => best,
            _ => r,
        };
        longest_so_far.push(best);
    }
    for (read, list) in &reads {
        let held: HashSet<&String> = list.iter().collect();
        let before = acknowledged.partition_point(|(at, _)| *at < read.invoke_index);
        let missing: Vec<&str> = acknowledged[..before]
            .iter()
            .filter(|(_, element)| !held.contains(element))
            .map(|(_, element)| element.as_str())
            .collect();
        if !missing.is_empty() {
            let shown = &missing[..missing.len().min(10)];
            let more = if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            problems.push(format!(
                "{} misses {} element(s) acknowledged before it began: {}{more}",
                describe(read),
                missing.len(),
                shown.join(", ")
            ));
        }
        let done_before = by_completion.partition_point(|&r| {
            reads[r]
                .0
                .completion_index
                .is_some_and(|at| at < read.invoke_index)
        });
        if let Some(&longest) = done_before.checked_sub(1).map(|p| &longest_so_far[p]) {
            let (earlier, longer) = &reads[longest];
            if longer.len() > list.len() {
                problems.push(format!(
                    "{} returned {} element(s), but the {} had already returned {}",
                    describe(read),
                    list.len(),
                    describe(earlier),
                    longer.len()
                ));
            }
        }
    }
    problems.report()
}
