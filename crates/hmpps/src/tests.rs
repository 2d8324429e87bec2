//! Every row of DESIGN.md's mapping table, as `check(message, person, expected)` cases
//! over messages shaped like HMPPS's published ones (bare and in the SNS envelope), plus
//! the idempotency id, the time conversion and the pointers of malformed messages.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use throughcare_events::{PersonId, PrisonCode};

use crate::{map, parse, Ignored, Mapping, PersonState, SOURCE};

const NOMIS: &str = "A1234BC";
const FORMER: &str = "B2345CD";
const OCCURRED: &str = "2026-11-20T09:30:00+01:00";

/// A domain event as HMPPS publishes it (synthetic values).
fn domain(event_type: &str, info: Value) -> Value {
    throughcare_synthetic::hmpps::domain_event(
        event_type,
        NOMIS,
        info,
        OCCURRED,
        "2026-11-20T09:30:05.123+01:00",
    )
}

fn released(reason: &str) -> Value {
    domain(
        crate::RELEASED,
        json!({ "reason": reason, "prisonId": "WCI", "details": "Movement reason code CR",
                "currentLocation": "OUTSIDE_PRISON", "currentPrisonStatus": "NOT_UNDER_PRISON_CARE" }),
    )
}

fn received(reason: &str, prison: &str, code: &str) -> Value {
    domain(
        crate::RECEIVED,
        json!({ "reason": reason, "prisonId": prison, "nomisMovementReasonCode": code,
                "currentLocation": "IN_PRISON", "currentPrisonStatus": "UNDER_PRISON_CARE" }),
    )
}

fn merged() -> Value {
    domain(
        crate::MERGED,
        json!({ "removedNomsNumber": FORMER, "reason": "MERGE" }),
    )
}

/// The SNS notification SQS delivers, with the domain event as a JSON string.
fn sns(event: &Value, message_id: &str) -> Value {
    throughcare_synthetic::hmpps::sns(event, message_id, "2026-11-20T08:30:05.200Z")
}

fn person(n: u128) -> PersonId {
    PersonId(ulid::Ulid(n))
}

fn unknown() -> PersonState {
    PersonState::unknown()
}

/// Known, held at `prison`.
fn held(prison: &str) -> PersonState {
    PersonState {
        person: Some(person(1)),
        released: false,
        prison: Some(PrisonCode::parse(prison).unwrap()),
    }
}

/// Known, released from `prison`.
fn out(prison: &str) -> PersonState {
    PersonState {
        released: true,
        ..held(prison)
    }
}

#[derive(Debug)]
enum Want {
    /// Record this type (suffix) with this data (without `person`).
    Record(&'static str, Value),
    Ignored(Ignored),
    Conflict,
    /// Refused, with problems at exactly these pointers.
    Malformed(&'static [&'static str]),
}

fn check(message: &Value, subject: PersonState, want: Want) {
    check_with(message, subject, unknown(), want)
}

fn check_with(message: &Value, subject: PersonState, removed: PersonState, want: Want) {
    let body = serde_json::to_vec(message).unwrap();
    let got = parse(&body).map(|n| map(&n, &subject, &removed));
    match (&want, &got) {
        (Want::Record(kind, data), Ok(Mapping::Record(event))) => {
            assert_eq!(
                event["type"],
                format!("throughcare.{kind}.v1"),
                "{message}\n{event}"
            );
            let mut want_data = data.clone();
            want_data["person"] = json!({ "nomis": NOMIS });
            assert_eq!(event["data"], want_data, "{message}");
            assert_eq!(event["source"], SOURCE);
            // What the adapter makes is a valid CloudEvent of the catalogue.
            let now = DateTime::parse_from_rfc3339(OCCURRED).unwrap().to_utc() + Duration::hours(1);
            let bytes = serde_json::to_vec(event).unwrap();
            if let Err(p) = throughcare_events::validate_body(&bytes, now) {
                panic!("{event} is not a valid CloudEvent: {p:?}");
            }
        }
        (Want::Ignored(reason), Ok(Mapping::Ignored(got))) => assert_eq!(reason, got, "{message}"),
        (Want::Conflict, Ok(Mapping::IdentityConflict { .. })) => {}
        (Want::Malformed(pointers), Err(problems)) => {
            let got: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
            assert_eq!(&got, pointers, "{message}: {problems:?}");
        }
        _ => panic!("{message}\nwith {subject:?}\nwanted {want:?}\ngot {got:?}"),
    }
}

