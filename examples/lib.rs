//! Shared helpers for the zhub examples (`cargo run --release --example NAME`).

/// The broker URL from `ZHUB_URL`, or the broker's default main endpoint.
pub fn broker_url() -> String {
    std::env::var("ZHUB_URL").unwrap_or_else(|_| zhub_client::DEFAULT_URL.to_owned())
}

/// Whether the example was asked to keep running (`--forever`).
pub fn forever() -> bool {
    std::env::args().any(|a| a == "--forever")
}

/// Connects to the broker, saying how to start one when none answers.
pub fn connect() -> anyhow::Result<zhub_client::Client> {
    let url = broker_url();
    zhub_client::Client::connect(&url).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(start a broker with `cargo run --release --bin zhub-broker`, or set ZHUB_URL)"
        )
    })
}

/// The body of a group example: as a process a launcher started (`zhub launch`, or
/// [`launch_self`]), joins its group and runs `member` with it; otherwise launches `n`
/// copies of this program as the group `group` and waits for them.
pub fn member_or_launch(
    n: usize,
    group: &str,
    member: impl FnOnce(zhub_client::Group) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let client = connect()?;
    match zhub_client::Group::join_launched(&client) {
        Some(joined) => member(joined?),
        None => launch_self(n, group),
    }
}

/// Runs `n` copies of this program as one process group named `group` (plus this process's
/// id), the way `zhub launch` does, and waits for them; fails if any copy fails. Each copy
/// finds its group with `Group::join_launched`.
pub fn launch_self(n: usize, group: &str) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let group = format!("{group}-{}", std::process::id());
    let children = zhub_client::LaunchEnv::for_group(&group, n)
        .iter()
        .map(|env| {
            let mut command = std::process::Command::new(&exe);
            env.set_on(&mut command);
            command.args(std::env::args().skip(1)).spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {n} processes failed");
    Ok(())
}
