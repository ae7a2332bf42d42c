//! [`Group`]: a process group through the broker: membership (`zhub.group`: ranks by
//! arrival, views that change when members come, leave or die, heartbeats), a mailbox fed
//! over the bus, Lamport clocks on every application message, and reusable barriers.
//!
//! Each member subscribes to its group's topics (one for all members, one of its own) before
//! it joins, and a thread of the subscription's own moves every message into the mailbox as
//! it arrives, so nothing sent to a member after it joined is lost, however late it calls
//! `recv`. Messages from one sender arrive in the order it sent them (one publisher socket,
//! one path through the broker). Barrier arrivals travel the same way and are counted per
//! barrier number, so an arrival for the next barrier that comes early is kept.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use tracing::{debug, warn};
pub use zhub_protocol::group::View;
use zhub_protocol::group::{
    all_topic, member_topic, GroupFrame, GroupReply, GroupRequest, SyncMode, GROUP_SERVICE,
};
use zhub_protocol::ids::random_u64;
use zhub_protocol::{body, ProtocolError};

use crate::error::{GroupError, GroupErrorKind, RequestError, RequestErrorKind};
use crate::subscriber::Subscription;
use crate::Client;

/// The group's name, set by `zhub launch` for the processes it starts.
pub const ENV_GROUP: &str = "ZHUB_GROUP";
/// The group's size, set by `zhub launch`.
pub const ENV_SIZE: &str = "ZHUB_GROUP_SIZE";
/// This process's member id (hexadecimal), set by `zhub launch`.
pub const ENV_MEMBER: &str = "ZHUB_GROUP_MEMBER";

/// Settings of a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOptions {
    /// Interval of this member's heartbeats (default 0.5 s).
    pub heartbeat: Duration,
    /// Silence after which the broker declares this member dead (default 2 s).
    pub dead_after: Duration,
    /// How long `join` waits for the group to reach its size (default 60 s).
    pub join_timeout: Duration,
    /// This member's id; random when `None` (the default). A launcher that must know which
    /// process is which member gives each its id.
    pub member_id: Option<u64>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(2),
            join_timeout: Duration::from_secs(60),
            member_id: None,
        }
    }
}

/// A message from another member (or this one), as [`Group::recv`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The sender's member id.
    pub from: u64,
    /// The sender's rank in the view current when the message was received.
    pub from_rank: Option<usize>,
    /// The sender's Lamport clock for this send (its stamp).
    pub lamport: u64,
    /// The payload.
    pub body: Vec<u8>,
}

impl GroupMessage {
    /// Decodes a payload sent with a typed method (MessagePack).
    ///
    /// # Errors
    /// [`ProtocolError::Decode`] when it is not a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        body::decode(&self.body)
    }
}

/// The group's critical section, held until dropped; see [`Group::lock`]. It gives access to
/// the group (to send and receive while holding it).
pub struct LockGuard<'a> {
    group: &'a mut Group,
    generation: u64,
}

impl LockGuard<'_> {
    /// How many times the token was made anew after a holder died before this member got it.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl std::ops::Deref for LockGuard<'_> {
    type Target = Group;

    fn deref(&self) -> &Group {
        self.group
    }
}

impl std::ops::DerefMut for LockGuard<'_> {
    fn deref_mut(&mut self) -> &mut Group {
        self.group
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        let request = GroupRequest::Unlock {
            group: self.group.name.clone(),
            member: self.group.member,
        };
        let timeout = self.group.client.timeout();
        if let Err(e) = call(&mut self.group.client, &request, timeout) {
            // The broker passes the token on when it declares this member dead.
            warn!(error = %e, "unlock not acknowledged");
        }
    }
}

/// What a message left in the mailbox: sender, stamp, payload, how to acknowledge it.
struct Received {
    from: u64,
    lamport: u64,
    body: Vec<u8>,
    sync: Option<SyncMode>,
}

struct State {
    view: View,
    /// The broker no longer counts this member (declared dead while unreachable, or left).
    expelled: bool,
    /// Application messages not yet received.
    mailbox: VecDeque<Received>,
    /// Synchronous messages waiting for `recv_from_sync`.
    rendezvous: VecDeque<Received>,
    /// Acknowledgements of this member's synchronous messages, by message id.
    acks: HashMap<u64, HashSet<u64>>,
    /// Barrier arrivals by barrier number, including early ones.
    barriers: HashMap<u64, HashSet<u64>>,
    /// Frames on the group's topics that did not decode.
    malformed: u64,
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
    /// Publishes this member's messages.
    client: Client,
    /// Feeds the mailbox; dropped (unsubscribed) with the group.
    _mailbox: Subscription,
    /// This member's Lamport clock.
    clock: u64,
    /// Barriers this member has passed.
    barrier_round: u64,
}

