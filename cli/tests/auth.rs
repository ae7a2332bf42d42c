//! Logging in from the shell: `--user` with `--password-file`, `--creds`, `$ZHUB_CREDS`;
//! with CURVE, `--curve-key` and `--server-key` (`$ZHUB_CURVE_KEY`, `$ZHUB_SERVER_KEY`).

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
        // No login: the broker never answers. A wrong one: refused, and said at once.
        let err = failed(&run(&["--timeout", "300ms", "stats"], None));
        assert!(err.contains("did not answer"), "{err}");
        std::fs::write(&password_file, "wrong\n").unwrap();
        let wrong = [
            "--timeout",
            "10s",
            "--user",
            "ops",
            "--password-file",
            pw,
            "stats",
        ];
        let err = failed(&run(&wrong, None));
        assert!(err.contains("login refused"), "{err}");
        // Half a login is a usage error.
        let out = run(&["--user", "ops", "stats"], None);
        assert_eq!(out.status.code(), Some(2));
        drop(broker);
    });
}

#[test]
fn curve_keys_made_by_keygen_log_in_from_flags_and_environment() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let keygen = |name: &str| {
            ok(&Command::new(ZHUB)
                .args(["keygen", "--out", &path(name)])
                .output()
                .unwrap());
            zhub_client::CurveKeyPair::load(path(name)).unwrap()
        };
        let server = keygen("broker.key");
        let app = keygen("app.key");
        keygen("stranger.key");
        let auth = dir.path().join("auth.toml");
        std::fs::write(
            &auth,
            format!(
                "[curve]\npublic = \"{}\"\nsecret = \"{}\"\n\
                 [users.app]\ncurve_keys = [\"{}\"]\n[users.app.allow]\nkv_write = [\"app/*\"]\n",
                server.public(),
                server.secret(),
                app.public()
            ),
        )
        .unwrap();
        let mut config = zhub_broker::Config::local_ipc(dir.path().join("broker"));
        std::fs::create_dir_all(dir.path().join("broker")).unwrap();
        config.auth = Some(auth);
        let broker = zhub_broker::Broker::start(&config).unwrap();
        let url = broker.info().main.clone();
        let run = |args: &[&str], env: &[(&str, String)]| {
            let mut command = Command::new(ZHUB);
            command
                .args(args)
                .env("ZHUB_URL", &url)
                .env("RUST_LOG", "off")
                .env_remove("ZHUB_CREDS")
                .env_remove("ZHUB_CURVE_KEY")
                .env_remove("ZHUB_SERVER_KEY")
                .envs(env.iter().map(|(k, v)| (k, v)));
            command.output().unwrap()
        };
        let (app_key, server_pub) = (path("app.key"), path("broker.key.pub"));
        let as_app = ["--curve-key", &app_key, "--server-key", &server_pub];
        assert_eq!(
            ok(&run(
                &[&as_app[..], &["kv", "put", "app/a", "1"]].concat(),
                &[]
            ))
            .trim(),
            "0"
        );
        let err = failed(&run(&[&as_app[..], &["kv", "put", "b", "1"]].concat(), &[]));
        assert!(err.contains("user 'app' may not write key 'b'"), "{err}");
        let env = [
            ("ZHUB_CURVE_KEY", app_key.clone()),
            ("ZHUB_SERVER_KEY", server_pub.clone()),
        ];
        ok(&run(&["kv", "put", "app/b", "2"], &env));
        // A key the file does not hold: refused, and said at once.
        let stranger = [
            "--timeout",
            "10s",
            "--curve-key",
            &path("stranger.key"),
            "--server-key",
            &server_pub,
            "kv",
            "get",
            "app/a",
        ];
        let err = failed(&run(&stranger, &[]));
        assert!(err.contains("login refused"), "{err}");
        // Half a login, or two kinds at once, is a usage error; a public key is no key pair.
        assert_eq!(
            run(&["--curve-key", &app_key, "stats"], &[]).status.code(),
            Some(2)
        );
        let pw = path("password");
        std::fs::write(&pw, "x\n").unwrap();
        let both = [
            &as_app[..],
            &["--user", "app", "--password-file", &pw, "stats"],
        ]
        .concat();
        assert_eq!(run(&both, &[]).status.code(), Some(2));
        let out = run(
            &[
                "--curve-key",
                &server_pub,
                "--server-key",
                &server_pub,
                "stats",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("public-key file"), "{err}");
        drop(broker);
    });
}
