//! Hand-made histories for the checker tests, written as one line per event.

#![allow(dead_code)]

use serde_json::{json, Value};
use zhub_sim::history::{Event, EventType, History};

/// Builds a history event by event; times are in microseconds to keep the tests readable.
#[derive(Default)]
pub struct Script {
    pub history: History,
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(
        &mut self,
        process: u64,
        kind: EventType,
        f: &str,
        key: Option<u64>,
        value: Value,
        micros: u64,
    ) {
        self.history.push(Event {
            process,
            kind,
            f: f.into(),
            key,
            value,
            time: micros * 1000,
        });
    }

    /// An invoke of `f` on `key`.
    pub fn invoke(mut self, process: u64, f: &str, key: u64, value: Value, micros: u64) -> Self {
        self.push(process, EventType::Invoke, f, Some(key), value, micros);
        self
    }

    /// An invoke of `f` with no key.
    pub fn call(mut self, process: u64, f: &str, value: Value, micros: u64) -> Self {
        self.push(process, EventType::Invoke, f, None, value, micros);
        self
    }

    /// A completion of `process`'s outstanding `f`.
    pub fn end(
        mut self,
        process: u64,
        kind: EventType,
        f: &str,
        key: Option<u64>,
        value: Value,
        micros: u64,
    ) -> Self {
        self.push(process, kind, f, key, value, micros);
        self
    }

    /// `write(key, value)` by `process` over [from, to], ok.
    pub fn write(self, process: u64, key: u64, value: i64, from: u64, to: u64) -> Self {
        self.invoke(process, "write", key, json!(value), from).end(
            process,
            EventType::Ok,
            "write",
            Some(key),
            json!(value),
            to,
        )
    }

    /// `read(key)` by `process` over [from, to] returning `value`, ok.
    pub fn read(self, process: u64, key: u64, value: Value, from: u64, to: u64) -> Self {
        self.invoke(process, "read", key, Value::Null, from).end(
            process,
            EventType::Ok,
            "read",
            Some(key),
            value,
            to,
        )
    }

    /// A successful `cas(key, expected -> new)` by `process` over [from, to].
    pub fn cas(self, process: u64, key: u64, expected: i64, new: i64, from: u64, to: u64) -> Self {
        self.invoke(process, "cas", key, json!([expected, new]), from)
            .end(
                process,
                EventType::Ok,
                "cas",
                Some(key),
                json!([expected, new]),
                to,
            )
    }

    /// An operation of `f` with no key over `span` (from, to), ending as `outcome` (kind and
    /// result).
    pub fn op(
        self,
        process: u64,
        f: &str,
        argument: Value,
        outcome: (EventType, Value),
        span: (u64, u64),
    ) -> Self {
        self.call(process, f, argument, span.0)
            .end(process, outcome.0, f, None, outcome.1, span.1)
    }

    pub fn done(self) -> History {
        self.history
    }
}
