//! Attack 5: security headers everywhere. DESIGN.md "Rules at the edge": every
//! authenticated response carries `Cache-Control: no-store`; pages a CSP without inline
//! script and with `frame-ancestors 'none'`; everywhere `X-Content-Type-Options: nosniff`
//! and `Referrer-Policy: no-referrer`. Issue 17 found none of them. Every GET operation of
//! the served OpenAPI document that answers 200 to an AUDITOR is checked (so a new route is
//! checked without a new line), plus the sign-in page and a 401 and a 404; an HTML page
//! must also hold no inline script and no `<style>` the CSP does not allow by hash.

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::raw::{request, RawResp};
use crate::world::*;

/// The directives of a CSP: name -> sources.
fn csp(value: &str) -> Vec<(String, Vec<String>)> {
    value
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_string).collect()))
        })
        .collect()
}

/// The sources of `directive`, falling back to `default-src`.
fn sources<'a>(policy: &'a [(String, Vec<String>)], directive: &str) -> Option<&'a Vec<String>> {
    policy
        .iter()
        .find(|(n, _)| n == directive)
        .or_else(|| policy.iter().find(|(n, _)| n == "default-src"))
        .map(|(_, s)| s)
}

/// The contents of every `<tag ...>...</tag>` whose opening tag passes `keep`.
fn elements<'a>(html: &'a str, tag: &str, keep: impl Fn(&str) -> bool) -> Vec<&'a str> {
    let lower = html.to_ascii_lowercase();
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find(&open) {
        let start = at + i;
        let Some(gt) = lower[start..].find('>') else {
            break;
        };
        let body_start = start + gt + 1;
        let end = lower[body_start..]
            .find(&close)
            .map_or(html.len(), |j| body_start + j);
        if keep(&lower[start..body_start]) {
            out.push(&html[body_start..end]);
        }
        at = end;
    }
    out
}

