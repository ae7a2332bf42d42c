//! [`Group`]: a process group through the broker: membership (`zhub.group`: ranks by
//! arrival, views that change when members come, leave or die) and the parts below.
//!
//! - `options` — [`GroupOptions`].
//! - `mailbox` — the state the member's subscription thread fills from the bus, and the
//!   waits on it.
//! - `heartbeat` — the member's thread: heartbeats, views, the leave.
//! - `launch` — [`LaunchEnv`], what a launcher tells each process it starts.
//! - `messages` — [`GroupMessage`], sends and receives, the Lamport clock.
//! - `sync` — synchronous broadcast and the rendezvous with one rank.
//! - `barrier` — reusable barriers.
//! - `lock` — the token-ring critical section, [`LockGuard`].

mod barrier;
mod heartbeat;
mod launch;
mod list;
mod lock;
mod mailbox;
mod messages;
mod options;
mod sync;

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use launch::LaunchEnv;
pub use list::GroupPage;
pub use lock::LockGuard;
pub use messages::GroupMessage;
pub use options::GroupOptions;
pub use zhub_protocol::group::View;
use zhub_protocol::group::{all_topic, member_topic, GroupReply, GroupRequest, GROUP_SERVICE};
use zhub_protocol::ids::random_u64;

use self::mailbox::{Inbox, Shared};
use crate::error::{GroupError, GroupErrorKind, RequestError, RequestErrorKind, WithKind};
use crate::subscriber::Subscription;
use crate::util::LamportClock;
use crate::Client;

/// This process's membership of a group. Made by [`Group::join`]; a thread of its own keeps
/// it alive with heartbeats and follows the view. Dropping it leaves the group.
pub struct Group {
    name: String,
    member: u64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Publishes this member's messages.
    client: Client,
    /// Feeds the mailbox; dropped (unsubscribed) with the group.
    _mailbox: Subscription,
    /// This member's Lamport clock, apart from the client's: it counts only the group's
    /// application messages.
    clock: LamportClock,
    /// Barriers this member has passed.
    barrier_round: u64,
}

/// One request to the broker's group service; `what` names it in an error.
fn call(
    client: &mut Client,
    request: &GroupRequest,
    timeout: Duration,
    what: &str,
) -> Result<GroupReply, GroupError> {
    client
        .call_builtin(GROUP_SERVICE, request, timeout)
        .map_err(|e| request_failed(e, what))
}

/// A failed request to the group service as a group error of the matching kind, with the
/// request's error as its source.
fn request_failed(e: RequestError, what: &str) -> GroupError {
    let kind = match e.kind() {
        RequestErrorKind::TimedOut => GroupErrorKind::TimedOut,
        RequestErrorKind::BadRequest | RequestErrorKind::TooLarge => GroupErrorKind::BadRequest,
        RequestErrorKind::Rejected => GroupErrorKind::Rejected,
        RequestErrorKind::Forbidden => GroupErrorKind::Forbidden,
        RequestErrorKind::Codec => GroupErrorKind::Codec,
        // A broker without the group service does not speak this protocol.
        RequestErrorKind::Protocol | RequestErrorKind::NoService => GroupErrorKind::Protocol,
        _ => GroupErrorKind::Transport,
    };
    GroupError::with_source(kind, what, e)
}

/// A reply of the wrong kind to `what`.
fn unexpected(what: &str, reply: &GroupReply) -> GroupError {
    GroupError::new(
        GroupErrorKind::Protocol,
        format!("unexpected reply to {what}: {reply:?}"),
    )
}

impl Group {
    /// Joins `name` through the broker `client` is connected to and returns once the group
    /// has `expected_size` members, with this member's rank in [`Group::rank`]. Ranks are
    /// 0..N-1 in the order the broker saw the joins, the same for every member.
    ///
    /// The member makes three connections of its own (for its heartbeat thread, its
    /// mailbox's thread and the caller's sends), each a sibling of `client`: they share its
    /// ZeroMQ context and what it learned from the broker at connect.
    ///
    /// # Errors
    /// [`GroupErrorKind::TimedOut`] when the group does not fill within the join timeout
    /// (60 s), [`GroupErrorKind::BadRequest`] for a name the broker refuses,
    /// [`GroupErrorKind::Transport`] when the broker cannot be reached.
    pub fn join(client: &Client, name: &str, expected_size: usize) -> Result<Group, GroupError> {
        Self::join_with(client, name, Some(expected_size), GroupOptions::default())
    }

    /// Joins `name` without waiting for a size: the view grows as members arrive (see
    /// [`Group::wait_view`]).
    ///
    /// # Errors
    /// As for [`Group::join`].
    pub fn join_open(client: &Client, name: &str) -> Result<Group, GroupError> {
        Self::join_with(client, name, None, GroupOptions::default())
    }

