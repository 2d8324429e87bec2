//! The v1 JSON API handlers.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};
use throughcare_events::{
    validate_body, Identifier, PersonId, PrisonCode, Problem, RecordedEvent, Submission,
    MAX_BODY_BYTES,
};
use throughcare_projections::{contact_overdue, next_action};

use crate::access::policy::{can_read, check_submission, is_staff, may_break_glass};
use crate::access::{Caller, LogNote, ScopedJourney};
use crate::as_of::{self, AsOf};
use crate::auth::{Principal, Role};
use crate::extract::{Path, Query};
use crate::problem::ApiError;
use crate::AppState;
use throughcare_ledger::{AccessWhat, BatchError, Purpose};

/// How long a query with `min_position` waits for the read models before a 503.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

const SINGLE: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";

/// `POST /v1/events`: one CloudEvent or a batch.
pub async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let media = media_type(request.headers());
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            state.metrics.invalid();
            ApiError::invalid(vec![Problem {
                pointer: String::new(),
                detail: format!("body is over the limit of {MAX_BODY_BYTES} bytes (4 MiB)"),
            }])
        })?;
    match submit(&state, &caller.principal, media.as_deref(), &body).await {
        Ok((status, reply)) => Ok((status, Json(reply)).into_response()),
        Err(refusal) => {
            let mut response = refusal.error.into_response();
            if refusal.by_policy {
                response.extensions_mut().insert(LogNote {
                    what: Some(AccessWhat::Submit),
                    denied: true,
                    ..LogNote::default()
                });
            }
            Ok(response)
        }
    }
}

/// A submission not recorded: the error, and whether access rules refused it (those
/// refusals go in the access log; recorded events are their own record).
#[derive(Debug)]
pub struct SubmitRefusal {
    pub error: ApiError,
    pub by_policy: bool,
}

impl From<ApiError> for SubmitRefusal {
    fn from(error: ApiError) -> Self {
        SubmitRefusal {
            error,
            by_policy: false,
        }
    }
}

impl From<throughcare_ledger::Error> for SubmitRefusal {
    fn from(e: throughcare_ledger::Error) -> Self {
        ApiError::from(e).into()
    }
}

/// Staff submit with the source the server fills in for them: a CloudEvent (or each of a
/// batch) without `source` gets `urn:throughcare:staff:<name>`. Anything that is not a
/// JSON object or array is left for validation to describe.
fn fill_staff_source(p: &Principal, body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let source = Value::String(p.staff_source());
    let fill = |v: &mut Value| {
        if let Some(o) = v.as_object_mut() {
            o.entry("source").or_insert_with(|| source.clone());
        }
    };
    match &mut value {
        Value::Array(items) => items.iter_mut().for_each(fill),
        v => fill(v),
    }
    serde_json::to_vec(&value).ok()
}

/// Staff may record events only about people they can read; an unknown person and one
/// outside their scope get the same answer.
async fn check_staff_scope(
    state: &AppState,
    p: &Principal,
    event: &throughcare_events::Event,
    pointer: &str,
) -> Result<(), SubmitRefusal> {
    let person = event.data.person();
    let mut found = person.person_id;
    if found.is_none() {
        for identifier in person.identifiers() {
            if let Some(id) = state.ledger.log().lookup_identifier(&identifier).await? {
                found = Some(id);
                break;
            }
        }
    }
    let readable = match found {
        Some(id) => state
            .models
            .journey(id)
            .map_err(ApiError::from)?
            .is_some_and(|j| can_read(p, &j)),
        None => false,
    };
    if readable {
        return Ok(());
    }
    Err(SubmitRefusal {
        error: ApiError::invalid(vec![Problem {
            pointer: format!("{pointer}/data/person"),
            detail: "no person known to the ledger and allocated to you (or held at your prisons) matches this reference; staff record events only about people they can read".into(),
        }]),
        by_policy: true,
    })
}

