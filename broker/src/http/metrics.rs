//! `/metrics`: the broker's counters and gauges in the Prometheus text format (0.0.4).
//!
//! Each family is one `# HELP` line, one `# TYPE` line and its samples, `name{labels} value`.
//! Counters end in `_total`. Label values are escaped as the format requires (`\\`, `\"`,
//! `\n`). Names follow the `zhub_` prefix, except the process metrics, which use the names
//! every Prometheus exporter shares (`process_resident_memory_bytes`, `process_open_fds`).
//!
//! Request latencies are one histogram per service, `zhub_service_request_duration_seconds`,
//! in the buckets of [`LATENCY_BOUNDS_US`], from a request's arrival at the broker to its
//! worker's reply (replies only: errors and timeouts are counted in
//! `zhub_requests_failed_total`). The storage thread's syncs have the same buckets:
//! `zhub_kv_sync_duration_seconds` and `zhub_log_sync_duration_seconds` (one observation per
//! stream per commit, shared by every append of that commit). Groups are listed up to
//! [`MAX_LIST_GROUPS`]; past that, `zhub_groups_truncated` is 1.

use std::fmt::Write as _;

use zhub_client::GroupPage;
use zhub_protocol::builtin::{
    LatencyHistogram, PeerLink, Peers, ServiceInfo, Stats, StorageStats, LATENCY_BOUNDS_US,
};
use zhub_protocol::group::{GroupSummary, MAX_LIST_GROUPS};
use zhub_protocol::log::StreamSummary;

use super::{api, unavailable, BrokerSource, Reply};

/// The content type Prometheus expects of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics`.
pub(crate) fn reply(broker: &mut BrokerSource) -> Result<Reply, Reply> {
    let stats = broker.ask(|c| c.stats()).map_err(unavailable)?;
    let services = api::list_services(broker)?;
    let streams = broker.ask(|c| c.log().streams()).map_err(unavailable)?;
    let groups = broker
        .ask(|c| c.groups("", None, MAX_LIST_GROUPS))
        .map_err(unavailable)?;
    let storage = broker.ask(|c| c.storage_stats()).map_err(unavailable)?;
    let peers: Peers = broker
        .ask(|c| c.request(zhub_protocol::builtin::PEERS_SERVICE, &()))
        .map_err(unavailable)?;
    let text = render(&Snapshot {
        stats: &stats,
        storage: &storage,
        services: &services,
        streams: &streams,
        groups: &groups,
        peers: &peers,
        process: &Process::read(),
    });
    Ok(Reply::new(200, CONTENT_TYPE, text))
}

