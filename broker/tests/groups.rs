//! Process groups through the broker: ranks by arrival, views on join, leave and death.

mod common;

use std::time::Duration;

use common::{deadline, start, Transport};
use zhub_client::{Client, Group, GroupOptions};
use zhub_protocol::group::{GroupReply, GroupRequest, GROUP_SERVICE};

const LIMIT: Duration = Duration::from_secs(60);

fn fast() -> GroupOptions {
    GroupOptions::new()
        .heartbeat(Duration::from_millis(50))
        .dead_after(Duration::from_millis(300))
        .join_timeout(Duration::from_secs(20))
}

#[test]
fn members_get_the_same_view_and_distinct_ranks_once_the_group_is_full() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let joiners: Vec<_> = (0..4)
            .map(|_| {
                let url = broker.url.clone();
                std::thread::spawn(move || {
                    let client = Client::connect(&url).unwrap();
                    Group::join(&client, "dice", 4).unwrap()
                })
            })
            .collect();
        let groups: Vec<Group> = joiners.into_iter().map(|j| j.join().unwrap()).collect();
        let view = groups[0].view();
        assert_eq!(view.size(), 4);
        let mut ranks: Vec<usize> = groups
            .iter()
            .map(|g| {
                assert_eq!(g.view(), view, "every member sees the same view");
                let rank = g.rank().unwrap();
                assert_eq!(view.members[rank], g.member_id());
                rank
            })
            .collect();
        ranks.sort_unstable();
        assert_eq!(ranks, vec![0, 1, 2, 3]);
    });
}

#[test]
fn a_dead_member_is_removed_and_survivors_are_renumbered_in_arrival_order() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let client = Client::connect(&broker.url).unwrap();
        let first = Group::join_with(&client, "ring", None, fast()).unwrap();
        // A member that joins and then falls silent, as a killed process does.
        let mut silent = Client::connect(&broker.url).unwrap();
        let join = GroupRequest::Join {
            group: "ring".into(),
            member: 42,
            expected: None,
            dead_after_ms: 300,
        };
        let body = zhub_protocol::body::encode(&join).unwrap();
        let reply: GroupReply =
            zhub_protocol::body::decode(&silent.request_bytes(GROUP_SERVICE, &body).unwrap())
                .unwrap();
        assert!(matches!(reply, GroupReply::View { .. }));
        let third = Group::join_with(&client, "ring", None, fast()).unwrap();
        let view = third.view();
        assert_eq!(view.members[1], 42);
        assert_eq!(third.rank(), Some(2));

        // The silent member is declared dead: a newer view without it, ranks recomputed.
        let mut after = first.view().version;
        let view = loop {
            let v = first
                .wait_view(after, Duration::from_secs(10))
                .expect("a view change");
            if !v.members.contains(&42) {
                break v;
            }
            after = v.version;
        };
        assert_eq!(view.members, vec![first.member_id(), third.member_id()]);
        assert_eq!(first.rank(), Some(0));
        let seen_by_third = third
            .wait_view(view.version - 1, Duration::from_secs(10))
            .unwrap();
        assert!(seen_by_third.version >= view.version);
        assert_eq!(third.rank(), Some(1));

        // Leaving (dropping) is a view change too.
        let before = first.view().version;
        drop(third);
        let view = first.wait_view(before, Duration::from_secs(10)).unwrap();
        assert_eq!(view.members, vec![first.member_id()]);
    });
}

#[test]
fn a_join_waiting_for_members_that_never_come_times_out() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let client = Client::connect(&broker.url).unwrap();
        let options = GroupOptions::new().join_timeout(Duration::from_millis(200));
        let err = Group::join_with(&client, "lonely", Some(3), options)
            .err()
            .unwrap();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::TimedOut, "{err}");
        // A group needs a name: the broker refuses the request itself.
        let err = Group::join(&client, "", 1).err().unwrap();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::BadRequest, "{err}");
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Kind {
    All,
    Direct,
    Broadcast,
}

