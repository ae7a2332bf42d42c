//! What the broker writes to its log when peers misbehave: names are escaped, never written
//! raw, and a flood of bad input is a handful of warnings, not one per message.
//!
//! The tests of this binary share one global log subscriber writing to memory; they take
//! turns (`TURN`) so that each reads only its own lines.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use common::{deadline, start, Transport};
use zhub_client::{Client, RequestErrorKind};
use zhub_protocol::group::{GroupRequest, GROUP_SERVICE};
use zhub_protocol::{body, Reply, Request, Status};

const LIMIT: Duration = Duration::from_secs(60);

/// Everything logged in this process since the last [`take_log`].
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static TURN: Mutex<()> = Mutex::new(());

/// Installs the capturing subscriber once (INFO and above, no colours, so that every escape
/// byte in the log comes from logged data) and takes this test's turn.
fn capture() -> (MutexGuard<'static, ()>, Captured) {
    static LOG: OnceLock<Captured> = OnceLock::new();
    let log = LOG
        .get_or_init(|| {
            let log = Captured::default();
            let writer = log.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            log
        })
        .clone();
    let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    take_log(&log);
    (turn, log)
}

fn take_log(log: &Captured) -> String {
    let bytes = std::mem::take(&mut *log.0.lock().unwrap_or_else(PoisonError::into_inner));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn raw_dealer(ctx: &zmq::Context, url: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::DEALER).unwrap();
    s.set_linger(0).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.connect(url).unwrap();
    s
}

#[test]
fn names_with_control_characters_are_refused_and_never_written_raw() {
    let (_turn, log) = capture();
    deadline(LIMIT, move || {
        let broker = start(Transport::Ipc);
        let ctx = zmq::Context::new();
        let raw = raw_dealer(&ctx, &broker.url);
        let forged = "x\n2030-01-01T00:00:00.000000Z ERROR zhub_broker: forged line";
        for (id, group) in [(1u64, forged), (2, "\x1b[2J\x1b[31mred"), (3, "nul\0")] {
            let join = GroupRequest::Join {
                group: group.into(),
                member: id,
                expected: None,
                dead_after_ms: 1000,
            };
            let request = Request {
                id,
                service: GROUP_SERVICE.into(),
                timeout: Duration::from_secs(5),
                body: vec![body::encode(&join).unwrap()],
            };
            let mut frames = vec![Vec::new()];
            frames.extend(request.encode());
            raw.send_multipart(frames, 0).unwrap();
            let reply = raw.recv_multipart(0).unwrap();
            let reply = Reply::decode(&reply[1..]).unwrap();
            assert_eq!(
                (reply.id, reply.status),
                (id, Status::BadRequest),
                "{group:?}"
            );
            assert!(reply.reason().contains("group"), "{}", reply.reason());
        }
        // Every plane checks its names with its own rule.
        let mut client = Client::connect(&broker.url).unwrap();
        let err = client.kv().put("bad\nkey", &1).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        let err = client.log().create("a/b", Default::default()).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        let err = client.log().journal("a\x1b", "s").unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::BadRequest, "{err}");
        drop(client);
        drop(broker);
        let text = take_log(&log);
        assert!(
            !text.contains('\x1b'),
            "an escape byte reached the log:\n{text}"
        );
        assert!(!text.contains('\0'), "a NUL reached the log:\n{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.contains("forged line") && !l.contains("\\n")),
            "a forged line in the log:\n{text}"
        );
    });
}

#[test]
fn a_flood_of_malformed_worker_messages_is_a_handful_of_warnings() {
    let (_turn, log) = capture();
    deadline(LIMIT, move || {
        let broker = start(Transport::Ipc);
        let ctx = zmq::Context::new();
        let raw = raw_dealer(&ctx, &broker.url);
        let flood = 1000u64;
        for i in 0..flood {
            // MDPW01 with an unknown command byte.
            raw.send_multipart([&b""[..], &b"MDPW01"[..], &[0x70 + (i % 8) as u8][..]], 0)
                .unwrap();
        }
        let mut client = Client::connect(&broker.url).unwrap();
        let started = std::time::Instant::now();
        while client.stats().unwrap().requests.malformed < flood {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "flood not handled"
            );
            std::thread::yield_now();
        }
        drop(client);
        drop(broker);
        let text = take_log(&log);
        let warnings = text
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("malformed worker message"))
            .count();
        // The 1st, 2nd, 4th, ... 512th: ten lines for a thousand messages.
        assert!(
            (1..=11).contains(&warnings),
            "{warnings} warnings for {flood} malformed messages"
        );
    });
}
