//! `zhub sim run ... --serve IP:PORT`: one run of the simulator, live in a web page, driven
//! from the page and served on this command's own thread (the run is a plain state machine:
//! no lock, no second thread).
//!
//! The page (HTML, CSS and JavaScript compiled into the binary) draws the nodes on a circle
//! with messages moving along the links as the simulated clock advances, the clients, and
//! beside them the history as the HTML report draws it (the report page itself, at
//! `/report`). Its clicks are actions of the run ([`zhub_sim::kernel::LiveRun::inject`]):
//! recorded with their simulated times, so that the seed and the actions replay the run
//! exactly; when the run ends the command prints its summary, the actions, and the command
//! that replays it (writing the schedule file it needs).
//!
//! | path | reply |
//! |------|-------|
//! | `GET /` | the page |
//! | `GET /api/state` | the run's settings and a [`zhub_sim::kernel::Snapshot`] |
//! | `POST /api/advance?to=NS` | handle every event up to simulated time `NS`, then the state |
//! | `POST /api/advance?by=NS` | the same, `NS` past the clock |
//! | `POST /api/advance?step=N` | handle the next `N` events (1 to 10,000) |
//! | `POST /api/advance?end=1` | run to the end |
//! | `POST /api/action?do=drop&message=N` | lose message `N`, in flight |
//! | `POST /api/action?do=cut&a=n1&b=n2` | cut the link between two nodes, both ways |
//! | `POST /api/action?do=heal&a=n1&b=n2` | heal it, both ways (each way that was cut) |
//! | `POST /api/action?do=crash&node=n2` | also `restart`, `pause`, `resume` |
//! | `POST /api/action?do=heal-all` | make every link whole |
//! | `GET /api/report` | the report's data (see [`zhub_sim::report`]) with the check's verdict |
//! | `GET /report` | the report page of the history so far |
//! | `GET /api/message?n=N` | message `N`'s record: sender, receiver, times, label |
//!
//! Other paths are answered 404, bad parameters 400, an action the run refuses (over, or a
//! message no longer in flight) 409, and a method other than the one listed 405.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tiny_http::{Header, Method, Response, Server};
use zhub_sim::algorithms::Algorithm;
use zhub_sim::faults::{Fault, Plan};
use zhub_sim::history::History;
use zhub_sim::kernel::{LiveError, LiveRun, Snapshot};
use zhub_sim::trace::MessageRecord;
use zhub_sim::{NodeId, RunResult, SimConfig};

use crate::sim::{command_without, judge, print_summary, Judgement, RunArgs};

/// How often the loop looks up from the socket for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);
/// Events one `step` request handles at most.
const MAX_STEPS: u64 = 10_000;

const PAGE_HTML: &str = include_str!("sim_live/live.html");
const PAGE_CSS: &str = include_str!("sim_live/live.css");
const PAGE_JS: &str = include_str!("sim_live/live.js");

/// One live run and what became of it.
pub(crate) struct Session {
    algorithm: &'static Algorithm,
    config: SimConfig,
    title: String,
    /// The run, until it is over and finished.
    run: Option<Box<dyn LiveRun>>,
    /// Once over: the last snapshot, the result and the check.
    done: Option<Done>,
}

struct Done {
    snapshot: Snapshot,
    result: RunResult,
    judgement: Judgement,
}

/// An HTTP reply before it is sent.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }

    fn error(status: u16, text: &str) -> Reply {
        Reply::json(status, &json!({ "error": text }))
    }

    fn html(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
        }
    }
}

impl Session {
    pub(crate) fn new(algorithm: &'static Algorithm, config: SimConfig) -> Session {
        let run = (algorithm.live)(&config);
        Session {
            algorithm,
            title: format!("zhub sim: {}, seed {}", algorithm.name, config.seed),
            config,
            run: Some(run),
            done: None,
        }
    }

    /// Finishes the run once it is over: its result, checked.
    fn settle(&mut self) {
        let over = self.run.as_ref().is_some_and(|run| run.is_over());
        if !over {
            return;
        }
        if let Some(run) = self.run.take() {
            let snapshot = run.snapshot();
            let result = run.finish();
            let judgement = judge(&self.config, &result);
            self.done = Some(Done {
                snapshot,
                result,
                judgement,
            });
        }
    }

