//! FHIR R4 out, end to end: the real binary with `--auth`, a person walked through every
//! event type of the catalogue (a contact then corrected ENTERED_IN_ERROR), exported with
//! `GET /v1/people/{id}/fhir`, and the Bundle validated by a real FHIR library: the R4B
//! models of the `fhir.resources` PyPI package, from the venv scripts/python-venv.sh pins.
//! Then what validation cannot see: the NHS number system, the correction shown as
//! `entered-in-error`, Provenance that names positions and hashes of `/events`, and the
//! journey's access rules and access logging (EXPORT).
//!
//! A missing venv fails loudly with the command that makes it; it is never a skip.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};
use support::auth::{access_by_request, serve_with_auth, settle, Caller, Spec};
use support::{
    date_in_days as in_days, event, minutes_ago as at, nhs_number, nomis, venv_tool, Server,
};

const JO: &str = "jo.worker";
const SAM: &str = "sam.worker";
const AUDITOR: &str = "ig.auditor";

/// Parses the Bundle with fhir.resources' R4B models (pydantic v2): every resource of
/// every entry, its required elements, types, cardinalities and value formats.
const VALIDATE: &str = r#"
import sys
import fhir.resources
from fhir.resources.R4B.bundle import Bundle
with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
try:
    bundle = Bundle.model_validate_json(text)
except Exception as e:
    print(e)
    sys.exit(1)
kinds = sorted({e.resource.get_resource_type() for e in bundle.entry})
print("fhir.resources", fhir.resources.__version__, len(bundle.entry), "entries:", " ".join(kinds))
"#;

/// The validator's verdict: Ok(its summary) or Err(its message).
fn validate(bundle: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, bundle).unwrap();
    let py = venv_tool("python");
    let out = Command::new(&py)
        .args(["-c", VALIDATE])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text.trim().to_string())
    } else {
        Err(text)
    }
}

