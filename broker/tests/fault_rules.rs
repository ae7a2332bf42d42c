//! `zhub.fault`: rules that drop and delay bus messages, through an in-process broker.

mod common;

use std::time::{Duration, Instant};

use common::{deadline, start, start_with, Transport};
use zhub_client::{Client, RequestErrorKind, Subscriber};
use zhub_protocol::fault::{FaultRequest, FaultRule, FaultRuleInfo, FAULT_SERVICE};

const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(5);

fn add(client: &mut Client, rule: FaultRule) -> FaultRuleInfo {
    client
        .request(FAULT_SERVICE, &FaultRequest::Add { rule })
        .unwrap()
}

/// The topics of every message `sub` receives up to the marker published on `marker`.
fn until_marker(client: &mut Client, sub: &mut Subscriber, marker: &str) -> Vec<String> {
    client.publish(marker, &0u8).unwrap();
    let mut topics = Vec::new();
    loop {
        let message = sub.recv_timeout(WAIT).unwrap().expect("the marker comes");
        if message.topic() == marker {
            return topics;
        }
        topics.push(message.topic().to_owned());
    }
}

#[test]
fn a_drop_rule_drops_matching_messages_only_until_cleared() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| c.allow_faults = true);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut sub = client.subscribe(&["f."]).unwrap();
        let rule = add(
            &mut client,
            FaultRule {
                pattern: "f.*.cut".into(),
                drop: 1.0,
                ..FaultRule::default()
            },
        );
        for _ in 0..20 {
            client.publish("f.a.cut", &1u8).unwrap();
            client.publish("f.a.kept", &1u8).unwrap();
        }
        let seen = until_marker(&mut client, &mut sub, "f.marker");
        assert_eq!(seen, vec!["f.a.kept".to_string(); 20]);
        let stats = client.stats().unwrap();
        assert_eq!(stats.bus.dropped.fault, 20);
        let listed: Vec<FaultRuleInfo> =
            client.request(FAULT_SERVICE, &FaultRequest::List).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id, listed[0].dropped, listed[0].matched),
            (rule.id, 20, 20)
        );

        let removed: u64 = client
            .request(FAULT_SERVICE, &FaultRequest::Clear { id: Some(rule.id) })
            .unwrap();
        assert_eq!(removed, 1);
        client.publish("f.a.cut", &1u8).unwrap();
        assert_eq!(
            until_marker(&mut client, &mut sub, "f.marker"),
            vec!["f.a.cut".to_string()]
        );
    });
}

#[test]
fn a_delay_rule_holds_messages_at_least_that_long() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |c| c.allow_faults = true);
        let mut client = Client::connect(&broker.url).unwrap();
        let mut sub = client.subscribe(&["d."]).unwrap();
        let delay = Duration::from_millis(80);
        add(
            &mut client,
            FaultRule {
                pattern: "d.slow".into(),
                delay_min: delay,
                delay_max: delay,
                ..FaultRule::default()
            },
        );
        for i in 0..5u32 {
            let sent = Instant::now();
            client.publish("d.slow", &i).unwrap();
            let message = sub
                .recv_timeout(WAIT)
                .unwrap()
                .expect("delivered in the end");
            assert_eq!(message.decode::<u32>().unwrap(), i);
            assert!(sent.elapsed() >= delay, "came after {:?}", sent.elapsed());
        }
        // Another topic is not held: it overtakes a held one.
        client.publish("d.slow", &99u32).unwrap();
        client.publish("d.fast", &7u32).unwrap();
        let first = sub.recv_timeout(WAIT).unwrap().unwrap();
        assert_eq!(first.topic(), "d.fast");
        let stats = client.stats().unwrap();
        assert_eq!(stats.bus.fault_delayed, 6);
        assert_eq!(sub.recv_timeout(WAIT).unwrap().unwrap().topic(), "d.slow");
    });
}

#[test]
fn without_allow_faults_the_service_refuses_and_says_how_to_allow_it() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let mut client = Client::connect(&broker.url).unwrap();
        let err = client
            .request::<_, Vec<FaultRuleInfo>>(FAULT_SERVICE, &FaultRequest::List)
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Rejected);
        assert!(err.to_string().contains("--allow-faults"), "{err}");
        // A malformed request to an allowing broker is answered, and the broker goes on.
        let broker = start_with(Transport::Ipc, |c| c.allow_faults = true);
        let mut client = Client::connect(&broker.url).unwrap();
        let err = client
            .request_bytes(FAULT_SERVICE, b"\xc1 not msgpack")
            .unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest);
        let listed: Vec<FaultRuleInfo> =
            client.request(FAULT_SERVICE, &FaultRequest::List).unwrap();
        assert!(listed.is_empty());
    });
}
