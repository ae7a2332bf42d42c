//! `zhub sim run --serve` in a real browser: headless Chromium loads the live page, a real
//! click (Chromium's DevTools protocol, `Input.dispatchMouseEvent` at the message's place)
//! drops a message in flight, the run's trace records `drop #N` and the message is never
//! delivered; the command printed at the end replays the run to the same trace hash. A
//! screenshot is written to `target/sim-live.png` for a person to look at.
//!
//! Skipped, saying so, where `/usr/bin/chromium` is missing (`apt-get install -y chromium`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{deadline, Reaped, ZHUB};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const LIMIT: Duration = Duration::from_secs(150);
/// Longest any one wait of the test may take.
const WAIT: Duration = Duration::from_secs(30);

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is target/tmp, wherever the target directory is.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Polls `probe` until it gives a value, failing the test after [`WAIT`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request to `address`: the status and the body.
fn http(address: &str, method: &str, path: &str) -> (u16, String) {
    try_http(address, method, path).unwrap_or_else(|| panic!("{method} {path}: no answer"))
}

/// [`http`], or `None` when nothing (or no HTTP) came back. The body is read by its
/// `Content-Length` (Chromium's DevTools keep the connection open).
fn try_http(address: &str, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(WAIT)).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).ok()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        // Large bodies come in chunks: a hex size line, the bytes, a line end; size 0 ends.
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length?, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((status, String::from_utf8(body).ok()?))
}

