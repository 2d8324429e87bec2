//! Submissions under someone else's name: a partner token with another partner's source or
//! a type outside its list is refused over HTTP and over NATS (`throughcare.submit` with
//! `Authorization: Bearer`), the answer does not depend on whether the person exists, and
//! nothing is recorded; staff submit as `urn:throughcare:staff:<name>` and only about
//! people they can read.

use std::time::Duration;

use serde_json::{json, Value};
use throughcare_nats::submit_request;
use throughcare_nats::testkit::NatsServer;

use crate::support::auth::{access_by_request, expect_status, new_token, Caller, Resp};
use crate::support::{event, nomis};
use crate::{
    at, in_days, ledger_head, report, settle, World, AUDITOR, COMMISSIONER, HEALTHCARE_SOURCE, JO,
    PROBATION, PROBATION_SOURCE, WCI_MANAGER,
};

const SOURCE_NOT_ALLOWED: &str = "urn:throughcare:problem:source-not-allowed";
const TYPE_NOT_ALLOWED: &str = "urn:throughcare:problem:type-not-allowed";

fn referral(id: &str, source: &str, who: &str) -> Value {
    let mut e = event(
        "referral.received",
        id,
        &at(15),
        json!({"person": {"nomis": who}, "referral_id": format!("REF-{id}"),
               "referrer": {"kind": "PRISON_HEALTHCARE"}, "prison": "WCI",
               "expected_release_date": in_days(21), "vulnerabilities": ["AUTISM"]}),
    );
    e["source"] = json!(source);
    e
}

fn contact(id: &str, source: Option<&str>, who: &str) -> Value {
    let mut e = event(
        "contact.made",
        id,
        &at(3),
        json!({"person": {"nomis": who}, "channel": "PHONE", "outcome": "SPOKE"}),
    );
    match source {
        Some(s) => e["source"] = json!(s),
        None => {
            e.as_object_mut().unwrap().remove("source");
        }
    }
    e
}

/// A problem body without the members that name the request (`instance`, request ids),
/// and with the person's identifiers replaced, for "same answer" comparisons.
/// A staff member's contact: staff name an existing person by `person_id` (DESIGN.md
/// "Rules at the edge").
fn staff_contact(id: &str, source: Option<&str>, person_id: &str) -> Value {
    let mut e = contact(id, source, "A0000AA");
    e["data"]["person"] = json!({ "person_id": person_id });
    e
}

fn comparable(body: &Value, replace: &[&str]) -> String {
    let mut b = body.clone();
    if let Some(m) = b.as_object_mut() {
        m.remove("instance");
        m.remove("request_id");
    }
    let mut text = b.to_string();
    for r in replace {
        text = text.replace(r, "<PERSON>");
    }
    text
}

