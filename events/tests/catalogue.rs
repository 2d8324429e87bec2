//! Catalogue conformance: every example validates, every type has an example, the
//! checked-in JSON Schema is current, and bad input is reported with every problem.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use throughcare_events::{
    catalogue_schema_text, validate_body, EventType, Submission, MAX_BODY_BYTES, MAX_EVENT_BYTES,
};

fn now() -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn every_type_has_a_valid_example() {
    for t in EventType::ALL {
        let short = t
            .as_str()
            .trim_start_matches("throughcare.")
            .trim_end_matches(".v1");
        let path = dir("examples").join(format!("{short}.json"));
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match validate_body(&body, now()) {
            Ok(Submission::One(e)) => {
                assert_eq!(e.event_type(), *t);
                // canonical JSON reads back to the same event
                assert_eq!(
                    throughcare_events::Event::from_stored(&e.to_json()).unwrap(),
                    *e
                );
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }
}

#[test]
fn checked_in_schema_is_current() {
    let path = dir("schema").join("events.schema.json");
    let fresh = catalogue_schema_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == fresh,
        "events/schema/events.schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p throughcare-events --test catalogue` and commit it"
    );
}

fn referral() -> Value {
    serde_json::from_slice(&std::fs::read(dir("examples").join("referral.received.json")).unwrap())
        .unwrap()
}

/// Validates `body` and returns the pointers of its problems, sorted.
fn problems(body: &Value) -> Vec<String> {
    match validate_body(&serde_json::to_vec(body).unwrap(), now()) {
        Ok(_) => vec![],
        Err(p) => {
            let mut v: Vec<String> = p.into_iter().map(|p| p.pointer).collect();
            v.sort();
            v
        }
    }
}

#[test]
fn bad_inputs_list_every_problem_with_a_pointer() {
    let check = |edit: &dyn Fn(&mut Value), expected: &[&str]| {
        let mut v = referral();
        edit(&mut v);
        assert_eq!(problems(&v), expected, "{v}");
    };
    check(&|_| {}, &[]);
    check(&|v| v["specversion"] = json!("0.3"), &["/specversion"]);
    check(&|v| v["type"] = json!("throughcare.nope.v1"), &["/type"]);
    check(
        &|v| v["data"]["person"]["nhs_number"] = json!("9434765918"),
        &["/data/person/nhs_number"],
    );
    check(&|v| v["data"]["prison"] = json!("XYZ"), &["/data/prison"]);
    check(&|v| v["time"] = json!("2026-11-20T10:06:00Z"), &["/time"]);
    check(&|v| v["time"] = json!("2026-11-20T10:04:00Z"), &[]);
    check(&|v| v["time"] = json!("yesterday"), &["/time"]);
    check(
        &|v| {
            v["data"].as_object_mut().unwrap().remove("referral_id");
            v["data"]["vulnerabilities"] = json!(["MENTAL_HEALTH", "SAD"]);
            v["data"]["referrer"]["kind"] = json!(3);
            v["data"]["prision"] = json!("WCI");
        },
        &[
            "/data/prision",
            "/data/referral_id",
            "/data/referrer/kind",
            "/data/vulnerabilities/1",
        ],
    );
    check(&|v| v["data"]["person"] = json!({}), &["/data/person"]);
    check(
        &|v| v["data"]["person"]["nomis"] = json!("a1234bc"),
        &["/data/person/nomis"],
    );
    check(
        &|v| v["data"]["expected_release_date"] = json!("15/01/2027"),
        &["/data/expected_release_date"],
    );
    check(
        &|v| {
            v.as_object_mut().unwrap().remove("id");
        },
        &["/id"],
    );
    check(&|v| v["data"] = json!([]), &["/data"]);
}

#[test]
fn a_batch_reports_problems_per_item() {
    let good = referral();
    let mut bad = referral();
    bad["id"] = json!("other");
    bad["data"]["prison"] = json!("ZZZ");
    assert_eq!(
        problems(&json!([good.clone(), bad])),
        vec!["/1/data/prison"]
    );
    assert_eq!(problems(&json!([good.clone(), good])), vec!["/1/id"]);
    assert_eq!(problems(&json!([])), vec![""]);
}

#[test]
fn oversized_and_malformed_bodies() {
    let big = vec![b' '; 64 * 1024 + 1];
    assert!(validate_body(&big, now()).is_err());
    assert!(validate_body(b"{not json", now()).is_err());
}

/// A referral with about `n` bytes of personal text (in notes of 1 KiB, under the
/// per-string limit) and its own id.
fn padded(id: &str, n: usize) -> Value {
    let mut v = referral();
    v["id"] = json!(id);
    let notes: serde_json::Map<String, Value> = (0..n / 1024)
        .map(|i| (format!("note{i}"), json!("x".repeat(1024))))
        .collect();
    v["data"]["personal"] = Value::Object(notes);
    v
}

#[test]
fn every_event_is_held_to_64_kib_and_a_batch_to_4_mib() {
    // One event over 64 KiB: refused at the top.
    assert_eq!(problems(&padded("big", 65 * 1024)), vec![""]);
    // A batch bigger than 64 KiB whose events are each under it: accepted.
    let batch = json!([padded("a", 40 * 1024), padded("b", 40 * 1024)]);
    assert!(serde_json::to_vec(&batch).unwrap().len() > MAX_EVENT_BYTES);
    assert_eq!(problems(&batch), Vec::<String>::new());
    // One item over 64 KiB: refused at that item.
    let batch = json!([padded("a", 1024), padded("b", 65 * 1024)]);
    assert_eq!(problems(&batch), vec!["/1"]);
    // A body over 4 MiB: refused whole.
    let many: Vec<Value> = (0..70)
        .map(|i| padded(&format!("e{i}"), 60 * 1024))
        .collect();
    assert!(serde_json::to_vec(&many).unwrap().len() > MAX_BODY_BYTES);
    assert_eq!(problems(&json!(many)), vec![""]);
}

#[test]
fn digest_ignores_formatting_but_not_content() {
    let a = referral();
    let compact = serde_json::to_vec(&a).unwrap();
    let pretty = serde_json::to_vec_pretty(&a).unwrap();
    let one = |b: &[u8]| match validate_body(b, now()).unwrap() {
        Submission::One(e) => e.digest(),
        _ => unreachable!(),
    };
    assert_eq!(one(&compact), one(&pretty));
    let mut b = a.clone();
    b["data"]["prison"] = json!("BNI");
    assert_ne!(one(&compact), one(&serde_json::to_vec(&b).unwrap()));
}
