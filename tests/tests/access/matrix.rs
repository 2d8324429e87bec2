//! The role x route matrix: one table of the expected status of every API operation for
//! every kind of caller (the five roles, no token, a wrong token, forged or stale JWTs,
//! valid RS256/ES256 JWTs, the metrics scrape token). The served OpenAPI document must
//! not have an operation without a row, and its `x-roles` must agree with the row. Every
//! refusal leaves the ledger head where it was and is in the access log as DENIED.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::auth::{
    access_by_request, claims, jwt, jwt_alg_none, jwt_hs256_with_rsa_public_key, new_token, Caller,
    Key, Resp,
};
use crate::support::event;
use crate::{
    in_days, ledger_head, report, settle, World, AUDITOR, COMMISSIONER, JO, JO_WORKER_ID,
    PROBATION, PROBATION_SOURCE, WCI_MANAGER,
};

/// The callers, in the order of the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Col {
    /// PARTNER probation-south-central (sources: its own; types: referral.*).
    P,
    /// WORKER jo.worker (W-WCI-01), in scope for person A.
    W,
    /// MANAGER wci.manager (WCI), in scope for person A.
    M,
    /// COMMISSIONER (all prisons).
    C,
    /// AUDITOR.
    A,
    /// No `Authorization` header.
    NoToken,
    /// A bearer token that is in no auth file.
    BadToken,
    /// RS256, valid signature, AUDITOR, `exp` 120 s ago (beyond the 60 s leeway).
    Expired,
    /// `alg: none`, AUDITOR.
    AlgNone,
    /// RS256, AUDITOR, another issuer.
    WrongIss,
    /// ES256, AUDITOR, another audience.
    WrongAud,
    /// HS256 signed with the RSA public key PEM as the HMAC secret, AUDITOR.
    Hs256,
    /// RS256 WORKER jwt.worker with worker_id W-WCI-01.
    RsWorker,
    /// ES256 MANAGER jwt.manager with prisons [WCI].
    EsManager,
    /// ES256 AUDITOR jwt.auditor.
    EsAuditor,
    /// The `[metrics]` scrape token.
    Metrics,
    /// RS384 with the RSA key, AUDITOR: only RS256 and ES256 are accepted.
    Rs384,
    /// RS256, AUDITOR, `nbf` 5 minutes ahead (beyond the leeway).
    NotYet,
    /// RS256, AUDITOR, `exp` 30 s ago: inside the 60 s leeway, so accepted as a bearer;
    /// but it makes no web session, which would have to end at `exp`, already past.
    Leeway,
}

use Col::*;

const COLS: [Col; 19] = [
    P, W, M, C, A, NoToken, BadToken, Expired, AlgNone, WrongIss, WrongAud, Hs256, RsWorker,
    EsManager, EsAuditor, Metrics, Rs384, NotYet, Leeway,
];

/// Page cell: 303 to /sign-in or 403 (a PARTNER cannot sign in: its token is for the API).
const PAGE_DENY: u16 = 1;
/// Sign-in cell: 303 to `/` with a session cookie.
const SIGNED_IN: u16 = 2;
/// Sign-in cell: no session (any status, but no cookie and no redirect to `/`).
const REFUSED: u16 = 3;
/// Form-post cell: the role may post the form (its scope holds), but the request carries
/// no CSRF token of a rendered form: 403, logged DENIED, nothing recorded.
const FORM_NO_TOKEN: u16 = 4;
/// API cell: the role may call the route, but this principal's `sources` lack the one the
/// route records with (the HMPPS route for the probation partner): 403, logged DENIED.
const NOT_ITS_SOURCE: u16 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Credentials in `Authorization: Bearer`.
    Api,
    /// A browser: the column's credential signed in through the form, then the cookie.
    Page,
    /// `POST /sign-in` with the column's credential in the form.
    SignIn,
    /// `POST /sign-out` with a fresh session of the column's credential.
    SignOut,
}

