//! The home page for the caller's role (`GET /`): a worker's caseload, a manager's or an
//! auditor's release calendar with the gaps to close and an identifier search, a
//! commissioner's KPI summary; `GET /releases`, the release calendar itself (a manager's
//! or an auditor's `/`); and `GET /caseload`, a worker's open cases with the overdue ones
//! first.

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Datelike, Duration};
use maud::{html, Markup};
use serde::Deserialize;
use throughcare_events::{Identifier, PersonId, PrisonCode, PILOT_PRISONS};
use throughcare_ledger::AccessWhat;
use throughcare_projections::{contact_overdue, next_action, Journey};

use super::{code, flag, page, words, Viewer};
use crate::access::scoped::{self, Found};
use crate::access::{Caller, LogNote};
use crate::auth::{Principal, Role};
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct HomeQuery {
    identifier: Option<String>,
    prison: Option<String>,
}

/// The name a page shows for a person: a prison number, else the ledger id.
pub(crate) fn label(j: &Journey) -> String {
    j.identifiers
        .nomis
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| j.person_id.to_string())
}

/// `GET /[?prison=WCI][?identifier=...]`: the page for the caller's role.
pub async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    let viewer = Viewer::of(&state, who, &headers);
    match who.role {
        _ if who.open_mode => {}
        // A worker's home is its caseload; a search from it works as from the calendar.
        Role::Worker => {
            return match search(&state, &caller, &q).await? {
                Searched::Go(r) => Ok(r),
                Searched::Nothing => caseload_page(&state, &caller, &viewer, None),
                Searched::NotFound { note, .. } => Ok(with_note(
                    caseload_page(&state, &caller, &viewer, None)?,
                    note,
                )),
            }
        }
        Role::Commissioner => return commissioner_home(&state, &viewer, who),
        Role::Manager | Role::Auditor | Role::Partner => {}
    }
    calendar(&state, &caller, &viewer, &q, "/").await
}

/// `GET /releases[?prison=WCI][?identifier=...]`: the release calendar of the caller's
/// prisons (a manager's and an auditor's home page, at a path of its own).
pub async fn releases(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    let viewer = Viewer::of(&state, who, &headers);
    calendar(&state, &caller, &viewer, &q, "/releases").await
}

/// The release calendar (last week and the next four) with its gaps and an identifier
/// search, its links and form pointing back at `base`.
async fn calendar(
    state: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    q: &HomeQuery,
    base: &str,
) -> Result<Response, ApiError> {
    match search(state, caller, q).await? {
        Searched::Go(r) => Ok(r),
        Searched::Nothing => calendar_page(state, caller, viewer, q, base, None),
        Searched::NotFound { notice, note } => {
            let r = calendar_page(state, caller, viewer, q, base, Some(notice))?;
            Ok(with_note(r, note))
        }
    }
}

/// What a page's identifier search (`?identifier=`) came to.
enum Searched {
    /// No search asked for.
    Nothing,
    /// To the person's page (a person the caller may read; on the record).
    Go(Response),
    /// Nobody the caller may read: the page again with a notice, and the refusal's
    /// access-log note when someone out of scope holds the identifier.
    NotFound {
        notice: String,
        note: Option<LogNote>,
    },
}

/// Looks `?identifier=` up as the API would answer the caller. The value is read in
/// upper case (`nomis:a1234bc` is `nomis:A1234BC`): another spelling of the same number
/// finds the same person, and is on the record the same way.
async fn search(state: &AppState, caller: &Caller, q: &HomeQuery) -> Result<Searched, ApiError> {
    let Some(raw) = q
        .identifier
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Ok(Searched::Nothing);
    };
    let normal = match raw.split_once(':') {
        Some((kind, value)) => format!(
            "{}:{}",
            kind.to_ascii_lowercase(),
            value.to_ascii_uppercase()
        ),
        None => raw.to_string(),
    };
    let id = match normal.parse::<Identifier>() {
        Ok(id) => id,
        Err(e) => {
            return Ok(Searched::NotFound {
                notice: e,
                note: None,
            })
        }
    };
    Ok(match scoped::find(state, caller, &id).await? {
        Found::Readable(p) => Searched::Go(with_note(
            Redirect::to(&format!("/people/{p}")).into_response(),
            Some(LogNote {
                what: Some(AccessWhat::ReadIdentity),
                person: Some(p),
                ..LogNote::default()
            }),
        )),
        // Someone the caller may not read is not found, as over the API.
        Found::NotFound(someone) => Searched::NotFound {
            notice: format!("No person has identifier {id}"),
            note: someone.map(|p| LogNote {
                what: Some(AccessWhat::ReadIdentity),
                person: Some(p),
                denied: true,
                ..LogNote::default()
            }),
        },
    })
}

