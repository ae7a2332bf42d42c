//! Logging in from the shell: `--user` with `--password-file`, `--creds`, `$ZHUB_CREDS`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{deadline, failed, ok, ZHUB};

const PASSWORD: &str = "pass:with:colons";

#[test]
fn every_way_of_giving_a_login_works_and_refusals_say_why() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let hash = zhub_broker::auth::hash_password(PASSWORD.as_bytes()).unwrap();
        let auth = dir.path().join("auth.toml");
        std::fs::write(
            &auth,
            format!(
                "[users.ops]\npassword = \"{hash}\"\n[users.ops.allow]\nadmin = true\n\
                 [users.app]\npassword = \"{hash}\"\n[users.app.allow]\nkv_write = [\"app/*\"]\n"
            ),
        )
        .unwrap();
        let mut config = zhub_broker::Config::local_ipc(dir.path().join("broker"));
        std::fs::create_dir_all(dir.path().join("broker")).unwrap();
        config.auth = Some(auth);
        let broker = zhub_broker::Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let creds = dir.path().join("ops.creds");
        std::fs::write(&creds, format!("ops:{PASSWORD}\n")).unwrap();
        let run = |args: &[&str], env_creds: Option<&std::path::Path>| {
            let mut command = Command::new(ZHUB);
            command
                .args(args)
                .env("ZHUB_URL", &url)
                .env("RUST_LOG", "off")
                .env_remove("ZHUB_CREDS");
            if let Some(file) = env_creds {
                command.env("ZHUB_CREDS", file);
            }
            command.output().unwrap()
        };
        let pw = password_file.to_str().unwrap();
        ok(&run(
            &["--user", "ops", "--password-file", pw, "stats"],
            None,
        ));
        ok(&run(&["--creds", creds.to_str().unwrap(), "stats"], None));
        ok(&run(&["stats"], Some(&creds)));
        let as_app = ["--user", "app", "--password-file", pw];
        ok(&run(
            &[&as_app[..], &["kv", "put", "app/a", "1"]].concat(),
            None,
        ));
        let err = failed(&run(
            &[&as_app[..], &["kv", "put", "b", "1"]].concat(),
            None,
        ));
        assert!(
            err.contains("forbidden") && err.contains("user 'app' may not write key 'b'"),
            "{err}"
        );
        let err = failed(&run(&[&as_app[..], &["stats"]].concat(), None));
        assert!(err.contains("admin only"), "{err}");
        // No login, or a wrong one: the broker never answers.
        let err = failed(&run(&["--timeout", "300ms", "stats"], None));
        assert!(err.contains("did not answer"), "{err}");
        std::fs::write(&password_file, "wrong\n").unwrap();
        let wrong = [
            "--timeout",
            "300ms",
            "--user",
            "ops",
            "--password-file",
            pw,
            "stats",
        ];
        assert!(failed(&run(&wrong, None)).contains("did not answer"));
        // Half a login is a usage error.
        let out = run(&["--user", "ops", "stats"], None);
        assert_eq!(out.status.code(), Some(2));
        drop(broker);
    });
}
