//! The form posts of the person's page: `POST /people/{id}/events/{type}` (a worker's
//! event) and `POST /people/{id}/manage/{type}` (a manager's action). Each checks the
//! form's CSRF token first, builds the CloudEvent from the form (`forms`,
//! `forms::manager`), and records it through the one write path (`submit`): a 303 back to
//! the person's timeline, or the person's page again with the refusal by its field. Above
//! the person page, which it answers with.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use throughcare_events::PersonId;
use throughcare_ledger::AccessWhat;
use throughcare_projections::Journey;

use super::forms::{
    build, fields, kind_of, may_record, refusal_errors, slug, title, Built, FieldError, FormState,
    Reply, Values, WORKER_EVENTS,
};
use super::manager::{self, may_manage, MANAGER_EVENTS};
use super::{csrf, person, session_id, sign_in};
use crate::access::{Caller, LogNote, ScopedPerson};
use crate::extract::Path;
use crate::problem::ApiError;
use crate::state::AppState;

/// `POST /people/{id}/events/{type}`: records one of the worker's events from its form.
pub async fn post_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_, kind)): Path<(String, String)>,
    scoped: ScopedPerson,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let person = scoped.id();
    let Posted { values, event_id } = match posted(&state, &headers, &body) {
        Some(p) => p,
        None => return Ok(sign_in::forbidden()),
    };
    let Some(kind) = kind_of(&kind) else {
        return Err(ApiError::not_found(format!(
            "no form records {kind:?}; the forms are {}",
            WORKER_EVENTS
                .iter()
                .map(|k| slug(*k))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let j = journey_of(&state, &scoped)?;
    let p = caller.principal.as_ref();
    let back = |errors: Vec<FieldError>, status: StatusCode| {
        FormState {
            kind,
            id: event_id.clone(),
            values: values.clone(),
            errors,
        }
        .into_reply(status)
    };
    if !may_record(p, &j, kind) {
        let mut r = super::plain(
            StatusCode::FORBIDDEN,
            "You cannot record this",
            &format!(
                "{} may not record {} about this person.",
                p.name,
                title(kind).to_lowercase()
            ),
        );
        refused_by_policy(&mut r, person);
        return Ok(r);
    }
    let built = match build(
        kind,
        &values,
        &fields(kind, &j),
        person,
        &event_id,
        &p.staff_source(),
    ) {
        Ok(b) => b,
        Err(errors) => {
            let reply = back(errors, StatusCode::UNPROCESSABLE_ENTITY);
            return person::render_with(&state, &caller, &headers, &scoped, &j, Some(reply)).await;
        }
    };
    record(
        &state,
        &caller,
        &headers,
        &j,
        &scoped,
        &built,
        slug(kind),
        back,
    )
    .await
}

/// What a form post carries once its CSRF token has been checked: the fields, and the
/// event id drawn with the form.
pub(crate) struct Posted {
    pub values: Values,
    pub event_id: String,
}

/// Reads a form post. The CSRF token is checked first: without a valid one nothing else
/// about the request is looked at (`None`: answer `sign_in::forbidden()`).
pub(crate) fn posted(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<Posted> {
    let values = Values::parse(body);
    let event_id = values.get("event_id").to_string();
    let session = session_id(headers).unwrap_or_default();
    if event_id.is_empty()
        || !csrf::check(
            state.sessions.csrf_secret(),
            &session,
            &event_id,
            Some(values.get("csrf")),
        )
    {
        return None;
    }
    Some(Posted { values, event_id })
}

/// The person's journey: the one the guard read for its scope check, else the read model.
pub(crate) fn journey_of(state: &AppState, person: &ScopedPerson) -> Result<Journey, ApiError> {
    Ok(person.journey_checked_or_now(state)?.as_ref().clone())
}

/// Marks a response as a submission refused by policy (the access log records it).
pub(crate) fn refused_by_policy(r: &mut Response, person: PersonId) {
    r.extensions_mut().insert(LogNote {
        what: Some(AccessWhat::Submit),
        person: Some(person),
        denied: true,
        ..LogNote::default()
    });
}

/// Submits a built form event through the partners' write path: on success a 303 back
/// to the person's timeline; on a refusal the person's page again with the form, its
/// errors by field (`back`) and the refusal's status.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    j: &Journey,
    scoped: &ScopedPerson,
    built: &Built,
    slug: &str,
    back: impl Fn(Vec<FieldError>, StatusCode) -> Reply,
) -> Result<Response, ApiError> {
    let p = caller.principal.as_ref();
    let person = scoped.id();
    let bytes = serde_json::to_vec(&built.event).map_err(|_| ApiError::internal())?;
    match crate::submit::submit(state, p, Some("application/cloudevents+json"), &bytes).await {
        Ok((_, receipt)) => {
            let position = receipt["position"].as_u64().unwrap_or(0);
            Ok(Redirect::to(&format!(
                "/people/{person}?min_position={position}&recorded={slug}#timeline"
            ))
            .into_response())
        }
        Err(refusal) => {
            let status = refusal.error.status;
            let reply = back(refusal_errors(&refusal.error, built), status);
            let mut r = person::render_with(state, caller, headers, scoped, j, Some(reply)).await?;
            if refusal.by_policy {
                refused_by_policy(&mut r, person);
            }
            Ok(r)
        }
    }
}

/// `POST /people/{id}/manage/{type}`: records one of the manager's actions from its form.
pub async fn post_manager_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_, kind)): Path<(String, String)>,
    scoped: ScopedPerson,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let person = scoped.id();
    let Posted { values, event_id } = match posted(&state, &headers, &body) {
        Some(p) => p,
        None => return Ok(sign_in::forbidden()),
    };
    let Some(kind) = manager::kind_of(&kind) else {
        return Err(ApiError::not_found(format!(
            "no manager's form records {kind:?}; they are {}",
            MANAGER_EVENTS
                .iter()
                .map(|k| slug(*k))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let j = journey_of(&state, &scoped)?;
    let p = caller.principal.as_ref();
    let back = |errors: Vec<FieldError>, status: StatusCode| Reply {
        form: FormState {
            kind,
            id: event_id.clone(),
            values: values.clone(),
            errors,
        },
        status,
    };
    if !may_manage(p, &j, kind) {
        let mut r = super::plain(
            StatusCode::FORBIDDEN,
            "You cannot do this",
            &format!(
                "{} may not {} for this person.",
                p.name,
                manager::title(kind, Some(&j)).to_lowercase()
            ),
        );
        refused_by_policy(&mut r, person);
        return Ok(r);
    }
    let built = match manager::build(kind, &values, person, &event_id, &p.staff_source()) {
        Ok(b) => b,
        Err(errors) => {
            let reply = back(errors, StatusCode::UNPROCESSABLE_ENTITY);
            return person::render_with(&state, &caller, &headers, &scoped, &j, Some(reply)).await;
        }
    };
    record(
        &state,
        &caller,
        &headers,
        &j,
        &scoped,
        &built,
        slug(kind),
        back,
    )
    .await
}