/// Records a submission body (one CloudEvent or a batch) whatever the transport: HTTP and
/// the NATS submit service both answer with this.
pub async fn submit(
    state: &AppState,
    principal: &Principal,
    media: Option<&str>,
    body: &[u8],
) -> Result<(StatusCode, Value), SubmitRefusal> {
    let expect_batch = match media {
        Some(SINGLE) => Some(false),
        Some(BATCH) => Some(true),
        Some("application/json") | None => None,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("content type {other:?} is not accepted; send {SINGLE} or {BATCH}"),
            )
            .into())
        }
    };
    let filled = is_staff(principal)
        .then(|| fill_staff_source(principal, body))
        .flatten();
    let body = filled.as_deref().unwrap_or(body);
    let submission = validate_body(body, state.ledger.now()).map_err(|p| {
        state.metrics.invalid();
        ApiError::invalid(p)
    })?;
    // Over the limit is refused before any per-item work (the ledger refuses it too).
    if let Submission::Batch(events) = &submission {
        if let Some(problem) = state.ledger.over_batch_limit(events.len()) {
            state.metrics.invalid();
            return Err(ApiError::invalid(vec![problem])
                .with("limit", json!(state.ledger.batch_limit()))
                .into());
        }
    }
    // Who may submit what is checked for every item before anything is recorded.
    let items: Vec<(&throughcare_events::Event, String)> = match &submission {
        Submission::One(e) => vec![(e.as_ref(), String::new())],
        Submission::Batch(events) => events
            .iter()
            .enumerate()
            .map(|(i, e)| (e, format!("/{i}")))
            .collect(),
    };
    for (event, pointer) in &items {
        check_submission(principal, &event.source, event.event_type()).map_err(|error| {
            SubmitRefusal {
                error,
                by_policy: true,
            }
        })?;
        if is_staff(principal) {
            check_staff_scope(state, principal, event, pointer).await?;
        }
    }
    match (expect_batch, &submission) {
        (Some(true), Submission::One(_)) => {
            state.metrics.invalid();
            return Err(ApiError::invalid(vec![Problem {
                pointer: String::new(),
                detail: format!("{BATCH} must be a JSON array of CloudEvents"),
            }])
            .into());
        }
        (Some(false), Submission::Batch(_)) => {
            state.metrics.invalid();
            return Err(ApiError::invalid(vec![Problem {
                pointer: String::new(),
                detail: format!("{SINGLE} must be one CloudEvent object; send arrays as {BATCH}"),
            }])
            .into());
        }
        _ => {}
    }
    match submission {
        Submission::One(event) => {
            let receipt = state
                .ledger
                .submit(*event)
                .await
                .inspect_err(|e| state.metrics.refused(e))?;
            state.metrics.recorded(receipt.duplicate);
            let status = if receipt.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, json!(receipt)))
        }
        Submission::Batch(events) => {
            let receipts =
                state
                    .ledger
                    .submit_batch(events)
                    .await
                    .map_err(|refusal| match refusal {
                        BatchError::Items(f) => {
                            for item in &f {
                                state.metrics.refused(&item.error);
                            }
                            SubmitRefusal::from(ApiError::batch(f))
                        }
                        BatchError::Whole(e) => {
                            state.metrics.refused(&e);
                            SubmitRefusal::from(e)
                        }
                    })?;
            // All or nothing: every item was recorded now or before.
            let items: Vec<Value> = receipts
                .into_iter()
                .enumerate()
                .map(|(index, receipt)| {
                    state.metrics.recorded(receipt.duplicate);
                    json!({"index": index, "status": if receipt.duplicate { 200 } else { 201 },
                           "id": receipt.id, "person_id": receipt.person_id,
                           "position": receipt.position, "duplicate": receipt.duplicate})
                })
                .collect();
            Ok((StatusCode::CREATED, json!({ "items": items })))
        }
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    parse_media(headers.get(header::CONTENT_TYPE)?.to_str().ok()?)
}

/// The media type of a Content-Type value, lower-cased, without parameters.
pub fn parse_media(content_type: &str) -> Option<String> {
    Some(
        content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

#[derive(Deserialize)]
pub struct PeopleQuery {
    identifier: Option<String>,
}

/// `GET /v1/people?identifier=nomis:A1234BC`
pub async fn find_person(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<PeopleQuery>,
) -> Result<Response, ApiError> {
    let raw = q.identifier.ok_or_else(|| {
        ApiError::bad_request(
            "query parameter identifier is required, e.g. ?identifier=nomis:A1234BC",
        )
    })?;
    let identifier: Identifier = raw
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("identifier: {e}")))?;
    let unknown = || ApiError::not_found(format!("no person has identifier {identifier}"));
    let Some(person) = state.ledger.log().lookup_identifier(&identifier).await? else {
        return Err(unknown());
    };
    // Scope: someone the caller may not read is answered as no one.
    let p = &caller.principal;
    let journey = state.models.journey(person)?;
    let in_scope =
        p.open_mode || p.role == Role::Auditor || journey.as_ref().is_some_and(|j| can_read(p, j));
    let glass = !in_scope
        && journey.is_some()
        && caller.purpose == Purpose::Emergency
        && may_break_glass(p);
    let mut response = if in_scope || glass {
        Json(json!({ "person_id": person, "identifier": identifier.to_string() })).into_response()
    } else {
        unknown().into_response()
    };
    response.extensions_mut().insert(LogNote {
        what: Some(AccessWhat::ReadIdentity),
        person: Some(person),
        denied: !(in_scope || glass),
        review: glass,
        who: None,
    });
    Ok(response)
}

