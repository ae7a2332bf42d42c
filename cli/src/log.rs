//! `zhub log`: streams, create, append, read, tail, replay, consumer groups, delete, and
//! durable topics' journal routes. Long reads and replays show a progress bar on stderr when stdout is a
//! terminal.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use zhub_client::{Client, FsyncPolicy, Message, ReadFrom, StoredRecord, StreamSettings};

use crate::render::{self, BodyFormat};

/// `zhub log` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum LogCommand {
    /// List the streams with their offsets, record counts and sizes.
    Streams {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Create a stream.
    Create {
        /// The stream's name (A-Z a-z 0-9 . _ -).
        stream: String,
        /// Durability: always (ack after fsync, the default), interval:MS, or never.
        #[arg(long, default_value = "always", value_parser = parse_fsync)]
        fsync: FsyncPolicy,
        /// Segment size in bytes.
        #[arg(long)]
        segment_bytes: Option<u64>,
        /// Drop old segments beyond this many bytes.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Drop segments whose records are older than this (e.g. 168h).
        #[arg(long, value_parser = crate::parse_duration)]
        retention: Option<Duration>,
    },
    /// Append one record and print its offset.
    Append {
        /// The stream.
        stream: String,
        /// The record's value (stored as --format says).
        body: String,
        /// How to store BODY: string (a MessagePack string), json (parsed, stored as a
        /// MessagePack value) or raw (its bytes as they are).
        #[arg(long, value_enum, default_value = "string")]
        format: BodyFormat,
        /// Print the offset as a JSON object: {"offset": N}.
        #[arg(long)]
        json: bool,
        /// A key for the record.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print records from an offset (or a time) to the current end.
    Read {
        /// The stream.
        stream: String,
        /// First offset to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Start at the first record at or after this time: RFC 3339
        /// (2026-12-02T02:00:00Z) or a duration ago ("10m ago").
        #[arg(long, value_name = "TIME", value_parser = crate::time::parse_time, conflicts_with = "from")]
        since: Option<i64>,
        /// As --since, in microseconds since the epoch (hidden; --since reads better).
        #[arg(long, hide = true, conflicts_with_all = ["from", "since"])]
        from_time_us: Option<i64>,
        /// Print at most this many records.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per record: offset, timestamp, key, body.
        #[arg(long)]
        json: bool,
    },
    /// Print records as they are appended (from the end, or --from), until interrupted.
    Tail {
        /// The stream.
        stream: String,
        /// First offset to print (default: the current end).
        #[arg(long)]
        from: Option<u64>,
        /// Exit after this many records.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// Replay a durable topic's journal: print its messages as `zhub sub` would (topic and
    /// body, or --json with the original header), or publish them on the bus again.
    Replay {
        /// The stream the topic is journaled into.
        stream: String,
        /// First offset to replay.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Start at the first message at or after this time: RFC 3339
        /// (2026-12-02T02:00:00Z) or a duration ago ("10m ago").
        #[arg(long, value_name = "TIME", value_parser = crate::time::parse_time, conflicts_with = "from")]
        since: Option<i64>,
        /// As --since, in microseconds since the epoch (hidden; --since reads better).
        #[arg(long, hide = true, conflicts_with_all = ["from", "since"])]
        from_time_us: Option<i64>,
        /// Replay at most this many messages (printing only).
        #[arg(long, conflicts_with = "republish")]
        count: Option<u64>,
        /// One JSON object per message: topic, header, body.
        #[arg(long, conflicts_with = "republish")]
        json: bool,
        /// Publish the messages on the bus again, as they were first published, and print
        /// how many.
        #[arg(long)]
        republish: bool,
    },
    /// Journal bus messages whose topic starts with PREFIX into STREAM (a durable topic),
    /// from now on and across broker restarts.
    Journal {
        /// Topic prefix.
        prefix: String,
        /// The stream (created with default settings when missing).
        stream: String,
    },
    /// Stop journaling PREFIX into STREAM.
    Unjournal {
        /// Topic prefix.
        prefix: String,
        /// The stream.
        stream: String,
    },
    /// List the journal routes: one `PREFIX STREAM` line each.
    Journals {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Read as a member of a consumer group: from the group's committed position (the
    /// stream's start for a new group), printing each record and committing as it goes, so
    /// the next consumer of the group goes on where this one stopped. Stops at the end of the
    /// stream unless --follow.
    Consume {
        /// The stream.
        stream: String,
        /// The consumer group.
        #[arg(long)]
        group: String,
        /// Exit after this many records.
        #[arg(long)]
        count: Option<u64>,
        /// At the end of the stream, wait for more records instead of exiting.
        #[arg(long)]
        follow: bool,
        /// One JSON object per record.
        #[arg(long)]
        json: bool,
    },
    /// Print a consumer group's committed position ("none" when it never committed).
    Position {
        /// The stream.
        stream: String,
        /// The consumer group.
        #[arg(long)]
        group: String,
    },
    /// Move a consumer group's committed position to OFFSET (to read again, or to skip).
    Seek {
        /// The stream.
        stream: String,
        /// The consumer group.
        #[arg(long)]
        group: String,
        /// The offset the group reads next.
        offset: u64,
    },
    /// Delete a stream and its data.
    Delete {
        /// The stream.
        stream: String,
    },
}

fn parse_fsync(text: &str) -> Result<FsyncPolicy, String> {
    text.parse()
}

/// The bus message a record holds, when it is a journaled one (a durable topic's record: a
/// whole bus frame, keyed by its topic).
fn journaled(record: &StoredRecord) -> Option<Message> {
    let message = Message::from_record(record).ok()?;
    (record.key.as_deref() == Some(message.topic().as_bytes())).then_some(message)
}

/// One line per record: offset, time, then the value, or the topic and body of a journaled
/// bus message (as `zhub sub` prints them), rather than the frame's bytes.
fn line(record: &StoredRecord, json: bool) -> String {
    if let Some(message) = journaled(record) {
        return if json {
            let mut value: serde_json::Value =
                serde_json::from_str(&render::json_line(&message)).unwrap_or_default();
            value["offset"] = record.offset.into();
            value["timestamp"] = record.timestamp_us.into();
            value.to_string()
        } else {
            format!(
                "{} {} {}",
                record.offset,
                crate::time::format_time(record.timestamp_us),
                render::text_line(&message)
            )
        };
    }
    if json {
        json!({
            "offset": record.offset,
            "timestamp": record.timestamp_us,
            "key": record.key.as_deref().map(String::from_utf8_lossy),
            "body": render::value_json(&record.value),
        })
        .to_string()
    } else {
        format!(
            "{} {} {}",
            record.offset,
            crate::time::format_time(record.timestamp_us),
            render::reply_text(&record.value)
        )
    }
}

/// A progress bar on stderr for `total` records, drawn only when stdout is a terminal.
fn progress(client: &mut Client, stream: &str, from: u64) -> ProgressBar {
    if !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = client
        .log()
        .streams()
        .ok()
        .and_then(|streams| streams.into_iter().find(|s| s.name == stream))
        .map_or(0, |s| {
            s.next_offset.saturating_sub(from.max(s.first_offset))
        });
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Prints each record of `reader` with `render` (up to `count`), under a progress bar.
fn print_records(
    reader: impl Iterator<Item = Result<StoredRecord, zhub_client::RequestError>>,
    count: Option<u64>,
    bar: &ProgressBar,
    mut render: impl FnMut(&StoredRecord) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    for record in reader.take(count.map_or(usize::MAX, |c| c as usize)) {
        let text = render(&record?)?;
        if !bar.suspend(|| render::print_line(&text)) {
            break;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

pub(crate) fn run(url: &str, timeout: Duration, command: &LogCommand) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    match command {
        LogCommand::Streams { json } => {
            let streams = client.log().streams()?;
            if *json {
                println!("{}", serde_json::to_string(&streams)?);
            } else {
                println!(
                    "{:<24} {:>12} {:>12} {:>10} {:>12}",
                    "stream", "first", "next", "records", "bytes"
                );
                for s in streams {
                    println!(
                        "{:<24} {:>12} {:>12} {:>10} {:>12}",
                        s.name, s.first_offset, s.next_offset, s.records, s.size_bytes
                    );
                }
            }
        }
        LogCommand::Create {
            stream,
            fsync,
            segment_bytes,
            retention_bytes,
            retention,
        } => {
            let settings = StreamSettings {
                fsync: Some(*fsync),
                segment_bytes: *segment_bytes,
                retention_bytes: *retention_bytes,
                retention_ms: retention.map(|d| d.as_millis() as u64),
                ..StreamSettings::default()
            };
            client.log().create(stream, settings)?;
        }
        LogCommand::Append {
            stream,
            body,
            format,
            json,
            key,
        } => {
            let value = format.encode(body).context("BODY")?;
            let offset =
                client
                    .log()
                    .append_bytes(stream, key.as_deref().map(str::as_bytes), &value)?;
            if *json {
                println!("{}", json!({ "offset": offset }));
            } else {
                println!("{offset}");
            }
        }
        LogCommand::Read {
            stream,
            from,
            since,
            from_time_us,
            count,
            json,
        } => {
            let bar = progress(&mut client, stream, *from);
            let reader = match since.or(*from_time_us) {
                Some(t) => client.log().read_from_time(stream, t),
                None => client.log().read(stream, *from),
            };
            print_records(reader, *count, &bar, |r| Ok(line(r, *json)))?;
        }
        LogCommand::Replay {
            stream,
            from,
            since,
            from_time_us,
            count,
            json,
            republish,
        } => {
            let bar = progress(&mut client, stream, *from);
            let start = match since.or(*from_time_us) {
                Some(t) => ReadFrom::Time(t),
                None => ReadFrom::Offset(*from),
            };
            if *republish {
                let total = client
                    .log()
                    .republish_with(stream, start, |sent| bar.inc(sent))?;
                bar.finish_and_clear();
                println!("{total}");
            } else {
                let reader = match start {
                    ReadFrom::Time(t) => client.log().read_from_time(stream, t),
                    ReadFrom::Offset(o) => client.log().read(stream, o),
                };
                print_records(reader, *count, &bar, |r| {
                    let message = Message::from_record(r).with_context(|| {
                        format!("offset {} of {stream} is not a journaled message", r.offset)
                    })?;
                    Ok(if *json {
                        render::json_line(&message)
                    } else {
                        render::text_line(&message)
                    })
                })?;
            }
        }
        LogCommand::Journal { prefix, stream } => client.log().journal(prefix, stream)?,
        LogCommand::Unjournal { prefix, stream } => client.log().unjournal(prefix, stream)?,
        LogCommand::Journals { json } => {
            let routes = client.log().journals()?;
            if *json {
                println!("{}", serde_json::to_string(&routes)?);
            } else {
                for r in routes {
                    println!("{} {}", r.prefix, r.stream);
                }
            }
        }
        LogCommand::Tail {
            stream,
            from,
            count,
            json,
        } => {
            let mut next = match from {
                Some(from) => *from,
                None => client
                    .log()
                    .streams()?
                    .into_iter()
                    .find(|s| s.name == *stream)
                    .map(|s| s.next_offset)
                    .with_context(|| format!("no such stream: {stream}"))?,
            };
            let mut printed = 0;
            loop {
                let (records, after) = client.log().read_batch(
                    stream,
                    ReadFrom::Offset(next),
                    1 << 20,
                    Duration::from_secs(30),
                )?;
                for record in &records {
                    if !render::print_line(&line(record, *json)) {
                        return Ok(());
                    }
                    printed += 1;
                    if count.is_some_and(|c| printed >= c) {
                        return Ok(());
                    }
                }
                next = after;
            }
        }
        LogCommand::Consume {
            stream,
            group,
            count,
            follow,
            json,
        } => {
            let mut consumer = client.log().consumer(stream, group)?;
            let wait = if *follow {
                Duration::from_secs(30)
            } else {
                Duration::ZERO
            };
            let mut printed = 0u64;
            while count.is_none_or(|c| printed < c) {
                let Some(record) = consumer.poll(wait)? else {
                    if *follow {
                        continue;
                    }
                    break;
                };
                if !render::print_line(&line(&record, *json)) {
                    break;
                }
                printed += 1;
                // Committed after each record printed: a consumer stopped at any point
                // leaves the group at the first record it did not print.
                consumer.commit()?;
            }
            consumer.commit()?;
        }
        LogCommand::Position { stream, group } => {
            let consumer = client.log().consumer(stream, group)?;
            match consumer.committed() {
                Some(offset) => println!("{offset}"),
                None => println!("none"),
            }
        }
        LogCommand::Seek {
            stream,
            group,
            offset,
        } => {
            let mut consumer = client.log().consumer(stream, group)?;
            consumer.seek(*offset);
            consumer.commit()?;
        }
        LogCommand::Delete { stream } => client.log().delete(stream)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_fsync;
    use zhub_client::FsyncPolicy;

    #[test]
    fn fsync_policies_parse() {
        assert_eq!(parse_fsync("always"), Ok(FsyncPolicy::Always));
        assert_eq!(
            parse_fsync("interval:50"),
            Ok(FsyncPolicy::Interval { ms: 50 })
        );
        assert!(parse_fsync("sometimes").is_err());
        assert!(parse_fsync("interval:soon").is_err());
    }
}
