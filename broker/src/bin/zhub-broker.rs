//! `zhub-broker`: parses flags, sets up logging and signals, and runs the broker.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc;

use zhub_broker::config::{Config, ConfigCliError};

fn main() -> ExitCode {
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

    // SIGINT and SIGTERM both end up as one message on this channel; `run` stops on it.
    let (stop_tx, stop_rx) = mpsc::sync_channel::<()>(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    }) {
        eprintln!("zhub-broker: error: cannot install signal handler: {e}");
        return ExitCode::FAILURE;
    }
    match zhub_broker::run(&config, stop_rx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zhub-broker: error: {e}");
            ExitCode::FAILURE
        }
    }
}
