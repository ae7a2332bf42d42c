//! Listing the broker's groups, for dashboards and tools: who is in each, at which view
//! version, and who holds the token.

use zhub_protocol::group::{GroupReply, GroupRequest, GroupSummary, GROUP_SERVICE};

use crate::error::{RequestError, RequestErrorKind};
use crate::Client;

/// One page of [`Client::groups`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPage {
    /// The groups, in name order.
    pub groups: Vec<GroupSummary>,
    /// Whether more groups match: ask again with the last name as `after`.
    pub more: bool,
}

impl Client {
    /// The groups whose name starts with `prefix` (empty: all), in name order, from the
    /// first name after `after`, at most `limit` (the broker caps it at
    /// [`zhub_protocol::group::MAX_LIST_GROUPS`]).
    ///
    /// # Errors
    /// As for any request; [`RequestErrorKind::BadRequest`] for a prefix over 200 bytes or
    /// with control characters.
    pub fn groups(
        &mut self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<GroupPage, RequestError> {
        let request = GroupRequest::List {
            prefix: prefix.to_owned(),
            after: after.map(str::to_owned),
            limit,
        };
        let timeout = self.timeout();
        match self.call_builtin(GROUP_SERVICE, &request, timeout)? {
            GroupReply::Groups { groups, more } => Ok(GroupPage { groups, more }),
            other => Err(RequestError::new(
                RequestErrorKind::Protocol,
                format!("unexpected reply to a group list: {other:?}"),
            )),
        }
    }
}
