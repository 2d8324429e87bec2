//! The access guard driven in-process (`app(state).oneshot(..)`) over a real embedded
//! ledger and read models in a temp dir: scope hides existence, break glass is logged for
//! review, partners and staff submit only as themselves, and every read and refusal is in
//! the access log with a verifying chain. The end-to-end matrix over the real binary is in
//! tests/tests/access.rs; this is the fast check of the same rules.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{Principal, World};
use throughcare_server::app;
use throughcare_synthetic::data;
use tower::ServiceExt;

const PARTNER_SOURCE: &str = "urn:throughcare:partner:prison-healthcare";

const PRINCIPALS: &[Principal] = &[
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

async fn world() -> World {
    support::world_of(PRINCIPALS).await
}

/// Every answer carries a request id; the body as JSON (`Null` when it is not).
async fn call(
    w: &World,
    who: Option<&str>,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let r = w.request(who, method, uri, &[], body).await;
    assert!(r.headers.contains_key("throughcare-request-id"));
    (r.status, r.json())
}

/// The status of `GET uri` as `who`.
async fn status(w: &World, who: Option<&str>, uri: &str) -> StatusCode {
    call(w, who, "GET", uri, None).await.0
}

/// An event at 2026-11-20 09:30 about `nomis` (no `source` when `None`).
fn event(id: &str, source: Option<&str>, kind: &str, nomis: &str, data: Value) -> Value {
    support::event(source, id, kind, nomis, "2026-11-20T09:30:00Z", data)
}

/// A person referred at `prison` and allocated to `worker`; returns the person id.
async fn allocated(w: &World, nomis: &str, prison: &str, worker: &str) -> String {
    let time = "2026-11-20T09:30:00Z";
    let mut person = None;
    for e in support::allocated(
        PARTNER_SOURCE,
        nomis,
        prison,
        "PRISON_HEALTHCARE",
        worker,
        time,
    ) {
        let r = w.submit_as(Some("partner"), e).await;
        person.get_or_insert(r["person_id"].as_str().unwrap().to_string());
    }
    person.unwrap()
}

#[tokio::test]
async fn scope_hides_existence_and_break_glass_is_logged_for_review() {
    let w = world().await;
    let wci = allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    let bni = allocated(&w, "B2345CD", "BNI", "W-BNI-02").await;
    let nobody = "01JD3Z8Q6V2X9S7W4K5M1N0P3R";

    let journey = |p: &str| format!("/v1/people/{p}/journey");
    assert_eq!(status(&w, Some("jo"), &journey(&wci)).await, StatusCode::OK);
    assert_eq!(
        status(&w, Some("wci.manager"), &journey(&wci)).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&w, Some("auditor"), &journey(&bni)).await,
        StatusCode::OK
    );
    // Out of scope and unknown: the same answer but for the id.
    let (s1, hidden) = call(&w, Some("jo"), "GET", &journey(&bni), None).await;
    let (s2, unknown) = call(&w, Some("jo"), "GET", &journey(nobody), None).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(
        hidden.to_string().replace(&bni, "ID"),
        unknown.to_string().replace(nobody, "ID")
    );
    let s = status(&w, Some("wci.manager"), &format!("/v1/people/{bni}/events")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Identifier lookups follow the same scope.
    let s = status(&w, Some("jo"), "/v1/people?identifier=nomis:B2345CD").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let s = status(&w, Some("jo"), "/v1/people?identifier=nomis:A1234BC").await;
    assert_eq!(s, StatusCode::OK);
    // Roles without the right.
    for who in ["partner", "commissioner"] {
        assert_eq!(
            status(&w, Some(who), &journey(&wci)).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        status(&w, None, &journey(&wci)).await,
        StatusCode::UNAUTHORIZED
    );

    // Break glass: allowed, with a reason, marked for review.
    let s = status(
        &w,
        Some("jo"),
        &format!("{}?purpose=EMERGENCY", journey(&bni)),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "EMERGENCY needs a reason");
    let s = status(
        &w,
        Some("jo"),
        &format!(
            "{}?purpose=EMERGENCY&reason=crisis%20team%20call",
            journey(&bni)
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let (s, log) = call(
        &w,
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
    let (_, all) = call(&w, Some("auditor"), "GET", "/v1/access?who=anonymous", None).await;
    assert!(!all["entries"].as_array().unwrap().is_empty());
    let (_, review) = call(&w, Some("auditor"), "GET", "/v1/access?review=true", None).await;
    assert_eq!(review["entries"].as_array().unwrap().len(), 1);
    let (s, chain) = call(&w, Some("auditor"), "GET", "/v1/access/verify", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(chain["ok"], true, "{chain}");
    // Only the auditor reads the access log.
    assert_eq!(
        status(&w, Some("wci.manager"), "/v1/access").await,
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
            data::contact_made("PHONE", "SPOKE"),
        )
    };
    // Another partner's source: refused whether or not the person exists.
    for nomis in ["A1234BC", "Z9999ZZ"] {
        let (s, body) = call(
            &w,
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
    let (s, body) = call(
        &w,
        Some("jo"),
        "POST",
        "/v1/events",
        Some(contact("c1", None, "A1234BC")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["person_id"], wci.as_str());
    let (s, body) = call(
        &w,
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
        data::prisoner_released("WCI", "RELEASED"),
    );
    let (s, body) = call(&w, Some("jo"), "POST", "/v1/events", Some(release)).await;
    assert_eq!(
        (s, body["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:throughcare:problem:type-not-allowed")
        )
    );
    // A worker recording about someone not allocated to it: as for nobody at all.
    let (s1, b1) = call(
        &w,
        Some("sam"),
        "POST",
        "/v1/events",
        Some(contact("c3", None, "A1234BC")),
    )
    .await;
    let (s2, b2) = call(
        &w,
        Some("sam"),
        "POST",
        "/v1/events",
        Some(contact("c3", None, "Z9999ZZ")),
    )
    .await;
    assert_eq!(s1, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((s1, &b1), (s2, &b2));
    for who in ["auditor", "commissioner"] {
        let (s, _) = call(
            &w,
            Some(who),
            "POST",
            "/v1/events",
            Some(contact("c4", Some(PARTNER_SOURCE), "A1234BC")),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    assert_eq!(w.head().await, head + 1, "only jo's contact was recorded");
    let (_, log) = call(&w, Some("auditor"), "GET", "/v1/access?who=partner", None).await;
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
    let (s, body) = call(&w, Some("jo"), "GET", "/v1/caseload/W-WCI-01", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["cases"].as_array().unwrap().len(), 2);
    assert_eq!(
        status(&w, Some("jo"), "/v1/caseload/W-BNI-02").await,
        StatusCode::FORBIDDEN
    );
    // The manager of WCI sees the worker's WCI case only.
    let (s, body) = call(
        &w,
        Some("wci.manager"),
        "GET",
        "/v1/caseload/W-WCI-01",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let cases = body["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["prison"], "WCI");
    assert_eq!(
        status(&w, Some("wci.manager"), "/v1/releases?prison=BNI").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&w, Some("wci.manager"), "/v1/kpis?prison=BNI").await,
        StatusCode::FORBIDDEN
    );
    let (s, kpis) = call(
        &w,
        Some("wci.manager"),
        "GET",
        "/v1/kpis?from=2026-01-01",
        None,
    )
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
        status(&w, Some("commissioner"), "/v1/kpis").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&w, Some("commissioner"), "/v1/releases").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&w, Some("jo"), "/v1/releases").await,
        StatusCode::FORBIDDEN
    );
    // Open routes stay open; /metrics wants the scrape token.
    assert_eq!(status(&w, None, "/healthz").await, StatusCode::OK);
    assert_eq!(status(&w, None, "/metrics").await, StatusCode::UNAUTHORIZED);
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
