//! [`EventLog`]: the directory of named streams.
//!
//! Streams hold file descriptors only while they are used: the log keeps the streams it
//! handed out most recently open (at most [`EventLog::max_open_streams`], each holding at
//! most two descriptors: its active segment, and a sealed one during a read) and closes the
//! least recently used one's files when one more is needed. A closed stream costs no
//! descriptor, so the number of streams is bounded by disk and memory, not by the
//! process's file limit.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::config::StreamConfig;
use crate::error::{EventLogError, Result};
use crate::stream::{check_name, Stream, StreamInfo, CONFIG_FILE};

/// Streams kept open by default: at two descriptors each, a quarter of a common limit of
/// 1024.
pub const DEFAULT_MAX_OPEN_STREAMS: usize = 128;

/// A directory of named streams, each in a subdirectory of its own.
#[derive(Debug)]
pub struct EventLog {
    root: PathBuf,
    streams: BTreeMap<String, Stream>,
    /// Streams that may hold files, by when they were last handed out (`Stream::last_used`).
    open: BTreeSet<(u64, String)>,
    /// The clock of `open`.
    uses: u64,
    max_open: usize,
}

impl EventLog {
    /// Opens (creating if needed) the log at `root` and every stream in it, recovering each.
    ///
    /// # Errors
    /// An I/O error, or a stream that cannot be opened (named in the error).
    pub fn open(root: impl AsRef<Path>) -> Result<EventLog> {
        let root = root.as_ref().to_owned();
        std::fs::create_dir_all(&root).map_err(EventLogError::io(&root))?;
        let mut streams = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(EventLogError::io(&root))? {
            let entry = entry.map_err(EventLogError::io(&root))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !path.join(CONFIG_FILE).is_file() || check_name(&name).is_err() {
                continue;
            }
            streams.insert(name.clone(), Stream::open(&path, &name)?);
        }
        Ok(EventLog {
            root,
            streams,
            open: BTreeSet::new(),
            uses: 0,
            max_open: DEFAULT_MAX_OPEN_STREAMS,
        })
    }

    /// How many streams may hold open files at once.
    pub fn max_open_streams(&self) -> usize {
        self.max_open
    }

    /// Sets how many streams may hold open files at once (at least one; each holds at most
    /// two descriptors), closing the least recently used ones' files beyond it.
    pub fn set_max_open_streams(&mut self, streams: usize) {
        self.max_open = streams.max(1);
        self.close_beyond_limit();
    }

    /// Notes that `name` is used now, and closes the files of the least recently used
    /// streams beyond the limit.
    fn touch(&mut self, name: &str) {
        let Some(stream) = self.streams.get_mut(name) else {
            return;
        };
        self.uses += 1;
        if stream.last_used != 0 {
            self.open.remove(&(stream.last_used, name.to_owned()));
        }
        stream.last_used = self.uses;
        self.open.insert((self.uses, name.to_owned()));
        self.close_beyond_limit();
    }

    fn close_beyond_limit(&mut self) {
        while self.open.len() > self.max_open {
            let Some((_, name)) = self.open.pop_first() else {
                return;
            };
            if let Some(stream) = self.streams.get_mut(&name) {
                stream.release();
                stream.last_used = 0;
            }
        }
    }

    /// Creates a stream.
    ///
    /// # Errors
    /// [`EventLogError::InvalidName`], [`EventLogError::StreamExists`], or an I/O error.
    pub fn create_stream(&mut self, name: &str, config: StreamConfig) -> Result<&mut Stream> {
        check_name(name)?;
        if self.streams.contains_key(name) {
            return Err(EventLogError::StreamExists(name.to_owned()));
        }
        let stream = Stream::create(&self.root.join(name), name, config)?;
        self.streams.insert(name.to_owned(), stream);
        self.get(name)
    }

    /// How many streams the log holds.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether the log holds no stream.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The stream called `name`.
    pub fn stream(&mut self, name: &str) -> Option<&mut Stream> {
        self.touch(name);
        self.streams.get_mut(name)
    }

    /// The stream called `name`, or [`EventLogError::NoSuchStream`].
    ///
    /// # Errors
    /// [`EventLogError::NoSuchStream`].
    pub fn get(&mut self, name: &str) -> Result<&mut Stream> {
        self.touch(name);
        self.streams
            .get_mut(name)
            .ok_or_else(|| EventLogError::NoSuchStream(name.to_owned()))
    }

    /// Every stream, by name.
    pub fn list(&self) -> Vec<StreamInfo> {
        self.streams.values().map(Stream::info).collect()
    }

    /// Every stream, to sync or apply retention to. This opens no file for a stream at rest
    /// (it has nothing to sync), so it leaves the set of open streams as it is.
    pub fn streams_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.streams.values_mut()
    }

    /// Deletes a stream and its files.
    ///
    /// # Errors
    /// [`EventLogError::NoSuchStream`], or an I/O error.
    pub fn delete_stream(&mut self, name: &str) -> Result<()> {
        let stream = self
            .streams
            .remove(name)
            .ok_or_else(|| EventLogError::NoSuchStream(name.to_owned()))?;
        self.open.remove(&(stream.last_used, name.to_owned()));
        stream.delete()
    }
}
