//! Consumer groups' committed positions, kept durably in an event log of their own.
//!
//! Each commit is one record in the stream `offsets` under `consumers/`: the key is
//! `STREAM NUL GROUP`, the value the next offset the group will read (8 bytes, big-endian), or
//! empty when the group is forgotten (its stream was deleted). Opening folds the records, the
//! last one per key winning. The stream always syncs before a commit is acknowledged, in the
//! storage thread's group commit. When the log grows past [`COMPACT_SEGMENTS`] segments, the
//! live positions are written again at its end and the older segments dropped, so its size
//! stays proportional to the number of groups.

use std::collections::BTreeMap;
use std::path::Path;

use zhub_eventlog::{EventLog, Fsync, Result, Stream, StreamConfig};
use zhub_protocol::names;

const STREAM: &str = "offsets";
/// Segment size of the positions log: small, as it holds little live data.
const SEGMENT_BYTES: u64 = 1 << 20;
/// Segments held before compaction.
const COMPACT_SEGMENTS: usize = 4;

/// The committed positions of every consumer group.
pub(crate) struct Consumers {
    log: EventLog,
    positions: BTreeMap<(String, String), u64>,
}

fn key(stream: &str, group: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 1 + group.len());
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(group.as_bytes());
    key
}

/// Checks a consumer group name by the protocol's rule ([`names::check_consumer`]).
pub(crate) fn check_group(group: &str) -> std::result::Result<(), String> {
    names::check_consumer(group).map_err(|e| e.to_string())
}

impl Consumers {
    /// Opens (or creates) the positions log in `dir` and folds it.
    pub(crate) fn open(dir: &Path) -> Result<Consumers> {
        let mut log = EventLog::open(dir)?;
        if log.stream(STREAM).is_none() {
            let config = StreamConfig {
                segment_bytes: SEGMENT_BYTES,
                fsync: Fsync::Always,
                ..StreamConfig::default()
            };
            log.create_stream(STREAM, config)?;
        }
        let stream = log.get(STREAM)?;
        let mut positions = BTreeMap::new();
        let mut reader = stream.reader(stream.first_offset(), 1 << 20);
        loop {
            let batch = reader.next_batch(stream)?;
            if batch.is_empty() {
                break;
            }
            for record in batch {
                let Some(key) = record.key else { continue };
                let Some((stream, group)) = std::str::from_utf8(&key)
                    .ok()
                    .and_then(|k| k.split_once('\0'))
                else {
                    continue;
                };
                let id = (stream.to_owned(), group.to_owned());
                match <[u8; 8]>::try_from(record.value.as_slice()) {
                    Ok(bytes) => {
                        positions.insert(id, u64::from_be_bytes(bytes));
                    }
                    Err(_) => {
                        positions.remove(&id);
                    }
                }
            }
        }
        Ok(Consumers { log, positions })
    }

    fn stream(&mut self) -> Result<&mut Stream> {
        self.log.get(STREAM)
    }

    /// The group's committed position.
    pub(crate) fn position(&self, stream: &str, group: &str) -> Option<u64> {
        self.positions
            .get(&(stream.to_owned(), group.to_owned()))
            .copied()
    }

    /// Records a commit (buffered: [`Consumers::sync`] makes it durable).
    pub(crate) fn commit(&mut self, stream: &str, group: &str, offset: u64) -> Result<()> {
        self.stream()?
            .append(None, Some(&key(stream, group)), &offset.to_be_bytes())?;
        self.positions
            .insert((stream.to_owned(), group.to_owned()), offset);
        Ok(())
    }

    /// Forgets every group of a deleted stream.
    pub(crate) fn forget_stream(&mut self, stream: &str) -> Result<()> {
        let groups: Vec<String> = self
            .positions
            .keys()
            .filter(|(s, _)| s == stream)
            .map(|(_, g)| g.clone())
            .collect();
        for group in groups {
            self.stream()?
                .append(None, Some(&key(stream, &group)), &[])?;
            self.positions.remove(&(stream.to_owned(), group));
        }
        Ok(())
    }

    /// Makes the commits durable, then compacts the log when it has grown.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.stream()?.sync()?;
        if self.stream()?.info().segments > COMPACT_SEGMENTS {
            self.compact()?;
        }
        Ok(())
    }

    /// Writes every live position at the end of the log, syncs, then drops the segments
    /// before them. A crash in between leaves both copies, which fold to the same state.
    fn compact(&mut self) -> Result<()> {
        let live: Vec<(Vec<u8>, u64)> = self
            .positions
            .iter()
            .map(|((s, g), &o)| (key(s, g), o))
            .collect();
        let stream = self.log.get(STREAM)?;
        let start = stream.next_offset();
        for (key, offset) in &live {
            stream.append(None, Some(key), &offset.to_be_bytes())?;
        }
        stream.sync()?;
        stream.drop_segments_before(start)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut c = Consumers::open(dir.path()).unwrap();
            assert_eq!(c.position("orders", "billing"), None);
            c.commit("orders", "billing", 5).unwrap();
            c.commit("orders", "audit", 1).unwrap();
            c.commit("gone", "g", 9).unwrap();
            c.sync().unwrap();
            c.forget_stream("gone").unwrap();
            // Enough commits to roll past the compaction threshold several times.
            for i in 0..200_000u64 {
                c.commit("orders", "billing", i).unwrap();
                if i % 10_000 == 0 {
                    c.sync().unwrap();
                }
            }
            c.sync().unwrap();
            let segments = c.log.get(STREAM).unwrap().info().segments;
            assert!(segments <= COMPACT_SEGMENTS + 1, "{segments} segments");
        }
        let c = Consumers::open(dir.path()).unwrap();
        assert_eq!(c.position("orders", "billing"), Some(199_999));
        assert_eq!(c.position("orders", "audit"), Some(1));
        assert_eq!(c.position("gone", "g"), None);
    }

    #[test]
    fn group_names_are_checked() {
        assert!(check_group("billing-v2").is_ok());
        assert!(check_group("").is_err());
        assert!(check_group("a\nb").is_err());
        assert!(check_group(&"x".repeat(201)).is_err());
    }
}
