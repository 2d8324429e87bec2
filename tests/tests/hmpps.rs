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

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use support::auth::{head, AuthFile, Caller, Resp, Spec};
use support::{event, nomis, Client, Server};
use throughcare_nats::hmpps_testkit;
use throughcare_nats::testkit::NatsServer;

const HMPPS_SOURCE: &str = "urn:throughcare:hmpps:domain-events";
const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
const ROUTE: &str = "/v1/hmpps/domain-events";

fn minutes_ago(m: i64) -> String {
    (Utc::now() - chrono::Duration::minutes(m)).to_rfc3339()
}

/// A domain event as HMPPS publishes it.
fn domain(event_type: &str, noms: &str, info: Value, occurred: &str) -> Value {
    let mut additional = json!({ "nomsNumber": noms });
    for (k, v) in info.as_object().unwrap() {
        additional[k] = v.clone();
    }
    json!({
        "version": 1,
        "eventType": format!("prison-offender-events.prisoner.{event_type}"),
        "description": "A prisoner movement (synthetic test data)",
        "occurredAt": occurred,
        "publishedAt": occurred,
        "personReference": { "identifiers": [ { "type": "NOMS", "value": noms } ] },
        "additionalInformation": additional,
    })
}

/// The SNS notification SQS delivers.
fn sns(event: &Value, message_id: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-2:000000000000:synthetic-domain-events",
        "Message": event.to_string(),
        "Timestamp": Utc::now().to_rfc3339(),
        "MessageAttributes": { "eventType": { "Type": "String", "Value": event["eventType"] } },
    })
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

fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_events_over_http_record_known_people_once() {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthFile::write(
        &dir.path().join("auth"),
        &[
            Spec::new("seeder", "PARTNER").sources(&[SEED_SOURCE]),
            Spec::new("hmpps-domain-events", "PARTNER").sources(&[HMPPS_SOURCE]),
            Spec::new("probation", "PARTNER").sources(&["urn:throughcare:partner:probation"]),
            Spec::new("ig.auditor", "AUDITOR"),
        ],
    );
    let server = Server::start_with(&dir.path().join("data"), &["--auth", auth.path_str()]);
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
    let events = auditor.get(&format!("/v1/people/{person}/events")).await;
    let last = events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
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
    let events = auditor.get(&format!("/v1/people/{person}/events")).await;
    let last = events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
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
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_ignored_total{reason=\"unknown-person\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_ignored_total{reason=\"sent-to-court\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"recorded\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"duplicate\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"malformed\"}"
        ),
        1
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_records_once_across_a_restart_and_dead_letters_the_malformed() {
    const STREAM: &str = "HMPPS_DOMAIN_EVENTS";
    const SUBJECT: &str = "hmpps.domain-events";
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let url = nats.url();
    hmpps_testkit::create_stream(&url, STREAM, &[SUBJECT]).await;
    hmpps_testkit::create_stream(
        &url,
        "HMPPS_DEAD_LETTER",
        &[throughcare_nats::DEAD_LETTER_SUBJECT],
    )
    .await;
    let data = dir.path().join("data");
    let args = ["--nats", url.as_str(), "--hmpps-stream", STREAM];
    let mut server = Server::start_with(&data, &args);
    let known = nomis(9201);
    let client = Client::new(&server.url);
    let mut person = String::new();
    for e in referral(&known, 2) {
        let r = client.post(&e).await;
        assert_eq!(r.status, 201, "{r:?}");
        person = r.body["person_id"].as_str().unwrap().to_string();
    }

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
    eventually(
        Duration::from_secs(60),
        "the consumer to settle every message",
        || {
            let url = url.clone();
            async move {
                match hmpps_testkit::consumer_backlog(&url, STREAM).await {
                    Some((0, 0)) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    let events = client.get(&format!("/v1/people/{person}/events")).await;
    let released: Vec<&Value> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "throughcare.prisoner.released.v1")
        .collect();
    assert_eq!(released.len(), 1, "{:?}", events.body);
    assert_eq!(released[0]["event"]["source"], HMPPS_SOURCE);

    let dead = hmpps_testkit::messages(&url, "HMPPS_DEAD_LETTER").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].payload, malformed);
    let reason = &dead[0].headers[throughcare_nats::DEAD_LETTER_REASON_HEADER];
    assert!(reason.contains("/Message"), "{reason}");
    let metrics = client.get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"dead-lettered\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"recorded\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "throughcare_hmpps_messages_total{outcome=\"duplicate\"}"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_the_consumer_has_unacked_messages_loses_none() {
    const STREAM: &str = "HMPPS_KILL";
    const SUBJECT: &str = "hmpps.kill";
    const PEOPLE: u64 = 12;
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let url = nats.url();
    hmpps_testkit::create_stream(&url, STREAM, &[SUBJECT]).await;
    let data = dir.path().join("data");
    let args = ["--nats", url.as_str(), "--hmpps-stream", STREAM];
    let mut server = Server::start_with(&data, &args);
    let client = Client::new(&server.url);
    let mut people = Vec::new();
    for i in 0..PEOPLE {
        let noms = nomis(9300 + i);
        let mut person = String::new();
        for e in referral(&noms, 100 + i) {
            let r = client.post(&e).await;
            assert_eq!(r.status, 201, "{r:?}");
            person = r.body["person_id"].as_str().unwrap().to_string();
        }
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
    eventually(
        Duration::from_secs(90),
        "the consumer to settle every message after the restart",
        || {
            let url = url.clone();
            async move {
                match hmpps_testkit::consumer_backlog(&url, STREAM).await {
                    Some((0, 0)) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    for (_, person) in &people {
        let events = client.get(&format!("/v1/people/{person}/events")).await;
        let released = events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"]["type"] == "throughcare.prisoner.released.v1")
            .count();
        assert_eq!(released, 1, "person {person}: {:?}", events.body);
    }
    assert_eq!(head(&server.url).await, seeded + PEOPLE);
}
