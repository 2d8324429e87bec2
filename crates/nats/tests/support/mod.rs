//! Shared helpers for the JetStream backend tests: a real nats-server per test, a log on
//! it, and synthetic events.

#![allow(dead_code)]

pub mod burst;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tempfile::TempDir;
use throughcare_events::{nhs_check_digit, validate_event, Event, PersonId};
use throughcare_ledger::{AppendRequest, ExpectedVersion, NewEvent};
use throughcare_nats::testkit::NatsServer;
use throughcare_nats::{JetStreamConfig, JetStreamLog};
use ulid::Ulid;

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
    let client = async_nats::connect(server.url())
        .await
        .expect("raw connect");
    async_nats::jetstream::new(client)
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn person(n: u64) -> PersonId {
    PersonId(Ulid::from_parts(1_790_000_000_000, u128::from(n)))
}

pub fn nomis(n: u32) -> String {
    format!("N{:04}BC", n % 10_000)
}

pub fn nhs(seed: u32) -> String {
    let mut base = 999_100_000u64 + u64::from(seed) * 13;
    loop {
        let text = format!("{base:09}");
        let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
        if let Some(check) = nhs_check_digit(&digits) {
            return format!("{text}{check}");
        }
        base += 1;
    }
}

fn envelope(source: &str, id: &str, kind: &str, data: Value) -> Event {
    validate_event(
        &json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": format!("throughcare.{kind}.v1"),
            "time": "2026-11-20T09:30:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }),
        now(),
    )
    .unwrap_or_else(|p| panic!("test event is invalid: {p:?}"))
}

/// A `release_date.set` fact about `nomis` (always recordable).
pub fn release_date(id: &str, nomis: &str, day: u32) -> Event {
    envelope(
        SOURCE,
        id,
        "release_date.set",
        json!({
            "person": { "nomis": nomis },
            "date": format!("2027-01-{:02}", 1 + day % 28),
            "date_type": "CRD",
        }),
    )
}

pub fn referral(id: &str, person: Value, referral_id: &str) -> Event {
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
