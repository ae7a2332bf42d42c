//! Zones: brokers of different zones joined by gateways, requests routed along zone paths,
//! and routes that follow gateways as they die and services as they go.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{cluster_of, wait_for_service, worker, zoned};
use common::deadline;
use zhub_client::{Client, RequestErrorKind, RequestOptions};
use zhub_protocol::builtin::ServiceInfo;

const LIMIT: Duration = Duration::from_secs(90);

/// The brokers `service` is offered through, with the path of each, as `entry` lists them.
fn routes(entry: Option<&ServiceInfo>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = entry
        .map(|s| {
            s.peers
                .iter()
                .map(|p| (p.broker.clone(), p.path.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn path(zones: &[&str]) -> Vec<String> {
    zones.iter().map(|z| (*z).to_owned()).collect()
}

/// Three zones in a chain, A <-> B <-> C, with two gateways in B (seed 003's M1-P3, one
/// zone further): a client in A is served by a worker in C through either gateway; when one
/// gateway dies, requests take the other; when C's broker goes, its routes are withdrawn
/// everywhere instead of bouncing between the zones.
#[test]
fn three_zones_in_a_chain_route_through_either_gateway() {
    deadline(LIMIT, || {
        let a1 = zoned("a1", "A", &[]);
        let mut c1 = zoned("c1", "C", &[]);
        let mut b1 = zoned("b1", "B", &[&cluster_of(&a1), &cluster_of(&c1)]);
        let b2 = zoned(
            "b2",
            "B",
            &[&cluster_of(&a1), &cluster_of(&c1), &cluster_of(&b1)],
        );
        let _far = worker(&c1.url, "far", "c1");
        let _mid = worker(&b2.url, "mid", "b2");
        let mut ca = Client::connect(&a1.url).unwrap();
        let mut cb1 = Client::connect(&b1.url).unwrap();

        // A hears of C's service from both gateways, behind zones B then C, and of b2's
        // service from both too (b1 passes it on from its zone mate), behind zone B.
        let both = |zones: &[&str]| {
            vec![
                ("b1".to_owned(), path(zones)),
                ("b2".to_owned(), path(zones)),
            ]
        };
        wait_for_service(&mut ca, "far", |e| routes(e) == both(&["B", "C"]));
        wait_for_service(&mut ca, "mid", |e| routes(e) == both(&["B"]));
        // Inside B, b1 hears of C's service from c1 and from its zone mate b2.
        let far_at_b1 = wait_for_service(&mut cb1, "far", |e| routes(e).len() == 2);
        assert_eq!(
            routes(far_at_b1.as_ref()),
            [
                ("b2".to_owned(), path(&["C"])),
                ("c1".to_owned(), path(&["C"]))
            ]
        );
        for i in 0..20 {
            let body = format!("{i}");
            let reply = ca.request_bytes("far", body.as_bytes()).unwrap();
            assert_eq!(reply, format!("c1:{i}").as_bytes());
            assert_eq!(ca.request_bytes("mid", b"m").unwrap(), b"b2:m");
        }

        // A gateway dies: requests go through the other one, none lost.
        let killed = Instant::now();
        b1.shutdown();
        for i in 0..20 {
            let body = format!("after {i}");
            let reply = ca.request_bytes("far", body.as_bytes()).unwrap();
            assert_eq!(reply, format!("c1:after {i}").as_bytes());
        }
        wait_for_service(&mut ca, "far", |e| {
            routes(e) == [("b2".to_owned(), path(&["B", "C"]))]
        });
        println!(
            "gateway b1 killed; 20 requests served through b2 and the route withdrawn in {:?}",
            killed.elapsed()
        );

        // C's broker goes: its service is withdrawn in B and in A, and a request for it is
        // answered in time instead of travelling between the zones.
        c1.shutdown();
        wait_for_service(&mut ca, "far", |e| routes(e).is_empty());
        let quick = RequestOptions::new().timeout(Duration::from_millis(300));
        let err = ca.request_bytes_with("far", b"", &quick).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::NoService, "{err}");
        assert_eq!(ca.request_bytes("mid", b"still").unwrap(), b"b2:still");
    });
}

/// A request that came from a zone mate never goes to another zone mate, whatever the
/// zones: in a zone of three with the only worker on the third, a request forwarded by the
/// first broker to the second would wait there; the first sends it to the third directly.
#[test]
fn inside_a_zone_a_request_crosses_one_link() {
    deadline(LIMIT, || {
        let z1 = zoned("z1", "Z", &[]);
        let z2 = zoned("z2", "Z", &[&cluster_of(&z1)]);
        let z3 = zoned("z3", "Z", &[&cluster_of(&z1), &cluster_of(&z2)]);
        let _w = worker(&z3.url, "s", "z3");
        let mut c1 = Client::connect(&z1.url).unwrap();
        let mut c2 = Client::connect(&z2.url).unwrap();
        // z2 offers z1 nothing of z3's: a zone mate's route is never passed on in the zone.
        let at_z1 = wait_for_service(&mut c1, "s", |e| !routes(e).is_empty());
        assert_eq!(routes(at_z1.as_ref()), [("z3".to_owned(), Vec::new())]);
        wait_for_service(&mut c2, "s", |e| !routes(e).is_empty());
        for _ in 0..10 {
            assert_eq!(c1.request_bytes("s", b"x").unwrap(), b"z3:x");
            assert_eq!(c2.request_bytes("s", b"y").unwrap(), b"z3:y");
        }
        // Still z3 alone, once z2 has had every chance to offer more.
        let at_z1 = wait_for_service(&mut c1, "s", |_| true);
        assert_eq!(routes(at_z1.as_ref()), [("z3".to_owned(), Vec::new())]);
    });
}

/// The built-in services of a broker behind a gateway (seed 003's nodes in another zone):
/// its store and its `zhub.info` are reached by naming it, through the zones between, and
/// they are routes, not services, in `zhub.services`.
#[test]
fn built_in_services_of_a_broker_behind_a_gateway_are_reached_by_name() {
    deadline(LIMIT, || {
        let a1 = zoned("a1", "A", &[]);
        let c1 = zoned("c1", "C", &[]);
        let _b1 = zoned("b1", "B", &[&cluster_of(&a1), &cluster_of(&c1)]);
        let client = Client::connect(&a1.url).unwrap();
        let mut at_c1 = client.at("c1").unwrap();
        // Until the offers have crossed both links, a1 knows no way to c1.
        loop {
            match at_c1.kv().put("where", "kept on c1") {
                Ok(_) => break,
                Err(e) => assert!(e.to_string().contains("c1"), "{e}"),
            }
        }
        let value: Option<String> = Client::connect(&c1.url).unwrap().kv().get("where").unwrap();
        assert_eq!(value.as_deref(), Some("kept on c1"));
        let here: Option<String> = Client::connect(&a1.url).unwrap().kv().get("where").unwrap();
        assert!(here.is_none(), "a1's own store never saw it");
        let info: zhub_protocol::builtin::BrokerInfo = at_c1.request("zhub.info", &()).unwrap();
        assert_eq!((info.name.as_str(), info.zone.as_str()), ("c1", "C"));
        let read: Option<String> = at_c1.kv().get("where").unwrap();
        assert_eq!(read.as_deref(), Some("kept on c1"));
        let services: Vec<ServiceInfo> = Client::connect(&a1.url)
            .unwrap()
            .request(zhub_protocol::builtin::SERVICES_SERVICE, &())
            .unwrap();
        assert!(
            services.iter().all(|s| !s.name.contains('@')),
            "{services:?}"
        );
    });
}
