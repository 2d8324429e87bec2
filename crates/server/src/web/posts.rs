//! The form posts of the person's page: `POST /people/{id}/events/{type}` (a worker's
//! event) and `POST /people/{id}/manage/{type}` (a manager's action). Each checks the
//! form's CSRF token first, builds the CloudEvent from the form (`forms`,
//! `manager`), and records it through the one write path (`submit`): a 303 back to
//! the person's timeline, or the person's page again with the refusal by its field. Above
//! the person page, which it answers with.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use throughcare_events::{EventType, PersonId};
use throughcare_ledger::AccessWhat;
use throughcare_projections::Journey;

use super::forms::{self, refusal_errors, slug, Built, FieldError, FormState, Reply, Values};
use super::manager;
use super::{csrf, person, session_id, sign_in};
use crate::access::{Caller, LogNote, ScopedPerson};
use crate::auth::Principal;
use crate::extract::Path;
use crate::problem::ApiError;
use crate::state::AppState;

/// Builds a form's event: (type, fields, journey, person, event id, source).
type Build =
    fn(EventType, &Values, &Journey, PersonId, &str, &str) -> Result<Built, Vec<FieldError>>;

/// What sets the worker's forms and the manager's apart; the rest of a post is one path.
struct FormSet {
    /// "no form" / "no manager's form", for an unknown type.
    name: &'static str,
    events: &'static [EventType],
    kind_of: fn(&str) -> Option<EventType>,
    may: fn(&Principal, &Journey, EventType) -> bool,
    /// The refusal page's title, and what the caller may not do ("record a contact").
    refused: fn(EventType, &Journey) -> (&'static str, String),
    build: Build,
}

const WORKER: FormSet = FormSet {
    name: "no form",
    events: forms::WORKER_EVENTS,
    kind_of: forms::kind_of,
    may: forms::may_record,
    refused: |kind, _| {
        (
            "You cannot record this",
            format!("record {} about", forms::title(kind).to_lowercase()),
        )
    },
    build: |kind, values, j, person, id, source| {
        forms::build(kind, values, &forms::fields(kind, j), person, id, source)
    },
};

const MANAGER: FormSet = FormSet {
    name: "no manager's form",
    events: manager::MANAGER_EVENTS,
    kind_of: manager::kind_of,
    may: manager::may_manage,
    refused: |kind, j| {
        (
            "You cannot do this",
            format!("{} for", manager::title(kind, Some(j)).to_lowercase()),
        )
    },
    build: |kind, values, _, person, id, source| manager::build(kind, values, person, id, source),
};

/// `POST /people/{id}/events/{type}`: records one of the worker's events from its form.
pub async fn post_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path((_, kind)): Path<(String, String)>,
    scoped: ScopedPerson,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    post_form(&WORKER, &state, &caller, &headers, &kind, &scoped, &body).await
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
    post_form(&MANAGER, &state, &caller, &headers, &kind, &scoped, &body).await
}

/// One form post: the CSRF token first, then the type, the policy, the form's own checks
/// (422 with the form sent back), and the write path.
async fn post_form(
    set: &FormSet,
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    kind: &str,
    scoped: &ScopedPerson,
    body: &[u8],
) -> Result<Response, ApiError> {
    let person = scoped.id();
    let Some(Posted { values, event_id }) = posted(state, headers, body) else {
        return Ok(sign_in::forbidden());
    };
    let Some(kind) = (set.kind_of)(kind) else {
        return Err(ApiError::not_found(format!(
            "{} records {kind:?}; they are {}",
            set.name,
            set.events
                .iter()
                .map(|k| slug(*k))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let j = journey_of(state, scoped)?;
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
    if !(set.may)(p, &j, kind) {
        let (title, what) = (set.refused)(kind, &j);
        let mut r = super::plain(
            StatusCode::FORBIDDEN,
            title,
            &format!("{} may not {what} this person.", p.name),
        );
        refused_by_policy(&mut r, person);
        return Ok(r);
    }
    match (set.build)(kind, &values, &j, person, &event_id, &p.staff_source()) {
        Err(errors) => {
            let reply = back(errors, StatusCode::UNPROCESSABLE_ENTITY);
            person::render_with(state, caller, headers, scoped, &j, Some(reply)).await
        }
        Ok(built) => record(state, caller, headers, &j, scoped, &built, slug(kind), back).await,
    }
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
