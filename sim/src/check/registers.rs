//! Linearizability of register histories: reads, writes and compare-and-set over many keys.
//!
//! ```
//! use std::time::Duration;
//! use zhub_sim::check::registers::{check, Verdict};
//! use zhub_sim::history::History;
//!
//! // A read that began after a write of 5 had completed, and saw nothing.
//! let text = r#"
//! {"process":0,"type":"invoke","f":"write","key":1,"value":5,"time":0}
//! {"process":0,"type":"ok","f":"write","key":1,"value":5,"time":10}
//! {"process":1,"type":"invoke","f":"read","key":1,"value":null,"time":20}
//! {"process":1,"type":"ok","f":"read","key":1,"value":null,"time":30}
//! "#;
//! let history = History::read_jsonl(text.as_bytes()).unwrap();
//! let report = check(&history, Duration::from_secs(1));
//! assert_eq!(report.verdict, Verdict::NotLinearizable);
//! assert!(report.violation.unwrap().explanation.starts_with(
//!     "read of key 1 by process 1 returned null between t=20ns and t=30ns, \
//!      but the only value that could be current then is 5"
//! ));
//! ```
//!
//! # The search
//! Keys are independent registers, so each is checked on its own (a history is linearizable
//! exactly when each key's part is). For one key, the check is the Wing-Gong search with
//! Lowe's memoisation: the operations' invokes and returns are laid out in time order in a
//! doubly linked list; the search walks it from the front, and each invoke it meets before
//! the first return is a candidate to take effect next. A candidate the register model
//! accepts is *lifted* out of the list (invoke and return both) and the walk starts over;
//! meeting a return first means nothing left can go next, so the last choice is undone and
//! the walk resumes after it. A configuration already seen (the set of operations taken, as a
//! bitset, and the register's value) is never explored twice, which is what keeps the search
//! polynomial on the histories real systems produce.
//!
//! # Operations and outcomes
//! `read` returns the value read (`null` before any write), `write` carries its value, `cas`
//! carries `[expected, new]` and appears as `ok` only when it succeeded (a failed cas is a
//! `fail`). An operation that ended in `fail` did not happen and is left out. An indefinite
//! one (`info`, or no completion) may take effect at any time after its invoke, or never: its
//! return is placed after everything, and the search succeeds once every definite operation
//! is placed, whatever indefinite ones remain. An indefinite read has no effect anyone could
//! see and is dropped; so is an indefinite write or cas whose value no read or cas observed.
//! Events of other operations, without a key, or with a malformed value
//! (a cas whose value is not a pair) are not register operations and are skipped.
//!
//! # Budget
//! The search is exponential in the worst case. It stops at the budget and answers
//! [`Verdict::Unknown`] rather than hang; finding the smallest failing part of a history
//! already known to be wrong has a budget of its own, of the same length.
//!
//! # The smallest failing part
//! Order the key's definite operations by return. Cut the history just before the k-th
//! return: keep the operations invoked before it, and treat those that return later as
//! indefinite. If the history is linearizable, so is every cut; so the first cut that is not
//! linearizable is found by bisection, and its k-th operation (the *culprit*) is the first
//! one that cannot have happened as seen. The search is then run once more over that cut,
//! with the culprit made a probe that never takes effect, to collect every value the register
//! could hold at a point where the culprit could take effect; of those, the explanation names
//! the ones that also explain the rest of the cut (the cut passes with the culprit finding
//! that value instead), and who wrote them.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use super::format_time;
use super::ops::{pair, Op, Outcome};
use crate::history::{Event, History};

/// The answer of a linearizability check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Some order of the operations explains every result.
    Linearizable,
    /// No order does; see the [`Violation`].
    NotLinearizable,
    /// The budget ran out before an answer (and no key was found wrong).
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown (budget exhausted)",
        })
    }
}

