//! Faults: what links do to messages (latency, loss, duplication, reordering), the faults
//! applied to nodes and links during a run (partitions, crashes, pauses, clock skew), and
//! the nemesis that schedules them.
//!
//! Reordering falls out of random latency: two messages on one link arrive in the order of
//! their drawn delays. With a constant latency a link is FIFO unless `reorder` holds some
//! messages back by one more latency draw, so that reordering can be had on its own.
//!
//! # Schedule files
//! `--nemesis-file FILE` reads one timed fault per line; blank lines and `#` comments are
//! skipped. Times are durations since the run began (`1500ms`, `2s`); nodes are `n1`..`nN`.
//!
//! ```text
//! 1s    partition n1 n2 | n3 n4 n5   # both ways, between the groups
//! 1s    isolate n3                   # n3 from every other node
//! 1s    block n1 n2                  # one way: n1's messages to n2 are lost
//! 3s    heal                         # every link whole again
//! 2s    crash n2
//! 4s    restart n2
//! 5s    pause n3
//! 6s    resume n3
//! 7s    skew n2 -50ms                # n2's clock reads 50 ms behind
//! 8s    loss 0.2                     # every link's loss rate from now on
//! 9s    unblock n1 n2                # n1's messages reach n2 again (one way)
//! 9s    drop #17                     # message 17 is lost, if still in flight
//! ```
//!
//! Messages are numbered in the order they are sent, from 0 (a duplicate's copy takes the
//! next number): `#17` is the eighteenth message handed to the network, the gateway's
//! included. The live view (`zhub sim run --serve`) shows each message's number.
//!
//! # Actions
//! A time written with a leading `@` marks an *action*, a fault taken by hand in a live run:
//!
//! ```text
//! @12345678ns  drop #17
//! @40000000ns  crash n3
//! ```
//!
//! A plain timed fault runs in its turn among the events of its instant; an action runs
//! after every other event of its instant, which is where a live run took it (after
//! handling everything due by then). Live runs write their actions this way, in whole
//! nanoseconds, so that `--nemesis-file` replays them exactly ([`parse_plan`] reads both
//! kinds; [`crate::kernel::SimConfig::actions`] holds the actions).

use std::fmt;
use std::time::Duration;

use crate::node::NodeId;
use crate::rng::Rng;

/// How long a message takes on a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always this long.
    Constant(Duration),
    /// Uniform between the two, inclusive.
    Uniform(Duration, Duration),
    /// At least `min`, plus an exponential delay of mean `mean`: a long tail.
    Exponential {
        /// The floor.
        min: Duration,
        /// The mean of the part above the floor.
        mean: Duration,
    },
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Latency {
    /// One delay, in nanoseconds. Constant latency draws nothing.
    pub fn draw(&self, rng: &mut Rng) -> u64 {
        match *self {
            Latency::Constant(d) => nanos(d),
            Latency::Uniform(lo, hi) => rng.range(nanos(lo), nanos(hi)),
            Latency::Exponential { min, mean } => {
                nanos(min).saturating_add(rng.exponential(nanos(mean) as f64) as u64)
            }
        }
    }

    /// Reads `5ms` (constant), `1ms..10ms` (uniform) or `exp:1ms,5ms` (floor 1 ms, mean 5 ms
    /// above it).
    ///
    /// # Errors
    /// A string of none of these forms.
    pub fn parse(text: &str) -> Result<Latency, String> {
        if let Some(rest) = text.strip_prefix("exp:") {
            let (min, mean) = rest
                .split_once(',')
                .ok_or_else(|| format!("{text:?}: expected exp:MIN,MEAN"))?;
            return Ok(Latency::Exponential {
                min: parse_duration(min)?,
                mean: parse_duration(mean)?,
            });
        }
        if let Some((lo, hi)) = text.split_once("..") {
            let hi = parse_duration(hi)?;
            // `1..10ms` reads as `1ms..10ms`: the unit of the upper bound serves both.
            let lo = match lo.parse::<u64>() {
                Ok(n) => {
                    let unit = hi_unit(text);
                    parse_duration(&format!("{n}{unit}"))?
                }
                Err(_) => parse_duration(lo)?,
            };
            if lo > hi {
                return Err(format!("{text:?}: the lower bound is above the upper"));
            }
            return Ok(Latency::Uniform(lo, hi));
        }
        Ok(Latency::Constant(parse_duration(text)?))
    }
}