fn expect_refusal(what: &str, r: &Resp, status: u16, problem: Option<&str>, out: &mut Vec<String>) {
    if r.status != status || problem.is_some_and(|p| r.problem_type() != p) {
        out.push(format!(
            "{what}: expected {status}{}, got {}",
            problem.map(|p| format!(" {p}")).unwrap_or_default(),
            r.brief()
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partner_cannot_submit_as_another_partner_over_http() {
    let w = World::seeded(&[]).await;
    let probation = w.as_(PROBATION);
    let mut problems = Vec::new();
    let before = ledger_head(&w).await;
    let unknown = nomis(9911);

    // Another partner's source: about a known person and about an unknown one.
    let known = probation
        .submit(&referral("spoof-1", HEALTHCARE_SOURCE, &w.a.nomis))
        .await;
    let fresh = probation
        .submit(&referral("spoof-1", HEALTHCARE_SOURCE, &unknown))
        .await;
    expect_refusal(
        "partner with another partner's source (known person)",
        &known,
        403,
        Some(SOURCE_NOT_ALLOWED),
        &mut problems,
    );
    expect_refusal(
        "partner with another partner's source (unknown person)",
        &fresh,
        403,
        Some(SOURCE_NOT_ALLOWED),
        &mut problems,
    );
    if comparable(&known.body, &[&w.a.nomis]) != comparable(&fresh.body, &[&unknown]) {
        problems.push(format!(
            "the refusal depends on whether the person exists:\n    known:   {}\n    unknown: {}",
            known.text, fresh.text
        ));
    }
    // A type outside its `types` (referral.* only), with its own source.
    let known_t = probation
        .submit(&contact("spoof-2", Some(PROBATION_SOURCE), &w.a.nomis))
        .await;
    let fresh_t = probation
        .submit(&contact("spoof-2", Some(PROBATION_SOURCE), &unknown))
        .await;
    expect_refusal(
        "partner with a type outside its list (known person)",
        &known_t,
        403,
        Some(TYPE_NOT_ALLOWED),
        &mut problems,
    );
    expect_refusal(
        "partner with a type outside its list (unknown person)",
        &fresh_t,
        403,
        Some(TYPE_NOT_ALLOWED),
        &mut problems,
    );
    if comparable(&known_t.body, &[&w.a.nomis]) != comparable(&fresh_t.body, &[&unknown]) {
        problems.push(format!(
            "the type refusal depends on whether the person exists:\n    known:   {}\n    unknown: {}",
            known_t.text, fresh_t.text
        ));
    }
    // A batch smuggling a spoofed event next to a good one records no spoofed event.
    let smuggled = nomis(9912);
    let batch = json!([
        referral("batch-ok", PROBATION_SOURCE, &nomis(9913)),
        referral("batch-spoof", HEALTHCARE_SOURCE, &smuggled),
    ]);
    let b = probation.submit(&batch).await;
    if (200..300).contains(&b.status) {
        problems.push(format!(
            "a batch with a spoofed item was accepted whole: {}",
            b.brief()
        ));
    }
    let after = ledger_head(&w).await;
    if after > before + 1 {
        problems.push(format!(
            "spoofed submissions moved the head from {before} to {after}"
        ));
    }
    let auditor = w.as_(AUDITOR);
    for (what, n) in [("unknown", &unknown), ("smuggled", &smuggled)] {
        let r = auditor
            .get(&format!("/v1/people?identifier=nomis:{n}"))
            .await;
        expect_status(
            &r,
            404,
            &format!("the {what} person of a refused submission exists"),
            &mut problems,
        );
    }
    // The refusals are in the access log.
    match access_by_request(&auditor).await {
        Err(e) => problems.push(e),
        Ok(entries) => {
            for (what, r) in [
                ("source", &known),
                ("source/unknown", &fresh),
                ("type", &known_t),
            ] {
                let Some(id) = r.request_id() else {
                    problems.push(format!("{what}: no Throughcare-Request-Id"));
                    continue;
                };
                match entries.get(&id) {
                    None => problems.push(format!(
                        "{what}: the refused submission is not in the access log"
                    )),
                    Some(e) => {
                        if e["outcome"] != "DENIED"
                            || e["who"] != PROBATION
                            || e["status"] != 403
                            || !(e["what"] == "SUBMIT" || e["what"] == "DENIED")
                            || e["route"] != "POST /v1/events"
                        {
                            problems.push(format!("{what}: access-log entry {e}"));
                        }
                    }
                }
            }
        }
    }
    // Its own source and an allowed type still work.
    let ok = probation
        .submit(&referral("own-1", PROBATION_SOURCE, &nomis(9914)))
        .await;
    expect_status(&ok, 201, "the partner's own referral", &mut problems);
    report("partner spoofing over HTTP", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_submit_under_their_own_name_about_people_they_can_read() {
    let w = World::seeded(&[]).await;
    let jo = w.as_(JO);
    let mut problems = Vec::new();

    // No source: the server fills in urn:throughcare:staff:jo.worker.
    let r = jo.submit(&staff_contact("staff-1", None, &w.a.id)).await;
    expect_status(&r, 201, "worker contact without a source", &mut problems);
    let explicit = jo
        .submit(&staff_contact(
            "staff-2",
            Some("urn:throughcare:staff:jo.worker"),
            &w.a.id,
        ))
        .await;
    expect_status(
        &explicit,
        201,
        "worker contact with its own staff source",
        &mut problems,
    );
    settle(&w.url()).await;
    let events = w
        .as_(AUDITOR)
        .get(&format!("/v1/people/{}/events", w.a.id))
        .await;
    let sources: Vec<(String, String)> = events.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["event"]["id"].as_str().unwrap_or("").to_string(),
                e["event"]["source"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for id in ["staff-1", "staff-2"] {
        if !sources
            .iter()
            .any(|(i, s)| i == id && s == "urn:throughcare:staff:jo.worker")
        {
            problems.push(format!("event {id} is not recorded with source urn:throughcare:staff:jo.worker: {sources:?}"));
        }
    }

    let before = ledger_head(&w).await;
    // Another source: a partner's, or another member of staff's.
    for (what, source) in [
        ("a partner's source", PROBATION_SOURCE),
        (
            "another worker's staff source",
            "urn:throughcare:staff:sam.worker",
        ),
    ] {
        let r = jo
            .submit(&staff_contact(
                &format!("staff-spoof-{what}"),
                Some(source),
                &w.a.id,
            ))
            .await;
        expect_refusal(
            &format!("worker with {what}"),
            &r,
            403,
            Some(SOURCE_NOT_ALLOWED),
            &mut problems,
        );
    }
    // About a person it cannot read: the same answer as about an unknown person.
    let unknown = "01JD0000000000000000000000".to_string();
    for (who, caller, out_of_scope) in [
        (JO, w.as_(JO), &w.b),
        (WCI_MANAGER, w.as_(WCI_MANAGER), &w.b),
    ] {
        let hidden = caller
            .submit(&staff_contact(
                &format!("oos-{who}"),
                None,
                &out_of_scope.id,
            ))
            .await;
        let none = caller
            .submit(&staff_contact(&format!("oos-{who}"), None, &unknown))
            .await;
        if (200..300).contains(&hidden.status) {
            problems.push(format!(
                "{who} submitted about a person outside its scope: {}",
                hidden.brief()
            ));
        }
        if hidden.status != none.status
            || comparable(&hidden.body, &[&out_of_scope.nomis, &out_of_scope.id])
                != comparable(&none.body, &[&unknown])
        {
            problems.push(format!(
                "{who}: the answer for a person outside its scope differs from an unknown person's:\n    out of scope: {}\n    unknown:      {}",
                hidden.brief(),
                none.brief()
            ));
        }
    }
    // Roles that never submit.
    for who in [COMMISSIONER, AUDITOR] {
        let r = w
            .as_(who)
            .submit(&staff_contact(&format!("never-{who}"), None, &w.a.id))
            .await;
        expect_refusal(&format!("{who} submits"), &r, 403, None, &mut problems);
    }
    let after = ledger_head(&w).await;
    if after != before {
        problems.push(format!(
            "refused staff submissions moved the head from {before} to {after}"
        ));
    }
    let r = w
        .as_(AUDITOR)
        .get(&format!("/v1/people/{unknown}/journey"))
        .await;
    expect_status(
        &r,
        404,
        "a refused staff submission created a person",
        &mut problems,
    );
    report("staff submissions", &problems);
}

/// One submission on `throughcare.submit`; retries while the submit service subscribes.
async fn nats_submit(url: &str, token: Option<&str>, e: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(e).unwrap();
    let mut last = String::new();
    for _ in 0..50 {
        match submit_request(
            url,
            "application/cloudevents+json",
            body.clone(),
            token,
            Duration::from_secs(5),
        )
        .await
        {
            Ok((status, reply)) => {
                let v = serde_json::from_slice(&reply)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&reply).into()));
                return (status, v);
            }
            Err(err) => {
                last = err.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("no reply on throughcare.submit: {last}");
}

/// Notes a problem unless a NATS submit reply has `status` and, when given, the problem
/// type `kind`.
fn expect_nats(
    (got, body): (u16, &Value),
    status: u16,
    kind: Option<&str>,
    what: &str,
    problems: &mut Vec<String>,
) {
    if got != status || kind.is_some_and(|k| body["type"] != k) {
        let kind = kind.unwrap_or_default();
        problems.push(format!(
            "{what}: expected {status} {kind}, got {got} {body}"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partner_cannot_submit_as_another_partner_over_nats() {
    let nats_dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&nats_dir.path().join("nats"));
    let w = World::seeded(&["--nats", &nats.url()]).await;
    let url = nats.url();
    let probation = w.auth.token(PROBATION);
    let mut problems = Vec::new();

    // Its own source over NATS is recorded (the service is up and takes bearer tokens).
    let (status, reply) = nats_submit(
        &url,
        Some(&probation),
        &referral("nats-own", PROBATION_SOURCE, &nomis(9931)),
    )
    .await;
    expect_nats(
        (status, &reply),
        201,
        None,
        "own source over NATS",
        &mut problems,
    );
    settle(&w.url()).await;
    let before = ledger_head(&w).await;
    let unknown = nomis(9932);
    let (s1, known) = nats_submit(
        &url,
        Some(&probation),
        &referral("nats-spoof", HEALTHCARE_SOURCE, &w.a.nomis),
    )
    .await;
    let (s2, fresh) = nats_submit(
        &url,
        Some(&probation),
        &referral("nats-spoof", HEALTHCARE_SOURCE, &unknown),
    )
    .await;
    for (what, s, body) in [("known person", s1, &known), ("unknown person", s2, &fresh)] {
        let what = format!("spoofed source over NATS ({what})");
        expect_nats(
            (s, body),
            403,
            Some(SOURCE_NOT_ALLOWED),
            &what,
            &mut problems,
        );
    }
    if comparable(&known, &[&w.a.nomis]) != comparable(&fresh, &[&unknown]) {
        problems.push(format!("over NATS the refusal depends on whether the person exists:\n    known:   {known}\n    unknown: {fresh}"));
    }
    let (s3, typed) = nats_submit(
        &url,
        Some(&probation),
        &contact("nats-type", Some(PROBATION_SOURCE), &w.a.nomis),
    )
    .await;
    let what = "type outside the list over NATS";
    expect_nats(
        (s3, &typed),
        403,
        Some(TYPE_NOT_ALLOWED),
        what,
        &mut problems,
    );
    // Without the header, or with a token nobody issued: 401.
    let (s4, none) = nats_submit(
        &url,
        None,
        &referral("nats-anon", PROBATION_SOURCE, &nomis(9933)),
    )
    .await;
    let what = "no Authorization header over NATS";
    expect_nats((s4, &none), 401, None, what, &mut problems);
    let bogus = new_token();
    let (s5, bad) = nats_submit(
        &url,
        Some(&bogus),
        &referral("nats-bad", PROBATION_SOURCE, &nomis(9934)),
    )
    .await;
    expect_nats(
        (s5, &bad),
        401,
        None,
        "unknown token over NATS",
        &mut problems,
    );
    // The same refusal over HTTP, for the same body.
    let http = Caller::bearer(&w.url(), &probation)
        .submit(&referral("nats-spoof", HEALTHCARE_SOURCE, &w.a.nomis))
        .await;
    if http.status != s1 || comparable(&http.body, &[]) != comparable(&known, &[]) {
        problems.push(format!("HTTP and NATS answer the same spoof differently:\n    http: {}\n    nats: {s1} {known}", http.brief()));
    }
    let after = ledger_head(&w).await;
    if after != before {
        problems.push(format!(
            "refused NATS submissions moved the head from {before} to {after}"
        ));
    }
    for n in [&unknown, &nomis(9933), &nomis(9934)] {
        let r = w
            .as_(AUDITOR)
            .get(&format!("/v1/people?identifier=nomis:{n}"))
            .await;
        expect_status(
            &r,
            404,
            &format!("a refused NATS submission created person {n}"),
            &mut problems,
        );
    }
    // NATS refusals are logged too (found by who and route).
    match crate::support::auth::access_entries(&w.as_(AUDITOR), &format!("who={PROBATION}")).await {
        Err(e) => problems.push(e),
        Ok(entries) => {
            let denied = entries
                .iter()
                .filter(|e| e["outcome"] == "DENIED" && e["status"] == 403)
                .count();
            if denied < 3 {
                problems.push(format!("expected at least 3 DENIED submissions by {PROBATION} (2 over NATS, 1 over HTTP), found {denied}: {entries:?}"));
            }
        }
    }
    // Identity over NATS, as over HTTP: a conflict names nobody's ledger id, a worker may
    // not attach someone else's identifier to its person, and nothing is recorded.
    let before = ledger_head(&w).await;
    let mut joined = referral("nats-join", PROBATION_SOURCE, &w.a.nomis);
    joined["data"]["person"] = json!({ "nomis": w.a.nomis, "nhs_number": w.b.nhs });
    let (s6, conflict) = nats_submit(&url, Some(&probation), &joined).await;
    expect_nats(
        (s6, &conflict),
        409,
        Some("urn:throughcare:problem:identity-conflict"),
        "a partner's referral joining two people over NATS",
        &mut problems,
    );
    let mut takeover = staff_contact("nats-takeover", None, &w.a.id);
    takeover["data"]["person"]["nomis"] = json!(w.b.nomis);
    let (s7, taken) = nats_submit(&url, Some(&w.auth.token(JO)), &takeover).await;
    expect_nats(
        (s7, &taken),
        409,
        Some("urn:throughcare:problem:identity-conflict"),
        "a worker naming another person's NOMIS over NATS",
        &mut problems,
    );
    for (what, body) in [("conflict", &conflict), ("takeover", &taken)] {
        let text = body.to_string();
        if text.contains(&w.a.id) || text.contains(&w.b.id) {
            problems.push(format!(
                "the {what} answer over NATS names a ledger id: {text}"
            ));
        }
    }
    let after = ledger_head(&w).await;
    if after != before {
        problems.push(format!(
            "refused identity submissions over NATS moved the head from {before} to {after}"
        ));
    }
    report("partner spoofing over NATS", &problems);
}
