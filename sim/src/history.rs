//! Histories: what clients invoked and what they saw, as checkers read them.
//!
//! A history is a sequence of [`Event`]s in the order they happened. Every operation appears
//! as an `invoke` event followed, for the same process, by at most one completion: `ok` (it
//! took effect, with the value it returned), `fail` (it certainly did not take effect) or
//! `info` (indefinite: it may or may not have taken effect, for instance after a timeout). An
//! operation with no completion at the end of the history is indefinite too. A process has at
//! most one operation outstanding at a time; a client that times out moves on as a new process
//! (as Jepsen does), so an indefinite operation never blocks later ones of the same client.
//!
//! # JSON-lines form
//!
//! One event per line, a JSON object with these fields:
//!
//! | field     | type                  | meaning                                                  |
//! |-----------|-----------------------|----------------------------------------------------------|
//! | `process` | integer               | the process (client) that issued the operation           |
//! | `type`    | `"invoke"`, `"ok"`, `"fail"`, `"info"` | see above                               |
//! | `f`       | string                | the operation: `read`, `write`, `cas`, `add`, `broadcast`, `generate`, `append`, ... |
//! | `key`     | integer or absent     | the key the operation is about, for keyed workloads      |
//! | `value`   | any JSON value        | the argument on `invoke`, the result on `ok`             |
//! | `time`    | integer               | nanoseconds since the run began (simulated or real)      |
//!
//! Values per operation, for the register workload: `read` invokes with `null` and returns the
//! value read (`null` when the key was never written); `write` carries the value written;
//! `cas` carries `[expected, new]`. For the others: `add` carries the increment and `read` of
//! a counter returns its total; `broadcast` carries the message; `generate` returns the id;
//! `append` carries the element and `read` of a log returns the list.
//!
//! ```text
//! {"process":0,"type":"invoke","f":"write","key":3,"value":7,"time":1200}
//! {"process":0,"type":"ok","f":"write","key":3,"value":7,"time":5600}
//! {"process":1,"type":"invoke","f":"read","key":3,"value":null,"time":6000}
//! {"process":1,"type":"info","f":"read","key":3,"value":null,"time":106000}
//! ```

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::workload::{Op, Outcome};

/// A process: one client's identity in a history.
pub type Process = u64;

/// What an event says of its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was issued.
    Invoke,
    /// It took effect, and returned the event's value.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// It may or may not have taken effect (timeout, lost reply).
    Info,
}

/// One line of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The process that issued the operation.
    pub process: Process,
    /// Invoke or one of the completions.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The operation's name (`read`, `write`, `cas`, ...).
    pub f: String,
    /// The key, for keyed workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u64>,
    /// The argument (on invoke) or the result (on ok).
    #[serde(default)]
    pub value: serde_json::Value,
    /// Nanoseconds since the run began.
    pub time: u64,
}

impl Event {
    /// The event of `process` about `op`, with `value` (see the table above), at `time`.
    pub fn new(
        process: Process,
        kind: EventType,
        op: &Op,
        value: serde_json::Value,
        time: u64,
    ) -> Event {
        Event {
            process,
            kind,
            f: op.f().to_string(),
            key: op.key(),
            value,
            time,
        }
    }
}

/// How an operation's completion reads in a history, given what came of it (`None`: no
/// answer, a timeout): `ok` with its result, `fail`, or `info` (indefinite) with its
/// argument. The simulator's clients and `zhub sim serve`'s both record by this rule; after
/// an `info` the client goes on as a new process.
pub fn completion(op: &Op, outcome: Option<&Outcome>) -> (EventType, serde_json::Value) {
    match outcome {
        Some(Outcome::Ok(value)) => (EventType::Ok, op.result(value)),
        Some(Outcome::Fail(_)) => (EventType::Fail, op.argument()),
        Some(Outcome::Unknown) | None => (EventType::Info, op.argument()),
    }
}

/// A whole history, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The events, in the order they happened.
    pub events: Vec<Event>,
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The file could not be read or written.
    #[error("history i/o failed")]
    Io(#[from] io::Error),
    /// A line is not an event.
    #[error("line {line}: not a history event: {cause}")]
    Malformed {
        /// The 1-based line number.
        line: usize,
        /// What the JSON parser said.
        cause: serde_json::Error,
    },
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Writes the history in its JSON-lines form.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn write_jsonl(&self, mut out: impl Write) -> Result<(), HistoryError> {
        for event in &self.events {
            serde_json::to_writer(&mut out, event).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Reads a history in its JSON-lines form; blank lines are skipped.
    ///
    /// # Errors
    /// When the reader fails or a line is not an event.
    pub fn read_jsonl(input: impl BufRead) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (index, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(&line).map_err(|cause| HistoryError::Malformed {
                line: index + 1,
                cause,
            })?;
            events.push(event);
        }
        Ok(Self { events })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_and_omits_absent_keys() {
        let mut history = History::new();
        history.push(Event {
            process: 0,
            kind: EventType::Invoke,
            f: "write".into(),
            key: Some(3),
            value: 7.into(),
            time: 1200,
        });
        history.push(Event {
            process: 1,
            kind: EventType::Info,
            f: "generate".into(),
            key: None,
            value: serde_json::Value::Null,
            time: 1300,
        });
        let mut text = Vec::new();
        history.write_jsonl(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(
            text,
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"key\":3,\"value\":7,\"time\":1200}\n\
             {\"process\":1,\"type\":\"info\",\"f\":\"generate\",\"value\":null,\"time\":1300}\n"
        );
        assert_eq!(History::read_jsonl(text.as_bytes()).unwrap(), history);
    }

    #[test]
    fn a_malformed_line_is_named() {
        let text =
            "\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\",\"value\":1,\"time\":1}\nnot json\n";
        match History::read_jsonl(text.as_bytes()) {
            Err(HistoryError::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a malformed line, got {other:?}"),
        }
    }
}