/// The smallest failing part of a key's history, and why it fails.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The key whose register went wrong.
    pub key: u64,
    /// The events of the operations that show it (invokes and completions, in history order):
    /// the culprit, the operations concurrent with it, the last to complete before it began,
    /// and the writes of the values it could have seen and of the value it saw.
    pub events: Vec<Event>,
    /// What went wrong, in words.
    pub explanation: String,
    /// Index in the history of the culprit's invoke event: the first operation of the key,
    /// by return, that cannot have happened as it was seen.
    pub culprit: usize,
    /// Indexes in the history of the invoke events of the operations in `events`.
    pub ops: Vec<usize>,
}

/// What a register check found.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterReport {
    /// The answer.
    pub verdict: Verdict,
    /// Keys checked.
    pub keys: usize,
    /// Register operations in the history (reads, writes and cas with a key), whatever their
    /// outcome.
    pub ops: usize,
    /// Time the check took, including the search for the smallest failing part.
    pub elapsed: Duration,
    /// When not linearizable: the first wrong key's smallest failing part.
    pub violation: Option<Violation>,
    /// When linearizable: for each key, the order in which its operations took effect, as
    /// indexes in the history of their invoke events (indefinite operations that never took
    /// effect are absent). Keys whose search ran out of time are absent.
    pub linearization: BTreeMap<u64, Vec<usize>>,
    /// Keys whose search ran out of time.
    pub unknown_keys: Vec<u64>,
}

impl fmt::Display for RegisterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} keys, {} operations, checked in {:.1?})",
            self.verdict, self.keys, self.ops, self.elapsed
        )?;
        if let Some(violation) = &self.violation {
            write!(f, ": {}", violation.explanation)?;
        }
        if !self.unknown_keys.is_empty() {
            write!(f, "; out of time on keys {:?}", self.unknown_keys)?;
        }
        Ok(())
    }
}

/// Checks that the register operations of `history` are linearizable, key by key, within
/// `budget` (and as long again to find the smallest failing part of a wrong key).
pub fn check(history: &History, budget: Duration) -> RegisterReport {
    let started = Instant::now();
    let deadline = started + budget;
    let all = pair(history);
    let mut by_key: BTreeMap<u64, Vec<&Op<'_>>> = BTreeMap::new();
    let mut count = 0;
    for op in &all {
        let (Some(key), "read" | "write" | "cas") = (op.key(), op.f()) else {
            continue;
        };
        count += 1;
        by_key.entry(key).or_default().push(op);
    }
    let mut report = RegisterReport {
        verdict: Verdict::Linearizable,
        keys: by_key.len(),
        ops: count,
        elapsed: Duration::ZERO,
        violation: None,
        linearization: BTreeMap::new(),
        unknown_keys: Vec::new(),
    };
    for (&key, ops) in &by_key {
        let model = KeyModel::new(ops);
        match search(&model.ops, deadline, None) {
            SearchEnd::Linearizable(order) => {
                let order = order.iter().map(|&i| ops[model.ops[i].op].invoke_index);
                report.linearization.insert(key, order.collect());
            }
            SearchEnd::OutOfTime => report.unknown_keys.push(key),
            SearchEnd::NotLinearizable => {
                let violation = smallest_failing_part(key, ops, &model, Instant::now() + budget);
                report.verdict = Verdict::NotLinearizable;
                report.violation = Some(violation);
                report.linearization.clear();
                break;
            }
        }
    }
    if report.verdict == Verdict::Linearizable && !report.unknown_keys.is_empty() {
        report.verdict = Verdict::Unknown;
        report.linearization.clear();
    }
    report.elapsed = started.elapsed();
    report
}

/// What an operation does to the register, values interned as numbers (0 is `null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Read(u32),
    Write(u32),
    Cas(u32, u32),
    /// Never takes effect; records the values the register holds where it is considered.
    Probe,
}

/// A position in time: nanoseconds, then the event's index in the history to order events
/// of the same instant as they were recorded.
type Stamp = (u64, usize);

/// One operation as the search sees it.
#[derive(Clone, Copy, Debug)]
struct RegisterOp {
    action: Action,
    call: Stamp,
    /// `None` for indefinite operations: they may take effect at any time after `call`.
    ret: Option<Stamp>,
    /// Index into the key's operations.
    op: usize,
}

/// One key's operations translated for the search, and the values they mention.
struct KeyModel {
    ops: Vec<RegisterOp>,
    values: Vec<serde_json::Value>,
}

