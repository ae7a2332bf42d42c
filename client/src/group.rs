//! [`Group`]: membership of a process group through the broker (`zhub.group`): ranks by
//! arrival, views that change when members come, leave or die, and heartbeats that keep this
//! member in the view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, warn};
pub use zhub_protocol::group::View;
use zhub_protocol::group::{GroupReply, GroupRequest, GROUP_SERVICE};

use crate::error::{RequestError, RequestErrorKind};
use crate::util::random_u64;
use crate::Client;

/// Settings of a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOptions {
    /// Interval of this member's heartbeats (default 0.5 s).
    pub heartbeat: Duration,
    /// Silence after which the broker declares this member dead (default 2 s).
    pub dead_after: Duration,
    /// How long `join` waits for the group to reach its size (default 60 s).
    pub join_timeout: Duration,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(2),
            join_timeout: Duration::from_secs(60),
        }
    }
}

struct State {
    view: View,
    /// The broker no longer counts this member (declared dead while unreachable, or left).
    expelled: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, view: View, expelled: bool) {
        let mut state = self.lock();
        if view.version != state.view.version || expelled != state.expelled {
            debug!(group = %view.group, version = view.version, size = view.size(), "view changed");
            state.view = view;
            state.expelled = expelled;
            drop(state);
            self.changed.notify_all();
        }
    }
}

/// This process's membership of a group. Made by [`Group::join`]; a thread of its own keeps
/// it alive with heartbeats and follows the view. Dropping it leaves the group.
pub struct Group {
    name: String,
    member: u64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn call(
    client: &mut Client,
    request: &GroupRequest,
    timeout: Duration,
) -> Result<GroupReply, RequestError> {
    client.call_builtin(GROUP_SERVICE, request, timeout)
}

impl Group {
    /// Joins `name` through the broker `client` is connected to and returns once the group
    /// has `expected_size` members, with this member's rank in [`Group::rank`]. Ranks are
    /// 0..N-1 in the order the broker saw the joins, the same for every member.
    ///
    /// # Errors
    /// [`RequestErrorKind::TimedOut`] when the group does not fill within the join timeout
    /// (60 s), or as for any request.
    pub fn join(client: &Client, name: &str, expected_size: usize) -> Result<Group, RequestError> {
        Self::join_with(client, name, Some(expected_size), GroupOptions::default())
    }

    /// Joins `name` without waiting for a size: the view grows as members arrive (see
    /// [`Group::wait_view`]).
    ///
    /// # Errors
    /// As for any request.
    pub fn join_open(client: &Client, name: &str) -> Result<Group, RequestError> {
        Self::join_with(client, name, None, GroupOptions::default())
    }

    /// [`Group::join`] with a size or none, and options.
    ///
    /// # Errors
    /// As for [`Group::join`].
    pub fn join_with(
        client: &Client,
        name: &str,
        expected_size: Option<usize>,
        options: GroupOptions,
    ) -> Result<Group, RequestError> {
        let url = client.info().main.clone();
        let mut own = Client::connect_with(&url, client.options().clone())
            .map_err(|e| RequestError::with_source(RequestErrorKind::Transport, "connect", e))?;
        let member = random_u64();
        let request = GroupRequest::Join {
            group: name.to_owned(),
            member,
            expected: expected_size.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            dead_after_ms: u64::try_from(options.dead_after.as_millis()).unwrap_or(u64::MAX),
        };
        let view = match call(&mut own, &request, options.join_timeout)? {
            GroupReply::View { view } => view,
            GroupReply::NotMember { .. } => {
                return Err(RequestError::new(
                    RequestErrorKind::Protocol,
                    "the broker did not count the join",
                ))
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                view,
                expelled: false,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let name = name.to_owned();
            std::thread::Builder::new()
                .name("zhub-group".into())
                .spawn(move || heartbeats(own, &name, member, options, &shared))
                .map_err(|e| RequestError::with_source(RequestErrorKind::Transport, "thread", e))?
        };
        Ok(Group {
            name: name.to_owned(),
            member,
            shared,
            thread: Some(thread),
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
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.view.version <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(state.view.clone())
    }

    /// Leaves the group now (dropping the group does the same).
    pub fn leave(self) {}
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

/// The member's thread: a heartbeat every interval, the view from each reply, and a leave
/// when the group is dropped.
fn heartbeats(mut client: Client, name: &str, member: u64, options: GroupOptions, shared: &Shared) {
    let timeout = options.dead_after;
    loop {
        {
            let state = shared.lock();
            let _unused = shared
                .changed
                .wait_timeout_while(state, options.heartbeat, |_| {
                    !shared.stop.load(Ordering::Relaxed)
                })
                .unwrap_or_else(PoisonError::into_inner);
        }
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let request = GroupRequest::Heartbeat {
            group: name.to_owned(),
            member,
        };
        match call(&mut client, &request, timeout) {
            Ok(GroupReply::View { view }) => shared.update(view, false),
            Ok(GroupReply::NotMember { view }) => {
                warn!(group = name, "this member was declared dead");
                shared.update(view, true);
            }
            Err(e) => debug!(error = %e, "heartbeat failed; trying again"),
        }
    }
    let leave = GroupRequest::Leave {
        group: name.to_owned(),
        member,
    };
    if let Err(e) = call(&mut client, &leave, Duration::from_millis(500)) {
        debug!(error = %e, "leave not acknowledged; the broker will time the member out");
    }
}