/// Three members send numbered messages to all (self included), to one rank, and to all
/// but themselves, at full speed; every member gets every message meant for it exactly once,
/// each sender's in order, and Lamport stamps respect happened-before.
#[test]
fn messages_arrive_once_in_sender_order_with_lamport_stamps() {
    deadline(LIMIT, || {
        const N: usize = 3;
        const EACH: u32 = 200;
        let broker = start(Transport::Ipc);
        let members: Vec<_> = (0..N)
            .map(|_| {
                let url = broker.url.clone();
                std::thread::spawn(move || {
                    let client = Client::connect(&url).unwrap();
                    let mut group = Group::join(&client, "chat", N).unwrap();
                    let rank = group.rank().unwrap();
                    let me = group.member_id();
                    let mut last_stamp = 0;
                    for seq in 0..EACH {
                        for (kind, stamp) in [
                            (Kind::All, group.publish(&(Kind::All, seq)).unwrap()),
                            (
                                Kind::Direct,
                                group.send_to((rank + 1) % N, &(Kind::Direct, seq)).unwrap(),
                            ),
                            (
                                Kind::Broadcast,
                                group.broadcast(&(Kind::Broadcast, seq)).unwrap(),
                            ),
                        ] {
                            assert!(stamp > last_stamp, "{kind:?}: the clock ticks on each send");
                            last_stamp = stamp;
                        }
                    }
                    // Expected: N x All, 1 x Direct (from rank - 1), (N - 1) x Broadcast.
                    let expected = EACH as usize * (N + 1 + (N - 1));
                    let mut next: std::collections::HashMap<(u64, Kind), u32> = Default::default();
                    for _ in 0..expected {
                        let before = group.clock();
                        let m = group
                            .recv_timeout(Duration::from_secs(20))
                            .expect("a message");
                        assert!(group.clock() > m.lamport.max(before), "receive rule");
                        let (kind, seq): (Kind, u32) = m.decode().unwrap();
                        if kind == Kind::Broadcast {
                            assert_ne!(m.from, me, "a broadcast does not come back");
                        }
                        if kind == Kind::Direct {
                            assert_eq!(m.from_rank, Some((rank + N - 1) % N));
                        }
                        let slot = next.entry((m.from, kind)).or_default();
                        assert_eq!(seq, *slot, "in order, no loss, no duplicate");
                        *slot += 1;
                    }
                    assert!(group.recv_timeout(Duration::from_millis(100)).is_none());
                    assert_eq!(group.malformed(), 0);
                    // Stay in the group until everyone has received everything.
                    group.barrier(Duration::from_secs(20)).unwrap();
                })
            })
            .collect();
        for m in members {
            m.join().unwrap();
        }
    });
}

/// Four members pass 100 barriers with random work between them; no member leaves a barrier
/// before every member has reached it.
#[test]
fn barriers_are_reusable_and_hold_everyone() {
    deadline(LIMIT, || {
        const N: usize = 4;
        const ROUNDS: usize = 100;
        let broker = start(Transport::Ipc);
        let arrived: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
            std::sync::Arc::new((0..=ROUNDS).map(|_| Default::default()).collect());
        let members: Vec<_> = (0..N)
            .map(|i| {
                let (url, arrived) = (broker.url.clone(), std::sync::Arc::clone(&arrived));
                std::thread::spawn(move || {
                    let client = Client::connect(&url).unwrap();
                    let mut group = Group::join(&client, "rounds", N).unwrap();
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
                    for round in 1..=ROUNDS {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Uneven work, so members reach each barrier at different times.
                        std::thread::sleep(Duration::from_micros(rng % 2000));
                        arrived[round].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        group.barrier(Duration::from_secs(20)).unwrap();
                        assert_eq!(
                            arrived[round].load(std::sync::atomic::Ordering::SeqCst),
                            N,
                            "left barrier {round} before everyone reached it"
                        );
                    }
                    group.barrier(Duration::from_secs(20)).unwrap();
                })
            })
            .collect();
        for m in members {
            m.join().unwrap();
        }
    });
}

#[test]
fn a_barrier_fails_clearly_when_a_member_leaves_instead_of_arriving() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let url = broker.url.clone();
        let quitter = std::thread::spawn(move || {
            let client = Client::connect(&url).unwrap();
            let group = Group::join_with(&client, "pair", Some(2), fast()).unwrap();
            // Leave without ever reaching the barrier.
            group.leave();
        });
        let client = Client::connect(&broker.url).unwrap();
        let mut group = Group::join_with(&client, "pair", Some(2), fast()).unwrap();
        quitter.join().unwrap();
        let err = group.barrier(Duration::from_secs(20)).unwrap_err();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::MemberGone, "{err}");
    });
}

