//! Sessions, sign-in and who a credential may name (DESIGN.md "Rules at the edge",
//! issue 17 items 4, 5 and 8), against the real binary: a web session ends with the JWT
//! it was made from, a sign-in posted from another site is refused, a new sign-in ends
//! the browser's old session, a PARTNER must list its `types` (the auth file and
//! `throughcare token` refuse one without), and a JWT cannot borrow a static principal's
//! name.
//!
//! The JWT expiry test does not wait out the 60 s leeway: the session is made from a
//! token whose `exp` is a few seconds away and must stop working once `exp` passes, while
//! the token itself, as a bearer, is still accepted (leeway); so it is the session that
//! ended at `exp`, not the token that was refused.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::auth::{
    access_by_request, claims, enc, jwt, AuthFile, Caller, Key, Resp, Spec,
};
use crate::support::{binary, Server};
use crate::{principals, report, start_server, AUDITOR, JO, JO_WORKER_ID, SAM, SAM_WORKER_ID};

/// A server with `--auth` on the suite's principals (no seed: these tests read only
/// caseloads, which answer 200 empty).
fn serve() -> (tempfile::TempDir, AuthFile, Server) {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthFile::write(&dir.path().join("auth"), &principals());
    let server = start_server(&dir.path().join("data"), &auth, &[]);
    (dir, auth, server)
}

/// `POST /sign-in` with `credential`, the browser headers `headers` and, when given, the
/// old session `cookie`.
async fn sign_in(
    url: &str,
    credential: &str,
    headers: &[(&str, &str)],
    cookie: Option<&str>,
) -> Resp {
    let caller = Caller::browser(url, cookie.map(str::to_string));
    caller
        .send(
            "POST",
            "/sign-in",
            headers,
            Some((
                "application/x-www-form-urlencoded",
                format!("token={}", enc(credential)).into_bytes(),
            )),
        )
        .await
}

/// The session cookie a successful sign-in set (`name=value`), if it was one.
fn cookie_of(r: &Resp) -> Option<String> {
    matches!(r.status, 302 | 303)
        .then(|| r.session_cookie())
        .flatten()
}

