//! The web pages, rendered on the server with `maud` (compile-time templates, escaped by
//! default): one layout (`page`), a few shared components, and one module per page family
//! (sign-in, home, caseload, person, the worker's forms). Plain HTML and CSS served by us;
//! no scripts, fonts or styles from elsewhere, and every page works without JavaScript.
//! What a page shows follows the same rules as the API (`crate::access::policy`).

pub(crate) mod charts;
mod commissioner;
pub(crate) mod csrf;
mod forms;
mod home;
mod manager;
mod person;
mod posts;
mod sign_in;
pub(crate) mod strip;
pub(crate) mod time;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use throughcare_projections::FlagCode;

use crate::auth::session;
use crate::auth::Principal;
use crate::state::AppState;

pub use commissioner::kpis_page;
pub use home::{caseload, home, releases};
pub use manager::cases;
pub use person::person;
pub use posts::{post_event, post_manager_event};
pub use sign_in::{sign_in, sign_in_form, sign_out};

pub(crate) use crate::escape::esc;

/// A code (status, flag, next action) spelt as in the API.
pub(crate) fn code(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A code in plain words: `CONTACT_OVERDUE` -> "contact overdue".
pub(crate) fn words(code: &str) -> String {
    code.to_ascii_lowercase().replace('_', " ")
}

/// A flag as a badge (text, never colour alone).
pub(crate) fn flag(f: FlagCode) -> Markup {
    html! { span.tag.tag-warn { (words(&code(&f))) } }
}

/// The session id of the request's cookie, if any (what CSRF tokens are bound to).
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
        .map(str::to_string)
}

/// Who is looking at a page, for its header: the principal and the sign-out form's token.
pub(crate) struct Viewer<'a> {
    pub principal: Option<&'a Principal>,
    pub sign_out_token: Option<String>,
}

impl<'a> Viewer<'a> {
    /// Nobody signed in (the sign-in page, a refusal).
    pub fn nobody() -> Viewer<'static> {
        Viewer {
            principal: None,
            sign_out_token: None,
        }
    }

    /// A signed-in caller; the sign-out button carries a token bound to its session.
    pub fn of(state: &AppState, principal: &'a Principal, headers: &HeaderMap) -> Viewer<'a> {
        let session = session_id(headers);
        Viewer {
            principal: Some(principal),
            sign_out_token: Some(csrf::token(
                state.sessions.csrf_secret(),
                session.as_deref().unwrap_or(""),
                csrf::SIGN_OUT,
            )),
        }
    }
}