    /// Runs to the end (Ctrl-C, or the page's "to the end").
    fn run_to_end(&mut self) {
        if let Some(run) = self.run.as_mut() {
            while run.step() {}
        }
        self.settle();
    }

    fn snapshot(&self) -> Snapshot {
        match (&self.run, &self.done) {
            (Some(run), _) => run.snapshot(),
            (None, Some(done)) => done.snapshot.clone(),
            (None, None) => unreachable!("a session has a run or its result"),
        }
    }

    fn parts(&self) -> (&History, &[MessageRecord]) {
        match (&self.run, &self.done) {
            (Some(run), _) => (run.history(), run.messages()),
            (None, Some(done)) => (&done.result.history, &done.result.messages),
            (None, None) => unreachable!("a session has a run or its result"),
        }
    }

    fn state(&self) -> Value {
        let c = &self.config;
        json!({
            "title": self.title,
            "algorithm": self.algorithm.name,
            "about": self.algorithm.about,
            "seed": c.seed,
            "nodes": c.nodes,
            "clients": c.clients,
            "workload": c.workload.name(),
            "latency": c.link.latency.to_string(),
            "loss": c.link.loss,
            "verdict": self.done.as_ref().map(|d| json!({
                "ok": d.judgement.ok,
                "text": d.judgement.verdict,
            })),
            "snapshot": self.snapshot(),
        })
    }

    /// The report's data for the history so far, checked.
    fn report_data(&self) -> Value {
        let (history, messages) = self.parts();
        let checked;
        let judgement = match &self.done {
            Some(done) => &done.judgement,
            None => {
                let partial = RunResult {
                    history: history.clone(),
                    ..RunResult::default()
                };
                checked = judge(&self.config, &partial);
                &checked
            }
        };
        let mut data =
            zhub_sim::report::data(&self.title, history, messages, judgement.register.as_ref());
        data["verdict"] = json!({ "ok": judgement.ok, "text": judgement.verdict });
        data["over"] = json!(self.done.is_some());
        data
    }

    fn report_page(&self) -> Result<String, String> {
        let (history, messages) = self.parts();
        let checked;
        let register = match &self.done {
            Some(done) => done.judgement.register.as_ref(),
            None => {
                let partial = RunResult {
                    history: history.clone(),
                    ..RunResult::default()
                };
                checked = judge(&self.config, &partial);
                checked.register.as_ref()
            }
        };
        let mut page = Vec::new();
        zhub_sim::report::write_html(&mut page, &self.title, history, messages, register)
            .map_err(|e| e.to_string())?;
        String::from_utf8(page).map_err(|e| e.to_string())
    }

    /// Answers one request; never panics on what the request holds.
    fn route(&mut self, method: &Method, url: &str) -> Reply {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let params = Params::parse(query);
        let get = *method == Method::Get || *method == Method::Head;
        let post = *method == Method::Post;
        match path {
            "/" | "/api/state" | "/api/report" | "/report" | "/api/message" if !get => {
                Reply::error(405, "method not allowed: GET")
            }
            "/api/advance" | "/api/action" if !post => {
                Reply::error(405, "method not allowed: POST")
            }
            "/" => Reply::html(page()),
            "/api/state" => Reply::json(200, &self.state()),
            "/api/report" => Reply::json(200, &self.report_data()),
            "/report" => match self.report_page() {
                Ok(page) => Reply::html(page),
                Err(e) => Reply::error(500, &e),
            },
            "/api/message" => match params.number("n") {
                Ok(n) => {
                    let (_, messages) = self.parts();
                    match usize::try_from(n).ok().and_then(|i| messages.get(i)) {
                        Some(m) => Reply::json(
                            200,
                            &json!({
                                "number": n,
                                "from": m.from,
                                "to": m.to,
                                "sent": m.sent,
                                "delivered": m.delivered,
                                "label": m.label,
                            }),
                        ),
                        None => Reply::error(404, &format!("no message #{n}")),
                    }
                }
                Err(e) => Reply::error(400, &e),
            },
            "/api/advance" => match self.advance(&params) {
                Ok(()) => Reply::json(200, &self.state()),
                Err(e) => Reply::error(400, &e),
            },
            "/api/action" => match self.action(&params) {
                Ok(Ok(applied)) => {
                    let mut state = self.state();
                    state["applied"] = json!(applied);
                    Reply::json(200, &state)
                }
                Ok(Err(refused)) => Reply::error(409, &refused.to_string()),
                Err(e) => Reply::error(400, &e),
            },
            _ => Reply::error(404, &format!("no such page: {path}")),
        }
    }

