//! The JetStream backend against a real nats-server: what it stores and where, the
//! version policy, several processes on one server, and every crash window between the KV
//! intent and the publish.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream;
use futures::TryStreamExt;
use serde_json::json;
use support::*;
use throughcare_events::{verify_chain, Hash, Identifier, StoredBody};
use throughcare_ledger::{Error, EventLog, ExpectedVersion, Ledger};
use throughcare_nats::records::{Intent, Submission};
use throughcare_nats::{
    identity_key, subject_of, submission_key, JetStreamError, JetStreamLog, HASH_HEADER,
    IDENTITY_BUCKET, PREV_SEQ_HEADER, STREAM, SUBMISSIONS_BUCKET,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn creates_a_safe_stream_and_buckets() {
    let run = server();
    let log = connect(&run.server).await;
    assert_eq!(log.server_version(), "2.15.1", "the pinned server runs");
    let js = raw(&run.server).await;
    let info = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .cached_info()
        .clone();
    let c = &info.config;
    assert_eq!(c.subjects, ["throughcare.person.*"]);
    assert_eq!(c.storage, stream::StorageType::File);
    assert!(c.deny_delete && c.deny_purge && c.allow_direct);
    assert_eq!(c.num_replicas, 1);
    assert_eq!(c.max_age, Duration::ZERO);
    for bucket in [IDENTITY_BUCKET, SUBMISSIONS_BUCKET] {
        let s = js.get_stream(format!("KV_{bucket}")).await.expect("bucket");
        let c = &s.cached_info().config;
        assert!(c.deny_delete && c.deny_purge && !c.allow_rollup, "{bucket}");
        assert!(!c.allow_direct, "{bucket}: reads go to the leader");
        assert_eq!(c.storage, stream::StorageType::File);
    }
    // Connecting again finds and accepts what is there.
    connect(&run.server).await;
}

#[tokio::test]
async fn each_event_is_one_message_with_the_stored_body() {
    let run = server();
    let log = connect(&run.server).await;
    let p = person(1);
    let e1 = release_date("m-1", "A1111BC", 1);
    let e2 = release_date("m-2", "A1111BC", 2);
    log.append(request(p, ExpectedVersion::NoStream, &[e1]))
        .await
        .expect("append 1");
    log.append(request(p, ExpectedVersion::Exactly(1), &[e2]))
        .await
        .expect("append 2");
    let events = log.read_person(p, 1).await.expect("read");
    assert_eq!(events.len(), 2);
    verify_chain(p, &events).expect("the chain verifies");

    let js = raw(&run.server).await;
    let stream = js.get_stream(STREAM).await.expect("stream");
    for (i, e) in events.iter().enumerate() {
        let m = stream.get_raw_message(e.position).await.expect("message");
        assert_eq!(m.subject.as_str(), subject_of(p));
        let body = StoredBody::encode(e.person_id, e.recorded_at, e.prev, &e.event);
        assert_eq!(
            &m.payload[..],
            &body[..],
            "the payload is exactly the stored body"
        );
        assert_eq!(Hash::of(&m.payload), e.hash);
        let header = |name: &str| m.headers.get(name).map(|v| v.as_str().to_string());
        assert_eq!(header(HASH_HEADER), Some(e.hash.to_hex()));
        assert_eq!(
            header("Nats-Msg-Id"),
            Some(submission_key(SOURCE, &e.event.id))
        );
        let prev = if i == 0 { 0 } else { events[i - 1].position };
        assert_eq!(header(PREV_SEQ_HEADER), Some(prev.to_string()));
    }
    // Deletes and purges are refused by the server.
    assert!(stream.delete_message(1).await.is_err(), "deny_delete");
    assert!(stream.purge().await.is_err(), "deny_purge");
    assert_eq!(log.head().await.expect("head"), 2);
    // read_person used gets, not consumers.
    let mut stream = stream;
    assert_eq!(stream.info().await.expect("info").state.consumer_count, 0);
}

/// A fake NATS server that announces `version` and answers PING, to check the refusal.
async fn fake_server(version: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let info = json!({
                    "server_id": "FAKE", "server_name": "fake", "version": version,
                    "proto": 1, "headers": true, "max_payload": 1_048_576, "jetstream": true,
                });
                let _ = w.write_all(format!("INFO {info}\r\n").as_bytes()).await;
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("PING") {
                        let _ = w.write_all(b"PONG\r\n").await;
                    }
                }
            });
        }
    });
    format!("nats://{addr}")
}

