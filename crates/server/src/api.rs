//! The v1 JSON API handlers.

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};
use throughcare_events::{PersonId, PrisonCode, RecordedEvent, MAX_BODY_BYTES};
use throughcare_projections::{contact_overdue, next_action};

use crate::access::scoped;
use crate::access::{Caller, LogNote, ScopedPerson, ScopedWorker, Subject};
use crate::as_of::{self, AsOf};
use crate::auth::Role;
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::submit;
use throughcare_ledger::AccessWhat;

pub use crate::state::FRESHNESS_WAIT;

/// `POST /v1/events`: one CloudEvent or a batch.
pub async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::extract::parse_media);
    // The guard has limited the body to the route's limit and deadline: a failed read is
    // one of those (or the client went away).
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            state.metrics.invalid();
            crate::body::refusal(&e, MAX_BODY_BYTES)
        })?;
    match submit::submit(&state, &caller.principal, media.as_deref(), &body).await {
        Ok((status, reply)) => Ok((status, Json(reply)).into_response()),
        Err(refusal) => {
            let note = refusal.note();
            let mut response = refusal.error.into_response();
            if let Some(note) = note {
                response.extensions_mut().insert(note);
            }
            Ok(response)
        }
    }
}

/// `GET /v1/people?identifier=nomis:A1234BC`: the guard has resolved the identifier and
/// decided the caller may read the person (anyone else got its 404).
pub async fn find_person(subject: Subject) -> Result<Response, ApiError> {
    match subject {
        Subject::Known { person, identifier } => Ok(Json(
            json!({ "person_id": person.id(), "identifier": identifier.to_string() }),
        )
        .into_response()),
        Subject::Unknown { identifier } => Err(ApiError::not_found(format!(
            "no person has identifier {}",
            identifier.map(|i| i.to_string()).unwrap_or_default()
        ))),
    }
}

#[derive(Deserialize)]
pub struct JourneyQuery {
    min_position: Option<u64>,
}

/// Waits for the read models to reach `min`, else a 503 naming where they are.
pub async fn fresh(state: &AppState, min: Option<u64>) -> Result<(), ApiError> {
    let Some(min) = min else { return Ok(()) };
    if state.models.wait_for(min, FRESHNESS_WAIT).await {
        return Ok(());
    }
    Err(ApiError::unavailable(format!(
        "read models are at position {} and have not reached {min} yet",
        state.models.checkpoint()
    ))
    .with("checkpoint", json!(state.models.checkpoint())))
}

/// `GET /v1/people/{id}/journey[?min_position=N][?as_of=T|?at_position=P]`
pub async fn journey(
    State(state): State<AppState>,
    person: ScopedPerson,
    Query(q): Query<JourneyQuery>,
    AsOf(cut): AsOf,
) -> Result<Response, ApiError> {
    // The past: the person's events up to the cut, folded afresh and read at the cut's
    // time. The guard has checked the caller's scope on the journey now.
    if let Some(cut) = cut {
        let j = as_of::journey(&state, &person, cut).await?;
        return Ok(Json(j.view(cut.at)).into_response());
    }
    fresh(&state, q.min_position).await?;
    // The guard read the journey for the scope check after the same wait.
    let j = person.journey_checked_or_now(&state)?;
    Ok(Json(j.view(state.ledger.now())).into_response())
}

fn recorded_json(e: &RecordedEvent) -> Value {
    json!({
        "position": e.position,
        "person_id": e.person_id,
        "recorded_at": e.recorded_at,
        "prev": e.prev,
        "hash": e.hash,
        "event": e.event,
        // The exact stored bytes `hash` is over (DESIGN.md "Audit").
        "stored": &*e.stored,
    })
}

