//! The embedded log keeps `recorded_at` non-decreasing with position (DESIGN.md "Audit"
//! -> "As of"), so "recorded by T" is a prefix of the log: an append stamped earlier than
//! the last event (concurrent submissions stamp before they queue for the writer) is
//! recorded at the last event's time, hashed as stored, across restarts too.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde_json::json;
use throughcare_events::{validate_body, verify_chain, Event, PersonId, Submission};
use throughcare_ledger::{AppendRequest, EmbeddedLog, EventLog, ExpectedVersion, NewEvent};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

fn release_date(id: &str, nomis: &str) -> Event {
    let body = json!({
        "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
        "type": "throughcare.release_date.set.v1", "time": "2026-11-01T09:00:00Z",
        "datacontenttype": "application/json",
        "data": { "person": { "nomis": nomis }, "date": "2027-01-15", "date_type": "CRD" },
    });
    match validate_body(body.to_string().as_bytes(), t("2026-11-20T12:00:00Z")) {
        Ok(Submission::One(e)) => *e,
        other => panic!("not one valid event: {other:?}"),
    }
}

async fn append(log: &EmbeddedLog, person: PersonId, id: &str, recorded_at: DateTime<Utc>) {
    log.append(AppendRequest {
        person,
        expected: ExpectedVersion::Any,
        claims: vec![],
        events: vec![NewEvent {
            event: release_date(id, "A1234BC"),
            recorded_at,
        }],
    })
    .await
    .expect("append");
}

/// Opens `dir` again once the previous handle's writer thread has let go of sled's lock.
async fn reopen(dir: &std::path::Path) -> EmbeddedLog {
    for _ in 0..200 {
        if let Ok(log) = EmbeddedLog::open(dir) {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("cannot reopen the embedded log");
}

async fn recorded_times(log: &EmbeddedLog) -> Vec<DateTime<Utc>> {
    log.read_all(1)
        .map(|e| e.expect("read").recorded_at)
        .collect()
        .await
}

#[tokio::test]
async fn an_append_stamped_before_the_last_event_is_recorded_at_the_last_events_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        PersonId(ulid::Ulid::from_parts(1, 1)),
        PersonId(ulid::Ulid::from_parts(1, 2)),
    );
    let noon = t("2026-11-20T12:00:00Z");
    {
        // Given an event recorded at noon,
        let log = EmbeddedLog::open(dir.path()).unwrap();
        append(&log, a, "e-1", noon).await;
        // when another writer's event stamped a second earlier lands after it,
        append(&log, b, "e-2", noon - Duration::seconds(1)).await;
        // then it is recorded at noon, not before the event ahead of it,
        assert_eq!(recorded_times(&log).await, [noon, noon]);
        // and a later stamp is kept as it is.
        append(&log, a, "e-3", noon + Duration::seconds(1)).await;
        assert_eq!(
            recorded_times(&log).await,
            [noon, noon, noon + Duration::seconds(1)]
        );
    }
    // After a restart the writer starts from the last recorded time.
    let log = reopen(dir.path()).await;
    append(&log, b, "e-4", noon).await;
    let times = recorded_times(&log).await;
    assert_eq!(times[3], noon + Duration::seconds(1));
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // A single position reads as in the whole log; none before 1 or beyond the head.
    let all: Vec<_> = log.read_all(1).map(|e| e.expect("read")).collect().await;
    for e in &all {
        assert_eq!(log.read_at(e.position).await.unwrap().as_ref(), Some(e));
    }
    assert_eq!(log.read_at(0).await.unwrap(), None);
    assert_eq!(log.read_at(5).await.unwrap(), None);
    // The hash covers the recorded time as stored: every chain verifies.
    for p in [a, b] {
        let events = log.read_person(p, 1).await.unwrap();
        verify_chain(p, &events).expect("the chain verifies from the stored bytes");
    }
}
