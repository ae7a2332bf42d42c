//! The HTML report: a self-contained page whose embedded data parses back to the run it was
//! written from; and example pages of a small replicated register, written to the target
//! directory for a person to look at.

mod common;

use std::time::Duration;

use common::Script;
use serde_json::{json, Value};
use zhub_sim::check::registers::{check, Verdict};
use zhub_sim::history::{Event, EventType, History};
use zhub_sim::report::write_html;
use zhub_sim::trace::MessageRecord;

fn render(title: &str, history: &History, messages: &[MessageRecord], checked: bool) -> String {
    let report = check(history, Duration::from_secs(10));
    let mut page = Vec::new();
    write_html(
        &mut page,
        title,
        history,
        messages,
        checked.then_some(&report),
    )
    .unwrap();
    String::from_utf8(page).unwrap()
}

/// The embedded data, parsed back.
fn data_of(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"zhub-report-data\">";
    let start = page.find(open).expect("the data element") + open.len();
    let length = page[start..].find("</script>").expect("its end");
    serde_json::from_str(&page[start..start + length]).expect("the data is JSON")
}

fn message(from: &str, to: &str, sent: u64, delivered: Option<u64>, label: &str) -> MessageRecord {
    MessageRecord {
        from: from.into(),
        to: to.into(),
        sent,
        delivered,
        label: label.into(),
    }
}

