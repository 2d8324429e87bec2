//! HMPPS domain events in, end to end over the real binary: `POST /v1/hmpps/domain-events`
//! with `--auth` and the HMPPS partner's token (a release recorded and shown on the
//! journey, its redelivery a duplicate that leaves the head alone, an unknown person and
//! an ignored movement counted in `/metrics` and not recorded, a malformed message refused
//! with pointers, another partner refused), and the JetStream consumer (`serve --nats
//! --hmpps-stream`): messages published while serve is down are recorded exactly once
//! after it starts again, a malformed one lands on the dead-letter subject, and a SIGKILL
//! while messages are unacknowledged loses none and records none twice.
//! Synthetic data only.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use support::auth::{head, serve_with_auth, Caller, Resp, Spec};
use support::{event, minutes_ago, nomis, Client, Server};
use throughcare_nats::hmpps_testkit;
use throughcare_nats::testkit::NatsServer;
use throughcare_synthetic::hmpps;

const HMPPS_SOURCE: &str = "urn:throughcare:hmpps:domain-events";
const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
const ROUTE: &str = "/v1/hmpps/domain-events";

/// A prisoner movement domain event (`released`, `received`), published when it occurred.
fn domain(movement: &str, noms: &str, info: Value, occurred: &str) -> Value {
    hmpps::domain_event(
        &format!("{}.{movement}", hmpps::PRISONER_EVENT),
        noms,
        info,
        occurred,
        occurred,
    )
}

/// The SNS notification SQS delivers, sent now.
fn sns(event: &Value, message_id: &str) -> Value {
    hmpps::sns(event, message_id, &Utc::now().to_rfc3339())
}

fn release(noms: &str, reason: &str, message_id: &str) -> Value {
    sns(
        &domain(
            "released",
            noms,
            json!({ "reason": reason, "prisonId": "WCI", "nomisMovementReasonCode": "CR" }),
            &minutes_ago(30),
        ),
        message_id,
    )
}

async fn post(caller: &Caller, body: &Value) -> Resp {
    caller
        .send(
            "POST",
            ROUTE,
            &[],
            Some(("application/json", serde_json::to_vec(body).unwrap())),
        )
        .await
}

/// A referral and its acceptance at WCI for `noms`, through the seeding partner.
fn referral(noms: &str, n: u64) -> [Value; 2] {
    [
        event(
            "referral.received",
            &format!("hmpps-seed-ref-{n}"),
            &minutes_ago(120),
            json!({"person": {"nomis": noms}, "referral_id": format!("REF-H{n}"),
                   "referrer": {"kind": "PRISON_HEALTHCARE"}, "prison": "WCI",
                   "vulnerabilities": ["MENTAL_HEALTH"]}),
        ),
        event(
            "referral.accepted",
            &format!("hmpps-seed-acc-{n}"),
            &minutes_ago(110),
            json!({"person": {"nomis": noms}, "referral_id": format!("REF-H{n}")}),
        ),
    ]
}

/// The last event recorded about `person`, as `caller` reads it.
async fn last_event(caller: &Caller, person: &str) -> Value {
    let events = caller.get(&format!("/v1/people/{person}/events")).await;
    events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap_or_else(|| panic!("no events: {}", events.brief()))
        .clone()
}

/// The `/metrics` sample `name_and_labels` in `text` is `want`.
fn assert_metric(text: &str, name_and_labels: &str, want: u64) {
    let got: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in /metrics:\n{text}"));
    assert_eq!(got, want, "{name_and_labels}");
}

/// Refers and accepts `noms` through `client` (referral number `n`); the person id.
async fn seed(client: &Client, noms: &str, n: u64) -> String {
    let mut person = String::new();
    for e in referral(noms, n) {
        let r = client.post(&e).await;
        assert_eq!(r.status, 201, "{r:?}");
        person = r.body["person_id"].as_str().unwrap().to_string();
    }
    person
}

