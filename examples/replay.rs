//! A durable topic: events published on the bus are journaled by the broker into a stream,
//! and replayed from it after their publisher has gone: from offset 0, and from a time. The
//! topics are under `replay_demo.sensors.`, the stream is `replay-demo`; the stream is
//! deleted at the end unless `--keep` is given.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example replay -- --keep
//! zhub log replay replay-demo          # with --keep, the journal is still there afterwards
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use zhub_client::{Message, ReadFrom};

const STREAM: &str = "replay-demo";
const PREFIX: &str = "replay_demo.sensors.";
const EVENTS: u32 = 8;

/// Sensor readings journaled from the bus into a stream, then replayed from offset 0 and
/// from a time.
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {
    /// Keep the stream afterwards (`zhub log replay replay-demo` reads it again).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    celsius: f32,
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    let mut client = zhub_examples::connect()?;
    // Start from an empty journal, so that every run shows the same thing.
    if client.log().streams()?.iter().any(|s| s.name == STREAM) {
        client.log().delete(STREAM)?;
    }
    client.log().journal(PREFIX, STREAM)?;
    println!("journaling {PREFIX}* into stream {STREAM}");

    // A publisher that knows nothing of the log: it publishes on the bus, then goes away.
    {
        let mut publisher = zhub_examples::connect()?;
        for i in 0..EVENTS {
            let reading = Reading {
                sensor: format!("t{}", i % 2),
                celsius: 20.0 + i as f32 / 2.0,
            };
            publisher.publish(&format!("{PREFIX}{}", reading.sensor), &reading)?;
        }
        println!("published {EVENTS} readings, publisher stopped");
    }

    // Journaling is asynchronous to the publisher: wait (long poll) until all are in.
    let mut next = 0;
    while next < u64::from(EVENTS) {
        let (_, after) = client.log().read_batch(
            STREAM,
            ReadFrom::Offset(next),
            1 << 20,
            Duration::from_secs(5),
        )?;
        anyhow::ensure!(
            after > next,
            "the journal stopped growing at {next} records"
        );
        next = after;
    }

    println!("replay from offset 0:");
    let mut stamps = Vec::new();
    for record in client.log().read(STREAM, 0) {
        let record = record?;
        let message = Message::from_record(&record)?;
        let reading: Reading = message.decode()?;
        println!(
            "  offset {} {} {:.1} C (publisher seq {}, lamport {})",
            record.offset,
            message.topic(),
            reading.celsius,
            message.header().seq,
            message.lamport()
        );
        stamps.push(record.timestamp_us);
    }
    anyhow::ensure!(stamps.len() == EVENTS as usize, "replayed {}", stamps.len());

    let since = stamps[EVENTS as usize / 2];
    println!("replay from timestamp {since} (the 5th reading's):");
    let mut replayed = 0;
    for record in client.log().read_from_time(STREAM, since) {
        let record = record?;
        let reading: Reading = Message::from_record(&record)?.decode()?;
        println!(
            "  offset {} {} {:.1} C",
            record.offset, reading.sensor, reading.celsius
        );
        replayed += 1;
    }
    // Readings published within the same microsecond share a stamp: at least the last half.
    anyhow::ensure!(
        replayed >= EVENTS / 2,
        "replayed {replayed} from the timestamp"
    );

    client.log().unjournal(PREFIX, STREAM)?;
    if args.keep {
        println!("done; the journal stays in stream {STREAM}");
    } else {
        client.log().delete(STREAM)?;
        println!("done; stream {STREAM} deleted (--keep keeps it)");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
