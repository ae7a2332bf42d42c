//! Process groups (`zhub.group`): members numbered by arrival, views with versions,
//! heartbeats and expiry. A pure state machine over an injected clock, driven by the router.
//!
//! A member joins with a random id and the silence after which it counts as dead. A group
//! keeps its members in the order in which the broker saw their joins (one thread sees them
//! all), so that order, and every rank derived from it, is the same for everyone. A join that waits
//! for the group to reach its expected size is answered when it does (or dropped at its
//! deadline); while it waits, the member counts as alive. Any request from a member counts as
//! a heartbeat. A member silent for longer than its limit is removed, and so is one that
//! leaves; every removal or arrival bumps the view's version.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::info;
use zhub_protocol::group::{GroupReply, GroupRequest, View};

/// Longest name of a group, in bytes.
const MAX_NAME: usize = 200;
/// Bounds on a member's silence limit.
const MIN_DEAD_AFTER: Duration = Duration::from_millis(50);
const MAX_DEAD_AFTER: Duration = Duration::from_secs(3600);

struct Member {
    id: u64,
    dead_after: Duration,
    last_seen: Instant,
}

/// A join waiting for its group to fill.
struct WaitingJoin<T> {
    member: u64,
    expected: usize,
    deadline: Instant,
    token: T,
}

struct Group<T> {
    /// In arrival order.
    members: Vec<Member>,
    version: u64,
    waiting: Vec<WaitingJoin<T>>,
}

impl<T> Group<T> {
    fn view(&self, name: &str) -> View {
        View {
            group: name.to_owned(),
            version: self.version,
            members: self.members.iter().map(|m| m.id).collect(),
        }
    }

    fn touch(&mut self, member: u64, now: Instant) -> bool {
        match self.members.iter_mut().find(|m| m.id == member) {
            Some(m) => {
                m.last_seen = now;
                true
            }
            None => false,
        }
    }
}

/// What the router sends: a reply for the request behind `token`.
pub(crate) type Answer<T> = (T, Result<GroupReply, String>);

/// Every group of the broker. `T` identifies a request to answer later (the router's client
/// identity and request id).
pub(crate) struct Groups<T> {
    groups: HashMap<String, Group<T>>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            groups: HashMap::new(),
        }
    }
}

