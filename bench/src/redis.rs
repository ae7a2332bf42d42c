//! The Redis peer of `zhub bench kv` and `zhub bench log` (`--peer redis`): a `redis-server`
//! of the bench's own on a Unix socket in its scratch directory (zhub's brokers are on ipc
//! there too), with persistence matching a zhub fsync policy, driven by `redis-benchmark`
//! with the same client counts and pipeline depths as the zhub case beside it.
//!
//! Neither program is needed by anything else: without them the bench says so and runs the
//! zhub cases alone (`apt-get install redis-server` brings both).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The peers a bench can run beside zhub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// `redis-server`, driven by `redis-benchmark`.
    Redis,
}

/// How a Redis server keeps what it is given, matching a zhub fsync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// No snapshots and no append-only file: zhub's `never`.
    None,
    /// `appendonly yes`, `appendfsync always`: zhub's `always`.
    Always,
}

/// What `redis-benchmark` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `SET` of 100-byte values over 10,000 keys.
    Set,
    /// `GET` over the same 10,000 keys.
    Get,
    /// `XADD` of one 100-byte field to one stream.
    Xadd,
}

/// Why the peer cannot run, or `None` when both programs answer.
pub(crate) fn missing() -> Option<String> {
    for program in ["redis-server", "redis-benchmark"] {
        let answered = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !answered {
            return Some(format!(
                "{program} not found: the Redis cases are skipped (apt-get install redis-server)"
            ));
        }
    }
    None
}

/// Two servers in `dir`, without persistence and with `appendfsync always`, as a bench's
/// `never` and `always` peers; `None` (said on stderr) when Redis is not installed.
pub(crate) fn pair(dir: &Path) -> anyhow::Result<Option<(Redis, Redis)>> {
    if let Some(why) = missing() {
        eprintln!("{why}");
        return Ok(None);
    }
    let none_dir = dir.join("redis-none");
    let always_dir = dir.join("redis-always");
    std::fs::create_dir_all(&none_dir)?;
    std::fs::create_dir_all(&always_dir)?;
    Ok(Some((
        Redis::start(&none_dir, Persistence::None)?,
        Redis::start(&always_dir, Persistence::Always)?,
    )))
}

/// A `redis-server` child, stopped when dropped.
pub(crate) struct Redis {
    child: Child,
    socket: PathBuf,
}

impl Redis {
    /// Starts a server with `persistence`, its socket and files in `dir`, and waits until it
    /// answers `PING`.
    pub(crate) fn start(dir: &Path, persistence: Persistence) -> anyhow::Result<Redis> {
        let socket = dir.join("redis.sock");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--save", "", "--daemonize", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match persistence {
            Persistence::None => command.args(["--appendonly", "no"]),
            Persistence::Always => command.args(["--appendonly", "yes", "--appendfsync", "always"]),
        };
        let child = command.spawn().context("cannot start redis-server")?;
        let redis = Redis { child, socket };
        redis.wait_ready(Duration::from_secs(10))?;
        Ok(redis)
    }

    fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(mut stream) = UnixStream::connect(&self.socket) {
                stream.set_read_timeout(Some(Duration::from_secs(1)))?;
                stream.write_all(b"PING\r\n")?;
                let mut answer = [0u8; 7];
                if stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n" {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "redis-server did not answer on {} in time",
                    self.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `requests` of `workload` from `clients` connections with `pipeline` requests in
    /// flight on each; returns requests per second as `redis-benchmark` measured them.
    pub(crate) fn bench(
        &self,
        workload: Workload,
        clients: usize,
        pipeline: usize,
        requests: u64,
    ) -> anyhow::Result<f64> {
        let mut command = Command::new("redis-benchmark");
        command
            .arg("-s")
            .arg(&self.socket)
            .args(["-c", &clients.to_string(), "-P", &pipeline.to_string()])
            .args(["-n", &requests.to_string(), "--csv"]);
        let value = "v".repeat(100);
        match workload {
            Workload::Set => command.args(["-t", "set", "-d", "100", "-r", "10000"]),
            Workload::Get => command.args(["-t", "get", "-d", "100", "-r", "10000"]),
            Workload::Xadd => command.args(["XADD", "bench.stream", "*", "v", &value]),
        };
        let output = command.output().context("cannot run redis-benchmark")?;
        if !output.status.success() {
            bail!(
                "redis-benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        parse_rps(&String::from_utf8_lossy(&output.stdout))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The requests per second of the last result line of `redis-benchmark --csv`:
/// `"TEST","rps","avg_latency_ms",...`.
fn parse_rps(csv: &str) -> anyhow::Result<f64> {
    let line = csv
        .lines()
        .rfind(|l| !l.starts_with("\"test\"") && l.starts_with('"'))
        .context("redis-benchmark printed no result")?;
    // The test's name may hold commas (a custom command's arguments): read from the end of
    // its quoted field.
    let after_name = line[1..]
        .find("\",\"")
        .map(|at| &line[at + 4..])
        .context("redis-benchmark result without a rate")?;
    let rate = after_name.split('"').next().unwrap_or_default();
    rate.parse()
        .with_context(|| format!("redis-benchmark rate {rate:?} is not a number"))
}

/// How many requests to give `redis-benchmark` so that it runs about `seconds` at `rate`
/// (the zhub figure of the same case), within sane bounds.
pub(crate) fn requests_for(rate: f64, seconds: f64, clients: usize, pipeline: usize) -> u64 {
    let least = (clients * pipeline * 20) as f64;
    (rate * seconds).clamp(least.max(2_000.0), 5_000_000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_from_the_csv_whatever_the_test_name() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\"\n\"SET\",\"391389.44\",\"1.770\"\n";
        assert_eq!(parse_rps(csv).unwrap(), 391_389.44);
        let custom = "\"test\",\"rps\"\n\"XADD s * v a,b\",\"37807.18\",\"1.170\"\n";
        assert_eq!(parse_rps(custom).unwrap(), 37_807.18);
        assert!(parse_rps("\"test\",\"rps\"\n").is_err());
        assert!(parse_rps("\"SET\",\"fast\"\n").is_err());
    }

    #[test]
    fn runs_are_sized_to_the_zhub_case() {
        assert_eq!(requests_for(100_000.0, 2.0, 50, 16), 200_000);
        assert_eq!(requests_for(10.0, 2.0, 50, 16), 16_000);
        assert_eq!(requests_for(1e9, 2.0, 1, 1), 5_000_000);
    }
}
