//! The `EventLog` conformance suite: one set of checks that every backend runs unchanged.
//!
//! Each check is a `pub async fn` taking a fresh, empty log (`Arc<dyn EventLog>`) and
//! panicking on the first violation, so a backend's test file can give every check its
//! own `#[tokio::test]` (use the multi-thread flavor: several checks race tasks against
//! each other). [`conformance_tests!`](crate::conformance_tests) makes those tests from
//! the one list of checks.
//!
//! The checks never measure time. Waits on a subscription are bounded by [`PATIENCE`]
//! only so that a lost event fails the test instead of hanging it.
//!
//! Every event is built from the catalogue and validated; all data is synthetic (NOMIS
//! numbers like `A0001BC`, NHS numbers in the 999 test range with a valid check digit).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use throughcare_events::{
    validate_event, verify_chain, Event, Hash, Identifier, PersonId, RecordedEvent, StoredBody,
};
use throughcare_ledger::{
    AppendRequest, Appended, BatchError, Error, EventLog, ExpectedVersion, Ledger, NewEvent,
    Receipt, MAX_BATCH,
};

/// The log under test.
pub type Log = Arc<dyn EventLog>;

/// The longest a check waits for one event on a subscription before failing.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One `#[tokio::test(flavor = "multi_thread")]` per conformance check, named after it,
/// for the backend whose logs `$open` makes. This is the only list of the checks: a check
/// added here runs on every backend, so none can silently miss one.
///
/// `$open` is a path to an `async fn() -> (G, Log)` returning a fresh, empty log and a
/// guard `G` (a directory, a server) that keeps it alive until the test ends.
///
/// ```ignore
/// async fn open() -> (TempDir, Log) { ... }
/// throughcare_tests::conformance_tests!(open);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@each $open;
            positions_are_contiguous_and_ordered,
            read_all_stops_at_head_when_called,
            read_all_streams_a_long_log,
            head_tracks_last_position,
            expected_version_conflicts_append_nothing,
            idempotent_retry_returns_original_position,
            same_key_different_body_is_idempotency_conflict,
            same_key_twice_in_one_append_is_recorded_once,
            identity_claims_are_create_only,
            identity_claim_race_has_one_winner,
            failed_append_leaves_no_claims,
            hash_chain_links_each_persons_events,
            subscribe_has_no_gap_or_duplicate_at_the_seam,
            subscribe_on_empty_log_delivers_live_events,
            subscribe_stored_yields_the_stored_bytes_live,
            concurrent_appends_lose_no_update,
            append_all_records_every_request_or_none,
            append_all_is_atomic_under_a_racing_writer,
            ledger_referral_creates_person_and_resolves_by_any_identifier,
            ledger_refuses_identifiers_of_two_persons,
            ledger_concurrent_submits_create_one_person,
            ledger_batch_is_all_or_nothing_under_a_racing_writer,
            ledger_batch_limit_is_the_stores,
        );
    };
    (@each $open:path; $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $check() {
            let (_alive, log) = $open().await;
            $crate::conformance::$check(log).await;
        }
    )*};
}

// ---------------------------------------------------------------------------------------
// Synthetic data
// ---------------------------------------------------------------------------------------

/// The `source` of every event the raw-log checks append.
const SOURCE: &str = "urn:throughcare:test:conformance";
/// Another source, to show the idempotency key is (source, id) and not id alone.
const OTHER_SOURCE: &str = "urn:throughcare:test:conformance-other";

/// "Now" for validation and for the write path's fixed clock.
fn now() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().expect("a valid time")
}

/// A recording time `n` microseconds after [`now`] (micro precision survives storage).
fn recorded_at(n: u64) -> DateTime<Utc> {
    now() + chrono::Duration::microseconds(n as i64)
}

/// A deterministic person id.
fn person(n: u64) -> PersonId {
    throughcare_synthetic::person_id(0, n)
}

/// A synthetic NOMIS number: `series` keeps the checks' numbers apart.
fn nomis(series: u8, n: u32) -> String {
    assert!(
        n < 100_000,
        "nomis({series}, {n}): n must stay below 100000"
    );
    throughcare_synthetic::nomis(u64::from(series) * 100_000 + u64::from(n))
}

/// A synthetic NHS number (999 test range, valid Modulus 11 check digit).
fn nhs(seed: u32) -> String {
    throughcare_synthetic::nhs_number(u64::from(seed))
}

fn nomis_id(s: &str) -> Identifier {
    format!("nomis:{s}").parse().expect("a valid NOMIS number")
}
fn nhs_id(s: &str) -> Identifier {
    format!("nhs:{s}").parse().expect("a valid NHS number")
}
fn crn_id(s: &str) -> Identifier {
    format!("crn:{s}").parse().expect("a valid CRN")
}

/// Validates a CloudEvent built in a test; panics with the problems if it is not valid.
fn validated(value: Value) -> Event {
    validate_event(&value, now()).unwrap_or_else(|p| panic!("test event is invalid: {p:?}"))
}

fn envelope(source: &str, id: &str, kind: &str, data: Value) -> Event {
    validated(throughcare_synthetic::cloudevent(
        source,
        id,
        kind,
        "2026-11-20T09:30:00Z",
        data,
    ))
}

/// A `release_date.set` fact about `nomis`; `day` (1..=28) varies the body.
fn release_date(source: &str, id: &str, nomis: &str, day: u32) -> Event {
    envelope(
        source,
        id,
        "release_date.set",
        json!({
            "person": { "nomis": nomis },
            "date": format!("2027-01-{:02}", 1 + (day + 27) % 28),
            "date_type": "CRD",
        }),
    )
}

/// A plain event for the raw-log checks.
fn ev(id: &str) -> Event {
    release_date(SOURCE, id, "A0001BC", 15)
}

fn referral_received(id: &str, person: Value, referral_id: &str) -> Event {
    envelope(
        SOURCE,
        id,
        "referral.received",
        json!({
            "person": person,
            "referral_id": referral_id,
            "referrer": { "kind": "PROBATION", "org": "Probation Service, Hampshire" },
            "prison": "WCI",
            "expected_release_date": "2027-01-15",
            "vulnerabilities": ["ADHD"],
        }),
    )
}

fn referral_accepted(id: &str, person: Value, referral_id: &str) -> Event {
    envelope(
        SOURCE,
        id,
        "referral.accepted",
        json!({ "person": person, "referral_id": referral_id }),
    )
}

