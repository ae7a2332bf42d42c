//! Register histories for `zhub bench sim-check`, made by a deterministic generator: a
//! simulated linearizable register over several keys with random concurrency, and the same
//! history with one read made stale.
//!
//! Each process issues one operation at a time (read, write or cas on a random key), with a
//! random gap after the last. Every operation gets a linearization point strictly inside its
//! interval; the operations are applied to the registers in the order of those points, which
//! decides what reads return and which cas succeed, so the history is linearizable by
//! construction. A few operations time out (`info`): they take effect or not by a coin toss,
//! possibly after the timeout, and the process moves on under a new number, as clients do.
//! Written values are unique, so a value once overwritten can never be current again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use serde_json::{json, Value};
use zhub_sim::history::{Event, EventType, History};

/// The shape of a generated history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Operations in all.
    pub ops: usize,
    /// Registers.
    pub keys: u64,
    /// Processes with an operation outstanding at once.
    pub processes: u64,
    /// Fraction of operations that time out.
    pub indefinite: f64,
    /// Seed of the generator.
    pub seed: u64,
}

/// SplitMix64: small, fast and reproducible, which is all a generator of test data needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Cas,
}

struct Planned {
    process: u64,
    kind: Kind,
    key: u64,
    call: u64,
    point: u64,
    ret: u64,
    indefinite: bool,
    takes_effect: bool,
    /// Write: the value; cas: `[expected, new]`.
    argument: Value,
    /// Read: the value read; cas: whether it succeeded.
    result: Value,
    succeeded: bool,
}

/// Nanoseconds from invoke to linearization point, and from there to the return, at most.
const HALF_LATENCY: u64 = 2_000;
/// Nanoseconds after which an operation times out.
const TIMEOUT: u64 = 10_000;

/// A linearizable register history of `shape`.
pub(crate) fn linearizable(shape: Shape) -> History {
    let mut rng = Rng(shape.seed);
    let mut next_value: i64 = 1;
    // (next free time, slot); each slot is one client, renumbered after a timeout.
    let mut free: BinaryHeap<Reverse<(u64, u64)>> = (0..shape.processes)
        .map(|slot| Reverse((rng.range(0, 1_000), slot)))
        .collect();
    let mut process_of: Vec<u64> = (0..shape.processes).collect();
    let mut next_process = shape.processes;
    let mut planned = Vec::with_capacity(shape.ops);
    while planned.len() < shape.ops {
        let Some(Reverse((call, slot))) = free.pop() else {
            break;
        };
        let kind = match rng.range(0, 9) {
            0..=4 => Kind::Read,
            5..=7 => Kind::Write,
            _ => Kind::Cas,
        };
        let indefinite = rng.chance(shape.indefinite);
        let point = call
            + rng.range(
                1,
                if indefinite {
                    3 * TIMEOUT
                } else {
                    HALF_LATENCY
                },
            );
        let ret = if indefinite {
            call + TIMEOUT
        } else {
            point + rng.range(1, HALF_LATENCY)
        };
        planned.push(Planned {
            process: process_of[slot as usize],
            kind,
            key: rng.range(0, shape.keys - 1),
            call,
            point,
            ret,
            indefinite,
            takes_effect: !indefinite || rng.chance(0.5),
            argument: Value::Null,
            result: Value::Null,
            succeeded: true,
        });
        if indefinite {
            process_of[slot as usize] = next_process;
            next_process += 1;
        }
        free.push(Reverse((ret + rng.range(0, 1_000), slot)));
    }

    // Apply in linearization order.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&i| (planned[i].point, i));
    let mut current: HashMap<u64, Value> = HashMap::new();
    let mut history_of: HashMap<u64, Vec<i64>> = HashMap::new();
    for i in order {
        let op = &mut planned[i];
        let value = current.get(&op.key).cloned().unwrap_or(Value::Null);
        match op.kind {
            Kind::Read => op.result = value,
            Kind::Write => {
                op.argument = json!(next_value);
                if op.takes_effect {
                    current.insert(op.key, op.argument.clone());
                    history_of.entry(op.key).or_default().push(next_value);
                }
                next_value += 1;
            }
            Kind::Cas => {
                // Mostly the current value, sometimes an older one, so some cas fail.
                let older = history_of.get(&op.key).and_then(|values| {
                    let back = rng.range(0, values.len().min(3) as u64) as usize;
                    values
                        .len()
                        .checked_sub(back + 1)
                        .map(|at| json!(values[at]))
                });
                let expected = if rng.chance(0.7) {
                    value.clone()
                } else {
                    older.unwrap_or(Value::Null)
                };
                op.argument = json!([expected, next_value]);
                op.succeeded = expected == value;
                if op.takes_effect && op.succeeded {
                    current.insert(op.key, json!(next_value));
                    history_of.entry(op.key).or_default().push(next_value);
                }
                next_value += 1;
            }
        }
    }

    let mut events: Vec<(u64, u8, usize, Event)> = Vec::with_capacity(2 * planned.len());
    for (i, op) in planned.iter().enumerate() {
        let f = match op.kind {
            Kind::Read => "read",
            Kind::Write => "write",
            Kind::Cas => "cas",
        };
        let event = |kind, value: Value, time| Event {
            process: op.process,
            kind,
            f: f.into(),
            key: Some(op.key),
            value,
            time,
        };
        let invoke_value = if op.kind == Kind::Read {
            Value::Null
        } else {
            op.argument.clone()
        };
        events.push((
            op.call,
            1,
            i,
            event(EventType::Invoke, invoke_value, op.call),
        ));
        let (kind, value) = if op.indefinite {
            (EventType::Info, Value::Null)
        } else if !op.succeeded {
            (EventType::Fail, Value::Null)
        } else if op.kind == Kind::Read {
            (EventType::Ok, op.result.clone())
        } else {
            (EventType::Ok, op.argument.clone())
        };
        // Completions before invokes of the same instant: both orders are true to the run.
        events.push((op.ret, 0, i, event(kind, value, op.ret)));
    }
    events.sort_by_key(|(time, rank, i, _)| (*time, *rank, *i));
    History {
        events: events.into_iter().map(|(_, _, _, event)| event).collect(),
    }
}

