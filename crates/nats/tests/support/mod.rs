//! Shared helpers for the JetStream backend tests: a real nats-server (or a 3-node
//! cluster) per test, a log on it, a raw client to look at what the backend stored, and
//! synthetic events. Identifiers and CloudEvent JSON come from `throughcare-synthetic`;
//! this file holds the IO and the validation of what it builds.

#![allow(dead_code)]

pub mod burst;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;
use throughcare_events::{validate_event, Event, PersonId};
use throughcare_ledger::{AppendRequest, ExpectedVersion, NewEvent};
use throughcare_nats::testkit::{NatsCluster, NatsServer};
use throughcare_nats::{JetStreamConfig, JetStreamLog};
use throughcare_synthetic::{cloudevent, data, with_person};

pub const SOURCE: &str = "urn:throughcare:test:nats";

/// A nats-server in its own temporary store, and the directory (kept alive with it).
pub struct Running {
    pub server: NatsServer,
    pub dir: TempDir,
}

pub fn server() -> Running {
    let dir = TempDir::new().expect("temporary directory");
    let server = NatsServer::start(&dir.path().join("store"));
    Running { server, dir }
}

pub fn config(server: &NatsServer) -> JetStreamConfig {
    JetStreamConfig::new(server.url())
        .request_timeout(Duration::from_secs(2))
        .retry_for(Duration::from_secs(60))
}

pub async fn connect(server: &NatsServer) -> JetStreamLog {
    JetStreamLog::connect_with(config(server))
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.url()))
}

/// A raw async-nats client on the same server, to look at what the backend stored.
pub async fn raw(server: &NatsServer) -> async_nats::jetstream::Context {
    raw_at(&server.url()).await
}

/// A raw async-nats client on any of the comma-separated `urls`.
pub async fn raw_at(urls: &str) -> async_nats::jetstream::Context {
    let client = async_nats::connect(urls.split(',').collect::<Vec<_>>())
        .await
        .expect("raw connect");
    async_nats::jetstream::new(client)
}

/// The info of stream `name` (e.g. `throughcare_nats::STREAM`), as the server reports it now.
pub async fn stream_info(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> async_nats::jetstream::stream::Info {
    js.get_stream(name)
        .await
        .expect("stream")
        .cached_info()
        .clone()
}

/// A 3-node cluster on loopback in its own directory, a log on it with stream replicas
/// 3, and a raw client on the cluster.
pub struct Cluster {
    pub servers: NatsCluster,
    pub log: JetStreamLog,
    pub js: async_nats::jetstream::Context,
    pub dir: TempDir,
}

/// Starts a [`Cluster`]; `sync_always` makes every node fsync each write; the log's
/// requests time out after `request_timeout` and are retried for `retry_for`.
pub async fn cluster(sync_always: bool, request_timeout: Duration, retry_for: Duration) -> Cluster {
    let dir = TempDir::new().expect("temporary directory");
    let servers = if sync_always {
        NatsCluster::start_sync_always(dir.path(), 3)
    } else {
        NatsCluster::start(dir.path(), 3)
    };
    let config = JetStreamConfig::new(servers.urls())
        .replicas(3)
        .request_timeout(request_timeout)
        .retry_for(retry_for);
    let log = JetStreamLog::connect_with(config)
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster: {e}"));
    let js = raw_at(&servers.urls()).await;
    Cluster {
        servers,
        log,
        js,
        dir,
    }
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The ledger person id of synthetic person `n`.
pub fn person(n: u64) -> PersonId {
    throughcare_synthetic::person_id(0, n)
}

/// The synthetic NOMIS number of person `n`.
pub fn nomis(n: u32) -> String {
    throughcare_synthetic::nomis(u64::from(n))
}

/// The synthetic NHS number of person `seed` (999 range, valid Modulus 11).
pub fn nhs(seed: u32) -> String {
    throughcare_synthetic::nhs_number(u64::from(seed))
}

fn envelope(id: &str, kind: &str, data: Value) -> Event {
    let event = cloudevent(SOURCE, id, kind, "2026-11-20T09:30:00Z", data);
    validate_event(&event, now()).unwrap_or_else(|p| panic!("test event is invalid: {p:?}"))
}

/// A `release_date.set` fact about `nomis` (always recordable); `day` varies the date.
pub fn release_date(id: &str, nomis: &str, day: u32) -> Event {
    let date = format!("2027-01-{:02}", 1 + day % 28);
    envelope(
        id,
        "release_date.set",
        with_person(
            data::release_date_set(&date, "CRD"),
            json!({ "nomis": nomis }),
        ),
    )
}

/// A `referral.received` for `person` (any person reference) at WCI.
pub fn referral(id: &str, person: Value, referral_id: &str) -> Event {
    envelope(
        id,
        "referral.received",
        with_person(
            data::referral_received(referral_id, "PROBATION", "WCI"),
            person,
        ),
    )
}

pub fn request(person: PersonId, expected: ExpectedVersion, events: &[Event]) -> AppendRequest {
    AppendRequest {
        person,
        expected,
        claims: Vec::new(),
        events: events
            .iter()
            .map(|e| NewEvent {
                event: e.clone(),
                recorded_at: now(),
            })
            .collect(),
    }
}
