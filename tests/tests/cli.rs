//! The `throughcare` command line: `submit` prints positions and exits 0; bad input and
//! bad use exit non-zero with one readable line on stderr.

mod support;

use std::process::Command;

use serde_json::json;
use support::{binary, event, Server};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn submit_prints_positions_and_refusals_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let time = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let referral = event(
        "referral.received",
        "cli-1",
        &time,
        json!({"person": {"nomis": "C1234DE"}, "referral_id": "R-C",
        "referrer": {"kind": "SELF"}, "prison": "SPI", "vulnerabilities": []}),
    );
    let file = dir.path().join("one.json");
    std::fs::write(&file, serde_json::to_vec(&referral).unwrap()).unwrap();
    let url = server.url.as_str();

    let (code, stdout, stderr) = run(&["submit", "--url", url, file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("cli-1\tperson ") && stdout.contains("position 1"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["submit", "--url", url, file.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("duplicate"), "{stdout}");

    // A batch file prints one line per item.
    let accept = event(
        "referral.accepted",
        "cli-2",
        &time,
        json!({"person": {"nomis": "C1234DE"}, "referral_id": "R-C"}),
    );
    let consent = event(
        "consent.given",
        "cli-3",
        &time,
        json!({"person": {"nomis": "C1234DE"}, "scope": "ENGAGE"}),
    );
    let batch = dir.path().join("batch.json");
    std::fs::write(
        &batch,
        serde_json::to_vec(&json!([accept, consent])).unwrap(),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["submit", "--url", url, batch.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    let mut bad = referral.clone();
    bad["id"] = json!("cli-4");
    bad["data"]["prison"] = json!("QQQ");
    std::fs::write(&file, serde_json::to_vec(&bad).unwrap()).unwrap();
    for args in [
        vec!["submit", "--url", url, file.to_str().unwrap()],
        vec!["submit", "--url", url, "/nonexistent/file.json"],
        vec![
            "submit",
            "--url",
            "http://127.0.0.1:9",
            file.to_str().unwrap(),
        ],
        vec!["rebuild", "--data", "/nonexistent/throughcare-data"],
    ] {
        let (code, _, stderr) = run(&args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("throughcare: error: "),
            "{args:?}: {stderr}"
        );
    }
    let (_, _, stderr) = run(&["submit", "--url", url, file.to_str().unwrap()]);
    assert!(
        stderr.contains("422") && stderr.contains("/data/prison"),
        "{stderr}"
    );
}

/// `serve` keeps its data directory to its own user: 0700 for directories, 0600 for
/// files, also for a directory an older version left open (0755 / 0644).
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let left_open = data.join("left-open.txt");
    std::fs::write(&left_open, "synthetic").unwrap();
    std::fs::set_permissions(&left_open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::start(&data);
    let mut open = Vec::new();
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            open.push(format!("{} is {mode:o}", path.display()));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            files += 1;
        }
    }
    drop(server);
    assert!(files > 3, "the server wrote its files ({files})");
    assert!(open.is_empty(), "open to others: {open:?}");
}
