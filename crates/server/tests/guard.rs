//! The access guard driven in-process (`app(state).oneshot(..)`) over a real embedded
//! ledger and read models in a temp dir: scope hides existence, break glass is logged for
//! review, partners and staff submit only as themselves, and every read and refusal is in
//! the access log with a verifying chain. The end-to-end matrix over the real binary is in
//! tests/tests/access.rs; this is the fast check of the same rules.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::{
    Principal, World, AUDITOR, COMMISSIONER, HEALTHCARE_PARTNER, HEALTHCARE_SOURCE, JO, WCI_MANAGER,
};
use throughcare_server::app;
use throughcare_synthetic::data;
use tower::ServiceExt;

const PARTNER_SOURCE: &str = HEALTHCARE_SOURCE;

const PRINCIPALS: &[Principal] = &[
    HEALTHCARE_PARTNER,
    JO,
    ("sam", "WORKER", "worker_id = \"W-BNI-02\""),
    WCI_MANAGER,
    COMMISSIONER,
    AUDITOR,
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

/// `GET uri` as `who`, which must answer 200; the body.
async fn get_ok(w: &World, who: &str, uri: &str) -> Value {
    let (s, body) = call(w, Some(who), "GET", uri, None).await;
    assert_eq!(s, StatusCode::OK, "GET {uri} as {who}: {body}");
    body
}

/// `POST /v1/events` of `event` as `who`.
async fn post(w: &World, who: Option<&str>, event: Value) -> (StatusCode, Value) {
    call(w, who, "POST", "/v1/events", Some(event)).await
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
    // Out of scope and unknown: the same answer but for the id, and neither sooner than
    // the guard's floor (5 ms), so that reading a journey cannot be told apart by time.
    let started = std::time::Instant::now();
    let (s1, hidden) = call(&w, Some("jo"), "GET", &journey(&bni), None).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(5));
    let started = std::time::Instant::now();
    let (s2, unknown) = call(&w, Some("jo"), "GET", &journey(nobody), None).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(5));
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

    let log = get_ok(&w, "auditor", &format!("/v1/people/{bni}/access")).await;
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
    let chain = get_ok(&w, "auditor", "/v1/access/verify").await;
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
        let (s, body) = post(
            &w,
            Some("partner"),
            contact("x1", Some("urn:throughcare:partner:probation"), nomis),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(body["type"], "urn:throughcare:problem:source-not-allowed");
    }
    // Staff name an existing person by person_id: identifiers alone are refused.
    let by_id = |mut e: Value, person: &str| {
        e["data"]["person"] = json!({ "person_id": person });
        e
    };
    let (s, body) = post(&w, Some("jo"), contact("c0", None, "A1234BC")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "/data/person/person_id");
    // Staff: the source is filled in; another source is refused; facts are not theirs.
    let (s, body) = post(&w, Some("jo"), by_id(contact("c1", None, "A1234BC"), &wci)).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["person_id"], wci.as_str());
    let (s, body) = post(
        &w,
        Some("jo"),
        contact("c2", Some(PARTNER_SOURCE), "A1234BC"),
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
    let (s, body) = post(&w, Some("jo"), release).await;
    assert_eq!(
        (s, body["type"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("urn:throughcare:problem:type-not-allowed")
        )
    );
    // A worker recording about someone not allocated to it: as for nobody at all.
    let nobody = ulid::Ulid::new().to_string();
    let (s1, b1) = post(&w, Some("sam"), by_id(contact("c3", None, "A1234BC"), &wci)).await;
    let (s2, b2) = post(
        &w,
        Some("sam"),
        by_id(contact("c3", None, "A1234BC"), &nobody),
    )
    .await;
    assert_eq!(s1, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!((s1, &b1), (s2, &b2));
    for who in ["auditor", "commissioner"] {
        let (s, _) = post(
            &w,
            Some(who),
            contact("c4", Some(PARTNER_SOURCE), "A1234BC"),
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
    // The staff refusals by scope are on the record too (sam's twice, jo's once).
    let (_, log) = call(&w, Some("auditor"), "GET", "/v1/access?who=sam", None).await;
    assert_eq!(log["entries"].as_array().unwrap().len(), 2, "{log}");
    assert!(submits
        .iter()
        .all(|e| e["outcome"] == "DENIED" && e["status"] == 403));
}

#[tokio::test]
async fn caseload_releases_and_kpis_follow_the_callers_scope() {
    let w = world().await;
    allocated(&w, "A1234BC", "WCI", "W-WCI-01").await;
    allocated(&w, "B2345CD", "BNI", "W-WCI-01").await;
    let body = get_ok(&w, "jo", "/v1/caseload/W-WCI-01").await;
    assert_eq!(body["cases"].as_array().unwrap().len(), 2);
    assert_eq!(
        status(&w, Some("jo"), "/v1/caseload/W-BNI-02").await,
        StatusCode::FORBIDDEN
    );
    // The manager of WCI sees the worker's WCI case only.
    let body = get_ok(&w, "wci.manager", "/v1/caseload/W-WCI-01").await;
    let cases = body["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0]["prison"], "WCI");
    for (who, uri, want) in [
        (
            "wci.manager",
            "/v1/releases?prison=BNI",
            StatusCode::FORBIDDEN,
        ),
        ("wci.manager", "/v1/kpis?prison=BNI", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(status(&w, Some(who), uri).await, want, "{who} GET {uri}");
    }
    let kpis = get_ok(&w, "wci.manager", "/v1/kpis?from=2026-01-01").await;
    assert!(
        kpis["months"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["prison"] == "WCI"),
        "{kpis}"
    );
    for (who, uri, want) in [
        ("commissioner", "/v1/kpis", StatusCode::OK),
        ("commissioner", "/v1/releases", StatusCode::FORBIDDEN),
        ("jo", "/v1/releases", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(status(&w, Some(who), uri).await, want, "{who} GET {uri}");
    }
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
    // Sign-out is a state-changing POST: without the page's CSRF token it is refused.
    let sign_out = |body: String| {
        Request::builder()
            .method("POST")
            .uri("/sign-out")
            .header(header::COOKIE, cookie.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let res = app(w.state.clone())
        .oneshot(sign_out(String::new()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // With the token from the page's sign-out form, it ends the session on the server,
    // whatever the browser keeps.
    let token = sign_out_token(&html).expect("the page has a sign-out form with a token");
    let res = app(w.state.clone())
        .oneshot(sign_out(format!("csrf={token}")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
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

/// The CSRF token of the sign-out form in a page's HTML.
fn sign_out_token(html: &str) -> Option<String> {
    let form = &html[html.find("action=\"/sign-out\"")?..];
    let value = &form[form.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len()..];
    Some(value[..value.find('"')?].to_string())
}
