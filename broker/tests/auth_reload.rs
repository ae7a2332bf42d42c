//! The `zhub-broker` binary reloads its auth file on SIGHUP: connected clients keep their
//! connections and get the new permissions on their next message.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{deadline, spawn_broker_with, BrokerChild};
use zhub_client::{Client, ClientOptions, RequestErrorKind};

const PASSWORD: &str = "reload-me";
const WAIT: Duration = Duration::from_secs(10);

fn write(path: &std::path::Path, users: &str) {
    let hash = zhub_broker::auth::hash_password(PASSWORD.as_bytes()).unwrap();
    std::fs::write(path, users.replace("{hash}", &hash)).unwrap();
}

fn login(url: &str, user: &str) -> Result<Client, zhub_client::ConnectError> {
    ClientOptions::new()
        .timeout(Duration::from_millis(500))
        .credentials(user, PASSWORD)
        .connect(url)
}

fn sighup(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Retries `put` until it gives `want` (the reload is asynchronous), with a deadline.
fn until_put(client: &mut Client, key: &str, want: Result<(), RequestErrorKind>) {
    let started = Instant::now();
    loop {
        let got = client.kv().put(key, &1u32).map(drop).map_err(|e| e.kind());
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "put {key}: {got:?}, want {want:?}"
        );
    }
}

#[test]
fn sighup_swaps_permissions_without_dropping_connections() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.toml");
        write(
            &auth,
            "[users.app]\npassword = \"{hash}\"\n[users.app.allow]\nkv_write = [\"app/*\"]\n\
             [users.gone]\npassword = \"{hash}\"\n[users.gone.allow]\nkv_write = [\"*\"]\n",
        );
        let (child, url) = spawn_broker_with(dir.path(), &["--auth", auth.to_str().unwrap()]);
        let child = BrokerChild(child);
        let mut app = login(&url, "app").unwrap();
        let mut gone = login(&url, "gone").unwrap();
        app.kv().put("app/a", &1u32).unwrap();
        let err = app.kv().put("b", &1u32).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden);

        // A file with a mistake is refused, and the old one stays in force.
        std::fs::write(&auth, "[users.app]\npasword = 1\n").unwrap();
        sighup(&child.0);
        write(
            &auth,
            "[users.app]\npassword = \"{hash}\"\n[users.app.allow]\nkv_write = [\"*\"]\n\
             [users.app.deny]\nkv_write = [\"app/*\"]\n",
        );
        sighup(&child.0);
        // The same connection, the new permissions.
        until_put(&mut app, "b", Ok(()));
        until_put(&mut app, "app/a", Err(RequestErrorKind::Forbidden));
        // A user the file no longer holds is refused everything, and cannot log in again.
        let err = gone.kv().put("b", &1u32).unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::Forbidden);
        assert!(err.to_string().contains("not in the auth file"), "{err}");
        assert!(login(&url, "gone").is_err());
        assert!(login(&url, "app").is_ok());

        // SIGHUP did not stop it; SIGTERM does, cleanly.
        let status = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = child;
        let started = Instant::now();
        let exit = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < WAIT, "the broker did not stop");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(exit.success(), "{exit:?}");
    });
}
