//! The checks every [`AccessLog`] backend must pass, run by the embedded backend's tests
//! (`crates/ledger/tests/access.rs`) and the JetStream backend's
//! (`crates/nats/tests/access.rs`). Each check panics with what went wrong; most want a
//! fresh, empty log.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use throughcare_events::{Hash, PersonId};
use ulid::Ulid;

use super::{AccessEntry, AccessFilter, AccessLog, AccessRecord, AccessWhat, Outcome, Purpose};

/// A log under test.
pub type Log = Arc<dyn AccessLog>;

/// The members every access-log entry has in its JSON (DESIGN.md "The access log"),
/// `null` when empty; the end-to-end tests check served entries against the same list.
pub const ENTRY_FIELDS: [&str; 14] = [
    "seq",
    "at",
    "who",
    "role",
    "what",
    "person_id",
    "purpose",
    "outcome",
    "review",
    "route",
    "status",
    "request_id",
    "prev",
    "hash",
];

/// A person id for tests.
pub fn person(n: u64) -> PersonId {
    PersonId(Ulid::from_parts(1_790_000_000_000, u128::from(n)))
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a test time")
        .with_timezone(&Utc)
}

/// An allowed journey read of `person` by `who` at `at`.
pub fn record(who: &str, person: Option<PersonId>, at: DateTime<Utc>) -> AccessRecord {
    AccessRecord {
        at,
        who: who.into(),
        role: "WORKER".into(),
        what: AccessWhat::ReadJourney,
        person_id: person,
        people: Vec::new(),
        purpose: Some(Purpose::DirectCare),
        reason: None,
        outcome: Outcome::Allowed,
        review: false,
        route: "GET /v1/people/{id}/journey".into(),
        status: 200,
        request_id: Ulid::from_parts(1_790_000_000_000, 7).to_string(),
    }
}

/// Checks that `entries` (sorted by seq, starting at 1) form one chain.
fn assert_chain(entries: &[AccessEntry]) {
    let mut prev = Hash::ZERO;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seqs run 1, 2, 3, ... without gaps");
        assert_eq!(e.prev, prev, "entry {} links to the one before", e.seq);
        assert_eq!(
            e.hash,
            Hash::of(&e.stored_bytes()),
            "entry {}: hash is SHA-256 of the stored bytes",
            e.seq
        );
        prev = e.hash;
    }
}

async fn all(log: &Log) -> Vec<AccessEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = log
            .query(&AccessFilter {
                after_seq: after,
                limit: 1000,
                ..AccessFilter::default()
            })
            .await
            .expect("query everything");
        let Some(last) = page.last() else {
            return out;
        };
        after = last.seq;
        out.extend(page);
    }
}

/// Fresh log: empty, then three appends numbered 1, 2, 3 and linked, read back as
/// appended, and verified.
pub async fn appends_chain_in_order(log: Log) {
    assert_eq!(log.head().await.expect("head"), 0, "a fresh log is empty");
    let empty = log.verify().await.expect("verify an empty log");
    assert_eq!(
        (empty.entries, empty.ok, empty.head, empty.broken_at),
        (0, true, None, None)
    );
    let t = time("2026-11-29T10:02:11.120Z");
    let mut appended = Vec::new();
    for (i, who) in ["a.worker", "b.worker", "c.worker"].into_iter().enumerate() {
        let e = log
            .append(record(
                who,
                Some(person(i as u64 + 1)),
                t + Duration::seconds(i as i64),
            ))
            .await
            .expect("append");
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.record.who, who);
        appended.push(e);
    }
    assert_chain(&appended);
    assert_eq!(
        appended[0].prev,
        Hash::ZERO,
        "the first entry's prev is zeros"
    );
    assert_eq!(log.head().await.expect("head"), 3);
    assert_eq!(all(&log).await, appended, "read back exactly as appended");
    let report = log.verify().await.expect("verify");
    assert_eq!(report.entries, 3);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.head, Some(appended[2].hash));
    assert_eq!(report.broken_at, None);
}

