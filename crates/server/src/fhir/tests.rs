//! Unit tests of the export: journeys folded from synthetic recorded events, exported, and
//! checked for the mappings, the corrections, the Provenance and determinism. (The FHIR
//! validator runs over real exports in tests/tests/fhir.rs.)

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use throughcare_events::{Event, Hash, PersonId, RecordedEvent};
use throughcare_projections::Journey;

use super::bundle;

const SOURCE: &str = "urn:throughcare:test:unit";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

/// A person's recorded events from (type suffix, id, day offset, data) rows; every data
/// names the same synthetic person.
fn recorded(rows: &[(&str, &str, i64, Value)]) -> (PersonId, Vec<RecordedEvent>) {
    let person: PersonId = "01JD0000000000000000000001".parse().unwrap();
    let mut prev = Hash::ZERO;
    let events = rows
        .iter()
        .enumerate()
        .map(|(i, (kind, id, day, data))| {
            let mut data = data.clone();
            data["person"] = json!({"nomis": "A1234BC", "nhs_number": "9434765919"});
            let time = t0() + Duration::days(*day);
            let event = Event::from_stored(&json!({
                "specversion": "1.0", "id": id, "source": SOURCE,
                "type": format!("throughcare.{kind}.v1"),
                "time": time.to_rfc3339(), "datacontenttype": "application/json", "data": data,
            }))
            .unwrap_or_else(|p| panic!("{kind}: {p:?}"));
            let hash = Hash::of(format!("{i}{id}").as_bytes());
            let e = RecordedEvent {
                position: 10 + i as u64 * 3,
                person_id: person,
                recorded_at: time + Duration::minutes(1),
                prev,
                hash,
                event,
                stored: Default::default(),
            };
            prev = hash;
            e
        })
        .collect();
    (person, events)
}

fn export(rows: &[(&str, &str, i64, Value)]) -> (Vec<RecordedEvent>, Value) {
    let (person, events) = recorded(rows);
    let journey = Journey::fold(person, &events);
    let now = t0() + Duration::days(30);
    let b = serde_json::to_value(bundle(&journey, &events, now)).unwrap();
    (events, b)
}

fn resources<'a>(b: &'a Value, kind: &str) -> Vec<&'a Value> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn full_journey() -> Vec<(&'static str, &'static str, i64, Value)> {
    vec![
        (
            "referral.received",
            "e1",
            0,
            json!({"referral_id": "REF-1", "referrer": {"kind": "PROBATION"}, "prison": "WCI",
                   "expected_release_date": "2026-03-10", "vulnerabilities": ["MENTAL_HEALTH"]}),
        ),
        (
            "referral.accepted",
            "e2",
            1,
            json!({"referral_id": "REF-1"}),
        ),
        (
            "case.allocated",
            "e3",
            1,
            json!({"worker_id": "W-1", "worker_role": "PEER_SUPPORT"}),
        ),
        ("consent.given", "e4", 2, json!({"scope": "ENGAGE"})),
        (
            "consent.given",
            "e5",
            2,
            json!({"scope": "SHARE_WITH", "orgs": ["GP"]}),
        ),
        (
            "plan.agreed",
            "e6",
            3,
            json!({"actions": [{"need": "HEALTH", "service_type": "GP", "due_by": "2026-04-01"}]}),
        ),
        (
            "prisoner.released",
            "e7",
            9,
            json!({"prison": "WCI", "reason": "RELEASED"}),
        ),
        ("contact.made", "e8", 9, json!({"channel": "GATE"})),
        ("contact.made", "e9", 10, json!({"channel": "PHONE"})),
        (
            "signposting.made",
            "e10",
            10,
            json!({"signpost_id": "S-1", "service_type": "GP", "org": "Surgery", "mode": "REFERRED"}),
        ),
        (
            "signposting.outcome",
            "e11",
            12,
            json!({"signpost_id": "S-1", "outcome": "GP_REGISTERED"}),
        ),
        (
            "record.corrected",
            "e12",
            13,
            json!({"target_event_id": "e9", "what_was_wrong": "ENTERED_IN_ERROR"}),
        ),
        (
            "consent.withdrawn",
            "e13",
            14,
            json!({"scope": "SHARE_WITH", "orgs": ["GP"]}),
        ),
    ]
}