impl<T> Groups<T> {
    /// Serves a request; `None` when the answer comes later (a join waiting for members).
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        token: T,
        timeout: Duration,
        request: GroupRequest,
    ) -> Option<Answer<T>> {
        let reply = match request {
            GroupRequest::Join {
                group,
                member,
                expected,
                dead_after_ms,
            } => {
                if group.is_empty() || group.len() > MAX_NAME {
                    return Some((token, Err(format!("group name: 1 to {MAX_NAME} bytes"))));
                }
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group {
                    members: Vec::new(),
                    version: 0,
                    waiting: Vec::new(),
                });
                if !g.touch(member, now) {
                    g.members.push(Member {
                        id: member,
                        dead_after: Duration::from_millis(dead_after_ms)
                            .clamp(MIN_DEAD_AFTER, MAX_DEAD_AFTER),
                        last_seen: now,
                    });
                    g.version += 1;
                    info!(%group, member = %format_args!("{member:016x}"), size = g.members.len(), version = g.version, "member joined");
                }
                let expected = expected.map_or(0, |e| e as usize);
                if g.members.len() < expected {
                    g.waiting.push(WaitingJoin {
                        member,
                        expected,
                        deadline: now + timeout,
                        token,
                    });
                    return None;
                }
                GroupReply::View {
                    view: g.view(&group),
                }
            }
            GroupRequest::Heartbeat { group, member } => match self.groups.get_mut(&group) {
                Some(g) => {
                    let view = g.view(&group);
                    if g.touch(member, now) {
                        GroupReply::View { view }
                    } else {
                        GroupReply::NotMember { view }
                    }
                }
                None => GroupReply::NotMember {
                    view: View {
                        group,
                        ..View::default()
                    },
                },
            },
            GroupRequest::Leave { group, member } => match self.groups.get_mut(&group) {
                Some(g) => {
                    let before = g.members.len();
                    g.members.retain(|m| m.id != member);
                    g.waiting.retain(|w| w.member != member);
                    if g.members.len() != before {
                        g.version += 1;
                        info!(%group, member = %format_args!("{member:016x}"), version = g.version, "member left");
                    }
                    GroupReply::NotMember {
                        view: g.view(&group),
                    }
                }
                None => GroupReply::NotMember {
                    view: View {
                        group,
                        ..View::default()
                    },
                },
            },
            GroupRequest::View { group } => GroupReply::View {
                view: self
                    .groups
                    .get(&group)
                    .map(|g| g.view(&group))
                    .unwrap_or(View {
                        group,
                        ..View::default()
                    }),
            },
        };
        Some((token, Ok(reply)))
    }

    /// Removes silent members, answers joins whose group filled, drops joins whose deadline
    /// passed, forgets empty groups.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Answer<T>> {
        let mut out = Vec::new();
        for (name, g) in &mut self.groups {
            // A member waiting in a join is alive: its client is blocked in that request.
            let waiting: Vec<u64> = g.waiting.iter().map(|w| w.member).collect();
            let before = g.members.len();
            g.members.retain(|m| {
                let alive = waiting.contains(&m.id)
                    || now.saturating_duration_since(m.last_seen) <= m.dead_after;
                if !alive {
                    info!(group = %name, member = %format_args!("{:016x}", m.id), "member declared dead");
                }
                alive
            });
            if g.members.len() != before {
                g.version += 1;
            }
            let size = g.members.len();
            let mut still = Vec::new();
            for w in std::mem::take(&mut g.waiting) {
                if size >= w.expected {
                    out.push((w.token, Ok(GroupReply::View { view: g.view(name) })));
                } else if now >= w.deadline {
                    // The client has given up; it will not heartbeat.
                    g.members.retain(|m| m.id != w.member);
                    g.version += 1;
                } else {
                    still.push(w);
                }
            }
            g.waiting = still;
        }
        self.groups
            .retain(|_, g| !g.members.is_empty() || !g.waiting.is_empty());
        out
    }

    /// When [`Groups::tick`] next has something to do.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                g.members
                    .iter()
                    .map(|m| m.last_seen + m.dead_after + Duration::from_millis(1))
                    .chain(g.waiting.iter().map(|w| w.deadline))
            })
            .min()
    }

    /// Whether `member` of `group` is present (for tests).
    #[cfg(test)]
    fn has(&self, group: &str, member: u64) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.members.iter().any(|m| m.id == member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(member: u64, expected: Option<u32>) -> GroupRequest {
        GroupRequest::Join {
            group: "dice".into(),
            member,
            expected,
            dead_after_ms: 2000,
        }
    }

    fn view_of(answer: Option<Answer<u32>>) -> View {
        match answer {
            Some((_, Ok(GroupReply::View { view }))) => view,
            other => panic!("{:?}", other.map(|a| a.1)),
        }
    }

    #[test]
    fn joins_wait_for_the_expected_size_and_ranks_follow_arrival() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(g.handle(t0, 1, minute, join(30, Some(3))).is_none());
        assert!(g.handle(t0, 2, minute, join(10, Some(3))).is_none());
        assert!(g.tick(t0).is_empty());
        let third = view_of(g.handle(t0, 3, minute, join(20, Some(3))));
        assert_eq!(third.members, vec![30, 10, 20]);
        let mut waiting = g.tick(t0);
        waiting.sort_by_key(|a| a.0);
        assert_eq!(waiting.len(), 2);
        for (_, reply) in waiting {
            match reply {
                Ok(GroupReply::View { view }) => assert_eq!(view, third),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(third.rank_of(10), Some(1));
        // Joining again is a heartbeat, not a new arrival.
        let again = view_of(g.handle(t0, 4, minute, join(10, Some(3))));
        assert_eq!(again, third);
    }

    #[test]
    fn silent_members_are_removed_and_survivors_keep_their_order() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        for m in [1, 2, 3, 4] {
            view_of(g.handle(t0, 0, minute, join(m, None)));
        }
        let t1 = t0 + Duration::from_millis(1500);
        for m in [1, 3, 4] {
            view_of(g.handle(
                t1,
                0,
                minute,
                GroupRequest::Heartbeat {
                    group: "dice".into(),
                    member: m,
                },
            ));
        }
        let t2 = t0 + Duration::from_millis(2100);
        assert!(g.next_wakeup().is_some_and(|w| w <= t2));
        g.tick(t2);
        assert!(!g.has("dice", 2));
        let view = view_of(g.handle(
            t2,
            0,
            minute,
            GroupRequest::View {
                group: "dice".into(),
            },
        ));
        assert_eq!(view.members, vec![1, 3, 4]);
        assert_eq!(view.version, 5, "4 joins and one death");
        // The dead member is told so, and may join again as a new arrival.
        match g.handle(
            t2,
            0,
            minute,
            GroupRequest::Heartbeat {
                group: "dice".into(),
                member: 2,
            },
        ) {
            Some((_, Ok(GroupReply::NotMember { .. }))) => {}
            other => panic!("{:?}", other.map(|a| a.1)),
        }
        let view = view_of(g.handle(t2, 0, minute, join(2, None)));
        assert_eq!(view.members, vec![1, 3, 4, 2]);
    }

    #[test]
    fn leaving_and_abandoned_joins_change_the_view() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let short = Duration::from_millis(100);
        view_of(g.handle(t0, 0, short, join(1, None)));
        assert!(g.handle(t0, 7, short, join(2, Some(5))).is_none());
        // The waiting join outlives its member's silence limit, then its deadline passes.
        assert!(g.tick(t0 + Duration::from_millis(50)).is_empty());
        assert!(g.has("dice", 2));
        assert!(g.tick(t0 + short).is_empty());
        assert!(!g.has("dice", 2));
        let left = g.handle(
            t0,
            0,
            short,
            GroupRequest::Leave {
                group: "dice".into(),
                member: 1,
            },
        );
        assert!(matches!(left, Some((_, Ok(GroupReply::NotMember { .. })))));
        g.tick(t0 + short);
        assert!(g.next_wakeup().is_none(), "an empty group is forgotten");
    }
}
