//! Process groups (`zhub.group`): members numbered by arrival, views with versions,
//! heartbeats and expiry. A pure state machine over an injected clock, driven by the router.
//!
//! A member joins with a random id and the silence after which it counts as dead. A group
//! keeps its members in the order in which the broker saw their joins (one thread sees them
//! all), so that order, and every rank derived from it, is the same for everyone. A join that waits
//! for the group to reach its expected size is answered when it does, or answered "timed out"
//! at its deadline (the member then leaves); while it waits, the member counts as alive, so
//! its silence limit wakes nobody. Any request from a member counts as a heartbeat. A member silent for longer than its limit is removed, and so is one that
//! leaves; every removal or arrival bumps the view's version.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use tracing::info;
use zhub_protocol::group::{GroupReply, GroupRequest, GroupSummary, View, MAX_LIST_GROUPS};
use zhub_protocol::Status;

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

/// A member waiting for the token.
struct WaitingLock<T> {
    member: u64,
    deadline: Instant,
    token: T,
}

/// Where the ring's token is.
#[derive(Default)]
struct Ring {
    /// The member holding the token.
    holder: Option<u64>,
    /// The member the token goes to next, if it wants it, and on around the ring from
    /// there; `None` before the first lock: the token starts at the last rank.
    cursor: Option<u64>,
    /// Tokens made anew after a holder died.
    generation: u64,
}

struct Group<T> {
    /// In arrival order.
    members: Vec<Member>,
    version: u64,
    waiting: Vec<WaitingJoin<T>>,
    locks: Vec<WaitingLock<T>>,
    ring: Ring,
}

impl<T> Group<T> {
    /// Gives the free token to the first member that wants it, going around the ring from
    /// the cursor; returns that member's answer.
    fn pass_token(&mut self) -> Option<Answer<T>> {
        if self.ring.holder.is_some() || self.locks.is_empty() || self.members.is_empty() {
            return None;
        }
        let n = self.members.len();
        let start = match self.ring.cursor {
            Some(m) => self.members.iter().position(|x| x.id == m).unwrap_or(0),
            None => n - 1,
        };
        for step in 0..n {
            let candidate = self.members[(start + step) % n].id;
            if let Some(i) = self.locks.iter().position(|w| w.member == candidate) {
                let w = self.locks.remove(i);
                self.ring.holder = Some(candidate);
                self.ring.cursor = Some(self.members[(start + step + 1) % n].id);
                let generation = self.ring.generation;
                return Some((w.token, Ok(GroupReply::Locked { generation })));
            }
        }
        None
    }

    /// Takes `member` out of the group: its waits go, and a token it held is made anew and
    /// goes on from its place in the ring.
    fn remove(&mut self, member: u64) {
        let Some(i) = self.members.iter().position(|m| m.id == member) else {
            return;
        };
        if self.ring.cursor == Some(member) || self.ring.holder == Some(member) {
            let next = self.members[(i + 1) % self.members.len()].id;
            self.ring.cursor = (next != member).then_some(next);
        }
        if self.ring.holder == Some(member) {
            self.ring.holder = None;
            self.ring.generation += 1;
            info!(member = %format_args!("{member:016x}"), generation = self.ring.generation, "token holder gone; token made anew");
        }
        self.members.remove(i);
        self.waiting.retain(|w| w.member != member);
        self.locks.retain(|w| w.member != member);
        self.version += 1;
    }

