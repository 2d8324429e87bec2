//! The forms' pure parts: each worker form's values -> the CloudEvent it submits, the
//! form's own errors, and a refusal's JSON pointers -> the fields they name.

use super::*;
use throughcare_events::{validate_body, Submission};

fn person() -> PersonId {
    PersonId(ulid::Ulid::from_string("01JD3Z8Q6V2X9S7W4K5M1N0P3R").unwrap())
}

fn values(pairs: &[(&str, &str)]) -> Values {
    Values(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn when() -> Vec<(&'static str, &'static str)> {
    vec![("date", "2026-07-01"), ("time", "09:30")]
}

fn built(kind: EventType, extra: &[(&str, &str)]) -> Built {
    let mut pairs = when();
    pairs.extend_from_slice(extra);
    let j = Journey::new(person());
    build(
        kind,
        &values(&pairs),
        &fields(kind, &j),
        person(),
        "01JD3Z8Q6V2X9S7W4K5M1N0P3S",
        "urn:throughcare:staff:jo",
    )
    .unwrap_or_else(|e| panic!("{kind}: {e:?}"))
}

/// Every form, filled in, builds an event the write path's validation accepts as its type.
#[test]
fn every_form_builds_a_valid_cloudevent() {
    use EventType::*;
    type Case = (EventType, Vec<(&'static str, &'static str)>, Value);
    let cases: Vec<Case> = vec![
        (
            ContactAttempted,
            vec![("channel", "PHONE"), ("outcome", "NO_ANSWER")],
            json!({"channel": "PHONE", "outcome": "NO_ANSWER"}),
        ),
        (
            ContactMade,
            vec![("channel", "GATE"), ("outcome", "")],
            json!({"channel": "GATE"}),
        ),
        (
            ConsentGiven,
            vec![
                ("scope", "SHARE_WITH"),
                ("orgs", "GP surgery, Housing team ,"),
            ],
            json!({"scope": "SHARE_WITH", "orgs": ["GP surgery", "Housing team"]}),
        ),
        (
            ConsentWithdrawn,
            vec![("scope", "ENGAGE")],
            json!({"scope": "ENGAGE"}),
        ),
        (
            AssessmentCompleted,
            vec![
                ("kind", "INITIAL"),
                ("need.HEALTH", "HIGH"),
                ("need.ACCOMMODATION", "LOW"),
            ],
            json!({"kind": "INITIAL", "needs": [{"domain": "ACCOMMODATION", "level": "LOW"}, {"domain": "HEALTH", "level": "HIGH"}]}),
        ),
        (
            PlanAgreed,
            vec![
                ("action2.need", "HEALTH"),
                ("action2.service_type", "GP"),
                ("action2.due_by", "2026-07-14"),
                ("next_review", "2026-08-01"),
            ],
            json!({"actions": [{"need": "HEALTH", "service_type": "GP", "due_by": "2026-07-14"}], "next_review": "2026-08-01"}),
        ),
        (
            PlanReviewed,
            vec![
                ("action1.need", "FINANCE_AND_ID"),
                ("action1.service_type", "ID"),
                ("action1.due_by", "2026-07-20"),
            ],
            json!({"actions": [{"need": "FINANCE_AND_ID", "service_type": "ID", "due_by": "2026-07-20"}]}),
        ),
        (
            SignpostingMade,
            vec![
                ("signpost_id", "SP-1"),
                ("service_type", "GP"),
                ("org", "Synthetic Surgery"),
                ("mode", "ACCOMPANIED"),
            ],
            json!({"signpost_id": "SP-1", "service_type": "GP", "org": "Synthetic Surgery", "mode": "ACCOMPANIED"}),
        ),
        (
            SignpostingOutcome,
            vec![("signpost_id", "SP-1"), ("outcome", "GP_REGISTERED")],
            json!({"signpost_id": "SP-1", "outcome": "GP_REGISTERED"}),
        ),
        (
            EngagementChanged,
            vec![("status", "DISENGAGED")],
            json!({"status": "DISENGAGED"}),
        ),
        (
            SafeguardingRaised,
            vec![("category", "SELF_HARM"), ("referred_to", "Crisis team")],
            json!({"category": "SELF_HARM", "referred_to": "Crisis team"}),
        ),
        (
            CaseClosed,
            vec![("reason", "NEEDS_MET")],
            json!({"reason": "NEEDS_MET"}),
        ),
    ];
    assert_eq!(cases.len(), WORKER_EVENTS.len(), "a case for every form");
    let now = "2026-07-02T00:00:00Z".parse().unwrap();
    for (kind, extra, mut data) in cases {
        let b = built(kind, &extra);
        data["person"] = json!({"person_id": person()});
        assert_eq!(b.event["data"], data, "{kind}");
        assert_eq!(b.event["type"], kind.as_str());
        assert_eq!(b.event["id"], "01JD3Z8Q6V2X9S7W4K5M1N0P3S");
        assert_eq!(b.event["source"], "urn:throughcare:staff:jo");
        // 09:30 in July is BST: 08:30 UTC.
        assert_eq!(b.event["time"], "2026-07-01T08:30:00Z");
        let bytes = serde_json::to_vec(&b.event).unwrap();
        match validate_body(&bytes, now) {
            Ok(Submission::One(e)) => assert_eq!(e.event_type(), kind),
            other => panic!("{kind}: {other:?}"),
        }
        assert_eq!(kind_of(slug(kind)), Some(kind));
    }
}

#[test]
fn missing_answers_are_the_forms_own_errors() {
    let j = Journey::new(person());
    let kind = EventType::ContactMade;
    let errors = build(
        kind,
        &values(&[("date", ""), ("time", "10:00")]),
        &fields(kind, &j),
        person(),
        "x",
        "s",
    )
    .unwrap_err();
    assert_eq!(
        errors,
        vec![
            FieldError {
                field: Some("date".into()),
                message: "Enter the date it happened".into()
            },
            FieldError {
                field: Some("channel".into()),
                message: "Select channel".into()
            },
        ]
    );
    let kind = EventType::PlanAgreed;
    let errors = build(
        kind,
        &values(&when()),
        &fields(kind, &j),
        person(),
        "x",
        "s",
    )
    .unwrap_err();
    assert_eq!(errors[0].field.as_deref(), Some("action1.need"));
}

/// A bad value is passed through; the write path's 422 names it with a JSON pointer,
/// and the pointer leads back to the field.
#[test]
fn a_refusals_pointer_names_its_field() {
    let b = built(EventType::ContactMade, &[("channel", "CARRIER_PIGEON")]);
    let bytes = serde_json::to_vec(&b.event).unwrap();
    let problems = validate_body(&bytes, "2026-07-02T00:00:00Z".parse().unwrap()).unwrap_err();
    let error = ApiError::invalid(problems);
    let errors = refusal_errors(&error, &b);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field.as_deref(), Some("channel"));
    assert!(
        errors[0].message.contains("CARRIER_PIGEON") || errors[0].message.contains("GATE"),
        "{errors:?}"
    );
    // Nested pointers: the second chosen need, the first plan action's date.
    let b = built(
        EventType::AssessmentCompleted,
        &[
            ("kind", "INITIAL"),
            ("need.HEALTH", "HIGH"),
            ("need.FINANCE_AND_ID", "LOTS"),
        ],
    );
    assert_eq!(
        b.field_of("/data/needs/1/level").as_deref(),
        Some("need.FINANCE_AND_ID")
    );
    assert_eq!(b.field_of("/time").as_deref(), Some("date"));
    assert_eq!(b.field_of("/data/needs").as_deref(), None);
    let b = built(
        EventType::PlanAgreed,
        &[
            ("action3.need", "HEALTH"),
            ("action3.service_type", "GP"),
            ("action3.due_by", "soon"),
        ],
    );
    assert_eq!(
        b.field_of("/data/actions/0/due_by").as_deref(),
        Some("action3.due_by")
    );
    // A state conflict is about the whole form, in words, with what is possible now.
    let conflict = ApiError::new(
        StatusCode::CONFLICT,
        "state-conflict",
        "Conflict",
        "the case is closed",
    )
    .with("current_state", json!("CLOSED"))
    .with(
        "allowed_events",
        json!([
            "throughcare.case.reopened.v1",
            "throughcare.contact.made.v1"
        ]),
    );
    let errors = refusal_errors(&conflict, &b);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, None);
    assert!(
        errors[0].message.contains("The case is closed."),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("contact made"),
        "{}",
        errors[0].message
    );
}