/// The mailbox's side: puts each frame from the bus into the state (a message into the
/// mailbox or the rendezvous queue, an acknowledgement or a barrier arrival into its set),
/// and acknowledges at once the synchronous messages that ask for it on delivery.
struct Inbox {
    shared: Arc<Shared>,
    group: String,
    me: u64,
    /// Sends acknowledgements (a connection of the inbox's own thread).
    acker: Client,
}

impl Inbox {
    fn deliver(&mut self, frame: &[u8]) {
        let mut ack_to = None;
        let mut state = self.shared.lock();
        match body::decode::<GroupFrame>(frame) {
            Ok(GroupFrame::User {
                from,
                exclude_sender,
                ..
            }) if exclude_sender && from == self.me => return,
            Ok(GroupFrame::User {
                from,
                lamport,
                body,
                sync,
                ..
            }) => {
                let received = Received {
                    from,
                    lamport,
                    body,
                    sync,
                };
                match sync {
                    Some(SyncMode::Taken { .. }) => state.rendezvous.push_back(received),
                    Some(SyncMode::Delivered { id }) => {
                        ack_to = Some((from, id));
                        state.mailbox.push_back(received);
                    }
                    None => state.mailbox.push_back(received),
                }
            }
            Ok(GroupFrame::Ack { from, id }) => {
                state.acks.entry(id).or_default().insert(from);
            }
            Ok(GroupFrame::Barrier { from, round }) => {
                state.barriers.entry(round).or_default().insert(from);
            }
            Err(e) => {
                state.malformed += 1;
                debug!(error = %e, "malformed group message ignored");
                return;
            }
        }
        drop(state);
        self.shared.changed.notify_all();
        if let Some((to, id)) = ack_to {
            let ack = GroupFrame::Ack { from: self.me, id };
            if let Err(e) = send_frame(&mut self.acker, &member_topic(&self.group, to), &ack) {
                warn!(error = %e, "cannot acknowledge a synchronous message");
            }
        }
    }
}