/// The `prisoner.released` events recorded about `person`, and the whole answer.
async fn releases_of(client: &Client, person: &str) -> (Vec<Value>, Value) {
    let events = client.get(&format!("/v1/people/{person}/events")).await;
    let released = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "throughcare.prisoner.released.v1")
        .cloned()
        .collect();
    (released, events.body)
}

/// A NATS server in `dir` with the HMPPS stream `stream` on `subject`: the server, its
/// URL, and the data directory for `serve`.
async fn hmpps_nats(dir: &Path, stream: &str, subject: &str) -> (NatsServer, String, PathBuf) {
    let nats = NatsServer::start(&dir.join("nats"));
    let url = nats.url();
    hmpps_testkit::create_stream(&url, stream, &[subject]).await;
    (nats, url, dir.join("data"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_events_over_http_record_known_people_once() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, server) = serve_with_auth(
        dir.path(),
        &[
            Spec::new("seeder", "PARTNER")
                .sources(&[SEED_SOURCE])
                .types(&["throughcare.*"]),
            Spec::new("hmpps-domain-events", "PARTNER")
                .sources(&[HMPPS_SOURCE])
                .types(&[
                    "throughcare.prisoner.*",
                    "throughcare.identifiers.linked.v1",
                ]),
            Spec::new("probation", "PARTNER")
                .sources(&["urn:throughcare:partner:probation"])
                .types(&["throughcare.referral.*"]),
            Spec::new("ig.auditor", "AUDITOR"),
        ],
    );
    let url = server.url.clone();
    let seeder = Caller::bearer(&url, &auth.token("seeder"));
    let hmpps = Caller::bearer(&url, &auth.token("hmpps-domain-events"));
    let auditor = Caller::bearer(&url, &auth.token("ig.auditor"));
    let known = nomis(9101);
    let mut person = String::new();
    for e in referral(&known, 1) {
        let r = seeder.submit(&e).await;
        assert_eq!(r.status, 201, "{}", r.brief());
        person = r.body["person_id"].as_str().unwrap().to_string();
    }

    // A release of a known person is recorded and shows on the journey.
    let message = release(&known, "RELEASED", "0a1b2c3d-0000-4000-8000-00000000e2e1");
    let r = post(&hmpps, &message).await;
    assert_eq!(r.status, 201, "{}", r.brief());
    assert_eq!(r.body["recorded"], true);
    assert_eq!(r.body["duplicate"], false);
    assert_eq!(r.body["person_id"], person.as_str());
    let position = r.body["position"].as_u64().unwrap();
    let journey = auditor
        .get(&format!(
            "/v1/people/{person}/journey?min_position={position}"
        ))
        .await;
    assert_eq!(journey.status, 200, "{}", journey.brief());
    assert_eq!(journey.body["in_custody"], false, "{}", journey.brief());
    let last = last_event(&auditor, &person).await;
    assert_eq!(last["event"]["source"], HMPPS_SOURCE);
    assert_eq!(last["event"]["id"], "0a1b2c3d-0000-4000-8000-00000000e2e1");
    assert_eq!(last["event"]["type"], "throughcare.prisoner.released.v1");

    // The same message again: a duplicate; nothing new is recorded.
    let before = head(&url).await;
    let again = post(&hmpps, &message).await;
    assert_eq!(again.status, 200, "{}", again.brief());
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["position"], position);
    assert_eq!(head(&url).await, before);

    // A recall admission after the release: a return to custody, recall true.
    let recall = sns(
        &domain(
            "received",
            &known,
            json!({ "reason": "ADMISSION", "prisonId": "BNI", "nomisMovementReasonCode": "24" }),
            &minutes_ago(10),
        ),
        "0a1b2c3d-0000-4000-8000-00000000e2e2",
    );
    let r = post(&hmpps, &recall).await;
    assert_eq!(r.status, 201, "{}", r.brief());
    let last = last_event(&auditor, &person).await;
    assert_eq!(
        last["event"]["type"],
        "throughcare.prisoner.returned_to_custody.v1"
    );
    assert_eq!(last["event"]["data"]["recall"], true);
    assert_eq!(last["event"]["data"]["prison"], "BNI");
    // Redelivered after the person's state moved on: still the recorded duplicate.
    let r = post(&hmpps, &recall).await;
    assert_eq!(
        (r.status, &r.body["duplicate"]),
        (200, &json!(true)),
        "{}",
        r.brief()
    );

    // An unknown person: not recorded, counted.
    let before = head(&url).await;
    let stranger = release(
        &nomis(9199),
        "RELEASED",
        "0a1b2c3d-0000-4000-8000-00000000e2e3",
    );
    let r = post(&hmpps, &stranger).await;
    assert_eq!(r.status, 202, "{}", r.brief());
    assert_eq!(
        r.body,
        json!({"recorded": false, "reason": "unknown-person"})
    );
    // A movement the adapter ignores (bare, without the envelope): not recorded, counted.
    let court = domain(
        "released",
        &known,
        json!({ "reason": "SENT_TO_COURT", "prisonId": "BNI" }),
        &minutes_ago(5),
    );
    let r = post(&hmpps, &court).await;
    assert_eq!(r.status, 202, "{}", r.brief());
    assert_eq!(
        r.body,
        json!({"recorded": false, "reason": "sent-to-court"})
    );
    // Malformed: 422 with pointers into the message; nothing recorded.
    let mut bad = domain(
        "released",
        &known,
        json!({ "reason": "RELEASED" }),
        "yesterday",
    );
    bad["additionalInformation"]["nomsNumber"] = json!("not-a-number");
    let r = post(&hmpps, &sns(&bad, "0a1b2c3d-0000-4000-8000-00000000e2e4")).await;
    assert_eq!(r.status, 422, "{}", r.brief());
    let pointers: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/Message/occurredAt",
            "/Message/additionalInformation/nomsNumber",
            "/Message/additionalInformation/prisonId"
        ],
        "{}",
        r.brief()
    );
    // Another partner may not use the route for HMPPS's source.
    let probation = Caller::bearer(&url, &auth.token("probation"));
    let r = post(&probation, &message).await;
    assert_eq!(r.status, 403, "{}", r.brief());
    assert_eq!(head(&url).await, before);

    let metrics = Caller::bearer(&url, &auth.metrics_token)
        .get("/metrics")
        .await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text;
    for (sample, want) in [
        (
            "throughcare_hmpps_ignored_total{reason=\"unknown-person\"}",
            1,
        ),
        (
            "throughcare_hmpps_ignored_total{reason=\"sent-to-court\"}",
            1,
        ),
        ("throughcare_hmpps_messages_total{outcome=\"recorded\"}", 2),
        ("throughcare_hmpps_messages_total{outcome=\"duplicate\"}", 2),
        ("throughcare_hmpps_messages_total{outcome=\"malformed\"}", 1),
    ] {
        assert_metric(&text, sample, want);
    }
    // Nothing in /metrics names a person.
    assert!(!text.contains(&known) && !text.contains(&nomis(9199)));
}

