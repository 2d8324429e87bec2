//! The access guard driven in-process (`app(state).oneshot(..)`) over a real embedded
//! ledger and read models in a temp dir: scope hides existence, break glass is logged for
//! review, partners and staff submit only as themselves, and every read and refusal is in
//! the access log with a verifying chain. The end-to-end matrix over the real binary is in
//! tests/tests/access.rs; this is the fast check of the same rules.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use throughcare_ledger::{AccessLog, EmbeddedLog, EventLog, Ledger};
use throughcare_projector::Projector;
use throughcare_server::{app, AppState, Authenticator};
use tower::ServiceExt;

struct World {
    state: AppState,
    tokens: std::collections::HashMap<&'static str, String>,
    _dir: tempfile::TempDir,
}

const PARTNER_SOURCE: &str = "urn:throughcare:partner:prison-healthcare";

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("ledger")).unwrap();
    let access: Arc<dyn AccessLog> = Arc::new(log.access_log());
    let log: Arc<dyn EventLog> = Arc::new(log);
    let projector = Projector::open(&dir.path().join("readmodels")).unwrap();
    let models = projector.read_models();
    let run_log = log.clone();
    tokio::spawn(async move { projector.run(run_log).await });
    let mut tokens = std::collections::HashMap::new();
    let mut file = String::new();
    let principals: [(&str, &str, &str); 6] = [
        (
            "partner",
            "PARTNER",
            "sources = [\"urn:throughcare:partner:prison-healthcare\"]",
        ),
        ("jo", "WORKER", "worker_id = \"W-WCI-01\""),
        ("sam", "WORKER", "worker_id = \"W-BNI-02\""),
        ("wci.manager", "MANAGER", "prisons = [\"WCI\"]"),
        ("commissioner", "COMMISSIONER", ""),
        ("auditor", "AUDITOR", ""),
    ];
    for (name, role, extra) in principals {
        let (token, hash) = throughcare_server::auth::new_token();
        file.push_str(&format!(
            "[[principal]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{hash}\"\n{extra}\n\n"
        ));
        tokens.insert(name, token);
    }
    let auth = Authenticator::from_toml(&file, dir.path()).await.unwrap();
    let state = AppState::new(Ledger::with_system_clock(log), models, access).with_auth(auth);
    World {
        state,
        tokens,
        _dir: dir,
    }
}