/// Fresh log: `n` concurrent appends from as many tasks get distinct seqs 1..=n and one
/// chain that verifies.
pub async fn concurrent_appends_share_one_chain(log: Log, n: usize) {
    let t = time("2026-11-29T10:00:00Z");
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let who = format!("worker.{i}");
                let r = record(
                    &who,
                    Some(person(i as u64 % 7)),
                    t + Duration::milliseconds(i as i64),
                );
                log.append(r).await
            })
        })
        .collect();
    let mut entries = Vec::new();
    for t in tasks {
        entries.push(t.await.expect("append task").expect("append"));
    }
    check_concurrent(&log, entries, n).await;
}

async fn check_concurrent(log: &Log, mut entries: Vec<AccessEntry>, n: usize) {
    entries.sort_by_key(|e| e.seq);
    assert_eq!(entries.len(), n);
    assert_chain(&entries);
    assert_eq!(log.head().await.expect("head"), n as u64);
    let stored = all(log).await;
    assert_eq!(
        stored, entries,
        "what each append returned is what is stored"
    );
    let report = log.verify().await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.entries, n as u64);
    assert_eq!(report.head, entries.last().map(|e| e.hash));
}

/// Fresh log, seen through two handles (two connections, two processes' worth of
/// writers): `n` appends on each at the same time make one chain.
pub async fn two_handles_make_one_chain(a: Log, b: Log, n: usize) {
    let t = time("2026-11-29T10:00:00Z");
    let mut tasks = Vec::new();
    for (h, log) in [a.clone(), b].into_iter().enumerate() {
        for i in 0..n {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let who = format!("handle{h}.{i}");
                log.append(record(&who, None, t + Duration::milliseconds(i as i64)))
                    .await
            }));
        }
    }
    let mut entries = Vec::new();
    for t in tasks {
        entries.push(t.await.expect("append task").expect("append"));
    }
    check_concurrent(&a, entries, 2 * n).await;
}

