//! The JetStream access log against a real nats-server: the shared access-log conformance
//! checks, then what only JetStream has: the stream's safety settings and message layout,
//! several writers (connections, processes, cluster nodes) sharing one chain, a server
//! restart, and `verify` catching entries published around the log.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{message::PublishMessage, stream};
use support::{config, connect, raw, server, stream_info, Running};
use tempfile::TempDir;
use throughcare_events::{Hash, PersonId};
use throughcare_ledger::access::conformance::{self, person, record, Log};
use throughcare_ledger::{AccessEntry, AccessFilter, AccessLog};
use throughcare_nats::testkit::NatsCluster;
use throughcare_nats::{
    access_subject, JetStreamAccessLog, JetStreamConfig, ACCESS_STREAM, ACCESS_SUBJECT_PREFIX,
};

/// An access log with `config`: publishing groups as atomic batches when `batched`, else
/// one entry at a time, as on a server without atomic batches.
async fn open_with(config: JetStreamConfig, batched: bool) -> JetStreamAccessLog {
    let url = config.url.clone();
    let log = if batched {
        JetStreamAccessLog::connect_with(config).await
    } else {
        JetStreamAccessLog::connect_one_at_a_time(config).await
    };
    log.unwrap_or_else(|e| panic!("open the access log on {url}: {e}"))
}

/// Appends a journey read by `who` (of `person`, if any) at `at`; the entry.
async fn put(
    log: &JetStreamAccessLog,
    who: &str,
    person: Option<PersonId>,
    at: chrono::DateTime<chrono::Utc>,
) -> AccessEntry {
    log.append(record(who, person, at)).await.expect("append")
}

async fn open(run: &Running) -> JetStreamAccessLog {
    open_with(config(&run.server), true).await
}

async fn open_unbatched(run: &Running) -> JetStreamAccessLog {
    open_with(config(&run.server), false).await
}

/// The shared conformance checks, each on a log on a server of its own, so every check
/// starts from an empty stream.
async fn conformance_on_fresh_servers(batched: bool) {
    let servers = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let servers = servers.clone();
        async move {
            let run = server();
            let log = open_with(config(&run.server), batched).await;
            servers.lock().expect("servers").push(run);
            Arc::new(log) as Log
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jetstream_access_log_conformance() {
    conformance_on_fresh_servers(true).await;
}

/// The same checks on the path for servers without atomic batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_at_a_time_conformance() {
    conformance_on_fresh_servers(false).await;
    let run = server();
    let (a, b) = (open_unbatched(&run).await, open(&run).await);
    conformance::two_handles_make_one_chain(Arc::new(a), Arc::new(b), 100).await;
}

/// The access stream's name, subjects and storage, for a stream made by someone other
/// than this log (an older server, an operator); the rest is the server's default.
fn foreign_stream() -> stream::Config {
    stream::Config {
        name: ACCESS_STREAM.into(),
        subjects: vec![format!("{ACCESS_SUBJECT_PREFIX}*")],
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Awaits the append `tasks`; answers their sequence numbers, sorted.
async fn sorted_seqs(
    tasks: Vec<tokio::task::JoinHandle<Result<AccessEntry, throughcare_ledger::Error>>>,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.expect("task").expect("append").seq);
    }
    seqs.sort_unstable();
    seqs
}

/// `log` verifies as one unbroken chain of `entries`.
async fn assert_verifies(log: &JetStreamAccessLog, entries: u64) {
    let report = log.verify().await.expect("verify");
    assert!(report.ok && report.entries == entries, "{report:?}");
}

/// A stream made without atomic batches (by an older server) has them turned on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_stream_gets_atomic_batches() {
    let run = server();
    let js = raw(&run.server).await;
    js.create_stream(stream::Config {
        deny_delete: true,
        deny_purge: true,
        ..foreign_stream()
    })
    .await
    .expect("create the stream as an older server would");
    let log = open(&run).await;
    let s = js.get_stream(ACCESS_STREAM).await.expect("stream");
    assert!(s.cached_info().config.allow_atomic_publish);
    conformance::concurrent_appends_share_one_chain(Arc::new(log), 50).await;
}

