//! The process's limit on open files: raised at start, and turned into a budget of open
//! event log streams.
//!
//! Every client connection, socket and open segment costs a descriptor. The soft limit is
//! often 1024 while the hard one is far higher, so the broker raises the soft limit to the
//! hard one, then lets the event log keep at most a quarter of it in open streams (each
//! holds at most two descriptors), leaving the rest to connections.

use tracing::{info, warn};

/// Fewest streams kept open, however low the limit.
const MIN_OPEN_STREAMS: u64 = 16;
/// Most streams kept open, however high the limit: enough for every busy stream.
const MAX_OPEN_STREAMS: u64 = 4096;

/// Raises the soft limit on open files to the hard limit, logging the change; returns the
/// soft limit in force (`None` when it cannot be read).
pub(crate) fn raise_open_files() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(error = %std::io::Error::last_os_error(), "cannot read the open file limit");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            info!(
                from = before,
                to = raised.rlim_cur,
                "open file limit raised"
            );
            return Some(raised.rlim_cur);
        }
        warn!(
            limit = before,
            hard = limit.rlim_max,
            error = %std::io::Error::last_os_error(),
            "cannot raise the open file limit"
        );
    }
    info!(limit = before, "open file limit");
    Some(before)
}

/// How many event log streams may hold files at once under a limit of `open_files`.
pub(crate) fn open_streams_budget(open_files: Option<u64>) -> usize {
    let budget = match open_files {
        Some(limit) => (limit / 4).clamp(MIN_OPEN_STREAMS, MAX_OPEN_STREAMS),
        None => zhub_eventlog::DEFAULT_MAX_OPEN_STREAMS as u64,
    };
    usize::try_from(budget).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_quarter_of_the_limit_within_bounds() {
        assert_eq!(open_streams_budget(Some(1024)), 256);
        assert_eq!(open_streams_budget(Some(20)), 16);
        assert_eq!(open_streams_budget(Some(1 << 20)), 4096);
        assert_eq!(
            open_streams_budget(None),
            zhub_eventlog::DEFAULT_MAX_OPEN_STREAMS
        );
    }
}
