//! The `print` and `afficher` services (seed M1): two workers for each, and two clients using
//! both. Every reply says which worker served it; the broker shares requests between a
//! service's workers, least recently used first.
//!
//! Run a broker, then the example:
//! ```text
//! cargo run --release --bin zhub-broker &
//! cargo run --release --example print_afficher
//! cargo run --release --example print_afficher -- --forever   # keep the workers serving
//! ```
//! `ZHUB_URL` selects the broker (default `tcp://127.0.0.1:5555`).

use clap::Parser;
use zhub_worker::Worker;

const REQUESTS_PER_CLIENT: usize = 3;

/// Two workers each for `print` and `afficher`, and two clients using both (--forever keeps
/// the workers serving).
#[derive(Parser)]
#[command(after_help = "The broker is $ZHUB_URL (default tcp://127.0.0.1:5555).")]
struct Args {
    #[command(flatten)]
    forever: zhub_examples::Forever,
}

/// Starts a worker thread for `service`, named `name`, answering with `reply(name, text)`.
fn start_worker(
    service: &'static str,
    name: &'static str,
    reply: fn(&str, &str) -> String,
) -> anyhow::Result<(
    zhub_worker::Stopper,
    std::thread::JoinHandle<Result<(), zhub_worker::WorkerError>>,
)> {
    let worker = Worker::connect(&zhub_examples::broker_url(), service)?;
    let stopper = worker.stopper();
    let thread = std::thread::spawn(move || {
        worker.run_typed(move |text: String| {
            println!("[{name}] {text}");
            reply(name, &text)
        })
    });
    Ok((stopper, thread))
}

fn run() -> anyhow::Result<()> {
    let args: Args = zhub_examples::parse_args();
    let mut workers = Vec::new();
    for name in ["print-1", "print-2"] {
        workers.push(start_worker("print", name, |who, text| {
            format!("printed {text:?} ({who})")
        })?);
    }
    for name in ["afficher-1", "afficher-2"] {
        workers.push(start_worker("afficher", name, |who, text| {
            format!("affiché {text:?} ({who})")
        })?);
    }

    let clients: Vec<_> = ["alice", "bob"]
        .into_iter()
        .map(|client| {
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut c = zhub_examples::connect()?;
                for i in 1..=REQUESTS_PER_CLIENT {
                    let printed: String =
                        c.request("print", &format!("hello #{i} from {client}"))?;
                    println!("{client} <- {printed}");
                    let affiche: String =
                        c.request("afficher", &format!("bonjour n°{i} de {client}"))?;
                    println!("{client} <- {affiche}");
                }
                Ok(())
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
    }
    if args.forever.forever {
        println!("workers keep serving print and afficher; Ctrl-C to stop");
        for (_, thread) in workers {
            let _ = thread.join();
        }
        return Ok(());
    }
    for (stopper, _) in &workers {
        stopper.stop();
    }
    for (_, thread) in workers {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    println!("2 clients x {REQUESTS_PER_CLIENT} requests to print and afficher served");
    Ok(())
}

fn main() -> std::process::ExitCode {
    zhub_examples::report(run())
}
