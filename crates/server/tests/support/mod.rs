//! The in-process world every server integration test drives (`app(state).oneshot(..)`):
//! a real embedded ledger, its access log, read models and audit tree in a temp dir,
//! the projector and tree follower running, optionally a clock in the test's hands and
//! bearer tokens for a set of principals; plus one request helper that answers status,
//! headers and body, and the submit-and-wait-for-the-read-models step.
//!
//! Event JSON comes from `throughcare-synthetic`; this file holds only the IO. Shared by
//! several test binaries, so not every binary uses every helper.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use throughcare_events::PersonId;
use throughcare_ledger::{AccessEntry, AccessFilter, AccessLog, EmbeddedLog, EventLog, Ledger};
use throughcare_projector::{AuditTree, Projector};
use throughcare_server::{app, AppState, Authenticator};
use throughcare_synthetic::{cloudevent, data, with_person};
use tower::ServiceExt;

/// A principal of the world: name (the key of its token), role, extra TOML lines.
pub type Principal = (&'static str, &'static str, &'static str);

/// The prison healthcare partner's CloudEvents `source`.
pub const HEALTHCARE_SOURCE: &str = "urn:throughcare:partner:prison-healthcare";

/// Principals several test files share, by the name their token is kept under.
pub const HEALTHCARE_PARTNER: Principal = (
    "partner",
    "PARTNER",
    "sources = [\"urn:throughcare:partner:prison-healthcare\"]\ntypes = [\"throughcare.*\"]",
);
pub const JO: Principal = ("jo", "WORKER", "worker_id = \"W-WCI-01\"");
pub const WCI_MANAGER: Principal = ("wci.manager", "MANAGER", "prisons = [\"WCI\"]");
pub const COMMISSIONER: Principal = ("commissioner", "COMMISSIONER", "");
pub const AUDITOR: Principal = ("auditor", "AUDITOR", "");

/// How to build a [`World`].
#[derive(Default)]
pub struct Setup {
    /// With none the app runs in open mode; with some it requires their bearer tokens.
    pub principals: &'static [Principal],
    /// The ledger's clock starts here and moves only by [`World::set_clock`]; without
    /// it the ledger reads the system clock.
    pub clock: Option<&'static str>,
}

pub struct World {
    pub state: AppState,
    pub access: Arc<dyn AccessLog>,
    pub tree: AuditTree,
    pub tokens: HashMap<&'static str, String>,
    clock: Arc<Mutex<Option<DateTime<Utc>>>>,
    _dir: tempfile::TempDir,
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// A world with `principals` and the system clock.
pub async fn world_of(principals: &'static [Principal]) -> World {
    World::new(Setup {
        principals,
        ..Setup::default()
    })
    .await
}

/// An answer: status, headers, body bytes.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The header's value, or "" when absent.
    pub fn header(&self, name: HeaderName) -> &str {
        self.headers.get(&name).map_or("", |v| v.to_str().unwrap())
    }
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

impl World {
    pub async fn new(setup: Setup) -> World {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("ledger")).unwrap();
        let access: Arc<dyn AccessLog> = Arc::new(log.access_log());
        let log: Arc<dyn EventLog> = Arc::new(log);
        let projector = Projector::open(&dir.path().join("readmodels")).unwrap();
        let models = projector.read_models();
        let (tree, follower) = projector.audit_tree().unwrap();
        let run_log = log.clone();
        tokio::spawn(async move { projector.run(run_log).await });
        let run_log = log.clone();
        tokio::spawn(async move { follower.run(run_log).await });
        let clock = Arc::new(Mutex::new(setup.clock.map(t)));
        let now = clock.clone();
        let ledger = Ledger::new(
            log,
            Arc::new(move || now.lock().unwrap().unwrap_or_else(Utc::now)),
            Arc::new(|| PersonId(ulid::Ulid::new())),
        );
        let mut state = AppState::new(ledger, models, access.clone())
            .with_replay_scratch(dir.path().join("replays"));
        let mut tokens = HashMap::new();
        if !setup.principals.is_empty() {
            let mut file = String::new();
            for (name, role, extra) in setup.principals {
                let (token, hash) = throughcare_server::auth::new_token();
                file.push_str(&format!(
                    "[[principal]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{hash}\"\n{extra}\n\n"
                ));
                tokens.insert(*name, token);
            }
            let auth = Authenticator::from_toml(&file, dir.path()).await.unwrap();
            state = state.with_auth(auth);
        }
        World {
            state,
            access,
            tree,
            tokens,
            clock,
            _dir: dir,
        }
    }

    /// Moves the ledger's clock (a world made with `Setup::clock`).
    pub fn set_clock(&self, at: &str) {
        let mut clock = self.clock.lock().unwrap();
        assert!(clock.is_some(), "this world reads the system clock");
        *clock = Some(t(at));
    }

    /// `method uri` as `who` (no `Authorization` when `None`) with extra `headers`; a
    /// body is sent as a CloudEvent (or a batch of them).
    pub async fn request(
        &self,
        who: Option<&str>,
        method: &str,
        uri: &str,
        headers: &[(HeaderName, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(w) = who {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", self.tokens[w]));
        }
        for (name, value) in headers {
            req = req.header(name, *value);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/cloudevents+json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Submits `event` as `who`, asserts it was recorded, and waits until the read
    /// models have it; returns the receipt.
    pub async fn submit_as(&self, who: Option<&str>, event: Value) -> Value {
        let r = self
            .request(who, "POST", "/v1/events", &[], Some(event))
            .await;
        let body = r.json();
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let position = body["position"].as_u64().unwrap();
        assert!(
            self.state
                .models
                .wait_for(position, Duration::from_secs(5))
                .await
        );
        body
    }

    /// The access log's entries about reads and refusals by `who`.
    pub async fn access_by(&self, who: &str) -> Vec<AccessEntry> {
        self.access
            .query(&AccessFilter {
                who: Some(who.into()),
                ..AccessFilter::default()
            })
            .await
            .unwrap()
    }

    pub async fn head(&self) -> u64 {
        self.state.ledger.log().head().await.unwrap()
    }
}

/// A CloudEvent about the person with NOMIS number `nomis`; `source` is left out when
/// `None` (the guard fills it in for a partner, and refuses it otherwise).
pub fn event(
    source: Option<&str>,
    id: &str,
    kind: &str,
    nomis: &str,
    time: &str,
    data: Value,
) -> Value {
    let data = with_person(data, json!({ "nomis": nomis }));
    let mut e = cloudevent(source.unwrap_or(""), id, kind, time, data);
    if source.is_none() {
        e.as_object_mut().unwrap().remove("source");
    }
    e
}

/// A person referred at `prison` by `referrer`, accepted and allocated to `worker`, all
/// at `time`: ids `<nomis>-1` to `<nomis>-3`, referral id `R-<nomis>`.
pub fn allocated(
    source: &str,
    nomis: &str,
    prison: &str,
    referrer: &str,
    worker: &str,
    time: &str,
) -> [Value; 3] {
    let rid = format!("R-{nomis}");
    let id = |k: u8| format!("{nomis}-{k}");
    [
        event(
            Some(source),
            &id(1),
            "referral.received",
            nomis,
            time,
            data::referral_received(&rid, referrer, prison),
        ),
        event(
            Some(source),
            &id(2),
            "referral.accepted",
            nomis,
            time,
            data::referral_accepted(&rid),
        ),
        event(
            Some(source),
            &id(3),
            "case.allocated",
            nomis,
            time,
            data::case_allocated(worker),
        ),
    ]
}
