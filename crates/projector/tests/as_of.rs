//! The cut of the log by time (a binary search over `recorded_at`, ties included) and
//! as-of replays over a real embedded log: a replay holds exactly the prefix folded the
//! projector's way, and a repeated cut is served from the cache.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use throughcare_events::{validate_body, Event, PersonId, Submission};
use throughcare_ledger::{AppendRequest, EmbeddedLog, EventLog, ExpectedVersion, NewEvent};
use throughcare_projections::Journey;
use throughcare_projector::as_of::{cut_at_position, cut_at_time, position_at};
use throughcare_projector::Replays;

fn base() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn release_date(id: &str, nomis: &str, day: u32) -> Event {
    let body = json!({
        "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
        "type": "throughcare.release_date.set.v1", "time": "2026-11-01T09:00:00Z",
        "datacontenttype": "application/json",
        "data": { "person": { "nomis": nomis }, "date": format!("2027-01-{day:02}"), "date_type": "CRD" },
    });
    match validate_body(body.to_string().as_bytes(), base()) {
        Ok(Submission::One(e)) => *e,
        other => panic!("not one valid event: {other:?}"),
    }
}

/// A log of two people whose events are recorded at these seconds after [`base`].
async fn log_recorded_at(dir: &std::path::Path, seconds: &[i64]) -> Arc<dyn EventLog> {
    let log = EmbeddedLog::open(dir).unwrap();
    for (i, s) in seconds.iter().enumerate() {
        let person = PersonId(ulid::Ulid::from_parts(1, (i % 2) as u128));
        log.append(AppendRequest {
            person,
            expected: ExpectedVersion::Any,
            claims: vec![],
            events: vec![NewEvent {
                event: release_date(&format!("e-{i}"), &format!("A{:04}BC", i % 2), i as u32 + 1),
                recorded_at: base() + Duration::seconds(*s),
            }],
        })
        .await
        .unwrap();
    }
    Arc::new(log)
}

#[tokio::test]
async fn the_cut_at_a_time_is_the_last_position_recorded_by_then() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_recorded_at(dir.path(), &[10, 10, 20, 30, 30, 30, 40]).await;
    let head = log.head().await.unwrap();
    // (seconds after base, the position of the cut)
    let check = [
        (-1, 0),
        (9, 0),
        (10, 2),
        (15, 2),
        (20, 3),
        (29, 3),
        (30, 6),
        (39, 6),
        (40, 7),
        (99, 7),
    ];
    for (s, expected) in check {
        let t = base() + Duration::seconds(s);
        assert_eq!(
            position_at(log.as_ref(), t, head).await.unwrap(),
            expected,
            "at {s}s"
        );
        assert_eq!(
            cut_at_time(log.as_ref(), t).await.unwrap().position,
            expected
        );
    }
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = log_recorded_at(empty_dir.path(), &[]).await;
    assert_eq!(position_at(empty.as_ref(), base(), 0).await.unwrap(), 0);
    // A position is read at the time it was recorded.
    let cut = cut_at_position(log.as_ref(), 4).await.unwrap();
    assert_eq!(cut.at, base() + Duration::seconds(30));
}

#[tokio::test]
async fn a_replay_holds_the_prefix_folded_as_the_projector_folds_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_recorded_at(&dir.path().join("log"), &[1, 2, 3, 4, 5]).await;
    let replays = Replays::in_dir(log.clone(), dir.path().join("scratch"));
    let all: Vec<_> = futures::StreamExt::collect::<Vec<_>>(log.read_all(1))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for position in 0..=5u64 {
        let replay = replays.at(position).await.unwrap();
        assert_eq!(replay.position(), position);
        assert_eq!(replay.checkpoint(), position);
        let prefix = &all[..position as usize];
        for n in 0..2u128 {
            let person = PersonId(ulid::Ulid::from_parts(1, n));
            let mine: Vec<_> = prefix.iter().filter(|e| e.person_id == person).collect();
            let expected = (!mine.is_empty()).then(|| Journey::fold(person, mine));
            assert_eq!(
                replay.journey(person).unwrap(),
                expected,
                "{person} at {position}"
            );
        }
    }
    // A repeated cut is the cached replay.
    let (a, b) = (replays.at(3).await.unwrap(), replays.at(3).await.unwrap());
    assert!(Arc::ptr_eq(&a, &b));
}
