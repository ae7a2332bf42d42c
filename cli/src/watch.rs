//! Telling the person at a long-running command (`zhub sub`, `zhub serve`) when the broker
//! goes away and when it is back.
//!
//! Those commands reconnect by themselves (ZeroMQ does, and resends a subscriber's
//! subscriptions; a worker registers again), so they need not fail when the broker restarts;
//! but without a word, a silent `zhub sub` looks the same whether nothing is published or no
//! broker is there. A thread of its own asks the broker for its counters every second on a
//! connection of its own and says, once each time, when that stops and starts working.

use std::time::Duration;

use zhub_client::ClientOptions;

/// How often the broker is asked, and how long an answer may take before it counts as lost.
const CHECK: Duration = Duration::from_secs(1);

/// Starts the watch on a thread of its own, for the rest of the process. Quietly does nothing
/// when the first connection cannot be made (the command itself reports that).
pub(crate) fn spawn(url: &str, timeout: Duration) {
    let url = url.to_owned();
    let wait = timeout.min(CHECK);
    let Ok(mut client) = ClientOptions::new().timeout(wait).connect(&url) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("zhub-watch".into())
        .spawn(move || {
            let mut up = true;
            loop {
                std::thread::sleep(CHECK);
                match client.stats() {
                    Ok(_) if !up => {
                        eprintln!("zhub: the broker at {url} is back");
                        up = true;
                    }
                    Err(e) if up => {
                        eprintln!(
                            "zhub: lost the broker at {url} ({e}); waiting for it to come back"
                        );
                        up = false;
                    }
                    _ => {}
                }
            }
        });
    // Without the watch the command still works; say nothing.
    drop(spawned);
}