#[test]
fn forms_follow_the_case_state_and_the_policy() {
    let mut j = Journey::new(person());
    let worker = Principal {
        name: "jo".into(),
        role: crate::auth::Role::Worker,
        worker_id: Some("W-1".into()),
        prisons: vec![],
        sources: vec![],
        types: vec![],
        open_mode: false,
    };
    // Not allocated to the worker: nothing is offered.
    assert!(offered(&worker, &j).is_empty());
    j.worker = Some(
        serde_json::from_value(
            json!({"worker_id": "W-1", "role": "PEER_SUPPORT", "since": "2026-01-01T00:00:00Z"}),
        )
        .unwrap(),
    );
    j.status = throughcare_projections::Status::SeekingContact;
    let now = offered(&worker, &j);
    assert!(now.contains(&EventType::ContactMade), "{now:?}");
    assert!(
        !now.contains(&EventType::SignpostingOutcome),
        "no signpost waits for an outcome"
    );
    let allowed = throughcare_projections::allowed(&j);
    assert!(now.iter().all(|k| allowed.contains(k)));
    // A closed case offers none of the worker's forms but what the state allows.
    j.status = throughcare_projections::Status::Closed;
    let closed = offered(&worker, &j);
    let allowed = throughcare_projections::allowed(&j);
    assert!(
        closed.iter().all(|k| allowed.contains(k)) && !closed.contains(&EventType::ContactMade)
    );
    // An auditor reads but never records.
    let auditor = Principal {
        role: crate::auth::Role::Auditor,
        ..worker
    };
    j.status = throughcare_projections::Status::SeekingContact;
    assert!(offered(&auditor, &j).is_empty());
}

#[test]
fn a_fresh_form_has_its_own_id_and_the_uk_clock() {
    let now = "2026-07-01T08:30:00Z".parse().unwrap();
    let a = FormState::fresh(EventType::SignpostingMade, now);
    let b = FormState::fresh(EventType::SignpostingMade, now);
    assert_ne!(a.id, b.id);
    assert_eq!(a.values.get("date"), "2026-07-01");
    assert_eq!(a.values.get("time"), "09:30");
    assert!(a.values.get("signpost_id").starts_with("SP-"));
    assert_eq!(
        field_id(EventType::ContactMade, "need.HEALTH"),
        "contact-made-need-HEALTH"
    );
}
