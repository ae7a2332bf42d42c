//! The `zhub.group` built-in service: membership of process groups, as MessagePack bodies of
//! native (`ZHC01`) requests.
//!
//! A member is a random 64-bit id chosen by the joining process. The broker numbers members
//! by arrival; a [`View`] lists the live members in arrival order, so a member's rank is its
//! index in the view, the same for every member. When a member leaves or stops sending
//! heartbeats, the view changes: its version goes up and the survivors keep their arrival
//! order, so ranks are recomputed the same way everywhere.

use serde::{Deserialize, Serialize};

/// The group service's name.
pub const GROUP_SERVICE: &str = "zhub.group";

/// A request to the group service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupRequest {
    /// Join `group` as `member`; the reply comes once the view holds at least `expected`
    /// members (at once without `expected`).
    Join {
        /// The group's name.
        group: String,
        /// The joining member's id.
        member: u64,
        /// Members to wait for.
        #[serde(default)]
        expected: Option<u32>,
        /// Silence after which the member counts as dead, in milliseconds.
        dead_after_ms: u64,
    },
    /// The member is alive; the reply is the current view.
    Heartbeat {
        /// The group.
        group: String,
        /// The member.
        member: u64,
    },
    /// The member leaves the group.
    Leave {
        /// The group.
        group: String,
        /// The member.
        member: u64,
    },
    /// The current view.
    View {
        /// The group.
        group: String,
    },
}

/// The live members of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The group's name.
    pub group: String,
    /// Goes up by one at every change of membership.
    pub version: u64,
    /// Member ids in arrival order: a member's rank is its index.
    pub members: Vec<u64>,
}

impl View {
    /// The rank of `member`, if it is in the view.
    pub fn rank_of(&self, member: u64) -> Option<usize> {
        self.members.iter().position(|&m| m == member)
    }

    /// Members in the view.
    pub fn size(&self) -> usize {
        self.members.len()
    }
}

/// A successful reply of the group service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum GroupReply {
    /// The current view.
    View {
        /// The view.
        view: View,
    },
    /// The member is not (or no longer) in the group: it was declared dead or left.
    NotMember {
        /// The current view.
        view: View,
    },
}