use Want::*;

#[test]
fn released_rows() {
    let rel = |reason| json!({ "prison": "WCI", "reason": reason });
    for wrap in [false, true] {
        let m = |e: Value| {
            if wrap {
                sns(&e, "0a1b2c3d-0000-4000-8000-000000000001")
            } else {
                e
            }
        };
        check(
            &m(released("RELEASED")),
            held("WCI"),
            Record("prisoner.released", rel("RELEASED")),
        );
        check(
            &m(released("RELEASED_TO_HOSPITAL")),
            held("WCI"),
            Record("prisoner.released", rel("RELEASED_TO_HOSPITAL")),
        );
        check(
            &m(released("TRANSFERRED")),
            held("WCI"),
            Ignored(crate::Ignored::TransferredOut),
        );
        check(
            &m(released("SENT_TO_COURT")),
            held("WCI"),
            Ignored(crate::Ignored::SentToCourt),
        );
        check(
            &m(released("TEMPORARY_ABSENCE_RELEASE")),
            held("WCI"),
            Ignored(crate::Ignored::TemporaryAbsenceRelease),
        );
        check(
            &m(released("UNKNOWN")),
            held("WCI"),
            Ignored(crate::Ignored::UnknownReleaseReason),
        );
        check(
            &m(released("SOMETHING_NEW")),
            held("WCI"),
            Ignored(crate::Ignored::UnhandledReason),
        );
        // Only people the ledger knows are recorded.
        check(
            &m(released("RELEASED")),
            unknown(),
            Ignored(crate::Ignored::UnknownPerson),
        );
    }
}

#[test]
fn received_rows() {
    let back = |prison: &str, recall: bool| json!({ "prison": prison, "recall": recall });
    let moved = |from: &str, to: &str| json!({ "from_prison": from, "to_prison": to });
    for wrap in [false, true] {
        let m = |e: Value| {
            if wrap {
                sns(&e, "0a1b2c3d-0000-4000-8000-000000000002")
            } else {
                e
            }
        };
        // ADMISSION after a release: a return to custody, a recall by movement code.
        for code in crate::RECALL_CODES {
            check(
                &m(received("ADMISSION", "BNI", code)),
                out("WCI"),
                Record("prisoner.returned_to_custody", back("BNI", true)),
            );
        }
        for code in ["N", "I", "25", "V"] {
            check(
                &m(received("ADMISSION", "WCI", code)),
                out("WCI"),
                Record("prisoner.returned_to_custody", back("WCI", false)),
            );
        }
        let mut no_code = received("ADMISSION", "WCI", "N");
        no_code["additionalInformation"]
            .as_object_mut()
            .unwrap()
            .remove("nomisMovementReasonCode");
        check(
            &m(no_code),
            out("WCI"),
            Record("prisoner.returned_to_custody", back("WCI", false)),
        );
        // ADMISSION with no release before it: nothing new, unless the prison differs.
        check(
            &m(received("ADMISSION", "WCI", "N")),
            held("WCI"),
            Ignored(crate::Ignored::NoChange),
        );
        check(
            &m(received("ADMISSION", "BNI", "N")),
            held("WCI"),
            Record("prisoner.transferred", moved("WCI", "BNI")),
        );
        // TRANSFERRED in.
        check(
            &m(received("TRANSFERRED", "AYI", "INT")),
            held("WCI"),
            Record("prisoner.transferred", moved("WCI", "AYI")),
        );
        check(
            &m(received("TRANSFERRED", "WCI", "INT")),
            held("WCI"),
            Ignored(crate::Ignored::NoChange),
        );
        check(
            &m(received("TRANSFERRED", "WCI", "INT")),
            PersonState {
                prison: None,
                ..held("WCI")
            },
            Ignored(crate::Ignored::NoChange),
        );
        check(
            &m(received("RETURN_FROM_COURT", "WCI", "CRT")),
            held("WCI"),
            Ignored(crate::Ignored::ReturnFromCourt),
        );
        check(
            &m(received("TEMPORARY_ABSENCE_RETURN", "WCI", "C3")),
            held("WCI"),
            Ignored(crate::Ignored::TemporaryAbsenceReturn),
        );
        check(
            &m(received("POST_MERGE_ADMISSION", "WCI", "N")),
            held("WCI"),
            Ignored(crate::Ignored::UnhandledReason),
        );
        check(
            &m(received("ADMISSION", "BNI", "24")),
            unknown(),
            Ignored(crate::Ignored::UnknownPerson),
        );
    }
}

