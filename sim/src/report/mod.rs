//! The HTML report of a run: one self-contained page (inline CSS and JavaScript, nothing
//! fetched) with the history as a timeline, the linearization or the violation marked, and a
//! Lamport diagram of the messages.
//!
//! # Page
//! The page embeds its data as one JSON object in a `<script type="application/json"
//! id="zhub-report-data">` element and draws it with inline JavaScript on canvases, only what
//! is in view, so that 10,000 operations stay light: the timeline has one lane per process and
//! an overview strip to move the visible window; the Lamport diagram shows the same window.
//!
//! # Embedded data
//! | field        | meaning                                                                  |
//! |--------------|--------------------------------------------------------------------------|
//! | `title`      | the page's title                                                         |
//! | `processes`  | the processes, in lane order                                             |
//! | `ops`        | `[lane, f, key, call, end, outcome, argument, result, invoke_index]` per operation, by invoke; `end` is the completion's time or `null`; `outcome` 0 ok, 1 fail, 2 info, 3 no completion |
//! | `end`        | the time of the last event or message                                    |
//! | `stats`      | availability and latency, as text                                        |
//! | `register`   | `null`, or `{verdict, summary, explanation, key, culprit, violation, linearization}` with operations named by their index in `ops`, `linearization` mapping each key to its order |
//! | `messages`   | `{participants, labels, list, dropped}`: `list` holds `[from, to, sent, delivered, label]` (participant and label indexes; `delivered` `null` when lost); `dropped` counts messages left out beyond [`MAX_MESSAGES`] |
//!
//! Values are printed as JSON and cut at [`MAX_VALUE_CHARS`]; `<` is written `\u003c` so that
//! no value can end the script element.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use serde_json::{json, Value};

use crate::check::ops::{pair, Outcome};
use crate::check::registers::{RegisterReport, Verdict};
use crate::check::stats::summarise;
use crate::history::History;
use crate::trace::MessageRecord;