    fn advance(&mut self, params: &Params) -> Result<(), String> {
        let chosen: Vec<&str> = ["to", "by", "step", "end"]
            .into_iter()
            .filter(|k| params.get(k).is_some())
            .collect();
        if chosen.len() != 1 {
            return Err("give one of to=NS, by=NS, step=N, end=1".into());
        }
        let param = chosen[0];
        let value = params.number(param)?;
        if let Some(run) = self.run.as_mut() {
            match param {
                "to" => {
                    run.advance_to(value);
                }
                "by" => {
                    let to = run.now().saturating_add(value);
                    run.advance_to(to);
                }
                "step" => {
                    if !(1..=MAX_STEPS).contains(&value) {
                        return Err(format!("step takes 1 to {MAX_STEPS} events"));
                    }
                    for _ in 0..value {
                        if !run.step() {
                            break;
                        }
                    }
                }
                _ => while run.step() {},
            }
        }
        self.settle();
        Ok(())
    }

    /// Carries out a page's action: the faults applied, or why the run refused (the outer
    /// error is a bad request).
    fn action(&mut self, params: &Params) -> Result<Result<Vec<String>, LiveError>, String> {
        let nodes = self.config.nodes;
        let node = |key: &str| -> Result<NodeId, String> {
            let word = params.get(key).ok_or(format!("{key}=nN is missing"))?;
            let n: usize = word
                .strip_prefix('n')
                .and_then(|n| n.parse().ok())
                .ok_or(format!("{key}={word:?} is not a node (n1, n2, ...)"))?;
            if n == 0 || n > nodes {
                return Err(format!("{key}={word}: the run has nodes n1 to n{nodes}"));
            }
            Ok(n - 1)
        };
        let what = params.get("do").ok_or("do=... is missing")?;
        let cut = self.snapshot().cut;
        let faults = match what {
            "drop" => vec![Fault::Drop(params.number("message")?)],
            "crash" => vec![Fault::Crash(node("node")?)],
            "restart" => vec![Fault::Restart(node("node")?)],
            "pause" => vec![Fault::Pause(node("node")?)],
            "resume" => vec![Fault::Resume(node("node")?)],
            "heal-all" => vec![Fault::Heal],
            "cut" | "heal" => {
                let (a, b) = (node("a")?, node("b")?);
                if a == b {
                    return Err("a and b are the same node".into());
                }
                let ways = [(a, b), (b, a)];
                if what == "cut" {
                    ways.iter()
                        .filter(|way| !cut.contains(way))
                        .map(|&(from, to)| Fault::Block { from, to })
                        .collect()
                } else {
                    ways.iter()
                        .filter(|way| cut.contains(way))
                        .map(|&(from, to)| Fault::Unblock { from, to })
                        .collect()
                }
            }
            other => return Err(format!("unknown action {other:?}")),
        };
        let Some(run) = self.run.as_mut() else {
            return Ok(Err(LiveError::Over));
        };
        let mut applied = Vec::new();
        for fault in faults {
            let text = fault.to_string();
            if let Err(refused) = run.inject(fault) {
                return Ok(Err(refused));
            }
            applied.push(text);
        }
        Ok(Ok(applied))
    }
}

/// A query string's parameters (no percent-decoding: the API takes numbers and names).
struct Params<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Params<'a> {
        Params(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn number(&self, key: &str) -> Result<u64, String> {
        let text = self.get(key).ok_or(format!("{key}=... is missing"))?;
        text.parse()
            .map_err(|_| format!("{key}={text:?} is not a whole number"))
    }
}