/// A page's response with the access-log note that replaces the page's own.
fn with_note(mut r: Response, note: Option<LogNote>) -> Response {
    if let Some(note) = note {
        r.extensions_mut().insert(note);
    }
    r
}

/// The calendar page itself, a list on the record with the people it shows.
fn calendar_page(
    state: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    q: &HomeQuery,
    base: &str,
    notice: Option<String>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    let now = state.ledger.now();
    let today = now.date_naive();
    let prison = q.prison.as_deref().filter(|p| PrisonCode::parse(p).is_ok());
    let (from, to) = (today - Duration::days(7), today + Duration::days(28));
    let releases = scoped::releases(&state.models, state, caller, false, from, to, prison)?;
    let shown: Vec<PersonId> = releases.iter().map(|(_, j)| j.person_id).collect();
    let prisons: Vec<&str> = PILOT_PRISONS
        .iter()
        .copied()
        .filter(|p| who.open_mode || who.role == Role::Auditor || who.covers_prison(p))
        .collect();
    let kq = prison.map(|p| format!("?prison={p}")).unwrap_or_default();
    let body = html! {
        form method="get" action=(base) {
            div class=@if notice.is_some() { "field-error" } {
                label for="identifier" { "Find a person by identifier" }
                span.hint #identifier-hint { "For example nomis:A1234BC, nhs:9434765919 or crn:X123456" }
                @if let Some(n) = &notice {
                    span.error-message #identifier-error { span.visually-hidden { "Error: " } (n) }
                }
                div.inline {
                    input #identifier name="identifier" size="40" value=[q.identifier.as_deref()]
                        aria-describedby=(if notice.is_some() { "identifier-hint identifier-error" } else { "identifier-hint" });
                    button type="submit" { "Find" }
                }
            }
        }
        h2 { "Release calendar " (from) " to " (to) @if let Some(p) = prison { " at " (p) } }
        p.muted {
            "Pilot prisons: "
            @for p in &prisons {
                a href={ (base) "?prison=" (p) } { (p) " " (PrisonCode::parse(p).map(|c| c.name()).unwrap_or("")) } " · "
            }
            a href=(base) { "all" } ". Read models at position " (state.models.checkpoint()) ". "
            (releases.len()) " releases. KPIs: " a href={ "/v1/kpis" (kq) } { "/v1/kpis" } "."
        }
        table {
            caption.visually-hidden { "Releases in the last week and the next four weeks" }
            thead { tr { th scope="col" { "Date" } th scope="col" { "Released or expected" } th scope="col" { "Person" }
                th scope="col" { "Prison" } th scope="col" { "Status" } th scope="col" { "Worker" } th scope="col" { "Gaps and flags" } } }
            tbody {
                @for (day, j) in &releases {
                    @let v = j.view(now);
                    tr {
                        td { (day) }
                        td { @if j.released_at.is_some() && !j.in_custody { "released" } @else { "expected" } }
                        td { a href={ "/people/" (j.person_id) } { (label(j)) } }
                        td { (j.prison.as_deref().unwrap_or("")) }
                        td { span.tag.tag-status { (words(&code(&j.status))) } }
                        td { (j.worker.as_ref().map(|w| w.worker_id.as_str()).unwrap_or("unallocated")) }
                        td {
                            @if j.status.is_open() && j.worker.is_none() { span.tag.tag-warn { "unallocated" } }
                            @if j.status.is_open() && j.plan.is_none() { span.tag.tag-warn { "no plan" } }
                            @if j.status.is_open() && !j.consent.engage { span.tag.tag-warn { "no consent" } }
                            @for f in &v.active_flags { (flag(*f)) }
                        }
                    }
                }
            }
        }
    };
    Ok(crate::api::listed(
        page(viewer, "Release calendar", body).into_response(),
        AccessWhat::ReadList,
        shown,
    ))
}

#[derive(Deserialize)]
pub struct CaseloadQuery {
    /// Whose caseload (open development mode only: a worker always sees its own).
    worker: Option<String>,
}

/// `GET /caseload`: the signed-in worker's open cases, overdue contact first.
pub async fn caseload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<CaseloadQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    let viewer = Viewer::of(&state, who, &headers);
    caseload_page(&state, &caller, &viewer, q.worker)
}

/// The order of a caseload: contact overdue first, then the soonest release (people
/// without a release date last), then the longest without contact.
pub(crate) fn caseload_order(cases: &mut [Journey], now: chrono::DateTime<chrono::Utc>) {
    cases.sort_by_key(|j| {
        (
            !contact_overdue(j, now),
            j.release_date.as_ref().map(|r| r.date).is_none(),
            j.release_date.as_ref().map(|r| r.date),
            j.last_contact_at,
        )
    });
}

