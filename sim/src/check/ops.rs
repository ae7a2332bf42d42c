//! A history's events paired into operations: each `invoke` with the next completion of the
//! same process.
//!
//! Pairing is forgiving, because a history may come from disk or from a real run: a
//! completion with no outstanding invoke of its process is ignored, and an invoke that finds
//! its process still waiting leaves the earlier operation with no completion (indefinite).

use std::collections::HashMap;

use crate::history::{Event, EventType, History, Process};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It took effect, and returned its completion's value.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// It may or may not have taken effect: an `info` completion, or none at all.
    Indefinite,
}

/// One operation: an invoke and what became of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Op<'a> {
    /// Index of the invoke event in the history.
    pub invoke_index: usize,
    /// Index of the completion event, if any.
    pub completion_index: Option<usize>,
    /// The invoke event (its value is the operation's argument).
    pub invoke: &'a Event,
    /// The completion event, if any (its value is the result when `Ok`).
    pub completion: Option<&'a Event>,
    /// How it ended.
    pub outcome: Outcome,
}

impl<'a> Op<'a> {
    /// The process that issued it.
    pub fn process(&self) -> Process {
        self.invoke.process
    }

    /// The operation's name.
    pub fn f(&self) -> &'a str {
        &self.invoke.f
    }

    /// The key it is about, for keyed workloads.
    pub fn key(&self) -> Option<u64> {
        self.invoke.key
    }

    /// When it was invoked.
    pub fn call(&self) -> u64 {
        self.invoke.time
    }

    /// When it certainly ended: the completion's time for `Ok` and `Fail`, `None` for an
    /// indefinite operation (which may take effect at any later time).
    pub fn returned(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Indefinite => None,
            Outcome::Ok | Outcome::Fail => self.completion.map(|event| event.time),
        }
    }

    /// The value it returned, when `Ok`.
    pub fn result(&self) -> Option<&'a serde_json::Value> {
        match self.outcome {
            Outcome::Ok => self.completion.map(|event| &event.value),
            Outcome::Fail | Outcome::Indefinite => None,
        }
    }
}

/// The history's operations, in the order of their invokes.
pub fn pair(history: &History) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = Vec::new();
    let mut outstanding: HashMap<Process, usize> = HashMap::new();
    for (index, event) in history.events.iter().enumerate() {
        match event.kind {
            EventType::Invoke => {
                // An earlier operation still outstanding stays without completion.
                outstanding.insert(event.process, ops.len());
                ops.push(Op {
                    invoke_index: index,
                    completion_index: None,
                    invoke: event,
                    completion: None,
                    outcome: Outcome::Indefinite,
                });
            }
            EventType::Ok | EventType::Fail | EventType::Info => {
                let Some(position) = outstanding.remove(&event.process) else {
                    continue;
                };
                let op = &mut ops[position];
                op.completion_index = Some(index);
                op.completion = Some(event);
                op.outcome = match event.kind {
                    EventType::Ok => Outcome::Ok,
                    EventType::Fail => Outcome::Fail,
                    _ => Outcome::Indefinite,
                };
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(process: Process, kind: EventType, time: u64) -> Event {
        Event {
            process,
            kind,
            f: "read".into(),
            key: None,
            value: serde_json::Value::Null,
            time,
        }
    }

    #[test]
    fn pairs_each_invoke_with_its_process_next_completion() {
        let history = History {
            events: vec![
                event(0, EventType::Invoke, 1),
                event(1, EventType::Invoke, 2),
                event(1, EventType::Fail, 3),
                event(2, EventType::Ok, 4),
                event(0, EventType::Ok, 5),
                event(0, EventType::Invoke, 6),
                event(0, EventType::Invoke, 7),
                event(0, EventType::Info, 8),
            ],
        };
        let ops = pair(&history);
        let summary: Vec<_> = ops
            .iter()
            .map(|op| {
                (
                    op.invoke_index,
                    op.completion_index,
                    op.outcome,
                    op.returned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, Some(4), Outcome::Ok, Some(5)),
                (1, Some(2), Outcome::Fail, Some(3)),
                (5, None, Outcome::Indefinite, None),
                (6, Some(7), Outcome::Indefinite, None),
            ]
        );
    }
}