/// `broadcast_sync` returns once every other member has the message; `send_to_sync` waits
/// for the receiver's `recv_from_sync`; a sync send to a member that leaves fails clearly.
#[test]
fn synchronous_sends_wait_for_their_receivers() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let url = broker.url.clone();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let client = Client::connect(&url).unwrap();
            let mut group = Group::join_with(&client, "sync", Some(2), fast()).unwrap();
            let other = 1 - group.rank().unwrap();
            // The broadcast is in the mailbox by the time its sender returns.
            let m = group.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(m.decode::<String>().unwrap(), "to all");
            // Take the rendezvous only when the test says so.
            go_rx.recv().unwrap();
            // First the one whose sender gave up waiting, then the one still waiting.
            let m = group
                .recv_from_sync(other, Duration::from_secs(10))
                .unwrap();
            assert_eq!(m.decode::<u32>().unwrap(), 0);
            let m = group
                .recv_from_sync(other, Duration::from_secs(10))
                .unwrap();
            assert_eq!(m.decode::<u32>().unwrap(), 7);
            assert!(group.clock() > m.lamport);
            group.barrier(Duration::from_secs(10)).unwrap();
        });
        let client = Client::connect(&broker.url).unwrap();
        let mut group = Group::join_with(&client, "sync", Some(2), fast()).unwrap();
        let other = 1 - group.rank().unwrap();
        group
            .broadcast_sync(&"to all", Duration::from_secs(10))
            .unwrap();
        assert!(group.try_recv().is_none(), "a broadcast does not come back");
        // Nobody takes it yet: a rendezvous waits for the taker, so this one times out.
        let err = group
            .send_to_sync(other, &0u32, Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::TimedOut, "{err}");
        let started = std::time::Instant::now();
        let sender = std::thread::scope(|s| {
            let h = s.spawn(|| group.send_to_sync(other, &7u32, Duration::from_secs(10)));
            go_tx.send(()).unwrap();
            h.join().unwrap()
        });
        sender.unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        group.barrier(Duration::from_secs(10)).unwrap();
        peer.join().unwrap();

        // The peer is gone now: a rendezvous with it fails, and so does a timeout.
        let view = group.wait_view(0, Duration::from_secs(10)).unwrap();
        let mut view = view;
        while view.size() > 1 {
            view = group
                .wait_view(view.version, Duration::from_secs(10))
                .unwrap();
        }
        let err = group
            .send_to_sync(1, &1u8, Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::NoSuchRank, "{err}");
        let err = group
            .recv_from_sync(0, Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::TimedOut, "{err}");
    });
}

/// Four members increment a counter kept in a file, each read-modify-write inside the
/// critical section: no update is lost.
#[test]
fn the_critical_section_excludes_and_no_update_is_lost() {
    deadline(LIMIT, || {
        const N: usize = 4;
        const EACH: u32 = 25;
        let broker = start(Transport::Ipc);
        let file = broker.dir.path().join("counter");
        std::fs::write(&file, "0").unwrap();
        let members: Vec<_> = (0..N)
            .map(|_| {
                let (url, file) = (broker.url.clone(), file.clone());
                std::thread::spawn(move || {
                    let client = Client::connect(&url).unwrap();
                    let mut group = Group::join(&client, "counter", N).unwrap();
                    for _ in 0..EACH {
                        let guard = group.lock(Duration::from_secs(20)).unwrap();
                        let n: u32 = std::fs::read_to_string(&file).unwrap().parse().unwrap();
                        // Widen the window a lost update would need.
                        std::thread::yield_now();
                        std::fs::write(&file, (n + 1).to_string()).unwrap();
                        drop(guard);
                    }
                    group.barrier(Duration::from_secs(20)).unwrap();
                })
            })
            .collect();
        for m in members {
            m.join().unwrap();
        }
        let n: u32 = std::fs::read_to_string(&file).unwrap().parse().unwrap();
        assert_eq!(n, N as u32 * EACH);
    });
}

/// The holder of the token dies (falls silent): the next member waiting gets a token made
/// anew, once.
#[test]
fn a_dead_holders_token_is_made_anew_once() {
    deadline(LIMIT, || {
        let broker = start(Transport::Ipc);
        let client = Client::connect(&broker.url).unwrap();
        let mut waiter = Group::join_with(&client, "crit", None, fast()).unwrap();
        // A member that takes the token and then falls silent, as a killed process does.
        let mut raw = Client::connect(&broker.url).unwrap();
        let call = |raw: &mut Client, request: &GroupRequest| -> GroupReply {
            let body = zhub_protocol::body::encode(request).unwrap();
            zhub_protocol::body::decode(&raw.request_bytes(GROUP_SERVICE, &body).unwrap()).unwrap()
        };
        call(
            &mut raw,
            &GroupRequest::Join {
                group: "crit".into(),
                member: 7,
                expected: None,
                dead_after_ms: 300,
            },
        );
        let got = call(
            &mut raw,
            &GroupRequest::Lock {
                group: "crit".into(),
                member: 7,
            },
        );
        assert_eq!(got, GroupReply::Locked { generation: 0 });
        let guard = waiter.lock(Duration::from_secs(20)).unwrap();
        assert_eq!(
            guard.generation(),
            1,
            "one new token after the holder's death"
        );
        // The member's own view follows with its next heartbeat.
        let me = guard.member_id();
        let mut view = guard.view();
        while view.members != vec![me] {
            view = guard
                .wait_view(view.version, Duration::from_secs(10))
                .unwrap();
        }
    });
}

