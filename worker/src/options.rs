//! [`WorkerOptions`]: heartbeats and reconnection, with every default documented.

use std::time::Duration;

use crate::{Worker, WorkerError};

/// Settings for [`Worker`]; build with the methods, then [`WorkerOptions::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct WorkerOptions {
    pub(crate) heartbeat: Duration,
    pub(crate) liveness: u32,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

impl Default for WorkerOptions {
    /// - `heartbeat`: 2.5 s between heartbeats (the broker's default too);
    /// - `liveness`: 3 heartbeats without any traffic from the broker before reconnecting;
    /// - `reconnect`: backoff from 1 s, doubling to at most 32 s.
    fn default() -> Self {
        WorkerOptions {
            heartbeat: Duration::from_millis(2500),
            liveness: 3,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(32),
        }
    }
}

impl WorkerOptions {
    /// The defaults (see [`WorkerOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Interval between heartbeats to the broker. Use the broker's `--heartbeat`.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Heartbeat intervals without traffic from the broker before the worker reconnects.
    pub fn liveness(mut self, intervals: u32) -> Self {
        self.liveness = intervals.max(1);
        self
    }

    /// Backoff between reconnection attempts: from `min`, doubling up to `max`.
    pub fn reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// Registers a worker for `service` at the broker whose main endpoint is `url`.
    ///
    /// # Errors
    /// See [`Worker::connect`].
    pub fn connect(self, url: &str, service: &str) -> Result<Worker, WorkerError> {
        Worker::connect_with(url, service, self)
    }
}