/// `GET /v1/caseload/{worker}` with the session cookie only: its status.
async fn caseload_with(url: &str, cookie: &str, worker: &str) -> u16 {
    Caller::browser(url, Some(cookie.to_string()))
        .get(&format!("/v1/caseload/{worker}"))
        .await
        .status
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A WORKER JWT for `sub` with `exp` (seconds since the epoch).
fn worker_jwt(sub: &str, exp: u64) -> String {
    jwt(
        Key::Rsa,
        &claims(
            sub,
            "WORKER",
            json!({"worker_id": JO_WORKER_ID, "exp": exp, "nbf": exp.min(unix_now()) - 120}),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_jwt_expires() {
    let (_dir, _auth, server) = serve();
    let url = &server.url;
    let mut problems = Vec::new();

    // exp a few seconds away: enough to sign in and use the session on a busy machine.
    let exp = unix_now() + 5;
    let token = worker_jwt("jwt.worker", exp);
    let r = sign_in(url, &token, &[], None).await;
    let Some(cookie) = cookie_of(&r) else {
        panic!("sign-in with a JWT valid for 5 s: {}", r.brief());
    };
    // The browser is told to drop the cookie by exp too.
    let max_age = r
        .header("set-cookie")
        .and_then(|c| {
            c.split(';')
                .find_map(|a| a.trim().strip_prefix("Max-Age=").map(str::to_string))
        })
        .and_then(|a| a.parse::<u64>().ok());
    if max_age.is_none_or(|a| a > 5) {
        problems.push(format!(
            "the cookie's Max-Age is {max_age:?}, not at most the 5 s left on the JWT"
        ));
    }
    let before = caseload_with(url, &cookie, JO_WORKER_ID).await;
    if before != 200 {
        problems.push(format!("the session before exp answered {before}, not 200"));
    }

    // Past exp (by our clock, with a margin for whole seconds).
    let wait = Duration::from_secs(exp + 1)
        .saturating_sub(SystemTime::now().duration_since(UNIX_EPOCH).unwrap())
        + Duration::from_millis(300);
    tokio::time::sleep(wait).await;
    let after = caseload_with(url, &cookie, JO_WORKER_ID).await;
    if after != 401 {
        problems.push(format!(
            "the session after the JWT's exp answered {after}, not 401: it outlived its JWT"
        ));
    }
    // The token itself is still inside the 60 s leeway: the session ended at exp because
    // of the rule, not because the token stopped verifying.
    let bearer = Caller::bearer(url, &token)
        .get(&format!("/v1/caseload/{JO_WORKER_ID}"))
        .await;
    if bearer.status != 200 {
        problems.push(format!(
            "the JWT as a bearer within the leeway: {} (expected 200)",
            bearer.brief()
        ));
    }

    // A JWT already past exp, accepted as a bearer only by the leeway, makes no session.
    let stale = worker_jwt("jwt.worker", unix_now() - 30);
    let bearer = Caller::bearer(url, &stale)
        .get(&format!("/v1/caseload/{JO_WORKER_ID}"))
        .await;
    if bearer.status != 200 {
        problems.push(format!(
            "a JWT 30 s past exp as a bearer (60 s leeway): {}",
            bearer.brief()
        ));
    }
    let r = sign_in(url, &stale, &[], None).await;
    if r.status != 401 || r.header("set-cookie").is_some() {
        problems.push(format!(
            "sign-in with a JWT 30 s past exp: {} set-cookie {:?} (expected 401, no cookie)",
            r.brief(),
            r.header("set-cookie")
        ));
    }
    report("a session ends with its JWT", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_sign_in_is_refused_and_logged() {
    let (_dir, auth, server) = serve();
    let url = &server.url;
    let token = auth.token(JO);
    let mut problems = Vec::new();

    // A session the attacker's page would like to replace.
    let r = sign_in(url, &token, &[], None).await;
    let old = cookie_of(&r).unwrap_or_else(|| panic!("plain sign-in: {}", r.brief()));

    let cross: [&[(&str, &str)]; 4] = [
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        // Right origin text, but the browser says another site sent it.
        &[("origin", url.as_str()), ("sec-fetch-site", "same-site")],
    ];
    let mut refused_ids = Vec::new();
    for headers in cross {
        let r = sign_in(url, &token, headers, Some(&old)).await;
        if r.status != 403 || r.header("set-cookie").is_some() {
            problems.push(format!(
                "sign-in with {headers:?}: {} set-cookie {:?} (expected 403, no cookie)",
                r.brief(),
                r.header("set-cookie")
            ));
        }
        refused_ids.extend(r.request_id());
    }
    // A refused cross-site post does not sign the browser out either.
    if caseload_with(url, &old, JO_WORKER_ID).await != 200 {
        problems.push("a refused cross-site sign-in ended the browser's session".into());
    }

    // The service's own page: the browser sends its own origin.
    let own: [&[(&str, &str)]; 2] = [
        &[("origin", url.as_str()), ("sec-fetch-site", "same-origin")],
        &[("sec-fetch-site", "none")],
    ];
    for headers in own {
        let r = sign_in(url, &token, headers, None).await;
        if cookie_of(&r).is_none() {
            problems.push(format!(
                "same-origin sign-in with {headers:?}: {}",
                r.brief()
            ));
        }
    }

    // Each refusal is on the record as DENIED.
    let auditor = Caller::bearer(url, &auth.token(AUDITOR));
    match access_by_request(&auditor).await {
        Ok(entries) => {
            if refused_ids.len() != cross.len() {
                problems.push(format!(
                    "{} of {} refusals carried a request id",
                    refused_ids.len(),
                    cross.len()
                ));
            }
            for id in &refused_ids {
                match entries.get(id) {
                    Some(e) if e["outcome"] == "DENIED" => {}
                    other => problems.push(format!(
                        "the refused sign-in {id} is logged as {other:?}, not DENIED"
                    )),
                }
            }
        }
        Err(e) => problems.push(e),
    }
    report("cross-site sign-in", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sign_in_ends_the_browsers_old_session() {
    let (_dir, auth, server) = serve();
    let url = &server.url;
    let mut problems = Vec::new();

    let r = sign_in(url, &auth.token(JO), &[], None).await;
    let first = cookie_of(&r).unwrap_or_else(|| panic!("first sign-in: {}", r.brief()));
    assert_eq!(caseload_with(url, &first, JO_WORKER_ID).await, 200);

    // Someone else signs in on the same browser: it sends the old cookie along.
    let r = sign_in(url, &auth.token(SAM), &[], Some(&first)).await;
    let Some(second) = cookie_of(&r) else {
        panic!("second sign-in: {}", r.brief());
    };
    if second == first {
        problems.push("the second sign-in kept the first session id".into());
    }
    let old = caseload_with(url, &first, JO_WORKER_ID).await;
    if old != 401 {
        problems.push(format!(
            "the first session after a new sign-in answered {old}, not 401"
        ));
    }
    let new = caseload_with(url, &second, SAM_WORKER_ID).await;
    if new != 200 {
        problems.push(format!("the new session answered {new}, not 200"));
    }
    // A failed sign-in leaves the session there is alone.
    let r = sign_in(url, "not-a-token", &[], Some(&second)).await;
    if r.status != 401 {
        problems.push(format!("sign-in with a bad token: {}", r.brief()));
    }
    if caseload_with(url, &second, SAM_WORKER_ID).await != 200 {
        problems.push("a refused sign-in ended the browser's session".into());
    }
    report("a new sign-in ends the old session", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_cannot_take_a_static_principals_name() {
    let (_dir, _auth, server) = serve();
    let url = &server.url;
    let mut problems = Vec::new();
    let exp = unix_now() + 600;

    // jo.worker is a [[principal]] of the file; also in another case.
    for sub in [JO, &JO.to_ascii_uppercase()] {
        let token = worker_jwt(sub, exp);
        let r = Caller::bearer(url, &token)
            .get(&format!("/v1/caseload/{JO_WORKER_ID}"))
            .await;
        if r.status != 401 || !r.text.contains("sub names a principal of the auth file") {
            problems.push(format!("a JWT with sub {sub:?} as a bearer: {}", r.brief()));
        }
        let r = sign_in(url, &token, &[], None).await;
        if r.status != 401 || r.header("set-cookie").is_some() {
            problems.push(format!(
                "sign-in with a JWT with sub {sub:?}: {}",
                r.brief()
            ));
        }
    }
    // Any other name is the identity provider's to give.
    let r = Caller::bearer(url, &worker_jwt("jwt.worker", exp))
        .get(&format!("/v1/caseload/{JO_WORKER_ID}"))
        .await;
    if r.status != 200 {
        problems.push(format!("a JWT with sub jwt.worker: {}", r.brief()));
    }
    report("JWT sub vs static names", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_token_without_types_is_refused() {
    let (_dir, _auth, server) = serve();
    let url = &server.url;
    let claims_of = |types: Option<Value>| {
        let mut extra = json!({"sources": ["urn:throughcare:partner:idp-partner"]});
        if let Some(t) = types {
            extra["types"] = t;
        }
        claims("idp-partner", "PARTNER", extra)
    };
    let mut problems = Vec::new();
    for types in [None, Some(json!([]))] {
        let r = Caller::bearer(url, &jwt(Key::Ec, &claims_of(types.clone())))
            .get("/v1/caseload/W-1")
            .await;
        if r.status != 401 || !r.text.contains("lacks the types claim a PARTNER needs") {
            problems.push(format!("a PARTNER JWT with types {types:?}: {}", r.brief()));
        }
    }
    report("PARTNER JWT without types", &problems);
}

/// Waits up to `limit` for `child` to exit; kills it if it does not.
fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn serve_refuses_an_auth_file_with_a_partner_without_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut specs = principals();
    specs.push(Spec::new("typeless-partner", "PARTNER").sources(&["urn:throughcare:partner:x"]));
    let auth = AuthFile::write(&dir.path().join("auth"), &specs);
    let text = std::fs::read_to_string(&auth.path).unwrap();
    // The 1-based line of its [[principal]] header, the line before its name: the same
    // number as the name's 0-based index.
    let header_line = text
        .lines()
        .position(|l| l == "name = \"typeless-partner\"")
        .expect("the partner is in the file");

    let mut child = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--auth")
        .arg(&auth.path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run throughcare serve");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).unwrap();
    }
    let mut problems = Vec::new();
    match status {
        None => problems.push("serve started with a PARTNER without types".into()),
        Some(s) if s.success() => problems.push("serve exited 0".into()),
        Some(_) => {}
    }
    let expected = format!(
        "principal #{} (\"typeless-partner\", line {header_line}): types: a PARTNER needs types",
        specs.len()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("types")).collect();
    if lines.len() != 1 || !lines[0].contains(&expected) {
        problems.push(format!(
            "expected one line naming {expected:?}; stderr:\n{stderr}"
        ));
    }
    report("serve --auth with a PARTNER without types", &problems);
}

#[test]
fn token_refuses_a_partner_without_a_type() {
    let out = Command::new(binary())
        .args(["token", "--name", "p", "--role", "PARTNER"])
        .args(["--source", "urn:throughcare:partner:p"])
        .output()
        .expect("run throughcare token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.success() {
        problems.push("throughcare token --role PARTNER without --type exited 0".into());
    }
    if !out.stdout.is_empty() {
        problems.push(format!(
            "it printed a token or block anyway: {}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 || !lines[0].contains("a PARTNER needs at least one --type") {
        problems.push(format!(
            "expected one line asking for --type; stderr:\n{stderr}"
        ));
    }
    // With one, it works.
    let ok = Command::new(binary())
        .args(["token", "--name", "p", "--role", "PARTNER"])
        .args(["--source", "urn:throughcare:partner:p"])
        .args(["--type", "throughcare.referral.*"])
        .output()
        .expect("run throughcare token");
    if !ok.status.success() {
        problems.push(format!(
            "with --type: {}",
            String::from_utf8_lossy(&ok.stderr)
        ));
    }
    report("throughcare token --role PARTNER", &problems);
}
