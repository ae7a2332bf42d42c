//! The member's mailbox: the state its subscription thread fills from the bus (messages,
//! rendezvous, acknowledgements, barrier arrivals, views) and the waits on that state.
//!
//! Each member subscribes to its group's topics (one for all members, one of its own) before
//! it joins, and a thread of the subscription's own moves every message into the mailbox as
//! it arrives, so nothing sent to a member after it joined is lost, however late it calls
//! `recv`. Messages from one sender arrive in the order it sent them (one publisher socket,
//! one path through the broker). Barrier arrivals travel the same way and are counted per
//! barrier number, so an arrival for the next barrier that comes early is kept.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{debug, warn};
use zhub_protocol::body;
use zhub_protocol::group::{member_topic, GroupFrame, SyncMode, View};

use crate::error::{GroupError, GroupErrorKind, WithKind};
use crate::Client;

/// What a message left in the mailbox: sender, stamp, payload, how to acknowledge it.
pub(super) struct Received {
    pub(super) from: u64,
    pub(super) lamport: u64,
    pub(super) body: Vec<u8>,
    pub(super) sync: Option<SyncMode>,
}

/// What the member knows, shared by its threads under [`Shared::state`].
#[derive(Default)]
pub(super) struct State {
    pub(super) view: View,
    /// The broker no longer counts this member (declared dead while unreachable, or left).
    pub(super) expelled: bool,
    /// Application messages not yet received.
    pub(super) mailbox: VecDeque<Received>,
    /// Synchronous messages waiting for `recv_from_sync`.
    pub(super) rendezvous: VecDeque<Received>,
    /// Acknowledgements of this member's synchronous messages, by message id.
    pub(super) acks: HashMap<u64, HashSet<u64>>,
    /// Barrier arrivals by barrier number, including early ones.
    pub(super) barriers: HashMap<u64, HashSet<u64>>,
    /// Frames on the group's topics that did not decode.
    pub(super) malformed: u64,
}

/// The state, the condition every change of it is signalled on, and the flag that stops
/// the heartbeat thread. A std mutex: the state is touched by the member's own thread, the
/// subscription's and the heartbeats', briefly each time.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: Condvar,
    pub(super) stop: AtomicBool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a view from the broker (and whether it still counts this member).
    pub(super) fn update(&self, view: View, expelled: bool) {
        let mut state = self.lock();
        if view.version != state.view.version || expelled != state.expelled {
            debug!(group = %view.group, version = view.version, size = view.size(), "view changed");
            state.view = view;
            state.expelled = expelled;
            drop(state);
            self.changed.notify_all();
        }
    }

    /// Waits until every member of `members` is in the set `set` picks from the state (the
    /// acknowledgements of a message, the arrivals at a barrier), then lets `done` clear it.
    ///
    /// # Errors
    /// [`GroupErrorKind::MemberGone`] when a missing member leaves the view,
    /// [`GroupErrorKind::TimedOut`], [`GroupErrorKind::Expelled`] (naming `group`).
    pub(super) fn wait_all(
        &self,
        group: &str,
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
            .changed
            .wait_timeout_while(self.lock(), timeout, |state| {
                let missing = missing(state);
                !(missing.is_empty() || gone(state, &missing).is_some() || state.expelled)
            })
            .unwrap_or_else(PoisonError::into_inner);
        let left = missing(&state);
        let outcome = if left.is_empty() {
            Ok(())
        } else if state.expelled {
            Err(GroupError::new(GroupErrorKind::Expelled, group))
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
}

/// The mailbox's side: puts each frame from the bus into the state (a message into the
/// mailbox or the rendezvous queue, an acknowledgement or a barrier arrival into its set),
/// and acknowledges at once the synchronous messages that ask for it on delivery.
pub(super) struct Inbox {
    pub(super) shared: Arc<Shared>,
    pub(super) group: String,
    pub(super) me: u64,
    /// Sends acknowledgements (a connection of the inbox's own thread).
    pub(super) acker: Client,
}

impl Inbox {
    pub(super) fn deliver(&mut self, frame: &[u8]) {
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

/// Publishes one group frame on `topic` (a reserved `$zhub.group.` topic).
pub(super) fn send_frame(
    client: &mut Client,
    topic: &str,
    frame: &GroupFrame,
) -> Result<(), GroupError> {
    let bytes = body::encode(frame).kind(GroupErrorKind::Codec, "group message")?;
    client
        .publish_reserved(topic, &bytes)
        .kind(GroupErrorKind::Transport, "send")
}
