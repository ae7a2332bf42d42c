//! `zhub-broker`: parses flags, sets up logging and signals, and runs the broker.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info};
use zhub_broker::auth::AuthReloader;
use zhub_broker::config::{Config, ConfigCliError};
use zhub_broker::BrokerError;

fn main() -> ExitCode {
    if std::env::args_os().skip(1).any(|a| a == "--hash-password") {
        return hash_password();
    }
    let config = match Config::from_command_line(std::env::args_os()) {
        Ok(config) => config,
        Err(ConfigCliError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("zhub-broker: error: {e}");
            return ExitCode::from(2);
        }
    };
    // Before logging is set up: a setting that cannot work is one line and exit code 2.
    if let Err(e) = config.validate() {
        eprintln!("zhub-broker: error: {e}");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes are for a person at a terminal; in a file or a journal they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        // A log line that cannot be written (its reader went away) is lost; reporting that
        // on the same closed stderr would panic and turn a clean exit into a failure.
        .log_internal_errors(false)
        .init();

    // Registered before the broker starts, so that a signal during start waits for the
    // thread below rather than killing the process. SIGINT and SIGTERM stop the broker;
    // SIGHUP reloads the auth file when there is one, and stops the broker otherwise (as
    // it always has).
    let signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("zhub-broker: error: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = zhub_broker::Broker::start(&config).and_then(|broker| {
        let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
        handle_signals(signals, broker.auth_reloader(), stop_tx)?;
        broker.serve(stop_rx)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zhub-broker: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turns signals into a stop message or an auth file reload, on a thread of its own
/// (detached: it ends with the process). A file with a mistake is logged and the old one
/// stays in force.
fn handle_signals(
    mut signals: Signals,
    reloader: Option<AuthReloader>,
    stop: mpsc::SyncSender<()>,
) -> Result<(), BrokerError> {
    std::thread::Builder::new()
        .name("zhub-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match (&reloader, signal) {
                    (Some(reloader), SIGHUP) => match reloader.reload() {
                        Ok(()) => info!(file = %reloader.path().display(), "auth file reloaded"),
                        Err(e) => error!(error = %e, "auth file not reloaded; the previous one stays in force"),
                    },
                    _ => {
                        let _ = stop.try_send(());
                    }
                }
            }
        })
        .map_err(|cause| BrokerError::Thread {
            name: "zhub-signals",
            cause,
        })?;
    Ok(())
}

/// `--hash-password`: one line from standard input (without its line ending) to a PHC
/// string on standard output.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("zhub-broker: error: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("zhub-broker: error: empty password");
        return ExitCode::from(2);
    }
    match zhub_broker::auth::hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zhub-broker: error: {e}");
            ExitCode::FAILURE
        }
    }
}
