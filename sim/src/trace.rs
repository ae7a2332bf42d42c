//! The messages of a run, as a report draws them (a Lamport diagram) and a trace hash covers.

use serde::{Deserialize, Serialize};

/// One message sent during a run: who sent it to whom, when, and what became of it.
///
/// Participants are named as the run names them: nodes `n1`, `n2`, ..., clients `c0`, `c1`,
/// ..., and the gateway `gw`. Times are nanoseconds since the run began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The sender.
    pub from: String,
    /// The receiver.
    pub to: String,
    /// When it was sent.
    pub sent: u64,
    /// When it was delivered; `None` when it was lost (dropped, partitioned, or the receiver
    /// was down).
    pub delivered: Option<u64>,
    /// A short human label: the message type and its most telling field.
    pub label: String,
}