/// `open` gives a handle on the same log each time (a fresh one the first time); after
/// the first handle is dropped, a new one continues the chain.
pub async fn continues_after_reopen<F, Fut>(mut open: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Log>,
{
    let t = time("2026-11-29T10:00:00Z");
    let log = open().await;
    let first = log
        .append(record("a.worker", Some(person(1)), t))
        .await
        .expect("append");
    let second = log
        .append(record("b.worker", None, t))
        .await
        .expect("append");
    drop(log);
    let log = open().await;
    assert_eq!(log.head().await.expect("head"), 2, "both appends survive");
    let third = log
        .append(record("c.worker", Some(person(1)), t))
        .await
        .expect("append after reopening");
    assert_eq!(third.seq, 3, "numbering carries on");
    assert_eq!(third.prev, second.hash, "the chain carries on");
    let stored = all(&log).await;
    assert_eq!(stored, vec![first, second, third.clone()]);
    let report = log.verify().await.expect("verify");
    assert!(report.ok && report.entries == 3, "{report:?}");
    assert_eq!(report.head, Some(third.hash));
}

/// Fresh log: queries by person, who, review, time, and paging with `after_seq`/`limit`
/// give exactly the matching entries in seq order.
pub async fn queries_filter_and_page(log: Log) {
    let t0 = time("2026-11-29T09:00:00Z");
    let (a, b, nobody) = (person(101), person(102), person(103));
    let mut entries = Vec::new();
    for i in 1..=12u64 {
        let p = match i % 3 {
            0 => None,
            1 => Some(a),
            _ => Some(b),
        };
        let who = if i % 2 == 0 {
            "jo.worker"
        } else {
            "wci.manager"
        };
        let mut r = record(who, p, t0 + Duration::minutes(i as i64));
        if i == 4 || i == 7 {
            r.review = true;
            r.purpose = Some(Purpose::Emergency);
            r.reason = Some("called by A&E".into());
        }
        if i == 9 {
            r.outcome = Outcome::Denied;
            r.what = AccessWhat::Denied;
            r.status = 403;
        }
        // A list that showed both a and b: found by either, by neither's own subject.
        if i == 6 {
            r.what = AccessWhat::ReadList;
            r.route = "GET /v1/releases".into();
            r.people = vec![b, a];
        }
        entries.push(log.append(r).await.expect("append"));
    }
    let expect = |f: &AccessFilter| -> Vec<AccessEntry> {
        entries
            .iter()
            .filter(|e| e.seq > f.after_seq && f.matches(e))
            .take(f.limit)
            .cloned()
            .collect()
    };
    let filters = [
        AccessFilter::default(),
        AccessFilter {
            person: Some(a),
            ..Default::default()
        },
        AccessFilter {
            person: Some(b),
            limit: 2,
            ..Default::default()
        },
        AccessFilter {
            person: Some(b),
            after_seq: 5,
            limit: 2,
            ..Default::default()
        },
        AccessFilter {
            person: Some(nobody),
            ..Default::default()
        },
        AccessFilter {
            who: Some("jo.worker".into()),
            ..Default::default()
        },
        AccessFilter {
            who: Some("nobody".into()),
            ..Default::default()
        },
        AccessFilter {
            review: Some(true),
            ..Default::default()
        },
        AccessFilter {
            review: Some(false),
            after_seq: 3,
            limit: 4,
            ..Default::default()
        },
        AccessFilter {
            from: Some(t0 + Duration::minutes(3)),
            to: Some(t0 + Duration::minutes(8)),
            ..Default::default()
        },
        AccessFilter {
            person: Some(a),
            who: Some("jo.worker".into()),
            review: Some(true),
            ..Default::default()
        },
        AccessFilter {
            after_seq: 10,
            ..Default::default()
        },
        AccessFilter {
            after_seq: 12,
            ..Default::default()
        },
        AccessFilter {
            after_seq: 1000,
            ..Default::default()
        },
        AccessFilter {
            limit: 0,
            ..Default::default()
        },
    ];
    for f in &filters {
        let got = log.query(f).await.expect("query");
        let want = expect(f);
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            want.iter().map(|e| e.seq).collect::<Vec<_>>(),
            "{f:?}"
        );
        assert_eq!(got, want, "{f:?}");
    }
    // Sanity of the data itself, so the filters above are not vacuous.
    let count = |f: AccessFilter| expect(&f).len();
    // a: its own four entries and the list (entry 6) that showed it.
    assert_eq!(
        count(AccessFilter {
            person: Some(a),
            ..Default::default()
        }),
        5
    );
    assert!(expect(&AccessFilter {
        person: Some(b),
        ..Default::default()
    })
    .iter()
    .any(|e| e.seq == 6 && e.record.person_id.is_none()));
    assert_eq!(
        count(AccessFilter {
            review: Some(true),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        count(AccessFilter {
            from: Some(t0 + Duration::minutes(3)),
            to: Some(t0 + Duration::minutes(8)),
            ..Default::default()
        }),
        5
    );
    // Paging one at a time through a person's entries gives all of them once.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = log
            .query(&AccessFilter {
                person: Some(a),
                after_seq: after,
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(
        paged,
        expect(&AccessFilter {
            person: Some(a),
            ..Default::default()
        })
    );
}

/// Fresh log: an entry's JSON is exactly the documented flat shape, its stored bytes are
/// that JSON without `hash`, `at` has three fractional digits and `Z`, `reason` appears
/// only when given, and the JSON reads back to the same entry.
pub async fn json_shape(log: Log) {
    let p: PersonId = "01JD8X3Q9V5W2K7M4N6P0R1S2T".parse().expect("person id");
    let request_id = "01JD8X3Q9V5W2K7M4N6P0R1S3V";
    let mut r = record("jo.worker", Some(p), time("2026-11-29T10:02:11.120456789Z"));
    r.request_id = request_id.into();
    let e = log.append(r).await.expect("append");
    let want_stored = format!(
        concat!(
            r#"{{"seq":1,"at":"2026-11-29T10:02:11.120Z","who":"jo.worker","role":"WORKER","#,
            r#""what":"READ_JOURNEY","person_id":"{p}","purpose":"DIRECT_CARE","#,
            r#""outcome":"ALLOWED","review":false,"route":"GET /v1/people/{{id}}/journey","#,
            r#""status":200,"request_id":"{rid}","prev":"{zeros}""#
        ),
        p = p,
        rid = request_id,
        zeros = "0".repeat(64),
    );
    let want = format!("{want_stored},\"hash\":\"{}\"}}", e.hash);
    assert_eq!(serde_json::to_string(&e).expect("json"), want);
    assert_eq!(
        String::from_utf8(e.stored_bytes()).expect("utf-8"),
        format!("{want_stored}}}")
    );
    assert_eq!(e.hash, Hash::of(format!("{want_stored}}}").as_bytes()));
    assert_eq!(
        e.record.at,
        time("2026-11-29T10:02:11.120Z"),
        "the entry holds the time as stored, in milliseconds"
    );
    let back: AccessEntry = serde_json::from_str(&want).expect("read the JSON back");
    assert_eq!(back, e);

    // Break glass, no person, whole seconds: `reason` present, `person_id` null, `.000Z`.
    let mut r = record("wci.manager", None, time("2026-11-29T10:03:00Z"));
    r.role = "MANAGER".into();
    r.what = AccessWhat::Denied;
    r.purpose = Some(Purpose::Emergency);
    r.reason = Some("called by \"A&E\"".into());
    r.outcome = Outcome::Denied;
    r.review = true;
    r.status = 403;
    r.request_id = request_id.into();
    let e2 = log.append(r).await.expect("append");
    let want2 = format!(
        concat!(
            r#"{{"seq":2,"at":"2026-11-29T10:03:00.000Z","who":"wci.manager","role":"MANAGER","#,
            r#""what":"DENIED","person_id":null,"purpose":"EMERGENCY","reason":"called by \"A&E\"","#,
            r#""outcome":"DENIED","review":true,"route":"GET /v1/people/{{id}}/journey","#,
            r#""status":403,"request_id":"{rid}","prev":"{prev}","hash":"{hash}"}}"#
        ),
        rid = request_id,
        prev = e.hash,
        hash = e2.hash,
    );
    assert_eq!(serde_json::to_string(&e2).expect("json"), want2);
    let back: AccessEntry = serde_json::from_str(&want2).expect("read the JSON back");
    assert_eq!(back, e2);
    let stored = all(&log).await;
    assert_eq!(stored, vec![e, e2], "stored entries read back identically");

    // No purpose: null, not absent.
    let mut r = record("auditor", None, time("2026-11-29T10:04:00Z"));
    r.purpose = None;
    let e3 = log.append(r).await.expect("append");
    let v: serde_json::Value = serde_json::to_value(&e3).expect("json");
    let keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want_keys = ENTRY_FIELDS.to_vec();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    want_keys.sort_unstable();
    assert_eq!(sorted, want_keys);
    assert!(v["purpose"].is_null() && v["person_id"].is_null());
}

/// The enums' JSON names and `Purpose::parse`.
pub fn names() {
    let whats = [
        (AccessWhat::ReadJourney, "READ_JOURNEY"),
        (AccessWhat::ReadEvents, "READ_EVENTS"),
        (AccessWhat::Verify, "VERIFY"),
        (AccessWhat::ReadCaseload, "READ_CASELOAD"),
        (AccessWhat::ReadIdentity, "READ_IDENTITY"),
        (AccessWhat::ReadList, "READ_LIST"),
        (AccessWhat::Export, "EXPORT"),
        (AccessWhat::Submit, "SUBMIT"),
        (AccessWhat::Denied, "DENIED"),
    ];
    for (w, s) in whats {
        assert_eq!(serde_json::to_value(w).expect("json"), s);
        assert_eq!(w.as_str(), s);
    }
    let mut seen = HashMap::new();
    for p in Purpose::ALL {
        assert_eq!(serde_json::to_value(p).expect("json"), p.as_str());
        assert_eq!(Purpose::parse(p.as_str()), Some(p));
        assert_eq!(Purpose::parse(&p.as_str().to_lowercase()), Some(p));
        seen.insert(p.as_str(), p);
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(Purpose::parse("DIRECT-CARE"), None);
    assert_eq!(Purpose::parse(""), None);
    assert_eq!(
        serde_json::to_value(Outcome::Allowed).expect("json"),
        "ALLOWED"
    );
    assert_eq!(
        serde_json::to_value(Outcome::Denied).expect("json"),
        "DENIED"
    );
}

/// Every check that needs only fresh logs, each on its own (`fresh` gives a new, empty
/// log every call).
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Log>,
{
    names();
    appends_chain_in_order(fresh().await).await;
    concurrent_appends_share_one_chain(fresh().await, 200).await;
    queries_filter_and_page(fresh().await).await;
    json_shape(fresh().await).await;
}
