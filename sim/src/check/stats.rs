//! Availability and latency: how often operations succeeded, and how long the successful
//! ones took.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::ops::{pair, Outcome};
use crate::history::History;

/// Operation counts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations invoked.
    pub invoked: usize,
    /// Those that succeeded.
    pub ok: usize,
    /// Those that certainly did not take effect.
    pub fail: usize,
    /// Those whose outcome is unknown (`info`, or no completion).
    pub info: usize,
}

impl Counts {
    /// `ok / invoked`, 1 when nothing was invoked.
    pub fn availability(&self) -> f64 {
        if self.invoked == 0 {
            1.0
        } else {
            self.ok as f64 / self.invoked as f64
        }
    }

    fn add(&mut self, outcome: Outcome) {
        self.invoked += 1;
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Indefinite => self.info += 1,
        }
    }
}

/// Latency percentiles of successful operations (nearest rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

/// A history's availability and latency figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// All operations.
    pub total: Counts,
    /// Per operation name (`read`, `write`, ...).
    pub by_f: BTreeMap<String, Counts>,
    /// `total.ok / total.invoked`.
    pub availability: f64,
    /// Latency from invoke to `ok` completion; `None` when nothing succeeded.
    pub latency: Option<Latency>,
}

/// Counts outcomes and measures the latency of successful operations.
pub fn summarise(history: &History) -> Stats {
    let mut stats = Stats::default();
    let mut latencies = Vec::new();
    for op in pair(history) {
        stats.total.add(op.outcome);
        stats
            .by_f
            .entry(op.f().to_owned())
            .or_default()
            .add(op.outcome);
        if let (Outcome::Ok, Some(returned)) = (op.outcome, op.returned()) {
            latencies.push(returned.saturating_sub(op.call()));
        }
    }
    stats.availability = stats.total.availability();
    latencies.sort_unstable();
    if let Some(&max) = latencies.last() {
        let rank = |p: usize| {
            let index = (latencies.len() * p).div_ceil(100).saturating_sub(1);
            Duration::from_nanos(latencies[index])
        };
        stats.latency = Some(Latency {
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: Duration::from_nanos(max),
        });
    }
    stats
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = &self.total;
        write!(
            f,
            "{} operations: {} ok, {} fail, {} info; availability {:.1}%",
            total.invoked,
            total.ok,
            total.fail,
            total.info,
            self.availability * 100.0
        )?;
        match &self.latency {
            Some(latency) => write!(
                f,
                "; latency of ok operations p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
                latency.p50, latency.p90, latency.p99, latency.max
            )?,
            None => write!(f, "; no operation succeeded")?,
        }
        for (name, counts) in &self.by_f {
            write!(
                f,
                "\n  {name}: {} invoked, {} ok, {} fail, {} info ({:.1}% available)",
                counts.invoked,
                counts.ok,
                counts.fail,
                counts.info,
                counts.availability() * 100.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, EventType};

    fn event(process: u64, kind: EventType, f: &str, time: u64) -> Event {
        Event {
            process,
            kind,
            f: f.into(),
            key: None,
            value: serde_json::Value::Null,
            time,
        }
    }

    #[test]
    fn counts_outcomes_and_ranks_latencies_of_ok_operations() {
        let mut events = Vec::new();
        // Ten ok reads taking 1..=10 µs, one failed write, one write never answered.
        for i in 0..10u64 {
            events.push(event(i, EventType::Invoke, "read", i * 100_000));
            events.push(event(
                i,
                EventType::Ok,
                "read",
                i * 100_000 + (i + 1) * 1000,
            ));
        }
        events.push(event(20, EventType::Invoke, "write", 5));
        events.push(event(20, EventType::Fail, "write", 9_000_000));
        events.push(event(21, EventType::Invoke, "write", 6));
        let stats = summarise(&History { events });
        assert_eq!(
            stats.total,
            Counts {
                invoked: 12,
                ok: 10,
                fail: 1,
                info: 1
            }
        );
        assert!((stats.availability - 10.0 / 12.0).abs() < 1e-9);
        let latency = stats.latency.unwrap();
        assert_eq!(latency.p50, Duration::from_micros(5));
        assert_eq!(latency.p90, Duration::from_micros(9));
        assert_eq!(latency.p99, Duration::from_micros(10));
        assert_eq!(latency.max, Duration::from_micros(10));
        assert_eq!(stats.by_f["write"].fail, 1);
        let text = stats.to_string();
        assert!(text.starts_with("12 operations: 10 ok, 1 fail, 1 info; availability 83.3%"));
    }

    #[test]
    fn an_empty_history_is_fully_available_with_no_latency() {
        let stats = summarise(&History::new());
        assert_eq!(stats.availability, 1.0);
        assert_eq!(stats.latency, None);
        assert!(stats.to_string().contains("no operation succeeded"));
    }
}
