//! Every example runs to completion, exit 0, against a broker started in this process; each
//! answers `--help`, refuses unknown flags and sizes it does not work with in one line,
//! prints plain values and leaves no data behind. The group that loses a member to SIGKILL
//! goes on in the renumbered view.
//!
//! `cargo test` builds the examples beside the test binaries (`target/PROFILE/examples`),
//! which is where these tests find them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zhub_client::{Client, LaunchEnv};

const LIMIT: Duration = Duration::from_secs(120);

const EXAMPLES: &[&str] = &[
    "ping_pong",
    "rpc_ping_pong",
    "print_afficher",
    "replay",
    "kv_clients",
    "shared_config",
    "sync_exchange",
    "dice_game",
    "middleware_demo",
    "replication",
    "p2p_graph",
    "heartbeats",
    "federation",
];

/// The examples that are process groups.
const GROUPS: &[&str] = &[
    "sync_exchange",
    "dice_game",
    "middleware_demo",
    "replication",
    "p2p_graph",
    "heartbeats",
];

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/PROFILE/deps/TEST -> target/PROFILE/examples/NAME
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    dir.join("examples").join(name)
}

/// A broker of its own in a temporary directory.
struct TestBroker {
    broker: Option<zhub_broker::Broker>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    fn start() -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        TestBroker {
            broker: Some(broker),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.broker.as_ref().unwrap().info().main.clone()
    }

    fn client(&self) -> Client {
        Client::connect(&self.url()).unwrap()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown();
        }
    }
}

/// The example `name` with `args`, pointed at `url`, its output captured.
fn command(name: &str, args: &[&str], url: &str) -> Command {
    let mut command = Command::new(example(name));
    command
        .args(args)
        .env("ZHUB_URL", url)
        .env("RUST_LOG", "off")
        .env_remove(LaunchEnv::GROUP)
        .env_remove(LaunchEnv::SIZE)
        .env_remove(LaunchEnv::MEMBER);
    command
}

/// Runs `command` to its end, within [`LIMIT`].
fn output(mut command: Command) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let output = command.output().unwrap_or_else(|e| {
            panic!("{command:?}: {e} (is it built? cargo test builds examples)")
        });
        let _ = tx.send(output);
    });
    rx.recv_timeout(LIMIT).expect("example finished in time")
}

/// Values printed as Rust debug output or wrapped integers instead of what they mean.
fn assert_plain(name: &str, out: &str) {
    for bad in ["Some(", "None", "18446744073709551615", "{\"", "[\""] {
        assert!(!out.contains(bad), "{name} printed {bad}:\n{out}");
    }
}

/// Runs the example with `args` against `broker`; checks it succeeded and printed plain
/// values, and returns its stdout.
fn run_on(broker: &TestBroker, name: &str, args: &[&str]) -> String {
    let output = output(command(name, args, &broker.url()));
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out = String::from_utf8(output.stdout).unwrap();
    assert_plain(name, &out);
    out
}

/// Runs the example against a fresh broker and returns its stdout.
fn run(name: &str, args: &[&str]) -> String {
    run_on(&TestBroker::start(), name, args)
}

/// Runs the example where no broker is needed (or none answers); returns its output.
fn run_offline(name: &str, args: &[&str]) -> Output {
    output(command(name, args, "ipc:///nonexistent/zhub-examples-test"))
}

