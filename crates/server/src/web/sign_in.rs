//! Sign-in and sign-out: `GET /sign-in` is a form with one field (a bearer token or a
//! JWT); `POST /sign-in` checks it once and starts a session (the browser keeps only an
//! opaque session id in an HttpOnly SameSite=Strict cookie); `POST /sign-out` ends it,
//! with the CSRF token of the header's sign-out button.
//!
//! Sign-in itself is guarded too (DESIGN.md "Rules at the edge"): a sign-in posted from
//! another site is refused (login CSRF would sign a worker into the attacker's account,
//! so what they then record lands under the attacker's name), a session lasts no longer
//! than the JWT it was made from, and a new sign-in ends the browser's old session.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use throughcare_ledger::AccessWhat;

use super::{csrf, page, plain, session_id, Viewer};
use crate::access::LogNote;
use crate::auth::session;
use crate::auth::Role;
use crate::extract::Form;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `GET /sign-in`: one field, a bearer token or a JWT.
pub async fn sign_in_form(State(state): State<AppState>) -> Response {
    sign_in_page(&state, StatusCode::OK, None)
}

fn sign_in_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let body = if state.auth.is_none() {
        html! {
            p { "This server runs in open development mode: no sign-in is needed. "
                a href="/" { "Continue" } "." }
        }
    } else {
        html! {
            @if let Some(error) = error {
                div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                    h2 #error-summary-title { "There is a problem" }
                    ul { li { a href="#token" { (error) } } }
                }
            }
            form method="post" action="/sign-in" novalidate {
                div class=@if error.is_some() { "field-error" } {
                    label for="token" { "Your access token or identity-provider token (JWT)" }
                    @if let Some(error) = error {
                        span.error-message #token-error { span.visually-hidden { "Error: " } (error) }
                    }
                    input #token name="token" type="password" autocomplete="off" size="60"
                        required aria-describedby=[error.map(|_| "token-error")]
                        class=[error.map(|_| "error")];
                }
                p { button type="submit" { "Sign in" } }
            }
            p.muted { "The token is checked once; the browser keeps only a session cookie, which ends when you sign out, after 8 hours, or when an identity-provider token expires, whichever is first." }
        }
    };
    (status, page(&Viewer::nobody(), "Sign in", body)).into_response()
}

/// `POST /sign-in`: checks where the form came from, then the token, and starts a
/// session in place of the browser's old one.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<SignIn>,
) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    // Before the token is looked at: a cross-site post learns nothing about it and costs
    // no JWKS fetch.
    if let Some(why) = cross_site(&headers, &uri, state.secure_cookies) {
        let mut page = sign_in_page(
            &state,
            StatusCode::FORBIDDEN,
            Some(&format!(
                "This sign-in was not sent from this service's own sign-in page ({why}). \
                 Open the sign-in page of this service and sign in there."
            )),
        );
        page.extensions_mut().insert(denied(None));
        return page;
    }
    match auth.authenticate_credential(form.token.trim()).await {
        // A partner system has no pages: its token is for the API, not for a session.
        Ok(c) if c.principal.role == Role::Partner => {
            let mut page = sign_in_page(
                &state,
                StatusCode::FORBIDDEN,
                Some(
                    "That token belongs to a partner system, which has no web pages: \
                     use it as a bearer token with the API (POST /v1/events).",
                ),
            );
            page.extensions_mut().insert(denied(Some(&c.principal)));
            page
        }
        Ok(c) => {
            let Some(ttl) = session::lifetime(c.expires, SystemTime::now()) else {
                // Past its exp, accepted only by the clock-skew leeway: a session from it
                // would end at once, so say so instead of signing in to nothing.
                let mut page = sign_in_page(
                    &state,
                    StatusCode::UNAUTHORIZED,
                    Some("That token was not accepted: token expired"),
                );
                page.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"throughcare\""),
                );
                page.extensions_mut().insert(denied(Some(&c.principal)));
                return page;
            };
            // One browser, one session: the old one (perhaps someone else's, on a shared
            // machine) must not stay usable by whoever holds its cookie.
            if let Some(old) = session_id(&headers) {
                state.sessions.end(&old);
            }
            let id = state.sessions.start(c.principal, ttl);
            (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&id, state.secure_cookies, ttl),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let mut page = sign_in_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some(&format!("That token was not accepted: {e}")),
            );
            page.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"throughcare\""),
            );
            // A refused sign-in is a refusal like any other: on the record.
            page.extensions_mut().insert(denied(None));
            page
        }
    }
}

/// The note that has the guard log a refused sign-in as DENIED, naming who when the
/// token was good but not for a session.
fn denied(who: Option<&crate::auth::Principal>) -> LogNote {
    LogNote {
        what: Some(AccessWhat::Denied),
        denied: true,
        who: who.map(|p| (p.name.clone(), p.role.to_string())),
        ..LogNote::default()
    }
}

