//! The `EventLog` conformance suite and the write path, run against the embedded (sled)
//! backend: one test per check (from `conformance_tests!`), each on a fresh log in its
//! own temporary directory; and what only the embedded backend promises (reopening).

use std::sync::Arc;

use tempfile::TempDir;
use throughcare_ledger::EmbeddedLog;
use throughcare_tests::conformance::Log;

/// A fresh, empty embedded log in `dir`.
fn open_in(dir: &TempDir) -> Log {
    Arc::new(EmbeddedLog::open(dir.path()).expect("open the embedded log"))
}

/// A fresh, empty embedded log in a temporary directory that lives as long as the guard.
async fn open() -> (TempDir, Log) {
    let dir = TempDir::new().expect("temporary directory");
    let log = open_in(&dir);
    (dir, log)
}

// Every conformance check, one test each.
throughcare_tests::conformance_tests!(open);

/// Opens the log in `dir` again once the previous handle's writer has let go of it.
async fn reopen(dir: &TempDir) -> Log {
    let mut last = None;
    for _ in 0..200 {
        match EmbeddedLog::open(dir.path()) {
            Ok(log) => return Arc::new(log),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("cannot reopen the embedded log: {last:?}");
}

/// Embedded only: what was acknowledged survives closing and reopening the directory
/// (positions, bodies, chains, submissions, claims), and numbering carries on.
#[tokio::test(flavor = "multi_thread")]
async fn embedded_log_survives_reopen() {
    use futures::TryStreamExt;
    use throughcare_events::{validate_event, verify_chain, Identifier, PersonId};
    use throughcare_ledger::{AppendRequest, ExpectedVersion, NewEvent};

    let now = "2026-11-20T12:00:00Z".parse().expect("time");
    let event = |id: &str| {
        validate_event(
            &serde_json::json!({
                "specversion": "1.0",
                "id": id,
                "source": "urn:throughcare:test:reopen",
                "type": "throughcare.release_date.set.v1",
                "time": "2026-11-20T09:30:00Z",
                "data": { "person": { "nomis": "R0001BC" }, "date": "2027-01-15", "date_type": "CRD" },
            }),
            now,
        )
        .expect("valid event")
    };
    let append = |person, expected, claims: Vec<Identifier>, id: &str| AppendRequest {
        person,
        expected,
        claims,
        events: vec![NewEvent {
            event: event(id),
            recorded_at: now,
        }],
    };
    let p = PersonId(ulid::Ulid::from_parts(1_790_000_000_000, 7));
    let nomis: Identifier = "nomis:R0001BC".parse().expect("identifier");

    let dir = TempDir::new().expect("temporary directory");
    let before: Vec<_> = {
        let log = open_in(&dir);
        log.append(append(
            p,
            ExpectedVersion::NoStream,
            vec![nomis.clone()],
            "r-1",
        ))
        .await
        .expect("append");
        log.append(append(p, ExpectedVersion::Exactly(1), vec![], "r-2"))
            .await
            .expect("append");
        log.read_all(1).try_collect().await.expect("read_all")
    };

    let log = reopen(&dir).await;
    assert_eq!(log.head().await.expect("head"), 2);
    let after: Vec<_> = log.read_all(1).try_collect().await.expect("read_all");
    assert_eq!(after, before, "the log reads back as it was");
    assert_eq!(
        log.lookup_identifier(&nomis).await.expect("lookup"),
        Some(p)
    );
    let retry = log
        .append(append(p, ExpectedVersion::NoStream, vec![], "r-1"))
        .await
        .expect("retry");
    assert!(retry[0].duplicate && retry[0].position == 1, "{retry:?}");
    let next = log
        .append(append(p, ExpectedVersion::Exactly(2), vec![], "r-3"))
        .await
        .expect("append after reopen");
    assert_eq!(next[0].position, 3, "numbering carries on");
    let mine = log.read_person(p, 1).await.expect("read_person");
    assert_eq!(mine.len(), 3);
    verify_chain(p, &mine).expect("the chain continues across the reopen");
}
