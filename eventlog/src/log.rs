//! [`EventLog`]: the directory of named streams.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::StreamConfig;
use crate::error::{EventLogError, Result};
use crate::stream::{check_name, Stream, StreamInfo, CONFIG_FILE};

/// A directory of named streams, each in a subdirectory of its own.
#[derive(Debug)]
pub struct EventLog {
    root: PathBuf,
    streams: BTreeMap<String, Stream>,
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
        Ok(EventLog { root, streams })
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
        Ok(self.streams.entry(name.to_owned()).or_insert(stream))
    }

    /// The stream called `name`.
    pub fn stream(&mut self, name: &str) -> Option<&mut Stream> {
        self.streams.get_mut(name)
    }

    /// The stream called `name`, or [`EventLogError::NoSuchStream`].
    ///
    /// # Errors
    /// [`EventLogError::NoSuchStream`].
    pub fn get(&mut self, name: &str) -> Result<&mut Stream> {
        self.streams
            .get_mut(name)
            .ok_or_else(|| EventLogError::NoSuchStream(name.to_owned()))
    }

    /// Every stream, by name.
    pub fn list(&self) -> Vec<StreamInfo> {
        self.streams.values().map(Stream::info).collect()
    }

    /// Every stream, to sync or apply retention to.
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
        stream.delete()
    }
}