fn hi_unit(text: &str) -> &str {
    let hi = text.rsplit("..").next().unwrap_or("");
    hi.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Constant(d) => write!(f, "{d:?}"),
            Latency::Uniform(lo, hi) => write!(f, "{lo:?}..{hi:?}"),
            Latency::Exponential { min, mean } => write!(f, "exp:{min:?},{mean:?}"),
        }
    }
}

/// Reads a duration: `5ms`, `250us`, `2s`, ... (see [`zhub_protocol::duration`], the one
/// parser of durations zhub has).
///
/// # Errors
/// A string that is not one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    zhub_protocol::duration::parse_duration(text)
}

/// What a link does to the messages it carries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// How long each message takes.
    pub latency: Latency,
    /// The chance that a message is lost.
    pub loss: f64,
    /// The chance that a message is delivered twice (each copy with its own latency).
    pub duplicate: f64,
    /// The chance that a message is held back by one more latency draw.
    pub reorder: f64,
}

impl Default for LinkConfig {
    /// Uniform latency 1 ms to 10 ms, no loss, no duplicates, no extra reordering.
    fn default() -> Self {
        LinkConfig {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(10)),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}

/// One fault, applied at a moment of the run; each is an event of the trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Cut every link between nodes of different groups, both ways (nodes in no group are
    /// cut from all). Replaces any earlier partition.
    Partition(Vec<Vec<NodeId>>),
    /// Cut the link from one node to another, one way only.
    Block {
        /// The sender whose messages are lost.
        from: NodeId,
        /// The receiver that no longer hears it.
        to: NodeId,
    },
    /// Make the link from one node to another whole again, one way only.
    Unblock {
        /// The sender whose messages get through again.
        from: NodeId,
        /// The receiver.
        to: NodeId,
    },
    /// Make every link whole.
    Heal,
    /// Stop a node: its in-memory state is lost, its storage kept, messages to it dropped.
    Crash(NodeId),
    /// Start a crashed node again, rebuilt by the run's factory.
    Restart(NodeId),
    /// Freeze a node: what reaches it waits, and it does nothing, until resumed.
    Pause(NodeId),
    /// Let a paused node handle, in order, what reached it meanwhile.
    Resume(NodeId),
    /// Set a node's clock to read this many nanoseconds ahead (negative: behind).
    Skew(NodeId, i64),
    /// Set every link's loss rate.
    Loss(f64),
    /// Lose the message with this number (see the module docs), if it is still in flight
    /// (or held by a paused node); otherwise nothing.
    Drop(u64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |g: &[NodeId]| {
            g.iter()
                .map(|n| format!("n{}", n + 1))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Fault::Partition(groups) => {
                let groups: Vec<String> = groups.iter().map(|g| names(g)).collect();
                write!(f, "partition {}", groups.join(" | "))
            }
            Fault::Block { from, to } => write!(f, "block n{} n{}", from + 1, to + 1),
            Fault::Unblock { from, to } => write!(f, "unblock n{} n{}", from + 1, to + 1),
            Fault::Heal => write!(f, "heal"),
            Fault::Crash(n) => write!(f, "crash n{}", n + 1),
            Fault::Restart(n) => write!(f, "restart n{}", n + 1),
            Fault::Pause(n) => write!(f, "pause n{}", n + 1),
            Fault::Resume(n) => write!(f, "resume n{}", n + 1),
            Fault::Skew(n, by) => write!(f, "skew n{} {by}ns", n + 1),
            Fault::Loss(p) => write!(f, "loss {p}"),
            Fault::Drop(number) => write!(f, "drop #{number}"),
        }
    }
}

/// A kind of fault the nemesis injects again and again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NemesisKind {
    /// Split a random minority from the rest (one time in four, one way only), then heal.
    Partition,
    /// Crash a random node, then restart it.
    Crash,
    /// Pause a random node, then resume it.
    Pause,
    /// Skew a random node's clock by up to a second either way, then set it right.
    Skew,
}

impl NemesisKind {
    /// Every kind, with its command-line name.
    pub const ALL: [(NemesisKind, &'static str); 4] = [
        (NemesisKind::Partition, "partition"),
        (NemesisKind::Crash, "crash"),
        (NemesisKind::Pause, "pause"),
        (NemesisKind::Skew, "skew"),
    ];

    /// Reads a comma-separated list of kinds (`partition,crash`); `none` is the empty list.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse_list(text: &str) -> Result<Vec<NemesisKind>, String> {
        if text == "none" || text.is_empty() {
            return Ok(Vec::new());
        }
        text.split(',')
            .map(|name| {
                NemesisKind::ALL
                    .iter()
                    .find(|(_, n)| *n == name.trim())
                    .map(|(k, _)| *k)
                    .ok_or_else(|| {
                        format!("unknown nemesis {name:?} (partition, crash, pause, skew, none)")
                    })
            })
            .collect()
    }