fn page() -> String {
    PAGE_HTML
        .replace("{{style}}", PAGE_CSS)
        .replace("{{script}}", PAGE_JS)
}

/// Serves the run at `--serve` until Ctrl-C; prints the summary, the actions and the replay
/// command when it ends. Exits 1 (an error) when the run's check failed.
pub(crate) fn serve(
    args: &RunArgs,
    algorithm: &'static Algorithm,
    config: SimConfig,
) -> anyhow::Result<()> {
    let address = args.serve.as_deref().unwrap_or("127.0.0.1:8223");
    let address: std::net::SocketAddr = address
        .parse()
        .map_err(|_| anyhow!("--serve {address:?} is not IP:PORT (e.g. 127.0.0.1:8223)"))?;
    let server = Server::http(address).map_err(|e| anyhow!("cannot serve on {address}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("bound to no IP address"))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = Arc::clone(&interrupted);
        let _ = ctrlc::set_handler(move || interrupted.store(true, Ordering::SeqCst));
    }
    let mut session = Session::new(algorithm, config);
    println!(
        "serving {} live at http://{bound}/ (Ctrl-C ends it)",
        session.title
    );
    let mut reported = false;
    while !interrupted.load(Ordering::SeqCst) {
        match server.recv_timeout(POLL) {
            Ok(Some(request)) => {
                let reply = session.route(request.method(), request.url());
                let head = *request.method() == Method::Head;
                let mut response = Response::from_data(if head { Vec::new() } else { reply.body })
                    .with_status_code(reply.status);
                for (name, value) in [
                    ("Content-Type", reply.content_type),
                    ("Cache-Control", "no-store"),
                ] {
                    if let Ok(header) = Header::from_bytes(name, value) {
                        response.add_header(header);
                    }
                }
                // A page gone mid-reply is no failure of the run.
                let _ = request.respond(response);
            }
            Ok(None) => {}
            Err(e) => bail!("serving failed: {e}"),
        }
        if session.done.is_some() && !reported {
            reported = true;
            report(args, &session)?;
            println!("the run is over; the page still shows it (Ctrl-C ends serving)");
        }
    }
    if !reported {
        session.run_to_end();
        report(args, &session)?;
    }
    match &session.done {
        Some(done) if !done.judgement.ok => bail!("the check failed"),
        _ => Ok(()),
    }
}

/// Prints a finished run as `zhub sim run` does, its actions and how to replay it; writes
/// the report and history when asked, and the schedule file of the actions.
fn report(args: &RunArgs, session: &Session) -> anyhow::Result<()> {
    let Some(done) = &session.done else {
        return Ok(());
    };
    let result = &done.result;
    if let Some(path) = &args.history {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        result
            .history
            .write_jsonl(BufWriter::new(file))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        zhub_sim::report::write_html(
            BufWriter::new(file),
            &session.title,
            &result.history,
            &result.messages,
            done.judgement.register.as_ref(),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_summary(session.algorithm, &session.config, result);
    println!("check        {}", done.judgement.verdict);
    let mut replay = command_without(&["--serve", "--save-actions", "--seed"]);
    if result.actions.is_empty() {
        println!("actions      none");
    } else {
        println!("actions      {} taken in the page:", result.actions.len());
        for (time, fault) in &result.actions {
            println!("  @{time}ns {fault}  ({:?})", Duration::from_nanos(*time));
        }
        let path = args.save_actions.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "zhub-sim-{}-seed{}.txt",
                session.algorithm.name, session.config.seed
            ))
        });
        let plan = Plan {
            faults: session.config.nemesis.schedule.clone(),
            actions: result.actions.clone(),
        };
        let text = format!(
            "# {}: the schedule and the actions taken live; replays with --nemesis-file\n{}",
            session.title,
            plan.to_text()
        );
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        replay = command_without(&["--serve", "--save-actions", "--seed", "--nemesis-file"]);
        replay.push(format!("--nemesis-file {}", path.display()));
    }
    replay.push(format!("--seed {}", session.config.seed));
    println!("replay       {}", replay.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let algorithm = zhub_sim::algorithms::find("abd").unwrap();
        Session::new(
            algorithm,
            SimConfig {
                ops: 40,
                record_messages: true,
                ..SimConfig::default()
            },
        )
    }

    fn status(session: &mut Session, method: Method, url: &str) -> u16 {
        session.route(&method, url).status
    }

    #[test]
    fn bad_paths_are_404_bad_parameters_400_and_nothing_panics() {
        let mut s = session();
        assert_eq!(status(&mut s, Method::Get, "/"), 200);
        assert_eq!(status(&mut s, Method::Get, "/nope"), 404);
        assert_eq!(status(&mut s, Method::Get, "/api/advance?to=5"), 405);
        assert_eq!(status(&mut s, Method::Post, "/api/state"), 405);
        for url in [
            "/api/advance",
            "/api/advance?to=",
            "/api/advance?to=-1",
            "/api/advance?to=1&by=2",
            "/api/advance?step=0",
            "/api/advance?step=99999999",
            "/api/advance?to=99999999999999999999999",
            "/api/action",
            "/api/action?do=explode",
            "/api/action?do=crash",
            "/api/action?do=crash&node=n0",
            "/api/action?do=crash&node=n6",
            "/api/action?do=crash&node=x",
            "/api/action?do=cut&a=n1&b=n1",
            "/api/action?do=drop&message=%31",
            "/api/action?=&&&=",
        ] {
            assert_eq!(status(&mut s, Method::Post, url), 400, "{url}");
        }
        assert_eq!(status(&mut s, Method::Get, "/api/message?n=x"), 400);
        assert_eq!(status(&mut s, Method::Get, "/api/message?n=999999"), 404);
        assert_eq!(
            status(&mut s, Method::Post, "/api/action?do=drop&message=999999"),
            409
        );
    }

    #[test]
    fn actions_are_applied_and_the_run_ends_checked() {
        let mut s = session();
        assert_eq!(status(&mut s, Method::Post, "/api/advance?to=4000000"), 200);
        let number = s
            .snapshot()
            .messages
            .iter()
            .find(|m| !m.held)
            .map(|m| m.number)
            .unwrap();
        let url = format!("/api/action?do=drop&message={number}");
        assert_eq!(status(&mut s, Method::Post, &url), 200);
        assert_eq!(status(&mut s, Method::Post, &url), 409, "dropped already");
        assert_eq!(
            status(&mut s, Method::Post, "/api/action?do=cut&a=n1&b=n2"),
            200
        );
        assert_eq!(s.snapshot().cut, vec![(0, 1), (1, 0)]);
        assert_eq!(
            status(&mut s, Method::Post, "/api/action?do=heal&a=n2&b=n1"),
            200
        );
        assert!(s.snapshot().cut.is_empty());
        assert_eq!(status(&mut s, Method::Post, "/api/advance?step=3"), 200);
        assert_eq!(status(&mut s, Method::Get, "/report"), 200);
        assert_eq!(status(&mut s, Method::Post, "/api/advance?end=1"), 200);
        let done = s.done.as_ref().expect("over");
        let faults: Vec<String> = done
            .result
            .actions
            .iter()
            .map(|(_, f)| f.to_string())
            .collect();
        assert_eq!(
            faults,
            [
                format!("drop #{number}"),
                "block n1 n2".into(),
                "block n2 n1".into(),
                "unblock n2 n1".into(),
                "unblock n1 n2".into()
            ]
        );
        let reply = s.route(&Method::Get, &format!("/api/message?n={number}"));
        let message: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(message["delivered"], Value::Null);
        let report: Value =
            serde_json::from_slice(&s.route(&Method::Get, "/api/report").body).unwrap();
        assert_eq!(report["over"], true);
        assert!(report["verdict"]["text"]
            .as_str()
            .unwrap()
            .contains("linearizable"));
        assert_eq!(
            status(&mut s, Method::Post, "/api/action?do=crash&node=n1"),
            409
        );
    }
}
