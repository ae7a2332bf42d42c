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