/// The problems of one answer's headers (and, for HTML, its inline code).
fn check(what: &str, r: &RawResp, authenticated: bool, problems: &mut Vec<String>) {
    let mut wrong = Vec::new();
    let h = |n: &str| r.header(n).unwrap_or("").to_ascii_lowercase();
    if h("x-content-type-options") != "nosniff" {
        wrong.push(format!(
            "X-Content-Type-Options is {:?}, not nosniff",
            r.header("x-content-type-options")
        ));
    }
    if h("referrer-policy") != "no-referrer" {
        wrong.push(format!(
            "Referrer-Policy is {:?}, not no-referrer",
            r.header("referrer-policy")
        ));
    }
    if authenticated && !h("cache-control").contains("no-store") {
        wrong.push(format!(
            "Cache-Control is {:?}, without no-store",
            r.header("cache-control")
        ));
    }
    if h("content-type").starts_with("text/html") {
        let raw = r.header("content-security-policy").unwrap_or("");
        let policy = csp(raw);
        if raw.is_empty() {
            wrong.push("an HTML page without Content-Security-Policy".into());
        } else {
            let has = |d: &str, s: &str| {
                policy
                    .iter()
                    .any(|(n, v)| n == d && v.iter().any(|x| x.eq_ignore_ascii_case(s)))
            };
            if !has("default-src", "'self'") {
                wrong.push(format!("CSP without default-src 'self': {raw}"));
            }
            if !has("frame-ancestors", "'none'") {
                wrong.push(format!("CSP without frame-ancestors 'none': {raw}"));
            }
            if sources(&policy, "script-src")
                .is_some_and(|s| s.iter().any(|x| x.eq_ignore_ascii_case("'unsafe-inline'")))
            {
                wrong.push(format!("CSP allows inline script: {raw}"));
            }
        }
        let inline_scripts = elements(&r.text, "script", |open| !open.contains(" src="));
        if !inline_scripts.is_empty() {
            wrong.push(format!(
                "{} inline <script> element(s) in the page",
                inline_scripts.len()
            ));
        }
        let lower = r.text.to_ascii_lowercase();
        for handler in [
            " onclick=",
            " onload=",
            " onerror=",
            " onsubmit=",
            " onchange=",
        ] {
            if lower.contains(handler) {
                wrong.push(format!(
                    "an inline event handler ({}) in the page",
                    handler.trim()
                ));
            }
        }
        let styles = sources(&policy, "style-src").cloned().unwrap_or_default();
        for style in elements(&r.text, "style", |_| true) {
            let hash = format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()))
            );
            if !styles.contains(&hash) {
                wrong.push(format!(
                    "a <style> element ({} bytes) the CSP does not allow by hash {hash} (style-src {styles:?})",
                    style.len()
                ));
            }
        }
    }
    if !wrong.is_empty() {
        problems.push(format!("{what} -> {}: {}", r.status, wrong.join("; ")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_headers_on_every_route() {
    let w = World::seeded().await;
    let mut problems = Vec::new();
    let doc = request(w.url(), "GET", "/v1/openapi.json", &[], None)
        .await
        .expect("openapi");
    let doc: Value = serde_json::from_str(&doc.text).expect("openapi JSON");
    let auth = format!("Bearer {}", w.auth.token(AUDITOR));
    let metrics_auth = format!("Bearer {}", w.auth.metrics_token);
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let Some(op) = item.get("get") else { continue };
        let open = op["x-roles"]
            .as_array()
            .is_some_and(|r| r.iter().all(|x| x == "open"));
        let mut target = path
            .replace("{id}", &w.a.id)
            .replace("{worker_id}", JO_WORKER);
        let mut query = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if p["in"] != "query" {
                continue;
            }
            match p["name"].as_str().unwrap_or("") {
                "identifier" if p["required"] == true => {
                    query.push(format!("identifier=nomis:{}", w.a.nomis))
                }
                "prn" => query.push(format!("prn={}", w.a.nomis)),
                "purpose" => {
                    if let Some(first) = p["schema"]["enum"].as_array().and_then(|e| e.first()) {
                        query.push(format!("purpose={}", first.as_str().unwrap_or("")));
                    }
                }
                _ => {}
            }
        }
        if !query.is_empty() {
            target = format!("{target}?{}", query.join("&"));
        }
        let headers: Vec<(&str, &str)> = if path == "/metrics" {
            vec![("Authorization", metrics_auth.as_str())]
        } else if open {
            vec![]
        } else {
            vec![("Authorization", auth.as_str())]
        };
        match request(w.url(), "GET", &target, &headers, None).await {
            Ok(r) if r.status == 200 => {
                checked.push(path.clone());
                check(
                    &format!("GET {target} as {AUDITOR}"),
                    &r,
                    !open,
                    &mut problems,
                );
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("GET {target}: no answer: {e}")),
        }
    }
    for page in ["/", "/people/{id}", "/kpis", "/releases", "/cases"] {
        if !checked.iter().any(|p| p == page) {
            problems.push(format!(
                "the page {page} did not answer 200 to {AUDITOR}, so its headers went unchecked"
            ));
        }
    }
    // Refusals and open pages count too.
    let journey = format!("/v1/people/{}/journey", w.a.id);
    let jo = format!("Bearer {}", w.auth.token(JO));
    let others = [
        (
            format!("GET {journey} without a token"),
            journey.clone(),
            None,
        ),
        (
            format!("GET /v1/people/<unknown>/journey as {JO}"),
            format!("/v1/people/{}/journey", new_id()),
            Some(jo.as_str()),
        ),
        ("GET /sign-in".to_string(), "/sign-in".to_string(), None),
    ];
    for (what, target, auth) in others {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        match request(w.url(), "GET", &target, &headers, None).await {
            Ok(r) => check(&what, &r, auth.is_some(), &mut problems),
            Err(e) => problems.push(format!("{what}: no answer: {e}")),
        }
    }
    eprintln!(
        "headers: {} operations answered 200 and were checked",
        checked.len()
    );
    report("security headers", &problems);
}