/// An existing stream that could lose entries is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unsafe_stream_is_refused() {
    let run = server();
    let js = raw(&run.server).await;
    js.create_stream(stream::Config {
        max_age: Duration::from_secs(3600),
        ..foreign_stream()
    })
    .await
    .expect("create an unsafe stream");
    match JetStreamAccessLog::connect_with(config(&run.server)).await {
        Err(throughcare_nats::JetStreamError::UnsafeStream { problems, .. }) => {
            assert!(problems.contains("deny_delete"), "{problems}");
            assert!(problems.contains("limits"), "{problems}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("an unsafe stream was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_connection_continues_the_chain() {
    let run = server();
    let run = &run;
    conformance::continues_after_reopen(|| async move { Arc::new(open(run).await) as Log }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_append_one_chain() {
    let run = server();
    let (a, b) = (open(&run).await, open(&run).await);
    conformance::two_handles_make_one_chain(Arc::new(a.clone()), Arc::new(b.clone()), 200).await;
    eprintln!(
        "slots lost to the other writer and retried: {} + {}",
        a.conflicts(),
        b.conflicts()
    );
}

/// Four writers (two connections, each with two writer tasks) in bursts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_in_bursts_keep_one_chain() {
    let run = server();
    let (c1, c2) = (connect(&run.server).await, connect(&run.server).await);
    let mut logs = Vec::new();
    for c in [&c1, &c2] {
        for _ in 0..2 {
            logs.push(
                c.access_log()
                    .await
                    .expect("access log on the event log's connection"),
            );
        }
    }
    let t = chrono::Utc::now();
    let mut tasks = Vec::new();
    for round in 0..5 {
        for (w, log) in logs.iter().enumerate() {
            for i in 0..25 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    let who = format!("w{w}.r{round}.{i}");
                    log.append(record(&who, Some(person(i % 3)), t)).await
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sorted_seqs(tasks).await, (1..=500).collect::<Vec<u64>>());
    assert_verifies(&logs[0], 500).await;
    let conflicts: u64 = logs.iter().map(JetStreamAccessLog::conflicts).sum();
    eprintln!("slots lost and retried across four writers: {conflicts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_a_safe_stream_and_stores_one_message_per_entry() {
    let run = server();
    let log = open(&run).await;
    let p = person(9);
    let e1 = put(&log, "a.worker", Some(p), chrono::Utc::now()).await;
    let e2 = put(&log, "b.worker", None, chrono::Utc::now()).await;

    let js = raw(&run.server).await;
    let s = js.get_stream(ACCESS_STREAM).await.expect("stream");
    let c = &s.cached_info().config;
    assert_eq!(c.subjects, [format!("{ACCESS_SUBJECT_PREFIX}*")]);
    assert_eq!(c.storage, stream::StorageType::File);
    assert!(c.deny_delete && c.deny_purge);
    assert!(c.allow_atomic_publish, "groups go as atomic batches");
    assert_eq!(c.retention, stream::RetentionPolicy::Limits);
    assert_eq!(c.max_age, Duration::ZERO);
    for (e, subject) in [
        (&e1, format!("throughcare.access.{p}")),
        (&e2, "throughcare.access.none".to_string()),
    ] {
        let m = s.get_raw_message(e.seq).await.expect("message");
        assert_eq!(m.sequence, e.seq, "seq is the stream sequence");
        assert_eq!(m.subject.as_str(), subject);
        assert_eq!(access_subject(e.record.person_id), subject);
        assert_eq!(
            &m.payload[..],
            &e.stored_bytes()[..],
            "payload = stored bytes"
        );
        assert_eq!(Hash::of(&m.payload), e.hash);
        assert_eq!(
            m.headers
                .get("Throughcare-Hash")
                .map(|v| v.as_str().to_string()),
            Some(e.hash.to_hex()),
            "the hash header is the entry's hash"
        );
    }
    // Deleting is refused by the stream itself.
    assert!(s.delete_message(1).await.is_err(), "deny_delete holds");
    // Opening again accepts what is there.
    open(&run).await;
}

/// Entries appended on the event log's connection and on one of its own share the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_event_logs_connection_can_carry_the_access_log() {
    let run = server();
    let events = connect(&run.server).await;
    let shared = events.access_log().await.expect("access log");
    let own = open(&run).await;
    let a = put(&shared, "a.worker", None, chrono::Utc::now()).await;
    let b = put(&own, "b.worker", None, chrono::Utc::now()).await;
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(b.prev, a.hash);
    assert!(own.verify().await.expect("verify").ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_carry_on_through_a_server_restart() {
    let mut run = server();
    let log = open(&run).await;
    let t = chrono::Utc::now();
    let before = put(&log, "a.worker", None, t).await;
    run.server.restart();
    let after = log
        .append(record("b.worker", None, t))
        .await
        .expect("append after the restart");
    assert_eq!((after.seq, after.prev), (2, before.hash));
    assert_verifies(&log, 2).await;
}

/// Publishes `payload` on `subject` around the access log, as any client with publish
/// rights on the stream could.
async fn publish_raw(run: &Running, subject: String, payload: Vec<u8>) -> u64 {
    let js = raw(&run.server).await;
    js.send_publish(subject, PublishMessage::build().payload(payload.into()))
        .await
        .expect("publish")
        .await
        .expect("ack")
        .sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_catches_entries_published_around_the_log() {
    // An entry that does not link to the one before.
    let run = server();
    let log = open(&run).await;
    let t = chrono::Utc::now();
    for who in ["a.worker", "b.worker"] {
        put(&log, who, None, t).await;
    }
    let (forged, stored) = AccessEntry::seal(3, record("mallory", None, t), Hash::ZERO);
    let seq = publish_raw(&run, access_subject(None), stored).await;
    assert_eq!(seq, 3);
    // The log's own writer notices it lost the slot and appends on top.
    let next = log
        .append(record("c.worker", None, t))
        .await
        .expect("append after the forgery");
    assert_eq!((next.seq, next.prev), (4, forged.hash));
    let report = log.verify().await.expect("verify");
    assert_eq!(
        (report.ok, report.broken_at, report.entries),
        (false, Some(3), 4)
    );
    // It carries no msg-id (no recorded hash), so on its own it is a well-formed entry and
    // reads back as what it is; only the chain shows it does not belong.
    let got = log
        .query(&AccessFilter {
            who: Some("mallory".into()),
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(got, vec![forged]);

    // A well-linked entry on another person's subject (it would escape queries by person).
    let run = server();
    let log = open(&run).await;
    let first = put(&log, "a.worker", Some(person(1)), t).await;
    let (_, stored) = AccessEntry::seal(2, record("b.worker", Some(person(1)), t), first.hash);
    publish_raw(&run, access_subject(Some(person(2))), stored).await;
    let report = log.verify().await.expect("verify");
    assert_eq!((report.ok, report.broken_at), (false, Some(2)));

    // Bytes that are not an entry at all.
    let run = server();
    let log = open(&run).await;
    put(&log, "a.worker", None, t).await;
    publish_raw(
        &run,
        access_subject(None),
        b"{\"not\":\"an entry\"}".to_vec(),
    )
    .await;
    let report = log.verify().await.expect("verify");
    assert_eq!((report.ok, report.broken_at), (false, Some(2)));
    assert!(log.query(&AccessFilter::default()).await.is_err());
}

/// Queries by person read only that person's subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_by_person_read_only_their_subject() {
    let run = server();
    let log = open(&run).await;
    let t = chrono::Utc::now();
    for i in 0..50u64 {
        put(&log, "w", Some(person(i % 5)), t).await;
    }
    // Garbage on another subject does not disturb a query by person.
    publish_raw(&run, access_subject(Some(person(7))), b"garbage".to_vec()).await;
    let got = log
        .query(&AccessFilter {
            person: Some(person(3)),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("query");
    assert_eq!(
        got.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..50u64)
            .filter(|i| i % 5 == 3)
            .map(|i| i + 1)
            .collect::<Vec<_>>()
    );
    let js = raw(&run.server).await;
    let n = stream_info(&js, ACCESS_STREAM).await.state.messages;
    assert_eq!(n, 51);
}

/// Starts a 3-node cluster, trying again if a node cannot start: the test kit picks free
/// ports and lets go of them before the servers bind them, so with many servers starting
/// at once (this file's tests run in parallel) one may lose its port to another.
fn start_cluster(dir: &std::path::Path) -> NatsCluster {
    let mut attempt = 0;
    loop {
        let base = dir.join(format!("attempt{attempt}"));
        match std::panic::catch_unwind(|| NatsCluster::start(&base, 3)) {
            Ok(cluster) => return cluster,
            Err(e) if attempt == 2 => std::panic::resume_unwind(e),
            Err(_) => attempt += 1,
        }
    }
}

/// Three nodes, replicas 3, a writer on each node (the middle one publishing one entry at
/// a time, as on an older server): one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_three_cluster_nodes_keep_one_chain() {
    let dir = TempDir::new().expect("temporary directory");
    let cluster = start_cluster(dir.path());
    let mut logs = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        logs.push(open_with(config(node).replicas(3), i != 1).await);
    }
    let t = chrono::Utc::now();
    let mut tasks = Vec::new();
    for (w, log) in logs.iter().enumerate() {
        for i in 0..100 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(record(&format!("n{w}.{i}"), None, t)).await
            }));
        }
    }
    assert_eq!(sorted_seqs(tasks).await, (1..=300).collect::<Vec<u64>>());
    for log in &logs {
        assert_verifies(log, 300).await;
    }
    let conflicts: u64 = logs.iter().map(JetStreamAccessLog::conflicts).sum();
    eprintln!("slots lost and retried across three nodes: {conflicts}");
}
