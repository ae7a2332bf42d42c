//! The login for a broker with an auth file: `--user U --password-file F`, or `--creds FILE`
//! (`$ZHUB_CREDS`), for PLAIN; `--curve-key FILE --server-key FILE` (`$ZHUB_CURVE_KEY`,
//! `$ZHUB_SERVER_KEY`) for CURVE. Read once at start and used by every connection the
//! command makes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context};
use zhub_client::{ClientOptions, Credentials, CurveKeyPair, Login};
use zhub_worker::WorkerOptions;

/// The flags, shared by every subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct CredsArgs {
    /// Log in as this user (with --password-file), for a broker started with --auth.
    #[arg(long, global = true, value_name = "USER", requires = "password_file")]
    user: Option<String>,
    /// File whose first line is the password of --user (a file, so that the password is in
    /// no command line or shell history).
    #[arg(long, global = true, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// File whose first line is `user:password`; $ZHUB_CREDS when set.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "ZHUB_CREDS",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    creds: Option<PathBuf>,
    /// Log in with CURVE, for a broker whose auth file sets a `[curve]` key pair: this key file (from
    /// `zhub keygen --out FILE`), whose public key the auth file lists; $ZHUB_CURVE_KEY when
    /// set. Needs --server-key.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "ZHUB_CURVE_KEY",
        requires = "server_key",
        conflicts_with_all = ["user", "creds"]
    )]
    curve_key: Option<PathBuf>,
    /// The broker's public key file (its `.pub`, `public = "..."`), for --curve-key;
    /// $ZHUB_SERVER_KEY when set.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "ZHUB_SERVER_KEY",
        requires = "curve_key"
    )]
    server_key: Option<PathBuf>,
}

static LOGIN: OnceLock<Option<Login>> = OnceLock::new();

/// Reads the files the flags name and keeps the login for [`client`] and [`worker`].
///
/// # Errors
/// When a file cannot be read or holds no login.
pub(crate) fn init(args: &CredsArgs) -> anyhow::Result<()> {
    let login = match (&args.user, &args.password_file, &args.creds) {
        (Some(user), Some(file), _) => {
            let text = read(file)?;
            let password = text.lines().next().unwrap_or_default();
            if password.is_empty() {
                bail!("{}: no password on its first line", file.display());
            }
            Some(Login::Plain(Credentials::new(user, password)))
        }
        (None, None, Some(file)) => Some(Login::Plain(
            Credentials::parse(&read(file)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
        )),
        _ => match (&args.curve_key, &args.server_key) {
            (Some(keys), Some(server)) => Some(Login::curve(
                CurveKeyPair::load_public(server)?,
                CurveKeyPair::load(keys)?,
            )),
            _ => None,
        },
    };
    let _ = LOGIN.set(login);
    Ok(())
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `options` with the login, when one was given.
pub(crate) fn client(options: ClientOptions) -> ClientOptions {
    options.login(LOGIN.get().cloned().flatten())
}

/// `options` with the login, when one was given.
pub(crate) fn worker(options: WorkerOptions) -> WorkerOptions {
    options.login(LOGIN.get().cloned().flatten())
}
