//! Workers with credit: a worker that takes several requests at once is kept that busy by the
//! broker, answers them in any order, and when it dies every request it held is served by
//! another worker, each client getting one reply.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{deadline, kill9, start_with, Transport};
use zhub_client::Client;
use zhub_protocol::builtin::ServiceInfo;
use zhub_worker::WorkerOptions;

const LIMIT: Duration = Duration::from_secs(60);
const HEARTBEAT: Duration = Duration::from_millis(100);
/// The variable that makes [`holder_process`] a worker that holds its requests.
const ROLE: &str = "ZHUB_TEST_CREDIT_HOLDER";

/// Waits until `service` shows `in_flight` requests held by workers and `queued` waiting.
fn wait_for(client: &mut Client, service: &str, in_flight: u64, queued: u64) {
    loop {
        let list: Vec<ServiceInfo> = client.request("zhub.services", &()).unwrap();
        if list
            .iter()
            .any(|s| s.name == service && s.in_flight == in_flight && s.queued == queued)
        {
            return;
        }
        std::thread::yield_now();
    }
}

/// Starts `clients` client threads, each sending one request `"i"` to `service` and
/// returning the one reply it gets.
fn clients(
    url: &str,
    service: &'static str,
    clients: usize,
) -> Vec<std::thread::JoinHandle<Vec<u8>>> {
    (0..clients)
        .map(|i| {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let mut client = Client::connect(&url).unwrap();
                let id = client
                    .send_request_bytes(service, i.to_string().as_bytes(), Duration::from_secs(30))
                    .unwrap();
                let (got, reply) = client.recv_reply().unwrap();
                assert_eq!(got, id);
                // One reply and no more: nothing else is owed to this client.
                assert_eq!(client.in_flight(), 0);
                reply.unwrap()
            })
        })
        .collect()
}

#[test]
fn a_worker_with_credit_receives_that_many_and_replies_reach_their_clients_in_any_order() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Tcp, |_| {});
        let mut worker = WorkerOptions::new()
            .concurrency(4)
            .connect(&broker.url, "held")
            .unwrap();
        let pending = clients(&broker.url, "held", 4);
        // All four reach the worker before it answers any.
        let mut requests: Vec<_> = (0..4).map(|_| worker.recv().unwrap()).collect();
        let mut watcher = Client::connect(&broker.url).unwrap();
        wait_for(&mut watcher, "held", 4, 0);
        // A fifth waits in the broker: the worker has no credit left.
        let fifth = clients(&broker.url, "held", 1);
        wait_for(&mut watcher, "held", 4, 1);
        // Answer in the reverse order of arrival; each reply names the request it answers.
        requests.reverse();
        for request in &requests {
            let reply = [b"re: ".as_slice(), request.body()].concat();
            worker.reply(request, &reply).unwrap();
        }
        for (i, client) in pending.into_iter().enumerate() {
            assert_eq!(client.join().unwrap(), format!("re: {i}").into_bytes());
        }
        let last = worker.recv().unwrap();
        assert_eq!(
            last.body(),
            b"0",
            "the fifth client's request, once a slot was free"
        );
        worker.reply(&last, b"re: 0").unwrap();
        for client in fifth {
            assert_eq!(client.join().unwrap(), b"re: 0");
        }
    });
}

#[test]
fn run_with_concurrency_serves_that_many_requests_at_once() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |_| {});
        let worker = WorkerOptions::new()
            .concurrency(4)
            .connect(&broker.url, "pool")
            .unwrap();
        let stop = worker.stopper();
        // No handler can answer until four hold a request at the same time.
        let together = Arc::new(Barrier::new(4));
        let serving = std::thread::spawn(move || {
            worker.run(move |body| {
                together.wait();
                [b"pooled: ".as_slice(), body].concat()
            })
        });
        for (i, client) in clients(&broker.url, "pool", 4).into_iter().enumerate() {
            assert_eq!(client.join().unwrap(), format!("pooled: {i}").into_bytes());
        }
        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

/// `run_inline` serves on one thread yet keeps its credit: while the handler holds the first
/// request, the broker has sent the worker all four, and none waits in the broker's queue.
#[test]
fn run_inline_with_concurrency_has_that_many_sent_to_it_while_one_is_served() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |_| {});
        let worker = WorkerOptions::new()
            .concurrency(4)
            .connect(&broker.url, "inline")
            .unwrap();
        let stop = worker.stopper();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let serving = std::thread::spawn(move || {
            let mut first = true;
            worker.run_inline(move |body| {
                if std::mem::take(&mut first) {
                    held_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                }
                [b"inline: ".as_slice(), body].concat()
            })
        });
        let replies = clients(&broker.url, "inline", 4);
        held_rx.recv().unwrap();
        let mut probe = Client::connect(&broker.url).unwrap();
        wait_for(&mut probe, "inline", 4, 0);
        go_tx.send(()).unwrap();
        let mut got: Vec<Vec<u8>> = replies.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort();
        let want: Vec<Vec<u8>> = (0..4)
            .map(|i| format!("inline: {i}").into_bytes())
            .collect();
        assert_eq!(got, want);
        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