fn send_frame(client: &mut Client, topic: &str, frame: &GroupFrame) -> Result<(), GroupError> {
    let bytes = body::encode(frame)
        .map_err(|e| GroupError::with_source(GroupErrorKind::Codec, "group message", e))?;
    client
        .publish_reserved(topic, &bytes)
        .map_err(|e| GroupError::with_source(GroupErrorKind::Transport, "send", e))
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

    /// Joins the group a launcher (`zhub launch`) made this process part of: its name, size
    /// and this member's id come from `ZHUB_GROUP`, `ZHUB_GROUP_SIZE` and `ZHUB_GROUP_MEMBER`.
    /// `None` when the process was not started by a launcher.
    ///
    /// # Errors
    /// As for [`Group::join`]; [`RequestErrorKind::BadRequest`] for a malformed variable.
    pub fn join_launched(client: &Client) -> Option<Result<Group, RequestError>> {
        let name = std::env::var(ENV_GROUP).ok()?;
        let bad = |var: &str| {
            RequestError::new(RequestErrorKind::BadRequest, format!("{var} is malformed"))
        };
        let size = match std::env::var(ENV_SIZE).map(|s| s.parse::<usize>()) {
            Ok(Ok(size)) => Some(size),
            Err(_) => None,
            Ok(Err(_)) => return Some(Err(bad(ENV_SIZE))),
        };
        let member_id = match std::env::var(ENV_MEMBER).map(|s| u64::from_str_radix(&s, 16)) {
            Ok(Ok(id)) => Some(id),
            Err(_) => None,
            Ok(Err(_)) => return Some(Err(bad(ENV_MEMBER))),
        };
        let options = GroupOptions {
            member_id,
            ..GroupOptions::default()
        };
        Some(Self::join_with(client, &name, size, options))
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
        let connect = || {
            Client::connect_with(&url, client.options().clone())
                .map_err(|e| RequestError::with_source(RequestErrorKind::Transport, "connect", e))
        };
        let mut own = connect()?;
        let mut messages = connect()?;
        let acker = connect()?;
        let member = options.member_id.unwrap_or_else(random_u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                view: View::default(),
                expelled: false,
                mailbox: VecDeque::new(),
                rendezvous: VecDeque::new(),
                acks: HashMap::new(),
                barriers: HashMap::new(),
                malformed: 0,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
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
                .map_err(|e| {
                    RequestError::with_source(RequestErrorKind::Transport, "group mailbox", e)
                })?
        };
        let request = GroupRequest::Join {
            group: name.to_owned(),
            member,
            expected: expected_size.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            dead_after_ms: u64::try_from(options.dead_after.as_millis()).unwrap_or(u64::MAX),
        };
        let view = match call(&mut own, &request, options.join_timeout)? {
            GroupReply::View { view } => view,
            _ => {
                return Err(RequestError::new(
                    RequestErrorKind::Protocol,
                    "the broker did not count the join",
                ))
            }
        };
        shared.update(view, false);
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
            client: messages,
            _mailbox: mailbox,
            clock: 0,
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

    /// This member's Lamport clock: +1 before each send of an application message,
    /// max(local, stamp) + 1 on receiving one. Barriers and heartbeats leave it alone.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Frames on the group's topics that could not be decoded (ignored).
    pub fn malformed(&self) -> u64 {
        self.shared.lock().malformed
    }

    fn send_frame(&mut self, topic: &str, frame: &GroupFrame) -> Result<(), GroupError> {
        send_frame(&mut self.client, topic, frame)
    }

    fn send_user(
        &mut self,
        topic: &str,
        body: Vec<u8>,
        exclude_sender: bool,
        sync: Option<SyncMode>,
    ) -> Result<u64, GroupError> {
        if self.is_expelled() {
            return Err(GroupError::new(GroupErrorKind::Expelled, self.name.clone()));
        }
        self.clock += 1;
        let frame = GroupFrame::User {
            from: self.member,
            lamport: self.clock,
            exclude_sender,
            sync,
            body,
        };
        self.send_frame(topic, &frame)?;
        Ok(self.clock)
    }

    /// The member id at `rank` in the current view.
    fn member_at(&self, rank: usize) -> Result<u64, GroupError> {
        let view = self.view();
        view.members.get(rank).copied().ok_or_else(|| {
            GroupError::new(
                GroupErrorKind::NoSuchRank,
                format!("rank {rank} in a view of {}", view.size()),
            )
        })
    }

    /// Waits until every member of `members` is in the set `set` picks from the state (the
    /// acknowledgements of a message, the arrivals at a barrier), then lets `done` clear it.
    ///
    /// # Errors
    /// [`GroupErrorKind::MemberGone`] when a missing member leaves the view,
    /// [`GroupErrorKind::TimedOut`], [`GroupErrorKind::Expelled`].
    fn wait_all(
        &self,
        members: &[u64],
        timeout: Duration,
        what: &str,
        set: impl Fn(&State) -> Option<&HashSet<u64>>,
        done: impl Fn(&mut State),
    ) -> Result<(), GroupError> {
        let missing = |state: &State| -> Vec<u64> {
            let have = set(state);
            members
                .iter()
                .copied()
                .filter(|m| !have.is_some_and(|h| h.contains(m)))
                .collect()
        };
        let gone = |state: &State, missing: &[u64]| {
            missing
                .iter()
                .copied()
                .find(|m| !state.view.members.contains(m))
        };
        let (mut state, _) = self
            .shared
            .changed
            .wait_timeout_while(self.shared.lock(), timeout, |state| {
                let missing = missing(state);
                !(missing.is_empty() || gone(state, &missing).is_some() || state.expelled)
            })
            .unwrap_or_else(PoisonError::into_inner);
        let left = missing(&state);
        let outcome = if left.is_empty() {
            Ok(())
        } else if state.expelled {
            Err(GroupError::new(GroupErrorKind::Expelled, self.name.clone()))
        } else if let Some(m) = gone(&state, &left) {
            Err(GroupError::new(
                GroupErrorKind::MemberGone,
                format!("member {m:016x} left during {what}"),
            ))
        } else {
            Err(GroupError::new(
                GroupErrorKind::TimedOut,
                format!("{what}: {} members missing", left.len()),
            ))
        };
        done(&mut state);
        outcome
    }

    /// Waits until every member of `from` has acknowledged message `id`.
    fn wait_acks(&self, id: u64, from: &[u64], timeout: Duration) -> Result<(), GroupError> {
        self.wait_all(
            from,
            timeout,
            "a synchronous send",
            |state| state.acks.get(&id),
            |state| {
                state.acks.remove(&id);
            },
        )
    }

    /// Sends `value` to every member but this one and returns (with its stamp) once each of
    /// them has it in its mailbox and said so.
    ///
    /// # Errors
    /// [`GroupErrorKind::MemberGone`] when a member leaves or dies before acknowledging,
    /// [`GroupErrorKind::TimedOut`], or as for [`Group::publish`].
    pub fn broadcast_sync<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        timeout: Duration,
    ) -> Result<u64, GroupError> {
        let body = Self::encode(value)?;
        let id = random_u64();
        let others: Vec<u64> = self
            .view()
            .members
            .into_iter()
            .filter(|&m| m != self.member)
            .collect();
        let topic = all_topic(&self.name);
        let stamp = self.send_user(&topic, body, true, Some(SyncMode::Delivered { id }))?;
        self.wait_acks(id, &others, timeout)?;
        Ok(stamp)
    }

    /// Sends `value` to the member of rank `rank` and returns (with its stamp) once that
    /// member has taken it with [`Group::recv_from_sync`]: a rendezvous.
    ///
    /// # Errors
    /// [`GroupErrorKind::NoSuchRank`], [`GroupErrorKind::MemberGone`],
    /// [`GroupErrorKind::TimedOut`], or as for [`Group::publish`].
    pub fn send_to_sync<T: Serialize + ?Sized>(
        &mut self,
        rank: usize,
        value: &T,
        timeout: Duration,
    ) -> Result<u64, GroupError> {
        let body = Self::encode(value)?;
        let member = self.member_at(rank)?;
        let id = random_u64();
        let topic = member_topic(&self.name, member);
        let stamp = self.send_user(&topic, body, false, Some(SyncMode::Taken { id }))?;
        self.wait_acks(id, &[member], timeout)?;
        Ok(stamp)
    }

    /// Takes the next message the member of rank `rank` sent with [`Group::send_to_sync`],
    /// waiting up to `timeout`, and releases its sender.
    ///
    /// # Errors
    /// [`GroupErrorKind::NoSuchRank`], [`GroupErrorKind::MemberGone`] when that member
    /// leaves or dies first, [`GroupErrorKind::TimedOut`].
    pub fn recv_from_sync(
        &mut self,
        rank: usize,
        timeout: Duration,
    ) -> Result<GroupMessage, GroupError> {
        let member = self.member_at(rank)?;
        let (mut state, _) = self
            .shared
            .changed
            .wait_timeout_while(self.shared.lock(), timeout, |s| {
                !s.rendezvous.iter().any(|r| r.from == member) && s.view.members.contains(&member)
            })
            .unwrap_or_else(PoisonError::into_inner);
        let found = state.rendezvous.iter().position(|r| r.from == member);
        let Some(r) = found.and_then(|i| state.rendezvous.remove(i)) else {
            return Err(if state.view.members.contains(&member) {
                GroupError::new(
                    GroupErrorKind::TimedOut,
                    format!("nothing from rank {rank}"),
                )
            } else {
                GroupError::new(
                    GroupErrorKind::MemberGone,
                    format!("member of rank {rank} left"),
                )
            });
        };
        let from_rank = state.view.rank_of(member);
        drop(state);
        if let Some(SyncMode::Taken { id }) = r.sync {
            let ack = GroupFrame::Ack {
                from: self.member,
                id,
            };
            self.send_frame(&member_topic(&self.name, member), &ack)?;
        }
        Ok(self.received(r, from_rank))
    }

    /// Hands a received message to the application, applying the Lamport receive rule.
    fn received(&mut self, r: Received, from_rank: Option<usize>) -> GroupMessage {
        self.clock = self.clock.max(r.lamport) + 1;
        GroupMessage {
            from: r.from,
            from_rank,
            lamport: r.lamport,
            body: r.body,
        }
    }

    fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, GroupError> {
        body::encode(value).map_err(|e| GroupError::with_source(GroupErrorKind::Codec, "body", e))
    }

    /// Sends `value` (MessagePack) to every member, this one included; returns its stamp.
    ///
    /// # Errors
    /// [`GroupErrorKind::Expelled`], or the send failed.
    pub fn publish<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<u64, GroupError> {
        let body = Self::encode(value)?;
        self.send_user(&all_topic(&self.name), body, false, None)
    }

    /// Sends `value` to every member but this one; returns its stamp.
    ///
    /// # Errors
    /// As for [`Group::publish`].
    pub fn broadcast<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<u64, GroupError> {
        let body = Self::encode(value)?;
        self.send_user(&all_topic(&self.name), body, true, None)
    }

    /// Sends `value` to the member of rank `rank` in the current view; returns its stamp.
    ///
    /// # Errors
    /// [`GroupErrorKind::NoSuchRank`], or as for [`Group::publish`].
    pub fn send_to<T: Serialize + ?Sized>(
        &mut self,
        rank: usize,
        value: &T,
    ) -> Result<u64, GroupError> {
        let body = Self::encode(value)?;
        self.send_bytes_to(rank, body)
    }

    /// [`Group::send_to`] with raw bytes.
    ///
    /// # Errors
    /// As for [`Group::send_to`].
    pub fn send_bytes_to(&mut self, rank: usize, body: Vec<u8>) -> Result<u64, GroupError> {
        let member = self.member_at(rank)?;
        self.send_user(&member_topic(&self.name, member), body, false, None)
    }

    /// The next message, waiting up to `timeout`; `None` then.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<GroupMessage> {
        let (mut state, _) = self
            .shared
            .changed
            .wait_timeout_while(self.shared.lock(), timeout, |s| s.mailbox.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        let r = state.mailbox.pop_front()?;
        let from_rank = state.view.rank_of(r.from);
        drop(state);
        Some(self.received(r, from_rank))
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<GroupMessage> {
        self.recv_timeout(Duration::ZERO)
    }

    /// The next message, waiting as long as it takes.
    pub fn recv(&mut self) -> GroupMessage {
        loop {
            if let Some(m) = self.recv_timeout(Duration::from_secs(3600)) {
                return m;
            }
        }
    }

    /// Takes the group's critical section: waits for the ring's token, which goes rank to
    /// rank, stopping at members that asked for it, so every member that keeps asking gets
    /// its turn. Release it by dropping the guard, which passes the token on. If the holder
    /// dies, exactly one new token goes on from its place in the ring
    /// ([`LockGuard::generation`] counts those).
    ///
    /// # Errors
    /// [`GroupErrorKind::TimedOut`] after `timeout`; [`GroupErrorKind::Expelled`].
    pub fn lock(&mut self, timeout: Duration) -> Result<LockGuard<'_>, GroupError> {
        if self.is_expelled() {
            return Err(GroupError::new(GroupErrorKind::Expelled, self.name.clone()));
        }
        let request = GroupRequest::Lock {
            group: self.name.clone(),
            member: self.member,
        };
        match call(&mut self.client, &request, timeout) {
            Ok(GroupReply::Locked { generation }) => Ok(LockGuard {
                group: self,
                generation,
            }),
            Ok(other) => Err(GroupError::new(
                GroupErrorKind::Transport,
                format!("unexpected reply to lock: {other:?}"),
            )),
            Err(e) if e.kind() == RequestErrorKind::TimedOut => Err(GroupError::with_source(
                GroupErrorKind::TimedOut,
                "waiting for the token",
                e,
            )),
            Err(e) => Err(GroupError::with_source(
                GroupErrorKind::Transport,
                "lock",
                e,
            )),
        }
    }

    /// Waits until every member of the current view has reached this barrier too. Barriers
    /// are numbered by each member from 1, so every member must call it the same number of
    /// times; an arrival for a later barrier that comes early is kept for it.
    ///
    /// # Errors
    /// [`GroupErrorKind::MemberGone`] when a member that had not arrived leaves the view
    /// meanwhile; [`GroupErrorKind::TimedOut`] after `timeout`; [`GroupErrorKind::Expelled`].
    pub fn barrier(&mut self, timeout: Duration) -> Result<(), GroupError> {
        self.barrier_round += 1;
        let round = self.barrier_round;
        let frame = GroupFrame::Barrier {
            from: self.member,
            round,
        };
        self.send_frame(&all_topic(&self.name), &frame)?;
        let waiting_for = self.view().members;
        self.wait_all(
            &waiting_for,
            timeout,
            &format!("barrier {round}"),
            |state| state.barriers.get(&round),
            |state| {
                state.barriers.remove(&round);
            },
        )
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
            Ok(other) => debug!(reply = ?other, "unexpected reply to a heartbeat"),
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