/// Why a sign-in did not come from this service's own page, if it did not. Browsers send
/// `Origin` on every POST and `Sec-Fetch-Site` on every request; both must say this
/// origin (`none`: typed or bookmarked). A client sending neither (curl, a script) is not
/// a browser that could be tricked, and is let through. The origin is this request's
/// own: the scheme the cookies are made for (https when they are `Secure`) and the
/// `Host` (or HTTP/2 `:authority`) the browser addressed, so a proxy must pass `Host`.
///
/// Our pages are served with `Referrer-Policy: no-referrer`, under which a browser sends
/// `Origin: null` even for a POST from our own page. So `null` passes only beside a
/// `Sec-Fetch-Site` that says same-origin (which browsers send whatever the referrer
/// policy); alone, or with any other site, it is refused.
fn cross_site(headers: &HeaderMap, uri: &Uri, secure: bool) -> Option<String> {
    let mut same_origin_fetch = false;
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.to_str() {
            Ok("same-origin" | "none") => same_origin_fetch = true,
            Ok(other) => return Some(format!("Sec-Fetch-Site: {other}")),
            Err(_) => return Some("Sec-Fetch-Site unreadable".into()),
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some("Origin unreadable".into());
    };
    if origin == "null" && same_origin_fetch {
        return None;
    }
    let scheme = if secure { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let same = host.is_some_and(|host| {
        origin.split_once("://").is_some_and(|(s, authority)| {
            s.eq_ignore_ascii_case(scheme)
                && without_default_port(authority, scheme)
                    .eq_ignore_ascii_case(without_default_port(host, scheme))
        })
    });
    (!same).then(|| format!("Origin: {origin}"))
}

/// `host:80` under http and `host:443` under https name the same origin as `host`.
fn without_default_port<'a>(authority: &'a str, scheme: &str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// `POST /sign-out`: ends the session. A session is ended only with the token of its own
/// sign-out button (403 otherwise), so another site cannot sign a worker out mid-form.
/// Without a session there is nothing to end.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Read leniently (any or no content type): the token is all that is looked at.
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if let Some(id) = session_id(&headers) {
        if !csrf::check(
            state.sessions.csrf_secret(),
            &id,
            csrf::SIGN_OUT,
            token.as_deref(),
        ) {
            return forbidden();
        }
        state.sessions.end(&id);
    }
    (
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

/// The answer to a state-changing form without its token; a refusal, so on the record
/// like any other (the guard logs it as DENIED).
pub(crate) fn forbidden() -> Response {
    let mut r = plain(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from a page of this service, or it is from an earlier session. Go back, reload the page and send it again.",
    );
    r.extensions_mut().insert(LogNote {
        what: Some(AccessWhat::Denied),
        denied: true,
        ..LogNote::default()
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request headers, as (name, value) pairs.
    type Headers = &'static [(&'static str, &'static str)];

    fn headers(pairs: Headers) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    fn check(pairs: Headers, secure: bool) -> Option<String> {
        cross_site(&headers(pairs), &Uri::from_static("/sign-in"), secure)
    }

    #[test]
    fn same_origin_sign_ins_pass() {
        const HOST: (&str, &str) = ("host", "care.example:8443");
        const OWN: (&str, &str) = ("origin", "https://care.example:8443");
        assert_eq!(check(&[HOST], true), None, "no browser headers: a script");
        assert_eq!(check(&[HOST, OWN], true), None);
        assert_eq!(
            check(&[HOST, OWN, ("sec-fetch-site", "same-origin")], true),
            None
        );
        assert_eq!(check(&[HOST, ("sec-fetch-site", "none")], true), None);
        // What a browser sends from our own page under `Referrer-Policy: no-referrer`.
        assert_eq!(
            check(
                &[HOST, ("origin", "null"), ("sec-fetch-site", "same-origin")],
                true
            ),
            None
        );
        // Default ports and case are not differences.
        assert_eq!(
            check(
                &[
                    ("host", "care.example"),
                    ("origin", "HTTPS://Care.Example:443")
                ],
                true
            ),
            None
        );
        assert_eq!(
            check(
                &[("host", "127.0.0.1:80"), ("origin", "http://127.0.0.1")],
                false
            ),
            None
        );
    }

    #[test]
    fn cross_site_sign_ins_are_named() {
        const HOST: (&str, &str) = ("host", "care.example");
        // (headers of a sign-in over https, why it is refused)
        let cases: [(Headers, &str); 8] = [
            (
                &[HOST, ("origin", "https://evil.example")],
                "Origin: https://evil.example",
            ),
            // The right host under the wrong scheme is another origin.
            (
                &[HOST, ("origin", "http://care.example")],
                "Origin: http://care.example",
            ),
            (
                &[HOST, ("origin", "https://care.example:444")],
                "Origin: https://care.example:444",
            ),
            (&[HOST, ("origin", "null")], "Origin: null"),
            (
                &[HOST, ("origin", "null"), ("sec-fetch-site", "cross-site")],
                "Sec-Fetch-Site: cross-site",
            ),
            (
                &[("origin", "https://care.example")],
                "Origin: https://care.example",
            ),
            (
                &[HOST, ("sec-fetch-site", "cross-site")],
                "Sec-Fetch-Site: cross-site",
            ),
            // A sibling subdomain is same-site but not same-origin.
            (
                &[
                    HOST,
                    ("origin", "https://care.example"),
                    ("sec-fetch-site", "same-site"),
                ],
                "Sec-Fetch-Site: same-site",
            ),
        ];
        for (pairs, why) in cases {
            assert_eq!(check(pairs, true).as_deref(), Some(why), "{pairs:?}");
        }
    }

    #[test]
    fn http2_authority_stands_in_for_host() {
        let uri = Uri::from_static("https://care.example/sign-in");
        let h = headers(&[("origin", "https://care.example")]);
        assert_eq!(cross_site(&h, &uri, true), None);
    }
}