impl KeyModel {
    fn new(ops: &[&Op<'_>]) -> Self {
        let mut interned: HashMap<String, u32> = HashMap::new();
        let mut values = Vec::new();
        let mut intern = |value: &serde_json::Value| -> u32 {
            let next = values.len() as u32;
            *interned.entry(value.to_string()).or_insert_with(|| {
                values.push(value.clone());
                next
            })
        };
        intern(&serde_json::Value::Null);
        let mut model_ops = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            let action = match (op.f(), op.outcome) {
                (_, Outcome::Fail) | ("read", Outcome::Indefinite) => continue,
                ("read", Outcome::Ok) => {
                    Action::Read(intern(op.result().unwrap_or(&serde_json::Value::Null)))
                }
                ("write", _) => Action::Write(intern(&op.invoke.value)),
                ("cas", _) => match op.invoke.value.as_array().map(Vec::as_slice) {
                    Some([expected, new]) => Action::Cas(intern(expected), intern(new)),
                    _ => continue,
                },
                _ => continue,
            };
            // A completion stamped before its invoke (clocks of a real run) is read as
            // immediate rather than as a return that precedes its own call.
            let ret = match (op.returned(), op.completion_index) {
                (Some(time), Some(at)) => Some((time.max(op.call()), at)),
                _ => None,
            };
            model_ops.push(RegisterOp {
                action,
                call: (op.call(), op.invoke_index),
                ret,
                op: index,
            });
        }
        // An indefinite write or cas whose value nobody observed can be assumed never to have
        // taken effect: in any order where it did, only a write can follow it (nothing reads
        // or expects its value), so the order without it is as valid. Dropping them matters:
        // each one left in doubles the configurations a failing search must explore.
        let mut observed = HashSet::new();
        for op in &model_ops {
            match op.action {
                Action::Read(value) | Action::Cas(value, _) => {
                    observed.insert(value);
                }
                Action::Write(_) | Action::Probe => {}
            }
        }
        model_ops.retain(|op| match (op.ret, op.action) {
            (None, Action::Write(value) | Action::Cas(_, value)) => observed.contains(&value),
            _ => true,
        });
        KeyModel {
            ops: model_ops,
            values,
        }
    }
}

/// How a search ended.
#[derive(Debug, PartialEq, Eq)]
enum SearchEnd {
    /// Every definite operation placed; the order, as indexes into the searched operations.
    Linearizable(Vec<usize>),
    /// Every configuration explored without success.
    NotLinearizable,
    /// The deadline passed first.
    OutOfTime,
}

const NIL: usize = usize::MAX;

/// The walk's list: entry `2i` is operation i's invoke, `2i + 1` its return; the head is
/// entry `2n`. Lifting removes both of an operation's entries, unlifting puts them back in the
/// reverse order, so the removed entries' own links stay valid (dancing links).
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    fn new(ops: &[RegisterOp]) -> Self {
        let n = ops.len();
        let mut order: Vec<usize> = (0..2 * n).collect();
        order.sort_by_key(|&entry| {
            let op = &ops[entry / 2];
            if entry.is_multiple_of(2) {
                (op.call.0, op.call.1, 0)
            } else {
                match op.ret {
                    Some((time, at)) => (time, at, 0),
                    None => (u64::MAX, usize::MAX, entry),
                }
            }
        });
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = 2 * n;
        for &entry in &order {
            next[last] = entry;
            prev[entry] = last;
            last = entry;
        }
        EntryList { next, prev }
    }

    fn head(&self) -> usize {
        self.next.len() - 1
    }

    fn remove(&mut self, entry: usize) {
        let (before, after) = (self.prev[entry], self.next[entry]);
        self.next[before] = after;
        if after != NIL {
            self.prev[after] = before;
        }
    }

    fn restore(&mut self, entry: usize) {
        let (before, after) = (self.prev[entry], self.next[entry]);
        self.next[before] = entry;
        if after != NIL {
            self.prev[after] = entry;
        }
    }

    fn lift(&mut self, op: usize) {
        self.remove(2 * op);
        self.remove(2 * op + 1);
    }

    fn unlift(&mut self, op: usize) {
        self.restore(2 * op + 1);
        self.restore(2 * op);
    }
}