/// Every event type of the catalogue, in an order the case state machine allows; `ev-16`
/// (a phone contact) is later corrected ENTERED_IN_ERROR.
fn journey(p: &Value) -> Vec<Value> {
    let e = |kind: &str, n: u32, minutes_ago: i64, mut data: Value| {
        data["person"] = p.clone();
        event(kind, &format!("ev-{n}"), &at(minutes_ago), data)
    };
    let referral = |id: &str, kind: &str| {
        json!({"referral_id": id, "referrer": {"kind": kind}, "prison": "WCI",
               "expected_release_date": in_days(0), "vulnerabilities": ["MENTAL_HEALTH", "AUTISM"]})
    };
    let action =
        |due: i64| json!([{"need": "HEALTH", "service_type": "GP", "due_by": in_days(due)}]);
    vec![
        e(
            "referral.received",
            1,
            600,
            referral("REF-1", "PRISON_HEALTHCARE"),
        ),
        e("referral.received", 2, 590, referral("REF-2", "PROBATION")),
        e(
            "referral.withdrawn",
            3,
            585,
            json!({"referral_id": "REF-2"}),
        ),
        e("referral.accepted", 4, 580, json!({"referral_id": "REF-1"})),
        e(
            "release_date.set",
            5,
            575,
            json!({"date": in_days(0), "date_type": "CONFIRMED"}),
        ),
        e(
            "prisoner.transferred",
            6,
            570,
            json!({"from_prison": "WCI", "to_prison": "BNI"}),
        ),
        e(
            "case.allocated",
            7,
            560,
            json!({"worker_id": "W-WCI-01", "worker_role": "PEER_SUPPORT"}),
        ),
        e("consent.given", 8, 550, json!({"scope": "ENGAGE"})),
        e(
            "consent.given",
            9,
            549,
            json!({"scope": "SHARE_WITH", "orgs": ["GP"]}),
        ),
        e(
            "assessment.completed",
            10,
            540,
            json!({"kind": "PRE_RELEASE", "needs": [{"domain": "HEALTH", "level": "HIGH"}]}),
        ),
        e(
            "plan.agreed",
            11,
            530,
            json!({"actions": action(14), "next_review": in_days(30)}),
        ),
        e(
            "identifiers.linked",
            12,
            520,
            json!({"identifiers": {"crn": "X123456"}}),
        ),
        e(
            "prisoner.released",
            13,
            500,
            json!({"prison": "BNI", "reason": "RELEASED"}),
        ),
        e(
            "contact.attempted",
            14,
            495,
            json!({"channel": "PHONE", "outcome": "NO_ANSWER"}),
        ),
        e(
            "contact.made",
            15,
            490,
            json!({"channel": "GATE", "outcome": "MET"}),
        ),
        e(
            "contact.made",
            16,
            480,
            json!({"channel": "PHONE", "outcome": "SPOKE"}),
        ),
        e("engagement.changed", 17, 470, json!({"status": "ENGAGED"})),
        e(
            "signposting.made",
            18,
            460,
            json!({"signpost_id": "S-1", "service_type": "GP", "org": "Riverside Surgery", "mode": "ACCOMPANIED"}),
        ),
        e(
            "signposting.outcome",
            19,
            450,
            json!({"signpost_id": "S-1", "outcome": "GP_REGISTERED"}),
        ),
        e(
            "safeguarding.raised",
            20,
            440,
            json!({"category": "SELF_HARM", "referred_to": "CMHT"}),
        ),
        e("plan.reviewed", 21, 430, json!({"actions": action(21)})),
        e(
            "support.extended",
            22,
            420,
            json!({"until": in_days(200), "reason": "ONGOING_NEEDS"}),
        ),
        e(
            "record.corrected",
            23,
            410,
            json!({"target_event_id": "ev-16", "what_was_wrong": "ENTERED_IN_ERROR"}),
        ),
        e(
            "consent.withdrawn",
            24,
            400,
            json!({"scope": "SHARE_WITH", "orgs": ["GP"]}),
        ),
        e(
            "prisoner.returned_to_custody",
            25,
            390,
            json!({"prison": "BNI", "recall": true}),
        ),
        e(
            "prisoner.released",
            26,
            380,
            json!({"prison": "BNI", "reason": "RELEASED"}),
        ),
        e("case.closed", 27, 370, json!({"reason": "NEEDS_MET"})),
        e("case.reopened", 28, 360, json!({})),
        e("referral.received", 29, 350, referral("REF-3", "SELF")),
        e(
            "referral.declined",
            30,
            340,
            json!({"referral_id": "REF-3", "reason": "DUPLICATE"}),
        ),
    ]
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .expect("entry")
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journey_through_every_event_type_exports_a_valid_fhir_bundle() {
    venv_tool("python");
    let dir = tempfile::tempdir().unwrap();
    let (auth, server) = serve_with_auth(
        dir.path(),
        &[
            Spec::new("seeder", "PARTNER")
                .sources(&["urn:throughcare:test:e2e"])
                .types(&["throughcare.*"]),
            Spec::new(JO, "WORKER").worker_id("W-WCI-01"),
            Spec::new(SAM, "WORKER").worker_id("W-BNI-07"),
            Spec::new(AUDITOR, "AUDITOR"),
        ],
    );
    let as_ = |name: &str| Caller::bearer(&server.url, &auth.token(name));
    let seeder = as_("seeder");
    let person = json!({"nomis": nomis(8101), "nhs_number": nhs_number(8101)});
    let mut person_id = String::new();
    for e in journey(&person) {
        let r = seeder.submit(&e).await;
        assert_eq!(r.status, 201, "{}: {}", e["type"], r.brief());
        person_id = r.body["person_id"].as_str().unwrap().to_string();
    }
    settle(&server.url).await;
    let path = format!("/v1/people/{person_id}/fhir");

    // The allocated worker reads the export, as the journey.
    let jo = as_(JO);
    let r = jo.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(
        r.content_type().starts_with("application/fhir+json"),
        "{}",
        r.brief()
    );
    let summary = validate(&r.text).unwrap_or_else(|message| {
        panic!(
            "fhir.resources (R4B) refused the Bundle:\n{message}\nBundle:\n{}",
            r.text
        )
    });
    eprintln!("validated: {summary}");
    let bundle = &r.body;
    assert_eq!(bundle["type"], "collection");
    for kind in [
        "Patient",
        "EpisodeOfCare",
        "ServiceRequest",
        "CarePlan",
        "Consent",
        "Encounter",
        "Flag",
        "Provenance",
    ] {
        assert!(!of_type(bundle, kind).is_empty(), "no {kind} in {bundle}");
    }

    let patient = of_type(bundle, "Patient")[0];
    let system_of = |value: &str| {
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["value"] == value)
            .map(|i| i["system"].clone())
    };
    assert_eq!(
        system_of(person["nhs_number"].as_str().unwrap()),
        Some(json!("https://fhir.nhs.uk/Id/nhs-number"))
    );
    assert_eq!(
        system_of(person["nomis"].as_str().unwrap()),
        Some(json!("https://throughcare.example/Id/nomis"))
    );
    assert_eq!(
        system_of("X123456"),
        Some(json!("https://throughcare.example/Id/crn"))
    );

    // The two contacts made: the gate meeting stands, the phone call was entered in error.
    let encounters = of_type(bundle, "Encounter");
    let statuses: Vec<&Value> = encounters.iter().map(|e| &e["status"]).collect();
    assert_eq!(
        statuses,
        [&json!("finished"), &json!("entered-in-error")],
        "{encounters:?}"
    );
    let episode = of_type(bundle, "EpisodeOfCare")[0];
    assert_eq!(episode["careManager"]["display"], "W-WCI-01");
    let signpost = of_type(bundle, "ServiceRequest")
        .into_iter()
        .find(|s| s["category"][0]["coding"][0]["code"] == "SIGNPOST")
        .expect("the signpost");
    assert_eq!(signpost["status"], "completed");
    assert_eq!(signpost["extension"][0]["valueCode"], "GP_REGISTERED");

    // Each Provenance names positions and hashes that /events has.
    let events = jo.get(&format!("/v1/people/{person_id}/events")).await;
    assert_eq!(events.status, 200, "{}", events.brief());
    let hashes: BTreeMap<String, String> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["position"].to_string(),
                e["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let provenance = of_type(bundle, "Provenance");
    let mut named = 0;
    for p in &provenance {
        for entity in p["entity"].as_array().unwrap() {
            let position = entity["what"]["identifier"]["value"].as_str().unwrap();
            let hash = entity["extension"][0]["valueString"].as_str().unwrap();
            assert_eq!(
                hashes.get(position).map(String::as_str),
                Some(hash),
                "Provenance names position {position} with hash {hash}, unlike /events"
            );
            named += 1;
        }
    }
    assert!(
        named >= hashes.len(),
        "{named} entities for {} events",
        hashes.len()
    );
    // The voided encounter's Provenance names the correction too.
    let voided = format!("urn:uuid:{}", encounters[1]["id"].as_str().unwrap());
    let p = provenance
        .iter()
        .find(|p| p["target"][0]["reference"] == voided.as_str())
        .expect("the voided encounter's Provenance");
    assert!(
        p["entity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["role"] == "revision"),
        "{p}"
    );

    // Same access rules as the journey: another worker is told the person does not exist.
    let sam = as_(SAM);
    let refused = sam.get(&path).await;
    assert_eq!(refused.status, 404, "{}", refused.brief());
    assert!(refused.is_problem(), "{}", refused.brief());
    let journey_refused = sam.get(&format!("/v1/people/{person_id}/journey")).await;
    assert_eq!(refused.body["detail"], journey_refused.body["detail"]);

    // And the same logging: the read is EXPORT, the refusal DENIED, both on the record.
    let log = access_by_request(&as_(AUDITOR)).await.unwrap();
    let entry = |r: &support::auth::Resp| {
        let id = r.request_id().expect("request id header");
        log.get(&id)
            .unwrap_or_else(|| panic!("no access-log entry for request {id}"))
            .clone()
    };
    let read = entry(&r);
    assert_eq!(read["what"], "EXPORT", "{read}");
    assert_eq!(read["who"], JO, "{read}");
    assert_eq!(read["outcome"], "ALLOWED", "{read}");
    assert_eq!(read["person_id"], person_id.as_str(), "{read}");
    assert_eq!(read["route"], "GET /v1/people/{id}/fhir", "{read}");
    let denied = entry(&refused);
    assert_eq!(denied["who"], SAM, "{denied}");
    assert_eq!(denied["outcome"], "DENIED", "{denied}");
    assert_eq!(denied["status"], 404, "{denied}");
    assert_eq!(denied["person_id"], person_id.as_str(), "{denied}");
}

#[test]
fn the_validator_refuses_a_broken_bundle() {
    // The check above is only worth something if the validator says no to a bad Bundle.
    let broken = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:8d4a6c1e-0000-8000-8000-000000000001",
         "resource": {"resourceType": "Encounter", "status": "finished"}}]});
    let message = validate(&broken.to_string()).expect_err("an Encounter without class");
    assert!(message.contains("class"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_person_has_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let c = Caller::anonymous(&server.url);
    let r = c.get("/v1/people/01JD0000000000000000000000/fhir").await;
    assert_eq!(r.status, 404, "{}", r.brief());
    assert!(r.is_problem(), "{}", r.brief());
    // An id that does not parse names nobody: the guard's unknown-person 404.
    let r = c.get("/v1/people/not-a-person/fhir").await;
    assert_eq!(r.status, 404, "{}", r.brief());
}
