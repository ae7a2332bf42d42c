//! Durable topics: bus messages on chosen topic prefixes, journaled into event log streams.
//!
//! The routes live in a [`JournalTable`] shared by two threads. The storage thread changes
//! them (from the config at start, and from `zhub.log` requests) and keeps them in
//! `log/.journals` so that runtime routes survive a restart. The bus thread holds a
//! [`JournalTap`]: for every message it forwards, it checks one atomic generation number
//! (reloading its copy of the routes when it moved) and sends a copy of each matching frame
//! to the storage thread, which appends it, the whole frame as the value and the topic as the
//! key, under the stream's durability policy.
//!
//! The tap blocks when the storage thread's queue is full, pushing back on publishers rather
//! than leaving holes in a journal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use zhub_protocol::bus;
use zhub_protocol::log::JournalRoute;

/// Endpoint from the bus thread's tap to the storage thread.
pub(crate) const ENDPOINT: &str = "inproc://journal";
/// Frames queued between the tap and the storage thread, to ride out an fsync.
pub(crate) const QUEUE: i32 = 100_000;
/// File of the runtime routes, in the event log's directory.
const FILE: &str = ".journals";

/// The journal routes, shared by the storage thread (writer) and the bus thread (reader).
#[derive(Debug, Default)]
pub(crate) struct JournalTable {
    routes: Mutex<Vec<JournalRoute>>,
    generation: AtomicU64,
}

impl JournalTable {
    pub(crate) fn routes(&self) -> Vec<JournalRoute> {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the routes and tells the tap.
    pub(crate) fn set(&self, mut routes: Vec<JournalRoute>) {
        routes.sort();
        routes.dedup();
        *self.routes.lock().unwrap_or_else(PoisonError::into_inner) = routes;
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Checks a route's prefix: a topic prefix by the protocol's rule, not empty, not reserved.
///
/// An empty prefix would journal every topic, zhub's own `$` topics (group traffic, KV
/// changes, probes) included, into one stream: refused, as is any `$` prefix.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("an empty prefix would journal every topic: name one".to_owned());
    }
    if bus::is_reserved(prefix) {
        return Err(format!(
            "prefix {prefix:?}: topics starting with '$' are reserved"
        ));
    }
    zhub_protocol::names::check_prefix(prefix).map_err(|e| e.to_string())
}

/// Reads the runtime routes: one `STREAM PREFIX` per line. Missing file: none.
pub(crate) fn load(log_dir: &Path) -> std::io::Result<Vec<JournalRoute>> {
    let text = match std::fs::read_to_string(log_dir.join(FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (stream, prefix) = line.split_once(' ')?;
            Some(JournalRoute {
                prefix: prefix.to_owned(),
                stream: stream.to_owned(),
            })
        })
        .collect())
}

/// Writes the runtime routes atomically (temporary file, sync, rename, sync the directory).
pub(crate) fn save(log_dir: &Path, routes: &[JournalRoute]) -> std::io::Result<()> {
    let text: String = routes
        .iter()
        .map(|r| format!("{} {}\n", r.stream, r.prefix))
        .collect();
    let tmp: PathBuf = log_dir.join(".journals.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, log_dir.join(FILE))?;
    std::fs::File::open(log_dir)?.sync_all()
}

/// The bus thread's side: copies matching frames to the storage thread.
pub(crate) struct JournalTap {
    table: Arc<JournalTable>,
    seen: u64,
    routes: Vec<JournalRoute>,
    socket: zmq::Socket,
}

impl JournalTap {
    pub(crate) fn new(table: Arc<JournalTable>, socket: zmq::Socket) -> Self {
        JournalTap {
            table,
            // Differs from any generation, so the first message loads the routes.
            seen: u64::MAX,
            routes: Vec::new(),
            socket,
        }
    }

    /// Sends a copy of `frame` (a well-formed bus frame whose topic is its first `topic_len`
    /// bytes) for every route whose filter, a prefix or a subject pattern, matches the topic.
    pub(crate) fn tap(&mut self, frame: &[u8], topic_len: usize) -> Result<(), zmq::Error> {
        let generation = self.table.generation.load(Ordering::Acquire);
        if generation != self.seen {
            self.seen = generation;
            self.routes = self.table.routes();
        }
        if self.routes.is_empty() || frame.first() == Some(&b'$') {
            return Ok(());
        }
        let topic = &frame[..topic_len.min(frame.len())];
        for route in &self.routes {
            if zhub_protocol::subject::matches(route.prefix.as_bytes(), topic) {
                self.socket
                    .send_multipart([route.stream.as_bytes(), frame], 0)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let routes = vec![
            JournalRoute {
                prefix: "orders. with space".into(),
                stream: "orders".into(),
            },
            JournalRoute {
                prefix: "a".into(),
                stream: "everything".into(),
            },
        ];
        save(dir.path(), &routes).unwrap();
        assert_eq!(load(dir.path()).unwrap(), routes);
    }

    #[test]
    fn reserved_and_odd_prefixes_are_refused() {
        assert!(check_prefix("orders.").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("$zhub.").is_err());
        assert!(check_prefix("a\nb").is_err());
    }
}
