//! `/metrics`: the broker's counters and gauges in the Prometheus text format (0.0.4).
//!
//! Each family is one `# HELP` line, one `# TYPE` line and its samples, `name{labels} value`.
//! Counters end in `_total`. Label values are escaped as the format requires (`\\`, `\"`,
//! `\n`). Names follow the `zhub_` prefix, except the process metrics, which use the names
//! every Prometheus exporter shares (`process_resident_memory_bytes`, `process_open_fds`).
//!
//! The broker measures no request latencies, so there is no latency histogram here.

use std::fmt::Write as _;

use zhub_protocol::builtin::{ServiceInfo, Stats};
use zhub_protocol::log::StreamSummary;

use super::{api, unavailable, BrokerSource, Reply};

/// The content type Prometheus expects of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics`.
pub(crate) fn reply(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let stats = broker.ask(|c| c.stats()).map_err(unavailable)?;
    let services = api::list_services(broker)?;
    let streams = broker.ask(|c| c.log().streams()).map_err(unavailable)?;
    let text = render(&stats, &services, &streams, &Process::read());
    Ok(Reply::new(200, CONTENT_TYPE, text))
}

/// What the process tells of itself, where the platform does.
#[derive(Debug, Default)]
pub(crate) struct Process {
    /// Open file descriptors.
    pub(crate) open_fds: Option<u64>,
    /// The open file limit (soft).
    pub(crate) max_fds: Option<u64>,
}

impl Process {
    /// Counts `/proc/self/fd` and reads the open file limit.
    pub(crate) fn read() -> Process {
        // The directory's own descriptor, open while it is read, is counted out.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count().saturating_sub(1) as u64);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into the struct it is given.
        let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0)
            .then_some(limit.rlim_cur);
        Process { open_fds, max_fds }
    }
}

/// Writes metric families into one text.
struct Families {
    text: String,
}

impl Families {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape(text));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one unlabelled sample.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per item, labelled `label` with the item's name.
    fn each<T>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        items: &[T],
        of: impl Fn(&T) -> (&str, u64),
    ) {
        self.family(name, kind, help);
        for item in items {
            let (text, value) = of(item);
            self.sample(name, &[(label, text)], value);
        }
    }
}