/// As a holder process (the variable set): a worker with concurrency 4 that takes four
/// requests, says so, and holds them until killed. As a plain test: nothing.
#[test]
fn holder_process() {
    let Ok(url) = std::env::var(ROLE) else {
        return;
    };
    let mut worker = WorkerOptions::new()
        .concurrency(4)
        .heartbeat(HEARTBEAT)
        .connect(&url, "doomed")
        .unwrap();
    let held: Vec<_> = (0..4).map(|_| worker.recv().unwrap()).collect();
    println!("holding {}", held.len());
    std::thread::sleep(Duration::from_secs(3600));
}

fn spawn_holder(url: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "holder_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, url)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the holder however the test ends.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_of_a_worker_holding_four_requests_serves_all_four_elsewhere() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |c| c.heartbeat = HEARTBEAT);
        let mut holder = Holder(spawn_holder(&broker.url));
        let pending = clients(&broker.url, "doomed", 4);
        let mut watcher = Client::connect(&broker.url).unwrap();
        wait_for(&mut watcher, "doomed", 4, 0);
        kill9(&mut holder.0);

        let worker = WorkerOptions::new()
            .concurrency(4)
            .heartbeat(HEARTBEAT)
            .connect(&broker.url, "doomed")
            .unwrap();
        let stop = worker.stopper();
        let serving =
            std::thread::spawn(move || worker.run(|body| [b"saved: ".as_slice(), body].concat()));
        for (i, client) in pending.into_iter().enumerate() {
            assert_eq!(client.join().unwrap(), format!("saved: {i}").into_bytes());
        }
        // The broker learns of the death by a heartbeat it cannot route or by the worker's
        // silence, whichever comes first; either way all four went back to the queue.
        let stats = watcher.stats().unwrap();
        assert_eq!(stats.requests.requeued, 4, "{stats:?}");
        stop.stop();
        serving.join().unwrap().unwrap();
    });
}

#[test]
fn a_waker_ends_a_wait_for_requests_early_and_requests_still_come() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |_| {});
        let mut worker = WorkerOptions::new()
            .concurrency(2)
            .connect(&broker.url, "woken")
            .unwrap();
        let waker = worker.waker().unwrap();
        // Woken before the wait: the wait returns at once, and the wakes merge into one.
        waker.wake();
        waker.wake();
        let started = std::time::Instant::now();
        assert!(worker
            .recv_timeout(Duration::from_secs(20))
            .unwrap()
            .is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        // Most likely mid-wait; before it would do as well (nothing waits on this pause).
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
            waker
        });
        let started = std::time::Instant::now();
        assert!(worker
            .recv_timeout(Duration::from_secs(20))
            .unwrap()
            .is_none());
        assert!(started.elapsed() < Duration::from_secs(10));
        let _waker = other.join().unwrap();
        // A wait with nothing to wake it lasts its timeout.
        let started = std::time::Instant::now();
        assert!(worker
            .recv_timeout(Duration::from_millis(150))
            .unwrap()
            .is_none());
        assert!(started.elapsed() >= Duration::from_millis(150));

        let url = broker.url.clone();
        let client = std::thread::spawn(move || {
            let mut client = Client::connect(&url).unwrap();
            client.request_bytes("woken", b"hi").unwrap()
        });
        let request = loop {
            if let Some(request) = worker.recv_timeout(Duration::from_secs(5)).unwrap() {
                break request;
            }
        };
        worker.reply(&request, b"ho").unwrap();
        assert_eq!(client.join().unwrap(), b"ho");
    });
}

#[test]
fn no_wake_is_lost_however_closely_wakes_follow_waits() {
    // A lost wake leaves the wait below blocked for an hour: the deadline catches it.
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |_| {});
        let mut worker = WorkerOptions::new().connect(&broker.url, "woken").unwrap();
        let waker = worker.waker().unwrap();
        let (events, inbox) = std::sync::mpsc::channel::<u32>();
        let (acks, acked) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            for i in 0..2000 {
                events.send(i).unwrap();
                waker.wake();
                acked.recv().unwrap();
            }
        });
        let mut seen = 0;
        while seen < 2000 {
            assert!(worker
                .recv_timeout(Duration::from_secs(3600))
                .unwrap()
                .is_none());
            while let Ok(i) = inbox.try_recv() {
                assert_eq!(i, seen);
                seen += 1;
                acks.send(()).unwrap();
            }
        }
        other.join().unwrap();
    });
}

#[test]
fn a_reply_after_the_worker_stopped_is_refused_rather_than_left_hanging() {
    deadline(LIMIT, || {
        let broker = start_with(Transport::Ipc, |_| {});
        let mut worker = WorkerOptions::new()
            .concurrency(2)
            .connect(&broker.url, "stopping")
            .unwrap();
        let url = broker.url.clone();
        let client = std::thread::spawn(move || {
            let mut client = Client::connect(&url).unwrap();
            let quick = zhub_client::RequestOptions::new().timeout(Duration::from_millis(500));
            let _ = client.request_bytes_with("stopping", b"x", &quick);
        });
        let request = loop {
            if let Some(request) = worker.recv_timeout(Duration::from_secs(5)).unwrap() {
                break request;
            }
        };
        worker.stopper().stop();
        while worker.recv_timeout(Duration::from_secs(5)).is_ok() {}
        assert!(matches!(
            worker.reply(&request, b"late"),
            Err(zhub_worker::WorkerError::Stopped)
        ));
        client.join().unwrap();
    });
}
