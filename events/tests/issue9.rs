//! Catalogue additions of issue 9 ("the journey tells the truth"), given/when/then: what a
//! contact outcome may say on each contact type, the corrected value a correction carries,
//! the RECONNECT vulnerabilities and the eligibility release-date kind. Each test is named
//! after what was wrong.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use throughcare_events::catalogue::{CorrectionKind, ReleaseDateType, Vulnerability};
use throughcare_events::{validate_body, EventData, Submission};

fn now() -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The pointers of every problem of `body`, or the event when it is valid.
fn validate(body: &Value) -> Result<EventData, Vec<String>> {
    match validate_body(&serde_json::to_vec(body).unwrap(), now()) {
        Ok(Submission::One(e)) => Ok(e.data),
        Ok(Submission::Batch(_)) => panic!("one event expected"),
        Err(p) => Err(p.into_iter().map(|p| p.pointer).collect()),
    }
}

#[test]
fn contact_made_refuses_outcomes_that_are_not_contact() {
    for (outcome, ok) in [
        ("MET", true),
        ("SPOKE", true),
        ("NO_ANSWER", false),
        ("MESSAGE_LEFT", false),
        ("NOT_FOUND", false),
        ("DECLINED", false),
    ] {
        let mut made = example("contact.made");
        made["data"]["outcome"] = json!(outcome);
        let got = validate(&made).map(drop);
        let want = if ok {
            Ok(())
        } else {
            Err(vec!["/data/outcome".to_string()])
        };
        assert_eq!(got, want, "contact.made with {outcome}");
        // The same outcomes are what contact.attempted is for, and the other way round.
        let mut attempted = example("contact.attempted");
        attempted["data"]["outcome"] = json!(outcome);
        let got = validate(&attempted).map(drop);
        let want = if ok {
            Err(vec!["/data/outcome".to_string()])
        } else {
            Ok(())
        };
        assert_eq!(got, want, "contact.attempted with {outcome}");
    }
    // No outcome at all is a contact made (the field is optional).
    let mut made = example("contact.made");
    made["data"].as_object_mut().unwrap().remove("outcome");
    assert!(validate(&made).is_ok());
}

#[test]
fn record_corrected_carries_the_corrected_value() {
    let mut c = example("record.corrected");
    c["data"]["what_was_wrong"] = json!("WRONG_DATE");
    c["data"]["pointer"] = json!("/data/date");
    c["data"]["corrected_value"] = json!("2027-02-01");
    match validate(&c) {
        Ok(EventData::RecordCorrected(d)) => {
            assert_eq!(d.what_was_wrong, CorrectionKind::WrongDate);
            assert_eq!(d.corrected_value, Some(json!("2027-02-01")));
        }
        other => panic!("{other:?}"),
    }
    // A corrected value needs a pointer saying where it goes.
    let mut no_pointer = c.clone();
    no_pointer["data"]
        .as_object_mut()
        .unwrap()
        .remove("pointer");
    assert_eq!(
        validate(&no_pointer).map(drop),
        Err(vec!["/data/pointer".into()])
    );
    // Only a wrong date or value has a corrected value; an error or the wrong person has none.
    for kind in ["ENTERED_IN_ERROR", "WRONG_PERSON"] {
        let mut v = c.clone();
        v["data"]["what_was_wrong"] = json!(kind);
        assert_eq!(
            validate(&v).map(drop),
            Err(vec!["/data/corrected_value".into()]),
            "{kind}"
        );
    }
    // The value goes into the event's time or data, never its identity or its person.
    for pointer in [
        "/id",
        "/type",
        "/source",
        "/data/person/nomis",
        "/data/personal/name",
        "data/date",
    ] {
        let mut v = c.clone();
        v["data"]["pointer"] = json!(pointer);
        assert_eq!(
            validate(&v).map(drop),
            Err(vec!["/data/pointer".into()]),
            "{pointer}"
        );
    }
    let mut time = c.clone();
    time["data"]["pointer"] = json!("/time");
    time["data"]["corrected_value"] = json!("2026-11-19T08:00:00Z");
    assert!(validate(&time).is_ok());
    // Old corrections without a value still validate (add fields, never rename).
    let mut old = example("record.corrected");
    old["data"]
        .as_object_mut()
        .unwrap()
        .remove("corrected_value");
    assert!(validate(&old).is_ok());
}

#[test]
fn reconnect_vulnerabilities_are_codes() {
    let mut r = example("referral.received");
    let codes = [
        "LEARNING_DIFFICULTY",
        "PERSONALITY_DISORDER",
        "ACQUIRED_BRAIN_INJURY",
        "PHYSICAL_HEALTH",
        "VETERAN",
    ];
    r["data"]["vulnerabilities"] = json!(codes);
    match validate(&r) {
        Ok(EventData::ReferralReceived(d)) => {
            let got: Vec<&str> = d.vulnerabilities.iter().map(|v| v.as_str()).collect();
            assert_eq!(got, codes);
            assert!(d
                .vulnerabilities
                .contains(&Vulnerability::LearningDifficulty));
            assert_ne!(
                Vulnerability::LearningDifficulty,
                Vulnerability::LearningDisability
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn home_detention_curfew_eligibility_is_a_release_date_kind() {
    let mut d = example("release_date.set");
    d["data"]["date_type"] = json!("HDCED");
    match validate(&d) {
        Ok(EventData::ReleaseDateSet(d)) => {
            assert_eq!(d.date_type, ReleaseDateType::Hdced);
            assert!(d.date_type.is_eligibility());
            assert!(ReleaseDateType::Ped.is_eligibility());
            assert!(!ReleaseDateType::Crd.is_eligibility());
        }
        other => panic!("{other:?}"),
    }
}