#[tokio::test]
async fn refuses_a_server_older_than_2_10_23() {
    for old in ["2.9.10", "2.10.22"] {
        let url = fake_server(old).await;
        match JetStreamLog::connect(&url).await {
            Err(e @ JetStreamError::TooOld { .. }) => {
                let text = e.to_string();
                assert!(text.contains(old) && text.contains("2.10.23"), "{text}");
                assert!(text.contains("crash"), "the reason is named: {text}");
                // And it reaches callers of the ledger as Unavailable with that text.
                let ledger: Error = e.into();
                assert!(ledger.to_string().contains("2.10.23"));
            }
            Err(e) => panic!("{old}: expected TooOld, got {e}"),
            Ok(_) => panic!("{old}: an old server was accepted"),
        }
    }
}

#[tokio::test]
async fn refuses_an_existing_stream_that_could_lose_events() {
    let run = server();
    let js = raw(&run.server).await;
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["throughcare.person.*".into()],
        max_age: Duration::from_secs(3600),
        ..Default::default()
    })
    .await
    .expect("create an unsafe stream");
    match JetStreamLog::connect(&run.server.url()).await {
        Err(JetStreamError::UnsafeStream { problems, .. }) => {
            assert!(problems.contains("deny_delete"), "{problems}");
            assert!(problems.contains("limits"), "{problems}");
        }
        Err(e) => panic!("expected UnsafeStream, got {e}"),
        Ok(_) => panic!("an unsafe stream was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_record_one_submission_once() {
    let run = server();
    let (a, b) = (connect(&run.server).await, connect(&run.server).await);
    let p = person(1);
    for round in 0..10u32 {
        let e = release_date(&format!("race-{round}"), "A2222BC", round);
        let (ra, rb) = tokio::join!(
            a.append(request(p, ExpectedVersion::Any, std::slice::from_ref(&e))),
            b.append(request(p, ExpectedVersion::Any, std::slice::from_ref(&e))),
        );
        let (ra, rb) = (ra.expect("a"), rb.expect("b"));
        assert_eq!(ra[0].position, rb[0].position, "both see one position");
        assert!(
            ra[0].duplicate != rb[0].duplicate,
            "exactly one of them recorded it: {ra:?} {rb:?}"
        );
    }
    let all: Vec<_> = a.read_all(1).try_collect().await.expect("read_all");
    assert_eq!(all.len(), 10, "each submission recorded once");
    verify_chain(p, &a.read_person(p, 1).await.expect("read")).expect("chain");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_create_one_person_per_identifier() {
    let run = server();
    let logs = [connect(&run.server).await, connect(&run.server).await];
    let ledgers: Vec<Ledger> = logs
        .iter()
        .map(|l| Ledger::with_system_clock(Arc::new(l.clone())))
        .collect();
    for n in 0..8u32 {
        let who = json!({ "nomis": nomis(n), "nhs_number": nhs(n) });
        let e1 = referral(&format!("p{n}-a"), who.clone(), &format!("REF-{n}-A"));
        let e2 = referral(&format!("p{n}-b"), who, &format!("REF-{n}-B"));
        let (r1, r2) = tokio::join!(ledgers[0].submit(e1), ledgers[1].submit(e2));
        let (r1, r2) = (r1.expect("submit 1"), r2.expect("submit 2"));
        assert_eq!(r1.person_id, r2.person_id, "one person for {}", nomis(n));
        let id: Identifier = format!("nhs:{}", nhs(n)).parse().unwrap();
        assert_eq!(
            logs[1].lookup_identifier(&id).await.unwrap(),
            Some(r1.person_id)
        );
        let history = logs[0].read_person(r1.person_id, 1).await.unwrap();
        assert_eq!(history.len(), 2);
        verify_chain(r1.person_id, &history).expect("chain");
    }
}

/// Puts a pending intent into the submissions bucket as a writer that then crashed would
/// have left it; returns the payload.
async fn leave_intent(
    js: &async_nats::jetstream::Context,
    event: &throughcare_events::Event,
    person: throughcare_events::PersonId,
    expected: u64,
    prev: Hash,
) -> Vec<u8> {
    let payload = StoredBody::encode(person, now(), prev, event);
    let intent = Submission::Pending(Intent {
        person,
        digest: event.digest(),
        expected,
        hash: Hash::of(&payload),
        payload: payload.clone(),
    });
    let kv = js.get_key_value(SUBMISSIONS_BUCKET).await.expect("bucket");
    kv.create(
        submission_key(&event.source, &event.id),
        intent.encode().into(),
    )
    .await
    .expect("create intent");
    payload
}

#[tokio::test]
async fn a_crash_after_the_intent_is_rolled_forward() {
    let run = server();
    let log = connect(&run.server).await;
    let js = raw(&run.server).await;
    let p = person(7);
    let e = release_date("crash-1", "A3333BC", 3);
    // The writer wrote its intent and died before publishing.
    leave_intent(&js, &e, p, 0, Hash::ZERO).await;
    assert_eq!(log.head().await.unwrap(), 0, "nothing published yet");
    // The partner retries: the lookup finishes the append.
    let prior = log
        .lookup_submission(SOURCE, "crash-1")
        .await
        .unwrap()
        .expect("rolled forward");
    assert_eq!((prior.position, prior.person), (1, p));
    assert_eq!(prior.digest, e.digest());
    let history = log.read_person(p, 1).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].event, e);
    // A retry through append is now a duplicate, and nothing is added.
    let again = log
        .append(request(p, ExpectedVersion::NoStream, &[e]))
        .await
        .unwrap();
    assert!(again[0].duplicate && again[0].position == 1);
    assert_eq!(log.head().await.unwrap(), 1);
}

