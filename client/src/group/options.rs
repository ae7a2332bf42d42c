//! [`GroupOptions`]: how a member keeps its membership, with every default documented.

use std::time::Duration;

use crate::error::{GroupError, GroupErrorKind};

/// Settings of a group member; build with the methods, then pass to [`Group::join_with`].
///
/// ```no_run
/// use std::time::Duration;
/// use zhub_client::{Client, Group, GroupOptions};
///
/// let client = Client::connect("tcp://127.0.0.1:5555")?;
/// let options = GroupOptions::new()
///     .heartbeat(Duration::from_millis(100))
///     .dead_after(Duration::from_millis(500));
/// let group = Group::join_with(&client, "workers", Some(4), options)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Group::join_with`]: crate::Group::join_with
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct GroupOptions {
    pub(super) heartbeat: Duration,
    pub(super) dead_after: Duration,
    pub(super) join_timeout: Duration,
    pub(super) member_id: Option<u64>,
}

impl Default for GroupOptions {
    /// - `heartbeat`: 0.5 s between this member's heartbeats;
    /// - `dead_after`: 2 s of silence after which the broker declares this member dead;
    /// - `join_timeout`: 60 s that `join` waits for the group to reach its size;
    /// - `member_id`: none, so the member's id is random.
    fn default() -> Self {
        GroupOptions {
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(2),
            join_timeout: Duration::from_secs(60),
            member_id: None,
        }
    }
}

impl GroupOptions {
    /// The defaults (see [`GroupOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Interval of this member's heartbeats.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// Silence after which the broker declares this member dead (and waits this long for a
    /// heartbeat's answer).
    pub fn dead_after(mut self, silence: Duration) -> Self {
        self.dead_after = silence;
        self
    }

    /// How long joining waits for the group to reach its size.
    pub fn join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// This member's id, instead of a random one: a launcher that must know which process is
    /// which member gives each its id.
    pub fn member_id(mut self, id: u64) -> Self {
        self.member_id = Some(id);
        self
    }

    /// Refuses values that cannot work: a zero heartbeat (the heartbeat thread would spin)
    /// or a silence limit no longer than the heartbeat (the member would be declared dead
    /// between two of its own heartbeats).
    pub(super) fn check(&self) -> Result<(), GroupError> {
        let refuse = |detail: String| Err(GroupError::new(GroupErrorKind::InvalidOption, detail));
        if self.heartbeat.is_zero() {
            return refuse("heartbeat: must be longer than zero".to_owned());
        }
        if self.dead_after <= self.heartbeat {
            return refuse(format!(
                "dead_after ({:?}) must be longer than heartbeat ({:?})",
                self.dead_after, self.heartbeat
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_cannot_work_are_refused() {
        assert!(GroupOptions::new().check().is_ok());
        let zero = GroupOptions::new().heartbeat(Duration::ZERO).check();
        assert_eq!(zero.unwrap_err().kind(), GroupErrorKind::InvalidOption);
        let short = GroupOptions::new()
            .heartbeat(Duration::from_secs(1))
            .dead_after(Duration::from_secs(1))
            .check();
        assert_eq!(short.unwrap_err().kind(), GroupErrorKind::InvalidOption);
    }
}
