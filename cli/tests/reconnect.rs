//! `zhub sub` and `zhub serve` across a broker restart: they say when the broker goes and
//! when it is back, and work again after it.

mod common;

use common::{deadline, Reaped, ZHUB};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use zhub_broker::{Broker, Config};
use zhub_client::{Client, RequestOptions};

/// Starts `zhub ARGS` with its stdout and stderr lines sent to the two receivers; the child
/// is killed when the first is dropped, a failing test's too.
fn start(url: &str, args: &[&str]) -> (Reaped, Receiver<String>, Receiver<String>) {
    let mut child = Command::new(ZHUB)
        .args(args)
        .env("ZHUB_URL", url)
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zhub starts");
    let lines = |pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let out = lines(Box::new(child.stdout.take().unwrap()));
    let err = lines(Box::new(child.stderr.take().unwrap()));
    (Reaped(child), out, err)
}

/// Waits for a line containing `text` (the test's deadline bounds the wait).
fn expect_line(lines: &Receiver<String>, text: &str) -> String {
    loop {
        let line = lines.recv().expect("the command is still running");
        if line.contains(text) {
            return line;
        }
    }
}

#[test]
fn sub_and_serve_say_when_the_broker_goes_and_comes_back() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            heartbeat: Duration::from_millis(200),
            ..Config::local_ipc(dir.path())
        };
        let broker = Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        let (sub, sub_out, sub_err) = start(&url, &["sub", "news."]);
        let (serve, _, serve_err) =
            start(&url, &["serve", "echo", "--echo", "--heartbeat", "200ms"]);
        let mut client = Client::connect(&url).unwrap();
        // Live once a message published now is printed.
        let published_until_seen = |client: &mut Client, body: &str| loop {
            client.publish_bytes("news.x", body.as_bytes()).unwrap();
            if let Ok(line) = sub_out.recv_timeout(Duration::from_millis(100)) {
                assert_eq!(line, format!("news.x {body}"));
                break;
            }
        };
        published_until_seen(&mut client, "before");
        drop(client);

        broker.shutdown();
        let line = expect_line(&sub_err, "lost the broker");
        assert!(line.contains(&url), "{line}");
        expect_line(&serve_err, "lost the broker");

        let broker = Broker::start(&config).unwrap();
        expect_line(&sub_err, "is back");
        expect_line(&serve_err, "is back");
        let mut client = Client::connect(&url).unwrap();
        // The subscription came back with the connection, and the worker registered again.
        while sub_out.try_recv().is_ok() {}
        published_until_seen(&mut client, "after");
        let options = RequestOptions::new().timeout(Duration::from_secs(10));
        let reply = client
            .request_bytes_with("echo", b"still here", &options)
            .unwrap();
        assert_eq!(reply, b"still here");

        drop((sub, serve));
        broker.shutdown();
    });
}
