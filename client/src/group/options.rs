//! [`GroupOptions`]: how a member keeps its membership.

use std::time::Duration;

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
