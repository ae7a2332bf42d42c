//! Synchronous sends: a broadcast that returns once every other member has the message, and
//! a rendezvous with one rank ([`Group::send_to_sync`] meets [`Group::recv_from_sync`]).

use std::sync::PoisonError;
use std::time::Duration;

use serde::Serialize;
use zhub_protocol::group::{all_topic, member_topic, GroupFrame, SyncMode};
use zhub_protocol::ids::random_u64;

use super::{Group, GroupMessage};
use crate::error::{GroupError, GroupErrorKind};

impl Group {
    /// Waits until every member of `from` has acknowledged message `id`.
    fn wait_acks(&self, id: u64, from: &[u64], timeout: Duration) -> Result<(), GroupError> {
        self.shared.wait_all(
            &self.name,
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
}