#[test]
fn a_full_journey_maps_to_its_resources() {
    let (_, b) = export(&full_journey());
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "collection");

    let patient = resources(&b, "Patient");
    assert_eq!(patient.len(), 1);
    assert_eq!(
        patient[0]["identifier"],
        json!([{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
               {"system": "https://throughcare.example/Id/nomis", "value": "A1234BC"}])
    );

    let episodes = resources(&b, "EpisodeOfCare");
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0]["status"], "active");
    assert_eq!(episodes[0]["careManager"]["display"], "W-1");
    assert_eq!(episodes[0]["extension"][0]["valueCode"], "ENGAGED");

    let requests = resources(&b, "ServiceRequest");
    let (referral, signpost) = (requests[0], requests[1]);
    assert_eq!(referral["status"], "active");
    assert_eq!(referral["intent"], "order");
    assert_eq!(referral["requester"]["display"], "PROBATION");
    assert_eq!(signpost["status"], "completed");
    assert_eq!(signpost["extension"][0]["valueCode"], "GP_REGISTERED");
    assert_eq!(signpost["code"]["coding"][0]["code"], "GP");

    let plan = resources(&b, "CarePlan");
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0]["status"], "active");
    assert_eq!(plan[0]["activity"][0]["detail"]["status"], "completed");

    let statuses = |kind: &str| -> Vec<String> {
        resources(&b, kind)
            .iter()
            .map(|r| r["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(statuses("Encounter"), ["finished", "entered-in-error"]);
    // ENGAGE stands; sharing with the GP was given, then withdrawn.
    assert_eq!(statuses("Consent"), ["active", "inactive", "active"]);
    let withdrawal = resources(&b, "Consent")[2];
    assert_eq!(withdrawal["provision"]["type"], "deny");
}

#[test]
fn every_reference_resolves_and_every_provenance_names_recorded_events() {
    let (events, b) = export(&full_journey());
    let entries = b["entry"].as_array().unwrap();
    let urls: BTreeSet<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    assert_eq!(urls.len(), entries.len(), "full URLs are unique");
    for e in entries {
        let url = e["fullUrl"].as_str().unwrap();
        assert!(url.starts_with("urn:uuid:"), "{url}");
        assert_eq!(&url["urn:uuid:".len()..], e["resource"]["id"]);
    }
    let mut refs = Vec::new();
    collect_references(&b, &mut refs);
    for r in refs {
        assert!(
            urls.contains(r.as_str()),
            "{r} does not resolve in the bundle"
        );
    }
    let provenance = resources(&b, "Provenance");
    // Every resource but the time-based flags has one.
    let targets: BTreeSet<&str> = provenance
        .iter()
        .map(|p| p["target"][0]["reference"].as_str().unwrap())
        .collect();
    for e in entries {
        let kind = e["resource"]["resourceType"].as_str().unwrap();
        if kind != "Provenance" && kind != "Flag" {
            assert!(targets.contains(e["fullUrl"].as_str().unwrap()), "{kind}");
        }
    }
    for p in provenance {
        for entity in p["entity"].as_array().unwrap() {
            let position: u64 = entity["what"]["identifier"]["value"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let event = events.iter().find(|e| e.position == position).unwrap();
            assert_eq!(entity["extension"][0]["valueString"], event.hash.to_hex());
        }
    }
    // The voided contact's Provenance names the contact and the correction.
    let voided = resources(&b, "Encounter")[1];
    let url = format!("urn:uuid:{}", voided["id"].as_str().unwrap());
    let p = resources(&b, "Provenance")
        .into_iter()
        .find(|p| p["target"][0]["reference"] == url.as_str())
        .unwrap();
    let roles: Vec<(&str, &str)> = p["entity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["role"].as_str().unwrap(),
                e["what"]["display"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("source", "throughcare.contact.made.v1"),
            ("revision", "throughcare.record.corrected.v1")
        ]
    );
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => collect_references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

#[test]
fn the_same_ledger_exports_the_same_bundle() {
    let (_, a) = export(&full_journey());
    let (_, b) = export(&full_journey());
    assert_eq!(a, b);
}

#[test]
fn a_declined_episode_is_cancelled_and_a_new_referral_opens_another() {
    let referral = |id: &str| {
        json!({"referral_id": id, "referrer": {"kind": "SELF"}, "prison": "WCI",
               "vulnerabilities": []})
    };
    let (_, b) = export(&[
        ("referral.received", "e1", 0, referral("REF-1")),
        (
            "referral.declined",
            "e2",
            1,
            json!({"referral_id": "REF-1", "reason": "OUT_OF_AREA"}),
        ),
        ("referral.received", "e3", 2, referral("REF-2")),
    ]);
    let episodes = resources(&b, "EpisodeOfCare");
    let statuses: Vec<&Value> = episodes.iter().map(|e| &e["status"]).collect();
    assert_eq!(statuses, [&json!("cancelled"), &json!("planned")]);
    assert!(episodes[0]["period"]["end"].is_string());
    let requests = resources(&b, "ServiceRequest");
    assert_eq!(requests[0]["status"], "revoked");
    assert_eq!(requests[0]["note"][0]["text"], "declined: OUT_OF_AREA");
    assert_eq!(requests[1]["status"], "active");
    assert_eq!(
        episodes[1]["referralRequest"][0]["reference"],
        format!("urn:uuid:{}", requests[1]["id"].as_str().unwrap())
    );
}

#[test]
fn a_referral_entered_in_error_is_exported_as_such() {
    let (_, b) = export(&[
        (
            "referral.received",
            "e1",
            0,
            json!({"referral_id": "REF-1", "referrer": {"kind": "SELF"}, "prison": "WCI",
                   "vulnerabilities": []}),
        ),
        (
            "record.corrected",
            "e2",
            1,
            json!({"target_event_id": "e1", "what_was_wrong": "WRONG_PERSON"}),
        ),
    ]);
    assert!(resources(&b, "EpisodeOfCare").is_empty());
    assert_eq!(
        resources(&b, "ServiceRequest")[0]["status"],
        "entered-in-error"
    );
}

#[test]
fn cleared_flags_are_inactive_with_the_end_of_their_period() {
    let (_, b) = export(&[
        (
            "prisoner.released",
            "e1",
            0,
            json!({"prison": "WCI", "reason": "RELEASED"}),
        ),
        (
            "referral.received",
            "e2",
            1,
            json!({"referral_id": "REF-1", "referrer": {"kind": "SELF"}, "prison": "WCI",
                   "vulnerabilities": []}),
        ),
        (
            "referral.accepted",
            "e3",
            2,
            json!({"referral_id": "REF-1"}),
        ),
    ]);
    let flags = resources(&b, "Flag");
    let released = flags
        .iter()
        .find(|f| f["code"]["text"] == "RELEASED_WITHOUT_REFERRAL")
        .unwrap();
    assert_eq!(released["status"], "inactive");
    assert!(released["period"]["end"].is_string());
}