/// Configurations already explored: the set of operations taken and the register's value.
///
/// A set is remembered by a 128-bit hash kept incrementally (two random words per operation,
/// XORed in and out), not by the set itself: a lookup then copies nothing and an entry takes
/// 24 bytes whatever the history's length, where full bitsets of a 10,000-operation key take
/// over a kilobyte each and an exhaustive search of a wrong history stores millions. Two
/// different sets would have to agree on all 128 bits to be confused, which at a billion
/// configurations happens with a chance below 10^-20.
struct Seen {
    hash: (u64, u64),
    salts: Vec<(u64, u64)>,
    seen: HashSet<(u64, u64, u32)>,
}

impl Seen {
    fn new(n: usize) -> Self {
        let salt = |i: u64, half: u64| {
            let mut hasher = DefaultHasher::new();
            (i, half).hash(&mut hasher);
            hasher.finish()
        };
        Seen {
            hash: (0, 0),
            salts: (0..n as u64).map(|i| (salt(i, 0), salt(i, 1))).collect(),
            seen: HashSet::new(),
        }
    }

    fn toggle(&mut self, op: usize) {
        self.hash.0 ^= self.salts[op].0;
        self.hash.1 ^= self.salts[op].1;
    }

    /// Whether the current set with `state` is new; remembers it either way.
    fn insert(&mut self, state: u32) -> bool {
        self.seen.insert((self.hash.0, self.hash.1, state))
    }
}

/// Searches for an order of `ops` that the register accepts. With `probe`, the search is
/// exhaustive (it does not stop at success) and collects the values the register holds
/// wherever a [`Action::Probe`] operation is considered.
fn search(
    ops: &[RegisterOp],
    deadline: Instant,
    mut probe: Option<&mut BTreeSet<u32>>,
) -> SearchEnd {
    let mut remaining = ops.iter().filter(|op| op.ret.is_some()).count();
    if remaining == 0 && probe.is_none() {
        return SearchEnd::Linearizable(Vec::new());
    }
    let mut list = EntryList::new(ops);
    let mut seen = Seen::new(ops.len());
    let mut taken: Vec<(usize, u32)> = Vec::new();
    let mut state = 0u32;
    let mut entry = list.next[list.head()];
    let mut steps: u32 = 0;
    loop {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(1024) && Instant::now() >= deadline {
            return SearchEnd::OutOfTime;
        }
        if entry != NIL && entry.is_multiple_of(2) {
            let op = entry / 2;
            let after = match ops[op].action {
                Action::Read(value) => (state == value).then_some(state),
                Action::Write(value) => Some(value),
                Action::Cas(expected, new) => (state == expected).then_some(new),
                Action::Probe => {
                    if let Some(states) = probe.as_deref_mut() {
                        states.insert(state);
                    }
                    None
                }
            };
            if let Some(after) = after {
                seen.toggle(op);
                if seen.insert(after) {
                    taken.push((op, state));
                    state = after;
                    list.lift(op);
                    if ops[op].ret.is_some() {
                        remaining -= 1;
                        if remaining == 0 && probe.is_none() {
                            return SearchEnd::Linearizable(taken.iter().map(|t| t.0).collect());
                        }
                    }
                    entry = list.next[list.head()];
                    continue;
                }
                seen.toggle(op);
            }
            entry = list.next[entry];
        } else {
            // A return (or the end): no operation after it can go next; undo the last choice.
            let Some((op, before)) = taken.pop() else {
                return SearchEnd::NotLinearizable;
            };
            seen.toggle(op);
            state = before;
            if ops[op].ret.is_some() {
                remaining += 1;
            }
            list.unlift(op);
            entry = list.next[2 * op];
        }
    }
}

