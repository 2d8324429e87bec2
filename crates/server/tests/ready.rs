//! A failed projector is seen: the projector follows the log through a wrapper that can
//! break its subscription at a chosen position (a fault in the middle of a chunk: the
//! events before it in the same chunk are dropped with it). While it is broken `/readyz`
//! answers 503 problem+json with the reason and `Retry-After`, `/metrics` counts the
//! restarts; once the fault is gone the supervised projector restarts from its checkpoint,
//! `/readyz` answers 200 again, and the read models equal a rebuild from the log.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures::stream::{BoxStream, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use throughcare_events::{validate_event, Event, Identifier, PersonId, RecordedEvent};
use throughcare_ledger::{
    AppendRequest, Appended, EmbeddedLog, Error, EventLog, Ledger, PriorSubmission,
};
use throughcare_projector::{Backoff, Projector, ReadModels};
use throughcare_server::{app, AppState};
use throughcare_synthetic::{cloudevent, data, person, with_person, SOURCE};
use tower::ServiceExt;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The log as the projector sees it: the real one, except that while `broken` the
/// subscription fails at `fail_at` instead of delivering that event.
struct FlakyLog {
    inner: Arc<dyn EventLog>,
    broken: Arc<AtomicBool>,
    fail_at: Arc<AtomicU64>,
}

// `EventLog` is an `async_trait`; this crate does not depend on async-trait, so the
// methods are written out in the shape the macro gives them.
impl EventLog for FlakyLog {
    fn append<'a, 'async_trait>(
        &'a self,
        request: AppendRequest,
    ) -> Boxed<'async_trait, Result<Vec<Appended>, Error>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.append(request)
    }

    fn append_all<'a, 'async_trait>(
        &'a self,
        requests: Vec<AppendRequest>,
    ) -> Boxed<'async_trait, Result<Vec<Vec<Appended>>, Error>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.append_all(requests)
    }

    fn read_person<'a, 'async_trait>(
        &'a self,
        person: PersonId,
        from: u64,
    ) -> Boxed<'async_trait, Result<Vec<RecordedEvent>, Error>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.read_person(person, from)
    }

    fn read_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        self.inner.read_all(from)
    }

    fn subscribe(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        let (broken, fail_at) = (self.broken.clone(), self.fail_at.clone());
        self.inner
            .subscribe(from)
            .map(move |item| match item {
                Ok(e)
                    if broken.load(Ordering::SeqCst)
                        && e.position == fail_at.load(Ordering::SeqCst) =>
                {
                    Err(Error::Corrupt(format!(
                        "injected fault at position {}",
                        e.position
                    )))
                }
                other => other,
            })
            .boxed()
    }

    fn head<'a, 'async_trait>(&'a self) -> Boxed<'async_trait, Result<u64, Error>>
    where
        'a: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.head()
    }

    fn lookup_identifier<'a, 'b, 'async_trait>(
        &'a self,
        identifier: &'b Identifier,
    ) -> Boxed<'async_trait, Result<Option<PersonId>, Error>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.lookup_identifier(identifier)
    }

    fn lookup_submission<'a, 'b, 'c, 'async_trait>(
        &'a self,
        source: &'b str,
        id: &'c str,
    ) -> Boxed<'async_trait, Result<Option<PriorSubmission>, Error>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        self.inner.lookup_submission(source, id)
    }
}

fn event(id: &str, kind: &str, data: Value) -> Event {
    let now = chrono::Utc::now();
    let time = throughcare_synthetic::rfc3339(now - chrono::Duration::minutes(5));
    validate_event(&cloudevent(SOURCE, id, kind, &time, data), now)
        .unwrap_or_else(|p| panic!("test event {id} is invalid: {p:?}"))
}

/// A referral for synthetic person `seed` and facts about them: `n` events in all.
fn events_about(seed: u64, n: usize) -> Vec<Event> {
    let who = person(seed);
    let mut out = vec![event(
        &format!("pf-{seed}-0"),
        "referral.received",
        with_person(
            data::referral_received(&format!("REF-PF-{seed}"), "PROBATION", "WCI"),
            who.clone(),
        ),
    )];
    for i in 1..n {
        out.push(event(
            &format!("pf-{seed}-{i}"),
            "release_date.set",
            with_person(
                data::release_date_set(&format!("2027-02-{:02}", i % 28 + 1), "CRD"),
                who.clone(),
            ),
        ));
    }
    out
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, String, Option<String>, Vec<u8>) {
    let reply = app(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = reply.status();
    let header_of = |name| {
        reply
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_string())
    };
    let content_type = header_of(header::CONTENT_TYPE).unwrap_or_default();
    let retry_after = header_of(header::RETRY_AFTER);
    let body = reply
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, content_type, retry_after, body)
}

