//! The router sleeps while it waits: a request waiting for a deadline far in the future costs
//! no CPU, and is answered at that deadline.
//!
//! One test in this binary, so that the only router thread in the process is this test's.

mod common;

use std::time::{Duration, Instant};

use common::{deadline, start, Transport};
use zhub_protocol::group::{GroupRequest, GROUP_SERVICE};
use zhub_protocol::{body, Reply, Request, Status};

/// CPU time (user + system) used so far by the threads named `name`, from
/// `/proc/self/task/*/stat`.
fn thread_cpu(name: &str) -> Duration {
    let ticks_per_second = 100;
    let mut total_ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        total_ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Duration::from_millis(total_ticks * 1000 / ticks_per_second)
}

#[test]
fn a_join_waiting_longer_than_its_silence_limit_costs_no_cpu_and_is_answered_at_its_deadline() {
    deadline(Duration::from_secs(30), || {
        let broker = start(Transport::Ipc);
        let ctx = zmq::Context::new();
        let raw = ctx.socket(zmq::DEALER).unwrap();
        raw.set_linger(0).unwrap();
        raw.set_rcvtimeo(10_000).unwrap();
        raw.set_sndtimeo(5_000).unwrap();
        raw.connect(&broker.url).unwrap();
        // Waits for two more members that never come, far longer than its 50 ms silence
        // limit: the member is alive while it waits, so nothing is due until the deadline.
        let join = GroupRequest::Join {
            group: "never.full".into(),
            member: 7,
            expected: Some(3),
            dead_after_ms: 50,
        };
        let timeout = Duration::from_secs(2);
        let request = Request {
            id: 11,
            service: GROUP_SERVICE.into(),
            timeout,
            body: vec![body::encode(&join).unwrap()],
        };
        let mut frames = vec![Vec::new()];
        frames.extend(request.encode());
        let cpu_before = thread_cpu("zhub-router");
        let sent = Instant::now();
        raw.send_multipart(frames, 0).unwrap();
        let reply = raw.recv_multipart(0);
        let waited = sent.elapsed();
        let cpu = thread_cpu("zhub-router").saturating_sub(cpu_before);
        // A spinning loop burns most of a core for the whole wait; a sleeping one next to
        // nothing. The bound leaves room for a slow, busy machine.
        assert!(
            cpu < Duration::from_millis(250),
            "router used {cpu:?} of CPU in {waited:?} of waiting"
        );
        let reply = reply.expect("the broker answers the join at its deadline");
        let reply = Reply::decode(&reply[1..]).unwrap();
        assert_eq!(
            (reply.id, reply.status),
            (11, Status::TimedOut),
            "{reply:?}"
        );
        assert!(
            reply.reason().contains("never.full"),
            "the reason names the group: {}",
            reply.reason()
        );
        assert!(waited >= timeout, "answered after {waited:?}");
    });
}
