//! `zhub kv`: get, put, del, cas, incr, list, history, watch.
//!
//! Values are stored as MessagePack strings by default (`--format json` or `raw` otherwise)
//! and printed as text: strings unquoted, other values as JSON. A key that is absent is
//! "not found" on stderr with exit status 1.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use zhub_client::{CasOutcome, ChangeKind, KvChange, KvEntry};

use crate::render::{self, BodyFormat};

/// `zhub kv` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KvCommand {
    /// Print a key's value (exit 1 with "not found" when absent).
    Get {
        /// The key.
        key: String,
        /// One JSON object: key, value, revision, expires_at_us.
        #[arg(long)]
        json: bool,
    },
    /// Set a key and print the change's revision.
    Put {
        /// The key.
        key: String,
        /// The value (stored as --format says).
        value: String,
        /// Expire the key after this long (e.g. 10s, 5m).
        #[arg(long, value_parser = crate::parse_duration)]
        ttl: Option<Duration>,
        /// How to store VALUE: string (MessagePack string), json (parsed, stored as a
        /// MessagePack value) or raw (its bytes as they are).
        #[arg(long, value_enum, default_value = "string")]
        format: BodyFormat,
        /// Print {"revision": N}.
        #[arg(long)]
        json: bool,
    },
    /// Delete a key and print the change's revision (exit 1 with "not found" when absent).
    Del {
        /// The key.
        key: String,
    },
    /// Set a key only if its revision is --expect (or, with --absent, only if it does not
    /// exist); print the new revision, or exit 1 with the current one.
    Cas {
        /// The key.
        key: String,
        /// The value (stored as --format says).
        value: String,
        /// The revision the key must have.
        #[arg(long, required_unless_present = "absent", conflicts_with = "absent")]
        expect: Option<u64>,
        /// The key must not exist.
        #[arg(long)]
        absent: bool,
        /// How to store VALUE.
        #[arg(long, value_enum, default_value = "string")]
        format: BodyFormat,
    },
    /// Add DELTA (default 1) to a counter and print its new value.
    Incr {
        /// The key.
        key: String,
        /// The amount, possibly negative.
        #[arg(default_value_t = 1, allow_negative_numbers = true)]
        delta: i64,
    },
    /// List keys starting with PREFIX: one `KEY VALUE` line each.
    List {
        /// The prefix (all keys when empty).
        #[arg(default_value = "")]
        prefix: String,
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
    /// Print a key's last changes, newest first: `REVISION KIND VALUE`.
    History {
        /// The key.
        key: String,
        /// Most changes printed.
        #[arg(long, default_value_t = 16)]
        limit: u64,
        /// One JSON object per change.
        #[arg(long)]
        json: bool,
    },
    /// Print every change to keys starting with PREFIX as it happens: `REVISION KIND KEY
    /// VALUE`.
    Watch {
        /// The prefix (all keys when empty).
        #[arg(default_value = "")]
        prefix: String,
        /// Exit after this many changes.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per change.
        #[arg(long)]
        json: bool,
    },
}

fn entry_json(e: &KvEntry) -> serde_json::Value {
    json!({
        "key": e.key,
        "value": render::value_json(&e.value),
        "revision": e.revision,
        "expires_at_us": e.expires_at_us,
    })
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Put => "put",
        ChangeKind::Delete => "delete",
        ChangeKind::Expire => "expire",
    }
}

fn change_line(c: &KvChange, json: bool, with_key: bool) -> String {
    if json {
        return json!({
            "revision": c.revision,
            "kind": kind_name(c.kind),
            "key": c.key,
            "value": c.value.as_deref().map(render::value_json),
            "expires_at_us": c.expires_at_us,
            "timestamp_us": c.timestamp_us,
        })
        .to_string();
    }
    let mut line = format!("{} {}", c.revision, kind_name(c.kind));
    if with_key {
        line = format!("{line} {}", c.key);
    }
    if let Some(v) = &c.value {
        line = format!("{line} {}", render::reply_text(v));
    }
    line
}

pub(crate) fn run(url: &str, timeout: Duration, command: &KvCommand) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let mut kv = client.kv();
    match command {
        KvCommand::Get { key, json } => match kv.get_entry(key)? {
            Some(e) if *json => println!("{}", entry_json(&e)),
            Some(e) => println!("{}", render::reply_text(&e.value)),
            None => bail!("not found: {key}"),
        },
        KvCommand::Put {
            key,
            value,
            ttl,
            format,
            json,
        } => {
            let revision = kv.put_bytes(key, &format.encode(value).context("VALUE")?, *ttl)?;
            if *json {
                println!("{}", json!({ "revision": revision }));
            } else {
                println!("{revision}");
            }
        }
        KvCommand::Del { key } => match kv.delete(key)? {
            Some(revision) => println!("{revision}"),
            None => bail!("not found: {key}"),
        },
        KvCommand::Cas {
            key,
            value,
            expect,
            absent: _,
            format,
        } => {
            let bytes = format.encode(value).context("VALUE")?;
            match kv.cas_bytes(key, *expect, &bytes, None)? {
                CasOutcome::Stored(revision) => println!("{revision}"),
                CasOutcome::Mismatch { current: Some(r) } => {
                    bail!("revision mismatch: {key} is at revision {r}")
                }
                CasOutcome::Mismatch { current: None } => {
                    bail!("revision mismatch: {key} does not exist")
                }
            }
        }
        KvCommand::Incr { key, delta } => println!("{}", kv.incr(key, *delta)?.0),
        KvCommand::List { prefix, json } => {
            for e in kv.list_all(prefix)? {
                if *json {
                    println!("{}", entry_json(&e));
                } else {
                    println!("{} {}", e.key, render::reply_text(&e.value));
                }
            }
        }
        KvCommand::History { key, limit, json } => {
            for c in kv.history(key, *limit)? {
                println!("{}", change_line(&c, *json, false));
            }
        }
        KvCommand::Watch {
            prefix,
            count,
            json,
        } => {
            let mut watcher = kv.watch(prefix)?;
            let mut printed = 0;
            while count.is_none_or(|c| printed < c) {
                let change = watcher.recv()?;
                if !render::print_line(&change_line(&change, *json, true)) {
                    break;
                }
                printed += 1;
            }
        }
    }
    Ok(())
}