struct Row {
    method: &'static str,
    /// The OpenAPI path template.
    path: &'static str,
    /// Query, with `{nomis}` (person A's) and `{head}` (the ledger head) filled in.
    query: &'static str,
    kind: Kind,
    /// Rows for routes DESIGN.md names that may not be served yet: run only when the
    /// OpenAPI document lists them. Required rows must be listed.
    required: bool,
    cells: [u16; 19],
}

const fn row(
    method: &'static str,
    path: &'static str,
    query: &'static str,
    kind: Kind,
    required: bool,
    cells: [u16; 19],
) -> Row {
    Row {
        method,
        path,
        query,
        kind,
        required,
        cells,
    }
}

use Kind::{Api, Page, SignIn, SignOut};

/// THE TABLE. `{id}` is person A (referred at WCI, allocated to W-WCI-01), `{worker_id}`
/// is W-WCI-01. A new route needs a row here, or `role_route_matrix` fails.
#[rustfmt::skip]
const TABLE: &[Row] = &[
    //                                                                        P    W    M    C    A  none bad  exp  none iss  aud  hs256 rsW esM  esA  metr rs384 nbf leeway
    row("POST", "/v1/events",                 "",                   Api, true,  [201, 201, 201, 403, 403, 401, 401, 401, 401, 401, 401, 401, 201, 201, 403, 401, 401, 401, 403]),
    row("GET",  "/v1/people",                 "identifier=nomis:{nomis}", Api, true, [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/people/{id}/journey",    "",                   Api, true,  [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/people/{id}/events",     "",                   Api, true,  [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/people/{id}/verify",     "",                   Api, true,  [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/people/{id}/access",     "",                   Api, true,  [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/access",                 "",                   Api, true,  [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/access/verify",          "",                   Api, true,  [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/caseload/{worker_id}",   "",                   Api, true,  [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/releases",               "",                   Api, true,  [403, 403, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/kpis",                   "",                   Api, true,  [403, 403, 200, 200, 200, 401, 401, 401, 401, 401, 401, 401, 403, 200, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/schema/events",          "",                   Api, true,  [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/v1/openapi.json",           "",                   Api, true,  [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/assets/throughcare.css",    "",                   Api, true,  [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/healthz",                   "",                   Api, true,  [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/readyz",                    "",                   Api, true,  [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("GET",  "/metrics",                   "",                   Api, true,  [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 200, 401, 401, 401]),
    row("GET",  "/v1/people/{id}/fhir",       "",                   Api, true,  [403, 200, 200, 403, 200, 401, 401, 401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 200]),
    row("POST", "/v1/hmpps/domain-events",    "",                   Api, true,  [NOT_ITS_SOURCE, 403, 403, 403, 403, 401, 401, 401, 401, 401, 401, 401, 403, 403, 403, 401, 401, 401, 403]),
    // Web pages: the credential goes through the sign-in form; GET /sign-in is open.
    row("GET",  "/sign-in",                   "",                   Page, true, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    row("POST", "/sign-in",                   "",                 SignIn, true, [REFUSED, SIGNED_IN, SIGNED_IN, SIGNED_IN, SIGNED_IN, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED, REFUSED, SIGNED_IN, SIGNED_IN, SIGNED_IN, REFUSED, REFUSED, REFUSED, REFUSED]),
    row("POST", "/sign-out",                  "",                SignOut, true, [303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303, 303]),
    row("GET",  "/",                          "",                   Page, true, [PAGE_DENY, 200, 200, 200, 200, 303, 303, 303, 303, 303, 303, 303, 200, 200, 200, 303, 303, 303, 303]),
    row("GET",  "/people/{id}",               "",                   Page, true, [PAGE_DENY, 200, 200, 403, 200, 303, 303, 303, 303, 303, 303, 303, 200, 200, 200, 303, 303, 303, 303]),
    row("GET",  "/caseload",                  "",                   Page, true, [PAGE_DENY, 200, 403, 403, 403, 303, 303, 303, 303, 303, 303, 303, 200, 403, 403, 303, 303, 303, 303]),
    row("GET",  "/releases",                  "",                   Page, true, [PAGE_DENY, 403, 200, 403, 200, 303, 303, 303, 303, 303, 303, 303, 403, 200, 200, 303, 303, 303, 303]),
    row("GET",  "/cases",                     "",                   Page, true, [PAGE_DENY, 403, 200, 403, 200, 303, 303, 303, 303, 303, 303, 303, 403, 200, 200, 303, 303, 303, 303]),
    row("GET",  "/kpis",                      "",                   Page, true, [PAGE_DENY, 403, 200, 200, 200, 303, 303, 303, 303, 303, 303, 303, 403, 200, 200, 303, 303, 303, 303]),
    // Form posts: without the form's CSRF token every session is refused (403, nothing
    // recorded); the role and scope rules in front of them are the page rules.
    row("POST", "/people/{id}/events/{type}", "",                   Page, true, [PAGE_DENY, FORM_NO_TOKEN, FORM_NO_TOKEN, 403, 403, 303, 303, 303, 303, 303, 303, 303, FORM_NO_TOKEN, FORM_NO_TOKEN, 403, 303, 303, 303, 303]),
    row("POST", "/people/{id}/manage/{type}", "",                   Page, true, [PAGE_DENY, 403, FORM_NO_TOKEN, 403, 403, 303, 303, 303, 303, 303, 303, 303, 403, FORM_NO_TOKEN, 403, 303, 303, 303, 303]),
    // DESIGN.md "Audit" routes (AUDITOR only), checked once they are served.
    row("GET",  "/v1/ledger/checkpoint",      "",                   Api, false, [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/ledger/key",             "",                   Api, false, [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/ledger/entries",         "from=1&limit=10",    Api, false, [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/ledger/proof/inclusion", "position=1&size={head}", Api, false, [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/ledger/proof/consistency", "from=1&to={head}", Api, false, [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/v1/people/{id}/export",     "",                   Api, true,  [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
    row("GET",  "/subject-access-request",    "prn={nomis}",        Api, true,  [403, 403, 403, 403, 200, 401, 401, 401, 401, 401, 401, 401, 403, 403, 200, 401, 401, 401, 200]),
];

/// Reads of person-level data: each allowed call must be logged as ALLOWED.
const LOGGED_READS: [&str; 7] = [
    "GET /v1/people",
    "GET /v1/people/{id}/fhir",
    "GET /v1/people/{id}/journey",
    "GET /v1/people/{id}/events",
    "GET /v1/people/{id}/verify",
    "GET /v1/caseload/{worker_id}",
    "GET /people/{id}",
];

fn credential(w: &World, col: Col) -> Option<String> {
    let auditor = || claims("jwt.auditor", "AUDITOR", json!({}));
    let now = chrono::Utc::now().timestamp();
    Some(match col {
        P => w.auth.token(PROBATION),
        W => w.auth.token(JO),
        M => w.auth.token(WCI_MANAGER),
        C => w.auth.token(COMMISSIONER),
        A => w.auth.token(AUDITOR),
        NoToken => return None,
        BadToken => new_token(),
        Expired => jwt(
            Key::Rsa,
            &claims(
                "jwt.auditor",
                "AUDITOR",
                json!({"exp": now - 120, "nbf": now - 900, "iat": now - 900}),
            ),
        ),
        AlgNone => jwt_alg_none(&auditor()),
        WrongIss => jwt(
            Key::Rsa,
            &claims(
                "jwt.auditor",
                "AUDITOR",
                json!({"iss": "https://other-idp.test.invalid"}),
            ),
        ),
        WrongAud => jwt(
            Key::Ec,
            &claims("jwt.auditor", "AUDITOR", json!({"aud": "not-throughcare"})),
        ),
        Hs256 => jwt_hs256_with_rsa_public_key(&auditor()),
        RsWorker => jwt(
            Key::Rsa,
            &claims("jwt.worker", "WORKER", json!({"worker_id": JO_WORKER_ID})),
        ),
        EsManager => jwt(
            Key::Ec,
            &claims("jwt.manager", "MANAGER", json!({"prisons": ["WCI"]})),
        ),
        EsAuditor => jwt(Key::Ec, &auditor()),
        Metrics => w.auth.metrics_token.clone(),
        Rs384 => jwt(Key::Rs384, &auditor()),
        NotYet => jwt(
            Key::Rsa,
            &claims("jwt.auditor", "AUDITOR", json!({"nbf": now + 300})),
        ),
        Leeway => jwt(
            Key::Rsa,
            &claims(
                "jwt.auditor",
                "AUDITOR",
                json!({"exp": now - 30, "nbf": now - 900, "iat": now - 900}),
            ),
        ),
    })
}

/// (who, role) the access log must name for an authenticated column.
fn identity(col: Col) -> Option<(&'static str, &'static str)> {
    Some(match col {
        P => (PROBATION, "PARTNER"),
        W => (JO, "WORKER"),
        M => (WCI_MANAGER, "MANAGER"),
        C => (COMMISSIONER, "COMMISSIONER"),
        A => (AUDITOR, "AUDITOR"),
        RsWorker => ("jwt.worker", "WORKER"),
        EsManager => ("jwt.manager", "MANAGER"),
        EsAuditor | Leeway => ("jwt.auditor", "AUDITOR"),
        _ => return None,
    })
}

fn role_name(col: Col) -> Option<&'static str> {
    Some(match col {
        P => "PARTNER",
        W => "WORKER",
        M => "MANAGER",
        C => "COMMISSIONER",
        A => "AUDITOR",
        _ => return None,
    })
}

/// `/v1/people/{person_id}` -> `/v1/people/{}`.
fn normalize(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for ch in path.chars() {
        match ch {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(ch),
        }
    }
    out
}

fn is_success(cell: u16) -> bool {
    (200..300).contains(&cell) || cell == SIGNED_IN
}

/// The `x-roles` a row implies.
fn expected_x_roles(r: &Row) -> BTreeSet<String> {
    let idx = |c: Col| COLS.iter().position(|x| *x == c).unwrap();
    if matches!(r.kind, SignIn | SignOut) || is_success(r.cells[idx(NoToken)]) {
        return ["open".to_string()].into();
    }
    if is_success(r.cells[idx(Metrics)]) {
        return ["metrics-token".to_string()].into();
    }
    [P, W, M, C, A]
        .into_iter()
        .filter(|c| {
            is_success(r.cells[idx(*c)])
                || matches!(r.cells[idx(*c)], NOT_ITS_SOURCE | FORM_NO_TOKEN)
        })
        .map(|c| role_name(c).unwrap().to_string())
        .collect()
}

/// A location header's path (`http://host/sign-in?x` -> `/sign-in`).
fn location_path(r: &Resp) -> String {
    let loc = r.header("location").unwrap_or_default();
    let rest = match loc.find("://") {
        Some(i) => {
            let after = &loc[i + 3..];
            after.find('/').map(|j| &after[j..]).unwrap_or("/")
        }
        None => loc.as_str(),
    };
    rest.split(['?', '#']).next().unwrap_or("").to_string()
}

/// What the access log must hold for one request.
struct Logged {
    cell: String,
    request_id: String,
    outcome: &'static str,
    status: u16,
    route: String,
    identity: Option<(&'static str, &'static str)>,
    person: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_route_matrix() {
    let w = World::seeded(&[]).await;
    let url = w.url();
    let anonymous = Caller::anonymous(&url);
    let mut problems: Vec<String> = Vec::new();

    // Every operation of the OpenAPI document has a row, and its x-roles match the row.
    let doc = anonymous.get("/v1/openapi.json").await;
    let mut served: Option<BTreeSet<(String, String)>> = None;
    if doc.status != 200 || !doc.body["paths"].is_object() {
        problems.push(format!(
            "GET /v1/openapi.json: expected 200 with `paths`, got {}",
            doc.brief()
        ));
    } else {
        let mut ops = BTreeSet::new();
        for (path, item) in doc.body["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let method = method.to_uppercase();
                if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                    .contains(&method.as_str())
                {
                    continue;
                }
                ops.insert((method.clone(), normalize(path)));
                let Some(r) = TABLE
                    .iter()
                    .find(|r| r.method == method && normalize(r.path) == normalize(path))
                else {
                    problems.push(format!(
                        "OpenAPI operation {method} {path} has no row in the access matrix (add one to TABLE)"
                    ));
                    continue;
                };
                let got: Option<BTreeSet<String>> = op["x-roles"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                });
                let want = expected_x_roles(r);
                if got.as_ref() != Some(&want) {
                    problems.push(format!(
                        "OpenAPI {method} {path}: x-roles {} but the matrix allows {want:?}",
                        op.get("x-roles")
                            .map_or("missing".into(), |v| v.to_string())
                    ));
                }
            }
        }
        for r in TABLE.iter().filter(|r| r.required) {
            if !ops.contains(&(r.method.to_string(), normalize(r.path))) {
                problems.push(format!(
                    "{} {} is not in the OpenAPI document",
                    r.method, r.path
                ));
            }
        }
        served = Some(ops);
    }

    let mut logged: Vec<Logged> = Vec::new();
    let mut unauthenticated = 0u64;
    let mut grid: Vec<String> = Vec::new();
    let mut n = 0u64;
    for r in TABLE {
        let mut seen: Vec<String> = Vec::new();
        let served_now = served
            .as_ref()
            .is_none_or(|ops| ops.contains(&(r.method.to_string(), normalize(r.path))));
        if !served_now || (!r.required && served.is_none()) {
            eprintln!(
                "matrix: {} {} is not served yet; its row is skipped",
                r.method, r.path
            );
            continue;
        }
        for (i, col) in COLS.into_iter().enumerate() {
            n += 1;
            let expect = r.cells[i];
            let cell = format!("{} {} as {col:?}", r.method, r.path);
            let before = ledger_head(&w).await;
            let mut path = r
                .path
                .replace("{id}", &w.a.id)
                .replace("{worker_id}", JO_WORKER_ID)
                .replace("{type}", "contact.made");
            if !r.query.is_empty() {
                path += "?";
                path += &r
                    .query
                    .replace("{nomis}", &w.a.nomis)
                    .replace("{head}", &before.to_string());
            }
            let cred = credential(&w, col);
            let (resp, cookie) = match r.kind {
                Api => {
                    let caller = match &cred {
                        Some(t) => Caller::bearer(&url, t),
                        None => Caller::anonymous(&url),
                    };
                    let resp = if r.method == "POST" && r.path == "/v1/events" {
                        caller.submit(&submit_body(&w, col, n)).await
                    } else {
                        caller.send(r.method, &path, &[], None).await
                    };
                    (resp, None)
                }
                Page if r.path == "/sign-in" => (Caller::anonymous(&url).get(&path).await, None),
                Page => {
                    // A fresh session (the sign-in form) for each cell, so that short-lived
                    // JWTs (the leeway column) are used well inside their lifetime.
                    let session = match &cred {
                        Some(c) => Caller::sign_in(&url, c).await.1,
                        None => None,
                    };
                    let caller = Caller::browser(&url, session);
                    (caller.send(r.method, &path, &[], None).await, None)
                }
                SignIn => {
                    let (resp, cookie) = Caller::sign_in(&url, cred.as_deref().unwrap_or("")).await;
                    (resp, cookie)
                }
                SignOut => {
                    let fresh = match &cred {
                        Some(c) => Caller::sign_in(&url, c).await.1,
                        None => None,
                    };
                    let browser = Caller::browser(&url, fresh.clone());
                    // Sign-out is a state-changing POST: a session must show the token of
                    // its page's sign-out form (CSRF); without it the answer is 403.
                    let token = match &fresh {
                        Some(_) => {
                            let refused = browser.post_form("/sign-out", &[]).await;
                            if refused.status != 403 {
                                problems.push(format!(
                                    "{cell}: sign-out without its CSRF token: {}",
                                    refused.brief()
                                ));
                            }
                            sign_out_token(&browser.get("/").await.text)
                        }
                        None => None,
                    };
                    let fields: Vec<(&str, &str)> =
                        token.iter().map(|t| ("csrf", t.as_str())).collect();
                    let resp = browser.post_form("/sign-out", &fields).await;
                    // A session that was signed out no longer opens pages.
                    if fresh.is_some() {
                        let home = browser.get("/").await;
                        if home.status != 303 || location_path(&home) != "/sign-in" {
                            problems.push(format!(
                                "{cell}: after sign-out the old session still opens / ({})",
                                home.brief()
                            ));
                        }
                    }
                    (resp, None)
                }
            };
            let after = ledger_head(&w).await;

            let ok = match expect {
                PAGE_DENY => {
                    resp.status == 403 || (resp.status == 303 && location_path(&resp) == "/sign-in")
                }
                SIGNED_IN => {
                    matches!(resp.status, 302 | 303)
                        && cookie.is_some()
                        && location_path(&resp) == "/"
                }
                REFUSED => !(cookie.is_some() && location_path(&resp) == "/"),
                FORM_NO_TOKEN => resp.status == 403,
                NOT_ITS_SOURCE => resp.status == 403,
                s => resp.status == s,
            };
            seen.push(format!("{}{}", resp.status, if ok { "" } else { "!" }));
            if !ok {
                let want = match expect {
                    PAGE_DENY => "303 to /sign-in or 403".to_string(),
                    SIGNED_IN => "303 to / with a session cookie".to_string(),
                    REFUSED => "no session (no cookie, no redirect to /)".to_string(),
                    NOT_ITS_SOURCE => "403 (its sources lack the route's)".to_string(),
                    FORM_NO_TOKEN => "403 (no CSRF token of a rendered form)".to_string(),
                    s => s.to_string(),
                };
                problems.push(format!(
                    "{cell}: expected {want}, got {} (location {:?}, cookie {})",
                    resp.brief(),
                    resp.header("location"),
                    cookie.is_some()
                ));
            }
            let Some(request_id) = resp.request_id() else {
                problems.push(format!("{cell}: no Throughcare-Request-Id header"));
                continue;
            };
            if r.kind == Page
                && expect == 303
                && resp.status == 303
                && location_path(&resp) != "/sign-in"
            {
                problems.push(format!(
                    "{cell}: 303 to {:?}, not /sign-in",
                    resp.header("location")
                ));
            }
            if r.kind == Api && resp.status == 401 {
                let challenge = resp.header("www-authenticate").unwrap_or_default();
                if !challenge.to_ascii_lowercase().starts_with("bearer") {
                    problems.push(format!(
                        "{cell}: 401 without `WWW-Authenticate: Bearer` (got {challenge:?})"
                    ));
                }
            }
            if r.kind == Api && matches!(resp.status, 401 | 403) && !resp.is_problem() {
                problems.push(format!("{cell}: {} is not problem+json", resp.brief()));
            }
            let created = r.path == "/v1/events" && (200..300).contains(&resp.status);
            let moved_ok = if created {
                after == before + 1
            } else {
                after == before
            };
            if !moved_ok {
                problems.push(format!(
                    "{cell}: the ledger head went from {before} to {after} on a {} reply",
                    resp.status
                ));
            }
            let route = format!("{} {}", r.method, r.path);
            // A 401 is counted and sampled, not written per request (anyone can send
            // them: DESIGN.md "The access log"); checked as a whole below.
            if resp.status == 401 && r.kind == Api {
                unauthenticated += 1;
            }
            let refused = resp.status == 403 || (resp.status == 401 && r.kind != Api);
            if refused {
                logged.push(Logged {
                    cell: cell.clone(),
                    request_id,
                    outcome: "DENIED",
                    status: resp.status,
                    // /metrics authenticates only the scrape token: it need not name a
                    // principal whose token it was shown.
                    identity: if r.path == "/metrics" {
                        None
                    } else {
                        identity(col)
                    },
                    route,
                    person: None,
                });
            } else if resp.status == 200 && LOGGED_READS.contains(&route.as_str()) {
                logged.push(Logged {
                    cell: cell.clone(),
                    request_id,
                    outcome: "ALLOWED",
                    status: 200,
                    person: (route.contains("{id}") || route == "GET /v1/people")
                        .then(|| w.a.id.clone()),
                    route,
                    identity: identity(col),
                });
            }
        }
        grid.push(format!("{:5} {:32} {}", r.method, r.path, seen.join(" ")));
    }
    eprintln!(
        "observed statuses (! = not as the table says), columns {:?}:\n{}",
        COLS,
        grid.join("\n")
    );

    // The access log holds every refusal of a named caller and every allowed
    // person-level read; refusals without valid credentials are sampled: at least one
    // entry, anonymous, against nobody, saying how many it stands for.
    let auditor = w.as_(AUDITOR);
    match access_by_request(&auditor).await {
        Err(e) => problems.push(format!("reading the access log: {e}")),
        Ok(entries) => {
            let sampled: Vec<&Value> = entries
                .values()
                .filter(|e| {
                    e["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("sampled: "))
                })
                .collect();
            if unauthenticated > 0 && sampled.is_empty() {
                problems.push(format!(
                    "{unauthenticated} refusals without valid credentials and no sampled entry"
                ));
            }
            for e in &sampled {
                if e["who"] != "anonymous" || !e["person_id"].is_null() || e["outcome"] != "DENIED"
                {
                    problems.push(format!("a sampled entry names someone: {e}"));
                }
            }
            for l in &logged {
                let Some(e) = entries.get(&l.request_id) else {
                    problems.push(format!(
                        "{}: no access-log entry with request_id {} ({} {})",
                        l.cell, l.request_id, l.outcome, l.status
                    ));
                    continue;
                };
                let mut bad = Vec::new();
                if e["outcome"] != l.outcome {
                    bad.push(format!("outcome {} (want {})", e["outcome"], l.outcome));
                }
                if e["status"] != l.status {
                    bad.push(format!("status {} (want {})", e["status"], l.status));
                }
                if e["route"] != l.route.as_str() {
                    bad.push(format!("route {} (want {:?})", e["route"], l.route));
                }
                if let Some((who, role)) = l.identity {
                    if e["who"] != who || e["role"] != role {
                        bad.push(format!(
                            "who/role {}/{} (want {who}/{role})",
                            e["who"], e["role"]
                        ));
                    }
                }
                if let Some(p) = &l.person {
                    if e["person_id"] != p.as_str() {
                        bad.push(format!("person_id {} (want {p})", e["person_id"]));
                    }
                }
                if !bad.is_empty() {
                    problems.push(format!(
                        "{}: access-log entry {}: {}",
                        l.cell,
                        e,
                        bad.join("; ")
                    ));
                }
            }
        }
    }
    let verify = auditor.get("/v1/access/verify").await;
    if verify.status != 200 || verify.body["ok"] != true {
        problems.push(format!("GET /v1/access/verify: {}", verify.brief()));
    }
    settle(&url).await;
    report("role x route matrix", &problems);
}

/// The body a column posts to `/v1/events`: the partner a referral of a new person with
/// its own source; everyone else a staff event about person A, by `person_id`, without a
/// `source` (the server fills in `urn:throughcare:staff:<name>`).
fn submit_body(w: &World, col: Col, n: u64) -> Value {
    if col == P {
        let mut e = event(
            "referral.received",
            &format!("matrix-ref-{n}"),
            &crate::at(30),
            json!({"person": {"nomis": crate::support::nomis(8000 + n)}, "referral_id": format!("REF-M{n}"),
                   "referrer": {"kind": "PROBATION"}, "prison": "WCI",
                   "expected_release_date": in_days(70), "vulnerabilities": ["TRAUMA"]}),
        );
        e["source"] = json!(PROBATION_SOURCE);
        e
    } else {
        let mut e = event(
            "contact.attempted",
            &format!("matrix-contact-{n}"),
            &crate::at(5),
            // Staff name an existing person by person_id ("Rules at the edge").
            json!({"person": {"person_id": w.a.id}, "channel": "PHONE", "outcome": "NO_ANSWER"}),
        );
        e.as_object_mut().unwrap().remove("source");
        e
    }
}

/// The CSRF token of the sign-out form in a page's HTML (a page a signed-in role opens).
fn sign_out_token(html: &str) -> Option<String> {
    let form = &html[html.find("action=\"/sign-out\"")?..];
    let value = &form[form.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len()..];
    Some(value[..value.find('"')?].to_string())
}