/// The stylesheet, served as a file of our own (`GET /assets/throughcare.css`: the pages'
/// Content Security Policy allows no inline style). NHS-style: NHS blue for links and the header rule, dark text on white, a yellow focus
/// ring with a black underline (the NHS and GOV.UK pattern), red borders beside errors.
pub(crate) const CSS: &str = r#"
*,*::before,*::after{box-sizing:border-box}
body{font-family:Arial,Helvetica,sans-serif;font-size:1.1875rem;line-height:1.5;margin:0;color:#212b32;background:#f0f4f5}
.skip-link{position:absolute;left:-9999px;top:0;background:#ffeb3b;color:#212b32;padding:.5rem 1rem;z-index:10}
.skip-link:focus{left:1rem}
header.site{background:#005eb8;color:#fff;padding:.75rem 0}
header.site .wrap{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;justify-content:space-between}
header.site a{color:#fff;font-weight:bold;font-size:1.4rem;text-decoration:none}
header.site .tagline{font-size:1rem}
header.site form{margin:0}
header.site .who{font-size:1rem}
nav.site{background:#fff;border-bottom:1px solid #d8dde0}
nav.site ul{list-style:none;padding-top:.5rem;padding-bottom:.5rem;display:flex;flex-wrap:wrap;gap:1.5rem}
.wrap{max-width:72rem;margin:0 auto;padding:0 1rem}
main{padding:1.5rem 0 3rem}
footer.site{border-top:4px solid #005eb8;background:#fff;padding:1rem 0;font-size:1rem;color:#4c6272}
h1{font-size:2rem;margin:0 0 1rem} h2{font-size:1.5rem;margin:2rem 0 .75rem} h3{font-size:1.2rem}
a{color:#005eb8} a:visited{color:#330072} a:hover{color:#7c2855}
a:focus,button:focus,input:focus,select:focus,textarea:focus,summary:focus{outline:4px solid #ffeb3b;outline-offset:0;box-shadow:0 4px 0 #212b32;background-color:#ffeb3b;color:#212b32}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:1rem}
caption{text-align:left;font-weight:bold;padding:.5rem 0}
td,th{border-bottom:1px solid #d8dde0;padding:.5rem;text-align:left;vertical-align:top}
.card{background:#fff;border:1px solid #d8dde0;padding:1rem 1.25rem;margin-bottom:1rem}
.tag{display:inline-block;border:2px solid currentColor;padding:0 .4rem;margin:0 .3rem .2rem 0;font-size:.95rem;font-weight:bold;background:#fff}
.tag-warn{color:#8a1f11;background:#fff}
.tag-status{color:#005eb8}
.tag-ok,.tag-verified{color:#00703c}
.tag-pending{color:#594d00}
.tag-failed{color:#fff;background:#8a1f11;border-color:#8a1f11}
.tag-muted,.tag-unchecked{color:#4c6272}
.muted,.hint{color:#4c6272;font-size:1rem}
.badge{margin:.5rem 0}
label,legend{display:block;font-weight:bold;margin:.75rem 0 .25rem}
input,select,textarea{font:inherit;border:2px solid #4c6272;padding:.3rem .4rem;background:#fff;color:#212b32;max-width:100%}
fieldset{border:0;padding:0;margin:0}
.inline{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-end}
.inline label{margin-top:0}
button{font:inherit;font-weight:bold;background:#007f3b;color:#fff;border:0;border-bottom:2px solid #00401e;padding:.5rem 1rem;cursor:pointer}
button.secondary{background:#4c6272;border-bottom-color:#212b32}
header.site button{background:#fff;color:#005eb8;border:2px solid #fff;padding:.2rem .6rem}
.field-error{border-left:4px solid #d5281b;padding-left:.9rem}
.error-message{color:#d5281b;font-weight:bold;display:block;margin:.25rem 0}
input.error,select.error{border-color:#d5281b}
.error-summary{border:4px solid #d5281b;background:#fff;padding:1rem 1.25rem;margin-bottom:1.5rem}
.error-summary h2{margin-top:0}
.error-summary a{color:#d5281b;font-weight:bold}
.notice{border-left:8px solid #005eb8;background:#fff;padding:.75rem 1rem;margin-bottom:1rem}
.notice-ok{border-left-color:#007f3b}
details{background:#fff;border:1px solid #d8dde0;margin:.5rem 0;padding:.5rem 1rem}
summary{cursor:pointer;color:#005eb8;font-weight:bold;text-decoration:underline}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1.5rem;background:#fff;padding:1rem;margin:0 0 1rem}
dl.facts dt{font-weight:bold} dl.facts dd{margin:0}
.strip svg{max-width:100%;height:auto;background:#fff;border:1px solid #d8dde0}
.corrected{text-decoration:line-through}
.visually-hidden{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);border:0}
svg.chart{max-width:100%;height:auto;background:#fff;border:1px solid #d8dde0}
.chart-row{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start;margin-bottom:1.5rem}
.chart-figure{flex:1 1 26rem;max-width:34rem}
.chart-table{flex:1 1 22rem}
"#;

/// `GET /assets/throughcare.css`: the stylesheet (cacheable for a day; it carries no data).
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        CSS,
    )
        .into_response()
}

/// The layout: skip link, header (service name, the signed-in caller and a sign-out
/// button), navigation for the caller's role, main landmark with the page's `h1`, footer.
pub(crate) fn page(viewer: &Viewer<'_>, title: &str, body: Markup) -> Markup {
    let who = viewer.principal;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · throughcare" }
                link rel="stylesheet" href=(crate::headers::STYLESHEET);
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                header.site {
                    div.wrap {
                        div {
                            a href="/" { "throughcare" }
                            div.tagline { "Continuity of care from prison to community · synthetic data only" }
                        }
                        @if let Some(p) = who {
                            @if p.open_mode {
                                p.who { "Open development mode: no sign-in, loopback only" }
                            } @else {
                                form method="post" action="/sign-out" {
                                    span.who { "Signed in as " strong { (p.name) } " (" (p.role) ") " }
                                    @if let Some(t) = &viewer.sign_out_token {
                                        input type="hidden" name="csrf" value=(t);
                                    }
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                @if let Some(p) = who {
                    nav.site aria-label="Main" {
                        ul.wrap {
                            li { a href="/" { "Home" } }
                            @if p.open_mode || p.role == crate::auth::Role::Worker {
                                li { a href="/caseload" { "My caseload" } }
                            }
                            @if p.open_mode || matches!(p.role, crate::auth::Role::Manager | crate::auth::Role::Auditor) {
                                li { a href="/releases" { "Release calendar" } }
                                li { a href="/cases" { "Cases by status" } }
                            }
                            @if p.open_mode || matches!(p.role, crate::auth::Role::Manager | crate::auth::Role::Commissioner | crate::auth::Role::Auditor) {
                                li { a href="/kpis" { "KPIs" } }
                            }
                        }
                    }
                }
                main #main .wrap tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer.site { div.wrap { "throughcare · every change is an event in the ledger; nothing is edited." } }
            }
        }
    }
}

/// A plain page with a status (refusals, errors).
pub(crate) fn plain(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! { p { (message) } p { a href="/" { "Go to the home page" } } };
    (status, page(&Viewer::nobody(), title, body)).into_response()
}
