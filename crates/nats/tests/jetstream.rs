//! The JetStream backend against a real nats-server: what it stores and where (events,
//! submission records and identity claims in one stream, written in atomic batches), the
//! version and layout policies, and several processes on one stream: atomic batches
//! under a racing writer, dense positions, one chain per person, recording times that
//! never go back.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream;
use chrono::Utc;
use futures::TryStreamExt;
use serde_json::json;
use support::*;
use throughcare_events::{verify_chain, Hash, Identifier, StoredBody};
use throughcare_ledger::{Error, EventLog, ExpectedVersion, Ledger, NewEvent};
use throughcare_nats::records::SubmissionRecord;
use throughcare_nats::{
    identity_subject, subject_of, submission_subject, JetStreamError, JetStreamLog, HASH_HEADER,
    POSITION_HEADER, PREV_SEQ_HEADER, STREAM,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn creates_one_safe_stream_with_atomic_batches() {
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
    assert_eq!(
        c.subjects,
        [
            "throughcare.person.*",
            "throughcare.submission.*",
            "throughcare.identity.*.*"
        ]
    );
    assert_eq!(c.storage, stream::StorageType::File);
    assert!(c.deny_delete && c.deny_purge && c.allow_direct && c.allow_atomic_publish);
    assert_eq!(c.num_replicas, 1);
    assert_eq!(c.max_age, Duration::ZERO);
    // No KV buckets any more.
    let names: Vec<String> = js.stream_names().try_collect().await.expect("names");
    assert_eq!(names, [STREAM], "one stream");
    // Connecting again finds and accepts what is there.
    connect(&run.server).await;
}

#[tokio::test]
async fn each_event_is_a_record_and_a_message_with_the_stored_body() {
    let run = server();
    let log = connect(&run.server).await;
    let p = person(1);
    let e1 = release_date("m-1", "A1111BC", 1);
    let e2 = release_date("m-2", "A1111BC", 2);
    let x: Identifier = "nomis:A1111BC".parse().unwrap();
    let mut first = request(p, ExpectedVersion::NoStream, &[e1]);
    first.claims = vec![x.clone(), Identifier::Person(p)];
    let a = log.append(first).await.expect("append 1");
    assert_eq!(a[0].position, 1);
    let b = log
        .append(request(p, ExpectedVersion::Exactly(1), &[e2]))
        .await
        .expect("append 2");
    assert_eq!(b[0].position, 2, "positions count events only");
    let events = log.read_person(p, 1).await.expect("read");
    assert_eq!(events.len(), 2);
    verify_chain(p, &events).expect("the chain verifies");

    let js = raw(&run.server).await;
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    // claim(1), record(2), event(3), record(4), event(5): the person's own id needs no claim.
    assert_eq!(stream.info().await.expect("info").state.messages, 5);
    let claim = stream.get_raw_message(1).await.expect("claim");
    assert_eq!(Some(claim.subject.to_string()), identity_subject(&x));
    assert_eq!(&claim.payload[..], p.to_string().as_bytes());
    let mut prev_seq = 0;
    for (e, (record_seq, event_seq)) in events.iter().zip([(2, 3), (4, 5)]) {
        let r = stream.get_raw_message(record_seq).await.expect("record");
        assert_eq!(r.subject.as_str(), submission_subject(SOURCE, &e.event.id));
        let record = SubmissionRecord::decode(&r.subject, &r.payload).expect("record");
        assert_eq!(
            (record.prior.position, record.prior.person, record.seq),
            (e.position, p, event_seq)
        );
        assert_eq!(record.prior.digest, e.event.digest());
        let m = stream.get_raw_message(event_seq).await.expect("message");
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
        assert_eq!(header(POSITION_HEADER), Some(e.position.to_string()));
        assert_eq!(header(PREV_SEQ_HEADER), Some(prev_seq.to_string()));
        assert_eq!(
            header("Nats-Msg-Id"),
            None,
            "no msg-id inside atomic batches"
        );
        prev_seq = event_seq;
    }
    assert_eq!(
        log.read_at(2).await.expect("read_at"),
        Some(events[1].clone())
    );
    assert_eq!(log.read_at(3).await.expect("read_at"), None);
    // Deletes and purges are refused by the server.
    assert!(stream.delete_message(1).await.is_err(), "deny_delete");
    assert!(stream.purge().await.is_err(), "deny_purge");
    assert_eq!(log.head().await.expect("head"), 2);
    // Lookups are gets by subject.
    assert_eq!(log.lookup_identifier(&x).await.unwrap(), Some(p));
    assert_eq!(
        log.lookup_identifier(&Identifier::Person(p)).await.unwrap(),
        Some(p)
    );
    let prior = log.lookup_submission(SOURCE, "m-2").await.unwrap().unwrap();
    assert_eq!((prior.position, prior.person), (2, p));
    // read_person used gets, not consumers.
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
async fn refuses_a_server_without_atomic_batches() {
    for old in ["2.9.10", "2.10.23", "2.11.9"] {
        let url = fake_server(old).await;
        match JetStreamLog::connect(&url).await {
            Err(e @ JetStreamError::TooOld { .. }) => {
                let text = e.to_string();
                assert!(text.contains(old) && text.contains("2.12.0"), "{text}");
                assert!(text.contains("atomic batch"), "the reason is named: {text}");
                // And it reaches callers of the ledger as Unavailable with that text.
                let ledger: Error = e.into();
                assert!(ledger.to_string().contains("2.12.0"));
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
    assert_eq!(log.lookup_identifier(&x).await.unwrap(), Some(a));
    assert_eq!(log.head().await.unwrap(), 1, "nothing of b was recorded");
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
        let log = if t.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
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

#[tokio::test]
async fn refuses_the_previous_layout() {
    // An event stream as the previous version made it: events only, no atomic batches.
    let run = server();
    let js = raw(&run.server).await;
    js.create_stream(stream::Config {
        name: STREAM.into(),
        subjects: vec!["throughcare.person.*".into()],
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .expect("create an old-layout stream");
    match JetStreamLog::connect(&run.server.url()).await {
        Err(e @ JetStreamError::OldLayout { .. }) => {
            let text = e.to_string();
            assert!(!text.contains('\n'), "one line: {text}");
            assert!(
                text.contains("older throughcare") && text.contains("export"),
                "{text}"
            );
        }
        Err(e) => panic!("expected OldLayout, got {e}"),
        Ok(_) => panic!("an old-layout stream was accepted"),
    }
    // Its KV buckets alone are refused too, before anything is created beside them.
    let run = server();
    let js = raw(&run.server).await;
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "THROUGHCARE_SUBMISSIONS".into(),
        ..Default::default()
    })
    .await
    .expect("bucket");
    assert!(matches!(
        JetStreamLog::connect(&run.server.url()).await,
        Err(JetStreamError::OldLayout { .. })
    ));
    assert!(js.get_stream(STREAM).await.is_err(), "nothing was created");
}

#[tokio::test]
async fn an_append_too_large_for_one_batch_is_refused_whole() {
    let run = server();
    let log = connect(&run.server).await;
    let p = person(5);
    let events: Vec<_> = (0..500u32)
        .map(|i| release_date(&format!("big-{i}"), "A1212BC", i))
        .collect();
    // 500 events need 1,000 messages plus the claim: one too many.
    let mut req = request(p, ExpectedVersion::NoStream, &events);
    req.claims = vec!["nomis:A1212BC".parse().unwrap()];
    match log.append(req).await {
        Err(Error::Invalid(problems)) => {
            assert!(problems[0].detail.contains("1000"), "{problems:?}")
        }
        other => panic!("expected Invalid naming the limit, got {other:?}"),
    }
    assert_eq!(log.head().await.unwrap(), 0);
    // 500 events without a claim fit exactly.
    let out = log
        .append(request(p, ExpectedVersion::NoStream, &events))
        .await
        .expect("a full batch");
    assert_eq!(out.last().unwrap().position, 500);
    assert_eq!(log.stats().batches, 1, "one batch");
}

/// Two persons' appends in one `append_all` against another process claiming the same
/// identifier at the same moment: each round ends with all of the batch or none of it.
#[tokio::test(flavor = "multi_thread")]
async fn an_atomic_batch_under_a_racing_writer_is_all_or_nothing() {
    let run = server();
    let (a, b) = (connect(&run.server).await, connect(&run.server).await);
    let (mut whole, mut none) = (0, 0);
    for round in 0..20u64 {
        let (p1, p2, q) = (
            person(1000 + round),
            person(2000 + round),
            person(3000 + round),
        );
        let x: Identifier = format!("nomis:{}", nomis(round as u32)).parse().unwrap();
        let y: Identifier = format!("nhs:{}", nhs(round as u32)).parse().unwrap();
        let mut r1 = request(
            p1,
            ExpectedVersion::NoStream,
            &[release_date(&format!("b1-{round}"), "A0001BC", 1)],
        );
        r1.claims = vec![x.clone()];
        let mut r2 = request(
            p2,
            ExpectedVersion::NoStream,
            &[
                release_date(&format!("b2-{round}"), "A0002BC", 2),
                release_date(&format!("b3-{round}"), "A0002BC", 3),
            ],
        );
        r2.claims = vec![y.clone()];
        let mut racer = request(
            q,
            ExpectedVersion::NoStream,
            &[release_date(&format!("r-{round}"), "A0003BC", 4)],
        );
        racer.claims = vec![y.clone()];
        let (batch, race) = tokio::join!(a.append_all(vec![r1, r2]), b.append(racer));
        match (batch, race) {
            (Ok(out), Err(Error::IdentityConflict { owner, .. })) => {
                whole += 1;
                assert_eq!(owner, p2);
                assert_eq!(out.len(), 2);
                assert_eq!(out[1].len(), 2);
                assert_eq!(a.read_person(p1, 1).await.unwrap().len(), 1);
                assert_eq!(a.read_person(p2, 1).await.unwrap().len(), 2);
                assert!(b.read_person(q, 1).await.unwrap().is_empty());
                assert_eq!(b.lookup_identifier(&x).await.unwrap(), Some(p1));
            }
            (Err(Error::IdentityConflict { owner, person, .. }), Ok(_)) => {
                none += 1;
                assert_eq!((owner, person), (q, p2));
                // Nothing of the batch: not p1's event, not p1's free claim.
                assert!(a.read_person(p1, 1).await.unwrap().is_empty());
                assert!(a.read_person(p2, 1).await.unwrap().is_empty());
                assert_eq!(a.lookup_identifier(&x).await.unwrap(), None);
                assert_eq!(
                    a.lookup_submission(SOURCE, &format!("b1-{round}"))
                        .await
                        .unwrap(),
                    None
                );
            }
            other => panic!("round {round}: neither all nor nothing: {other:?}"),
        }
    }
    eprintln!("racing batches: {whole} recorded whole, {none} refused whole");
    let all: Vec<_> = a.read_all(1).try_collect().await.expect("read_all");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(all.len(), whole * 3 + none);
}

/// Two logs (two processes) appending to shared persons with `Any`, one of them stamping
/// recording times ten seconds in the past: positions stay dense, each person has one
/// chain through both writers, and `recorded_at` never goes back along the positions.
#[tokio::test(flavor = "multi_thread")]
async fn two_writers_keep_positions_dense_chains_whole_and_time_monotonic() {
    let run = server();
    let (a, b) = (connect(&run.server).await, connect(&run.server).await);
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let log = if t.is_multiple_of(2) {
            a.clone()
        } else {
            b.clone()
        };
        let skew = if t.is_multiple_of(2) {
            chrono::Duration::zero()
        } else {
            chrono::Duration::seconds(10)
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..25u32 {
                let p = person(u64::from(i % 3));
                let mut req = request(
                    p,
                    ExpectedVersion::Any,
                    &[release_date(&format!("w-{t}-{i}"), "A4242BC", i)],
                );
                req.events = req
                    .events
                    .into_iter()
                    .map(|e| NewEvent {
                        event: e.event,
                        recorded_at: Utc::now() - skew,
                    })
                    .collect();
                log.append(req)
                    .await
                    .unwrap_or_else(|e| panic!("Any must not fail: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let all: Vec<_> = b.read_all(1).try_collect().await.expect("read_all");
    assert_eq!(all.len(), 200);
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>(),
        "dense positions"
    );
    for w in all.windows(2) {
        assert!(
            w[0].recorded_at <= w[1].recorded_at,
            "recorded_at goes back from position {} to {}",
            w[0].position,
            w[1].position
        );
    }
    let mut per_person: HashMap<_, usize> = HashMap::new();
    for e in &all {
        *per_person.entry(e.person_id).or_default() += 1;
    }
    for (p, n) in per_person {
        let history = a.read_person(p, 1).await.unwrap();
        assert_eq!(history.len(), n);
        verify_chain(p, &history).expect("one chain through both writers");
        assert_eq!(b.read_person(p, 1).await.unwrap(), history);
    }
    eprintln!("writer a {:?}, writer b {:?}", a.stats(), b.stats());
}

/// The hole that rules out pipelining batches on expected sequences alone: writer `a`'s
/// batch is refused because writer `b` appended, and `b`'s messages end exactly where
/// `a`'s would have (here every append of both is one event, two messages, so they always
/// do). Sixteen submitters on `a` (group commit: several jobs per batch, each with an
/// exact expected version) race eight on `b` touching the same persons. Nothing may be
/// stored on an assumption that a refused batch made: positions are dense, each person's
/// chain runs through both writers with every version taken once, every submission record
/// sits right before the event it names, and `a` did see conflicts (else the race did not
/// happen and the test showed nothing).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_batch_leaves_no_later_batch_built_on_it() {
    let run = server();
    let (a, b) = (connect(&run.server).await, connect(&run.server).await);
    let persons: Vec<_> = (0..8u64).map(|n| person(500 + n)).collect();
    let mut tasks = Vec::new();
    for t in 0..24u32 {
        let (log, writer) = if t < 16 {
            (a.clone(), "a")
        } else {
            (b.clone(), "b")
        };
        let persons = persons.clone();
        tasks.push(tokio::spawn(async move {
            let mut recorded = Vec::new();
            for i in 0..10u32 {
                let p = persons[((t + i) % 8) as usize];
                let id = format!("hole-{writer}-{t}-{i}");
                // An exact expected version read just before: a batch planned on a stale
                // version must be refused, never stored at a wrong position. On a
                // conflict, read again and retry (as the ledger does).
                loop {
                    // A person's version is the position of their last event.
                    let history = log.read_person(p, 1).await.expect("read");
                    let expected = match history.last() {
                        None => ExpectedVersion::NoStream,
                        Some(e) => ExpectedVersion::Exactly(e.position),
                    };
                    let req = request(p, expected, &[release_date(&id, "A4243BC", i)]);
                    match log.append(req).await {
                        Ok(out) => {
                            assert_eq!(out.len(), 1);
                            assert_eq!(out[0].person, p);
                            recorded.push((id, out[0].position));
                            break;
                        }
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{id}: {e}"),
                    }
                }
            }
            recorded
        }));
    }
    let mut recorded = Vec::new();
    for t in tasks {
        recorded.extend(t.await.expect("task"));
    }
    let all: Vec<_> = a.read_all(1).try_collect().await.expect("read_all");
    assert_eq!(
        all.len(),
        recorded.len(),
        "every acknowledged append, nothing else"
    );
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "dense positions"
    );
    let mut at: HashMap<u64, String> = HashMap::new();
    for e in &all {
        at.insert(e.position, e.event.id.clone());
    }
    for (id, position) in &recorded {
        assert_eq!(at.get(position), Some(id), "{id} is where its ack said");
    }
    for p in &persons {
        let history = a.read_person(*p, 1).await.unwrap();
        verify_chain(*p, &history).expect("one chain through both writers");
        assert_eq!(b.read_person(*p, 1).await.unwrap(), history);
    }
    let stream = raw(&run.server)
        .await
        .get_stream(STREAM)
        .await
        .expect("stream");
    for e in &all {
        let r = stream
            .get_last_raw_message_by_subject(&submission_subject(SOURCE, &e.event.id))
            .await
            .expect("a record per event");
        let record = SubmissionRecord::decode(&r.subject, &r.payload).expect("record");
        assert_eq!(
            (record.prior.position, record.prior.person),
            (e.position, e.person_id)
        );
        assert_eq!(record.seq, r.sequence + 1, "the event follows its record");
        let m = stream.get_raw_message(record.seq).await.expect("event");
        assert_eq!(m.subject.as_str(), subject_of(e.person_id));
        assert_eq!(Hash::of(&m.payload), e.hash);
    }
    let (sa, sb) = (a.stats(), b.stats());
    eprintln!("writer a {sa:?}, writer b {sb:?}, {} recorded", all.len());
    assert!(
        sa.conflicts + sb.conflicts > 0,
        "the writers never collided"
    );
    assert!(
        sa.batches < sa.messages / 2,
        "writer a grouped several appends per batch"
    );
}