/// Messages embedded at most; a longer run's report says how many were left out.
pub const MAX_MESSAGES: usize = 100_000;
/// Characters of a value embedded at most.
pub const MAX_VALUE_CHARS: usize = 80;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Writes the report of a run as one HTML page. `register` is the register check's report,
/// when the run was checked for linearizability.
///
/// ```no_run
/// use std::fs::File;
/// use std::io::BufWriter;
/// use std::time::Duration;
/// use zhub_sim::check::registers::check;
/// use zhub_sim::history::History;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let history = History::read_jsonl(std::io::BufReader::new(File::open("run.jsonl")?))?;
/// let report = check(&history, Duration::from_secs(10));
/// let out = BufWriter::new(File::create("run.html")?);
/// zhub_sim::report::write_html(out, "run 42", &history, &[], Some(&report))?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// When the writer fails.
pub fn write_html(
    mut out: impl Write,
    title: &str,
    history: &History,
    messages: &[MessageRecord],
    register: Option<&RegisterReport>,
) -> io::Result<()> {
    let data = data(title, history, messages, register);
    let data = serde_json::to_string(&data).map_err(io::Error::from)?;
    let data = data.replace('<', "\\u003c");
    let page = PAGE
        .replace("{{title}}", &escape_html(title))
        .replace("{{style}}", STYLE)
        .replace("{{script}}", SCRIPT);
    // The data goes in last, so that nothing in it is taken for a placeholder.
    let (before, after) = page.split_once("{{data}}").unwrap_or((&page, ""));
    out.write_all(before.as_bytes())?;
    out.write_all(data.as_bytes())?;
    out.write_all(after.as_bytes())?;
    out.flush()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The data a report page embeds (see the module docs for its fields): what
/// [`write_html`] writes into the page, and what a live view (`zhub sim run --serve`) serves
/// as JSON.
pub fn data(
    title: &str,
    history: &History,
    messages: &[MessageRecord],
    register: Option<&RegisterReport>,
) -> Value {
    let ops = pair(history);
    let mut processes: Vec<u64> = ops.iter().map(|op| op.process()).collect();
    processes.sort_unstable();
    processes.dedup();
    let lane_of: HashMap<u64, usize> = processes
        .iter()
        .enumerate()
        .map(|(lane, &process)| (process, lane))
        .collect();
    let op_of_invoke: HashMap<usize, usize> = ops
        .iter()
        .enumerate()
        .map(|(position, op)| (op.invoke_index, position))
        .collect();
    let rows: Vec<Value> = ops
        .iter()
        .map(|op| {
            let outcome = match (op.outcome, op.completion) {
                (Outcome::Ok, _) => 0,
                (Outcome::Fail, _) => 1,
                (Outcome::Indefinite, Some(_)) => 2,
                (Outcome::Indefinite, None) => 3,
            };
            json!([
                lane_of[&op.process()],
                op.f(),
                op.key(),
                op.call(),
                op.completion.map(|event| event.time),
                outcome,
                shown(&op.invoke.value),
                op.completion.map(|event| shown(&event.value)),
                op.invoke_index,
            ])
        })
        .collect();

    let mut end = history.events.iter().map(|e| e.time).max().unwrap_or(0);
    let mut participants: Vec<&str> = messages
        .iter()
        .flat_map(|m| [m.from.as_str(), m.to.as_str()])
        .collect();
    participants.sort_by(|a, b| participant_order(a).cmp(&participant_order(b)));
    participants.dedup();
    let index_of: HashMap<&str, usize> = participants
        .iter()
        .enumerate()
        .map(|(i, &name)| (name, i))
        .collect();
    let mut labels: Vec<&str> = Vec::new();
    let mut label_index: HashMap<&str, usize> = HashMap::new();
    let mut list = Vec::with_capacity(messages.len().min(MAX_MESSAGES));
    for message in messages.iter().take(MAX_MESSAGES) {
        let label = *label_index.entry(&message.label).or_insert_with(|| {
            labels.push(&message.label);
            labels.len() - 1
        });
        end = end.max(message.delivered.unwrap_or(message.sent));
        list.push(json!([
            index_of[message.from.as_str()],
            index_of[message.to.as_str()],
            message.sent,
            message.delivered,
            label
        ]));
    }

    let register = register.map(|report| {
        let position = |invoke: &usize| op_of_invoke.get(invoke).copied();
        let violation = report.violation.as_ref();
        let linearization: BTreeMap<String, Vec<usize>> = report
            .linearization
            .iter()
            .map(|(key, order)| (key.to_string(), order.iter().filter_map(position).collect()))
            .collect();
        json!({
            "verdict": match report.verdict {
                Verdict::Linearizable => "linearizable",
                Verdict::NotLinearizable => "not linearizable",
                Verdict::Unknown => "unknown",
            },
            "summary": format!("{} — {} keys, {} register operations, checked in {:.1?}", report.verdict, report.keys, report.ops, report.elapsed),
            "explanation": violation.map(|v| v.explanation.clone()),
            "key": violation.map(|v| v.key),
            "culprit": violation.and_then(|v| position(&v.culprit)),
            "violation": violation.map(|v| v.ops.iter().filter_map(position).collect::<Vec<_>>()),
            "linearization": linearization,
        })
    });

    json!({
        "title": title,
        "processes": processes,
        "ops": rows,
        "end": end,
        "stats": summarise(history).to_string(),
        "register": register,
        "messages": {
            "participants": participants,
            "labels": labels,
            "list": list,
            "dropped": messages.len().saturating_sub(MAX_MESSAGES),
        },
    })
}

/// Lamport diagram columns: clients, then the gateway, then nodes, each in numeric order.
fn participant_order(name: &str) -> (u8, u64, &str) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    let number = digits.parse().unwrap_or(u64::MAX);
    let group = match name.chars().next() {
        Some('c') => 0,
        _ if name == "gw" => 1,
        Some('n') => 2,
        _ => 3,
    };
    (group, number, name)
}