fn identifiers_linked(id: &str, person: Value, identifiers: Value) -> Event {
    envelope(
        SOURCE,
        id,
        "identifiers.linked",
        json!({ "person": person, "identifiers": identifiers }),
    )
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An event with the time the ledger records it.
type Timed = (Event, DateTime<Utc>);

fn request(
    person: PersonId,
    expected: ExpectedVersion,
    claims: Vec<Identifier>,
    events: &[Timed],
) -> AppendRequest {
    AppendRequest {
        person,
        expected,
        claims,
        events: events
            .iter()
            .map(|(event, recorded_at)| NewEvent {
                event: event.clone(),
                recorded_at: *recorded_at,
            })
            .collect(),
    }
}

/// Appends `events` (recorded at [`now`]) without claims.
async fn append(
    log: &Log,
    person: PersonId,
    expected: ExpectedVersion,
    events: &[Event],
) -> Result<Vec<Appended>, Error> {
    let events: Vec<_> = events.iter().map(|e| (e.clone(), now())).collect();
    log.append(request(person, expected, Vec::new(), &events))
        .await
}

/// The answer for an event of `person` at position 1; `duplicate` when it was there before.
fn at_1(person: PersonId, duplicate: bool) -> Appended {
    Appended {
        position: 1,
        person,
        duplicate,
    }
}

/// Appends the one event [`ev`]`(id)` for `person` at `expected`, claiming `claims`.
async fn append_claiming(
    log: &Log,
    person: PersonId,
    expected: ExpectedVersion,
    claims: Vec<Identifier>,
    id: &str,
) -> Result<Vec<Appended>, Error> {
    log.append(request(person, expected, claims, &[(ev(id), now())]))
        .await
}

/// Appends `events` and panics unless they were all freshly recorded.
async fn append_ok(
    log: &Log,
    person: PersonId,
    expected: ExpectedVersion,
    events: &[Event],
) -> Vec<u64> {
    let out = append(log, person, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append for {person} ({expected}) failed: {e}"));
    assert_eq!(out.len(), events.len(), "one Appended per event");
    for a in &out {
        assert_eq!(a.person, person, "Appended names the person");
        assert!(!a.duplicate, "a fresh event is not a duplicate: {a:?}");
    }
    out.iter().map(|a| a.position).collect()
}

async fn read_all(log: &Log, from: u64) -> Vec<RecordedEvent> {
    log.read_all(from)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("read_all({from}) failed: {e}"))
}

async fn read_person(log: &Log, person: PersonId, from: u64) -> Vec<RecordedEvent> {
    log.read_person(person, from)
        .await
        .unwrap_or_else(|e| panic!("read_person({person}, {from}) failed: {e}"))
}

async fn head(log: &Log) -> u64 {
    log.head()
        .await
        .unwrap_or_else(|e| panic!("head() failed: {e}"))
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

fn ids(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.id.as_str()).collect()
}

/// Asserts that `result` is a `Conflict` for `person` at `actual`.
fn assert_conflict<T: std::fmt::Debug>(
    result: Result<T, Error>,
    person: PersonId,
    actual: u64,
    what: &str,
) {
    match result {
        Err(Error::Conflict {
            person: p,
            actual: a,
            ..
        }) => {
            assert_eq!(p, person, "{what}: the conflict names the person");
            assert_eq!(a, actual, "{what}: the conflict reports the actual version");
        }
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

/// Asserts the log holds exactly positions 1..=n, returning them.
async fn assert_log_is(log: &Log, n: u64, what: &str) -> Vec<RecordedEvent> {
    let all = read_all(log, 1).await;
    assert_eq!(
        positions(&all),
        (1..=n).collect::<Vec<_>>(),
        "{what}: the log holds positions 1..={n}"
    );
    assert_eq!(head(log).await, n, "{what}: head is {n}");
    all
}

/// Waits for the next event of a subscription, failing instead of hanging.
async fn next_event(
    sub: &mut BoxStream<'static, Result<RecordedEvent, Error>>,
    what: &str,
) -> RecordedEvent {
    match tokio::time::timeout(PATIENCE, sub.next()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("{what}: the subscription failed: {e}"),
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: no event within {PATIENCE:?}: an event was lost"),
    }
}

/// Checks a person's chain from stored fields: links, first prev, recomputed hashes.
fn assert_chain(person: PersonId, events: &[RecordedEvent], what: &str) {
    let mut prev = Hash::ZERO;
    for e in events {
        assert_eq!(
            e.person_id, person,
            "{what}: event {} is the person's",
            e.position
        );
        assert_eq!(
            e.prev, prev,
            "{what}: prev of position {} is the hash of the person's previous event",
            e.position
        );
        let recomputed = Hash::of(&StoredBody::encode(
            e.person_id,
            e.recorded_at,
            e.prev,
            &e.event,
        ));
        assert_eq!(
            recomputed, e.hash,
            "{what}: the hash at position {} is SHA-256 of the stored body",
            e.position
        );
        prev = e.hash;
    }
    match verify_chain(person, events) {
        Ok(h) => assert_eq!(h, prev, "{what}: verify_chain returns the head hash"),
        Err(b) => panic!("{what}: verify_chain failed: {b:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Ordering and reads
// ---------------------------------------------------------------------------------------

/// Positions start at 1 and are contiguous; a multi-event append takes consecutive
/// positions; `read_all` streams everything in order from any position; `read_person`
/// returns only that person's events, oldest first, from a position (inclusive).
pub async fn positions_are_contiguous_and_ordered(log: Log) {
    let (a, b, nobody) = (person(1), person(2), person(3));
    assert!(
        read_all(&log, 1).await.is_empty(),
        "a fresh log must be empty"
    );
    assert_eq!(
        append_ok(&log, a, ExpectedVersion::NoStream, &[ev("o-1")]).await,
        [1]
    );
    assert_eq!(
        append_ok(&log, b, ExpectedVersion::NoStream, &[ev("o-2"), ev("o-3")]).await,
        [2, 3],
        "a multi-event append takes consecutive positions"
    );
    assert_eq!(
        append_ok(&log, a, ExpectedVersion::Exactly(1), &[ev("o-4")]).await,
        [4]
    );
    assert_eq!(
        append_ok(&log, b, ExpectedVersion::Exactly(3), &[ev("o-5")]).await,
        [5]
    );

    let all = assert_log_is(&log, 5, "ordering").await;
    assert_eq!(ids(&all), ["o-1", "o-2", "o-3", "o-4", "o-5"]);
    assert_eq!(
        all.iter().map(|e| e.person_id).collect::<Vec<_>>(),
        [a, b, b, a, b]
    );
    for e in &all {
        assert_eq!(e.event, ev(&e.event.id), "the event reads back as appended");
    }
    assert_eq!(positions(&read_all(&log, 3).await), [3, 4, 5]);
    assert_eq!(positions(&read_all(&log, 5).await), [5]);
    assert!(read_all(&log, 6).await.is_empty(), "nothing after the head");
    assert!(
        read_all(&log, 1000).await.is_empty(),
        "nothing after the head"
    );

    let by_pos: HashMap<u64, &RecordedEvent> = all.iter().map(|e| (e.position, e)).collect();
    for (p, from, want) in [
        (a, 1, vec![1, 4]),
        (a, 2, vec![4]),
        (a, 4, vec![4]),
        (a, 5, vec![]),
        (b, 1, vec![2, 3, 5]),
        (b, 3, vec![3, 5]),
        (b, 4, vec![5]),
        (b, 6, vec![]),
        (nobody, 1, vec![]),
    ] {
        let got = read_person(&log, p, from).await;
        assert_eq!(positions(&got), want, "read_person({p}, {from})");
        for e in &got {
            assert_eq!(
                &e,
                by_pos.get(&e.position).expect("known position"),
                "read_person and read_all agree"
            );
        }
    }
}

/// `read_all` returns the events up to the head when it was called and then ends, even
/// if more are appended while it is consumed; a stream on an empty log ends at once.
pub async fn read_all_stops_at_head_when_called(log: Log) {
    let p = person(1);
    let empty = log.read_all(1);
    append_ok(&log, p, ExpectedVersion::NoStream, &[ev("s-0")]).await;
    let got: Vec<_> = empty.try_collect().await.expect("read_all");
    assert!(got.is_empty(), "read_all on an empty log ends empty");

    append_ok(&log, p, ExpectedVersion::Any, &[ev("s-1"), ev("s-2")]).await;
    let stream = log.read_all(1);
    append_ok(&log, p, ExpectedVersion::Any, &[ev("s-3"), ev("s-4")]).await;
    let got: Vec<_> = stream.try_collect().await.expect("read_all");
    assert_eq!(
        positions(&got),
        [1, 2, 3],
        "read_all ends at the head when it was called"
    );
    assert_log_is(&log, 5, "after more appends").await;
}

/// `read_all` and `read_person` cover a log much longer than any one page or batch.
pub async fn read_all_streams_a_long_log(log: Log) {
    const APPENDS: u64 = 22;
    const PER_APPEND: u64 = 50;
    let (a, b) = (person(1), person(2));
    for i in 0..APPENDS {
        let who = if i % 2 == 0 { a } else { b };
        let events: Vec<_> = (0..PER_APPEND)
            .map(|k| ev(&format!("long-{i}-{k}")))
            .collect();
        append_ok(&log, who, ExpectedVersion::Any, &events).await;
    }
    let total = APPENDS * PER_APPEND;
    let all = assert_log_is(&log, total, "long log").await;
    let mut seen = HashSet::new();
    for e in &all {
        assert!(seen.insert(e.event.id.clone()), "each event appears once");
    }
    let tail = read_all(&log, 600).await;
    assert_eq!(positions(&tail), (600..=total).collect::<Vec<_>>());

    let mut count = 0;
    let mut stream = log.read_all(1);
    let mut expect = 1;
    while let Some(e) = stream.next().await {
        let e = e.expect("read_all item");
        assert_eq!(e.position, expect, "read_all streams in order without gaps");
        expect += 1;
        count += 1;
    }
    assert_eq!(count, total);

    for p in [a, b] {
        let mine = read_person(&log, p, 1).await;
        assert_eq!(
            mine.len() as u64,
            total / 2,
            "read_person returns all of {p}"
        );
        assert!(mine.windows(2).all(|w| w[0].position < w[1].position));
        assert!(mine.iter().all(|e| e.person_id == p));
        assert_chain(p, &mine, "long log");
        let from = mine[300].position;
        assert_eq!(read_person(&log, p, from).await, mine[300..].to_vec());
    }
}

/// `head()` is 0 on an empty log, then the last position; failed and duplicate appends
/// leave it where it was.
pub async fn head_tracks_last_position(log: Log) {
    let (a, b) = (person(1), person(2));
    assert_eq!(head(&log).await, 0, "an empty log has head 0");
    append_ok(&log, a, ExpectedVersion::NoStream, &[ev("h-1")]).await;
    assert_eq!(head(&log).await, 1);
    append_ok(
        &log,
        b,
        ExpectedVersion::NoStream,
        &[ev("h-2"), ev("h-3"), ev("h-4")],
    )
    .await;
    assert_eq!(head(&log).await, 4);

    assert_conflict(
        append(&log, a, ExpectedVersion::NoStream, &[ev("h-5")]).await,
        a,
        1,
        "head: stale NoStream",
    );
    assert_eq!(head(&log).await, 4, "a conflict leaves the head");
    let dup = append(&log, a, ExpectedVersion::NoStream, &[ev("h-1")])
        .await
        .expect("duplicate");
    assert!(dup[0].duplicate);
    assert_eq!(head(&log).await, 4, "a duplicate leaves the head");
    let other_body = release_date(SOURCE, "h-1", "A0001BC", 3);
    assert!(matches!(
        append(&log, a, ExpectedVersion::Any, &[other_body]).await,
        Err(Error::IdempotencyConflict { .. })
    ));
    assert_eq!(
        head(&log).await,
        4,
        "an idempotency conflict leaves the head"
    );

    append_ok(&log, a, ExpectedVersion::Exactly(1), &[ev("h-5")]).await;
    assert_eq!(head(&log).await, 5);
    assert_log_is(&log, 5, "head").await;
}

// ---------------------------------------------------------------------------------------
// Expected version
// ---------------------------------------------------------------------------------------

/// NoStream on an existing person, a stale or wrong `Exactly`, and `Exactly` on a person
/// with no events all fail with `Error::Conflict` (naming the person and the actual
/// version) and record nothing; `Any` appends whatever the version.
pub async fn expected_version_conflicts_append_nothing(log: Log) {
    let (a, b, c) = (person(1), person(2), person(3));
    append_ok(&log, a, ExpectedVersion::NoStream, &[ev("v-1")]).await;

    assert_conflict(
        append(&log, a, ExpectedVersion::NoStream, &[ev("v-2")]).await,
        a,
        1,
        "NoStream on an existing person",
    );
    assert_conflict(
        append(&log, a, ExpectedVersion::Exactly(7), &[ev("v-2")]).await,
        a,
        1,
        "Exactly(a future version)",
    );
    assert_eq!(
        append_ok(&log, a, ExpectedVersion::Exactly(1), &[ev("v-2")]).await,
        [2]
    );
    assert_conflict(
        append(
            &log,
            a,
            ExpectedVersion::Exactly(1),
            &[ev("v-3"), ev("v-4")],
        )
        .await,
        a,
        2,
        "Exactly(stale)",
    );
    assert_conflict(
        append(&log, b, ExpectedVersion::Exactly(2), &[ev("v-5")]).await,
        b,
        0,
        "Exactly on a person with no events",
    );

    assert_log_is(&log, 2, "after conflicts").await;
    assert_eq!(positions(&read_person(&log, a, 1).await), [1, 2]);
    assert!(read_person(&log, b, 1).await.is_empty(), "nothing for b");
    for id in ["v-3", "v-4", "v-5"] {
        assert_eq!(
            log.lookup_submission(SOURCE, id).await.expect("lookup"),
            None,
            "a conflicting append records no submission {id}"
        );
    }

    // What failed was not recorded, so it can be appended now as new events.
    assert_eq!(
        append_ok(
            &log,
            a,
            ExpectedVersion::Exactly(2),
            &[ev("v-3"), ev("v-4")]
        )
        .await,
        [3, 4]
    );
    assert_eq!(
        append_ok(&log, a, ExpectedVersion::Any, &[ev("v-6")]).await,
        [5],
        "Any on an existing person"
    );
    assert_eq!(
        append_ok(&log, c, ExpectedVersion::Any, &[ev("v-7")]).await,
        [6],
        "Any on a new person"
    );
    assert_eq!(
        append_ok(&log, b, ExpectedVersion::NoStream, &[ev("v-5")]).await,
        [7]
    );
    assert_log_is(&log, 7, "after retries").await;
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

/// Retrying the same (source, id) and body returns the original position with
/// `duplicate: true` and appends nothing: right away (with a later recording time and
/// the now-stale expected version), and again after many other appends. The key is
/// (source, id): the same id from another source is a different event.
pub async fn idempotent_retry_returns_original_position(log: Log) {
    let (a, b) = (person(1), person(2));
    let first = ev("i-1");
    let original = request(
        a,
        ExpectedVersion::NoStream,
        vec![],
        &[(first.clone(), recorded_at(1))],
    );
    let out = log.append(original.clone()).await.expect("first append");
    assert_eq!(out, [at_1(a, false)]);

    let later = request(
        a,
        ExpectedVersion::NoStream,
        vec![],
        &[(first.clone(), recorded_at(999_999))],
    );
    let retry = log.append(later).await.expect("retry");
    assert_eq!(
        retry,
        [at_1(a, true)],
        "a retry returns the original position"
    );
    let stored = assert_log_is(&log, 1, "after an immediate retry").await;
    assert_eq!(
        stored[0].recorded_at,
        recorded_at(1),
        "the original is kept"
    );

    let prior = log
        .lookup_submission(SOURCE, "i-1")
        .await
        .expect("lookup")
        .expect("recorded");
    assert_eq!(prior.position, 1);
    assert_eq!(prior.person, a);
    assert_eq!(prior.digest, first.digest());
    assert_eq!(
        log.lookup_submission(SOURCE, "never-sent")
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        log.lookup_submission(OTHER_SOURCE, "i-1")
            .await
            .expect("lookup"),
        None,
        "the key is (source, id)"
    );

    // Many other appends, then the original request again.
    let mut version_a = 1;
    for i in 0..20 {
        let id = format!("i-other-{i}");
        if i % 2 == 0 {
            let out = append_ok(&log, a, ExpectedVersion::Exactly(version_a), &[ev(&id)]).await;
            version_a = out[0];
        } else {
            append_ok(&log, b, ExpectedVersion::Any, &[ev(&id)]).await;
        }
    }
    assert_eq!(head(&log).await, 21);
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exactly(1),
        ExpectedVersion::Any,
    ] {
        let mut req = original.clone();
        req.expected = expected;
        let retry = log.append(req).await.expect("late retry");
        assert_eq!(
            retry,
            [at_1(a, true)],
            "a retry long after ({expected}) returns the original position"
        );
    }
    assert_log_is(&log, 21, "after late retries").await;

    // A multi-event append retried as a whole.
    let pair = [ev("i-pair-1"), ev("i-pair-2")];
    let out = append_ok(&log, b, ExpectedVersion::Any, &pair).await;
    assert_eq!(out, [22, 23]);
    let retry = append(&log, b, ExpectedVersion::NoStream, &pair)
        .await
        .expect("retry of a pair");
    assert_eq!(
        retry,
        [
            Appended {
                position: 22,
                person: b,
                duplicate: true
            },
            Appended {
                position: 23,
                person: b,
                duplicate: true
            },
        ]
    );

    // Same id, another source: a new event.
    let other = release_date(OTHER_SOURCE, "i-1", "A0001BC", 15);
    assert_eq!(
        append_ok(&log, a, ExpectedVersion::Any, &[other]).await,
        [24]
    );
    assert_log_is(&log, 24, "after all retries").await;
    assert_eq!(read_person(&log, a, 1).await.len(), 12);
}

/// The same (source, id) with a different body is `Error::IdempotencyConflict` naming
/// the original position, whatever the person or expected version; nothing is appended
/// and the original stays as it was.
pub async fn same_key_different_body_is_idempotency_conflict(log: Log) {
    let (a, b) = (person(1), person(2));
    let original = release_date(SOURCE, "d-1", "A0001BC", 15);
    append_ok(
        &log,
        a,
        ExpectedVersion::NoStream,
        std::slice::from_ref(&original),
    )
    .await;
    append_ok(&log, b, ExpectedVersion::NoStream, &[ev("d-2")]).await;

    let changed = release_date(SOURCE, "d-1", "A0001BC", 16);
    assert_ne!(changed.digest(), original.digest());
    for (who, expected) in [
        (a, ExpectedVersion::Exactly(1)),
        (a, ExpectedVersion::Any),
        (b, ExpectedVersion::Exactly(2)),
        (person(3), ExpectedVersion::NoStream),
    ] {
        match append(&log, who, expected, std::slice::from_ref(&changed)).await {
            Err(Error::IdempotencyConflict {
                event_source,
                id,
                position,
            }) => {
                assert_eq!(event_source, SOURCE);
                assert_eq!(id, "d-1");
                assert_eq!(position, 1, "the conflict names the original position");
            }
            other => panic!("expected IdempotencyConflict ({who}, {expected}), got {other:?}"),
        }
    }
    // A batch holding one fresh event and the changed one records neither.
    assert!(matches!(
        append(&log, a, ExpectedVersion::Exactly(1), &[ev("d-3"), changed]).await,
        Err(Error::IdempotencyConflict { .. })
    ));
    let all = assert_log_is(&log, 2, "after idempotency conflicts").await;
    assert_eq!(all[0].event, original, "the original is unchanged");
    assert_eq!(
        log.lookup_submission(SOURCE, "d-1")
            .await
            .expect("lookup")
            .map(|p| p.digest),
        Some(original.digest())
    );
    assert_eq!(
        log.lookup_submission(SOURCE, "d-3").await.expect("lookup"),
        None
    );
}

/// One append naming the same (source, id) twice records it at most once: the same body
/// twice is one event (the second reported as a duplicate of the first) or a refusal;
/// two different bodies are refused (`IdempotencyConflict` or `Invalid`). Nothing of a
/// refused append is recorded.
pub async fn same_key_twice_in_one_append_is_recorded_once(log: Log) {
    let (a, b) = (person(1), person(2));
    match append(&log, a, ExpectedVersion::NoStream, &[ev("k-1"), ev("k-1")]).await {
        Ok(out) => assert_eq!(
            out,
            [
                Appended {
                    position: 1,
                    person: a,
                    duplicate: false
                },
                Appended {
                    position: 1,
                    person: a,
                    duplicate: true
                },
            ],
            "the same event twice in one append is recorded once"
        ),
        Err(e) => {
            eprintln!("the same event twice in one append was refused: {e}");
            assert!(
                read_all(&log, 1).await.is_empty(),
                "a refusal records nothing"
            );
            append_ok(&log, a, ExpectedVersion::NoStream, &[ev("k-1")]).await;
        }
    }
    assert_log_is(&log, 1, "after the same event twice").await;

    let changed = release_date(SOURCE, "k-2", "A0001BC", 3);
    let r = append(&log, b, ExpectedVersion::NoStream, &[ev("k-2"), changed]).await;
    assert!(
        matches!(
            r,
            Err(Error::IdempotencyConflict { .. }) | Err(Error::Invalid(_))
        ),
        "two bodies for one (source, id) in one append must be refused, got {r:?}"
    );
    assert_log_is(&log, 1, "after two bodies for one key").await;
    assert_eq!(
        log.lookup_submission(SOURCE, "k-2").await.expect("lookup"),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

/// Claims are create-only: a second person claiming an identifier gets
/// `Error::IdentityConflict` (identifier, owner, claimant) and nothing is appended;
/// re-claiming one's own identifier is fine; `lookup_identifier` finds the owner.
pub async fn identity_claims_are_create_only(log: Log) {
    let (a, b) = (person(1), person(2));
    let (x, y) = (nomis_id(&nomis(7, 1)), nomis_id(&nomis(7, 2)));
    let n = nhs_id(&nhs(1));
    let c = crn_id("X700001");
    let claim = |p, expected, claims: Vec<Identifier>, id: &str| {
        request(p, expected, claims, &[(ev(id), now())])
    };

    for id in [&x, &y, &n, &c] {
        assert_eq!(log.lookup_identifier(id).await.expect("lookup"), None);
    }
    log.append(claim(
        a,
        ExpectedVersion::NoStream,
        vec![x.clone(), n.clone()],
        "c-1",
    ))
    .await
    .expect("a claims x and n");
    assert_eq!(log.lookup_identifier(&x).await.expect("lookup"), Some(a));
    assert_eq!(log.lookup_identifier(&n).await.expect("lookup"), Some(a));

    for (claims, expected) in [
        (vec![x.clone()], ExpectedVersion::NoStream),
        (vec![n.clone()], ExpectedVersion::Any),
    ] {
        let taken = claims[0].clone();
        match log.append(claim(b, expected, claims, "c-2")).await {
            Err(Error::IdentityConflict {
                identifier,
                owner,
                person,
            }) => {
                assert_eq!(identifier, taken);
                assert_eq!(owner, a, "the conflict names the owner");
                assert_eq!(person, b, "the conflict names the claimant");
            }
            other => panic!("expected IdentityConflict on {taken}, got {other:?}"),
        }
    }
    assert_log_is(&log, 1, "after identity conflicts").await;
    assert!(read_person(&log, b, 1).await.is_empty());
    assert_eq!(
        log.lookup_submission(SOURCE, "c-2").await.expect("lookup"),
        None
    );
    assert_eq!(log.lookup_identifier(&x).await.expect("lookup"), Some(a));

    log.append(claim(
        a,
        ExpectedVersion::Exactly(1),
        vec![x.clone(), c.clone()],
        "c-3",
    ))
    .await
    .expect("a re-claims its own x and claims c");
    assert_eq!(log.lookup_identifier(&c).await.expect("lookup"), Some(a));
    log.append(claim(b, ExpectedVersion::NoStream, vec![y.clone()], "c-2"))
        .await
        .expect("b claims a free identifier");
    assert_eq!(log.lookup_identifier(&y).await.expect("lookup"), Some(b));
    assert_eq!(log.lookup_identifier(&x).await.expect("lookup"), Some(a));
    assert_log_is(&log, 3, "after claims").await;
}

/// Many new persons racing to claim one identifier: exactly one wins, every other gets
/// `IdentityConflict` naming the winner, and only the winner's event is recorded.
pub async fn identity_claim_race_has_one_winner(log: Log) {
    const RACERS: u64 = 16;
    let x = nomis_id(&nomis(8, 1));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let log = log.clone();
        let x = x.clone();
        tasks.push(tokio::spawn(async move {
            let p = person(100 + i);
            let req = request(
                p,
                ExpectedVersion::NoStream,
                vec![x],
                &[(ev(&format!("race-{i}")), now())],
            );
            (p, log.append(req).await)
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        let (p, result) = t.await.expect("task");
        match result {
            Ok(out) => winners.push((p, out)),
            Err(Error::IdentityConflict { owner, person, .. }) => {
                assert_eq!(person, p);
                losers.push(owner);
            }
            Err(e) => panic!("unexpected error for {p}: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claimant wins");
    let (winner, out) = &winners[0];
    assert_eq!(out[0].position, 1);
    assert!(losers.iter().all(|o| o == winner), "losers see the winner");
    assert_eq!(
        log.lookup_identifier(&x).await.expect("lookup"),
        Some(*winner)
    );
    let all = assert_log_is(&log, 1, "after the race").await;
    assert_eq!(all[0].person_id, *winner);
}

/// An append that fails claims nothing, not even its free identifiers.
pub async fn failed_append_leaves_no_claims(log: Log) {
    let (a, b) = (person(1), person(2));
    let x = nomis_id(&nomis(9, 1));
    let free = [
        nhs_id(&nhs(90)),
        crn_id("X900001"),
        crn_id("X900002"),
        crn_id("X900003"),
    ];
    append_claiming(&log, a, ExpectedVersion::NoStream, vec![x.clone()], "f-1")
        .await
        .expect("a claims x");

    // Identity conflict on the second claim: the first (free) one is not taken.
    let r = log
        .append(request(
            b,
            ExpectedVersion::NoStream,
            vec![free[0].clone(), x.clone()],
            &[(ev("f-2"), now())],
        ))
        .await;
    assert!(matches!(r, Err(Error::IdentityConflict { .. })), "{r:?}");
    // Version conflict.
    assert_conflict(
        log.append(request(
            a,
            ExpectedVersion::NoStream,
            vec![free[1].clone()],
            &[(ev("f-3"), now())],
        ))
        .await,
        a,
        1,
        "claims with a stale version",
    );
    // Idempotency conflict.
    let r = log
        .append(request(
            b,
            ExpectedVersion::NoStream,
            vec![free[2].clone()],
            &[(release_date(SOURCE, "f-1", "A0001BC", 2), now())],
        ))
        .await;
    assert!(matches!(r, Err(Error::IdempotencyConflict { .. })), "{r:?}");
    for id in &free[..3] {
        assert_eq!(
            log.lookup_identifier(id).await.expect("lookup"),
            None,
            "a failed append must not claim {id}"
        );
    }
    assert_log_is(&log, 1, "after failed claims").await;
    // And the free identifiers are still free for anyone.
    append_claiming(&log, b, ExpectedVersion::NoStream, free.to_vec(), "f-4")
        .await
        .expect("b claims the free identifiers");
    for id in &free {
        assert_eq!(log.lookup_identifier(id).await.expect("lookup"), Some(b));
    }
}

// ---------------------------------------------------------------------------------------
// Hash chain
// ---------------------------------------------------------------------------------------

/// Each person's first event has prev = `Hash::ZERO`, each later one the hash of that
/// person's previous event (however the persons interleave), each hash is SHA-256 over
/// `StoredBody::encode` of the read-back fields, `verify_chain` succeeds, and events and
/// recording times read back exactly as appended.
pub async fn hash_chain_links_each_persons_events(log: Log) {
    let (a, b) = (person(1), person(2));
    let mut sent: HashMap<String, Timed> = HashMap::new();
    let mut next_time = 0;
    let mut batch = |ids: &[&str]| -> Vec<Timed> {
        ids.iter()
            .map(|id| {
                next_time += 1_234;
                let e = (
                    release_date(SOURCE, id, "A0001BC", next_time as u32),
                    recorded_at(next_time),
                );
                sent.insert(id.to_string(), e.clone());
                e
            })
            .collect()
    };
    let plan = [
        (a, ExpectedVersion::NoStream, batch(&["hc-1"])),
        (b, ExpectedVersion::NoStream, batch(&["hc-2", "hc-3"])),
        (a, ExpectedVersion::Exactly(1), batch(&["hc-4", "hc-5"])),
        (b, ExpectedVersion::Exactly(3), batch(&["hc-6"])),
        (a, ExpectedVersion::Any, batch(&["hc-7"])),
    ];
    for (p, expected, events) in plan {
        log.append(request(p, expected, vec![], &events))
            .await
            .unwrap_or_else(|e| panic!("append for {p}: {e}"));
    }
    let all = assert_log_is(&log, 7, "hash chain").await;
    for p in [a, b] {
        let mine = read_person(&log, p, 1).await;
        assert_eq!(mine[0].prev, Hash::ZERO, "the first prev is Hash::ZERO");
        assert_chain(p, &mine, "hash chain");
        for e in &mine {
            let (event, at) = &sent[&e.event.id];
            assert_eq!(&e.event, event, "the event reads back as appended");
            assert_eq!(&e.recorded_at, at, "recorded_at reads back as appended");
            let in_all = &all[(e.position - 1) as usize];
            assert_eq!(e, in_all, "read_person and read_all agree");
        }
    }
    assert_eq!(
        positions(&read_person(&log, a, 1).await),
        [1, 4, 5, 7],
        "a's events"
    );
    let hashes: HashSet<Hash> = all.iter().map(|e| e.hash).collect();
    assert_eq!(hashes.len(), all.len(), "every event has its own hash");
}

// ---------------------------------------------------------------------------------------
// Subscribe
// ---------------------------------------------------------------------------------------

/// Subscriptions started while other tasks keep appending deliver every position from
/// `from` exactly once, in order, with no gap at the seam between catch-up and live,
/// only events that are already acknowledged, and then live events as they come.
pub async fn subscribe_has_no_gap_or_duplicate_at_the_seam(log: Log) {
    const PREFILL_APPENDS: u64 = 12;
    const PREFILL_EACH: u64 = 50;
    const WRITERS: u64 = 3;
    const PER_WRITER: u64 = 100;
    const PREFILL: u64 = PREFILL_APPENDS * PREFILL_EACH;
    const TOTAL: u64 = PREFILL + WRITERS * PER_WRITER;

    for i in 0..PREFILL_APPENDS {
        let events: Vec<_> = (0..PREFILL_EACH)
            .map(|k| ev(&format!("sub-pre-{i}-{k}")))
            .collect();
        append_ok(&log, person(i % 3), ExpectedVersion::Any, &events).await;
    }

    // Writers keep appending while the subscriptions catch up.
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                append_ok(
                    &log,
                    person(10 + w),
                    ExpectedVersion::Any,
                    &[ev(&format!("sub-live-{w}-{i}"))],
                )
                .await;
                tokio::task::yield_now().await;
            }
        }));
    }

    let reader = |from: u64| {
        let log = log.clone();
        let mut sub = log.subscribe(from);
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut expect = from;
            while expect <= TOTAL {
                let e = next_event(&mut sub, &format!("subscribe({from})")).await;
                assert_eq!(
                    e.position, expect,
                    "subscribe({from}): positions come once each, in order, without gaps"
                );
                let h = head(&log).await;
                assert!(
                    h >= e.position,
                    "subscribe({from}) delivered position {} beyond the head {h}",
                    e.position
                );
                expect += 1;
                got.push(e);
            }
            (sub, got)
        })
    };
    let first = reader(1);
    let middle = reader(PREFILL / 2);
    // One more subscription started once the writers are well under way.
    loop {
        if head(&log).await >= PREFILL + WRITERS * PER_WRITER / 3 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let late = reader(1);

    for w in writers {
        w.await.expect("writer");
    }
    let all = assert_log_is(&log, TOTAL, "after the writers").await;
    let (mut sub, got) = first.await.expect("subscriber from 1");
    assert_eq!(got, all, "subscribe(1) delivers what read_all holds");
    let (_, got) = middle.await.expect("subscriber from the middle");
    assert_eq!(got, all[(PREFILL / 2 - 1) as usize..].to_vec());
    let (mut late_sub, got) = late.await.expect("late subscriber");
    assert_eq!(got, all);

    // Live, after catch-up has finished.
    for i in 0..5 {
        let pos = append_ok(
            &log,
            person(1),
            ExpectedVersion::Any,
            &[ev(&format!("sub-after-{i}"))],
        )
        .await[0];
        for s in [&mut sub, &mut late_sub] {
            let e = next_event(s, "live after catch-up").await;
            assert_eq!(e.position, pos, "a live event arrives next");
            assert_eq!(e.event.id, format!("sub-after-{i}"));
        }
    }
}

/// A subscription on an empty log (from 1, or from a position not yet written) waits and
/// then delivers each event as it is appended, in order.
pub async fn subscribe_on_empty_log_delivers_live_events(log: Log) {
    let mut from_start = log.subscribe(1);
    let mut from_five = log.subscribe(5);
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 1..=10 {
                append_ok(
                    &log,
                    person(i % 2),
                    ExpectedVersion::Any,
                    &[ev(&format!("empty-{i}"))],
                )
                .await;
            }
        })
    };
    for pos in 1..=10 {
        let e = next_event(&mut from_start, "subscribe(1) on an empty log").await;
        assert_eq!(e.position, pos);
        assert_eq!(e.event.id, format!("empty-{pos}"));
    }
    for pos in 5..=10 {
        let e = next_event(&mut from_five, "subscribe(5) on an empty log").await;
        assert_eq!(e.position, pos);
    }
    writer.await.expect("writer");
    assert_log_is(&log, 10, "after live appends").await;
}

/// `subscribe_stored` (what the audit tree follows) yields exactly the positions and
/// stored bytes `read_all` does, from a position in the middle, then live appends.
pub async fn subscribe_stored_yields_the_stored_bytes_live(log: Log) {
    for i in 1..=6 {
        append_ok(
            &log,
            person(i % 3),
            ExpectedVersion::Any,
            &[ev(&format!("raw-{i}"))],
        )
        .await;
    }
    let mut stored = log.subscribe_stored(4);
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 7..=12 {
                append_ok(
                    &log,
                    person(i % 3),
                    ExpectedVersion::Any,
                    &[ev(&format!("raw-{i}"))],
                )
                .await;
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 9 {
        let e = tokio::time::timeout(Duration::from_secs(10), stored.next())
            .await
            .expect("subscribe_stored delivers within 10 s")
            .expect("the stream goes on")
            .expect("no error");
        got.push((e.position, e.stored.to_string()));
    }
    writer.await.expect("writer");
    let all: Vec<RecordedEvent> = log.read_all(4).try_collect().await.expect("read_all");
    let want: Vec<(u64, String)> = all
        .iter()
        .map(|e| (e.position, e.stored.to_string()))
        .collect();
    assert_eq!(got, want, "positions 4..=12 and their stored bytes");
    assert!(got.iter().all(|(_, s)| !s.is_empty()));
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

/// 32 tasks × 25 appends onto 4 shared persons, each append an `Exactly(version)` retry
/// loop that re-reads the person on conflict. Afterwards: every append landed once (no
/// lost update), positions are unique and contiguous, each event was decided on exactly
/// the person's previous event, each chain verifies, and every acknowledged append was
/// visible to `head` and `read_person` as soon as it returned.
pub async fn concurrent_appends_lose_no_update(log: Log) {
    const TASKS: u64 = 32;
    const EACH: u64 = 25;
    const PERSONS: u64 = 4;
    const MAX_ATTEMPTS: usize = 10_000;
    const TOTAL: u64 = TASKS * EACH;
    let conflicts = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let log = log.clone();
        let conflicts = conflicts.clone();
        tasks.push(tokio::spawn(async move {
            // (id, person, version decided on, position)
            let mut done = Vec::new();
            for i in 0..EACH {
                let p = person((t + i) % PERSONS);
                let id = format!("cc-{t}-{i}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts <= MAX_ATTEMPTS, "{id}: no progress");
                    let version = read_person(&log, p, 1)
                        .await
                        .last()
                        .map_or(0, |e| e.position);
                    let expected = ExpectedVersion::from_version(version);
                    match append(&log, p, expected, &[ev(&id)]).await {
                        Ok(out) => {
                            assert_eq!(out.len(), 1);
                            assert!(!out[0].duplicate, "{id} is new");
                            let pos = out[0].position;
                            assert!(pos > version, "{id}: positions only grow");
                            assert!(head(&log).await >= pos, "acknowledged but not in head");
                            let mine = read_person(&log, p, pos).await;
                            assert_eq!(
                                mine.first().map(|e| e.position),
                                Some(pos),
                                "{id}: acknowledged but not readable"
                            );
                            done.push((id, p, version, pos));
                            break;
                        }
                        Err(Error::Conflict { person, .. }) => {
                            assert_eq!(person, p);
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("{id}: unexpected error {e}"),
                    }
                }
            }
            done
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.extend(t.await.expect("task"));
    }
    eprintln!(
        "concurrent appends: {} conflicts retried",
        conflicts.load(Ordering::Relaxed)
    );

    assert_eq!(done.len() as u64, TOTAL);
    let acked: BTreeSet<u64> = done.iter().map(|d| d.3).collect();
    assert_eq!(
        acked.len() as u64,
        TOTAL,
        "every append got its own position"
    );
    assert_eq!(
        acked.into_iter().collect::<Vec<_>>(),
        (1..=TOTAL).collect::<Vec<_>>(),
        "positions are contiguous"
    );
    let all = assert_log_is(&log, TOTAL, "after concurrent appends").await;
    let decided_on: HashMap<&str, (PersonId, u64, u64)> = done
        .iter()
        .map(|(id, p, v, pos)| (id.as_str(), (*p, *v, *pos)))
        .collect();
    let mut seen = HashSet::new();
    for e in &all {
        let (p, _, pos) = decided_on
            .get(e.event.id.as_str())
            .unwrap_or_else(|| panic!("{} was never acknowledged", e.event.id));
        assert!(
            seen.insert(e.event.id.clone()),
            "{} recorded twice",
            e.event.id
        );
        assert_eq!(
            *pos, e.position,
            "{} is where it was acknowledged",
            e.event.id
        );
        assert_eq!(*p, e.person_id);
    }

    let mut per_person: BTreeMap<PersonId, u64> = BTreeMap::new();
    for (_, p, _, _) in &done {
        *per_person.entry(*p).or_default() += 1;
    }
    let mut sum = 0;
    for (p, count) in per_person {
        let mine = read_person(&log, p, 1).await;
        assert_eq!(mine.len() as u64, count, "no lost update for {p}");
        sum += mine.len() as u64;
        assert_chain(p, &mine, "concurrent appends");
        let mut previous = 0;
        for e in &mine {
            let (_, version, _) = decided_on[e.event.id.as_str()];
            assert_eq!(
                version, previous,
                "{} was appended on version {version} but follows {previous}",
                e.event.id
            );
            previous = e.position;
        }
    }
    assert_eq!(sum, TOTAL);
}

// ---------------------------------------------------------------------------------------
// Appends across persons, all or nothing
// ---------------------------------------------------------------------------------------

/// Asserts that nothing of a refused call is in the log: not the events (by id), not the
/// person's stream, not the identifiers it would have claimed.
async fn assert_nothing_of(
    log: &Log,
    person: PersonId,
    event_ids: &[&str],
    claims: &[Identifier],
    what: &str,
) {
    for id in event_ids {
        assert_eq!(
            log.lookup_submission(SOURCE, id).await.expect("lookup"),
            None,
            "{what}: {id} must not be recorded"
        );
    }
    assert!(
        read_person(log, person, 1).await.is_empty(),
        "{what}: {person} must have no events"
    );
    for id in claims {
        assert_eq!(
            log.lookup_identifier(id).await.expect("lookup"),
            None,
            "{what}: {id} must not be claimed"
        );
    }
}

/// `append_all` records every request (new persons with their claims, existing persons
/// at their versions) and answers one `Vec<Appended>` per request in order; a repeat of
/// the call is all duplicates at the original positions; and when the LAST request fails
/// (stale version, taken identifier, idempotency conflict) the earlier ones, which alone
/// would have been accepted, are not recorded either.
pub async fn append_all_records_every_request_or_none(log: Log) {
    let (a, b, c) = (person(1), person(2), person(3));
    let (xa, xb, xc) = (
        nomis_id(&nomis(14, 1)),
        nomis_id(&nomis(14, 2)),
        nomis_id(&nomis(14, 3)),
    );
    assert!(
        log.append_all(Vec::new())
            .await
            .expect("empty call")
            .is_empty(),
        "nothing asked, nothing answered"
    );
    append_claiming(&log, a, ExpectedVersion::NoStream, vec![xa.clone()], "aa-1")
        .await
        .expect("a's first event");

    let both = vec![
        request(
            b,
            ExpectedVersion::NoStream,
            vec![xb.clone()],
            &[(ev("aa-2"), now()), (ev("aa-3"), now())],
        ),
        request(
            a,
            ExpectedVersion::Exactly(1),
            vec![],
            &[(ev("aa-4"), now())],
        ),
    ];
    let out = log.append_all(both.clone()).await.expect("append_all");
    assert_eq!(
        out.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 1],
        "one Vec<Appended> per request, one Appended per event"
    );
    for (request, answered) in both.iter().zip(&out) {
        for x in answered {
            assert_eq!(
                x.person, request.person,
                "Appended names the request's person"
            );
            assert!(!x.duplicate, "fresh events are not duplicates: {x:?}");
        }
    }
    let mut recorded: Vec<u64> = out.iter().flatten().map(|x| x.position).collect();
    recorded.sort_unstable();
    assert_eq!(recorded, [2, 3, 4], "three new positions after the first");
    let all = assert_log_is(&log, 4, "after append_all").await;
    let by_id: HashMap<&str, &RecordedEvent> =
        all.iter().map(|e| (e.event.id.as_str(), e)).collect();
    assert_eq!(by_id["aa-2"].position, out[0][0].position);
    assert_eq!(by_id["aa-3"].position, out[0][1].position);
    assert_eq!(by_id["aa-4"].position, out[1][0].position);
    assert!(
        by_id["aa-2"].position < by_id["aa-3"].position,
        "a request keeps its order"
    );
    assert_eq!(log.lookup_identifier(&xb).await.expect("lookup"), Some(b));
    assert_chain(a, &read_person(&log, a, 1).await, "append_all, a");
    assert_chain(b, &read_person(&log, b, 1).await, "append_all, b");

    let again = log.append_all(both).await.expect("repeat of the call");
    let expected: Vec<Vec<Appended>> = out
        .iter()
        .map(|r| {
            r.iter()
                .map(|x| Appended {
                    duplicate: true,
                    ..*x
                })
                .collect()
        })
        .collect();
    assert_eq!(again, expected, "a repeat answers the original positions");
    assert_log_is(&log, 4, "after the repeat").await;

    // Each call below: a new person c claiming xc (a request that would be accepted on its
    // own), then one event for a at `version` with `claims`.
    let after_fresh_c = |version: u64, claims: Vec<Identifier>, event: Event| {
        log.append_all(vec![
            request(
                c,
                ExpectedVersion::NoStream,
                vec![xc.clone()],
                &[(ev("aa-5"), now())],
            ),
            request(
                a,
                ExpectedVersion::Exactly(version),
                claims,
                &[(event, now())],
            ),
        ])
    };
    let xcs = std::slice::from_ref(&xc);
    let stale = after_fresh_c(1, vec![], ev("aa-6")).await;
    assert_conflict(stale, a, 4, "append_all with one stale version");
    assert_nothing_of(&log, c, &["aa-5", "aa-6"], xcs, "stale version").await;

    let taken = after_fresh_c(4, vec![xb.clone()], ev("aa-6")).await;
    match taken {
        Err(Error::IdentityConflict { owner, person, .. }) => {
            assert_eq!(
                (owner, person),
                (b, a),
                "the conflict names owner and claimant"
            );
        }
        other => panic!("a taken claim: expected IdentityConflict, got {other:?}"),
    }
    assert_nothing_of(&log, c, &["aa-5", "aa-6"], xcs, "taken claim").await;

    let reused = after_fresh_c(4, vec![], release_date(SOURCE, "aa-1", "A0001BC", 3)).await;
    assert!(
        matches!(reused, Err(Error::IdempotencyConflict { .. })),
        "a reused (source, id): {reused:?}"
    );
    assert_nothing_of(&log, c, &["aa-5"], xcs, "idempotency conflict").await;
    assert_log_is(&log, 4, "after three refused calls").await;

    // Nothing of the refused calls is left in the way: the same requests now go in.
    let out = after_fresh_c(4, vec![], ev("aa-6"))
        .await
        .expect("the corrected call");
    let mut recorded: Vec<u64> = out.iter().flatten().map(|x| x.position).collect();
    recorded.sort_unstable();
    assert_eq!(recorded, [5, 6], "numbering carries on without gaps");
    assert_eq!(log.lookup_identifier(&xc).await.expect("lookup"), Some(c));
    assert_log_is(&log, 6, "after the corrected call").await;
}

/// Rounds of racers on one shared person, all having read the same version: each racer's
/// `append_all` first creates a new person of its own (two events and a claim), then
/// appends to the shared person; one racer per round writes the shared person with a
/// plain `append` instead. Exactly one racer per round wins; every loser gets `Conflict`
/// and leaves nothing behind: not its new person's events, not its claim.
pub async fn append_all_is_atomic_under_a_racing_writer(log: Log) {
    const ROUNDS: u64 = 8;
    const RACERS: u64 = 8;
    let shared = person(1);
    append_ok(&log, shared, ExpectedVersion::NoStream, &[ev("ar-0")]).await;
    let mut plain_wins = 0;
    for round in 0..ROUNDS {
        let version = read_person(&log, shared, 1)
            .await
            .last()
            .map_or(0, |e| e.position);
        let expected = ExpectedVersion::from_version(version);
        let mut tasks = Vec::new();
        for i in 0..RACERS {
            let log = log.clone();
            let k = round * RACERS + i;
            let own = person(100 + k);
            let claim = crn_id(&format!("Y{k:06}"));
            let ids = [
                format!("ar-{k}-own-1"),
                format!("ar-{k}-own-2"),
                format!("ar-{k}-shared"),
            ];
            tasks.push(tokio::spawn(async move {
                let on_shared = request(shared, expected, vec![], &[(ev(&ids[2]), now())]);
                let result = if i == 0 {
                    log.append(on_shared).await.map(|out| vec![out])
                } else {
                    log.append_all(vec![
                        request(
                            own,
                            ExpectedVersion::NoStream,
                            vec![claim.clone()],
                            &[(ev(&ids[0]), now()), (ev(&ids[1]), now())],
                        ),
                        on_shared,
                    ])
                    .await
                };
                (i, own, claim, ids, result)
            }));
        }
        let mut winners = 0;
        for t in tasks {
            let (i, own, claim, ids, result) = t.await.expect("task");
            let what = format!("round {round}, racer {i}");
            match result {
                Ok(out) => {
                    winners += 1;
                    plain_wins += u64::from(i == 0);
                    assert!(
                        out.iter().flatten().all(|x| !x.duplicate),
                        "{what}: {out:?}"
                    );
                    if i != 0 {
                        assert_eq!(read_person(&log, own, 1).await.len(), 2, "{what}");
                        assert_eq!(
                            log.lookup_identifier(&claim).await.expect("lookup"),
                            Some(own),
                            "{what}: the winner's claim"
                        );
                    }
                }
                Err(Error::Conflict { person, .. }) => {
                    assert_eq!(
                        person, shared,
                        "{what}: the conflict is on the shared person"
                    );
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    assert_nothing_of(&log, own, &ids, &[claim], &what).await;
                }
                Err(e) => panic!("{what}: unexpected error {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one racer wins");
    }
    eprintln!("append_all race: the plain append won {plain_wins} of {ROUNDS} rounds");
    let all = read_all(&log, 1).await;
    assert_eq!(
        positions(&all),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "the log has no gaps"
    );
    let mine = read_person(&log, shared, 1).await;
    assert_eq!(
        mine.len() as u64,
        1 + ROUNDS,
        "one write on the shared person per round"
    );
    assert_chain(shared, &mine, "the shared person");
    assert_eq!(
        all.len() as u64,
        1 + ROUNDS + 2 * (ROUNDS - plain_wins),
        "only the winners' events are recorded"
    );
}

// ---------------------------------------------------------------------------------------
// The write path on this backend
// ---------------------------------------------------------------------------------------

/// A ledger on `log` with a fixed clock and person ids `person(1)`, `person(2)`, ...
fn ledger(log: &Log) -> Ledger {
    let next = Arc::new(AtomicU64::new(1));
    Ledger::new(
        log.clone(),
        Arc::new(now),
        Arc::new(move || person(next.fetch_add(1, Ordering::SeqCst))),
    )
}

/// Submits a referral `referral_id` (event `id`) naming `nomis` and `nhs`; panics with
/// `what` unless it is recorded.
async fn refer(
    ledger: &Ledger,
    id: &str,
    nomis: &str,
    nhs: &str,
    referral_id: &str,
    what: &str,
) -> throughcare_ledger::Receipt {
    let person = json!({ "nomis": nomis, "nhs_number": nhs });
    ledger
        .submit(referral_received(id, person, referral_id))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A referral naming NOMIS + NHS number creates a person (claiming both and the person
/// id); a later event naming only the NHS number, or only the NOMIS number, resolves to
/// the same person; a resubmission is a duplicate; a changed body is refused.
pub async fn ledger_referral_creates_person_and_resolves_by_any_identifier(log: Log) {
    let ledger = ledger(&log);
    let (x, n) = (nomis(11, 1), nhs(11));
    let referral = referral_received("w-1", json!({ "nomis": x, "nhs_number": n }), "REF-CONF-1");
    let r1 = ledger.submit(referral.clone()).await.expect("referral");
    let p = person(1);
    assert_eq!(r1.person_id, p, "the first new person takes the first id");
    assert_eq!(r1.position, 1);
    assert!(!r1.duplicate);
    for id in [nomis_id(&x), nhs_id(&n), Identifier::Person(p)] {
        assert_eq!(
            log.lookup_identifier(&id).await.expect("lookup"),
            Some(p),
            "{id} is claimed by the new person"
        );
    }

    let r2 = ledger
        .submit(referral_accepted(
            "w-2",
            json!({ "nhs_number": n }),
            "REF-CONF-1",
        ))
        .await
        .expect("accepted by NHS number alone");
    assert_eq!((r2.person_id, r2.position), (p, 2));
    let r3 = ledger
        .submit(release_date(SOURCE, "w-3", &x, 20))
        .await
        .expect("fact by NOMIS alone");
    assert_eq!((r3.person_id, r3.position), (p, 3));

    let again = ledger.submit(referral.clone()).await.expect("resubmission");
    assert_eq!(
        again,
        throughcare_ledger::Receipt {
            duplicate: true,
            ..r1.clone()
        }
    );
    let changed = referral_received("w-1", json!({ "nomis": x, "nhs_number": n }), "REF-CONF-2");
    assert!(matches!(
        ledger.submit(changed).await,
        Err(Error::IdempotencyConflict { position: 1, .. })
    ));

    let history = ledger.history(p).await.expect("history");
    assert_eq!(ids(&history), ["w-1", "w-2", "w-3"]);
    assert!(history.iter().all(|e| e.recorded_at == now()));
    let report = ledger.verify(p).await.expect("verify");
    assert!(report.ok && report.events == 3, "{report:?}");
    assert_chain(p, &history, "write path");

    // Another person's referral makes a second person.
    let other = refer(
        &ledger,
        "w-4",
        &nomis(11, 2),
        &nhs(12),
        "REF-CONF-3",
        "second referral",
    )
    .await;
    assert_eq!((other.person_id, other.position), (person(2), 4));
    assert_log_is(&log, 4, "write path").await;
}

/// An event naming identifiers of two different persons is refused with
/// `IdentityConflict` and records nothing (neither the event nor any claim); linking a
/// new identifier to one person works.
pub async fn ledger_refuses_identifiers_of_two_persons(log: Log) {
    let ledger = ledger(&log);
    let (x1, n1, x2, n2) = (nomis(12, 1), nhs(21), nomis(12, 2), nhs(22));
    let p1 = refer(&ledger, "t-1", &x1, &n1, "REF-T-1", "first person")
        .await
        .person_id;
    let p2 = refer(&ledger, "t-2", &x2, &n2, "REF-T-2", "second person")
        .await
        .person_id;
    assert_ne!(p1, p2);

    let crossed = [
        envelope(
            SOURCE,
            "t-3",
            "release_date.set",
            json!({
                "person": { "nomis": x1, "nhs_number": n2 },
                "date": "2027-02-01",
                "date_type": "CRD",
            }),
        ),
        identifiers_linked(
            "t-4",
            json!({ "nomis": x1 }),
            json!({ "nhs_number": n2, "crn": "X120001" }),
        ),
        identifiers_linked(
            "t-5",
            json!({ "person_id": p2, "crn": "X120002" }),
            json!({ "nomis": x1 }),
        ),
    ];
    for event in crossed {
        let id = event.id.clone();
        match ledger.submit(event).await {
            Err(Error::IdentityConflict { owner, person, .. }) => {
                assert!(
                    (owner, person) == (p1, p2) || (owner, person) == (p2, p1),
                    "{id}: the conflict names both persons, got {owner} and {person}"
                );
            }
            other => panic!("{id}: expected IdentityConflict, got {other:?}"),
        }
        assert_eq!(
            log.lookup_submission(SOURCE, &id).await.expect("lookup"),
            None,
            "{id} is not recorded"
        );
    }
    assert_log_is(&log, 2, "after crossed identifiers").await;
    for (id, owner) in [
        (nomis_id(&x1), Some(p1)),
        (nhs_id(&n1), Some(p1)),
        (nomis_id(&x2), Some(p2)),
        (nhs_id(&n2), Some(p2)),
        (crn_id("X120001"), None),
        (crn_id("X120002"), None),
    ] {
        assert_eq!(
            log.lookup_identifier(&id).await.expect("lookup"),
            owner,
            "{id}"
        );
    }

    let linked = ledger
        .submit(identifiers_linked(
            "t-6",
            json!({ "nomis": x1 }),
            json!({ "crn": "X120001" }),
        ))
        .await
        .expect("link a new identifier");
    assert_eq!((linked.person_id, linked.position), (p1, 3));
    assert_eq!(
        log.lookup_identifier(&crn_id("X120001"))
            .await
            .expect("lookup"),
        Some(p1)
    );
}

/// Many tasks submitting at once for one NOMIS number nobody has seen create exactly one
/// person: every receipt names it, every event is its, and its chain verifies.
pub async fn ledger_concurrent_submits_create_one_person(log: Log) {
    const TASKS: u32 = 16;
    let ledger = ledger(&log);
    let x = nomis(13, 1);
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let ledger = ledger.clone();
        let event = release_date(SOURCE, &format!("one-{i}"), &x, i + 1);
        tasks.push(tokio::spawn(async move { ledger.submit(event).await }));
    }
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.push(t.await.expect("task").expect("submit"));
    }
    let owner = log
        .lookup_identifier(&nomis_id(&x))
        .await
        .expect("lookup")
        .expect("the NOMIS number is claimed");
    assert!(
        receipts
            .iter()
            .all(|r| r.person_id == owner && !r.duplicate),
        "every receipt names the one person: {receipts:?}"
    );
    assert_eq!(
        log.lookup_identifier(&Identifier::Person(owner))
            .await
            .expect("lookup"),
        Some(owner)
    );
    let all = assert_log_is(&log, u64::from(TASKS), "after concurrent submits").await;
    let persons: HashSet<PersonId> = all.iter().map(|e| e.person_id).collect();
    assert_eq!(
        persons.len(),
        1,
        "exactly one person was created: {persons:?}"
    );
    let mut acked: Vec<u64> = receipts.iter().map(|r| r.position).collect();
    acked.sort_unstable();
    assert_eq!(acked, (1..=u64::from(TASKS)).collect::<Vec<_>>());
    let report = ledger.verify(owner).await.expect("verify");
    assert!(report.ok && report.events == TASKS as usize, "{report:?}");
}

fn referral_declined(id: &str, person: Value, referral_id: &str) -> Event {
    envelope(
        SOURCE,
        id,
        "referral.declined",
        json!({ "person": person, "referral_id": referral_id, "reason": "OUT_OF_AREA" }),
    )
}

/// Rounds of a ledger batch racing other writers on a person it names: facts about that
/// person (always accepted, so the batch's append conflicts and is decided again) and a
/// decline of the referral the batch accepts (so either the batch or the decline is
/// refused). The batch names a NEW person first, so a backend recording request by
/// request would record that person before the conflict. Each round the batch is either
/// recorded whole (every receipt fresh, no duplicate from an earlier partial attempt) or
/// refused with item 1 and nothing of it recorded (not the new person, not its claim).
pub async fn ledger_batch_is_all_or_nothing_under_a_racing_writer(log: Log) {
    const ROUNDS: u32 = 8;
    const FACTS: u32 = 4;
    let ledger = ledger(&log);
    let (mut recorded, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let (x, y) = (nomis(16, round * 2 + 1), nomis(16, round * 2 + 2));
        let referral = format!("REF-BATCH-{round}");
        let existing = ledger
            .submit(referral_received(
                &format!("lb-{round}-0"),
                json!({ "nomis": x }),
                &referral,
            ))
            .await
            .expect("the referral")
            .person_id;
        let ids: Vec<String> = (1..=3).map(|n| format!("lb-{round}-{n}")).collect();
        let batch = vec![
            release_date(SOURCE, &ids[0], &y, round + 1),
            referral_accepted(&ids[1], json!({ "nomis": x }), &referral),
            release_date(SOURCE, &ids[2], &x, round + 2),
        ];
        let mut facts = Vec::new();
        for f in 0..FACTS {
            let ledger = ledger.clone();
            let event = release_date(SOURCE, &format!("lb-{round}-fact-{f}"), &x, f + 3);
            facts.push(tokio::spawn(async move { ledger.submit(event).await }));
        }
        let decline = {
            let ledger = ledger.clone();
            let event = referral_declined(
                &format!("lb-{round}-decline"),
                json!({ "nomis": x }),
                &referral,
            );
            tokio::spawn(async move { ledger.submit(event).await })
        };
        let result = ledger.submit_batch(batch).await;
        for f in facts {
            let r = f.await.expect("task").expect("a fact is always recorded");
            assert_eq!(r.person_id, existing);
        }
        let declined = decline.await.expect("task");
        let what = format!("round {round}");
        match (result, declined) {
            (Ok(receipts), Err(Error::Refused(_))) => {
                recorded += 1;
                assert_eq!(receipts.len(), 3, "{what}: one receipt per item");
                assert!(
                    receipts.iter().all(|r| !r.duplicate),
                    "{what}: a receipt says duplicate, so part of the batch was recorded \
                     by an earlier attempt: {receipts:?}"
                );
                let new = receipts[0].person_id;
                assert_ne!(new, existing, "{what}: the first item is a new person");
                assert_eq!(receipts[1].person_id, existing);
                assert_eq!(receipts[2].person_id, existing);
                for (r, id) in receipts.iter().zip(&ids) {
                    let prior = log
                        .lookup_submission(SOURCE, id)
                        .await
                        .expect("lookup")
                        .unwrap_or_else(|| panic!("{what}: {id} was acknowledged"));
                    assert_eq!((prior.position, prior.person), (r.position, r.person_id));
                }
                assert_eq!(
                    log.lookup_identifier(&nomis_id(&y)).await.expect("lookup"),
                    Some(new)
                );
            }
            (Err(BatchError::Items(failures)), Ok(_)) => {
                refused += 1;
                let items: Vec<(usize, bool)> = failures
                    .iter()
                    .map(|f| (f.index, matches!(f.error, Error::Refused(_))))
                    .collect();
                assert_eq!(items, [(1, true)], "{what}: only the acceptance is refused");
                for id in &ids {
                    assert_eq!(
                        log.lookup_submission(SOURCE, id).await.expect("lookup"),
                        None,
                        "{what}: {id} of a refused batch is not recorded"
                    );
                }
                assert_eq!(
                    log.lookup_identifier(&nomis_id(&y)).await.expect("lookup"),
                    None,
                    "{what}: the refused batch's new person claims nothing"
                );
            }
            (result, declined) => panic!(
                "{what}: exactly one of the batch and the decline must be recorded; \
                 batch {result:?}, decline {declined:?}"
            ),
        }
        let mine = ledger.verify(existing).await.expect("verify");
        assert!(mine.ok, "{what}: {mine:?}");
    }
    eprintln!("ledger batch race: {recorded} recorded whole, {refused} refused whole");
    let all = read_all(&log, 1).await;
    assert_eq!(
        positions(&all),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "the log has no gaps"
    );
    let mut seen = HashSet::new();
    for e in &all {
        assert!(seen.insert(&e.event.id), "{} recorded twice", e.event.id);
    }
}

/// A batch at the ledger's limit ([`MAX_BATCH`] = 1,000 events, or fewer where the store
/// cannot append that many at once: JetStream's atomic batch holds 1,000 messages, two per
/// event) about one new person is recorded whole, each event once; one event more is
/// refused whole as invalid, naming the limit, with nothing recorded.
pub async fn ledger_batch_limit_is_the_stores(log: Log) {
    assert_eq!(MAX_BATCH, 1000);
    let ledger = ledger(&log);
    let limit = ledger.batch_limit();
    assert_eq!(limit, MAX_BATCH.min(log.max_batch_events()));
    assert!(
        limit >= 100,
        "a batch limit of {limit} is too small to be useful"
    );
    let x = nomis(17, 1);
    let batch = |prefix: &str, n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| release_date(SOURCE, &format!("{prefix}-{i}"), &x, i as u32))
            .collect()
    };
    match ledger.submit_batch(batch("over", limit + 1)).await {
        Err(BatchError::Whole(Error::Invalid(problems))) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.detail.contains(&limit.to_string())),
                "the refusal names the limit: {problems:?}"
            );
        }
        other => panic!("a batch over the limit: expected Invalid, got {other:?}"),
    }
    assert_eq!(
        head(&log).await,
        0,
        "nothing of the oversized batch is recorded"
    );
    assert_eq!(
        log.lookup_identifier(&nomis_id(&x)).await.expect("lookup"),
        None
    );

    let receipts: Vec<Receipt> = ledger
        .submit_batch(batch("full", limit))
        .await
        .unwrap_or_else(|e| panic!("a batch at the limit is recorded: {e:?}"));
    assert_eq!(receipts.len(), limit);
    let owner = receipts[0].person_id;
    assert!(receipts
        .iter()
        .all(|r| r.person_id == owner && !r.duplicate));
    let all = assert_log_is(&log, limit as u64, "after the full batch").await;
    let mut acked: Vec<u64> = receipts.iter().map(|r| r.position).collect();
    acked.sort_unstable();
    assert_eq!(
        acked,
        positions(&all),
        "every receipt names its own position"
    );
    assert_chain(owner, &all, "the full batch");
}
