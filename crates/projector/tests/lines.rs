//! The read models keep each journey's lines (its kept history, the timeline made from it)
//! apart from its document: folding in chunks of any size, with corrections that mark or re-fold earlier lines
//! (read back from the store) arriving in a later chunk than their targets, gives every
//! person exactly the journey a fold of their events gives; the pipelined rebuild and the
//! live follower agree with it; and a store written by an older projection version (the
//! journey as one document) is cleared and rebuilt from position 1 when opened.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::{json, Value};
use throughcare_events::{validate_body, Event, PersonId, RecordedEvent, Submission};
use throughcare_ledger::{AppendRequest, EmbeddedLog, EventLog, ExpectedVersion, NewEvent};
use throughcare_projections::Journey;
use throughcare_projector::{Projector, ReadModels, PROJECTION_VERSION};

fn now() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn event(id: &str, kind: &str, data: Value) -> Event {
    let body = json!({
        "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
        "type": kind, "time": "2026-11-01T09:00:00Z",
        "datacontenttype": "application/json", "data": data,
    });
    match validate_body(body.to_string().as_bytes(), now()) {
        Ok(Submission::One(e)) => *e,
        other => panic!("{id} is not one valid event: {other:?}"),
    }
}

fn release_date(id: &str, nomis: &str, date: &str) -> Event {
    event(
        id,
        "throughcare.release_date.set.v1",
        json!({ "person": { "nomis": nomis }, "date": date, "date_type": "CRD" }),
    )
}

fn correction(id: &str, nomis: &str, target: &str, wrong: &str, value: Option<Value>) -> Event {
    let mut data = json!({
        "person": { "nomis": nomis }, "target_event_id": target, "what_was_wrong": wrong,
    });
    if let Some(v) = value {
        data["pointer"] = json!("/data/date");
        data["corrected_value"] = v;
    }
    event(id, "throughcare.record.corrected.v1", data)
}

fn person(n: u128) -> PersonId {
    PersonId(ulid::Ulid::from_parts(7, n))
}

/// Two people's events, interleaved: dates, a correction that only marks its target, one
/// that amends a value and one that voids an event (both re-fold), each landing after
/// its target.
fn script() -> Vec<(PersonId, Event)> {
    let (a, b) = (person(1), person(2));
    vec![
        (a, release_date("a-1", "A0001BC", "2027-01-05")),
        (b, release_date("b-1", "A0002BC", "2027-02-05")),
        (a, release_date("a-2", "A0001BC", "2027-01-10")),
        (a, release_date("a-3", "A0001BC", "2027-01-12")),
        (b, release_date("b-2", "A0002BC", "2027-02-06")),
        (a, correction("a-4", "A0001BC", "a-1", "WRONG_DATE", None)),
        (
            b,
            correction(
                "b-3",
                "A0002BC",
                "b-2",
                "WRONG_VALUE",
                Some(json!("2027-03-01")),
            ),
        ),
        (a, release_date("a-5", "A0001BC", "2027-01-20")),
        (
            a,
            correction("a-6", "A0001BC", "a-5", "ENTERED_IN_ERROR", None),
        ),
        (b, release_date("b-4", "A0002BC", "2027-02-07")),
        (a, release_date("a-7", "A0001BC", "2027-01-25")),
    ]
}

async fn append(log: &EmbeddedLog, who: PersonId, e: Event) {
    log.append(AppendRequest {
        person: who,
        expected: ExpectedVersion::Any,
        claims: vec![],
        events: vec![NewEvent {
            event: e,
            recorded_at: now(),
        }],
    })
    .await
    .unwrap();
}