    /// Joins the group a launcher (`zhub launch`) made this process part of, as its
    /// [`LaunchEnv`] says: the group's name and size and this member's id. `None` when the
    /// process was not started by a launcher.
    ///
    /// # Errors
    /// As for [`Group::join`]; [`GroupErrorKind::BadRequest`] for a malformed variable.
    pub fn join_launched(client: &Client) -> Option<Result<Group, GroupError>> {
        let env = match LaunchEnv::from_env().transpose()? {
            Ok(env) => env,
            Err(e) => return Some(Err(e)),
        };
        let options = match env.member {
            Some(id) => GroupOptions::new().member_id(id),
            None => GroupOptions::new(),
        };
        Some(Self::join_with(client, &env.group, env.size, options))
    }

    /// [`Group::join`] with a size or none, and options.
    ///
    /// # Errors
    /// As for [`Group::join`]; [`GroupErrorKind::InvalidOption`] for options that cannot work
    /// (see [`GroupOptions`]).
    pub fn join_with(
        client: &Client,
        name: &str,
        expected_size: Option<usize>,
        options: GroupOptions,
    ) -> Result<Group, GroupError> {
        options.check()?;
        // One connection for each thread: the heartbeats', this member's, the mailbox's.
        let connect = || client.sibling().kind(GroupErrorKind::Transport, "connect");
        let mut own = connect()?;
        let mut messages = connect()?;
        let acker = connect()?;
        let member = options.member_id.unwrap_or_else(random_u64);
        let shared = Arc::new(Shared::default());
        // The mailbox is live before the join: whoever sees this member in a view can reach it.
        let mailbox = {
            let mut inbox = Inbox {
                shared: Arc::clone(&shared),
                group: name.to_owned(),
                me: member,
                acker,
            };
            let topics = [all_topic(name), member_topic(name, member)];
            messages
                .subscribe_with(&[&topics[0], &topics[1]], move |m| {
                    inbox.deliver(m.body());
                })
                .kind(GroupErrorKind::Transport, "group mailbox")?
        };
        let request = GroupRequest::Join {
            group: name.to_owned(),
            member,
            expected: expected_size.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            dead_after_ms: u64::try_from(options.dead_after.as_millis()).unwrap_or(u64::MAX),
        };
        let view = match call(&mut own, &request, options.join_timeout, "join")? {
            GroupReply::View { view } => view,
            other => return Err(unexpected("join", &other)),
        };
        shared.update(view, false);
        let thread = {
            let shared = Arc::clone(&shared);
            let name = name.to_owned();
            std::thread::Builder::new()
                .name("zhub-group".into())
                .spawn(move || heartbeat::heartbeats(own, &name, member, options, &shared))
                .kind(GroupErrorKind::Transport, "thread")?
        };
        Ok(Group {
            name: name.to_owned(),
            member,
            shared,
            thread: Some(thread),
            client: messages,
            _mailbox: mailbox,
            clock: LamportClock::default(),
            barrier_round: 0,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This member's id (random, fixed for the membership).
    pub fn member_id(&self) -> u64 {
        self.member
    }

    /// The current view.
    pub fn view(&self) -> View {
        self.shared.lock().view.clone()
    }

    /// This member's rank in the current view (`None` once it was declared dead).
    pub fn rank(&self) -> Option<usize> {
        let state = self.shared.lock();
        if state.expelled {
            return None;
        }
        state.view.rank_of(self.member)
    }

    /// Members in the current view.
    pub fn size(&self) -> usize {
        self.shared.lock().view.size()
    }

    /// Whether the broker declared this member dead (it was silent for too long); it must
    /// join again to take part.
    pub fn is_expelled(&self) -> bool {
        self.shared.lock().expelled
    }

    /// Waits for a view newer than version `after`; `None` after `timeout`.
    pub fn wait_view(&self, after: u64, timeout: Duration) -> Option<View> {
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(self.shared.lock(), timeout, |s| s.view.version <= after)
            .unwrap_or_else(PoisonError::into_inner);
        (state.view.version > after).then(|| state.view.clone())
    }

    /// Leaves the group now (dropping the group does the same).
    pub fn leave(self) {}

    /// Frames on the group's topics that could not be decoded (ignored).
    pub fn malformed(&self) -> u64 {
        self.shared.lock().malformed
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_keeps_its_meaning_as_a_group_error() {
        for (request, group) in [
            (RequestErrorKind::TimedOut, GroupErrorKind::TimedOut),
            (RequestErrorKind::BadRequest, GroupErrorKind::BadRequest),
            (RequestErrorKind::Rejected, GroupErrorKind::Rejected),
            (RequestErrorKind::Protocol, GroupErrorKind::Protocol),
            (RequestErrorKind::Codec, GroupErrorKind::Codec),
            (RequestErrorKind::Transport, GroupErrorKind::Transport),
        ] {
            let e = request_failed(RequestError::new(request, "zhub.group"), "join");
            assert_eq!(e.kind(), group, "{request:?}");
            assert!(std::error::Error::source(&e).is_some());
        }
        let e = unexpected("lock", &GroupReply::Unlocked);
        assert_eq!(e.kind(), GroupErrorKind::Protocol);
    }
}