    /// The fault that starts this kind's disruption, and the one that ends it.
    pub(crate) fn draw(self, rng: &mut Rng, nodes: usize) -> (Fault, Fault) {
        let node = rng.index(nodes);
        match self {
            NemesisKind::Partition => {
                let mut order: Vec<NodeId> = (0..nodes).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.index(i + 1));
                }
                let minority = 1 + rng.index(((nodes.saturating_sub(1)) / 2).max(1));
                let (small, large) = order.split_at(minority.min(nodes));
                let (mut small, mut large) = (small.to_vec(), large.to_vec());
                small.sort_unstable();
                large.sort_unstable();
                if rng.below(4) == 0 {
                    // One way: the minority stops hearing the majority, not the reverse.
                    let first = *small.first().unwrap_or(&0);
                    let to = *large.first().unwrap_or(&0);
                    (
                        Fault::Block {
                            from: to,
                            to: first,
                        },
                        Fault::Heal,
                    )
                } else {
                    (Fault::Partition(vec![small, large]), Fault::Heal)
                }
            }
            NemesisKind::Crash => (Fault::Crash(node), Fault::Restart(node)),
            NemesisKind::Pause => (Fault::Pause(node), Fault::Resume(node)),
            NemesisKind::Skew => {
                let by = rng.range(0, 2_000_000_000) as i64 - 1_000_000_000;
                (Fault::Skew(node, by), Fault::Skew(node, 0))
            }
        }
    }
}

/// When faults happen in a run.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Nemesis {
    /// Kinds injected over and over: each waits a random time around `interval`, disrupts
    /// for a random time around `interval`, and ends its disruption before starting the next.
    pub kinds: Vec<NemesisKind>,
    /// The mean pause between disruptions, and their mean length.
    pub interval: Duration,
    /// Faults at fixed times (from a schedule file), in nanoseconds since the start.
    pub schedule: Vec<(u64, Fault)>,
}

fn node_name(word: &str, nodes: usize) -> Result<NodeId, String> {
    let n: usize = word
        .strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{word:?} is not a node (n1, n2, ...)"))?;
    if n == 0 || n > nodes {
        return Err(format!("{word}: the run has nodes n1 to n{nodes}"));
    }
    Ok(n - 1)
}

/// A schedule file's faults: timed faults, and actions (see the module docs).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Timed faults, by time: [`Nemesis::schedule`].
    pub faults: Vec<(u64, Fault)>,
    /// Actions, by time: [`crate::kernel::SimConfig::actions`].
    pub actions: Vec<(u64, Fault)>,
}

impl Plan {
    /// The plan as a schedule file reads it back exactly: every time in whole nanoseconds.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (prefix, list) in [("", &self.faults), ("@", &self.actions)] {
            for (time, fault) in list {
                let at = format!("{prefix}{time}ns");
                let readable = Duration::from_nanos(*time);
                let fault = fault.to_string();
                text.push_str(&format!("{at:<16} {fault:<24} # {readable:?}\n"));
            }
        }
        text
    }
}

/// A line without its comment: from a `#` that no digit follows (`drop #17` keeps its `#`).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let end = (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        .unwrap_or(bytes.len());
    line[..end].trim()
}

/// Reads a time: a duration, or a whole number of nanoseconds (`12345678ns`) read exactly.
fn parse_time(word: &str) -> Result<u64, String> {
    if let Some(digits) = word.strip_suffix("ns") {
        if let Ok(ns) = digits.parse::<u64>() {
            return Ok(ns);
        }
    }
    Ok(nanos(parse_duration(word)?))
}

