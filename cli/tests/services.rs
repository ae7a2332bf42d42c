//! `zhub request`, `zhub serve`, `zhub services`, `zhub groups`, and a worker killed mid-request.

mod common;

use common::{deadline, Reaped, ZHUB};

use std::process::{Command, Stdio};
use std::time::Duration;

use zhub_client::Client;
use zhub_protocol::builtin::ServiceInfo;

/// `zhub serve ARGS`, killed on drop (also when the test fails).
fn serve(url: &str, args: &[&str]) -> Reaped {
    let child = Command::new(ZHUB)
        .arg("serve")
        .args(args)
        .env("ZHUB_URL", url)
        .env("RUST_LOG", "off")
        .stderr(Stdio::null())
        .spawn()
        .expect("zhub serve starts");
    Reaped(child)
}

/// Waits until `service` shows `workers` workers and `in_flight` requests in flight.
fn wait_for(client: &mut Client, service: &str, workers: u64, in_flight: u64) {
    loop {
        let list: Vec<ServiceInfo> = client.request("zhub.services", &()).unwrap();
        if list
            .iter()
            .any(|s| s.name == service && s.workers == workers && s.in_flight == in_flight)
        {
            return;
        }
        std::thread::yield_now();
    }
}

#[test]
fn request_serve_and_services_from_the_shell() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let mut upper = serve(&url, &["upper", "--exec", "tr a-z A-Z"]);
        let mut echo = serve(&url, &["echo", "--echo"]);
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "upper", 1, 0);
        wait_for(&mut client, "echo", 1, 0);

        let run = |args: &[&str]| {
            let out = Command::new(ZHUB)
                .args(args)
                .env("ZHUB_URL", &url)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            )
        };
        assert_eq!(
            run(&["request", "upper", "shout this"]),
            (true, "SHOUT THIS".into(), String::new())
        );
        assert_eq!(
            run(&["request", "echo", "--json", r#"{"k":[1,2]}"#]).1,
            r#"{"k":[1,2]}"#
        );
        let (ok, _, err) = run(&["--timeout", "300ms", "request", "nobody", "x"]);
        assert!(!ok && err.contains("no such service"), "{err}");
        let (ok, out, _) = run(&["services", "--json"]);
        assert!(ok);
        let list: Vec<ServiceInfo> = serde_json::from_str(&out).unwrap();
        assert!(
            list.iter().any(|s| s.name == "upper" && s.served == 1),
            "{out}"
        );
        let table = run(&["services"]).1;
        assert!(
            table.contains("in-flight") && table.contains("p99<="),
            "{table}"
        );
        let upper_row = table.lines().find(|l| l.starts_with("upper")).unwrap();
        let p50 = upper_row.split_whitespace().nth(6).unwrap();
        assert!(p50.ends_with("us") || p50.ends_with("ms"), "{upper_row}");

        let member = zhub_client::Group::join_open(&client, "crew").unwrap();
        let (ok, out, err) = run(&["groups", "--members"]);
        assert!(ok, "{err}");
        let row = out.lines().find(|l| l.starts_with("crew")).unwrap();
        assert_eq!(
            row.split_whitespace().take(3).collect::<Vec<_>>(),
            ["crew", "1", "1"],
            "{out}"
        );
        assert!(
            out.contains(&format!("rank 0    {:016x}", member.member_id())),
            "{out}"
        );
        let (ok, out, _) = run(&["groups", "nobody", "--json"]);
        assert!(ok);
        assert_eq!(out, "[]");
        for child in [&mut upper, &mut echo] {
            let _ = child.kill();
            let _ = child.wait();
        }
        broker.shutdown();
    });
}

/// A command that fails under `zhub serve --exec` is a worker-failed error to the client, with
/// the command's status and last line of stderr, not a success whose body is an error text;
/// and the request is not run again elsewhere.
#[test]
fn a_failing_exec_command_is_a_worker_failure() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let script = "read x; if [ \"$x\" = bad ]; then echo \"no such file: $x\" >&2; exit 3; fi; echo ok $x";
        let mut worker = serve(&url, &["job", "--exec", script]);
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "job", 1, 0);

        let ok = client.request_bytes("job", b"good\n").unwrap();
        assert_eq!(ok, b"ok good\n");
        let err = client.request_bytes("job", b"bad\n").unwrap_err();
        assert_eq!(
            err.kind(),
            zhub_client::RequestErrorKind::WorkerFailed,
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("no such file: bad"),
            "{text}"
        );

        let out = Command::new(ZHUB)
            .args(["request", "job", "bad"])
            .env("ZHUB_URL", &url)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "no reply body on stdout");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("worker failed") && said.contains("no such file"),
            "{said}"
        );

        let stats = client.stats().unwrap().requests;
        assert_eq!(stats.worker_failed, 2);
        assert_eq!(stats.requeued, 0, "a reported failure is not retried");
        let _ = worker.kill();
        let _ = worker.wait();
        broker.shutdown();
    });
}

