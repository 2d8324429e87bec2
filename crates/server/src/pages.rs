//! Server-rendered web pages: sign-in and sign-out, the home page for the caller's role
//! (a worker's caseload, a manager's release calendar, a commissioner's KPIs, an
//! auditor's search and calendar) and a person's journey timeline. Plain HTML with
//! escaped text and no scripts from elsewhere; what a page shows follows the same rules
//! as the API (`crate::access::policy`).

use axum::extract::{Extension, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{Datelike, Duration};
use serde::Deserialize;
use throughcare_events::{Identifier, PersonId, PrisonCode, PILOT_PRISONS};
use throughcare_ledger::AccessWhat;
use throughcare_projections::{contact_overdue, next_action, FlagCode, Journey};

use crate::access::policy::can_read;
use crate::access::{session, Caller, LogNote, ScopedJourney};
use crate::api::parse_person;
use crate::auth::{Principal, Role};
use crate::extract::{Form, Path, Query};
use crate::problem::ApiError;
use crate::AppState;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A code (status, flag) spelt as in the API.
fn code(value: &impl serde::Serialize) -> String {
    let name = serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    esc(&name)
}

/// A flag as a badge.
fn flag(f: FlagCode) -> String {
    format!("<span class=flag>{}</span>", code(&f))
}

fn page(title: &str, body: &str) -> Html<String> {
    page_for(None, title, body)
}

/// A page with the signed-in caller's name and a sign-out button in the header.
fn page_for(who: Option<&Principal>, title: &str, body: &str) -> Html<String> {
    let account = match who {
        Some(p) if !p.open_mode => format!(
            r#"<form method="post" action="/sign-out" class="account">Signed in as {} ({}) <button>Sign out</button></form>"#,
            esc(&p.name),
            p.role
        ),
        Some(_) => {
            "<p class=\"account flag\">Open development mode: no sign-in, loopback only</p>".into()
        }
        None => String::new(),
    };
    let body = format!("{account}{body}");
    let body = body.as_str();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · throughcare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#212b32}}
h1{{font-size:1.6rem}} table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #d8dde0;padding:.35rem .5rem;text-align:left;vertical-align:top}} td:first-child{{white-space:nowrap}}
.flag{{background:#fde8e6;color:#8a1f11;padding:.1rem .4rem;border-radius:.3rem;margin-right:.3rem;font-size:.85rem}}
.status{{background:#e8f1f8;color:#005eb8;padding:.1rem .4rem;border-radius:.3rem}} .muted{{color:#4c6272;font-size:.9rem}}
a{{color:#005eb8}} .account{{float:right;font-size:.9rem}} .badge strong{{padding:.1rem .45rem;border-radius:.3rem}}
.badge-verified strong{{background:#e3f4e8;color:#00703c}} .badge-pending strong{{background:#fff4c2;color:#594d00}} .badge-failed strong{{background:#8a1f11;color:#fff}} .badge-unchecked strong{{background:#e8edee;color:#4c6272}} label{{display:block;margin:.5rem 0}} header{{border-bottom:4px solid #005eb8;margin-bottom:1rem}}
</style></head><body><header><p><a href="/">throughcare</a> <span class="muted">continuity of care from prison to community · synthetic data only</span></p></header>
<h1>{t}</h1>{body}</body></html>"#,
        t = esc(title)
    ))
}

#[derive(Deserialize)]
pub struct HomeQuery {
    identifier: Option<String>,
    prison: Option<String>,
}

/// `GET /[?prison=WCI]`: find a person by any identifier; who is released in the last week
/// and the next four, with the gaps a manager must close.
pub async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    match who.role {
        _ if who.open_mode => {}
        Role::Worker => return worker_home(&state, who).await,
        Role::Commissioner => return commissioner_home(&state, who).await,
        Role::Manager | Role::Auditor | Role::Partner => {}
    }
    let mut notice = String::new();
    if let Some(raw) = q.identifier.filter(|s| !s.trim().is_empty()) {
        match raw.trim().parse::<Identifier>() {
            // Someone the caller may not read is not found, as over the API.
            Ok(id) => match readable(
                &state,
                who,
                state.ledger.log().lookup_identifier(&id).await?,
            )? {
                Some(p) => return Ok(Redirect::to(&format!("/people/{p}")).into_response()),
                None => {
                    notice = format!(
                        "<p class=flag>No person has identifier {}</p>",
                        esc(&id.to_string())
                    )
                }
            },
            Err(e) => notice = format!("<p class=flag>{}</p>", esc(&e)),
        }
    }
    let now = state.ledger.now();
    let today = now.date_naive();
    let prison = q.prison.as_deref().filter(|p| PrisonCode::parse(p).is_ok());
    let (from, to) = (today - Duration::days(7), today + Duration::days(28));
    let mut rows = String::new();
    let releases: Vec<_> = state
        .models
        .releases(from, to, prison)?
        .into_iter()
        .filter(|(_, j)| can_read(who, j))
        .collect();
    for (day, j) in &releases {
        let v = j.view(now);
        let released = j.released_at.is_some() && !j.in_custody;
        let gaps: String = [
            (j.status.is_open() && j.worker.is_none(), "unallocated"),
            (j.status.is_open() && j.plan.is_none(), "no plan"),
            (j.status.is_open() && !j.consent.engage, "no consent"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, label)| format!("<span class=flag>{label}</span>"))
        .collect();
        rows.push_str(&format!(
            "<tr><td>{day}</td><td>{kind}</td><td><a href=\"/people/{p}\">{ids}</a></td><td>{prison}</td><td><span class=status>{s}</span></td><td>{worker}</td><td>{gaps}{flags}</td></tr>",
            kind = if released { "released" } else { "expected" },
            p = j.person_id,
            ids = esc(&j.identifiers.nomis.iter().next().cloned().unwrap_or_else(|| j.person_id.to_string())),
            prison = esc(j.prison.as_deref().unwrap_or("")),
            s = code(&j.status),
            worker = esc(j.worker.as_ref().map(|w| w.worker_id.as_str()).unwrap_or("")),
            flags = v.active_flags.iter().map(|f| flag(*f)).collect::<String>(),
        ));
    }
    let prisons: String = PILOT_PRISONS
        .iter()
        .filter(|p| who.open_mode || who.role == Role::Auditor || who.covers_prison(p))
        .map(|p| {
            format!(
                "<a href=\"/?prison={p}\">{p} {}</a> · ",
                esc(PrisonCode::parse(p).map(|c| c.name()).unwrap_or(""))
            )
        })
        .collect();
    let body = format!(
        r#"<form method="get" action="/"><label>Find a person by identifier
<input name="identifier" placeholder="nomis:A1234BC, nhs:9434765919, crn:X123456" size="40"></label> <button>Find</button></form>{notice}
<h2>Release calendar {from} to {to}{which}</h2>
<p class="muted">Pilot prisons: {prisons}<a href="/">all</a>. Read models at position {cp}. {n} releases.
KPIs: <a href="/v1/kpis{kq}">/v1/kpis</a>.</p>
<table><thead><tr><th>Date</th><th></th><th>Person</th><th>Prison</th><th>Status</th><th>Worker</th><th>Gaps and flags</th></tr></thead><tbody>{rows}</tbody></table>"#,
        which = prison.map(|p| format!(" at {p}")).unwrap_or_default(),
        kq = prison.map(|p| format!("?prison={p}")).unwrap_or_default(),
        n = releases.len(),
        cp = state.models.checkpoint(),
    );
    Ok(page_for(Some(who), "Release calendar", &body).into_response())
}

/// The person, if the caller may read them.
fn readable(
    state: &AppState,
    who: &Principal,
    person: Option<throughcare_events::PersonId>,
) -> Result<Option<throughcare_events::PersonId>, ApiError> {
    let Some(p) = person else { return Ok(None) };
    if who.open_mode || who.role == Role::Auditor {
        return Ok(Some(p));
    }
    Ok(state
        .models
        .journey(p)?
        .filter(|j| can_read(who, j))
        .map(|_| p))
}

/// A worker's home: its caseload, overdue contact first.
async fn worker_home(state: &AppState, who: &Principal) -> Result<Response, ApiError> {
    let now = state.ledger.now();
    let worker = who.worker_id.clone().unwrap_or_default();
    let mut cases = state.models.caseload(&worker)?;
    cases.sort_by_key(|j| {
        (
            !contact_overdue(j, now),
            j.release_date.as_ref().map(|r| r.date),
        )
    });
    let rows: String = cases
        .iter()
        .map(|j| {
            let v = j.view(now);
            format!(
                "<tr><td><a href=\"/people/{p}\">{ids}</a></td><td><span class=status>{s}</span></td><td>{rd}</td><td>{next}</td><td>{overdue}{flags}</td></tr>",
                p = j.person_id,
                ids = esc(&j.identifiers.nomis.iter().next().cloned().unwrap_or_else(|| j.person_id.to_string())),
                s = code(&j.status),
                rd = j.release_date.as_ref().map(|r| r.date.to_string()).unwrap_or_else(|| "—".into()),
                next = code(&next_action(j, now)),
                overdue = if contact_overdue(j, now) { "<span class=flag>contact overdue</span>" } else { "" },
                flags = v.active_flags.iter().map(|f| flag(*f)).collect::<String>(),
            )
        })
        .collect();
    let body = format!(
        r#"<p class="muted">{n} open cases allocated to {w}.</p>
<table><thead><tr><th>Person</th><th>Status</th><th>Release date</th><th>Next action</th><th>Flags</th></tr></thead><tbody>{rows}</tbody></table>"#,
        n = cases.len(),
        w = esc(&worker),
    );
    Ok(page_for(Some(who), "My caseload", &body).into_response())
}

/// A commissioner's home: this year's KPIs for its prisons, suppressed as over the API.
async fn commissioner_home(state: &AppState, who: &Principal) -> Result<Response, ApiError> {
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
    let rows: String = months
        .iter()
        .map(|m| {
            let p = m.published();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["prison"].as_str().unwrap_or("")),
                esc(p["month"].as_str().unwrap_or("")),
                esc(&cell(&p["referrals_total"])),
                esc(&cell(&p["released_with_plan"])),
                esc(&cell(&p["contacted_within_72h_of_release"])),
                esc(&cell(&p["gp_registered_within_28d_of_release"])),
            )
        })
        .collect();
    let body = format!(
        r#"<p class="muted">Counts from 1 to 4 are shown as "&lt;5", a further count that would give one away as "*", and the rates built on them are withheld. Full figures: <a href="/v1/kpis">/v1/kpis</a>.</p>
<table><thead><tr><th>Prison</th><th>Month</th><th>Referrals</th><th>Released with a plan</th><th>Contacted within 72 h</th><th>GP-registered within 28 days</th></tr></thead><tbody>{rows}</tbody></table>"#
    );
    Ok(page_for(Some(who), "Service KPIs", &body).into_response())
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `GET /sign-in`: one field, a bearer token or a JWT.
pub async fn sign_in_form(State(state): State<AppState>) -> Response {
    sign_in_page(&state, StatusCode::OK, "")
}

fn sign_in_page(state: &AppState, status: StatusCode, error: &str) -> Response {
    let body = if state.auth.is_none() {
        r#"<p>This server runs in open development mode: no sign-in is needed. <a href="/">Continue</a>.</p>"#.to_string()
    } else {
        let error = if error.is_empty() {
            String::new()
        } else {
            format!(
                r##"<div class="flag" role="alert" id="error-summary"><p>{}</p><a href="#token">Check the token</a></div>"##,
                esc(error)
            )
        };
        format!(
            r#"{error}<form method="post" action="/sign-in"><label for="token">Your access token or identity-provider token (JWT)</label>
<input id="token" name="token" type="password" autocomplete="off" size="60" required> <button>Sign in</button></form>
<p class="muted">The token is checked once; the browser keeps only a session cookie, which ends when you sign out or after 8 hours.</p>"#
        )
    };
    (status, page("Sign in", &body)).into_response()
}

/// `POST /sign-in`: checks the token and starts a session.
pub async fn sign_in(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    match auth.authenticate(form.token.trim()).await {
        Ok(principal) => {
            let id = state.sessions.start(principal, session::SESSION_TTL);
            (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&id, state.secure_cookies),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let mut page = sign_in_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &format!("That token was not accepted: {e}"),
            );
            page.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"throughcare\""),
            );
            // A refused sign-in is a refusal like any other: on the record.
            page.extensions_mut().insert(LogNote {
                what: Some(AccessWhat::Denied),
                denied: true,
                ..LogNote::default()
            });
            page
        }
    }
}

/// `POST /sign-out`: ends the session.
pub async fn sign_out(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(id) = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
    {
        state.sessions.end(id);
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

#[derive(Deserialize)]
pub struct PersonQuery {
    /// The date picker's day (what was known by its end, UTC) or an RFC 3339 time.
    as_of: Option<String>,
}

/// `GET /people/{id}[?as_of=DAY]`: a person's journey and timeline, now or as the ledger
/// knew it then (the guard checked the caller's scope on the journey now).
pub async fn person(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<PersonQuery>,
    scoped: Option<Extension<ScopedJourney>>,
) -> Result<Response, ApiError> {
    let person = parse_person(&id)?;
    let cut = match crate::as_of::parse_page_as_of(q.as_of.as_deref())? {
        Some(t) => crate::as_of::cut_at(&state, t).await?,
        None => None,
    };
    let j: Journey = match (cut, scoped) {
        (Some(cut), _) => crate::as_of::journey(&state, person, cut).await?,
        (None, Some(Extension(ScopedJourney(j)))) => j.as_ref().clone(),
        (None, None) => state
            .models
            .journey(person)?
            .ok_or_else(|| ApiError::unknown_person(person))?,
    };
    let v = j.view(cut.map_or_else(|| state.ledger.now(), |c| c.at));
    let as_of_form = format!(
        r#"<form method="get" action="/people/{p}" class="as-of">{glass}<label>As of the end of (UTC) <input type="date" name="as_of" value="{day}"></label> <button>Show</button> <a href="/people/{p}">now</a></form>{notice}"#,
        p = j.person_id,
        // A break-glass read keeps its purpose and reason when it looks back.
        glass = caller
            .reason
            .as_ref()
            .map(|r| format!(
                r#"<input type="hidden" name="purpose" value="{}"><input type="hidden" name="reason" value="{}">"#,
                caller.purpose.as_str(),
                esc(r)
            ))
            .unwrap_or_default(),
        day = cut.map(|c| c.at.date_naive().to_string()).unwrap_or_default(),
        notice = cut
            .map(|c| format!(
                "<p class=flag role=status>As the ledger knew it at {} (events up to position {}); later events are not shown.</p>",
                c.at.format("%Y-%m-%d %H:%M:%S UTC"),
                c.position
            ))
            .unwrap_or_default(),
    );
    let mut timeline = String::new();
    for t in j.timeline.iter().rev() {
        timeline.push_str(&format!(
            "<tr><td>{pos}</td><td>{occ}</td><td>{rec}</td><td>{summary}{corr}</td><td class=muted>{src}</td></tr>",
            pos = t.position,
            occ = t.occurred_at.format("%Y-%m-%d %H:%M"),
            rec = t.recorded_at.format("%Y-%m-%d %H:%M"),
            summary = esc(&t.summary),
            corr = t.corrected_by.map(|p| format!(" <span class=flag>corrected by {p}</span>")).unwrap_or_default(),
            src = esc(&t.source),
        ));
    }
    let flags: String = v
        .flags
        .iter()
        .filter(|f| f.cleared_by.is_none())
        .map(|f| {
            format!(
                "<span class=flag>{}</span>",
                esc(serde_json::to_value(f.code)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or(""))
            )
        })
        .collect();
    let signposts: String = j
        .signposts
        .iter()
        .map(|s| {
            format!(
                "<li>{} {:?} to {} — {}</li>",
                esc(&s.signpost_id),
                s.mode,
                esc(&s.org),
                s.outcome.map(|o| o.as_str()).unwrap_or("awaiting outcome")
            )
        })
        .collect();
    let body = format!(
        r#"<p><span class=status>{status}</span> {flags}</p>
<table><tbody>
<tr><th>Identifiers</th><td>{ids}</td></tr>
<tr><th>Prison</th><td>{prison} {custody}</td></tr>
<tr><th>Release date</th><td>{rd}</td></tr>
<tr><th>Worker</th><td>{worker}</td></tr>
<tr><th>Support window</th><td>{ss} to {se}</td></tr>
<tr><th>Episodes</th><td>{episodes}</td></tr>
</tbody></table>
<h2>Signposting</h2><ul>{signposts}</ul>
<h2>Timeline</h2><p class=muted>Occurred is when it happened; recorded is when the ledger learnt it.</p>
<table><thead><tr><th>#</th><th>Occurred</th><th>Recorded</th><th>What</th><th>Source</th></tr></thead><tbody>{timeline}</tbody></table>
<p class=muted><a href="/v1/people/{p}/journey">journey JSON</a> · <a href="/v1/people/{p}/events">recorded events</a> · <a href="/v1/people/{p}/verify">verify chain</a></p>"#,
        status = code(&j.status),
        ids = esc(&j.identifiers.all().join(", ")),
        prison = esc(j.prison.as_deref().unwrap_or("—")),
        custody = if j.in_custody {
            "(in custody)"
        } else {
            "(in the community)"
        },
        rd = j
            .release_date
            .as_ref()
            .map(|r| format!("{} ({})", r.date, r.date_type))
            .unwrap_or_else(|| "—".into()),
        worker = j
            .worker
            .as_ref()
            .map(|w| esc(&format!("{} ({})", w.worker_id, w.role)))
            .unwrap_or_else(|| "unallocated".into()),
        ss = v
            .support_start
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into()),
        se = v
            .support_end
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into()),
        episodes = j.episodes.len(),
        p = j.person_id,
    );
    let badge = verified_badge(&state, person).await;
    let glass = if caller.review {
        "<p class=flag role=alert>Emergency access: this read is recorded for review.</p>"
    } else {
        ""
    };
    Ok(page_for(
        Some(&caller.principal),
        &format!("Journey of {}", j.person_id),
        &format!("{glass}{badge}{as_of_form}{body}"),
    )
    .into_response())
}

/// What the page can say about the integrity of a person's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// The chain checks from the stored bytes and the last event (`position`) is proven
    /// in the signed checkpoint of `size` entries.
    Yes { position: u64, size: u64 },
    /// The chain checks, but the last event is later than the latest signed checkpoint
    /// (`None`: no checkpoint yet).
    NotYetInCheckpoint { position: u64, size: Option<u64> },
    /// Something does not check: what.
    Failed(String),
    /// It cannot be checked now (no audit tree kept, a store not answering): why.
    Unchecked(String),
}

/// Checks a person's record as an outside client would, from what the ledger routes
/// serve: every event's stored bytes hash to its `hash` and the `prev` links form the
/// chain; the latest checkpoint's signature verifies with the verifier key and names this
/// ledger's origin; and the RFC 9162 inclusion proof of the last event's leaf
/// (SHA-256(0x00 || stored)) leads to the checkpoint's signed root
/// (`throughcare_tlog::verify_inclusion`). No stored flag is trusted.
pub(crate) async fn verify_record(state: &AppState, person: PersonId) -> Verified {
    let events = match state.ledger.history(person).await {
        Ok(events) => events,
        Err(throughcare_ledger::Error::Corrupt(why)) => {
            tracing::error!(%why, %person, "a person's record cannot be read back");
            return Verified::Failed("the record cannot be read back intact".into());
        }
        Err(e) => return Verified::Unchecked(format!("the log is not answering ({e})")),
    };
    let Some(last) = events.last() else {
        return Verified::Failed("no recorded events".into());
    };
    if let Some(bad) = events
        .iter()
        .find(|e| throughcare_events::Hash::of(e.stored.as_bytes()) != e.hash)
    {
        return Verified::Failed(format!(
            "the stored bytes of position {} do not hash to its hash",
            bad.position
        ));
    }
    if let Err(b) = throughcare_events::verify_chain(person, &events) {
        return Verified::Failed(format!(
            "the chain breaks at position {}: {}",
            b.position, b.detail
        ));
    }
    let Some(audit) = state.ledger_audit.as_deref() else {
        return Verified::Unchecked("this server keeps no audit tree".into());
    };
    let checkpoint = match crate::ledger_api::latest_opened(audit) {
        Err(e) => return Verified::Unchecked(e.detail),
        Ok(None) => {
            return Verified::NotYetInCheckpoint {
                position: last.position,
                size: None,
            }
        }
        Ok(Some((_, Err(e)))) => {
            return Verified::Failed(format!(
                "the latest checkpoint does not verify with the verifier key: {e}"
            ))
        }
        Ok(Some((_, Ok(c)))) => c,
    };
    if checkpoint.origin != audit.origin {
        return Verified::Failed(format!(
            "the latest checkpoint is of another log ({})",
            checkpoint.origin
        ));
    }
    if last.position > checkpoint.size {
        return Verified::NotYetInCheckpoint {
            position: last.position,
            size: Some(checkpoint.size),
        };
    }
    let leaf_index = last.position - 1;
    let proof = match audit.tree.inclusion_proof(leaf_index, checkpoint.size) {
        Ok(p) => p,
        Err(e) => return Verified::Unchecked(format!("no inclusion proof now ({e})")),
    };
    let leaf = throughcare_tlog::leaf_hash(last.stored.as_bytes());
    match throughcare_tlog::verify_inclusion(
        &leaf,
        leaf_index,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    ) {
        Ok(()) => Verified::Yes {
            position: last.position,
            size: checkpoint.size,
        },
        Err(e) => Verified::Failed(format!(
            "position {} is not proven in the signed checkpoint of size {}: {e}",
            last.position, checkpoint.size
        )),
    }
}

/// The badge of [`verify_record`], as HTML.
async fn verified_badge(state: &AppState, person: PersonId) -> String {
    let (class, label, detail) = match verify_record(state, person).await {
        Verified::Yes { position, size } => (
            "verified",
            "verified".to_string(),
            format!("the hash chain checks from the stored bytes, and the last event (position {position}) is proven in the signed checkpoint of {size} entries"),
        ),
        Verified::NotYetInCheckpoint { position, size } => (
            "pending",
            "not yet in a checkpoint".to_string(),
            match size {
                Some(size) => format!("the hash chain checks; the last event (position {position}) is later than the latest signed checkpoint ({size} entries), which is signed at least every 1,000 events or 60 seconds"),
                None => format!("the hash chain checks; no checkpoint has been signed yet to prove the last event (position {position})"),
            },
        ),
        Verified::Failed(why) => ("failed", "verification failed".to_string(), why),
        Verified::Unchecked(why) => ("unchecked", "not checked".to_string(), why),
    };
    format!(
        r#"<p class="badge badge-{class}" role=status><strong>{}</strong> <span class=muted>{}</span></p>"#,
        esc(&label),
        esc(&detail)
    )
}