#[test]
fn merged_rows() {
    let linked = || json!({ "identifiers": { "nomis": FORMER } });
    let known = |n| PersonState {
        person: Some(person(n)),
        ..PersonState::default()
    };
    for wrap in [false, true] {
        let m = |e: Value| {
            if wrap {
                sns(&e, "0a1b2c3d-0000-4000-8000-000000000003")
            } else {
                e
            }
        };
        // removedNomsNumber becomes a former NOMIS of nomsNumber's person...
        check_with(
            &m(merged()),
            known(1),
            unknown(),
            Record("identifiers.linked", linked()),
        );
        // ...whichever of the two the ledger knew.
        check_with(
            &m(merged()),
            unknown(),
            known(1),
            Record("identifiers.linked", linked()),
        );
        check_with(
            &m(merged()),
            unknown(),
            unknown(),
            Ignored(crate::Ignored::UnknownPerson),
        );
        check_with(
            &m(merged()),
            known(1),
            known(1),
            Ignored(crate::Ignored::AlreadyLinked),
        );
        // Two different people: flagged for a human, never merged silently.
        check_with(&m(merged()), known(1), known(2), Conflict);
    }
}

#[test]
fn other_event_types_are_ignored() {
    let e = json!({ "eventType": "prison-offender-events.prisoner.cell.move", "version": 1,
                    "occurredAt": OCCURRED, "additionalInformation": { "nomsNumber": NOMIS } });
    check(&e, held("WCI"), Ignored(crate::Ignored::UnhandledEventType));
    check(
        &sns(&e, "m-1"),
        held("WCI"),
        Ignored(crate::Ignored::UnhandledEventType),
    );
}

#[test]
fn malformed_messages_name_every_problem() {
    let without = |mut e: Value, field: &str| {
        e["additionalInformation"]
            .as_object_mut()
            .unwrap()
            .remove(field);
        e
    };
    let set = |mut e: Value, field: &str, v: Value| {
        e["additionalInformation"][field] = v;
        e
    };
    check(&json!([1, 2]), held("WCI"), Malformed(&[""]));
    check(&json!({}), held("WCI"), Malformed(&["/eventType"]));
    let mut e = released("RELEASED");
    e["occurredAt"] = json!("2026-11-20T09:30:00");
    check(&e, held("WCI"), Malformed(&["/occurredAt"]));
    check(
        &without(released("RELEASED"), "prisonId"),
        held("WCI"),
        Malformed(&["/additionalInformation/prisonId"]),
    );
    check(
        &set(released("RELEASED"), "prisonId", json!("ZZZ")),
        held("WCI"),
        Malformed(&["/additionalInformation/prisonId"]),
    );
    check(
        &without(released("RELEASED"), "reason"),
        held("WCI"),
        Malformed(&["/additionalInformation/reason"]),
    );
    // No NOMIS number anywhere; a bad one; two that disagree.
    let mut e = without(released("RELEASED"), "nomsNumber");
    e.as_object_mut().unwrap().remove("personReference");
    check(
        &e,
        held("WCI"),
        Malformed(&["/additionalInformation/nomsNumber"]),
    );
    check(
        &set(released("RELEASED"), "nomsNumber", json!("12345")),
        held("WCI"),
        Malformed(&["/additionalInformation/nomsNumber"]),
    );
    check(
        &set(released("RELEASED"), "nomsNumber", json!("C3456DE")),
        held("WCI"),
        Malformed(&["/personReference/identifiers/0/value"]),
    );
    // The NOMIS number of personReference alone is enough.
    check(
        &without(released("RELEASED"), "nomsNumber"),
        held("WCI"),
        Record(
            "prisoner.released",
            json!({ "prison": "WCI", "reason": "RELEASED" }),
        ),
    );
    check(
        &set(
            received("ADMISSION", "WCI", "24"),
            "nomisMovementReasonCode",
            json!(24),
        ),
        out("WCI"),
        Malformed(&["/additionalInformation/nomisMovementReasonCode"]),
    );
    check(
        &set(merged(), "removedNomsNumber", json!(NOMIS)),
        held("WCI"),
        Malformed(&["/additionalInformation/removedNomsNumber"]),
    );
    check(
        &without(merged(), "removedNomsNumber"),
        held("WCI"),
        Malformed(&["/additionalInformation/removedNomsNumber"]),
    );
    // Several problems at once, all reported.
    let mut e = without(released("RELEASED"), "prisonId");
    e["occurredAt"] = json!(17);
    check(
        &e,
        held("WCI"),
        Malformed(&["/occurredAt", "/additionalInformation/prisonId"]),
    );
    // In the envelope: pointers into the embedded event start with /Message.
    check(
        &sns(&without(released("RELEASED"), "prisonId"), "m-2"),
        held("WCI"),
        Malformed(&["/Message/additionalInformation/prisonId"]),
    );
    let mut env = sns(&released("RELEASED"), "m-3");
    env["Message"] = json!("{not json");
    check(&env, held("WCI"), Malformed(&["/Message"]));
    let mut env = sns(&released("RELEASED"), "m-4");
    env["Type"] = json!("SubscriptionConfirmation");
    check(&env, held("WCI"), Malformed(&["/Type"]));
    let mut env = sns(&released("RELEASED"), "m-5");
    env["MessageAttributes"]["eventType"]["Value"] = json!(crate::RECEIVED);
    check(
        &env,
        held("WCI"),
        Malformed(&["/MessageAttributes/eventType/Value"]),
    );
    let mut env = sns(&released("RELEASED"), "m-6");
    env["MessageId"] = json!(7);
    check(&env, held("WCI"), Malformed(&["/MessageId"]));
    assert_eq!(parse(b"not json").unwrap_err()[0].pointer, "");
}

