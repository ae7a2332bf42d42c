//! `zhub fault`: rules that make the broker drop or delay bus messages on chosen topics
//! (the `zhub.fault` service, on brokers started with `--allow-faults`), and partitions
//! between the nodes of a `zhub sim serve` run.

use std::time::Duration;

use anyhow::{bail, Context};
use zhub_client::Client;
use zhub_protocol::fault::{FaultRequest, FaultRule, FaultRuleInfo, FAULT_SERVICE};

use crate::sim_serve::{check_run, parse_node, peer_topic, run_prefix};

/// `zhub fault` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FaultCommand {
    /// Add a rule for the topics PATTERN matches (a prefix, or a pattern with * and >) and
    /// print its id.
    Add {
        /// The topics: e.g. `orders.`, `sim.r1.n2.*`, `sensors.>`.
        pattern: String,
        /// The chance, from 0 to 1, that a matching message is dropped.
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// Hold matching messages back: 5ms (fixed) or 5ms..20ms (uniform).
        #[arg(long, value_parser = parse_delay)]
        delay: Option<(Duration, Duration)>,
        /// The seed of the rule's generator (the same seed drops the same messages of the
        /// same traffic).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// List the rules with what each did (matched, dropped, delayed).
    List {
        /// As one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove rule ID, or every rule.
    Clear {
        /// The rule (see `zhub fault list`); every rule when absent.
        id: Option<u64>,
    },
    /// Cut the links between groups of a `zhub sim serve` run's nodes, both ways: `--run R
    /// n1 n2,n3` cuts n1 from n2 and n3. Links within a group, and of nodes in no group,
    /// stay up.
    Partition {
        /// The run's name (as `zhub sim serve --run` gave it).
        #[arg(long)]
        run: String,
        /// Groups of nodes, each comma-separated: n1,n2 n3.
        #[arg(required = true, num_args = 2..)]
        groups: Vec<String>,
    },
    /// Remove every rule on a `zhub sim serve` run's links.
    Heal {
        /// The run's name.
        #[arg(long)]
        run: String,
    },
}

fn parse_delay(text: &str) -> Result<(Duration, Duration), String> {
    match text.split_once("..") {
        Some((lo, hi)) => Ok((crate::parse_duration(lo)?, crate::parse_duration(hi)?)),
        None => {
            let d = crate::parse_duration(text)?;
            Ok((d, d))
        }
    }
}

/// Adds `rule` at the broker.
pub(crate) fn add(client: &mut Client, rule: FaultRule) -> anyhow::Result<FaultRuleInfo> {
    Ok(client.request(FAULT_SERVICE, &FaultRequest::Add { rule })?)
}

/// The broker's rules.
pub(crate) fn list(client: &mut Client) -> anyhow::Result<Vec<FaultRuleInfo>> {
    Ok(client.request(FAULT_SERVICE, &FaultRequest::List)?)
}

/// Adds the rules that cut every link between nodes of different `groups` of run `run`;
/// returns how many.
pub(crate) fn partition(
    client: &mut Client,
    run: &str,
    groups: &[Vec<usize>],
) -> anyhow::Result<usize> {
    let mut added = 0;
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            for &x in a {
                for &y in b {
                    for (to, from) in [(x, y), (y, x)] {
                        let rule = FaultRule {
                            pattern: peer_topic(run, to, from),
                            drop: 1.0,
                            ..FaultRule::default()
                        };
                        add(client, rule)?;
                        added += 1;
                    }
                }
            }
        }
    }
    Ok(added)
}

/// Removes every rule on run `run`'s topics; returns how many.
pub(crate) fn heal(client: &mut Client, run: &str) -> anyhow::Result<usize> {
    let prefix = run_prefix(run);
    let mut removed = 0;
    for info in list(client)? {
        if info.rule.pattern.starts_with(&prefix) {
            let n: u64 =
                client.request(FAULT_SERVICE, &FaultRequest::Clear { id: Some(info.id) })?;
            removed += n as usize;
        }
    }
    Ok(removed)
}

/// Runs a `zhub fault` command.
pub(crate) fn run(url: &str, timeout: Duration, command: &FaultCommand) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    match command {
        FaultCommand::Add {
            pattern,
            drop,
            delay,
            seed,
        } => {
            let (delay_min, delay_max) = delay.unwrap_or_default();
            let info = add(
                &mut client,
                FaultRule {
                    pattern: pattern.clone(),
                    drop: *drop,
                    delay_min,
                    delay_max,
                    seed: *seed,
                },
            )?;
            println!("{}", info.id);
        }
        FaultCommand::List { json } => {
            let rules = list(&mut client)?;
            if *json {
                println!("{}", serde_json::to_string(&rules)?);
                return Ok(());
            }
            println!(
                "{:>5} {:<32} {:>6} {:>17} {:>9} {:>9} {:>9}",
                "id", "pattern", "drop", "delay", "matched", "dropped", "delayed"
            );
            for r in rules {
                let delay = if r.rule.delay_max.is_zero() {
                    "-".to_string()
                } else if r.rule.delay_min == r.rule.delay_max {
                    format!("{:?}", r.rule.delay_min)
                } else {
                    format!("{:?}..{:?}", r.rule.delay_min, r.rule.delay_max)
                };
                println!(
                    "{:>5} {:<32} {:>6} {:>17} {:>9} {:>9} {:>9}",
                    r.id, r.rule.pattern, r.rule.drop, delay, r.matched, r.dropped, r.delayed
                );
            }
        }
        FaultCommand::Clear { id } => {
            let removed: u64 = client.request(FAULT_SERVICE, &FaultRequest::Clear { id: *id })?;
            if id.is_some() && removed == 0 {
                bail!("no rule {}", id.unwrap_or_default());
            }
            println!("{removed} removed");
        }
        FaultCommand::Partition { run, groups } => {
            check_run(run)?;
            let groups = groups
                .iter()
                .map(|g| {
                    g.split(',')
                        .map(|n| parse_node(n.trim()))
                        .collect::<Result<Vec<usize>, String>>()
                        .map_err(anyhow::Error::msg)
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .context("groups are comma-separated nodes: n1,n2 n3")?;
            let added = partition(&mut client, run, &groups)?;
            println!("{added} links cut");
        }
        FaultCommand::Heal { run } => {
            check_run(run)?;
            println!("{} rules removed", heal(&mut client, run)?);
        }
    }
    Ok(())
}