impl World {
    async fn call(
        &self,
        who: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(w) = who {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", self.tokens[w]));
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
        assert!(res.headers().contains_key("throughcare-request-id"));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Submits and waits until the read models have the event.
    async fn submit(&self, who: &str, event: Value) -> Value {
        let (status, body) = self
            .call(Some(who), "POST", "/v1/events", Some(event))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let position = body["position"].as_u64().unwrap();
        assert!(
            self.state
                .models
                .wait_for(position, Duration::from_secs(5))
                .await
        );
        body
    }

    async fn head(&self) -> u64 {
        self.state.ledger.log().head().await.unwrap()
    }
}

fn event(id: &str, source: Option<&str>, kind: &str, nomis: &str, data: Value) -> Value {
    let mut d = data;
    d["person"] = json!({ "nomis": nomis });
    let mut e = json!({
        "specversion": "1.0", "id": id, "type": format!("throughcare.{kind}.v1"),
        "time": "2026-11-20T09:30:00Z", "datacontenttype": "application/json", "data": d,
    });
    if let Some(s) = source {
        e["source"] = json!(s);
    }
    e
}

/// A person referred at `prison` and allocated to `worker`; returns the person id.
async fn allocated(w: &World, nomis: &str, prison: &str, worker: &str) -> String {
    let r = w
        .submit(
            "partner",
            event(
                &format!("{nomis}-1"),
                Some(PARTNER_SOURCE),
                "referral.received",
                nomis,
                json!({
                    "referral_id": format!("R-{nomis}"), "referrer": {"kind": "PRISON_HEALTHCARE"},
                    "prison": prison, "vulnerabilities": ["AUTISM"],
                }),
            ),
        )
        .await;
    w.submit(
        "partner",
        event(
            &format!("{nomis}-2"),
            Some(PARTNER_SOURCE),
            "referral.accepted",
            nomis,
            json!({
                "referral_id": format!("R-{nomis}"),
            }),
        ),
    )
    .await;
    w.submit(
        "partner",
        event(
            &format!("{nomis}-3"),
            Some(PARTNER_SOURCE),
            "case.allocated",
            nomis,
            json!({
                "worker_id": worker, "worker_role": "PEER_SUPPORT",
            }),
        ),
    )
    .await;
    r["person_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn scope_hides_existence_and_break_glass_is_logged_for_review() {
    let w = world().await;
    let wci = allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    let bni = allocated(&w, "B2345CD", "BNI", "W-BNI-02").await;
    let nobody = "01JD3Z8Q6V2X9S7W4K5M1N0P3R";

    let journey = |p: &str| format!("/v1/people/{p}/journey");
    assert_eq!(
        w.call(Some("jo"), "GET", &journey(&wci), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        w.call(Some("wci.manager"), "GET", &journey(&wci), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        w.call(Some("auditor"), "GET", &journey(&bni), None).await.0,
        StatusCode::OK
    );
    // Out of scope and unknown: the same answer but for the id.
    let (s1, hidden) = w.call(Some("jo"), "GET", &journey(&bni), None).await;
    let (s2, unknown) = w.call(Some("jo"), "GET", &journey(nobody), None).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        hidden.to_string().replace(&bni, "ID"),
        unknown.to_string().replace(nobody, "ID")
    );
    let (s, _) = w
        .call(
            Some("wci.manager"),
            "GET",
            &format!("/v1/people/{bni}/events"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Identifier lookups follow the same scope.
    let (s, _) = w
        .call(
            Some("jo"),
            "GET",
            "/v1/people?identifier=nomis:B2345CD",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = w
        .call(
            Some("jo"),
            "GET",
            "/v1/people?identifier=nomis:A1234BC",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Roles without the right.
    for who in ["partner", "commissioner"] {
        assert_eq!(
            w.call(Some(who), "GET", &journey(&wci), None).await.0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        w.call(None, "GET", &journey(&wci), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Break glass: allowed, with a reason, marked for review.
    let (s, _) = w
        .call(
            Some("jo"),
            "GET",
            &format!("{}?purpose=EMERGENCY", journey(&bni)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "EMERGENCY needs a reason");
    let (s, _) = w
        .call(
            Some("jo"),
            "GET",
            &format!(
                "{}?purpose=EMERGENCY&reason=crisis%20team%20call",
                journey(&bni)
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, log) = w
        .call(
            Some("auditor"),
            "GET",
            &format!("/v1/people/{bni}/access"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let entries = log["entries"].as_array().unwrap();
    let glass: Vec<_> = entries.iter().filter(|e| e["review"] == true).collect();
    assert_eq!(glass.len(), 1, "{log}");
    assert_eq!(glass[0]["who"], "jo");
    assert_eq!(glass[0]["purpose"], "EMERGENCY");
    assert_eq!(glass[0]["reason"], "crisis team call");
    assert_eq!(glass[0]["what"], "READ_JOURNEY");
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e["outcome"] == "DENIED")
        .collect();
    assert!(
        denied
            .iter()
            .any(|e| e["who"] == "jo" && e["status"] == 404),
        "{log}"
    );
    assert!(denied.iter().any(|e| e["who"] == "wci.manager"), "{log}");
    let (_, all) = w
        .call(Some("auditor"), "GET", "/v1/access?who=anonymous", None)
        .await;
    assert!(!all["entries"].as_array().unwrap().is_empty());
    let (_, review) = w
        .call(Some("auditor"), "GET", "/v1/access?review=true", None)
        .await;
    assert_eq!(review["entries"].as_array().unwrap().len(), 1);
    let (s, chain) = w
        .call(Some("auditor"), "GET", "/v1/access/verify", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(chain["ok"], true, "{chain}");
    // Only the auditor reads the access log.
    assert_eq!(
        w.call(Some("wci.manager"), "GET", "/v1/access", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn partners_and_staff_submit_only_as_themselves() {
    let w = world().await;
    let wci = allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    let head = w.head().await;
    let contact = |id: &str, source: Option<&str>, nomis: &str| {
        event(
            id,
            source,
            "contact.made",
            nomis,
            json!({"channel": "PHONE", "outcome": "SPOKE"}),
        )
    };
    // Another partner's source: refused whether or not the person exists.
    for nomis in ["A1234BC", "Z9999ZZ"] {
        let (s, body) = w
            .call(
                Some("partner"),
                "POST",
                "/v1/events",
                Some(contact(
                    "x1",
                    Some("urn:throughcare:partner:probation"),
                    nomis,
                )),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "urn:throughcare:problem:source-not-allowed");
    }
    // Staff: the source is filled in; another source is refused; facts are not theirs.
    let (s, body) = w
        .call(
            Some("jo"),
            "POST",
            "/v1/events",
            Some(contact("c1", None, "A1234BC")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["person_id"], wci.as_str());
    let (s, body) = w
        .call(
            Some("jo"),
            "POST",
            "/v1/events",
            Some(contact("c2", Some(PARTNER_SOURCE), "A1234BC")),
        )
        .await;
    assert_eq!(
        (s, body["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:throughcare:problem:source-not-allowed")
        )
    );
    let release = event(
        "r1",
        None,
        "prisoner.released",
        "A1234BC",
        json!({"prison": "WCI", "reason": "RELEASED"}),
    );
    let (s, body) = w
        .call(Some("jo"), "POST", "/v1/events", Some(release))
        .await;
    assert_eq!(
        (s, body["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:throughcare:problem:type-not-allowed")
        )
    );
    // A worker recording about someone not allocated to it: as for nobody at all.
    let (s1, b1) = w
        .call(
            Some("sam"),
            "POST",
            "/v1/events",
            Some(contact("c3", None, "A1234BC")),
        )
        .await;
    let (s2, b2) = w
        .call(
            Some("sam"),
            "POST",
            "/v1/events",
            Some(contact("c3", None, "Z9999ZZ")),
        )
        .await;
    assert_eq!(s1, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((s1, &b1), (s2, &b2));
    for who in ["auditor", "commissioner"] {
        let (s, _) = w
            .call(
                Some(who),
                "POST",
                "/v1/events",
                Some(contact("c4", Some(PARTNER_SOURCE), "A1234BC")),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert_eq!(w.head().await, head + 1, "only jo's contact was recorded");
    let (_, log) = w
        .call(Some("auditor"), "GET", "/v1/access?who=partner", None)
        .await;
    let submits: Vec<_> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "SUBMIT")
        .collect();
    assert_eq!(submits.len(), 2, "{log}");
    assert!(submits
        .iter()
        .all(|e| e["outcome"] == "DENIED" && e["status"] == 403));
}

#[tokio::test]
async fn caseload_releases_and_kpis_follow_the_callers_scope() {
    let w = world().await;
    allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    allocated(&w, "B2345CD", "BNI", "W-WCI-01").await;
    let (s, body) = w
        .call(Some("jo"), "GET", "/v1/caseload/W-WCI-01", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["cases"].as_array().unwrap().len(), 2);
    assert_eq!(
        w.call(Some("jo"), "GET", "/v1/caseload/W-BNI-02", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // The manager of WCI sees the worker's WCI case only.
    let (s, body) = w
        .call(Some("wci.manager"), "GET", "/v1/caseload/W-WCI-01", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let cases = body["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["prison"], "WCI");
    assert_eq!(
        w.call(Some("wci.manager"), "GET", "/v1/releases?prison=BNI", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call(Some("wci.manager"), "GET", "/v1/kpis?prison=BNI", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (s, kpis) = w
        .call(Some("wci.manager"), "GET", "/v1/kpis?from=2026-01-01", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        kpis["months"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["prison"] == "WCI"),
        "{kpis}"
    );
    assert_eq!(
        w.call(Some("commissioner"), "GET", "/v1/kpis", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        w.call(Some("commissioner"), "GET", "/v1/releases", None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.call(Some("jo"), "GET", "/v1/releases", None).await.0,
        StatusCode::FORBIDDEN
    );
    // Open routes stay open; /metrics wants the scrape token.
    assert_eq!(
        w.call(None, "GET", "/healthz", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        w.call(None, "GET", "/metrics", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn browser_signs_in_with_a_token_and_holds_only_an_opaque_session() {
    let w = world().await;
    let wci = allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    let page = |uri: &str, cookie: Option<&str>| {
        let mut r = Request::builder().uri(uri.to_string());
        if let Some(c) = cookie {
            r = r.header(header::COOKIE, c.to_string());
        }
        r.body(Body::empty()).unwrap()
    };
    // No session: sent to sign in.
    let res = app(w.state.clone()).oneshot(page("/", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/sign-in");
    // A bad token stays on the form; a good one gets a session cookie, not the token.
    let sign_in = |token: &str| {
        Request::builder()
            .method("POST")
            .uri("/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    };
    let res = app(w.state.clone())
        .oneshot(sign_in("nonsense"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(!res.headers().contains_key(header::SET_COOKIE));
    let res = app(w.state.clone())
        .oneshot(sign_in(&w.tokens["jo"]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(
        !set.contains(&w.tokens["jo"]),
        "the cookie must not hold the token"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    // The worker's home is its caseload; its person's page opens; others' do not.
    let res = app(w.state.clone())
        .oneshot(page("/", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        html.contains("My caseload") && html.contains(&wci),
        "{html}"
    );
    let res = app(w.state.clone())
        .oneshot(page(&format!("/people/{wci}"), Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Sign out ends the session on the server, whatever the browser keeps.
    let out = Request::builder()
        .method("POST")
        .uri("/sign-out")
        .header(header::COOKIE, cookie.clone())
        .body(Body::empty())
        .unwrap();
    let res = app(w.state.clone()).oneshot(out).await.unwrap();
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = app(w.state.clone())
        .oneshot(page("/", Some(&cookie)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}