/// `GET /v1/people/{id}/events`: the recorded events in order, with the hash chain.
pub async fn person_events(
    State(state): State<AppState>,
    person: ScopedPerson,
) -> Result<Json<Value>, ApiError> {
    let events = person.history(&state).await?;
    if events.is_empty() {
        return Err(ApiError::unknown_person(person.id()));
    }
    Ok(Json(json!({
        "person_id": person.id(),
        "events": events.iter().map(recorded_json).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/people/{id}/verify`: recomputes the person's hash chain from the stored bytes.
pub async fn verify(
    State(state): State<AppState>,
    person: ScopedPerson,
) -> Result<Json<Value>, ApiError> {
    let report = person.verify(&state).await?;
    if report.events == 0 {
        return Err(ApiError::unknown_person(person.id()));
    }
    Ok(Json(json!(report)))
}

/// `GET /v1/caseload/{worker_id}[?as_of=T|?at_position=P]`: the worker's open cases,
/// most urgent first.
pub async fn caseload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    worker: ScopedWorker,
    AsOf(cut): AsOf,
) -> Result<Response, ApiError> {
    // A manager sees the worker's cases at its own prisons only.
    let (now, journeys) = match cut {
        None => (
            state.ledger.now(),
            worker.caseload(&state.models, &state, &caller, false)?,
        ),
        Some(cut) => {
            let replay = state.replays.at(cut.position).await?;
            (cut.at, worker.caseload(&replay, &state, &caller, true)?)
        }
    };
    let shown: Vec<PersonId> = journeys.iter().map(|j| j.person_id).collect();
    let mut cases: Vec<(bool, Option<i64>, Value)> = journeys
        .into_iter()
        .map(|j| {
            let v = j.view(now);
            let overdue = contact_overdue(&j, now);
            let days = j
                .release_date
                .as_ref()
                .filter(|_| j.in_custody)
                .map(|r| (r.date - now.date_naive()).num_days());
            let row = json!({
                "person_id": j.person_id,
                "identifiers": j.identifiers,
                "state": j.status,
                "prison": j.prison,
                "in_custody": j.in_custody,
                "release_date": j.release_date.as_ref().map(|r| r.date),
                "days_to_release": days,
                "released_at": j.released_at,
                "consent": j.consent,
                "next_action": next_action(&j, now),
                "overdue_contact": overdue,
                "last_contact_at": j.last_contact_at,
                "support_end": v.support_end,
                "flags": v.active_flags,
            });
            (overdue, days, row)
        })
        .collect();
    // Overdue contact first, then the soonest release.
    cases.sort_by_key(|(overdue, days, _)| (!overdue, days.unwrap_or(i64::MAX)));
    let cases: Vec<Value> = cases.into_iter().map(|(_, _, v)| v).collect();
    Ok(listed(
        Json(json!({ "worker_id": worker.worker_id(), "as_of": now,
                     "at_position": cut.map(|c| c.position), "cases": cases }))
        .into_response(),
        AccessWhat::ReadCaseload,
        shown,
    ))
}

/// Marks a list's response with the people it showed, for its access-log entry.
pub fn listed(mut response: Response, what: AccessWhat, people: Vec<PersonId>) -> Response {
    response.extensions_mut().insert(LogNote {
        what: Some(what),
        people,
        ..LogNote::default()
    });
    response
}

#[derive(Deserialize)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    prison: Option<String>,
}

fn date_param(name: &str, raw: Option<&str>, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
            ApiError::bad_request(format!("{name} must be a date as YYYY-MM-DD, not {s:?}"))
        }),
    }
}

/// Parses `from`, `to` and `prison`, checking the range and the prison code.
fn range(
    q: &RangeQuery,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(NaiveDate, NaiveDate, Option<String>), ApiError> {
    let from = date_param("from", q.from.as_deref(), from)?;
    let to = date_param("to", q.to.as_deref(), to)?;
    if to < from {
        return Err(ApiError::bad_request("to must not be before from"));
    }
    if (to - from).num_days() > 3 * 366 {
        return Err(ApiError::bad_request(
            "the range may span at most three years",
        ));
    }
    let prison = match &q.prison {
        None => None,
        Some(p) => Some(
            PrisonCode::parse(p)
                .map_err(|e| ApiError::bad_request(format!("prison: {e}")))?
                .to_string(),
        ),
    };
    Ok((from, to, prison))
}

/// `GET /v1/releases?from=DATE&to=DATE[&prison=WCI]`: who is released when, with the
/// gaps a manager must close marked (no worker, no plan, no consent).
pub async fn releases(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RangeQuery>,
    AsOf(cut): AsOf,
) -> Result<Response, ApiError> {
    let now = cut.map_or_else(|| state.ledger.now(), |c| c.at);
    let today = now.date_naive();
    let (from, to, prison) = range(
        &q,
        today - chrono::Duration::days(7),
        today + chrono::Duration::days(90),
    )?;
    let calendar = match cut {
        None => scoped::releases(
            &state.models,
            &state,
            &caller,
            false,
            from,
            to,
            prison.as_deref(),
        )?,
        Some(c) => {
            let replay = state.replays.at(c.position).await?;
            scoped::releases(&replay, &state, &caller, true, from, to, prison.as_deref())?
        }
    };
    let shown: Vec<PersonId> = calendar.iter().map(|(_, j)| j.person_id).collect();
    let rows: Vec<Value> = calendar
        .into_iter()
        .map(|(day, j)| {
            let v = j.view(now);
            let released = j.released_at.is_some() && !j.in_custody;
            json!({
                "date": day,
                "kind": if released { "RELEASED" } else { "EXPECTED" },
                "date_type": j.release_date.as_ref().filter(|_| !released).map(|r| r.date_type),
                "person_id": j.person_id,
                "identifiers": j.identifiers,
                "prison": j.prison,
                "state": j.status,
                "worker": j.worker.as_ref().map(|w| &w.worker_id),
                "unallocated": j.status.is_open() && j.worker.is_none(),
                "no_plan": j.status.is_open() && j.plan.is_none(),
                "no_consent": j.status.is_open() && !j.consent.engage,
                "flags": v.active_flags,
            })
        })
        .collect();
    Ok(listed(
        Json(
            json!({ "from": from, "to": to, "prison": prison, "as_of": now,
                     "at_position": cut.map(|c| c.position), "releases": rows }),
        )
        .into_response(),
        AccessWhat::ReadList,
        shown,
    ))
}

/// `GET /v1/kpis?prison=WCI&from=DATE&to=DATE`: KPIs per prison and month, small counts
/// suppressed, every rate beside its numerator and denominator.
pub async fn kpis(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<RangeQuery>,
    AsOf(cut): AsOf,
) -> Result<Json<Value>, ApiError> {
    // As of a past time, both what was known and the clock are the cut's, so a month's
    // published figures can be reproduced exactly later.
    let now = cut.map_or_else(|| state.ledger.now(), |c| c.at);
    let today = now.date_naive();
    let six_months = today
        .checked_sub_months(chrono::Months::new(6))
        .unwrap_or(today);
    let (from, to, prison) = range(&q, six_months.with_day(1).unwrap_or(six_months), today)?;
    let facts = match cut {
        None => state.models.episode_facts(prison.as_deref())?,
        Some(c) => state
            .replays
            .at(c.position)
            .await?
            .episode_facts(prison.as_deref())?,
    };
    let p = &caller.principal;
    let limited = !p.open_mode && matches!(p.role, Role::Manager | Role::Commissioner);
    let months: Vec<Value> = throughcare_projections::kpis(facts, prison.as_deref(), from, to, now)
        .iter()
        // Only the caller's prisons (a commissioner with none listed sees all).
        .filter(|m| !limited || p.covers_prison(&m.prison))
        .map(|m| m.published())
        .collect();
    Ok(Json(json!({
        "prison": prison, "from": from, "to": to, "as_of": now,
        "at_position": cut.map(|c| c.position),
        "suppression": throughcare_projections::kpi::SUPPRESSION,
        "months": months,
    })))
}

/// `GET /v1/schema/events`
pub async fn schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        throughcare_events::catalogue_schema_text(),
    )
        .into_response()
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Projection lag at which `/readyz` reports not ready.
const READY_LAG: u64 = 1000;

/// `GET /readyz`: ready when the projector is running and the read models are close to
/// the head of the log.
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let head = state.ledger.log().head().await?;
    let checkpoint = state.models.checkpoint();
    let lag = head.saturating_sub(checkpoint);
    let health = state.models.health();
    if let Some(reason) = health.down {
        // The read models are not being updated: whatever they answer may be stale.
        return Err(ApiError::unavailable(format!(
            "the projector is down and restarting ({} restarts so far): {reason}",
            health.restarts
        ))
        .with("projector", json!("down"))
        .with("reason", json!(reason))
        .with("restarts", json!(health.restarts))
        .with("head", json!(head))
        .with("checkpoint", json!(checkpoint))
        .with("lag", json!(lag))
        .with("ready", json!(false)));
    }
    let down = state.services.down();
    if !down.is_empty() {
        // Partners would get "no responders" (or a backlog would grow) meanwhile.
        return Err(ApiError::unavailable(format!(
            "not serving yet (or restarting): {}",
            down.join(", ")
        ))
        .with("services_down", json!(down))
        .with("head", json!(head))
        .with("checkpoint", json!(checkpoint))
        .with("lag", json!(lag))
        .with("ready", json!(false)));
    }
    if lag > READY_LAG {
        // Not ready is an error like any other: problem+json with Retry-After.
        return Err(ApiError::unavailable(format!(
            "read models lag the log by {lag} events (ready at {READY_LAG} or fewer)"
        ))
        .with("head", json!(head))
        .with("checkpoint", json!(checkpoint))
        .with("lag", json!(lag))
        .with("ready", json!(false)));
    }
    let body = json!({"head": head, "checkpoint": checkpoint, "lag": lag, "ready": true});
    Ok(Json(body).into_response())
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let head = state.ledger.log().head().await.unwrap_or(0);
    let health = state.models.health();
    let text = state
        .metrics
        .render(head, state.models.checkpoint(), &health);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Body::from(text))
        .expect("static response")
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see README.md for the API")
}