fn caseload_page(
    state: &AppState,
    caller: &Caller,
    viewer: &Viewer<'_>,
    asked: Option<String>,
) -> Result<Response, ApiError> {
    let now = state.ledger.now();
    let today = now.date_naive();
    let (worker, mut cases) = scoped::own_caseload(state, caller, asked)?;
    let worker = worker.as_str();
    let shown: Vec<PersonId> = cases.iter().map(|j| j.person_id).collect();
    caseload_order(&mut cases, now);
    let overdue = cases.iter().filter(|j| contact_overdue(j, now)).count();
    let body: Markup = html! {
        @if viewer.principal.is_some_and(|p| p.open_mode) {
            form method="get" action="/caseload" {
                label for="worker" { "Worker id" }
                div.inline { input #worker name="worker" value=(worker); button type="submit" { "Show caseload" } }
            }
        }
        p { (cases.len()) @if cases.len() == 1 { " open case" } @else { " open cases" } " allocated to " strong { (worker) } "; "
            (overdue) " with contact overdue." }
        table {
            caption.visually-hidden { "Open cases, contact overdue first" }
            thead { tr { th scope="col" { "Person" } th scope="col" { "Status" } th scope="col" { "Release date" }
                th scope="col" { "Days to release" } th scope="col" { "Next action" } th scope="col" { "Flags" } } }
            tbody {
                @for j in &cases {
                    @let v = j.view(now);
                    tr {
                        td { a href={ "/people/" (j.person_id) } { (label(j)) } }
                        td { span.tag.tag-status { (words(&code(&j.status))) } }
                        td { (j.release_date.as_ref().map(|r| r.date.to_string()).unwrap_or_else(|| "none".into())) }
                        td {
                            @match (j.released_at.filter(|_| !j.in_custody), j.release_date.as_ref()) {
                                (Some(at), _) => { "released " ((today - at.date_naive()).num_days()) " days ago" }
                                (None, Some(r)) => {
                                    @let d = (r.date - today).num_days();
                                    @if d >= 0 { (d) " days" } @else { (-d) " days past" }
                                }
                                (None, None) => { "no date" }
                            }
                        }
                        td { (words(&code(&next_action(j, now)))) }
                        td {
                            @if contact_overdue(j, now) { span.tag.tag-warn { "contact overdue" } }
                            @for f in &v.active_flags { (flag(*f)) }
                        }
                    }
                }
            }
        }
    };
    Ok(crate::api::listed(
        page(viewer, "My caseload", body).into_response(),
        AccessWhat::ReadCaseload,
        shown,
    ))
}

/// A commissioner's home: this year's KPIs for its prisons, suppressed as over the API.
fn commissioner_home(
    state: &AppState,
    viewer: &Viewer<'_>,
    who: &Principal,
) -> Result<Response, ApiError> {
    let now = state.ledger.now();
    let today = now.date_naive();
    let from = today.with_day(1).unwrap_or(today) - Duration::days(180);
    let facts = state.models.episode_facts(None)?;
    let mut months = throughcare_projections::kpis(facts, None, from, today, now);
    months.retain(|m| who.covers_prison(&m.prison));
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::Object(o) => o
            .get("rate")
            .filter(|r| !r.is_null())
            .map(|r| {
                format!(
                    "{r} ({} / {})",
                    o.get("numerator").unwrap_or(&serde_json::Value::Null),
                    o.get("denominator").unwrap_or(&serde_json::Value::Null)
                )
            })
            .unwrap_or_else(|| "withheld".into()),
        other => other.to_string(),
    };
    let body = html! {
        p.muted { "Counts from 1 to 4 are shown as \"<5\", a further count that would give one away as \"*\", and the rates built on them are withheld. Full figures: "
            a href="/v1/kpis" { "/v1/kpis" } "." }
        table {
            caption.visually-hidden { "KPIs per prison and month" }
            thead { tr { th scope="col" { "Prison" } th scope="col" { "Month" } th scope="col" { "Referrals" }
                th scope="col" { "Released with a plan" } th scope="col" { "Contacted within 72 h" }
                th scope="col" { "GP-registered within 28 days" } } }
            tbody {
                @for m in &months {
                    @let p = m.published();
                    tr {
                        td { (p["prison"].as_str().unwrap_or("")) }
                        td { (p["month"].as_str().unwrap_or("")) }
                        td { (cell(&p["referrals_total"])) }
                        td { (cell(&p["released_with_plan"])) }
                        td { (cell(&p["contacted_within_72h_of_release"])) }
                        td { (cell(&p["gp_registered_within_28d_of_release"])) }
                    }
                }
            }
        }
    };
    Ok(page(viewer, "Service KPIs", body).into_response())
}