/// A main endpoint of the test's own in front of a real broker's bus: it answers
/// `zhub.info` with the real broker's endpoints (counting those requests in `infos`) and
/// `zhub.group` with `answer`, so a member can be given replies no broker sends. Runs until
/// `stop` is set.
fn fake_main_endpoint(
    infos: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    info: zhub_client::BrokerInfo,
    answer: impl Fn(GroupRequest) -> GroupReply + Send + 'static,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (String, std::thread::JoinHandle<()>) {
    use zhub_protocol::request::split_envelope;
    use zhub_protocol::{Reply, Request};

    let context = zmq::Context::new();
    let socket = context.socket(zmq::ROUTER).unwrap();
    socket.set_linger(0).unwrap();
    socket.bind("tcp://127.0.0.1:*").unwrap();
    let url = socket.get_last_endpoint().unwrap().unwrap();
    let thread = std::thread::spawn(move || {
        let _context = context;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // A bounded wait so that the loop sees `stop`; nothing waits on this timing.
            if socket.poll(zmq::POLLIN, 50).unwrap() == 0 {
                continue;
            }
            let frames = socket.recv_multipart(0).unwrap();
            let (identity, rest) = split_envelope(&frames).unwrap();
            let request = Request::decode(rest).unwrap();
            let body = if request.service == "zhub.info" {
                infos.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                zhub_protocol::body::encode(&info).unwrap()
            } else {
                let asked = zhub_protocol::body::decode(&request.body[0]).unwrap();
                zhub_protocol::body::encode(&answer(asked)).unwrap()
            };
            let mut reply = vec![identity.to_vec(), Vec::new()];
            reply.extend(Reply::ok(request.id, vec![body]).encode());
            socket.send_multipart(reply, 0).unwrap();
        }
    });
    (url, thread)
}

/// What the fake main endpoint answers a group request: a view of the one member that
/// asks, and "unlocked" to everything else (so the token is never given).
fn only_member(request: GroupRequest) -> GroupReply {
    match request {
        GroupRequest::Join { group, member, .. } | GroupRequest::Heartbeat { group, member } => {
            GroupReply::View {
                view: zhub_protocol::group::View {
                    group,
                    version: 1,
                    members: vec![member],
                },
            }
        }
        _ => GroupReply::Unlocked,
    }
}

/// A reply of the wrong kind to a lock is a protocol error, not a transport error.
#[test]
fn an_unexpected_reply_to_a_lock_is_a_protocol_error() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let info = Client::connect(&broker.url).unwrap().info().clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let infos = std::sync::Arc::default();
        let (url, fake) = fake_main_endpoint(infos, info, only_member, stop.clone());
        let client = Client::connect(&url).unwrap();
        let mut group = Group::join_with(&client, "fake", Some(1), fast()).unwrap();
        let err = group.lock(Duration::from_secs(5)).err().unwrap();
        assert_eq!(err.kind(), zhub_client::GroupErrorKind::Protocol, "{err}");
        drop(group);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        fake.join().unwrap();
    });
}

/// A member's connections start from the caller's client: what it learned from `zhub.info`
/// is not asked for again, three times over.
#[test]
fn joining_asks_the_broker_nothing_the_callers_client_knows() {
    deadline(LIMIT, || {
        let broker = start(Transport::Tcp);
        let info = Client::connect(&broker.url).unwrap().info().clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let infos = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (url, fake) = fake_main_endpoint(infos.clone(), info, only_member, stop.clone());
        let client = Client::connect(&url).unwrap();
        let group = Group::join_with(&client, "fake", Some(1), fast()).unwrap();
        assert_eq!(group.rank(), Some(0));
        assert_eq!(
            infos.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "the connect's only"
        );
        drop(group);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        fake.join().unwrap();
    });
}