/// Opens the projector's store once an earlier sled handle has let go of its lock.
async fn open_when_free(dir: &std::path::Path) -> Projector {
    let mut last = None;
    for _ in 0..200 {
        match Projector::open(dir) {
            Ok(projector) => return projector,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot open the projector store: {last:?}");
}

async fn log_of(dir: &std::path::Path) -> (EmbeddedLog, Vec<RecordedEvent>) {
    let log = EmbeddedLog::open(dir).unwrap();
    for (who, e) in script() {
        append(&log, who, e).await;
    }
    let all: Vec<RecordedEvent> = log.read_all(1).try_collect().await.unwrap();
    (log, all)
}

/// Every person's stored journey is the fold of their events, and there are no others.
fn assert_folds(models: &ReadModels, all: &[RecordedEvent], what: &str) {
    for n in 1..=2 {
        let mine: Vec<_> = all.iter().filter(|e| e.person_id == person(n)).collect();
        let expected = Journey::fold(person(n), mine);
        assert_eq!(
            models.journey(person(n)).unwrap().as_ref(),
            Some(&expected),
            "{what}: journey of person {n}"
        );
    }
    assert_eq!(models.journeys().count(), 2, "{what}: journeys");
}

#[tokio::test]
async fn chunks_of_any_size_fold_to_each_persons_fold() {
    let dir = tempfile::tempdir().unwrap();
    let (log, all) = log_of(&dir.path().join("log")).await;
    // The script's corrections do what they should: the first marks, the others re-fold.
    let a = Journey::fold(person(1), all.iter().filter(|e| e.person_id == person(1)));
    assert_eq!(a.timeline.len(), 7);
    assert_eq!(a.timeline[0].corrected_by, Some(6));
    assert_eq!(a.timeline[4].corrected_by, Some(9));
    assert_eq!(a.release_dates.len(), 4, "the voided date is left out");
    let b = Journey::fold(person(2), all.iter().filter(|e| e.person_id == person(2)));
    assert_eq!(b.release_dates[1].date.to_string(), "2027-03-01");

    for size in 1..=all.len() {
        let store = tempfile::tempdir().unwrap();
        let projector = Projector::open(store.path()).unwrap();
        for chunk in all.chunks(size) {
            projector.apply(chunk).unwrap();
        }
        assert_eq!(projector.checkpoint(), all.len() as u64);
        assert_folds(&projector.read_models(), &all, &format!("chunks of {size}"));
        // Folding again what is folded changes nothing.
        projector.apply(&all).unwrap();
        assert_folds(
            &projector.read_models(),
            &all,
            &format!("chunks of {size}, again"),
        );
    }

    // The pipelined rebuild, over a store that held something else.
    let store = tempfile::tempdir().unwrap();
    let projector = Projector::open(store.path()).unwrap();
    projector.apply(&all[..3]).unwrap();
    assert_eq!(projector.rebuild(&log).await.unwrap(), all.len() as u64);
    assert_eq!(projector.checkpoint(), all.len() as u64);
    assert_folds(&projector.read_models(), &all, "rebuild");
}

#[tokio::test]
async fn a_gap_in_a_chunk_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, all) = log_of(&dir.path().join("log")).await;
    let store = tempfile::tempdir().unwrap();
    let projector = Projector::open(store.path()).unwrap();
    projector.apply(&all[..2]).unwrap();
    let with_gap = [all[2].clone(), all[4].clone()];
    assert!(projector.apply(&with_gap).is_err());
    assert_eq!(projector.checkpoint(), 2);
    let models = projector.read_models();
    let mine: Vec<_> = all[..2]
        .iter()
        .filter(|e| e.person_id == person(1))
        .collect();
    assert_eq!(
        models.journey(person(1)).unwrap(),
        Some(Journey::fold(person(1), mine))
    );
}

#[tokio::test]
async fn an_older_projection_version_is_rebuilt_when_opened_and_followed_live() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let script = script();
    let (early, late) = script.split_at(6);
    for (who, e) in early {
        append(&log, *who, e.clone()).await;
    }
    let all: Vec<RecordedEvent> = log.read_all(1).try_collect().await.unwrap();

    // A store as the previous version wrote it: the whole journey in one document, a
    // checkpoint at the head, the version before this one.
    let store = tempfile::tempdir().unwrap();
    {
        let db = sled::open(store.path()).unwrap();
        let mine: Vec<_> = all.iter().filter(|e| e.person_id == person(1)).collect();
        let old = Journey::fold(person(1), mine);
        let mut key = vec![b'J'];
        key.extend_from_slice(&person(1).to_bytes());
        db.insert(key, serde_json::to_vec(&old).unwrap()).unwrap();
        db.insert(b"Mversion", &(PROJECTION_VERSION - 1).to_be_bytes())
            .unwrap();
        db.insert(b"Mcheckpoint", &(all.len() as u64).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    // Dropping a sled handle lets go of its file lock a moment later, from a sled thread.
    let projector = Arc::new(open_when_free(store.path()).await);
    assert_eq!(projector.checkpoint(), 0, "the old store is cleared");
    assert_eq!(projector.read_models().journeys().count(), 0);

    // The live follower folds the log from position 1, then what is appended meanwhile.
    let follower = {
        let (projector, log) = (projector.clone(), log.clone());
        tokio::spawn(async move { projector.run(log).await })
    };
    let models = projector.read_models();
    assert!(
        models
            .wait_for(all.len() as u64, Duration::from_secs(10))
            .await
    );
    for (who, e) in late {
        append(&log, *who, e.clone()).await;
    }
    let all: Vec<RecordedEvent> = log.read_all(1).try_collect().await.unwrap();
    assert!(
        models
            .wait_for(all.len() as u64, Duration::from_secs(10))
            .await
    );
    assert_folds(&models, &all, "followed");
    follower.abort();
}
