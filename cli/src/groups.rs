//! `zhub groups`: the broker's process groups, with their members by rank, view version and
//! token holder.

use std::time::Duration;

use zhub_protocol::group::MAX_LIST_GROUPS;

/// Arguments of `zhub groups`.
#[derive(Debug, clap::Args)]
pub(crate) struct GroupsArgs {
    /// Only groups whose name starts with this.
    #[arg(default_value = "")]
    prefix: String,
    /// Print the members' ids too, by rank.
    #[arg(long)]
    members: bool,
    /// Print one JSON array (member ids as 16 hex digits).
    #[arg(long)]
    json: bool,
}

pub(crate) fn list(url: &str, timeout: Duration, args: &GroupsArgs) -> anyhow::Result<()> {
    let mut client = crate::connect(url, timeout)?;
    let mut groups = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.groups(&args.prefix, after.as_deref(), MAX_LIST_GROUPS)?;
        after = page.groups.last().map(|g| g.view.group.clone());
        groups.extend(page.groups);
        if !page.more || after.is_none() {
            break;
        }
    }
    let hex = |id: u64| format!("{id:016x}");
    if args.json {
        let list: Vec<serde_json::Value> = groups
            .iter()
            .map(|g| {
                serde_json::json!({
                    "group": g.view.group,
                    "version": g.view.version,
                    "members": g.view.members.iter().map(|&m| hex(m)).collect::<Vec<_>>(),
                    "token_holder": g.token_holder.map(hex),
                    "token_generation": g.token_generation,
                    "waiting_locks": g.waiting_locks,
                    "waiting_joins": g.waiting_joins,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&list)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>7} {:>7} {:>6} {:>8} {:>6}",
        "group", "members", "version", "token", "locking", "joining"
    );
    for g in &groups {
        let token = g
            .token_holder
            .and_then(|holder| g.view.rank_of(holder))
            .map_or_else(|| "-".to_owned(), |rank| format!("rank {rank}"));
        println!(
            "{:<24} {:>7} {:>7} {:>6} {:>8} {:>6}",
            g.view.group,
            g.view.members.len(),
            g.view.version,
            token,
            g.waiting_locks,
            g.waiting_joins
        );
        if args.members {
            for (rank, &member) in g.view.members.iter().enumerate() {
                println!("  rank {rank:<4} {}", hex(member));
            }
        }
    }
    Ok(())
}