/// A worker process is killed with SIGKILL while it holds a request: the broker notices, hands
/// the request to another worker, and the client gets exactly one reply before its deadline.
#[test]
fn a_worker_killed_mid_request_is_replaced() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = zhub_broker::Config {
            heartbeat: Duration::from_millis(100),
            ..zhub_broker::Config::local_ipc(dir.path())
        };
        let broker = zhub_broker::Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        // This worker takes the request and hangs in its command.
        let mut doomed = serve(&url, &["job", "--exec", "sleep 20", "--heartbeat", "100ms"]);
        let mut watcher = Client::connect(&url).unwrap();
        wait_for(&mut watcher, "job", 1, 0);

        let request_url = url.clone();
        let pending = std::thread::spawn(move || {
            let mut client = Client::connect(&request_url).unwrap();
            let id = client
                .send_request_bytes("job", b"payload", Duration::from_secs(30))
                .unwrap();
            let (got, reply) = client.recv_reply().unwrap();
            assert_eq!(got, id);
            let reply = reply.unwrap();
            // Exactly one reply: nothing else arrives for this client.
            assert_eq!(client.in_flight(), 0);
            reply
        });
        wait_for(&mut watcher, "job", 1, 1);
        let status = Command::new("kill")
            .args(["-KILL", &doomed.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = doomed.wait();

        let worker = zhub_worker::WorkerOptions::new()
            .heartbeat(Duration::from_millis(100))
            .connect(&url, "job")
            .unwrap();
        let stop = worker.stopper();
        let t =
            std::thread::spawn(move || worker.run(|body| [b"served: ".as_slice(), body].concat()));
        assert_eq!(pending.join().unwrap(), b"served: payload");
        let stats = watcher.stats().unwrap();
        assert_eq!(stats.requests.requeued, 1, "{stats:?}");
        stop.stop();
        t.join().unwrap().unwrap();
        broker.shutdown();
    });
}

#[test]
fn serve_refuses_a_zero_heartbeat_naming_it() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ipc://{}", dir.path().join("nobody.sock").display());
        let out = Command::new(ZHUB)
            .args(["serve", "svc", "--echo", "--heartbeat", "0s"])
            .env("ZHUB_URL", &url)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--heartbeat"), "{stderr}");
    });
}

/// Runs `zhub ARGS` against `url` and returns (success, stdout bytes, stderr text).
fn zhub_at(url: &str, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(ZHUB)
        .args(args)
        .env("ZHUB_URL", url)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

/// A Majordomo worker written against the wire (frames as in protocol/src/mdp.rs), as a
/// worker in another language would be: it sees exactly the bytes `zhub request` sent, and
/// `zhub request` prints exactly the bytes it answers.
#[test]
fn plain_bodies_reach_a_raw_majordomo_worker_byte_for_byte() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let context = zmq::Context::new();
        let worker = context.socket(zmq::DEALER).unwrap();
        worker.set_linger(0).unwrap();
        worker.set_rcvtimeo(20_000).unwrap();
        worker.set_sndtimeo(5_000).unwrap();
        worker.connect(&url).unwrap();
        let ready: Vec<Vec<u8>> = vec![vec![], b"MDPW01".to_vec(), vec![0x01], b"raw".to_vec()];
        worker.send_multipart(ready, 0).unwrap();
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "raw", 1, 0);

        let request_url = url.clone();
        let request =
            std::thread::spawn(move || zhub_at(&request_url, &["request", "raw", "hello"]));
        let (address, body) = loop {
            let frames = worker.recv_multipart(0).expect("a request in time");
            // ["", "MDPW01", 0x02, client, "", body...]; heartbeats are skipped.
            if frames.len() >= 5 && frames[2] == [0x02] {
                break (frames[3].clone(), frames[5..].to_vec());
            }
        };
        assert_eq!(body, vec![b"hello".to_vec()]);
        // 0xa5 starts a MessagePack string of five bytes: printed as it is, not decoded.
        let answer = b"\xa5plain".to_vec();
        let reply = vec![
            vec![],
            b"MDPW01".to_vec(),
            vec![0x03],
            address,
            vec![],
            answer.clone(),
        ];
        worker.send_multipart(reply, 0).unwrap();
        let (ok, stdout, stderr) = request.join().unwrap();
        assert!(ok, "{stderr}");
        assert_eq!(stdout, [answer, b"\n".to_vec()].concat());
        broker.shutdown();
    });
}

