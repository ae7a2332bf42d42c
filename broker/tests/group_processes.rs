//! Process groups across real processes: a member killed with SIGKILL while it holds the
//! critical section. This test binary runs itself as the member processes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{deadline, kill9, start, Transport};
use zhub_client::{Client, Group, GroupOptions};

const ROLE: &str = "ZHUB_TEST_MEMBER_OF";
const BARRIERS_ROLE: &str = "ZHUB_TEST_BARRIERS_OF";
const PROCESSES: usize = 5;
const ROUNDS: u32 = 200;

fn fast() -> GroupOptions {
    GroupOptions::new()
        .heartbeat(Duration::from_millis(50))
        .dead_after(Duration::from_millis(400))
        .join_timeout(Duration::from_secs(20))
}

/// As a member process (the variable set): join, say the rank, take the critical section,
/// say so, and hold it until killed. As a plain test: nothing.
#[test]
fn member_process() {
    let Ok(url) = std::env::var(ROLE) else {
        return;
    };
    let client = Client::connect(&url).unwrap();
    let mut group = Group::join_with(&client, "killed", Some(4), fast()).unwrap();
    println!("rank {}", group.rank().unwrap());
    let guard = group.lock(Duration::from_secs(30)).unwrap();
    println!(
        "holding {} generation {}",
        guard.member_id(),
        guard.generation()
    );
    std::thread::sleep(Duration::from_secs(3600));
}

/// As a barrier process (the variable set): 200 barriers with uneven work between them.
#[test]
fn barrier_process() {
    let Ok(url) = std::env::var(BARRIERS_ROLE) else {
        return;
    };
    let client = Client::connect(&url).unwrap();
    let options = GroupOptions::new().join_timeout(Duration::from_secs(30));
    let mut group = Group::join_with(&client, "rounds", Some(PROCESSES), options).unwrap();
    let mut x = group.member_id() | 1;
    for _ in 0..ROUNDS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(x % 1500));
        group.barrier(Duration::from_secs(30)).unwrap();
    }
    println!("done");
}

#[test]
fn five_processes_pass_200_barriers_without_deadlock() {
    deadline(Duration::from_secs(120), || {
        let broker = start(Transport::Ipc);
        let mut children = Members(
            (0..PROCESSES)
                .map(|_| {
                    Command::new(std::env::current_exe().unwrap())
                        .args([
                            "barrier_process",
                            "--exact",
                            "--nocapture",
                            "--test-threads=1",
                        ])
                        .env(BARRIERS_ROLE, &broker.url)
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        for child in &mut children.0 {
            let out = BufReader::new(child.stdout.take().unwrap());
            let lines: Vec<String> = out.lines().map_while(Result::ok).collect();
            assert!(lines.iter().any(|l| l.ends_with("done")), "{lines:?}");
            assert!(child.wait().unwrap().success());
        }
    });
}

fn spawn_member(url: &str, id: usize, lines: mpsc::Sender<(usize, String)>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "member_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if lines.send((id, line)).is_err() {
                break;
            }
        }
    });
    child
}

#[test]
fn a_member_killed_in_the_critical_section_is_replaced_and_survivors_go_on() {
    deadline(Duration::from_secs(90), || {
        let broker = start(Transport::Ipc);
        let (tx, rx) = mpsc::channel();
        let mut children = Members(
            (0..3)
                .map(|id| spawn_member(&broker.url, id, tx.clone()))
                .collect(),
        );
        let client = Client::connect(&broker.url).unwrap();
        let observer = Group::join_with(&client, "killed", Some(4), fast()).unwrap();
        let before = observer.view();
        assert_eq!(before.size(), 4);

        let holding = |rx: &mpsc::Receiver<(usize, String)>| loop {
            let (id, line) = rx.recv_timeout(Duration::from_secs(30)).expect("a line");
            if line.starts_with("holding") {
                break (id, line);
            }
        };
        let (first, line) = holding(&rx);
        assert!(line.ends_with("generation 0"), "{line}");
        let killed: u64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        kill9(&mut children.0[first]);

        // Another member gets a token made anew, once.
        let (second, line) = holding(&rx);
        assert_ne!(second, first);
        assert!(line.ends_with("generation 1"), "{line}");
        // The view changed within the timeout, without the killed member, ranks recomputed.
        let mut view = observer.view();
        while view.members.contains(&killed) {
            view = observer
                .wait_view(view.version, Duration::from_secs(10))
                .expect("a view change");
        }
        assert_eq!(view.size(), 3);
        assert!(view.version > before.version);
        let expected: Vec<u64> = before
            .members
            .iter()
            .copied()
            .filter(|&m| m != killed)
            .collect();
        assert_eq!(view.members, expected, "survivors keep their order");
    });
}

/// The member processes, killed when the test ends however it ends.
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