fn api(address: &str, method: &str, path: &str) -> Value {
    let (status, body) = http(address, method, path);
    assert_eq!(status, 200, "{method} {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The `zhub` command under test, its standard output read line by line.
struct Cli {
    child: Reaped,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Cli {
    fn start(args: &[&str]) -> Cli {
        let mut child = Command::new(ZHUB)
            .args(args)
            .env("RUST_LOG", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("zhub runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Cli {
            child: Reaped(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line holding `text`, waiting for it.
    fn line(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let give_up = Instant::now() + WAIT;
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "zhub printed no {text:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// Headless Chromium on one page, driven over its DevTools protocol.
struct Browser {
    _child: Reaped,
    socket: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Browser {
    fn open(url: &str, profile: &Path) -> Browser {
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1366,768",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let child = Reaped(child);
        // Chromium says where its DevTools listen on stderr; the rest is drained so that it
        // never blocks on a full pipe.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = tx.send(line[at..].trim().to_string());
                }
            }
        });
        let browser_ws = rx.recv_timeout(WAIT).expect("chromium's DevTools address");
        let address = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let page_ws = wait_for("the page's DevTools target", || {
            let (_, body) = try_http(&address, "GET", "/json/list")?;
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets.as_array()?.iter().find_map(|t| {
                let page = t["type"] == "page" && t["url"].as_str()?.starts_with(url);
                page.then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_string))?
            })
        });
        let stream = TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let (socket, _) = tungstenite::client(page_ws.as_str(), stream).expect("DevTools socket");
        Browser {
            _child: child,
            socket,
            next: 0,
        }
    }

    /// Calls a DevTools method and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let request = json!({ "id": id, "method": method, "params": &params });
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .unwrap();
        let give_up = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < give_up, "no answer to {method}");
            let message = self
                .socket
                .read()
                .unwrap_or_else(|e| panic!("no DevTools answer to {method} {params:.120}: {e}"));
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(reply) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page (reading it, not acting on it).
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// A real left click at a point of the page, as a mouse gives it.
    fn click(&mut self, x: f64, y: f64) {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            );
        }
    }

    /// The centre of the element `selector` selects.
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let point = self.eval(&format!(
            "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ));
        (point[0].as_f64().unwrap(), point[1].as_f64().unwrap())
    }
}

/// Reads standard base64 (what `Page.captureScreenshot` sends).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &s)| n | (u32::from(s) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn a_click_in_the_page_drops_a_message_and_the_run_replays() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let actions = dir.path().join("actions.txt");
        let actions_arg = actions.display().to_string();
        let mut cli = Cli::start(&[
            "sim",
            "run",
            "abd",
            "--seed",
            "11",
            "--ops",
            "300",
            "--latency",
            "5ms..20ms",
            "--serve",
            "127.0.0.1:0",
            "--save-actions",
            &actions_arg,
        ]);
        let line = cli.line("http://");
        let url = line[line.find("http://").unwrap()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let address = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        assert!(!address.ends_with(":0"), "the real port is printed: {line}");

        // Some messages in flight between nodes before the page loads.
        api(&address, "POST", "/api/advance?to=30000000");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser::open(&url, profile.path());
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": false }),
        );
        wait_for("the page's first state", || {
            let drawn = browser.eval(
                "Number(document.body.dataset.updates || 0) >= 1 && \
                 document.querySelectorAll('.msg:not(.client)').length > 0",
            );
            (drawn == true).then_some(())
        });

        // A message between nodes with no other near it, so that the click is on it alone.
        let target = browser.eval(
            "(() => { const all = [...document.querySelectorAll('[data-message]')].map((g) => { \
               const r = g.querySelector('circle.dot').getBoundingClientRect(); \
               return { n: Number(g.dataset.message), peer: !g.classList.contains('client'), \
                        x: r.x + r.width / 2, y: r.y + r.height / 2 }; }); \
             return all.find((m) => m.peer && all.every((o) => o === m || Math.hypot(o.x - m.x, o.y - m.y) > 24)) || null; })()",
        );
        assert!(!target.is_null(), "no message stands alone to click");
        let number = target["n"].as_u64().unwrap();
        let (x, y) = (target["x"].as_f64().unwrap(), target["y"].as_f64().unwrap());
        let under = browser.eval(&format!(
            "(document.elementFromPoint({x}, {y}).closest('[data-message]') || {{}}).dataset?.message"
        ));
        assert_eq!(
            under,
            json!(number.to_string()),
            "the message is what lies at ({x}, {y})"
        );
        let sent = api(&address, "GET", &format!("/api/message?n={number}"));
        assert_eq!(sent["delivered"], Value::Null, "in flight when clicked");

        browser.click(x, y);
        let drop = format!("drop #{number}");
        wait_for("the drop in the run's actions", || {
            let state = api(&address, "GET", "/api/state");
            let actions = state["snapshot"]["actions"].as_array().unwrap().clone();
            actions
                .iter()
                .any(|a| a["fault"] == drop.as_str())
                .then_some(())
        });
        wait_for("the message gone from the page", || {
            let gone = browser.eval(&format!(
                "!document.querySelector('[data-message=\"{number}\"]')"
            ));
            (gone == true).then_some(())
        });

        // A click on a node crashes it; one on a link (where no message lies on it) cuts it
        // both ways.
        let (nx, ny) = browser.centre("[data-node=\"n5\"] circle");
        browser.click(nx, ny);
        let link = browser.eval(
            "(() => { const line = document.querySelector('[data-link=\"n1-n3\"] line.hit'); \
             const [x1, y1, x2, y2] = ['x1', 'y1', 'x2', 'y2'].map((a) => line[a].baseVal.value); \
             const m = line.getScreenCTM(); \
             for (let f = 0.3; f <= 0.7; f += 0.02) { \
               const p = new DOMPoint(x1 + (x2 - x1) * f, y1 + (y2 - y1) * f).matrixTransform(m); \
               const hit = document.elementFromPoint(p.x, p.y); \
               if (hit && hit.closest('[data-link]') === line.parentNode) return [p.x, p.y]; } \
             return null; })()",
        );
        assert!(!link.is_null(), "no free point on the link n1-n3");
        browser.click(link[0].as_f64().unwrap(), link[1].as_f64().unwrap());
        wait_for("the crash and the cut in the run's actions", || {
            let state = api(&address, "GET", "/api/state");
            let faults: Vec<String> = state["snapshot"]["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["fault"].as_str().unwrap_or("").to_string())
                .collect();
            let want = ["crash n5", "block n1 n3", "block n3 n1"];
            want.iter()
                .all(|w| faults.iter().any(|f| f == w))
                .then_some(())
        });

        // Play a little with real clicks on the page's own buttons, then pause: the clock
        // moves on and the history beside it is redrawn.
        let (px, py) = browser.centre("#play");
        browser.click(px, py);
        wait_for("the clock to move on", || {
            let now = browser.eval("Number(document.body.dataset.now)");
            (now.as_u64().unwrap_or(0) > 150_000_000).then_some(())
        });
        browser.click(px, py);
        wait_for("the history drawn beside", || {
            let ready = browser.eval(
                "(() => { const d = document.getElementById('history').contentDocument; \
                 const t = d && d.getElementById('timeline'); \
                 const at = d ? Number(new URL(d.URL).searchParams.get('at')) : 0; \
                 return !!t && d.readyState === 'complete' && t.width > 0 && at > 150000000; })()",
            );
            (ready == true).then_some(())
        });
        // Two frames of the history's own, so that it is painted before the picture; headless
        // Chromium may run no frame for a page that changes nothing, so a timer ends the wait
        // too (the screenshot itself draws a frame).
        browser.call(
            "Runtime.evaluate",
            json!({
                "expression": "new Promise((done) => { \
                    document.getElementById('history').contentWindow\
                      .requestAnimationFrame(() => requestAnimationFrame(() => done(true))); \
                    setTimeout(() => done(false), 1000); })",
                "awaitPromise": true,
                "returnByValue": true,
            }),
        );
        let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let file = target_dir().join("sim-live.png");
        std::fs::write(&file, &png).unwrap();
        eprintln!("screenshot: {}", file.display());

        // To the end: the dropped message was never delivered, and the trace says so.
        let end = api(&address, "POST", "/api/advance?end=1");
        assert_eq!(end["snapshot"]["over"], true);
        let message = api(&address, "GET", &format!("/api/message?n={number}"));
        assert_eq!(message["delivered"], Value::Null, "#{number} was delivered");
        let report = api(&address, "GET", "/api/report");
        assert_eq!(report["over"], true);
        assert_eq!(report["verdict"]["ok"], true, "{}", report["verdict"]);

        // The command prints the run, its actions and how to replay it.
        let trace = cli.line("trace ");
        cli.line(&drop);
        let replay = cli.line("replay ");
        let words: Vec<&str> = replay.split_whitespace().skip(1).collect();
        assert_eq!(words[0], "zhub", "{replay}");
        assert!(
            replay.contains(&format!("--nemesis-file {actions_arg}")),
            "{replay}"
        );
        let written = std::fs::read_to_string(&actions).unwrap();
        assert!(written.contains(&drop), "{written}");
        let again = Command::new(ZHUB)
            .args(&words[1..])
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
        let again = String::from_utf8(again.stdout).unwrap();
        assert!(
            again.lines().any(|l| l == trace),
            "the replay's trace differs: {trace:?}\n{again}"
        );
        drop_cli(cli);
    });
}

/// Ctrl-C ends serving; the command exits 0 (the run passed its check).
fn drop_cli(mut cli: Cli) {
    let pid = cli.child.0.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let give_up = Instant::now() + WAIT;
    loop {
        if let Some(status) = cli.child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        assert!(Instant::now() < give_up, "zhub did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}
