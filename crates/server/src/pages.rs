//! Server-rendered web pages: the home page (find a person, the release calendar) and a
//! person's journey timeline. Plain HTML with escaped text and no scripts from elsewhere.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Duration;
use serde::Deserialize;
use throughcare_events::{Identifier, PrisonCode, PILOT_PRISONS};
use throughcare_projections::{FlagCode, Journey};

use crate::api::parse_person;
use crate::problem::ApiError;
use crate::AppState;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
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
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} · throughcare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#212b32}}
h1{{font-size:1.6rem}} table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #d8dde0;padding:.35rem .5rem;text-align:left;vertical-align:top}} td:first-child{{white-space:nowrap}}
.flag{{background:#fde8e6;color:#8a1f11;padding:.1rem .4rem;border-radius:.3rem;margin-right:.3rem;font-size:.85rem}}
.status{{background:#e8f1f8;color:#005eb8;padding:.1rem .4rem;border-radius:.3rem}} .muted{{color:#4c6272;font-size:.9rem}}
a{{color:#005eb8}} header{{border-bottom:4px solid #005eb8;margin-bottom:1rem}}
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
    Query(q): Query<HomeQuery>,
) -> Result<Response, ApiError> {
    let mut notice = String::new();
    if let Some(raw) = q.identifier.filter(|s| !s.trim().is_empty()) {
        match raw.trim().parse::<Identifier>() {
            Ok(id) => match state.ledger.log().lookup_identifier(&id).await? {
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
    let releases = state.models.releases(from, to, prison)?;
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
    Ok(page("Release calendar", &body).into_response())
}

/// `GET /people/{id}`: a person's journey and timeline.
pub async fn person(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let person = parse_person(&id)?;
    let j: Journey = state
        .models
        .journey(person)?
        .ok_or_else(|| ApiError::not_found(format!("no journey for person {person}")))?;
    let v = j.view(state.ledger.now());
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
        .journey
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
    Ok(page(&format!("Journey of {}", j.person_id), &body).into_response())
}
