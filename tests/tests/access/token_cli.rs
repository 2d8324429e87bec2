//! `throughcare token`: prints the token alone on line 1, a blank line, then a
//! `[[principal]]` block whose `token_sha256` is the token's SHA-256; blocks pasted into an
//! auth file make a working server.

use std::process::Command;

use serde_json::json;

use crate::support::auth::{expect_status, sha256_hex, Caller};
use crate::support::{binary, event, nomis, Server};
use crate::{at, in_days, report, settle};

/// Runs `throughcare token ARGS`: (exit ok, stdout, stderr).
fn token(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .arg("token")
        .args(args)
        .output()
        .expect("run throughcare token");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Splits token output into (token, block), checking the layout.
fn parse(stdout: &str, problems: &mut Vec<String>) -> Option<(String, String, toml::Value)> {
    let mut lines = stdout.lines();
    let tok = lines.next().unwrap_or("").to_string();
    let blank = lines.next();
    let block: String = lines.map(|l| format!("{l}\n")).collect();
    if tok.is_empty() || tok.chars().any(char::is_whitespace) {
        problems.push(format!("line 1 is not a token alone: {stdout:?}"));
        return None;
    }
    if tok.len() < 32 {
        problems.push(format!("the token is short ({} chars): {tok:?}", tok.len()));
    }
    if blank != Some("") {
        problems.push(format!("line 2 is not blank: {stdout:?}"));
    }
    if !block.trim_start().starts_with("[[principal]]") {
        problems.push(format!(
            "line 3 does not start the [[principal]] block: {stdout:?}"
        ));
    }
    match block.parse::<toml::Table>() {
        Ok(t) => Some((tok, block, toml::Value::Table(t))),
        Err(e) => {
            problems.push(format!("the block is not TOML ({e}): {block}"));
            None
        }
    }
}

fn principal(v: &toml::Value) -> &toml::Value {
    &v["principal"][0]
}

fn strs(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_token_and_its_principal_block() {
    let mut problems = Vec::new();
    let source = "urn:throughcare:partner:liaison-diversion-hampshire";
    let (ok, out, err) = token(&[
        "--name",
        "liaison-diversion-hampshire",
        "--role",
        "PARTNER",
        "--source",
        source,
        "--type",
        "throughcare.referral.*",
    ]);
    assert!(ok, "throughcare token failed: {err}");
    let Some((partner_token, partner_block, t)) = parse(&out, &mut problems) else {
        report("throughcare token output", &problems);
        return;
    };
    let p = principal(&t);
    if p.get("name").and_then(|v| v.as_str()) != Some("liaison-diversion-hampshire")
        || p.get("role").and_then(|v| v.as_str()) != Some("PARTNER")
        || p.get("token_sha256").and_then(|v| v.as_str())
            != Some(sha256_hex(&partner_token).as_str())
        || strs(p.get("sources")) != vec![source.to_string()]
        || strs(p.get("types")) != vec!["throughcare.referral.*".to_string()]
    {
        problems.push(format!(
            "partner block does not match the arguments and token:\n{partner_block}"
        ));
    }
    if partner_block.contains(&partner_token) {
        problems.push("the block holds the token itself; only its hash belongs in the file".into());
    }

    let (ok, out, err) = token(&[
        "--name",
        "jo.worker",
        "--role",
        "WORKER",
        "--worker-id",
        "W-WCI-01",
    ]);
    assert!(ok, "throughcare token (worker) failed: {err}");
    let worker = parse(&out, &mut problems);
    if let Some((tok, block, t)) = &worker {
        let p = principal(t);
        if p.get("worker_id").and_then(|v| v.as_str()) != Some("W-WCI-01")
            || p.get("role").and_then(|v| v.as_str()) != Some("WORKER")
            || p.get("token_sha256").and_then(|v| v.as_str()) != Some(sha256_hex(tok).as_str())
        {
            problems.push(format!("worker block:\n{block}"));
        }
        if *tok == partner_token {
            problems.push("two runs printed the same token".into());
        }
    }
    let (ok, out, err) = token(&[
        "--name",
        "wci.manager",
        "--role",
        "MANAGER",
        "--prison",
        "WCI",
        "--prison",
        "BNI",
    ]);
    assert!(ok, "throughcare token (manager) failed: {err}");
    let manager = parse(&out, &mut problems);
    if let Some((_, block, t)) = &manager {
        if strs(principal(t).get("prisons")) != vec!["WCI".to_string(), "BNI".to_string()] {
            problems.push(format!(
                "manager block lacks prisons = [\"WCI\", \"BNI\"]:\n{block}"
            ));
        }
    }
    let (ok, _, _) = token(&["--name", "x", "--role", "SUPERUSER"]);
    if ok {
        problems.push("throughcare token accepted the role SUPERUSER".into());
    }

    // The blocks, pasted into a file, make a server that knows these tokens.
    if let (Some((worker_token, worker_block, _)), Some((manager_token, manager_block, _))) =
        (worker, manager)
    {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.toml");
        std::fs::write(
            &file,
            format!("{partner_block}\n{worker_block}\n{manager_block}"),
        )
        .unwrap();
        let server = Server::start_with(
            &dir.path().join("data"),
            &["--auth", file.to_str().unwrap()],
        );
        let mut e = event(
            "referral.received",
            "tok-1",
            &at(10),
            json!({"person": {"nomis": nomis(9941)}, "referral_id": "REF-T1", "referrer": {"kind": "LIAISON_DIVERSION"},
                   "prison": "WCI", "expected_release_date": in_days(12), "vulnerabilities": ["COMMUNICATION"]}),
        );
        e["source"] = json!(source);
        let r = Caller::bearer(&server.url, &partner_token).submit(&e).await;
        expect_status(
            &r,
            201,
            "the partner token from `throughcare token` could not submit",
            &mut problems,
        );
        settle(&server.url).await;
        let r = Caller::bearer(&server.url, &manager_token)
            .get("/v1/releases")
            .await;
        expect_status(
            &r,
            200,
            "the manager token could not read releases",
            &mut problems,
        );
        let r = Caller::bearer(&server.url, &worker_token)
            .get("/v1/caseload/W-WCI-01")
            .await;
        expect_status(
            &r,
            200,
            "the worker token could not read its caseload",
            &mut problems,
        );
        let r = Caller::bearer(&server.url, &sha256_hex(&worker_token))
            .get("/v1/caseload/W-WCI-01")
            .await;
        expect_status(
            &r,
            401,
            "the token's hash was accepted as a token",
            &mut problems,
        );
    }
    report("throughcare token", &problems);
}
