//! The cut of the log by time (a binary search over `recorded_at`, ties included) and
//! as-of replays over a real embedded log: a replay holds exactly the prefix folded the
//! projector's way, a repeated cut is served from the cache, at most two replays are
//! built at once, and a build whose caller went away is stopped.

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

type Events = futures::stream::BoxStream<
    'static,
    Result<throughcare_events::RecordedEvent, throughcare_ledger::Error>,
>;

/// The log, but every `read_all` waits at `gate` before its first event: a replay build
/// started on it stays mid-way until the gate opens.
struct GatedLog {
    inner: Arc<dyn EventLog>,
    gate: Arc<tokio::sync::Semaphore>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl EventLog for GatedLog {
    async fn append(
        &self,
        request: AppendRequest,
    ) -> Result<Vec<throughcare_ledger::Appended>, throughcare_ledger::Error> {
        self.inner.append(request).await
    }
    async fn read_person(
        &self,
        person: PersonId,
        from: u64,
    ) -> Result<Vec<throughcare_events::RecordedEvent>, throughcare_ledger::Error> {
        self.inner.read_person(person, from).await
    }
    fn read_all(&self, from: u64) -> Events {
        use futures::StreamExt;
        let (gate, inner, reads) = (self.gate.clone(), self.inner.clone(), self.reads.clone());
        futures::stream::once(async move {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _open = gate.acquire().await;
            inner.read_all(from)
        })
        .flatten()
        .boxed()
    }
    fn subscribe(&self, from: u64) -> Events {
        self.inner.subscribe(from)
    }
    async fn head(&self) -> Result<u64, throughcare_ledger::Error> {
        self.inner.head().await
    }
    async fn lookup_identifier(
        &self,
        identifier: &throughcare_events::Identifier,
    ) -> Result<Option<PersonId>, throughcare_ledger::Error> {
        self.inner.lookup_identifier(identifier).await
    }
    async fn lookup_submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<throughcare_ledger::PriorSubmission>, throughcare_ledger::Error> {
        self.inner.lookup_submission(source, id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_replays_are_built_at_once_and_a_deserted_build_stops() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let inner = log_recorded_at(&dir.path().join("log"), &[1, 2, 3, 4, 5]).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let log: Arc<dyn EventLog> = Arc::new(GatedLog {
        inner,
        gate: gate.clone(),
        reads: reads.clone(),
    });
    let replays = Arc::new(Replays::in_dir(log, dir.path().join("scratch")));
    let held = |p: u64| {
        let replays = replays.clone();
        tokio::spawn(async move { replays.at(p).await.map(|r| r.position()) })
    };
    // Waits (at most 10 s) until `n` builds have reached the log.
    let reached = |n: usize, what: &'static str| {
        let reads = reads.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while reads.load(Ordering::SeqCst) < n {
                assert!(std::time::Instant::now() < deadline, "{what}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    };
    // Two builds start and wait at the gate.
    let (one, two) = (held(1), held(2));
    reached(2, "the two builds did not start").await;
    // A third gets no turn: after the wait it is told to retry.
    let third = replays.at(3).await;
    assert!(
        matches!(third, Err(throughcare_projector::Error::Unavailable(_))),
        "a third build while two run: {:?}",
        third.map(|r| r.position())
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "the third build never read the log"
    );
    // The first caller goes away: its build stops and gives its turn to the next.
    one.abort();
    let _ = one.await;
    let fourth = held(4);
    reached(3, "the deserted build kept its turn").await;
    // Open the gate: the builds still wanted finish.
    gate.add_permits(100);
    assert_eq!(two.await.unwrap().unwrap(), 2);
    assert_eq!(fourth.await.unwrap().unwrap(), 4);
}
