//! The `zhub.group` built-in service: membership of process groups, as MessagePack bodies of
//! native (`ZHC01`) requests.
//!
//! A member is a random 64-bit id chosen by the joining process. The broker numbers members
//! by arrival; a [`View`] lists the live members in arrival order, so a member's rank is its
//! index in the view, the same for every member. When a member leaves or stops sending
//! heartbeats, the view changes: its version goes up and the survivors keep their arrival
//! order, so ranks are recomputed the same way everywhere.
//!
//! The critical section is a token ring whose position the broker keeps: the token starts
//! at the last rank and goes rank to rank, stopping at members that asked for it
//! ([`GroupRequest::Lock`]); a member passes it on with [`GroupRequest::Unlock`]. Because the
//! broker knows where the token is, a holder's death makes exactly one new token, which
//! goes on from the dead holder's place in the ring.

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
    /// Every group whose name starts with `prefix`, in name order, from the first name after
    /// `after` (for paging), at most `limit` of them (the broker caps it at
    /// [`MAX_LIST_GROUPS`]).
    List {
        /// Names to list; empty for all.
        #[serde(default)]
        prefix: String,
        /// Resume after this name (the last one of the previous page).
        #[serde(default)]
        after: Option<String>,
        /// Most groups in the reply.
        #[serde(default = "default_list_limit")]
        limit: u32,
    },
    /// Wait for the group's token (the critical section); the reply comes when this member
    /// holds it.
    Lock {
        /// The group.
        group: String,
        /// The member.
        member: u64,
    },
    /// Pass the token on along the ring.
    Unlock {
        /// The group.
        group: String,
        /// The member holding it.
        member: u64,
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
    /// The member holds the token.
    Locked {
        /// How many times the token was made anew because its holder died (0 at first).
        generation: u64,
    },
    /// The token went on.
    Unlocked,
    /// The groups asked for with [`GroupRequest::List`].
    Groups {
        /// One summary per group, in name order.
        groups: Vec<GroupSummary>,
        /// Whether groups past the last one listed match too (ask again with `after`).
        more: bool,
    },
}

/// Most groups one [`GroupRequest::List`] reply holds.
pub const MAX_LIST_GROUPS: u32 = 1000;

fn default_list_limit() -> u32 {
    100
}

/// A group as [`GroupRequest::List`] shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The group's view: its name, version and members by rank.
    pub view: View,
    /// The member holding the token, if one does.
    #[serde(default)]
    pub token_holder: Option<u64>,
    /// Tokens made anew after a holder died.
    #[serde(default)]
    pub token_generation: u64,
    /// Members waiting for the token.
    #[serde(default)]
    pub waiting_locks: u32,
    /// Joins waiting for the group to fill.
    #[serde(default)]
    pub waiting_joins: u32,
}

/// Prefix of every group's bus topics.
pub const TOPIC_PREFIX: &str = "$zhub.group.";

/// The topic of messages to every member of `group`.
pub fn all_topic(group: &str) -> String {
    format!("{TOPIC_PREFIX}{group}.all")
}

/// The topic of messages to one member of `group`.
pub fn member_topic(group: &str, member: u64) -> String {
    format!("{TOPIC_PREFIX}{group}.m.{member:016x}")
}

/// A message between members, the body of a bus message on a group topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GroupFrame {
    /// An application message.
    User {
        /// The sender's member id.
        from: u64,
        /// The sender's Lamport clock after its increment for this send.
        lamport: u64,
        /// Sent to all but the sender (`broadcast`): the sender's mailbox drops it.
        #[serde(default)]
        exclude_sender: bool,
        /// For a synchronous send: the id each receiver acknowledges, and when.
        #[serde(default)]
        sync: Option<SyncMode>,
        /// The payload.
        #[serde(with = "serde_bytes")]
        body: Vec<u8>,
    },
    /// A receiver acknowledges the synchronous message `id` of the member it goes to.
    Ack {
        /// The acknowledging member's id.
        from: u64,
        /// The message's id, chosen by its sender.
        id: u64,
    },
    /// The sender reached barrier number `round`.
    Barrier {
        /// The sender's member id.
        from: u64,
        /// The barrier's number, counted by each member from 1.
        round: u64,
    },
}

/// How a synchronous message is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SyncMode {
    /// As soon as it is in the receiver's mailbox (`broadcast_sync`).
    Delivered {
        /// The id to acknowledge.
        id: u64,
    },
    /// When the receiver takes it with `recv_from_sync` (a rendezvous, `send_to_sync`).
    Taken {
        /// The id to acknowledge.
        id: u64,
    },
}

impl crate::names::Named for GroupRequest {
    fn check_names(&self) -> Result<(), crate::ProtocolError> {
        match self {
            GroupRequest::Join { group, .. }
            | GroupRequest::Heartbeat { group, .. }
            | GroupRequest::Leave { group, .. }
            | GroupRequest::View { group }
            | GroupRequest::Lock { group, .. }
            | GroupRequest::Unlock { group, .. } => crate::names::check_group(group),
            GroupRequest::List { prefix, after, .. } => {
                crate::names::check_group_prefix(prefix)?;
                after
                    .as_deref()
                    .map_or(Ok(()), crate::names::check_group_prefix)
            }
        }
    }
}