/// Polls `check` until it returns `Some`, for up to `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `within` until the consumer of `stream` on the NATS server at `url` has
/// nothing pending and nothing unacknowledged.
async fn settled(url: &str, stream: &str, within: Duration, what: &str) {
    eventually(
        within,
        &format!("the consumer to settle {what}"),
        || async move {
            match hmpps_testkit::consumer_backlog(url, stream).await {
                Some((0, 0)) => Some(()),
                _ => None,
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_records_once_across_a_restart_and_dead_letters_the_malformed() {
    const STREAM: &str = "HMPPS_DOMAIN_EVENTS";
    const SUBJECT: &str = "hmpps.domain-events";
    let dir = tempfile::tempdir().unwrap();
    let (_nats, url, data) = hmpps_nats(dir.path(), STREAM, SUBJECT).await;
    hmpps_testkit::create_stream(
        &url,
        "HMPPS_DEAD_LETTER",
        &[throughcare_nats::DEAD_LETTER_SUBJECT],
    )
    .await;
    let args = ["--nats", url.as_str(), "--hmpps-stream", STREAM];
    let mut server = Server::start_with(&data, &args);
    let known = nomis(9201);
    let client = Client::new(&server.url);
    let person = seed(&client, &known, 2).await;

    // serve goes down (SIGKILL); meanwhile SQS delivers a release, the same release again,
    // and a malformed message.
    server.kill();
    let message = serde_json::to_vec(&release(
        &known,
        "RELEASED",
        "0a1b2c3d-0000-4000-8000-00000000e2f1",
    ))
    .unwrap();
    hmpps_testkit::publish(&url, SUBJECT, message.clone()).await;
    hmpps_testkit::publish(&url, SUBJECT, message.clone()).await;
    let malformed =
        br#"{"Type": "Notification", "MessageId": "m-bad", "Message": "{not json"}"#.to_vec();
    hmpps_testkit::publish(&url, SUBJECT, malformed.clone()).await;

    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.url);
    settled(&url, STREAM, Duration::from_secs(60), "every message").await;
    let (released, events) = releases_of(&client, &person).await;
    assert_eq!(released.len(), 1, "{events:?}");
    assert_eq!(released[0]["event"]["source"], HMPPS_SOURCE);

    let dead = hmpps_testkit::messages(&url, "HMPPS_DEAD_LETTER").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].payload, malformed);
    let reason = &dead[0].headers[throughcare_nats::DEAD_LETTER_REASON_HEADER];
    assert!(reason.contains("/Message"), "{reason}");
    let metrics = client.get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    for (sample, want) in [
        (
            "throughcare_hmpps_messages_total{outcome=\"dead-lettered\"}",
            1,
        ),
        ("throughcare_hmpps_messages_total{outcome=\"recorded\"}", 1),
        ("throughcare_hmpps_messages_total{outcome=\"duplicate\"}", 1),
    ] {
        assert_metric(&text, sample, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_consumer_has_unacked_messages_loses_none() {
    const STREAM: &str = "HMPPS_KILL";
    const SUBJECT: &str = "hmpps.kill";
    const PEOPLE: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let (_nats, url, data) = hmpps_nats(dir.path(), STREAM, SUBJECT).await;
    let args = ["--nats", url.as_str(), "--hmpps-stream", STREAM];
    let mut server = Server::start_with(&data, &args);
    let client = Client::new(&server.url);
    let mut people = Vec::new();
    for i in 0..PEOPLE {
        let noms = nomis(9300 + i);
        let person = seed(&client, &noms, 100 + i).await;
        people.push((noms, person));
    }
    let seeded = head(&server.url).await;
    // Every release twice (SQS delivers at least once).
    for _round in 0..2 {
        for (i, (noms, _)) in people.iter().enumerate() {
            let id = format!("0a1b2c3d-0000-4000-8000-0000000031{i:02}");
            let body = serde_json::to_vec(&release(noms, "RELEASED", &id)).unwrap();
            hmpps_testkit::publish(&url, SUBJECT, body).await;
        }
    }
    // SIGKILL as soon as the consumer has recorded something, mid-stream.
    let url_now = server.url.clone();
    eventually(Duration::from_secs(60), "a first release recorded", || {
        let url_now = url_now.clone();
        async move { (head(&url_now).await > seeded).then_some(()) }
    })
    .await;
    server.kill();
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.url);
    settled(
        &url,
        STREAM,
        Duration::from_secs(90),
        "every message after the restart",
    )
    .await;
    for (_, person) in &people {
        let (released, events) = releases_of(&client, person).await;
        assert_eq!(released.len(), 1, "person {person}: {events:?}");
    }
    assert_eq!(head(&server.url).await, seeded + PEOPLE);
}