/// `mmi.service echo` asks about the service named by the body: plain, that is `echo`.
#[test]
fn mmi_service_finds_a_registered_service() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let mut echo = serve(&url, &["echo", "--echo"]);
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "echo", 1, 0);
        let (ok, stdout, stderr) = zhub_at(&url, &["request", "mmi.service", "echo"]);
        assert!(ok, "{stderr}");
        assert_eq!(stdout, b"200\n");
        let (_, stdout, _) = zhub_at(&url, &["request", "mmi.service", "nobody"]);
        assert_eq!(stdout, b"404\n");
        let _ = echo.kill();
        let _ = echo.wait();
        broker.shutdown();
    });
}

/// `--json` and `--msgpack` on both sides: a JSON worker reads JSON text and MessagePack
/// alike and answers JSON text; a MessagePack worker answers MessagePack.
#[test]
fn json_and_msgpack_bodies_both_ways() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        // The command sees JSON text, whatever came on the wire.
        let mut json = serve(&url, &["js", "--json", "--exec", "cat"]);
        let mut packed = serve(&url, &["mp", "--msgpack", "--exec", "cat"]);
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "js", 1, 0);
        wait_for(&mut client, "mp", 1, 0);
        let body = r#"{"k": [1, 2]}"#;
        for args in [
            ["request", "js", "--json", body],
            ["request", "mp", "--msgpack", body],
        ] {
            let (ok, stdout, stderr) = zhub_at(&url, &args);
            assert!(ok, "{args:?}: {stderr}");
            assert_eq!(String::from_utf8(stdout).unwrap(), "{\"k\":[1,2]}\n");
        }
        // A MessagePack request to the JSON worker is decoded for its command, and its reply
        // is JSON text, not MessagePack.
        let reply = client
            .request_bytes("js", &rmp_serde::to_vec_named(&("a", 1)).unwrap())
            .unwrap();
        assert_eq!(reply, br#"["a",1]"#);
        // The MessagePack worker answers one MessagePack value.
        let reply: serde_json::Value = client.request("mp", &[1, 2]).unwrap();
        assert_eq!(reply, serde_json::json!([1, 2]));
        // Asking for MessagePack where the reply is JSON text says so.
        let (ok, _, stderr) = zhub_at(&url, &["request", "js", "--msgpack", "[1]"]);
        assert!(
            !ok && stderr.contains("not one MessagePack value"),
            "{stderr}"
        );
        for child in [&mut json, &mut packed] {
            let _ = child.kill();
            let _ = child.wait();
        }
        broker.shutdown();
    });
}

#[test]
fn serve_refuses_a_concurrency_out_of_range_naming_it() {
    deadline(Duration::from_secs(30), || {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("ipc://{}", dir.path().join("nobody.sock").display());
        for bad in ["0", "1025"] {
            let out = Command::new(ZHUB)
                .args(["serve", "svc", "--echo", "--concurrency", bad])
                .env("ZHUB_URL", &url)
                .output()
                .unwrap();
            assert!(!out.status.success());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("--concurrency"), "{stderr}");
        }
    });
}

/// `zhub serve --concurrency 4` registers with credit 4 and answers 64 pipelined requests,
/// each reply matched to its own request.
#[test]
fn serve_with_concurrency_answers_pipelined_requests() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();
        let mut echo = serve(&url, &["echo", "--echo", "--concurrency", "4"]);
        let mut client = Client::connect(&url).unwrap();
        wait_for(&mut client, "echo", 1, 0);
        let mut sent = std::collections::HashMap::new();
        for i in 0..64u32 {
            let id = client
                .send_request_bytes("echo", &i.to_be_bytes(), Duration::from_secs(10))
                .unwrap();
            sent.insert(id, i.to_be_bytes().to_vec());
        }
        while client.in_flight() > 0 {
            let (id, body) = client.recv_reply().unwrap();
            assert_eq!(sent.remove(&id).unwrap(), body.unwrap());
        }
        let _ = echo.kill();
        let _ = echo.wait();
        broker.shutdown();
    });
}
