//! The group's critical section: [`Group::lock`] and its [`LockGuard`]. The broker passes a
//! token around the ring of ranks; the guard holds it until dropped.

use std::time::Duration;

use tracing::warn;
use zhub_protocol::group::{GroupReply, GroupRequest};

use super::{call, unexpected, Group};
use crate::error::{GroupError, GroupErrorKind};

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
        if let Err(e) = call(&mut self.group.client, &request, timeout, "unlock") {
            // The broker passes the token on when it declares this member dead.
            warn!(error = %e, "unlock not acknowledged");
        }
    }
}

impl Group {
    /// Takes the group's critical section: waits for the ring's token, which goes rank to
    /// rank, stopping at members that asked for it, so every member that keeps asking gets
    /// its turn. Release it by dropping the guard, which passes the token on. If the holder
    /// dies, exactly one new token goes on from its place in the ring
    /// ([`LockGuard::generation`] counts those).
    ///
    /// # Errors
    /// [`GroupErrorKind::TimedOut`] after `timeout`; [`GroupErrorKind::Expelled`];
    /// [`GroupErrorKind::Protocol`] for a reply that is not the token.
    pub fn lock(&mut self, timeout: Duration) -> Result<LockGuard<'_>, GroupError> {
        if self.is_expelled() {
            return Err(GroupError::new(GroupErrorKind::Expelled, self.name.clone()));
        }
        let request = GroupRequest::Lock {
            group: self.name.clone(),
            member: self.member,
        };
        match call(&mut self.client, &request, timeout, "waiting for the token")? {
            GroupReply::Locked { generation } => Ok(LockGuard {
                group: self,
                generation,
            }),
            other => Err(unexpected("lock", &other)),
        }
    }
}