fn record(message: &Value) -> Value {
    let n = parse(&serde_json::to_vec(message).unwrap()).unwrap();
    match map(&n, &held("WCI"), &unknown()) {
        Mapping::Record(e) => e,
        other => panic!("{other:?}"),
    }
}

#[test]
fn id_is_the_sns_message_id_else_the_jcs_hash_of_the_domain_event() {
    let e = released("RELEASED");
    assert_eq!(
        record(&sns(&e, "0a1b2c3d-0000-4000-8000-0000000000aa"))["id"],
        "0a1b2c3d-0000-4000-8000-0000000000aa"
    );
    let bare = record(&e)["id"].as_str().unwrap().to_string();
    assert_eq!(bare.len(), 64);
    assert!(bare
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // The same event with its members in another order and other whitespace: same id.
    let reordered: Value = serde_json::from_str(&format!(
        "{{ \"additionalInformation\": {},\n \"occurredAt\": \"{OCCURRED}\", \"version\": 1, \"eventType\": \"{}\",
           \"description\": {}, \"publishedAt\": {}, \"personReference\": {} }}",
        e["additionalInformation"], crate::RELEASED, e["description"], e["publishedAt"], e["personReference"]
    ))
    .unwrap();
    assert_eq!(record(&reordered)["id"], bare.as_str());
    assert_eq!(bare, crate::jcs_sha256(&e));
    // An envelope without a MessageId falls back to the hash of the embedded event.
    let mut env = sns(&e, "x");
    env.as_object_mut().unwrap().remove("MessageId");
    assert_eq!(record(&env)["id"], bare.as_str());
    // Any change to the event is another id.
    let mut other = e.clone();
    other["occurredAt"] = json!("2026-11-20T09:31:00+01:00");
    assert_ne!(record(&other)["id"], bare.as_str());
}

#[test]
fn time_is_occurred_at_in_utc() {
    assert_eq!(
        record(&released("RELEASED"))["time"],
        "2026-11-20T08:30:00Z"
    );
    let mut e = released("RELEASED");
    e["occurredAt"] = json!("2026-06-01T23:15:30.250-05:00");
    assert_eq!(record(&e)["time"], "2026-06-02T04:15:30.250Z");
    let t: DateTime<Utc> = record(&e)["time"].as_str().unwrap().parse().unwrap();
    assert_eq!(t.to_rfc3339(), "2026-06-02T04:15:30.250+00:00");
}

#[test]
fn every_ignore_reason_has_a_distinct_label() {
    let labels: std::collections::BTreeSet<&str> =
        crate::Ignored::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), crate::Ignored::ALL.len());
    assert!(labels
        .iter()
        .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')));
}
