//! Reusable barriers: [`Group::barrier`], numbered by each member from 1; arrivals travel
//! over the bus like messages and are counted per barrier number.

use std::time::Duration;

use zhub_protocol::group::{all_topic, GroupFrame};

use super::Group;
use crate::error::GroupError;

impl Group {
    /// Waits until every member of the current view has reached this barrier too. Barriers
    /// are numbered by each member from 1, so every member must call it the same number of
    /// times; an arrival for a later barrier that comes early is kept for it.
    ///
    /// # Errors
    /// [`GroupErrorKind::MemberGone`](crate::GroupErrorKind::MemberGone) when a member that
    /// had not arrived leaves the view meanwhile;
    /// [`GroupErrorKind::TimedOut`](crate::GroupErrorKind::TimedOut) after `timeout`;
    /// [`GroupErrorKind::Expelled`](crate::GroupErrorKind::Expelled).
    pub fn barrier(&mut self, timeout: Duration) -> Result<(), GroupError> {
        self.barrier_round += 1;
        let round = self.barrier_round;
        let frame = GroupFrame::Barrier {
            from: self.member,
            round,
        };
        self.send_frame(&all_topic(&self.name), &frame)?;
        let waiting_for = self.view().members;
        self.shared.wait_all(
            &self.name,
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
