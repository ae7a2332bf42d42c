//! Process groups through the broker: ranks by arrival, views on join, leave and death.

mod common;

use std::time::Duration;

use common::{deadline, start, Transport};
use zhub_client::{Client, Group, GroupOptions};
use zhub_protocol::group::{GroupReply, GroupRequest, GROUP_SERVICE};

const LIMIT: Duration = Duration::from_secs(60);

fn fast() -> GroupOptions {
    GroupOptions {
        heartbeat: Duration::from_millis(50),
        dead_after: Duration::from_millis(300),
        join_timeout: Duration::from_secs(20),
    }
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
        let options = GroupOptions {
            join_timeout: Duration::from_millis(200),
            ..GroupOptions::default()
        };
        let err = Group::join_with(&client, "lonely", Some(3), options)
            .err()
            .unwrap();
        assert_eq!(err.kind(), zhub_client::RequestErrorKind::TimedOut, "{err}");
        let err = Group::join(&client, "", 1).err().unwrap();
        assert_eq!(err.kind(), zhub_client::RequestErrorKind::Rejected, "{err}");
    });
}
