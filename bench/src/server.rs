//! A bench's server child process, and the `bench-broker` helper it may run.
//!
//! A server is the bench's own executable run again with a [`crate::Helper`] command; it
//! says `ready` on stdout once its sockets are bound, and runs until the bench closes its
//! stdin or kills it, which dropping the [`Server`] does.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{anyhow, bail, Context};
use serde::Serialize;

/// The transport a bench's sockets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Tcp,
    Ipc,
}

/// Arguments of the hidden `zhub bench-broker`.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    #[arg(long)]
    listen: String,
    #[arg(long)]
    publish: String,
    #[arg(long)]
    subscribe: String,
    #[arg(long)]
    deliver: String,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value = "always")]
    kv_fsync: zhub_client::FsyncPolicy,
    /// The broker's HTTP endpoint (`/metrics`), off unless given.
    #[arg(long)]
    http: Option<String>,
    /// The broker's name among peers.
    #[arg(long)]
    name: Option<String>,
    /// The broker's zone.
    #[arg(long, default_value = zhub_broker::config::DEFAULT_ZONE)]
    zone: String,
    /// The broker's cluster endpoint, off unless given.
    #[arg(long)]
    cluster: Option<String>,
    /// Peers' cluster endpoints to link to.
    #[arg(long)]
    peer: Vec<String>,
}

/// Runs a broker until stdin closes (the bench process ends it by closing the pipe, or by
/// killing it after reading its peak memory).
pub(crate) fn serve_broker(args: &BrokerArgs) -> anyhow::Result<()> {
    let config = zhub_broker::Config {
        listen: args.listen.clone(),
        publish: args.publish.clone(),
        subscribe: args.subscribe.clone(),
        deliver: args.deliver.clone(),
        data_dir: args.data_dir.clone(),
        kv_fsync: args.kv_fsync,
        http: args.http.clone(),
        name: args.name.clone(),
        zone: args.zone.clone(),
        cluster: args.cluster.clone(),
        peer: args
            .peer
            .iter()
            .map(|endpoint| zhub_broker::config::PeerConfig {
                endpoint: endpoint.clone(),
            })
            .collect(),
        ..zhub_broker::Config::default()
    };
    let broker = zhub_broker::Broker::start(&config)?;
    println!("ready");
    std::io::stdout().flush()?;
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    broker.shutdown();
    Ok(())
}

/// A server child process, killed when dropped.
pub(crate) struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn spawn(args: &[String], dir: tempfile::TempDir) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("cannot find the zhub executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .env("RUST_LOG", "error")
            .spawn()
            .context("cannot start the server process")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("server process did not start: {line:?}");
        }
        Ok(Server { child, _dir: dir })
    }

    /// A zhub broker (`zhub bench-broker`) on `transport`, its sockets and data in `dir`,
    /// with `extra` flags; returns it with its main endpoint.
    pub(crate) fn broker(
        transport: Transport,
        dir: tempfile::TempDir,
        extra: &[&str],
    ) -> anyhow::Result<(Server, String)> {
        let [main, publish, subscribe, deliver] = endpoints(transport, dir.path())?;
        let data = dir.path().join("data").display().to_string();
        let mut args: Vec<String> = [
            "bench-broker",
            "--listen",
            &main,
            "--publish",
            &publish,
            "--subscribe",
            &subscribe,
            "--deliver",
            &deliver,
            "--data-dir",
            &data,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Ok((Server::spawn(&args, dir)?, main))
    }

    /// Peak resident memory of the server process (Linux), in bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident memory of the server process now (Linux), in bytes.
    pub(crate) fn rss(&self) -> Option<u64> {
        self.status_bytes("VmRSS:")
    }

    /// A `kB` field of `/proc/PID/status`, in bytes.
    fn status_bytes(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb = status.lines().find_map(|l| l.strip_prefix(field))?;
        kb.trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three endpoints on the given transport: main, publish side, subscribe side.
pub(crate) fn endpoints(
    transport: Transport,
    dir: &std::path::Path,
) -> anyhow::Result<[String; 4]> {
    Ok(match transport {
        Transport::Tcp => {
            // Ask the OS for free ports, holding every listener until all are chosen so that no
            // two are the same; they are closed before the server binds.
            let listeners = (0..4)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut eps = Vec::new();
            for l in &listeners {
                eps.push(format!("tcp://127.0.0.1:{}", l.local_addr()?.port()));
            }
            [
                eps[0].clone(),
                eps[1].clone(),
                eps[2].clone(),
                eps[3].clone(),
            ]
        }
        Transport::Ipc => {
            ["main", "pub", "sub", "deliver"].map(|n| format!("ipc://{}/{n}.sock", dir.display()))
        }
    })
}
