//! The response headers every answer carries, set in one layer around the whole router
//! (DESIGN.md "Rules at the edge"): `Cache-Control: no-store` (person data must not sit
//! in a browser's or a proxy's cache; nothing here is worth caching but the stylesheet),
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, a Content Security
//! Policy (pages: our own stylesheet and images only, no script at all, no framing;
//! anything else: nothing at all), and HSTS when served over TLS.

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Where the pages' stylesheet is served (an open route; the one thing cached).
pub const STYLESHEET: &str = "/assets/throughcare.css";

/// CSP of HTML pages: no script of any kind; styles from our stylesheet (and any inline
/// `<style>` whose hash a page names itself: `page_csp`); forms post only to us.
pub fn page_csp(style_hashes: &[&str]) -> HeaderValue {
    let hashes: String = style_hashes
        .iter()
        .map(|css| {
            let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(css));
            format!(" 'sha256-{hash}'")
        })
        .collect();
    HeaderValue::from_str(&format!(
        "default-src 'self'; script-src 'none'; style-src 'self'{hashes}; img-src 'self' data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ))
    .expect("a valid header value")
}

static PAGE_CSP: LazyLock<HeaderValue> = LazyLock::new(|| page_csp(&[]));

/// CSP of everything else (JSON, CSV, text): nothing may load, nothing may frame it.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The layer. `tls`: the server is reached over TLS (directly or behind a proxy).
pub async fn secure(State(tls): State<bool>, request: Request, next: Next) -> Response {
    let asset = request.uri().path() == STYLESHEET;
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = response.headers_mut();
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A page with a style of its own has set its CSP naming it (`page_csp`).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            if html {
                PAGE_CSP.clone()
            } else {
                HeaderValue::from_static(API_CSP)
            },
        );
    }
    if html {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
