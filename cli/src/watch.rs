//! Telling the person at a long-running command (`zhub sub`, `zhub serve`) when the broker
//! goes away and when it is back.
//!
//! Those commands reconnect by themselves (ZeroMQ does, and resends a subscriber's
//! subscriptions; a worker registers again), so they need not fail when the broker restarts;
//! but without a word, a silent `zhub sub` looks the same whether nothing is published or no
//! broker is there. A thread of its own asks the broker who it is (`zhub.info`, which every
//! login may ask, unlike the counters) every second on a connection of its own and says, once
//! each time, when that stops and starts working.

use std::time::Duration;

use zhub_client::ClientOptions;

/// How often the broker is asked.
const CHECK: Duration = Duration::from_secs(1);

/// Starts the watch on a thread of its own, for the rest of the process. `timeout` bounds the
/// watch's connection to the broker and each check's answer; a check comes every [`CHECK`].
pub(crate) fn spawn(url: &str, timeout: Duration) {
    let url = url.to_owned();
    let spawned = std::thread::Builder::new()
        .name("zhub-watch".into())
        .spawn(move || {
            // Connected here rather than before the thread starts, and again until it works:
            // a slow first answer must not leave the command without its watch.
            let mut client = None;
            let mut up = true;
            loop {
                let answer = match client.as_mut() {
                    None => match crate::creds::client(ClientOptions::new().timeout(timeout))
                        .connect(&url)
                    {
                        Ok(connected) => {
                            client = Some(connected);
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    },
                    Some(c) => c
                        .request::<_, zhub_protocol::builtin::BrokerInfo>(
                            zhub_protocol::builtin::INFO_SERVICE,
                            &(),
                        )
                        .map(drop)
                        .map_err(|e| e.to_string()),
                };
                match answer {
                    Ok(()) if !up => {
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
                std::thread::sleep(CHECK);
            }
        });
    // Without the watch the command still works; say nothing.
    drop(spawned);
}
