//! `zhub launch`: N processes with their group in the environment, output prefixed, exit
//! status gathered.

mod common;

use common::{deadline, zhub};

use std::time::Duration;

#[test]
fn launch_runs_n_processes_prefixes_their_lines_and_reports_failures() {
    deadline(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let broker =
            zhub_broker::Broker::start(&zhub_broker::Config::local_ipc(dir.path())).unwrap();
        let url = broker.info().main.clone();

        let out = zhub(
            &url,
            &[
                "launch",
                "3",
                "--group",
                "g1",
                "--",
                "sh",
                "-c",
                "echo \"$ZHUB_GROUP $ZHUB_GROUP_SIZE ${#ZHUB_GROUP_MEMBER}\"",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        // Not group members: shown by start order; each saw the group, its size, a 16-digit id.
        assert_eq!(lines, vec!["[#0] g1 3 16", "[#1] g1 3 16", "[#2] g1 3 16"]);

        let out = zhub(&url, &["launch", "2", "--", "sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("2 of 2 processes failed"), "{err}");
        assert!(err.contains("exit 3"), "{err}");

        let out = zhub(&url, &["launch", "1", "--", "/nonexistent/program"]);
        assert!(!out.status.success());
    });
}