#[test]
fn the_page_is_self_contained_and_its_data_parses_back() {
    let history = Script::new()
        .write(0, 3, 1, 0, 10)
        .write(4, 3, 2, 20, 30)
        .read(1, 3, json!(1), 40, 50)
        .invoke(2, "read", 3, Value::Null, 45)
        .done();
    let messages = vec![
        message("c0", "gw", 1000, Some(2000), "write k3=1"),
        message("gw", "n1", 2000, None, "write k3=1"),
        message("n2", "n1", 2500, Some(4000), "ack"),
    ];
    let page = render("run 42", &history, &messages, true);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    for external in [
        "<script src",
        "<link",
        "http://",
        "https://",
        "@import",
        "url(",
    ] {
        assert!(
            !page.contains(external),
            "the page refers outside itself: {external}"
        );
    }
    assert_eq!(page.matches("<script").count(), 2);
    let data = data_of(&page);
    assert_eq!(data["title"], "run 42");
    assert_eq!(data["processes"], json!([0, 1, 2, 4]));
    let ops = data["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 4);
    // The stale read: lane of process 1, invoked at 40 µs, completed at 50 µs, ok, read 1.
    assert_eq!(
        ops[2],
        json!([1, "read", 3, 40_000, 50_000, 0, "null", "1", 4])
    );
    // The unanswered read has no completion.
    assert_eq!(ops[3][4], Value::Null);
    assert_eq!(ops[3][5], 3);
    let register = &data["register"];
    assert_eq!(register["verdict"], "not linearizable");
    assert_eq!(register["key"], 3);
    assert_eq!(register["culprit"], 2);
    let shown = register["violation"].as_array().unwrap();
    assert!(shown.contains(&json!(2)) && shown.contains(&json!(1)));
    assert!(register["explanation"]
        .as_str()
        .unwrap()
        .starts_with("read of key 3"));
    let list = data["messages"]["list"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let participants = data["messages"]["participants"].as_array().unwrap();
    assert_eq!(
        participants,
        &vec![json!("c0"), json!("gw"), json!("n1"), json!("n2")]
    );
    assert_eq!(list[1], json!([1, 2, 2000, null, 0]));
    assert_eq!(data["messages"]["labels"], json!(["write k3=1", "ack"]));
    assert_eq!(data["end"], 50_000);
}

#[test]
fn values_and_titles_cannot_break_out_of_the_page() {
    let history = Script::new()
        .invoke(0, "write", 1, json!("</script><b>x"), 0)
        .end(
            0,
            EventType::Ok,
            "write",
            Some(1),
            json!("</script><b>x"),
            1,
        )
        .done();
    let messages = vec![message("c0", "gw", 0, Some(1), "</script> & <!--")];
    let page = render("a </script> & <b>title</b>", &history, &messages, false);
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "only the page's own script ends"
    );
    assert!(page.contains("<title>a &lt;/script&gt; &amp; &lt;b&gt;title&lt;/b&gt;</title>"));
    let data = data_of(&page);
    assert_eq!(data["ops"][0][6], "\"</script><b>x\"");
    assert_eq!(data["messages"]["labels"][0], "</script> & <!--");
    assert_eq!(data["register"], Value::Null);
}

#[test]
fn a_long_run_stays_small() {
    // 10,000 operations and 60,000 messages: the page must stay a few megabytes.
    let (history, messages) = replicated_register(10_000, 1);
    let page = render("long run", &history, &messages, true);
    assert!(page.len() < 6_000_000, "{} bytes", page.len());
    let directory = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(directory.join("report-long.html"), &page).unwrap();
    let data = data_of(&page);
    assert_eq!(data["ops"].as_array().unwrap().len(), 10_000);
    assert_eq!(data["register"]["verdict"], "linearizable");
}

#[test]
fn example_pages_of_a_replicated_register() {
    let directory = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (history, messages) = replicated_register(120, 7);
    let report = check(&history, Duration::from_secs(10));
    assert_eq!(report.verdict, Verdict::Linearizable, "{report}");
    let page = render(
        "zhub sim: leader register, seed 7",
        &history,
        &messages,
        true,
    );
    std::fs::write(directory.join("report-linearizable.html"), page).unwrap();

    let (mut history, messages) = replicated_register(120, 7);
    make_one_read_stale(&mut history);
    let report = check(&history, Duration::from_secs(10));
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let page = render(
        "zhub sim: leader register, seed 7, one stale read",
        &history,
        &messages,
        true,
    );
    std::fs::write(directory.join("report-violation.html"), page).unwrap();
}

/// A tiny replicated register, simulated by hand: four clients send reads and writes through
/// a gateway to the leader n1, which applies them (the linearization point), replicates
/// writes to n2 and n3 (one message in ten lost), and answers through the gateway. Times are
/// nanoseconds; the generator is deterministic.
fn replicated_register(ops: usize, seed: u64) -> (History, Vec<MessageRecord>) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |below: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % below
    };
    let clients = 4u64;
    let mut free_at: Vec<u64> = (0..clients).map(|c| c * 700).collect();
    let mut leader_busy = 0u64;
    let mut values = [Value::Null, Value::Null, Value::Null];
    let mut events: Vec<(u64, usize, Event)> = Vec::new();
    let mut messages = Vec::new();
    let mut written = 0;
    for index in 0..ops {
        let client = (0..clients as usize).min_by_key(|&c| free_at[c]).unwrap();
        let call = free_at[client];
        let key = next(3);
        let is_write = next(10) < 4;
        let argument = if is_write {
            written += 1;
            json!(written)
        } else {
            Value::Null
        };
        let f = if is_write { "write" } else { "read" };
        let name = format!("c{client}");
        let label = if is_write {
            format!("write k{key}={written}")
        } else {
            format!("read k{key}")
        };
        let at_gateway = call + 300 + next(700);
        messages.push(message(&name, "gw", call, Some(at_gateway), &label));
        let at_leader = (at_gateway + 300 + next(900)).max(leader_busy + 50);
        leader_busy = at_leader;
        messages.push(message("gw", "n1", at_gateway, Some(at_leader), &label));
        let result = if is_write {
            values[key as usize] = argument.clone();
            for follower in ["n2", "n3"] {
                let lost = next(10) == 0;
                let delivered = at_leader + 400 + next(1500);
                messages.push(message(
                    "n1",
                    follower,
                    at_leader,
                    (!lost).then_some(delivered),
                    &format!("replicate k{key}"),
                ));
                if !lost {
                    messages.push(message(
                        follower,
                        "n1",
                        delivered,
                        Some(delivered + 300 + next(900)),
                        "ack",
                    ));
                }
            }
            argument.clone()
        } else {
            values[key as usize].clone()
        };
        let at_gateway_back = at_leader + 2500 + next(1200);
        messages.push(message(
            "n1",
            "gw",
            at_leader,
            Some(at_gateway_back),
            "reply",
        ));
        let done = at_gateway_back + 300 + next(700);
        messages.push(message("gw", &name, at_gateway_back, Some(done), "reply"));
        let event = |kind, value, time| Event {
            process: client as u64,
            kind,
            f: f.into(),
            key: Some(key),
            value,
            time,
        };
        events.push((call, 2 * index, event(EventType::Invoke, argument, call)));
        events.push((done, 2 * index + 1, event(EventType::Ok, result, done)));
        free_at[client] = done + next(800);
    }
    events.sort_by_key(|(time, order, _)| (*time, *order));
    messages.sort_by_key(|m| m.sent);
    let history = History {
        events: events.into_iter().map(|(_, _, event)| event).collect(),
    };
    (history, messages)
}

/// Makes the last read of key 0 that follows two completed writes of it return the older one.
fn make_one_read_stale(history: &mut History) {
    let mut completed: Vec<(u64, Value)> = Vec::new();
    let mut target = None;
    for (index, event) in history.events.iter().enumerate() {
        if event.key != Some(0) || event.kind != EventType::Ok {
            continue;
        }
        if event.f == "write" {
            completed.push((event.time, event.value.clone()));
        } else if completed.len() >= 2 && index > history.events.len() / 3 {
            let stale = completed[completed.len() - 2].1.clone();
            if stale != event.value {
                target = Some((index, stale));
                break;
            }
        }
    }
    let (index, stale) = target.expect("a read after two writes");
    history.events[index].value = stale;
}