    /// Answers every join waiting for a size the group has now reached, with the view as it
    /// is: the arrival that fills the group answers them at once, so a member that leaves
    /// right after cannot leave them waiting for a size that is gone.
    fn answer_filled(&mut self, name: &str, now: Instant) -> Vec<Answer<T>> {
        let size = self.members.len();
        let (filled, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| size >= w.expected);
        self.waiting = still;
        let view = self.view(name);
        filled
            .into_iter()
            .map(|w| {
                // Its silence limit counts from now: until this answer, it was waiting.
                self.touch(w.member, now);
                (w.token, Ok(GroupReply::View { view: view.clone() }))
            })
            .collect()
    }

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

/// What the router sends: a reply for the request behind `token`, or the status and reason
/// of its refusal.
pub(crate) type Answer<T> = (T, Result<GroupReply, (Status, String)>);

/// Every group of the broker. `T` identifies a request to answer later (the router's client
/// identity and request id).
pub(crate) struct Groups<T> {
    /// By name, so that listing pages through them in order.
    groups: BTreeMap<String, Group<T>>,
    /// Answers owed to other members after an unlock.
    passed: Vec<Answer<T>>,
}

impl<T> Default for Groups<T> {
    fn default() -> Self {
        Groups {
            groups: BTreeMap::new(),
            passed: Vec::new(),
        }
    }
}

impl<T> Groups<T> {
    /// Serves a request whose names the caller has checked ([`Named`]); `None` when the
    /// answer comes later (a join waiting for members).
    ///
    /// [`Named`]: zhub_protocol::names::Named
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
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group {
                    members: Vec::new(),
                    version: 0,
                    waiting: Vec::new(),
                    locks: Vec::new(),
                    ring: Ring::default(),
                });
                if !g.touch(member, now) {
                    g.members.push(Member {
                        id: member,
                        dead_after: Duration::from_millis(dead_after_ms)
                            .clamp(MIN_DEAD_AFTER, MAX_DEAD_AFTER),
                        last_seen: now,
                    });
                    g.version += 1;
                    info!(?group, member = %format_args!("{member:016x}"), size = g.members.len(), version = g.version, "member joined");
                    self.passed.extend(g.answer_filled(&group, now));
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
                    if g.members.iter().any(|m| m.id == member) {
                        g.remove(member);
                        info!(?group, member = %format_args!("{member:016x}"), version = g.version, "member left");
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
            GroupRequest::Lock { group, member } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return Some((token, Err((Status::Rejected, format!("no group {group}")))));
                };
                if !g.touch(member, now) {
                    return Some((
                        token,
                        Err((Status::Rejected, format!("not a member of {group}"))),
                    ));
                }
                g.locks.push(WaitingLock {
                    member,
                    deadline: now + timeout,
                    token,
                });
                // Answered now if the token is free and comes to this member first, else later.
                return g.pass_token();
            }
            GroupRequest::Unlock { group, member } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return Some((token, Err((Status::Rejected, format!("no group {group}")))));
                };
                if g.ring.holder != Some(member) {
                    return Some((
                        token,
                        Err((
                            Status::Rejected,
                            "this member does not hold the token".into(),
                        )),
                    ));
                }
                g.touch(member, now);
                g.ring.holder = None;
                self.passed.extend(g.pass_token());
                GroupReply::Unlocked
            }
            GroupRequest::List {
                prefix,
                after,
                limit,
            } => self.list(&prefix, after.as_deref(), limit),
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

    /// Groups named `prefix...`, after `after`, at most `limit` (capped).
    fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> GroupReply {
        let limit = limit.clamp(1, MAX_LIST_GROUPS) as usize;
        let start = match after {
            Some(name) if name >= prefix => Bound::Excluded(name),
            _ => Bound::Included(prefix),
        };
        let mut matching = self
            .groups
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix));
        let groups = matching
            .by_ref()
            .take(limit)
            .map(|(name, g)| GroupSummary {
                view: g.view(name),
                token_holder: g.ring.holder,
                token_generation: g.ring.generation,
                waiting_locks: u32::try_from(g.locks.len()).unwrap_or(u32::MAX),
                waiting_joins: u32::try_from(g.waiting.len()).unwrap_or(u32::MAX),
            })
            .collect();
        GroupReply::Groups {
            groups,
            more: matching.next().is_some(),
        }
    }

    /// Removes silent members, answers joins whose group filled, answers "timed out" to joins
    /// and locks whose deadline passed, forgets empty groups.
    ///
    /// Afterwards [`Groups::next_wakeup`] is later than `now`: whatever was due is done, so
    /// the router never polls with a zero timeout for this state.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Answer<T>> {
        let mut out = Vec::new();
        for (name, g) in &mut self.groups {
            // A member waiting in a join is alive: its client is blocked in that request.
            let waiting: Vec<u64> = g.waiting.iter().map(|w| w.member).collect();
            let dead: Vec<u64> = g
                .members
                .iter()
                .filter(|m| {
                    !waiting.contains(&m.id)
                        && now.saturating_duration_since(m.last_seen) > m.dead_after
                })
                .map(|m| m.id)
                .collect();
            for member in dead {
                info!(group = ?name, member = %format_args!("{member:016x}"), "member declared dead");
                g.remove(member);
            }
            // Lock waits past their deadline: the client is told, the wait forgotten.
            let (expired, locks): (Vec<_>, Vec<_>) = std::mem::take(&mut g.locks)
                .into_iter()
                .partition(|w| w.deadline <= now);
            g.locks = locks;
            for w in expired {
                let reason = format!("the token of group {name:?} did not come in time");
                out.push((w.token, Err((Status::TimedOut, reason))));
            }
            out.extend(g.pass_token());
            out.extend(g.answer_filled(name, now));
            let size = g.members.len();
            let mut still = Vec::new();
            let mut gave_up = Vec::new();
            for w in std::mem::take(&mut g.waiting) {
                if now >= w.deadline {
                    let reason = format!(
                        "group {name:?} has {size} of the {} members the join waited for",
                        w.expected
                    );
                    out.push((w.token, Err((Status::TimedOut, reason))));
                    gave_up.push(w.member);
                } else {
                    still.push(w);
                }
            }
            g.waiting = still;
            // The client stops at this answer and will not heartbeat: the member leaves.
            for member in gave_up {
                g.remove(member);
            }
        }
        self.groups
            .retain(|_, g| !g.members.is_empty() || !g.waiting.is_empty());
        out.append(&mut self.passed);
        out
    }

    /// Answers made while serving another request (a token passed on by an unlock), for
    /// the router to send after that request's own.
    pub(crate) fn take_passed(&mut self) -> Vec<Answer<T>> {
        std::mem::take(&mut self.passed)
    }

    /// When [`Groups::tick`] next has something to do. Members waiting in a join are alive
    /// until the join's deadline, so only that deadline counts for them.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                g.members
                    .iter()
                    .filter(|m| !g.waiting.iter().any(|w| w.member == m.id))
                    .map(|m| m.last_seen + m.dead_after + Duration::from_millis(1))
                    .chain(g.waiting.iter().map(|w| w.deadline))
                    .chain(g.locks.iter().map(|w| w.deadline))
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
    fn the_join_that_fills_a_group_answers_the_waiting_ones_before_anyone_can_leave() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(g.handle(t0, 1, minute, join(1, Some(2))).is_none());
        let full = view_of(g.handle(t0, 2, minute, join(2, Some(2))));
        let passed = g.take_passed();
        assert!(
            matches!(passed.as_slice(), [(1, Ok(GroupReply::View { view }))] if *view == full),
            "{:?}",
            passed.iter().map(|a| &a.1).collect::<Vec<_>>()
        );
        // The second member leaves in the same turn of the router, before any tick.
        let leave = GroupRequest::Leave {
            group: "dice".into(),
            member: 2,
        };
        assert!(g.handle(t0, 3, minute, leave).is_some());
        assert!(g.tick(t0 + minute).is_empty(), "nothing left to time out");
    }

    fn listed(
        g: &mut Groups<u32>,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> (Vec<GroupSummary>, bool) {
        let request = GroupRequest::List {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit,
        };
        match g.handle(Instant::now(), 0, Duration::from_secs(1), request) {
            Some((_, Ok(GroupReply::Groups { groups, more }))) => (groups, more),
            other => panic!("{:?}", other.map(|a| a.1)),
        }
    }

    #[test]
    fn groups_are_listed_by_prefix_in_pages_with_their_token_holder() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        for (group, member) in [("b.one", 5), ("a.two", 3), ("a.one", 1), ("a.one", 2)] {
            let request = GroupRequest::Join {
                group: group.into(),
                member,
                expected: None,
                dead_after_ms: 2000,
            };
            view_of(g.handle(t0, 0, minute, request));
        }
        let lock = GroupRequest::Lock {
            group: "a.one".into(),
            member: 1,
        };
        assert!(matches!(
            g.handle(t0, 0, minute, lock),
            Some((_, Ok(GroupReply::Locked { .. })))
        ));

        let (page, more) = listed(&mut g, "a.", None, 1);
        assert!(more);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].view.group, "a.one");
        assert_eq!(page[0].view.members, vec![1, 2]);
        assert_eq!(page[0].view.version, 2);
        assert_eq!(page[0].token_holder, Some(1));
        let (page, more) = listed(&mut g, "a.", Some("a.one"), 1);
        assert!(!more);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].view.group, "a.two");
        assert_eq!(page[0].token_holder, None);

        let (all, more) = listed(&mut g, "", None, 100);
        assert!(!more);
        let names: Vec<&str> = all.iter().map(|s| s.view.group.as_str()).collect();
        assert_eq!(names, ["a.one", "a.two", "b.one"]);
        // A limit of 0 still lists one; a cursor before the prefix starts at the prefix.
        assert_eq!(listed(&mut g, "b", Some("a.zzz"), 0).0.len(), 1);
        assert!(listed(&mut g, "c", None, 10).0.is_empty());
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
        let answers = g.tick(t0 + short);
        assert!(
            matches!(answers.as_slice(), [(7, Err((Status::TimedOut, _)))]),
            "the abandoned join is answered"
        );
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

    #[test]
    fn a_join_waiting_past_its_silence_limit_wakes_nobody_until_its_deadline() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let wait = Duration::from_secs(3600);
        let join = GroupRequest::Join {
            group: "slow".into(),
            member: 1,
            expected: Some(2),
            dead_after_ms: 50,
        };
        assert!(g.handle(t0, 9, wait, join).is_none());
        // Every turn of the router does what is due; the next wake is then in the future.
        for ms in [0, 60, 1000, 60_000] {
            let now = t0 + Duration::from_millis(ms);
            assert!(g.tick(now).is_empty());
            let next = g.next_wakeup().expect("the join's deadline");
            assert!(next > now, "at +{ms} ms the next wake is not in the future");
            assert_eq!(next, t0 + wait);
        }
        // Once the group fills, the waiting member's silence limit starts from the answer.
        let later = t0 + Duration::from_secs(120);
        view_of(g.handle(later, 10, wait, join_of("slow", 2)));
        assert_eq!(g.tick(later).len(), 1);
        assert!(g.has("slow", 1), "not declared dead for the time it waited");
        assert!(g.next_wakeup().is_some_and(|w| w > later));
    }

    #[test]
    fn a_lock_wait_past_its_deadline_is_answered_timed_out() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        view_of(g.handle(t0, 0, minute, join(1, None)));
        view_of(g.handle(t0, 0, minute, join(2, None)));
        granted(lock(&mut g, t0, 1, 1));
        let short = Duration::from_millis(100);
        let request = GroupRequest::Lock {
            group: "dice".into(),
            member: 2,
        };
        assert!(g.handle(t0, 2, short, request).is_none());
        let answers = g.tick(t0 + short);
        assert!(
            matches!(answers.as_slice(), [(2, Err((Status::TimedOut, _)))]),
            "{:?}",
            answers.iter().map(|a| &a.1).collect::<Vec<_>>()
        );
    }

    fn join_of(group: &str, member: u64) -> GroupRequest {
        GroupRequest::Join {
            group: group.into(),
            member,
            expected: None,
            dead_after_ms: 2000,
        }
    }

    fn lock(g: &mut Groups<u32>, now: Instant, token: u32, member: u64) -> Option<Answer<u32>> {
        let request = GroupRequest::Lock {
            group: "dice".into(),
            member,
        };
        g.handle(now, token, Duration::from_secs(60), request)
    }

    fn granted(answer: Option<Answer<u32>>) -> (u32, u64) {
        match answer {
            Some((token, Ok(GroupReply::Locked { generation }))) => (token, generation),
            other => panic!("{:?}", other.map(|a| a.1)),
        }
    }

    #[test]
    fn the_token_goes_around_the_ring_to_whoever_asks_and_is_made_anew_once_when_its_holder_dies() {
        let mut g: Groups<u32> = Groups::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        for m in [1, 2, 3, 4] {
            view_of(g.handle(t0, 0, minute, join(m, None)));
        }
        // The token starts at the last rank (member 4) and goes on from there: member 2 asks
        // and gets it at once.
        assert_eq!(granted(lock(&mut g, t0, 20, 2)), (20, 0));
        // Members 1 and 4 ask while 2 holds it: they wait.
        assert!(lock(&mut g, t0, 10, 1).is_none());
        assert!(lock(&mut g, t0, 40, 4).is_none());
        // An unlock passes it on along the ring from 2: 3 does not want it, 4 does.
        let unlock = |member| GroupRequest::Unlock {
            group: "dice".into(),
            member,
        };
        let done = g.handle(t0, 21, minute, unlock(2));
        assert!(matches!(done, Some((21, Ok(GroupReply::Unlocked)))));
        let passed = g.take_passed();
        assert_eq!(passed.len(), 1);
        assert_eq!(granted(passed.into_iter().next()), (40, 0));
        // Only the holder may unlock.
        assert!(matches!(
            g.handle(t0, 0, minute, unlock(1)),
            Some((_, Err(_)))
        ));
        // The holder (4) dies: exactly one new token, going on from 4's place: to 1.
        let later = t0 + Duration::from_millis(2500);
        for m in [1, 2, 3] {
            g.handle(
                later,
                0,
                minute,
                GroupRequest::Heartbeat {
                    group: "dice".into(),
                    member: m,
                },
            );
        }
        let answers = g.tick(later);
        assert_eq!(answers.len(), 1);
        assert_eq!(granted(answers.into_iter().next()), (10, 1));
        assert!(g.tick(later).is_empty(), "no second token");
    }
}
