//! HTTP end to end against the real binary on a loopback port, on the embedded backend and
//! on JetStream: a person walked from referral to GP registration, retries, reads, and
//! every bad input of DESIGN.md refused with its documented status, leaving no trace.

mod support;

use chrono::{Duration, Utc};
use serde_json::{json, Value};
use support::{days_ago as at, event, Client, Reply, Server};
use throughcare_nats::testkit::NatsServer;

/// The synthetic NHS number of this file's person (999 range, valid check digit).
fn nhs() -> String {
    support::nhs_number(1)
}

fn person() -> Value {
    json!({"nomis": "A1234BC", "nhs_number": nhs()})
}

async fn head(c: &Client) -> u64 {
    c.get("/readyz").await.body["head"].as_u64().unwrap()
}

fn assert_problem(r: &Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.content_type, "application/problem+json", "{r:?}");
    assert_eq!(r.body["status"], status, "{r:?}");
    assert_eq!(
        r.body["type"],
        format!("urn:throughcare:problem:{kind}"),
        "{r:?}"
    );
    assert!(
        r.body["title"].is_string() && r.body["detail"].is_string(),
        "{r:?}"
    );
}

/// The embedded backend, or JetStream on a nats-server of its own.
async fn on_both_backends<F, Fut>(scenario: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    scenario(Client::new(&server.url)).await;
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let server = Server::start_with(&dir.path().join("data"), &["--nats", &nats.url()]);
    scenario(Client::new(&server.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_walked_from_referral_to_gp_registration() {
    on_both_backends(walk_to_gp_registration).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_documented_status_and_leave_no_trace() {
    on_both_backends(bad_inputs).await;
}

async fn walk_to_gp_registration(c: Client) {
    let referral = event(
        "referral.received",
        "ev-1",
        &at(40),
        json!({"person": person(), "referral_id": "REF-1", "referrer": {"kind": "PRISON_HEALTHCARE"},
               "prison": "WCI", "expected_release_date": (Utc::now() - Duration::days(10)).date_naive().to_string(),
               "vulnerabilities": ["AUTISM"]}),
    );
    let r = c.post(&referral).await;
    assert_eq!(r.status, 201, "{r:?}");
    let person_id = r.body["person_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.body["duplicate"], false);
    assert_eq!(r.body["id"], "ev-1");

    // A retry returns the original position and records nothing.
    let retry = c.post(&referral).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.body["position"], 1);
    assert_eq!(retry.body["duplicate"], true);
    assert_eq!(retry.body["person_id"], person_id.as_str());

    let by_nhs = json!({"nhs_number": nhs()});
    let steps = [
        event(
            "referral.accepted",
            "ev-2",
            &at(39),
            json!({"person": by_nhs, "referral_id": "REF-1"}),
        ),
        event(
            "case.allocated",
            "ev-3",
            &at(38),
            json!({"person": by_nhs, "worker_id": "W-1", "worker_role": "PEER_SUPPORT"}),
        ),
        event(
            "consent.given",
            "ev-4",
            &at(38),
            json!({"person": by_nhs, "scope": "ENGAGE"}),
        ),
        event(
            "assessment.completed",
            "ev-5",
            &at(37),
            json!({"person": by_nhs, "kind": "INITIAL",
              "needs": [{"domain": "HEALTH", "level": "HIGH"}]}),
        ),
        event(
            "plan.agreed",
            "ev-6",
            &at(36),
            json!({"person": by_nhs, "actions": [{"need": "HEALTH", "service_type": "GP",
              "due_by": (Utc::now()).date_naive().to_string()}]}),
        ),
        event(
            "prisoner.released",
            "ev-7",
            &at(10),
            json!({"person": {"nomis": "A1234BC"}, "prison": "WCI", "reason": "RELEASED"}),
        ),
        event(
            "contact.made",
            "ev-8",
            &at(10),
            json!({"person": by_nhs, "channel": "GATE", "outcome": "MET"}),
        ),
        event(
            "signposting.made",
            "ev-9",
            &at(9),
            json!({"person": by_nhs, "signpost_id": "SP-1", "service_type": "GP",
              "org": "Example Surgery", "mode": "ACCOMPANIED"}),
        ),
        event(
            "signposting.outcome",
            "ev-10",
            &at(5),
            json!({"person": by_nhs, "signpost_id": "SP-1", "outcome": "GP_REGISTERED"}),
        ),
    ];
    let mut last = 1;
    for (i, s) in steps.iter().enumerate() {
        let r = c.post(s).await;
        assert_eq!(r.status, 201, "step {i}: {r:?}");
        assert_eq!(r.body["person_id"], person_id.as_str(), "step {i}");
        last = r.body["position"].as_u64().unwrap();
        assert_eq!(last, i as u64 + 2);
    }

    let found = c.get(&format!("/v1/people?identifier=nhs:{}", nhs())).await;
    assert_eq!(found.body["person_id"], person_id.as_str());
    let found = c.get("/v1/people?identifier=nomis:A1234BC").await;
    assert_eq!(found.body["person_id"], person_id.as_str());

    let j = c
        .get(&format!(
            "/v1/people/{person_id}/journey?min_position={last}"
        ))
        .await;
    assert_eq!(j.status, 200, "{j:?}");
    let j = j.body;
    assert_eq!(j["status"], "ENGAGED");
    assert_eq!(j["version"], last);
    assert_eq!(j["worker"]["worker_id"], "W-1");
    assert_eq!(j["prison"], "WCI");
    assert_eq!(j["in_custody"], false);
    assert_eq!(j["consent"]["engage"], true);
    assert_eq!(j["signposts"][0]["outcome"], "GP_REGISTERED");
    assert_eq!(j["timeline"].as_array().unwrap().len(), 10);
    // Bitemporal: the release happened 10 days ago and was recorded just now.
    let release = &j["timeline"][6];
    assert_eq!(release["type"], "throughcare.prisoner.released.v1");
    assert_ne!(release["occurred_at"], release["recorded_at"]);
    assert!(
        j["active_flags"].as_array().unwrap().is_empty(),
        "{}",
        j["active_flags"]
    );

    let events = c.get(&format!("/v1/people/{person_id}/events")).await.body;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 10);
    assert_eq!(events[0]["prev"], "0".repeat(64));
    for w in events.windows(2) {
        assert_eq!(w[1]["prev"], w[0]["hash"]);
        assert!(w[1]["position"].as_u64() > w[0]["position"].as_u64());
    }
    assert_eq!(events[0]["event"]["data"]["referral_id"], "REF-1");
    let v = c.get(&format!("/v1/people/{person_id}/verify")).await.body;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], 10);

    // The web page shows the journey.
    let page = c.get(&format!("/people/{person_id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.as_str().unwrap().contains("GP_REGISTERED"));

    // The caseload of the worker lists the person.
    let cl = c.get("/v1/caseload/W-1").await.body;
    assert_eq!(cl["cases"][0]["person_id"], person_id.as_str());
}

async fn bad_inputs(c: Client) {
    let good = event(
        "referral.received",
        "ok-1",
        &at(3),
        json!({"person": person(), "referral_id": "REF-1", "referrer": {"kind": "PROBATION"}, "prison": "BNI",
               "vulnerabilities": []}),
    );
    let r = c.post(&good).await;
    assert_eq!(r.status, 201, "{r:?}");
    let person_id = r.body["person_id"].as_str().unwrap().to_string();
    let closed = event(
        "case.closed",
        "ok-2",
        &at(2),
        json!({"person": person(), "reason": "NEEDS_MET"}),
    );
    assert_eq!(c.post(&closed).await.status, 201);
    let before = head(&c).await;
    assert_eq!(before, 2);

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        v["id"] = json!("bad");
        f(&mut v);
        v
    };
    // Structural errors: 422 with every problem and its pointer.
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "not a CloudEvent",
            json!({"hello": "world"}),
            vec![
                "/specversion",
                "/id",
                "/source",
                "/type",
                "/time",
                "/data",
                "/hello",
            ],
        ),
        (
            "unknown type",
            edit(&|v| v["type"] = json!("throughcare.unknown.v1")),
            vec!["/type"],
        ),
        (
            "missing field",
            edit(&|v| {
                v["data"].as_object_mut().unwrap().remove("referral_id");
            }),
            vec!["/data/referral_id"],
        ),
        (
            "ill-typed field",
            edit(&|v| v["data"]["vulnerabilities"] = json!("AUTISM")),
            vec!["/data/vulnerabilities"],
        ),
        (
            "bad NHS check digit",
            edit(&|v| {
                v["data"]["person"]["nhs_number"] =
                    json!(throughcare_synthetic::invalid_nhs_number(1))
            }),
            vec!["/data/person/nhs_number"],
        ),
        (
            "unknown prison",
            edit(&|v| v["data"]["prison"] = json!("QQQ")),
            vec!["/data/prison"],
        ),
        (
            "time in the future",
            edit(&|v| v["time"] = json!((Utc::now() + Duration::minutes(10)).to_rfc3339())),
            vec!["/time"],
        ),
        (
            "two problems",
            edit(&|v| {
                v["data"]["prison"] = json!("QQQ");
                v["data"]["person"]["nomis"] = json!("1234");
            }),
            vec!["/data/person/nomis", "/data/prison"],
        ),
    ];
    for (name, body, pointers) in cases {
        let r = c.post(&body).await;
        assert_problem(&r, 422, "invalid-submission");
        let mut got: Vec<String> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut want: Vec<String> = pointers.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{name}: {r:?}");
    }
    // An event over 64 KiB (personal notes of 1 KiB each, every one within its own limit).
    let mut big = good.clone();
    big["data"]["personal"] = Value::Object(
        (0..70)
            .map(|i| (format!("note{i}"), json!("x".repeat(1024))))
            .collect(),
    );
    let r = c.post(&big).await;
    assert_problem(&r, 422, "invalid-submission");
    assert!(r.body.to_string().contains("64 KiB"), "{r:?}");
    // Not JSON; wrong media type; batch media type with one object.
    assert_problem(
        &c.post_raw("application/cloudevents+json", b"{nope".to_vec())
            .await,
        422,
        "invalid-submission",
    );
    assert_problem(
        &c.post_raw("text/plain", b"{}".to_vec()).await,
        415,
        "unsupported-media-type",
    );
    assert_problem(
        &c.post_raw(
            "application/cloudevents-batch+json",
            serde_json::to_vec(&good).unwrap(),
        )
        .await,
        422,
        "invalid-submission",
    );

    // Impossible decisions: 409 with the current state and the allowed events.
    let allocate = event(
        "case.allocated",
        "d-1",
        &at(1),
        json!({"person": person(), "worker_id": "W-9", "worker_role": "NAVIGATOR"}),
    );
    let r = c.post(&allocate).await;
    assert_problem(&r, 409, "case-state");
    assert_eq!(r.body["current_state"], "CLOSED");
    let allowed: Vec<&str> = r.body["allowed_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        allowed.contains(&"throughcare.referral.received.v1")
            && !allowed.contains(&"throughcare.case.allocated.v1"),
        "{allowed:?}"
    );
    let outcome = event(
        "signposting.outcome",
        "d-2",
        &at(1),
        json!({"person": person(), "signpost_id": "NOPE", "outcome": "ATTENDED"}),
    );
    assert_problem(&c.post(&outcome).await, 409, "case-state");
    // Closing a case never opened, for someone new: refused, and no person is created.
    let stranger = json!({"nomis": "Z9999ZZ"});
    let close = event(
        "case.closed",
        "d-3",
        &at(1),
        json!({"person": stranger, "reason": "NEEDS_MET"}),
    );
    let r = c.post(&close).await;
    assert_problem(&r, 409, "case-state");
    assert_eq!(r.body["current_state"], "NOT_REFERRED");
    assert_problem(
        &c.get("/v1/people?identifier=nomis:Z9999ZZ").await,
        404,
        "not-found",
    );

    // Identity conflict: identifiers of two different people are never merged.
    let other = event(
        "referral.received",
        "p2-1",
        &at(1),
        json!({"person": {"nomis": "B2345CD"}, "referral_id": "REF-2",
        "referrer": {"kind": "SELF"}, "prison": "AYI", "vulnerabilities": []}),
    );
    assert_eq!(c.post(&other).await.status, 201);
    let before = head(&c).await;
    let merge = event(
        "identifiers.linked",
        "m-1",
        &at(1),
        json!({"person": {"nomis": "B2345CD"}, "identifiers": {"nhs_number": nhs()}}),
    );
    assert_problem(&c.post(&merge).await, 409, "identity-conflict");
    // Same (source, id), different body.
    let mut reused = good.clone();
    reused["data"]["prison"] = json!("WCI");
    let r = c.post(&reused).await;
    assert_problem(&r, 409, "idempotency-conflict");
    assert_eq!(r.body["position"], 1);

    // A batch is validated whole: one bad item and nothing is recorded.
    let person = json!({"nomis": "C3456DE"});
    let fine = support::referral("b-1", &at(1), person, "REF-3", "FAMILY_FRIEND", "GNI");
    let mut broken = fine.clone();
    broken["id"] = json!("b-2");
    broken["data"]["prison"] = json!("ZZZ");
    let r = c.post(&json!([fine.clone(), broken])).await;
    assert_problem(&r, 422, "invalid-submission");
    assert_eq!(r.body["errors"][0]["pointer"], "/1/data/prison");
    let refused = event(
        "case.allocated",
        "b-3",
        &at(1),
        json!({"person": {"nomis": "D4567EF"}, "worker_id": "W", "worker_role": "NAVIGATOR"}),
    );
    let r = c.post(&json!([fine.clone(), refused])).await;
    assert_problem(&r, 409, "batch-refused");
    assert_eq!(r.body["items"][0]["index"], 1);
    assert_problem(
        &c.get("/v1/people?identifier=nomis:C3456DE").await,
        404,
        "not-found",
    );

    assert_eq!(head(&c).await, before, "a refused input was recorded");
    let events = c.get(&format!("/v1/people/{person_id}/events")).await.body;
    assert_eq!(events["events"].as_array().unwrap().len(), 2);

    // A good batch records every item, in order, and reports each.
    let accept = event(
        "referral.accepted",
        "b-4",
        &at(1),
        json!({"person": {"nomis": "C3456DE"}, "referral_id": "REF-3"}),
    );
    let r = c.post(&json!([fine, accept])).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(
        r.body["items"][0]["position"].as_u64().unwrap() + 1,
        r.body["items"][1]["position"].as_u64().unwrap()
    );
    assert_eq!(
        r.body["items"][0]["person_id"],
        r.body["items"][1]["person_id"]
    );

    // Queries with bad parameters and unknown routes are problems too.
    assert_problem(
        &c.get("/v1/people?identifier=passport:1").await,
        400,
        "bad-request",
    );
    // An id that does not parse names nobody: refused by the guard as unknown.
    assert_problem(
        &c.get("/v1/people/not-a-ulid/journey").await,
        404,
        "not-found",
    );
    assert_problem(&c.get("/v1/nothing-here").await, 404, "not-found");
    let stale = c
        .get(&format!(
            "/v1/people/{person_id}/journey?min_position=999999"
        ))
        .await;
    assert_problem(&stale, 503, "unavailable");
}