/// A label value as the text format writes it.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The whole `/metrics` text.
pub(crate) fn render(
    stats: &Stats,
    services: &[ServiceInfo],
    streams: &[StreamSummary],
    process: &Process,
) -> String {
    let mut f = Families {
        text: String::with_capacity(4096 + 400 * (services.len() + streams.len())),
    };
    let (c, g) = ("counter", "gauge");
    f.one(
        "zhub_uptime_seconds",
        g,
        "Seconds since the broker started.",
        stats.uptime_ms / 1000,
    );

    let bus = &stats.bus;
    f.one(
        "zhub_bus_messages_in_total",
        c,
        "Messages received from publishers.",
        bus.messages_in,
    );
    f.one(
        "zhub_bus_bytes_in_total",
        c,
        "Bytes received from publishers.",
        bus.bytes_in,
    );
    f.one(
        "zhub_bus_messages_out_total",
        c,
        "Messages handed on to the subscribe side.",
        bus.messages_out,
    );
    f.one(
        "zhub_bus_bytes_out_total",
        c,
        "Bytes handed on to the subscribe side.",
        bus.bytes_out,
    );
    f.family(
        "zhub_bus_dropped_total",
        c,
        "Bus messages not delivered, by reason.",
    );
    for (reason, value) in [
        ("malformed", bus.dropped.malformed),
        ("slow_subscriber", bus.dropped.slow_subscriber),
        ("slow_plain_subscriber", bus.dropped.slow_plain_subscriber),
        ("fault", bus.dropped.fault),
    ] {
        f.sample("zhub_bus_dropped_total", &[("reason", reason)], value);
    }
    f.one(
        "zhub_bus_fault_delayed_total",
        c,
        "Bus messages held back by zhub.fault rules.",
        bus.fault_delayed,
    );
    f.one(
        "zhub_bus_fault_held",
        g,
        "Bus messages held back by zhub.fault rules right now.",
        bus.fault_held,
    );
    f.one(
        "zhub_bus_subscriptions",
        g,
        "Distinct subscription prefixes held by subscribers.",
        bus.subscriptions,
    );
    f.one(
        "zhub_bus_subscribers",
        g,
        "zhub subscribers connected.",
        bus.subscribers,
    );
    f.one(
        "zhub_bus_refused_subscriptions_total",
        c,
        "Subscriptions refused: malformed, too long or over a limit.",
        bus.refused_subscriptions,
    );

    let r = &stats.requests;
    f.one(
        "zhub_requests_received_total",
        c,
        "Requests received from clients.",
        r.received,
    );
    f.one(
        "zhub_requests_replied_total",
        c,
        "Replies sent to clients, errors included.",
        r.replied,
    );
    f.family(
        "zhub_requests_failed_total",
        c,
        "Requests that did not get a worker's reply, by outcome.",
    );
    for (outcome, value) in [
        ("malformed", r.malformed),
        ("unroutable", r.unroutable),
        ("busy", r.busy),
        ("timed_out", r.timed_out),
        ("worker_failed", r.worker_failed),
    ] {
        f.sample("zhub_requests_failed_total", &[("outcome", outcome)], value);
    }
    f.one(
        "zhub_requests_requeued_total",
        c,
        "Requests handed to another worker after theirs died or went silent.",
        r.requeued,
    );
    f.one(
        "zhub_workers_expired_total",
        c,
        "Workers expired for silence.",
        r.workers_expired,
    );

    f.one(
        "zhub_services",
        g,
        "Services known to the broker.",
        services.len() as u64,
    );
    let service = |name: &str, kind: &str, help: &str, of: fn(&ServiceInfo) -> u64| {
        (name.to_owned(), kind.to_owned(), help.to_owned(), of)
    };
    for (name, kind, help, of) in [
        service(
            "zhub_service_workers",
            g,
            "Workers registered for the service.",
            |s| s.workers,
        ),
        service(
            "zhub_service_idle_workers",
            g,
            "Workers of the service free to take a request now.",
            |s| s.idle,
        ),
        service(
            "zhub_service_queued",
            g,
            "Requests waiting for a worker.",
            |s| s.queued,
        ),
        service("zhub_service_in_flight", g, "Requests being served.", |s| {
            s.in_flight
        }),
        service(
            "zhub_service_served_total",
            c,
            "Replies delivered by the service's workers.",
            |s| s.served,
        ),
    ] {
        f.each(&name, &kind, &help, "service", services, |s| {
            (s.name.as_str(), of(s))
        });
    }

    f.one(
        "zhub_streams",
        g,
        "Event log streams.",
        streams.len() as u64,
    );
    let stream = |name: &str, help: &str, of: fn(&StreamSummary) -> u64| {
        (name.to_owned(), help.to_owned(), of)
    };
    for (name, help, of) in [
        stream("zhub_stream_records", "Records held by the stream.", |s| {
            s.records
        }),
        stream(
            "zhub_stream_size_bytes",
            "Bytes the stream takes on disk.",
            |s| s.size_bytes,
        ),
        stream(
            "zhub_stream_first_offset",
            "Oldest offset the stream holds.",
            |s| s.first_offset,
        ),
        stream(
            "zhub_stream_next_offset",
            "Offset the stream's next record gets.",
            |s| s.next_offset,
        ),
    ] {
        f.each(&name, g, &help, "stream", streams, |s| {
            (s.name.as_str(), of(s))
        });
    }

    if let Some(rss) = stats.rss_bytes {
        f.one(
            "process_resident_memory_bytes",
            g,
            "Resident memory of the broker process.",
            rss,
        );
    }
    if let Some(peak) = stats.peak_rss_bytes {
        f.one(
            "zhub_process_peak_resident_memory_bytes",
            g,
            "Peak resident memory of the broker process.",
            peak,
        );
    }
    if let Some(open) = process.open_fds {
        f.one(
            "process_open_fds",
            g,
            "Open file descriptors of the broker process.",
            open,
        );
    }
    if let Some(max) = process.max_fds {
        f.one(
            "process_max_fds",
            g,
            "The broker process's open file limit.",
            max,
        );
    }
    f.text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_every_line_parses() {
        let services = vec![ServiceInfo {
            name: "we\"ird\\name\nx".into(),
            workers: 2,
            ..ServiceInfo::default()
        }];
        let text = render(&Stats::default(), &services, &[], &Process::default());
        assert!(
            text.contains("zhub_service_workers{service=\"we\\\"ird\\\\name\\nx\"} 2"),
            "{text}"
        );
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line
                        .rsplit_once(' ')
                        .is_some_and(|(_, v)| v.parse::<u64>().is_ok()),
                "{line}"
            );
        }
        assert!(text.contains("# TYPE zhub_bus_dropped_total counter"));
        assert!(text.contains("zhub_bus_dropped_total{reason=\"slow_subscriber\"} 0"));
    }
}