/// Everything one scrape shows.
pub(crate) struct Snapshot<'a> {
    pub(crate) stats: &'a Stats,
    pub(crate) storage: &'a StorageStats,
    pub(crate) services: &'a [ServiceInfo],
    pub(crate) streams: &'a [StreamSummary],
    pub(crate) groups: &'a GroupPage,
    pub(crate) peers: &'a Peers,
    pub(crate) process: &'a Process,
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
        self.sample_text(name, labels, &value.to_string());
    }

    fn sample_text(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
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

    /// One histogram's samples: cumulative buckets, `+Inf`, sum (in seconds) and count.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        let cumulative = h.cumulative();
        let bucket = format!("{name}_bucket");
        for (bound, count) in LATENCY_BOUNDS_US.iter().zip(&cumulative) {
            let le = seconds(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, *count);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, h.count());
        self.sample_text(&format!("{name}_sum"), labels, &seconds(h.sum_us));
        self.sample(&format!("{name}_count"), labels, h.count());
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

/// Microseconds as seconds, exactly (`0.00025`, `2.5`, `10`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let fraction = us % 1_000_000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
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

/// The cluster link: links by state, and each peer in session's round trip and session
/// age.
fn render_peers(f: &mut Families, peers: &Peers) {
    let g = "gauge";
    f.family(
        "zhub_peer_links",
        g,
        "Links to peer brokers, by state (up, standby, connecting).",
    );
    for state in ["up", "standby", "connecting"] {
        let count = peers.links.iter().filter(|l| l.state == state).count();
        f.sample("zhub_peer_links", &[("state", state)], count as u64);
    }
    let in_session: Vec<&PeerLink> = peers
        .links
        .iter()
        .filter(|l| !l.broker.is_empty())
        .collect();
    let labels = |l: &PeerLink| {
        [
            ("peer", l.broker.clone()),
            ("zone", l.zone.clone()),
            (
                "direction",
                if l.outgoing { "out" } else { "in" }.to_owned(),
            ),
        ]
    };
    for (name, help, of) in [
        (
            "zhub_peer_rtt_seconds",
            "Round trip of the link, from heartbeats (0 until measured).",
            (|l: &PeerLink| l.rtt_us) as fn(&PeerLink) -> u64,
        ),
        (
            "zhub_peer_session_seconds",
            "How long the link's session has been up.",
            |l: &PeerLink| l.up_ms * 1000,
        ),
    ] {
        f.family(name, g, help);
        for link in &in_session {
            let owned = labels(link);
            let refs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.sample_text(name, &refs, &seconds(of(link)));
        }
    }
    f.one(
        "zhub_cluster_malformed_total",
        "counter",
        "Messages on cluster links that could not be read (each closed its link).",
        peers.malformed,
    );
}

/// The whole `/metrics` text.
pub(crate) fn render(snapshot: &Snapshot<'_>) -> String {
    let Snapshot {
        stats,
        storage,
        services,
        streams,
        groups,
        peers,
        process,
    } = *snapshot;
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
        ("peer", bus.dropped.peer),
        ("forbidden", bus.dropped.forbidden),
        ("duplicate", bus.dropped.duplicate),
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
        "zhub_bus_from_peers_total",
        c,
        "Bus messages peer brokers sent, published there for subscribers here.",
        bus.from_peers,
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
        ("forbidden", r.forbidden),
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

    let name = "zhub_service_request_duration_seconds";
    f.family(
        name,
        "histogram",
        "Time from a request's arrival at the broker to its worker's reply.",
    );
    for s in services {
        f.histogram(name, &[("service", &s.name)], &s.latency);
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

    for (plane, ops, refused, syncs) in [
        ("kv", &storage.kv_ops, storage.kv_refused, &storage.kv_syncs),
        (
            "log",
            &storage.log_ops,
            storage.log_refused,
            &storage.log_syncs,
        ),
    ] {
        let name = format!("zhub_{plane}_requests_total");
        f.family(
            &name,
            c,
            &format!("Requests to zhub.{plane}, by operation."),
        );
        for (op, count) in ops {
            f.sample(&name, &[("op", op)], *count);
        }
        f.one(
            &format!("zhub_{plane}_refused_total"),
            c,
            &format!("Requests to zhub.{plane} refused at once: malformed, bad names, failed."),
            refused,
        );
        let name = format!("zhub_{plane}_sync_duration_seconds");
        let what = if plane == "kv" {
            "the key-value store's syncs"
        } else {
            "event log stream syncs, one per stream per commit"
        };
        f.family(&name, "histogram", &format!("How long {what} took."));
        f.histogram(&name, &[], syncs);
    }
    f.one(
        "zhub_log_records_appended_total",
        c,
        "Records appended by clients.",
        storage.log_records_appended,
    );
    f.one(
        "zhub_journal_records_total",
        c,
        "Records appended from journaled bus messages.",
        storage.journal_records,
    );

    render_peers(&mut f, peers);

    f.one(
        "zhub_groups",
        g,
        "Process groups with members (at most the groups listed).",
        groups.groups.len() as u64,
    );
    f.one(
        "zhub_groups_truncated",
        g,
        "1 when there are more groups than one scrape lists.",
        u64::from(groups.more),
    );
    let group = |name: &str, help: &str, of: fn(&GroupSummary) -> u64| {
        (name.to_owned(), help.to_owned(), of)
    };
    for (name, help, of) in [
        group("zhub_group_members", "Members in the group's view.", |s| {
            s.view.members.len() as u64
        }),
        group(
            "zhub_group_view_version",
            "The group's view version: one more at every change of membership.",
            |s| s.view.version,
        ),
        group(
            "zhub_group_lock_waiters",
            "Members waiting for the group's token.",
            |s| u64::from(s.waiting_locks),
        ),
    ] {
        f.each(&name, g, &help, "group", &groups.groups, |s| {
            (s.view.group.as_str(), of(s))
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

    /// The text for these services and nothing else.
    fn render_services(services: &[ServiceInfo]) -> String {
        render(&Snapshot {
            stats: &Stats::default(),
            storage: &StorageStats::default(),
            services,
            streams: &[],
            groups: &GroupPage::default(),
            peers: &Peers::default(),
            process: &Process::default(),
        })
    }

    #[test]
    fn peer_links_are_counted_by_state_and_described_by_peer() {
        let link = |broker: &str, state: &str, rtt_us| PeerLink {
            outgoing: true,
            endpoint: format!("tcp://{broker}:1"),
            broker: broker.into(),
            zone: "west".into(),
            state: state.into(),
            rtt_us,
            up_ms: 1500,
        };
        let peers = Peers {
            links: vec![link("b2", "up", 250), link("", "connecting", 0)],
            malformed: 3,
            ..Peers::default()
        };
        let mut f = Families {
            text: String::new(),
        };
        render_peers(&mut f, &peers);
        for line in [
            "zhub_peer_links{state=\"up\"} 1",
            "zhub_peer_links{state=\"connecting\"} 1",
            "zhub_peer_links{state=\"standby\"} 0",
            "zhub_peer_rtt_seconds{peer=\"b2\",zone=\"west\",direction=\"out\"} 0.00025",
            "zhub_peer_session_seconds{peer=\"b2\",zone=\"west\",direction=\"out\"} 1.5",
            "zhub_cluster_malformed_total 3",
        ] {
            assert!(f.text.lines().any(|l| l == line), "{line} in:\n{}", f.text);
        }
        assert!(
            !f.text.contains("peer=\"\""),
            "links in no session have no peer lines"
        );
    }

    #[test]
    fn label_values_are_escaped_and_every_line_parses() {
        let services = vec![ServiceInfo {
            name: "we\"ird\\name\nx".into(),
            workers: 2,
            ..ServiceInfo::default()
        }];
        let text = render_services(&services);
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
                        .is_some_and(|(_, v)| v.parse::<f64>().is_ok()),
                "{line}"
            );
        }
        assert!(text.contains("# TYPE zhub_bus_dropped_total counter"));
        assert!(text.contains("zhub_bus_dropped_total{reason=\"slow_subscriber\"} 0"));
    }

    #[test]
    fn latency_histograms_are_cumulative_in_seconds() {
        let mut latency = LatencyHistogram::default();
        for us in [80, 300, 300, 40_000_000] {
            latency.observe(std::time::Duration::from_micros(us));
        }
        let services = vec![ServiceInfo {
            name: "echo".into(),
            latency,
            ..ServiceInfo::default()
        }];
        let text = render_services(&services);
        let name = "zhub_service_request_duration_seconds";
        for (le, count) in [
            ("0.0001", 1),
            ("0.00025", 1),
            ("0.0005", 3),
            ("10", 3),
            ("+Inf", 4),
        ] {
            let line = format!("{name}_bucket{{service=\"echo\",le=\"{le}\"}} {count}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(&format!("{name}_sum{{service=\"echo\"}} 40.00068\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{name}_count{{service=\"echo\"}} 4\n")));
        assert!(text.contains(&format!("# TYPE {name} histogram\n")));
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }
}