/// The history cut just before the return of `culprit` (an index into `model.ops`):
/// operations invoked before it, those returning later made indefinite (reads among them,
/// then without effect, dropped).
fn cut_before_return(model: &KeyModel, culprit: usize) -> Vec<RegisterOp> {
    let Some(end) = model.ops[culprit].ret else {
        return model.ops.clone();
    };
    let mut cut = Vec::new();
    for op in &model.ops {
        if op.call >= end {
            continue;
        }
        let mut op = *op;
        if op.ret.is_some_and(|ret| ret > end) {
            if matches!(op.action, Action::Read(_)) {
                continue;
            }
            op.ret = None;
        }
        cut.push(op);
    }
    cut
}

fn smallest_failing_part(
    key: u64,
    ops: &[&Op<'_>],
    model: &KeyModel,
    deadline: Instant,
) -> Violation {
    let mut definite: Vec<usize> = (0..model.ops.len())
        .filter(|&i| model.ops[i].ret.is_some())
        .collect();
    definite.sort_by_key(|&i| model.ops[i].ret);
    // The whole history fails, so the last cut does; bisect for the first that fails. A cut
    // whose search runs out of time counts as passing, which only makes the part larger.
    let (mut low, mut high) = (0, definite.len().saturating_sub(1));
    while low < high {
        let middle = (low + high) / 2;
        let cut = cut_before_return(model, definite[middle]);
        if search(&cut, deadline, None) == SearchEnd::NotLinearizable {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let culprit = definite.get(low).copied().unwrap_or(0);
    let mut cut = cut_before_return(model, culprit);
    let mut possible = BTreeSet::new();
    let complete = match cut.iter_mut().find(|op| op.op == model.ops[culprit].op) {
        Some(probe) => {
            probe.action = Action::Probe;
            probe.ret = None;
            search(&cut, deadline, Some(&mut possible)) != SearchEnd::OutOfTime
        }
        None => true,
    };
    // The probe saw every value the register could hold where the culprit could go, in orders
    // that explain what came before; keep those that also explain what the other operations
    // of the cut saw afterwards, by trying the culprit as if it had found each of them.
    let cut = cut_before_return(model, culprit);
    let consistent: BTreeSet<u32> = possible
        .iter()
        .copied()
        .filter(|&value| {
            let mut trial = cut.clone();
            for op in trial.iter_mut().filter(|op| op.op == model.ops[culprit].op) {
                op.action = match op.action {
                    Action::Read(_) => Action::Read(value),
                    Action::Cas(_, new) => Action::Cas(value, new),
                    other => other,
                };
            }
            matches!(search(&trial, deadline, None), SearchEnd::Linearizable(_))
        })
        .collect();
    let complete = complete && Instant::now() < deadline;
    let found = Found {
        possible,
        consistent,
        complete,
    };
    explain(key, ops, model, &cut, culprit, &found)
}

/// What the search found of the values the culprit could have seen.
struct Found {
    /// Values the register could hold where the culprit could take effect.
    possible: BTreeSet<u32>,
    /// Those that would also explain the rest of the cut.
    consistent: BTreeSet<u32>,
    /// Whether the searches ran to the end within the budget.
    complete: bool,
}

/// The latest operation of the cut, invoked before `before`, that leaves `value` in the
/// register, other than the culprit (an index into the key's operations); `None` for a value
/// nobody wrote.
fn writer_of(cut: &[RegisterOp], value: u32, before: Stamp, culprit: usize) -> Option<&RegisterOp> {
    cut.iter()
        .filter(|op| op.call < before && op.op != culprit)
        .filter(|op| match op.action {
            Action::Write(written) | Action::Cas(_, written) => written == value,
            Action::Read(_) | Action::Probe => false,
        })
        .max_by_key(|op| op.call)
}

fn explain(
    key: u64,
    ops: &[&Op<'_>],
    model: &KeyModel,
    cut: &[RegisterOp],
    culprit: usize,
    found: &Found,
) -> Violation {
    let (possible, consistent) = (&found.possible, &found.consistent);
    let target = model.ops[culprit];
    let op = ops[target.op];
    let end = target.ret.unwrap_or((u64::MAX, usize::MAX));
    let shown_value = |value: u32| model.values[value as usize].to_string();
    let describe = |register_op: &RegisterOp| {
        let op = ops[register_op.op];
        let span = match op.returned() {
            Some(returned) => format!("t={}..{}", format_time(op.call()), format_time(returned)),
            None => format!("invoked at t={}, indefinite", format_time(op.call())),
        };
        format!("{} by process {}, {span}", op.f(), op.process())
    };
    let window = match op.returned() {
        Some(returned) => format!(
            "between t={} and t={}",
            format_time(op.call()),
            format_time(returned)
        ),
        None => format!("after t={}", format_time(op.call())),
    };
    let (what, expected) = match target.action {
        Action::Read(value) => (
            format!(
                "read of key {key} by process {} returned {} {window}",
                op.process(),
                shown_value(value)
            ),
            Some(value),
        ),
        Action::Cas(expected, new) => (
            format!(
                "cas of key {key} by process {} from {} to {} succeeded {window}",
                op.process(),
                shown_value(expected),
                shown_value(new)
            ),
            Some(expected),
        ),
        Action::Write(value) => (
            format!(
                "write of {} to key {key} by process {} {window}",
                shown_value(value),
                op.process()
            ),
            None,
        ),
        Action::Probe => (String::from("an operation"), None),
    };
    let mut explanation = what;
    let mut shown: BTreeSet<usize> = BTreeSet::from([target.op]);
    // Values in the order they were written, the initial one first.
    let mut name_values = |values: &BTreeSet<u32>| -> Vec<String> {
        let mut named: Vec<(Option<Stamp>, String)> = values
            .iter()
            .map(|&value| match writer_of(cut, value, end, target.op) {
                Some(writer) => {
                    shown.insert(writer.op);
                    let text = format!("{} ({})", shown_value(value), describe(writer));
                    (Some(writer.call), text)
                }
                None => (None, format!("{} (the initial value)", shown_value(value))),
            })
            .collect();
        named.sort();
        named.into_iter().map(|(_, text)| text).collect()
    };
    if possible.is_empty() {
        explanation.push_str(
            ", but no order of the operations before it lets it take effect at any point",
        );
    } else if consistent.is_empty() {
        explanation.push_str(&format!(
            ", but no value it could have found then explains what the other operations saw \
             (the register could hold {} there, each contradicted by a later result)",
            name_values(possible).join(" or ")
        ));
    } else {
        let values = name_values(consistent);
        let (only, verb) = if values.len() == 1 {
            ("only value", "is")
        } else {
            ("only values", "are")
        };
        explanation.push_str(&format!(
            ", but the {only} that could be current then {verb} {}",
            values.join(", ")
        ));
    }
    if !found.complete {
        explanation.push_str(" (the search for them ran out of time, so there may be more)");
    }
    if let Some(expected) = expected.filter(|value| !consistent.contains(value)) {
        match writer_of(cut, expected, end, target.op) {
            Some(writer) => {
                shown.insert(writer.op);
                explanation.push_str(&format!(
                    "; {} was last written by the {}",
                    shown_value(expected),
                    describe(writer)
                ));
            }
            None if expected == 0 => {}
            None => explanation.push_str(&format!(
                "; {} was never written to key {key} before",
                shown_value(expected)
            )),
        }
    }
    // Context: what overlaps the culprit, and the last operation known done before it.
    for other in cut {
        let overlaps = other.call < end && other.ret.is_none_or(|ret| ret > target.call);
        if overlaps {
            shown.insert(other.op);
        }
    }
    if let Some(last) = cut
        .iter()
        .filter(|other| other.ret.is_some_and(|ret| ret < target.call))
        .max_by_key(|other| other.ret)
    {
        shown.insert(last.op);
    }
    let mut indexes = Vec::new();
    let mut events: Vec<(usize, Event)> = Vec::new();
    for &index in &shown {
        let op = ops[index];
        indexes.push(op.invoke_index);
        events.push((op.invoke_index, op.invoke.clone()));
        if let (Some(at), Some(event)) = (op.completion_index, op.completion) {
            events.push((at, event.clone()));
        }
    }
    indexes.sort_unstable();
    events.sort_by_key(|(at, _)| *at);
    Violation {
        key,
        events: events.into_iter().map(|(_, event)| event).collect(),
        explanation,
        culprit: op.invoke_index,
        ops: indexes,
    }
}