/// Reads a schedule file's text (see the module docs) for a run of `nodes` nodes: its timed
/// faults and its actions.
///
/// # Errors
/// A line that is not a timed fault, with its number.
pub fn parse_plan(text: &str, nodes: usize) -> Result<Plan, String> {
    let mut plan = Plan::default();
    for (index, line) in text.lines().enumerate() {
        let line = strip_comment(line);
        if line.is_empty() {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", index + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let (action, time) = match words[0].strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, words[0]),
        };
        let time = parse_time(time).map_err(at)?;
        let args = &words[1..];
        let one = |i: usize| -> Result<NodeId, String> {
            node_name(args.get(i).copied().unwrap_or(""), nodes).map_err(at)
        };
        let fault = match args.first().copied() {
            Some("partition") => {
                let groups = args[1..]
                    .split(|w| *w == "|")
                    .map(|g| g.iter().map(|w| node_name(w, nodes)).collect())
                    .collect::<Result<Vec<Vec<NodeId>>, String>>()
                    .map_err(at)?;
                Fault::Partition(groups)
            }
            Some("isolate") => {
                let node = one(1)?;
                Fault::Partition(vec![
                    vec![node],
                    (0..nodes).filter(|&n| n != node).collect(),
                ])
            }
            Some("block") => Fault::Block {
                from: one(1)?,
                to: one(2)?,
            },
            Some("unblock") => Fault::Unblock {
                from: one(1)?,
                to: one(2)?,
            },
            Some("heal") => Fault::Heal,
            Some("crash") => Fault::Crash(one(1)?),
            Some("restart") => Fault::Restart(one(1)?),
            Some("pause") => Fault::Pause(one(1)?),
            Some("resume") => Fault::Resume(one(1)?),
            Some("skew") => {
                let by = args.get(2).copied().unwrap_or("");
                let (negative, by) = match by.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, by),
                };
                let ns = parse_time(by).map_err(at)? as i64;
                Fault::Skew(one(1)?, if negative { -ns } else { ns })
            }
            Some("loss") => {
                let p: f64 = args
                    .get(1)
                    .and_then(|p| p.parse().ok())
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| at("loss takes a rate from 0 to 1".into()))?;
                Fault::Loss(p)
            }
            Some("drop") => {
                let number = args
                    .get(1)
                    .and_then(|n| n.trim_start_matches('#').parse().ok())
                    .ok_or_else(|| at("drop takes a message number: drop #17".into()))?;
                Fault::Drop(number)
            }
            other => return Err(at(format!("unknown fault {other:?}"))),
        };
        if action {
            plan.actions.push((time, fault));
        } else {
            plan.faults.push((time, fault));
        }
    }
    plan.faults.sort_by_key(|(t, _)| *t);
    plan.actions.sort_by_key(|(t, _)| *t);
    Ok(plan)
}

/// Reads a schedule file's text (see the module docs) for a run of `nodes` nodes, every line
/// a plain timed fault.
///
/// # Errors
/// A line that is not a timed fault, with its number, or an action (`@` time: see
/// [`parse_plan`]).
pub fn parse_schedule(text: &str, nodes: usize) -> Result<Vec<(u64, Fault)>, String> {
    let plan = parse_plan(text, nodes)?;
    if !plan.actions.is_empty() {
        return Err("the schedule has actions (@ times), which parse_plan reads".into());
    }
    Ok(plan.faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_parse_in_each_form() {
        let ms = Duration::from_millis;
        assert_eq!(Latency::parse("5ms"), Ok(Latency::Constant(ms(5))));
        assert_eq!(
            Latency::parse("1..10ms"),
            Ok(Latency::Uniform(ms(1), ms(10)))
        );
        assert_eq!(
            Latency::parse("500us..2ms"),
            Ok(Latency::Uniform(Duration::from_micros(500), ms(2)))
        );
        assert_eq!(
            Latency::parse("exp:1ms,4ms"),
            Ok(Latency::Exponential {
                min: ms(1),
                mean: ms(4)
            })
        );
        assert!(Latency::parse("10ms..1ms").is_err());
        assert!(Latency::parse("fast").is_err());
    }

    #[test]
    fn a_schedule_reads_every_fault_and_names_a_bad_line() {
        let text = "# faults\n1s partition n1 n2 | n3\n2s heal\n500ms crash n2\n\
                    3s skew n3 -50ms\n4s block n1 n3\n5s isolate n2\n6s loss 0.5\n";
        let schedule = parse_schedule(text, 3).unwrap();
        assert_eq!(schedule[0], (500_000_000, Fault::Crash(1)));
        assert_eq!(
            schedule[1],
            (1_000_000_000, Fault::Partition(vec![vec![0, 1], vec![2]]))
        );
        assert!(schedule.contains(&(3_000_000_000, Fault::Skew(2, -50_000_000))));
        assert!(schedule.contains(&(4_000_000_000, Fault::Block { from: 0, to: 2 })));
        assert!(schedule.contains(&(5_000_000_000, Fault::Partition(vec![vec![1], vec![0, 2]]))));
        let err = parse_schedule("1s heal\n2s crash n9\n", 3).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(parse_schedule("1s explode", 3).is_err());
    }

    #[test]
    fn nemesis_partitions_leave_a_majority() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            if let (Fault::Partition(groups), Fault::Heal) =
                NemesisKind::Partition.draw(&mut rng, 5)
            {
                assert!(groups[0].len() <= 2 && groups[1].len() >= 3, "{groups:?}");
            }
        }
    }
}
