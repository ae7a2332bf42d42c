//! A full disk under a real broker: on a small tmpfs (mounted by the test; skipped with a
//! message where it cannot be, e.g. when not root), the event log and the key-value store
//! are written until the broker answers that the disk is full; the broker stays up, synced
//! data stays readable, and once space is freed writes are acknowledged again. Every
//! acknowledged write is then there, at its offset or revision, with no offset reused,
//! before and after a restart.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::deadline;
use zhub_broker::{Broker, Config};
use zhub_client::{Client, ClientOptions, RequestError, RequestErrorKind, StreamSettings};

const LIMIT: Duration = Duration::from_secs(120);
/// The size of each write: as in the report of the defect.
const VALUE: usize = 32 << 10;
/// Most writes tried before the disk must have filled.
const MAX_WRITES: u32 = 2000;

/// A tmpfs mounted on a temporary directory, unmounted when dropped (a failing test too).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a broker that a failed assertion left running still holds files in it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn value(tag: u8, i: u32) -> Vec<u8> {
    let mut v = vec![tag; VALUE];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v
}

fn fill(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0xEEu8; bytes]).expect("filler written while there is room");
}

fn client(url: &str) -> Client {
    ClientOptions::new()
        .timeout(Duration::from_secs(10))
        .connect(url)
        .expect("client connects")
}

fn start(data: &Path) -> Broker {
    Broker::start(&Config::local_tcp(data)).expect("broker starts")
}

/// The answer to a write on a full disk: a clear 500 that says why.
fn assert_disk_full(e: &RequestError) {
    assert_eq!(e.kind(), RequestErrorKind::Internal, "{e}");
    assert!(e.to_string().contains("No space left"), "{e}");
}

/// What the test was told was stored.
#[derive(Default)]
struct Acked {
    /// Stream offset to value.
    log: BTreeMap<u64, Vec<u8>>,
    /// Key to (revision, value).
    kv: BTreeMap<String, (u64, Vec<u8>)>,
    /// Every KV revision acknowledged, to check none is reused.
    revisions: Vec<u64>,
}

impl Acked {
    fn append(&mut self, c: &mut Client, tag: u8, i: u32) -> Result<u64, RequestError> {
        let v = value(tag, i);
        let offset = c.log().append_bytes("s", None, &v)?;
        assert!(
            self.log.keys().all(|&o| o < offset),
            "offset {offset} given out again"
        );
        self.log.insert(offset, v);
        Ok(offset)
    }

    fn put(&mut self, c: &mut Client, tag: u8, i: u32) -> Result<u64, RequestError> {
        let key = format!("k{}", i % 50);
        let v = value(tag, i);
        let revision = c.kv().put_bytes(&key, &v, None)?;
        assert!(
            self.revisions.iter().all(|&r| r < revision),
            "revision {revision} given out again"
        );
        self.revisions.push(revision);
        self.kv.insert(key, (revision, v));
        Ok(revision)
    }

    /// Every acknowledged write reads back, at its offset or revision, and nothing else
    /// is in the stream.
    fn check(&self, c: &mut Client) {
        let records: Vec<_> = c
            .log()
            .read("s", 0)
            .collect::<Result<_, _>>()
            .expect("the whole stream reads back");
        let stored: BTreeMap<u64, Vec<u8>> =
            records.into_iter().map(|r| (r.offset, r.value)).collect();
        assert_eq!(stored.len(), self.log.len(), "records in the stream");
        for (offset, v) in &self.log {
            assert!(
                stored.get(offset) == Some(v),
                "offset {offset} lost or changed"
            );
        }
        let mut kv = c.kv();
        for (key, (revision, v)) in &self.kv {
            let entry = kv.get_entry(key).expect("get").expect("key present");
            assert_eq!((entry.revision, &entry.value), (*revision, v), "key {key}");
        }
    }
}

#[test]
fn acknowledged_writes_survive_a_full_disk_and_a_restart() {
    let fs = match Tmpfs::mount("20m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "skipped: cannot mount a small tmpfs ({why}); run as root to test a full disk"
            );
            return;
        }
    };
    let root = fs.path().to_owned();
    deadline(LIMIT, move || run(&root));
    drop(fs);
}

fn run(root: &Path) {
    // Room to free later, on the same filesystem as the data.
    let fillers: Vec<PathBuf> = (0..2).map(|i| root.join(format!("filler{i}"))).collect();
    for f in &fillers {
        fill(f, 4 << 20);
    }
    let data = root.join("data");
    let broker = start(&data);
    let mut c = client(&broker.info().main);
    c.log().create("s", StreamSettings::default()).unwrap();
    let mut acked = Acked::default();
    for i in 0..10 {
        acked.put(&mut c, b'k', i).unwrap();
    }

    // The log fills the disk.
    let mut i = 0;
    let full = loop {
        assert!(i < MAX_WRITES, "the disk never filled");
        match acked.append(&mut c, b'a', i) {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert_disk_full(&full);
    assert!(acked.log.len() > 100, "{} appends", acked.log.len());
    // The broker answers, synced data reads back, and writes keep failing cleanly.
    acked.check(&mut c);
    assert_disk_full(&acked.append(&mut c, b'a', i).unwrap_err());
    assert_disk_full(&acked.put(&mut c, b'k', 10).unwrap_err());
    acked.check(&mut c);

    // Room for the key-value store, which fills it again.
    std::fs::remove_file(&fillers[0]).unwrap();
    let mut j = 10;
    let full = loop {
        assert!(j < MAX_WRITES, "the disk never filled again");
        match acked.put(&mut c, b'k', j) {
            Ok(_) => j += 1,
            Err(e) => break e,
        }
    };
    assert_disk_full(&full);
    assert!(j > 20, "{j} puts");
    acked.check(&mut c);
    assert_disk_full(&acked.append(&mut c, b'a', i).unwrap_err());

    // Room again: both take writes, without a restart.
    std::fs::remove_file(&fillers[1]).unwrap();
    for n in 0..2 {
        acked.append(&mut c, b'b', i + n).unwrap();
    }
    for n in 0..5 {
        acked.put(&mut c, b'm', j + n).unwrap();
    }
    acked.check(&mut c);
    drop(c);
    broker.shutdown();

    // After a restart on the same data, everything acknowledged is there and new writes
    // follow on.
    let broker = start(&data);
    let mut c = client(&broker.info().main);
    acked.check(&mut c);
    acked.append(&mut c, b'c', 0).unwrap();
    acked.put(&mut c, b'n', 0).unwrap();
    acked.check(&mut c);
    drop(c);
    broker.shutdown();
}