/// Polls `/readyz` until it answers `want`, returning the last body.
async fn readyz_becomes(state: &AppState, want: StatusCode, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _, body) = get(state, "/readyz").await;
        if status == want {
            return serde_json::from_slice(&body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /readyz still answers {status}: {}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}

/// Every journey of the read models, as JSON, in person order.
fn journeys(models: &ReadModels) -> Vec<Value> {
    models
        .journeys()
        .map(|j| serde_json::to_value(j.expect("a journey")).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_projector_makes_readyz_503_then_recovers_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("ledger")).unwrap();
    let access = Arc::new(log.access_log());
    let log: Arc<dyn EventLog> = Arc::new(log);
    let (broken, fail_at) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let flaky: Arc<dyn EventLog> = Arc::new(FlakyLog {
        inner: log.clone(),
        broken: broken.clone(),
        fail_at: fail_at.clone(),
    });
    let projector = Projector::open(&dir.path().join("readmodels")).unwrap();
    let models = projector.read_models();
    let backoff = Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    let task = tokio::spawn(async move { projector.run_supervised(flaky, backoff).await });
    let ledger = Ledger::with_system_clock(log.clone());
    let state = AppState::new(ledger.clone(), models.clone(), access);

    // Running: events are folded and /readyz is ready.
    ledger
        .submit_batch(events_about(1, 3))
        .await
        .expect("the first batch");
    assert!(models.wait_for(3, Duration::from_secs(10)).await);
    let ready = readyz_becomes(&state, StatusCode::OK, "before the fault").await;
    assert_eq!(ready["ready"], true);
    assert_eq!(models.health().restarts, 0);

    // The fault: the subscription breaks at the 3rd event of the next batch, which is
    // delivered with the two before it, so the chunk fails in the middle.
    fail_at.store(6, Ordering::SeqCst);
    broken.store(true, Ordering::SeqCst);
    ledger
        .submit_batch(events_about(2, 5))
        .await
        .expect("the second batch");
    assert_eq!(log.head().await.unwrap(), 8);
    let down = readyz_becomes(&state, StatusCode::SERVICE_UNAVAILABLE, "during the fault").await;
    let (status, content_type, retry_after, _) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert_eq!(down["status"], 503);
    assert_eq!(down["ready"], false);
    assert_eq!(down["projector"], "down");
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("injected fault at position 6"),
        "{down}"
    );
    assert!(
        down["detail"].as_str().unwrap().contains("projector"),
        "{down}"
    );
    // It keeps restarting (with backoff) and stays down while the fault lasts, and none
    // of the chunk is applied: not even the events before the fault.
    let deadline = Instant::now() + Duration::from_secs(30);
    while models.health().restarts < 3 {
        assert!(Instant::now() < deadline, "the projector is not restarted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!models.health().is_up());
    assert!(
        models.checkpoint() <= 5,
        "the failed chunk was applied in part"
    );
    let (status, _, _, body) = get(&state, "/readyz").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "still down while broken"
    );
    let restarts: u64 = serde_json::from_slice::<Value>(&body).unwrap()["restarts"]
        .as_u64()
        .unwrap();
    assert!(restarts >= 3, "restarts reported: {restarts}");
    let (_, _, _, text) = get(&state, "/metrics").await;
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric(&text, "throughcare_projector_up"), 0);
    assert!(metric(&text, "throughcare_projector_restarts_total") >= 3);

    // The fault goes: the next restart folds everything and /readyz is ready again.
    broken.store(false, Ordering::SeqCst);
    let ready = readyz_becomes(&state, StatusCode::OK, "after the fault").await;
    assert_eq!(ready["checkpoint"], 8, "{ready}");
    assert!(models.health().is_up());
    let (_, _, _, text) = get(&state, "/metrics").await;
    let text = String::from_utf8(text).unwrap();
    assert_eq!(metric(&text, "throughcare_projector_up"), 1);

    // And it keeps following the log.
    ledger
        .submit_batch(events_about(3, 2))
        .await
        .expect("the third batch");
    assert!(models.wait_for(10, Duration::from_secs(10)).await);

    let rebuilt = Projector::open(&dir.path().join("rebuilt")).unwrap();
    assert_eq!(rebuilt.rebuild(log.as_ref()).await.unwrap(), 10);
    let live = journeys(&models);
    assert_eq!(live.len(), 3, "three persons");
    assert_eq!(
        live,
        journeys(&rebuilt.read_models()),
        "the read models equal a rebuild"
    );
    assert_eq!(
        models.episode_facts(None).unwrap().len(),
        rebuilt.read_models().episode_facts(None).unwrap().len()
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_a_service_beside_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("ledger")).unwrap();
    let access = Arc::new(log.access_log());
    let log: Arc<dyn EventLog> = Arc::new(log);
    let projector = Projector::open(&dir.path().join("readmodels")).unwrap();
    let models = projector.read_models();
    let follow = log.clone();
    let task = tokio::spawn(async move { projector.run(follow).await });
    let ledger = Ledger::with_system_clock(log.clone());
    let state = AppState::new(ledger, models, access);
    readyz_becomes(&state, StatusCode::OK, "no services expected").await;

    // The NATS submit service is expected from its first report: down until subscribed.
    state.services.set("nats-submit", false);
    let down = readyz_becomes(&state, StatusCode::SERVICE_UNAVAILABLE, "not subscribed").await;
    assert_eq!(down["services_down"], serde_json::json!(["nats-submit"]));
    assert_eq!(down["ready"], false);
    state.services.set("nats-submit", true);
    readyz_becomes(&state, StatusCode::OK, "subscribed").await;

    // A consumer that stopped is seen until its restart says it runs again.
    state.services.set("hmpps-consumer", false);
    let down = readyz_becomes(&state, StatusCode::SERVICE_UNAVAILABLE, "consumer down").await;
    assert_eq!(down["services_down"], serde_json::json!(["hmpps-consumer"]));
    state.services.set("hmpps-consumer", true);
    readyz_becomes(&state, StatusCode::OK, "consumer restarted").await;
    task.abort();
}
