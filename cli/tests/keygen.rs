//! `zhub keygen`: key pairs printed, or written to PATH and PATH.pub without clobbering.

mod common;

use common::{deadline, failed, ok, ZHUB};

use std::fs;
use std::process::{Command, Output};
use std::time::Duration;

use zhub_client::CurveKeyPair;

const LIMIT: Duration = Duration::from_secs(30);

fn keygen(args: &[&str]) -> Output {
    Command::new(ZHUB)
        .arg("keygen")
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("zhub runs")
}

/// The value of `name = "…"` on its line of `text`.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name} = \"");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name} line in {text:?}"));
    line[prefix.len()..]
        .strip_suffix('"')
        .expect("a quoted value")
}

#[test]
fn prints_a_matching_pair() {
    deadline(LIMIT, || {
        let out = ok(&keygen(&[]));
        assert_eq!(out.lines().count(), 2, "{out}");
        let keys = CurveKeyPair::from_z85(field(&out, "public"), field(&out, "secret")).unwrap();
        // A new pair each time.
        let again = ok(&keygen(&[]));
        assert_ne!(field(&again, "public"), keys.public());
    });
}

#[test]
fn writes_secret_and_public_files_and_refuses_to_overwrite() {
    deadline(LIMIT, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.key");
        let public = dir.path().join("broker.key.pub");
        let out = ok(&keygen(&["--out", path.to_str().unwrap()]));

        let keys = CurveKeyPair::load(&path).unwrap();
        assert_eq!(CurveKeyPair::load_public(&public).unwrap(), keys.public());
        assert_eq!(out, format!("public = \"{}\"\n", keys.public()));
        assert!(!fs::read_to_string(&public).unwrap().contains(keys.secret()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }

        // Again without --force: refused, and neither file is touched.
        let err = failed(&keygen(&["--out", path.to_str().unwrap()]));
        assert!(err.contains("already exists; pass --force"), "{err}");
        assert_eq!(CurveKeyPair::load(&path).unwrap(), keys);

        // Only the public file left over is enough to refuse.
        fs::remove_file(&path).unwrap();
        let err = failed(&keygen(&["--out", path.to_str().unwrap()]));
        assert!(err.contains("broker.key.pub already exists"), "{err}");
        assert!(!path.exists());

        // With --force both are replaced by a new pair.
        ok(&keygen(&["--out", path.to_str().unwrap(), "--force"]));
        let new = CurveKeyPair::load(&path).unwrap();
        assert_ne!(new.public(), keys.public());
        assert_eq!(CurveKeyPair::load_public(&public).unwrap(), new.public());
    });
}

#[test]
fn force_needs_out() {
    deadline(LIMIT, || {
        let output = keygen(&["--force"]);
        assert_eq!(output.status.code(), Some(2), "a usage error");
    });
}
