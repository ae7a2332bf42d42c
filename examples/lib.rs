//! Shared helpers for the zhub examples (`cargo run --release --example NAME`): their flags,
//! the broker connection, and process groups that start their own members or run as one
//! member under `zhub launch`.
//!
//! ```no_run
//! use clap::Parser;
//! use zhub_examples::{GroupSize, SizeArg};
//!
//! const SIZES: GroupSize = GroupSize::at_least(2, 3);
//!
//! /// Say hello to the group.
//! #[derive(Parser)]
//! #[command(after_help = SIZES.help("hello"))]
//! struct Args {
//!     #[command(flatten)]
//!     size: SizeArg,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let args: Args = zhub_examples::parse_args();
//!     zhub_examples::report(zhub_examples::member_or_launch(
//!         "hello",
//!         SIZES,
//!         args.size.size,
//!         |group| {
//!             println!("rank {} of {}", group.rank().unwrap_or(0), group.size());
//!             Ok(())
//!         },
//!     ))
//! }
//! ```
#![deny(missing_docs)]

use std::process::{Child, Command};

use clap::error::ErrorKind;

/// The broker URL from `ZHUB_URL`, or the broker's default main endpoint.
pub fn broker_url() -> String {
    std::env::var("ZHUB_URL").unwrap_or_else(|_| zhub_client::DEFAULT_URL.to_owned())
}

/// Parses the example's flags. `--help` prints the help and exits 0; an unknown flag or a bad
/// value is one line on stderr (`NAME: error: ...`) and exit code 2, as the `zhub` command
/// does.
pub fn parse_args<A: clap::Parser>() -> A {
    match A::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // clap's own message spans several lines (a tip, the usage): its first line says
            // what is wrong, and --help says the rest.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad arguments");
            let what = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("{}: error: {what} (see --help)", program_name());
            std::process::exit(2);
        }
    }
}

/// Ends the example: exit code 0, or its error on one line (`NAME: error: ...`, each cause
/// after a colon) and exit code 1.
pub fn report(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {e:#}", program_name());
            std::process::ExitCode::FAILURE
        }
    }
}

/// This program's file name, for messages.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "example".to_owned())
}

/// The `--forever` flag of the examples that can keep running.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Forever {
    /// Keep going until stopped (Ctrl-C) instead of ending after the scenario.
    #[arg(long)]
    pub forever: bool,
}

/// The `--size` flag of the group examples.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SizeArg {
    /// Members to start when run directly (under `zhub launch N`, N is the size).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
}

/// The sizes a group example works with, and the size it starts when run directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSize {
    /// Members started when run directly without `--size`.
    pub default: usize,
    /// The fewest members it works with.
    pub min: usize,
    /// The most members it works with, if there is a limit.
    pub max: Option<usize>,
}

impl GroupSize {
    /// Any size from `min` up; `default` when run directly.
    pub const fn at_least(min: usize, default: usize) -> Self {
        GroupSize {
            default,
            min,
            max: None,
        }
    }

    /// Exactly `n` members.
    pub const fn exactly(n: usize) -> Self {
        GroupSize {
            default: n,
            min: n,
            max: Some(n),
        }
    }

    /// The sizes in words: "exactly 2 members", "2 or more members".
    pub fn describe(&self) -> String {
        match self.max {
            Some(max) if max == self.min => format!("exactly {max} members"),
            Some(max) => format!("{} to {max} members", self.min),
            None => format!("{} or more members", self.min),
        }
    }

    /// The text after an example's `--help`: the sizes it works with, and how to run it as
    /// a launched group.
    pub fn help(&self, example: &str) -> String {
        format!(
            "Run directly, it starts {} members of itself as one group (--size N for N). Under \
             `zhub launch N -- target/release/examples/{example}` it is one member of a group \
             of N; it works with {}.\n\nThe broker is $ZHUB_URL (default {}).",
            self.default,
            self.describe(),
            zhub_client::DEFAULT_URL
        )
    }

