//! The member's own thread: a heartbeat every interval, the view from each reply, and a
//! leave when the group is dropped.

use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use tracing::{debug, warn};
use zhub_protocol::group::{GroupReply, GroupRequest};

use super::mailbox::Shared;
use super::{call, GroupOptions};
use crate::Client;

/// Runs until [`Shared::stop`] is set, then leaves the group.
pub(super) fn heartbeats(
    mut client: Client,
    name: &str,
    member: u64,
    options: GroupOptions,
    shared: &Shared,
) {
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
        match call(&mut client, &request, timeout, "heartbeat") {
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
    if let Err(e) = call(&mut client, &leave, Duration::from_millis(500), "leave") {
        debug!(error = %e, "leave not acknowledged; the broker will time the member out");
    }
}
