//! Application messages between members: [`GroupMessage`], sends to all, to all others or to
//! one rank, receives from the mailbox, and the Lamport clock that stamps them.

use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use zhub_protocol::group::{all_topic, member_topic, GroupFrame, SyncMode};
use zhub_protocol::{body, ProtocolError};

use super::mailbox::{self, Received};
use super::Group;
use crate::error::{GroupError, GroupErrorKind, WithKind};

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

impl Group {
    /// This member's Lamport clock: +1 before each send of an application message,
    /// max(local, stamp) + 1 on receiving one. Barriers and heartbeats leave it alone.
    pub fn clock(&self) -> u64 {
        self.clock.get()
    }

    pub(super) fn send_frame(&mut self, topic: &str, frame: &GroupFrame) -> Result<(), GroupError> {
        mailbox::send_frame(&mut self.client, topic, frame)
    }

    /// Stamps and sends one application message; returns its stamp.
    pub(super) fn send_user(
        &mut self,
        topic: &str,
        body: Vec<u8>,
        exclude_sender: bool,
        sync: Option<SyncMode>,
    ) -> Result<u64, GroupError> {
        if self.is_expelled() {
            return Err(GroupError::new(GroupErrorKind::Expelled, self.name.clone()));
        }
        let stamp = self.clock.tick();
        let frame = GroupFrame::User {
            from: self.member,
            lamport: stamp,
            exclude_sender,
            sync,
            body,
        };
        self.send_frame(topic, &frame)?;
        Ok(stamp)
    }

    /// The member id at `rank` in the current view.
    pub(super) fn member_at(&self, rank: usize) -> Result<u64, GroupError> {
        let view = self.view();
        view.members.get(rank).copied().ok_or_else(|| {
            GroupError::new(
                GroupErrorKind::NoSuchRank,
                format!("rank {rank} in a view of {}", view.size()),
            )
        })
    }

    /// Hands a received message to the application, applying the Lamport receive rule.
    pub(super) fn received(&mut self, r: Received, from_rank: Option<usize>) -> GroupMessage {
        self.clock.observe(r.lamport);
        GroupMessage {
            from: r.from,
            from_rank,
            lamport: r.lamport,
            body: r.body,
        }
    }

    pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, GroupError> {
        body::encode(value).kind(GroupErrorKind::Codec, "body")
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
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
}