    /// Whether `n` members can play.
    ///
    /// # Errors
    /// A sentence saying which sizes work.
    pub fn check(&self, example: &str, n: usize) -> anyhow::Result<()> {
        let fits = n >= self.min && self.max.is_none_or(|max| n <= max);
        anyhow::ensure!(fits, "{example} works with {}, not {n}", self.describe());
        Ok(())
    }
}

/// Connects to the broker, saying how to start one when none answers.
pub fn connect() -> anyhow::Result<zhub_client::Client> {
    let url = broker_url();
    zhub_client::Client::connect(&url).map_err(|e| {
        anyhow::anyhow!(
            "{e} (start a broker with `cargo run --release --bin zhub-broker`, or set ZHUB_URL)"
        )
    })
}

/// The body of a group example: as a process a launcher started (`zhub launch`, or
/// [`launch_self`]), joins its group and runs `member` with it; otherwise starts `size`
/// copies of this program (the `--size` flag, else `sizes.default`) as one group and waits
/// for them, failing if any fails. A size outside `sizes` is an error before anything
/// starts.
///
/// # Errors
/// A size the example does not work with; the member's error; as a launcher, any copy
/// that failed.
pub fn member_or_launch(
    example: &str,
    sizes: GroupSize,
    size: Option<usize>,
    member: impl FnOnce(zhub_client::Group) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    member_or_launch_with(example, sizes, size, member, |children| {
        let n = children.len();
        let mut failed = 0;
        for mut child in children {
            if !child.wait()?.success() {
                failed += 1;
            }
        }
        anyhow::ensure!(failed == 0, "{failed} of {n} processes failed");
        Ok(())
    })
}

/// [`member_or_launch`], with the launcher's wait for its children in `wait`.
///
/// # Errors
/// As for [`member_or_launch`], with `wait`'s errors for the launcher's.
pub fn member_or_launch_with(
    example: &str,
    sizes: GroupSize,
    size: Option<usize>,
    member: impl FnOnce(zhub_client::Group) -> anyhow::Result<()>,
    wait: impl FnOnce(Vec<Child>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match zhub_client::LaunchEnv::from_env()? {
        Some(env) => {
            // The launcher decides the size; a --size that says otherwise is a mistake.
            if let (Some(flag), Some(launched)) = (size, env.size) {
                anyhow::ensure!(
                    flag == launched,
                    "--size {flag}, but this process was launched in a group of {launched}"
                );
            }
            if let Some(n) = env.size {
                sizes.check(example, n)?;
            }
            let client = connect()?;
            let group = zhub_client::Group::join_launched(&client)
                .ok_or_else(|| anyhow::anyhow!("no group in the environment"))??;
            sizes.check(example, group.size())?;
            member(group)
        }
        None => {
            let n = size.unwrap_or(sizes.default);
            sizes.check(example, n)?;
            // Fail here, once, rather than in every member.
            drop(connect()?);
            wait(launch_self(n, example)?)
        }
    }
}

/// Starts `n` copies of this program, with its arguments, as one process group named
/// `group` plus this process's id, the way `zhub launch` does. Each copy finds its group
/// with `Group::join_launched`.
///
/// # Errors
/// A copy that cannot be started.
pub fn launch_self(n: usize, group: &str) -> anyhow::Result<Vec<Child>> {
    let exe = std::env::current_exe()?;
    let group = format!("{group}-{}", std::process::id());
    let children = zhub_client::LaunchEnv::for_group(&group, n)
        .iter()
        .map(|env| {
            let mut command = Command::new(&exe);
            env.set_on(&mut command);
            command.args(std::env::args().skip(1)).spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(children)
}

/// Ranks as a readable list: `0, 1, 2`.
pub fn ranks(ranks: impl IntoIterator<Item = usize>) -> String {
    ranks
        .into_iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README's Rust snippets, compiled (not run) with the doc tests of this crate, so that
/// every one of them keeps building as the API changes.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeSnippets;
