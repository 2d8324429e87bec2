//! The running server against its own OpenAPI document: schemathesis (pinned by
//! scripts/python-venv.sh) generates requests for every operation of
//! `GET /v1/openapi.json` and checks that none is answered with a 5xx, and that every
//! status, content type, header and body is one the document promises. Once in open
//! development mode, once with `--auth` as an AUDITOR.
//!
//! A missing venv fails loudly with the command that makes it; it is never a skip.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;
use support::auth::{serve_with_auth, Caller, Spec};
use support::{
    date_in_days as date, days_from_now as days, event, nhs_number, nomis, venv_tool, Server,
};

/// The checks of DESIGN.md "HTTP API": no server errors, and the answer conforms to the
/// document (status, content type, headers, schema). Not `ignored_auth`: open mode
/// ignores auth by design.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance";
/// Test cases per operation in the fuzzing phase (the coverage phase makes its own, one
/// per boundary of each parameter): enough to reach every parameter, few enough to keep
/// a run under a minute. The stateful phase is left out: the API has no links.
const MAX_EXAMPLES: &str = "15";
const SEED: &str = "20261129";
/// The worker the seeded cases are allocated to.
const WORKER: &str = "W-SCH-01";

/// Three people referred from WCI, allocated to `WORKER`, one released: enough for every
/// read model to hold something. Returns their person ids.
async fn seed(submitter: &Caller) -> Vec<String> {
    let mut people = Vec::new();
    for seed in 0..3u64 {
        let person = json!({"nomis": nomis(7000 + seed), "nhs_number": nhs_number(7000 + seed)});
        let steps = [
            event(
                "referral.received",
                &format!("sch-{seed}-1"),
                &days(-30),
                json!({"person": person, "referral_id": format!("REF-SCH-{seed}"),
                       "referrer": {"kind": "PRISON_HEALTHCARE"}, "prison": "WCI",
                       "expected_release_date": date(seed as i64 * 10 - 5),
                       "vulnerabilities": []}),
            ),
            event(
                "referral.accepted",
                &format!("sch-{seed}-2"),
                &days(-29),
                json!({"person": person, "referral_id": format!("REF-SCH-{seed}")}),
            ),
            event(
                "case.allocated",
                &format!("sch-{seed}-3"),
                &days(-28),
                json!({"person": person, "worker_id": WORKER, "worker_role": "PEER_SUPPORT"}),
            ),
        ];
        for step in &steps {
            let r = submitter.submit(step).await;
            assert_eq!(r.status, 201, "seeding {step}: {}", r.brief());
            if people.len() == seed as usize {
                people.push(r.body["person_id"].as_str().unwrap().to_string());
            }
        }
    }
    people
}

/// schemathesis's configuration: documented 503s (freshness, readiness) are answers, not
/// server errors (status and header conformance still check them), and path parameters
/// are often the seeded people and worker, so requests reach the read models rather than
/// stopping at 404.
fn config(dir: &std::path::Path, people: &[String]) -> PathBuf {
    let list = |v: &[String]| serde_json::to_string(v).unwrap();
    let text = format!(
        r#"[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

[dictionaries.people]
values = {people}

[dictionaries.workers]
values = {workers}

[parameters]
"path.id" = {{ dictionary = "people", probability = 0.5 }}
"path.worker_id" = {{ dictionary = "workers", probability = 0.5 }}

# The catalogue's negative cases (~5000 malformed events, all 422) take longer than the
# rest of the run; the events crate's own tests cover validation. Fuzzing still sends both.
[[operations]]
include-path = "/v1/events"
phases.coverage.generation.mode = "positive"
"#,
        people = list(people),
        workers = list(&[WORKER.to_string()]),
    );
    let path = dir.join("schemathesis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// How many operations the served document has.
async fn operations(url: &str) -> usize {
    let r = Caller::anonymous(url).get("/v1/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.body["openapi"], "3.1.0");
    r.body["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().expect("a path item").len())
        .sum()
}

/// Runs schemathesis against `server`, failing with its whole report when it fails.
async fn run(server: &Server, dir: &std::path::Path, people: &[String], headers: &[String]) {
    let st = venv_tool("schemathesis");
    let operations = operations(&server.url).await;
    let config = config(dir, people);
    let mut cmd = Command::new(&st);
    cmd.arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/v1/openapi.json", server.url)])
        .args(["--checks", CHECKS])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--workers", "2", "--request-timeout", "10", "--no-color"])
        .current_dir(dir)
        .env("NO_COLOR", "1");
    for h in headers {
        cmd.args(["-H", h]);
    }
    // Two runs at once on a small machine take longer than one after the other.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({}, {:.0?}):\n{report}",
        out.status,
        started.elapsed()
    );
    // A run that tested nothing would pass too. schemathesis leaves out the operation
    // that serves the document itself (GET /v1/openapi.json).
    let tested = format!("Tested: {}", operations - 1);
    assert!(
        report.contains(&tested),
        "schemathesis did not test the {} operations besides GET /v1/openapi.json:\n{report}",
        operations - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_server_conforms_to_its_openapi_document() {
    venv_tool("schemathesis");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let people = seed(&Caller::anonymous(&server.url)).await;
    run(&server, dir.path(), &people, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_auth_conforms_to_its_openapi_document_for_an_auditor() {
    venv_tool("schemathesis");
    let dir = tempfile::tempdir().unwrap();
    let (auth, server) = serve_with_auth(
        dir.path(),
        &[
            Spec::new("sch-partner", "PARTNER")
                .sources(&["urn:throughcare:test:e2e"])
                .types(&["throughcare.*"]),
            Spec::new("sch-auditor", "AUDITOR"),
        ],
    );
    let partner = Caller::bearer(&server.url, &auth.token("sch-partner"));
    let people = seed(&partner).await;
    let auditor = format!("Authorization: Bearer {}", auth.token("sch-auditor"));
    run(&server, dir.path(), &people, &[auditor]).await;
}