#[tokio::test]
async fn a_crash_after_the_publish_is_found_not_repeated() {
    let run = server();
    let log = connect(&run.server).await;
    let js = raw(&run.server).await;
    let p = person(8);
    let e = release_date("crash-2", "A4444BC", 4);
    let key = submission_key(SOURCE, "crash-2");
    let payload = leave_intent(&js, &e, p, 0, Hash::ZERO).await;
    // ... published, and died before recording where.
    let msg = async_nats::jetstream::message::PublishMessage::build()
        .payload(payload.clone().into())
        .message_id(&key)
        .expected_last_subject_sequence(0)
        .header(HASH_HEADER, Hash::of(&payload).to_hex().as_str())
        .header(PREV_SEQ_HEADER, "0");
    let ack = js
        .send_publish(subject_of(p), msg)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.sequence, 1);
    let prior = log
        .lookup_submission(SOURCE, "crash-2")
        .await
        .unwrap()
        .expect("found");
    assert_eq!(prior.position, 1);
    assert_eq!(log.head().await.unwrap(), 1, "not published twice");
    // The record is now final.
    let kv = js.get_key_value(SUBMISSIONS_BUCKET).await.unwrap();
    let v = kv.get(&key).await.unwrap().expect("record");
    assert!(matches!(
        Submission::decode(&key, &v).unwrap(),
        Submission::Recorded(r) if r.position == 1
    ));
}