/// Makes one read past the middle of `history` return a value that two later completed
/// writes of its key had overwritten before it began, so the history cannot be linearizable.
/// Returns the index of that read's completion event, or `None` if no read qualifies.
pub(crate) fn make_stale(history: &mut History) -> Option<usize> {
    // (completion index, call time, value) of successful writes and cas, per key.
    let mut invoked: HashMap<u64, (u64, Value)> = HashMap::new();
    let mut done: HashMap<u64, Vec<(u64, u64, Value)>> = HashMap::new();
    let mut read_calls: HashMap<u64, u64> = HashMap::new();
    let middle = history.events.len() / 2;
    for index in 0..history.events.len() {
        let event = &history.events[index];
        let Some(key) = event.key else { continue };
        match (event.kind, event.f.as_str()) {
            (EventType::Invoke, "read") => {
                read_calls.insert(event.process, event.time);
            }
            (EventType::Invoke, "write" | "cas") => {
                invoked.insert(event.process, (event.time, event.value.clone()));
            }
            (EventType::Ok, "write" | "cas") => {
                if let Some((call, value)) = invoked.remove(&event.process) {
                    let written = if event.f == "cas" {
                        value[1].clone()
                    } else {
                        value
                    };
                    done.entry(key)
                        .or_default()
                        .push((call, event.time, written));
                }
            }
            (EventType::Ok, "read") if index > middle => {
                let call = read_calls.get(&event.process).copied().unwrap_or(0);
                let writes = done.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                // The latest w1 with a w2 invoked after w1 returned, and w2 done before the read.
                let finished: Vec<&(u64, u64, Value)> =
                    writes.iter().filter(|(_, ret, _)| *ret < call).collect();
                let stale = finished
                    .iter()
                    .rev()
                    .find_map(|w1| finished.iter().any(|w2| w2.0 > w1.1).then(|| w1.2.clone()));
                if let Some(stale) = stale.filter(|value| *value != event.value) {
                    history.events[index].value = stale;
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use zhub_sim::check::registers::{check, Verdict};

    use super::*;

    const SHAPE: Shape = Shape {
        ops: 2_000,
        keys: 4,
        processes: 12,
        indefinite: 0.02,
        seed: 7,
    };

    #[test]
    fn the_generated_history_is_linearizable_and_the_stale_one_is_not() {
        let mut history = linearizable(SHAPE);
        assert_eq!(
            history,
            linearizable(SHAPE),
            "the same seed, the same history"
        );
        let invokes = history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Invoke)
            .count();
        assert_eq!(invokes, SHAPE.ops);
        let outcomes: Vec<EventType> = history.events.iter().map(|e| e.kind).collect();
        assert!(outcomes.contains(&EventType::Fail) && outcomes.contains(&EventType::Info));
        let report = check(&history, Duration::from_secs(30));
        assert_eq!(report.verdict, Verdict::Linearizable, "{report}");

        let stale = make_stale(&mut history).expect("a read to make stale");
        let report = check(&history, Duration::from_secs(30));
        assert_eq!(report.verdict, Verdict::NotLinearizable, "{report}");
        let violation = report.violation.unwrap();
        assert!(
            violation.events.contains(&history.events[stale]),
            "{violation:?}"
        );
    }
}