#[test]
fn every_example_answers_help() {
    for name in EXAMPLES {
        let out = run_offline(name, &["--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help: {:?}", out.status);
        assert!(text.contains("Usage: "), "{name} --help:\n{text}");
        assert!(text.contains("ZHUB_URL"), "{name} --help:\n{text}");
    }
}

#[test]
fn every_group_example_says_its_sizes() {
    for name in GROUPS {
        let out = run_offline(name, &["--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("zhub launch N"), "{name} --help:\n{text}");
        assert!(text.contains("it works with"), "{name} --help:\n{text}");
        assert!(text.contains("--size"), "{name} --help:\n{text}");
    }
    let text = String::from_utf8(run_offline("sync_exchange", &["--help"]).stdout).unwrap();
    assert!(text.contains("exactly 2 members"), "{text}");
    let text = String::from_utf8(run_offline("dice_game", &["--help"]).stdout).unwrap();
    assert!(text.contains("1 or more members"), "{text}");
}

#[test]
fn every_example_refuses_an_unknown_flag_in_one_line() {
    for name in EXAMPLES {
        let out = run_offline(name, &["--no-such-flag"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with(&format!(
                "{name}: error: unexpected argument '--no-such-flag'"
            )),
            "{name}: {err}"
        );
        assert!(out.stdout.is_empty(), "{name}");
    }
}

#[test]
fn a_missing_broker_is_one_line() {
    let out = run_offline("kv_clients", &["--processes", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("kv_clients: error: "), "{err}");
    assert!(err.contains("start a broker"), "{err}");
}

#[test]
fn a_size_an_example_cannot_play_is_refused() {
    let out = run_offline("sync_exchange", &["--size", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "sync_exchange: error: sync_exchange works with exactly 2 members, not 3"
    );
    // The same under a launcher: before the member joins anything.
    let mut member = command(
        "sync_exchange",
        &[],
        "ipc:///nonexistent/zhub-examples-test",
    );
    LaunchEnv::for_group("too-many", 3)[0].set_on(&mut member);
    let out = output(member);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("exactly 2 members, not 3"), "{err}");
    let out = run_offline("middleware_demo", &["--size", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 or more members, not 1"), "{err}");
}

#[test]
fn ping_pong() {
    let out = run("ping_pong", &[]);
    assert!(out.contains("ping service got pong #5"), "{out}");
}

#[test]
fn rpc_ping_pong() {
    let out = run("rpc_ping_pong", &[]);
    assert!(out.contains("ping #5 -> pong #5"), "{out}");
    assert!(out.contains("5 request/reply rounds"), "{out}");
}

#[test]
fn federation_serves_each_service_from_the_node_that_has_it() {
    let out = run("federation", &[]);
    for line in [
        "client of node1 -> afficher: affiché \"bonjour from a client of node1\" (served by node2)",
        "client of node2 -> print   : printed \"hello from a client of node2\" (served by node1)",
        "node1 sees node2 (up",
        "client of node1 -> afficher: affiché \"bonjour from a client of node1\" (served by node4)",
        "subscriber on node4 heard \"il pleut sur lan1\" on news.lan1 from node1's publisher",
        "node4 reads written-by = node1",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
}

#[test]
fn print_afficher() {
    let out = run("print_afficher", &[]);
    assert!(
        out.contains("2 clients x 3 requests to print and afficher served"),
        "{out}"
    );
}

#[test]
fn replay_and_its_stream_is_gone() {
    let broker = TestBroker::start();
    let out = run_on(&broker, "replay", &[]);
    assert!(out.contains("offset 7"), "{out}");
    assert!(out.contains("replay from timestamp"), "{out}");
    assert!(out.contains("replay_demo.sensors.t1"), "{out}");
    let streams = broker.client().log().streams().unwrap();
    assert!(streams.is_empty(), "{streams:?}");
    // --keep keeps it.
    let out = run_on(&broker, "replay", &["--keep"]);
    assert!(
        out.contains("the journal stays in stream replay-demo"),
        "{out}"
    );
    let streams = broker.client().log().streams().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0].name, "replay-demo");
}

#[test]
fn kv_clients_and_its_keys_are_gone() {
    let broker = TestBroker::start();
    let out = run_on(&broker, "kv_clients", &[]);
    assert!(
        out.contains("4 processes x 1000 rounds: every read equal to its write; 4 keys"),
        "{out}"
    );
    assert!(broker.client().kv().list_all("").unwrap().is_empty());
    let out = run_on(
        &broker,
        "kv_clients",
        &["--processes", "2", "--rounds", "10"],
    );
    assert!(out.contains("2 processes x 10 rounds"), "{out}");
}

#[test]
fn shared_config_and_its_keys_are_gone() {
    let broker = TestBroker::start();
    // A key of someone else's `config.` is none of the example's business.
    broker.client().kv().put("config.workers", &99u32).unwrap();
    let out = run_on(&broker, "shared_config", &[]);
    assert!(
        out.contains("2 followers ended with the admin's last settings"),
        "{out}"
    );
    let keys: Vec<String> = broker
        .client()
        .kv()
        .list_all("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["config.workers"]);
}

#[test]
fn sync_exchange() {
    let out = run("sync_exchange", &[]);
    assert!(
        out.contains("rank 0: done") && out.contains("rank 1: done"),
        "{out}"
    );
    assert_eq!(out.matches(" took ").count(), 6, "{out}");
}

/// The rolls a dice game printed, each player's own.
fn rolls(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.split(" rolled ").nth(1))
        .map(|rest| rest.split(';').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn dice_game() {
    let out = run("dice_game", &[]);
    assert!(
        out.contains("5 rounds of 4 players, one winner line each"),
        "{out}"
    );
    assert_eq!(out.matches("wins with").count(), 5, "{out}");
    assert_eq!(rolls(&out).len(), 20, "{out}");
}

#[test]
fn dice_game_with_any_number_of_players() {
    let broker = TestBroker::start();
    for players in ["1", "2", "7"] {
        let out = run_on(&broker, "dice_game", &["--size", players, "--rounds", "10"]);
        assert!(
            out.contains(&format!("10 rounds of {players} players")),
            "{out}"
        );
        let rolls = rolls(&out);
        assert_eq!(rolls.len(), 10 * players.parse::<usize>().unwrap(), "{out}");
        assert!(rolls.iter().all(|r| (1..=100).contains(r)), "{rolls:?}");
    }
}

#[test]
fn middleware_demo() {
    let out = run("middleware_demo", &[]);
    assert_eq!(out.matches("in the critical section").count(), 3, "{out}");
    assert_eq!(out.matches(": stopping").count(), 3, "{out}");
    assert!(out.contains("everyone has the sync news"), "{out}");
    assert!(out.contains("rank 1 took the rendezvous"), "{out}");
    assert!(out.contains("got \"hello from 2\" from rank 2"), "{out}");
}

#[test]
fn middleware_demo_with_two_and_five() {
    let broker = TestBroker::start();
    for (size, n) in [("2", 2), ("5", 5)] {
        let out = run_on(&broker, "middleware_demo", &["--size", size]);
        assert_eq!(out.matches(": stopping").count(), n, "{out}");
    }
}

#[test]
fn replication() {
    let out = run("replication", &[]);
    assert_eq!(out.matches("equal to all 3 replicas").count(), 3, "{out}");
    assert!(out.contains("alice="), "{out}");
}

#[test]
fn p2p_graph() {
    let out = run("p2p_graph", &[]);
    assert!(out.contains("every message arrived within 2 hops"), "{out}");
    assert_eq!(out.matches("reached rank").count(), 4, "{out}");
    assert!(out.contains("arrived via 0 -> "), "{out}");
}

#[test]
fn p2p_graph_with_other_sizes() {
    let broker = TestBroker::start();
    for n in [2, 3, 8] {
        let out = run_on(&broker, "p2p_graph", &["--size", &n.to_string()]);
        assert_eq!(out.matches("reached rank").count(), n - 1, "{out}");
        assert!(out.contains("every message arrived within"), "{out}");
    }
}

#[test]
fn heartbeats_without_a_loss() {
    let out = run("heartbeats", &["--rounds", "3", "--interval", "10ms"]);
    assert_eq!(out.matches("joined, view").count(), 3, "{out}");
    assert!(out.contains("round 3: beats from ranks 0, 1, 2"), "{out}");
    assert_eq!(out.matches("done after 3 rounds").count(), 3, "{out}");
    assert!(out.contains("3 members finished"), "{out}");
}

/// What a member printed, line by line, as it printed it.
enum Line {
    Out(usize, String),
    Closed(usize),
}

fn start_member(name: &str, args: &[&str], url: &str, env: &LaunchEnv) -> Child {
    let mut command = command(name, args, url);
    env.set_on(&mut command);
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    command.spawn().expect("example starts")
}

#[test]
fn heartbeats_go_on_in_the_renumbered_view_when_a_member_is_killed() {
    let broker = TestBroker::start();
    let url = broker.url();
    // Rounds enough to outlast the test: the run ends only because a member was lost.
    let args = [
        "--rounds",
        "1000000",
        "--interval",
        "20ms",
        "--after-loss",
        "3",
    ];
    let (tx, rx) = mpsc::channel();
    let mut members: Vec<Child> = LaunchEnv::for_group("heartbeats-kill", 3)
        .iter()
        .enumerate()
        .map(|(i, env)| {
            let mut child = start_member("heartbeats", &args, &url, env);
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(Line::Out(i, line));
                }
                let _ = tx.send(Line::Closed(i));
            });
            child
        })
        .collect();
    drop(tx);
    let deadline = Instant::now() + LIMIT;
    let next = |what: &str| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no line while waiting for {what}"))
    };
    // Which process has which rank, from their first lines.
    let mut rank_of = [None; 3];
    let mut lines = vec![Vec::new(); 3];
    while rank_of.iter().any(Option::is_none) {
        if let Line::Out(i, line) = next("the joins") {
            if let Some(rank) = line
                .strip_prefix("rank ")
                .filter(|_| line.contains("joined, view"))
                .and_then(|rest| rest.split(' ').next())
            {
                rank_of[i] = Some(rank.parse::<usize>().unwrap());
            }
            lines[i].push(line);
        }
    }
    // Kill rank 1 once a round has gone by with everyone: rank 2 must become rank 1.
    let first = |rank| rank_of.iter().position(|&r| r == Some(rank)).unwrap();
    let (zero, one, two) = (first(0), first(1), first(2));
    loop {
        if let Line::Out(i, line) = next("a full round") {
            let full = line.contains("beats from ranks 0, 1, 2");
            lines[i].push(line);
            if full {
                break;
            }
        }
    }
    members[one].kill().unwrap(); // SIGKILL
    members[one].wait().unwrap();
    let mut closed = 0;
    while closed < 2 {
        match next("the survivors' end") {
            Line::Out(i, line) => lines[i].push(line),
            Line::Closed(i) if i != one => closed += 1,
            Line::Closed(_) => {}
        }
    }
    for i in [zero, two] {
        let status = members[i].wait().unwrap();
        assert!(status.success(), "{:?}: {:?}", status, lines[i]);
        let out = lines[i].join("\n");
        assert_plain("heartbeats", &out);
        assert!(out.contains("members, rank 1 gone;"), "{out}");
        assert!(out.contains("done after"), "{out}");
        assert!(
            out.contains("view") && out.contains("of 2 members"),
            "{out}"
        );
    }
    let zero_out = lines[zero].join("\n");
    let two_out = lines[two].join("\n");
    assert!(
        zero_out.contains("has 2 members, rank 1 gone; still rank 0"),
        "{zero_out}"
    );
    assert!(
        two_out.contains("has 2 members, rank 1 gone; now rank 1"),
        "{two_out}"
    );
    assert!(two_out.contains("\nrank 1: done after"), "{two_out}");
    // Rank 0 counted beats from both survivors after the loss.
    assert!(zero_out.contains("beats from ranks 0, 1\n"), "{zero_out}");
    // Both survivors ended at the same round.
    let last = |out: &str| {
        out.lines()
            .last()
            .unwrap()
            .split(" rounds")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        last(&zero_out).split("after ").nth(1),
        last(&two_out).split("after ").nth(1)
    );
}