#[tokio::test]
async fn an_intent_overtaken_by_another_event_is_dead() {
    let run = server();
    let log = connect(&run.server).await;
    let js = raw(&run.server).await;
    let p = person(9);
    let e = release_date("crash-3", "A5555BC", 5);
    // The writer decided at version 0 and died; meanwhile another event took version 1.
    leave_intent(&js, &e, p, 0, Hash::ZERO).await;
    log.append(request(
        p,
        ExpectedVersion::NoStream,
        &[release_date("other", "A5555BC", 6)],
    ))
    .await
    .unwrap();
    assert_eq!(
        log.lookup_submission(SOURCE, "crash-3").await.unwrap(),
        None,
        "an intent that can never be published is not a recording"
    );
    // The partner's retry is decided afresh and recorded once.
    let out = log
        .append(request(
            p,
            ExpectedVersion::Exactly(1),
            std::slice::from_ref(&e),
        ))
        .await
        .unwrap();
    assert_eq!((out[0].position, out[0].duplicate), (2, false));
    let history = log.read_person(p, 1).await.unwrap();
    assert_eq!(history.len(), 2);
    verify_chain(p, &history).expect("chain");
    let again = log
        .append(request(p, ExpectedVersion::Exactly(1), &[e]))
        .await
        .unwrap();
    assert!(again[0].duplicate && again[0].position == 2);
}

#[tokio::test]
async fn a_taken_identifier_claims_nothing_else() {
    let run = server();
    let log = connect(&run.server).await;
    let (a, b) = (person(1), person(2));
    let x: Identifier = "crn:X100001".parse().unwrap();
    let free: Identifier = format!("nomis:{}", nomis(42)).parse().unwrap();
    let mut req = request(
        a,
        ExpectedVersion::NoStream,
        &[release_date("t-1", "A6666BC", 1)],
    );
    req.claims = vec![x.clone()];
    log.append(req).await.unwrap();
    let mut req = request(
        b,
        ExpectedVersion::NoStream,
        &[release_date("t-2", "A6666BC", 2)],
    );
    req.claims = vec![free.clone(), x.clone(), Identifier::Person(b)];
    match log.append(req).await {
        Err(Error::IdentityConflict { owner, person, .. }) => {
            assert_eq!((owner, person), (a, b));
        }
        other => panic!("expected IdentityConflict, got {other:?}"),
    }
    assert_eq!(log.lookup_identifier(&free).await.unwrap(), None);
    assert_eq!(
        log.lookup_identifier(&Identifier::Person(b)).await.unwrap(),
        None
    );
    let js = raw(&run.server).await;
    let kv = js.get_key_value(IDENTITY_BUCKET).await.unwrap();
    assert_eq!(
        kv.get(identity_key(&x)).await.unwrap().as_deref(),
        Some(a.to_string().as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_survives_a_server_restart() {
    let mut run = server();
    let log = connect(&run.server).await;
    let p = person(3);
    let mut sub = log.subscribe(1);
    for i in 0..5u32 {
        log.append(request(
            p,
            ExpectedVersion::Any,
            &[release_date(&format!("r-{i}"), "A7777BC", i)],
        ))
        .await
        .unwrap();
    }
    run.server.restart();
    for i in 5..10u32 {
        log.append(request(
            p,
            ExpectedVersion::Any,
            &[release_date(&format!("r-{i}"), "A7777BC", i)],
        ))
        .await
        .unwrap();
    }
    for want in 1..=10u64 {
        let e = tokio::time::timeout(Duration::from_secs(60), futures::StreamExt::next(&mut sub))
            .await
            .expect("an event within a minute")
            .expect("the subscription goes on")
            .expect("no error");
        assert_eq!(e.position, want);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn any_follows_concurrent_writers_without_conflicts() {
    let run = server();
    let (a, b) = (connect(&run.server).await, connect(&run.server).await);
    let p = person(4);
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let log = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..15u32 {
                let e = release_date(&format!("any-{t}-{i}"), "A8888BC", i);
                log.append(request(p, ExpectedVersion::Any, &[e]))
                    .await
                    .unwrap_or_else(|e| panic!("Any must not fail: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let history = a.read_person(p, 1).await.unwrap();
    assert_eq!(history.len(), 120);
    verify_chain(p, &history).expect("one chain through all writers");
    assert_eq!(b.read_person(p, 1).await.unwrap(), history);
}