pub fn parse_person(raw: &str) -> Result<PersonId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!("{raw:?} is not a person id (a 26-character ULID)"))
    })
}

#[derive(Deserialize)]
pub struct JourneyQuery {
    min_position: Option<u64>,
}

/// `GET /v1/people/{id}/journey[?min_position=N][?as_of=T|?at_position=P]`
pub async fn journey(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<JourneyQuery>,
    AsOf(cut): AsOf,
    scoped: Option<Extension<ScopedJourney>>,
) -> Result<Response, ApiError> {
    let person = parse_person(&id)?;
    // The past: the person's events up to the cut, folded afresh and read at the cut's
    // time. The guard has checked the caller's scope on the journey now.
    if let Some(cut) = cut {
        let j = as_of::journey(&state, person, cut).await?;
        return Ok(Json(j.view(cut.at)).into_response());
    }
    if let Some(min) = q.min_position {
        if !state.models.wait_for(min, FRESHNESS_WAIT).await {
            return Err(ApiError::unavailable(format!(
                "read models are at position {} and have not reached {min} yet",
                state.models.checkpoint()
            ))
            .with("checkpoint", json!(state.models.checkpoint())));
        }
    }
    // The guard read the journey for the scope check after the same wait.
    if let Some(Extension(ScopedJourney(j))) = scoped {
        return Ok(Json(j.view(state.ledger.now())).into_response());
    }
    let j = state
        .models
        .journey(person)?
        .ok_or_else(|| ApiError::unknown_person(person))?;
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
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let person = parse_person(&id)?;
    let events = state.ledger.history(person).await?;
    if events.is_empty() {
        return Err(ApiError::unknown_person(person));
    }
    Ok(Json(json!({
        "person_id": person,
        "events": events.iter().map(recorded_json).collect::<Vec<_>>(),
    })))
}

/// `GET /v1/people/{id}/verify`: recomputes the person's hash chain from the stored bytes.
pub async fn verify(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let person = parse_person(&id)?;
    let report = state.ledger.verify(person).await?;
    if report.events == 0 {
        return Err(ApiError::unknown_person(person));
    }
    Ok(Json(json!(report)))
}

/// `GET /v1/caseload/{worker_id}[?as_of=T|?at_position=P]`: the worker's open cases,
/// most urgent first.
pub async fn caseload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(worker): Path<String>,
    AsOf(cut): AsOf,
) -> Result<Json<Value>, ApiError> {
    let (now, journeys) = match cut {
        None => (state.ledger.now(), state.models.caseload(&worker)?),
        Some(cut) => (
            cut.at,
            state.replays.at(cut.position).await?.caseload(&worker)?,
        ),
    };
    // A manager sees the worker's cases at its own prisons only.
    let journeys = readable(&state, &caller, cut, journeys, |j| j)?;
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
    Ok(Json(
        json!({ "worker_id": worker, "as_of": now, "at_position": cut.map(|c| c.position), "cases": cases }),
    ))
}

/// The journeys the caller may read: at the cut (a manager sees its own prisons only)
/// and, for an answer about the past, now as well (reading the past never widens scope).
fn readable<T>(
    state: &AppState,
    caller: &Caller,
    cut: Option<throughcare_projector::Cut>,
    rows: Vec<T>,
    journey: impl Fn(&T) -> &throughcare_projections::Journey,
) -> Result<Vec<T>, ApiError> {
    let p = &caller.principal;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let j = journey(&row);
        if can_read(p, j) && (cut.is_none() || as_of::readable_now(state, p, j.person_id)?) {
            out.push(row);
        }
    }
    Ok(out)
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
) -> Result<Json<Value>, ApiError> {
    let now = cut.map_or_else(|| state.ledger.now(), |c| c.at);
    let today = now.date_naive();
    let (from, to, prison) = range(
        &q,
        today - chrono::Duration::days(7),
        today + chrono::Duration::days(90),
    )?;
    let calendar = match cut {
        None => state.models.releases(from, to, prison.as_deref())?,
        Some(c) => state
            .replays
            .at(c.position)
            .await?
            .releases(from, to, prison.as_deref())?,
    };
    let rows: Vec<Value> = readable(&state, &caller, cut, calendar, |(_, j)| j)?
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
    Ok(Json(
        json!({ "from": from, "to": to, "prison": prison, "as_of": now,
                "at_position": cut.map(|c| c.position), "releases": rows }),
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
