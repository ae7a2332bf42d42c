//! `zhub pub` and `zhub sub`.

use std::time::Duration;

use anyhow::Context;

use crate::render;

/// Arguments of `zhub pub`.
#[derive(Debug, clap::Args)]
pub(crate) struct PubArgs {
    /// Topic to publish on.
    topic: String,
    /// The message: a string, or JSON with --json, or bytes with --raw. Without it, each
    /// line read from standard input is published as one message.
    message: Option<String>,
    /// Parse MESSAGE as JSON and publish it as a MessagePack value.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Publish MESSAGE's bytes as they are.
    #[arg(long)]
    raw: bool,
}

/// Arguments of `zhub sub`.
#[derive(Debug, clap::Args)]
pub(crate) struct SubArgs {
    /// Topic filters: prefixes ("orders." ; "" for every topic) or subject patterns, with
    /// `*` for one token and `>` for the rest ("orders.*.new", "orders.>").
    #[arg(required = true, value_name = "FILTER")]
    prefixes: Vec<String>,
    /// Join this queue group: each message goes to one member of the group rather than to
    /// every member, so several `zhub sub --queue` processes share the load.
    #[arg(long, value_name = "GROUP")]
    queue: Option<String>,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// One JSON object per line: topic, header, body.
    #[arg(long)]
    json: bool,
}

pub(crate) fn publish(url: &str, timeout: Duration, args: &PubArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    match &args.message {
        Some(message) => publish_one(&mut client, args, message),
        None => {
            for (n, line) in std::io::stdin().lines().enumerate() {
                let line = line.context("cannot read standard input")?;
                publish_one(&mut client, args, &line)
                    .with_context(|| format!("line {} of standard input", n + 1))?;
            }
            Ok(())
        }
    }
}

fn publish_one(
    client: &mut zhub_client::Client,
    args: &PubArgs,
    message: &str,
) -> anyhow::Result<()> {
    if args.raw {
        client.publish_bytes(&args.topic, message.as_bytes())?;
    } else if args.json {
        let value: serde_json::Value =
            serde_json::from_str(message).context("MESSAGE is not valid JSON")?;
        client.publish(&args.topic, &value)?;
    } else {
        client.publish(&args.topic, &message)?;
    }
    Ok(())
}

pub(crate) fn subscribe(url: &str, timeout: Duration, args: &SubArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let prefixes: Vec<&str> = args.prefixes.iter().map(String::as_str).collect();
    crate::watch::spawn(url, timeout);
    let mut subscriber = match &args.queue {
        Some(group) => client.queue_subscribe(group, &prefixes)?,
        None => client.subscribe(&prefixes)?,
    };
    let mut seen = 0u64;
    let mut told = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        // A bounded wait, so that drops the broker reports without a message (a notice) are
        // said soon too, not only when the next message comes.
        let message = subscriber.recv_timeout(Duration::from_millis(500))?;
        let missed = subscriber.missed();
        if missed > told {
            let n = missed - told;
            let noun = if n == 1 { "message" } else { "messages" };
            eprintln!("zhub: missed {n} {noun} (the broker's queue for this subscriber was full)");
            told = missed;
        }
        let Some(message) = message else {
            continue;
        };
        let line = if args.json {
            render::json_line(&message)
        } else {
            render::text_line(&message)
        };
        if !render::print_line(&line) {
            return Ok(());
        }
        seen += 1;
    }
    Ok(())
}
