//! HMPPS domain events in: `POST /v1/hmpps/domain-events`, and the same handling for the
//! JetStream consumer (`serve --hmpps-stream`). A message (a domain event, bare or in its
//! SNS envelope) is read and mapped by throughcare-hmpps, its prisoner looked up by NOMIS
//! number, and a mapped event recorded through the write path partners use
//! (`submit::submit`), so a redelivered message is a duplicate and records nothing new.
//!
//! Data minimisation: only people the ledger already knows are recorded. Everything else
//! is counted in `/metrics` by reason and dropped, and is never logged with identifiers.
//! A malformed message is refused whole (422 with pointers); nothing is half-recorded.

use axum::extract::{Extension, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use throughcare_events::{EventType, Identifier, Nomis, PersonId, PrisonCode};
use throughcare_hmpps::{Mapping, Notification, PersonState, SOURCE};
use throughcare_ledger::AccessWhat;

use crate::access::policy::check_submission;
use crate::access::{Caller, LogNote};
use crate::auth::{Principal, Role};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::state::FRESHNESS_WAIT;
use crate::submit::{self, SubmitRefusal};

/// Largest message accepted: the SQS (and SNS) message size limit.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The principal the JetStream consumer records as: a PARTNER whose one source is
/// [`SOURCE`] and whose types are the ones `throughcare_hmpps::map` makes (a PARTNER's
/// types are never implied), so the ordinary submission rules apply to what it records.
fn consumer_principal() -> Principal {
    Principal {
        name: "hmpps-domain-events-consumer".into(),
        role: Role::Partner,
        worker_id: None,
        prisons: Vec::new(),
        sources: vec![SOURCE.into()],
        types: [
            "throughcare.prisoner.released.v1",
            "throughcare.prisoner.returned_to_custody.v1",
            "throughcare.prisoner.transferred.v1",
            "throughcare.identifiers.linked.v1",
        ]
        .map(String::from)
        .to_vec(),
        open_mode: false,
    }
}

/// The reply to a message that was recorded (or had been).
#[derive(Serialize)]
struct Recorded {
    recorded: bool,
    duplicate: bool,
    id: String,
    person_id: PersonId,
    position: u64,
}

/// The reply to a message that records nothing, deliberately.
#[derive(Serialize)]
struct NotRecorded {
    recorded: bool,
    reason: &'static str,
}

/// `POST /v1/hmpps/domain-events`: one HMPPS domain event, bare or in its SNS envelope.
pub async fn post_domain_event(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> Response {
    let principal = &caller.principal;
    // Only a caller that may use the HMPPS source may learn anything from this route
    // (even whether a NOMIS number is known).
    if let Err(error) = may_send(principal) {
        return refused_by_policy(error);
    }
    let body = match axum::body::to_bytes(request.into_body(), MAX_MESSAGE_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            state.metrics.hmpps("malformed");
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Message too large",
                format!("a message may be at most {MAX_MESSAGE_BYTES} bytes (256 KiB)"),
            )
            .into_response();
        }
    };
    match process(&state, principal, &body).await {
        Ok((status, value)) => (status, Json(value)).into_response(),
        Err(refusal) if refusal.by_policy => refused_by_policy(refusal.error),
        Err(refusal) => refusal.error.into_response(),
    }
}

/// Whether `p` may send HMPPS messages at all: the HMPPS source (types are checked per
/// recorded event by the ordinary submission rules).
fn may_send(p: &Principal) -> Result<(), ApiError> {
    match check_submission(p, SOURCE, EventType::PrisonerReleased) {
        Err(e) if e.kind != "type-not-allowed" => Err(e),
        _ => Ok(()),
    }
}

fn refused_by_policy(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.extensions_mut().insert(LogNote {
        what: Some(AccessWhat::Submit),
        denied: true,
        ..LogNote::default()
    });
    response
}

/// Handles one message from the JetStream consumer exactly as the route would for an
/// HMPPS partner: (status, media type, body). 2xx: recorded, a duplicate, or ignored on
/// purpose; 503: try again later; anything else is refused for good.
pub async fn handle_hmpps_message(state: &AppState, body: &[u8]) -> (u16, &'static str, Vec<u8>) {
    if body.len() > MAX_MESSAGE_BYTES {
        state.metrics.hmpps("malformed");
        let e = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Message too large",
            format!("a message may be at most {MAX_MESSAGE_BYTES} bytes (256 KiB)"),
        );
        return (
            e.status.as_u16(),
            "application/problem+json",
            e.to_json().to_string().into_bytes(),
        );
    }
    match process(state, &consumer_principal(), body).await {
        Ok((status, value)) => (
            status.as_u16(),
            "application/json",
            value.to_string().into_bytes(),
        ),
        Err(refusal) => (
            refusal.error.status.as_u16(),
            "application/problem+json",
            refusal.error.to_json().to_string().into_bytes(),
        ),
    }
}

/// Counts a message the consumer put on the dead-letter subject.
pub fn note_hmpps_dead_letter(state: &AppState) {
    state.metrics.hmpps("dead-lettered");
}

/// Read, look up, map, record.
async fn process(
    state: &AppState,
    principal: &Principal,
    body: &[u8],
) -> Result<(StatusCode, Value), SubmitRefusal> {
    let metrics = &state.metrics;
    let n = throughcare_hmpps::parse(body).map_err(|problems| {
        metrics.hmpps("malformed");
        ApiError::invalid(problems)
    })?;
    // A message recorded before (a redelivery) is answered from the record, whatever the
    // person's state is now.
    if let Some(prior) = state.ledger.log().lookup_submission(SOURCE, &n.id).await? {
        metrics.hmpps("duplicate");
        return Ok(recorded(n.id, prior.person, prior.position, true));
    }
    let subject = person_state(state, n.nomis.as_ref()).await?;
    let removed = person_state(state, n.removed_nomis()).await?;
    match throughcare_hmpps::map(&n, &subject, &removed) {
        Mapping::Ignored(reason) => {
            metrics.hmpps_ignored(reason.as_str());
            Ok((
                StatusCode::ACCEPTED,
                serde_json::json!(NotRecorded {
                    recorded: false,
                    reason: reason.as_str(),
                }),
            ))
        }
        Mapping::IdentityConflict { person, other } => {
            metrics.hmpps("identity-conflict");
            Err(identity_conflict(&n, person, other).into())
        }
        Mapping::Record(event) => {
            let bytes = serde_json::to_vec(&event).map_err(|_| ApiError::internal())?;
            match submit::submit(
                state,
                principal,
                Some("application/cloudevents+json"),
                &bytes,
            )
            .await
            {
                Ok((status, receipt)) => {
                    let duplicate = receipt["duplicate"] == true;
                    metrics.hmpps(if duplicate { "duplicate" } else { "recorded" });
                    let person = receipt["person_id"]
                        .as_str()
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(ApiError::internal)?;
                    let position = receipt["position"].as_u64().unwrap_or_default();
                    let (_, value) = recorded(n.id, person, position, duplicate);
                    Ok((status, value))
                }
                Err(refusal) => {
                    metrics.hmpps(match refusal.error.kind {
                        "invalid-submission" => "malformed",
                        "identity-conflict" => "identity-conflict",
                        "unavailable" => "unavailable",
                        _ => "refused",
                    });
                    Err(refusal)
                }
            }
        }
    }
}

fn recorded(
    id: String,
    person_id: PersonId,
    position: u64,
    duplicate: bool,
) -> (StatusCode, Value) {
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = Recorded {
        recorded: true,
        duplicate,
        id,
        person_id,
        position,
    };
    (status, serde_json::json!(body))
}

/// A merge of two NOMIS numbers that belong to two people in the ledger: refused and
/// flagged for a human (the warning names the ledger's person ids, never the numbers).
fn identity_conflict(n: &Notification, person: PersonId, other: PersonId) -> ApiError {
    tracing::warn!(
        %person, %other, message = %n.id,
        "an HMPPS merge names two different people in the ledger; not merged: a person must review them"
    );
    ApiError::new(
        StatusCode::CONFLICT,
        "identity-conflict",
        "Identifiers belong to different people",
        "nomsNumber and removedNomsNumber belong to two different people in the ledger; records are never merged silently: a person must review them".to_string(),
    )
    .with("person_id", serde_json::json!(person))
    .with("other_person_id", serde_json::json!(other))
}

/// What the ledger knows of the person with this NOMIS number, from the identity index
/// and the read models (waiting until they hold everything acknowledged so far).
async fn person_state(state: &AppState, nomis: Option<&Nomis>) -> Result<PersonState, ApiError> {
    let Some(nomis) = nomis else {
        return Ok(PersonState::unknown());
    };
    let identifier = Identifier::Nomis(nomis.clone());
    let Some(person) = state.ledger.log().lookup_identifier(&identifier).await? else {
        return Ok(PersonState::unknown());
    };
    let head = state.ledger.log().head().await?;
    if !state.models.wait_for(head, FRESHNESS_WAIT).await {
        return Err(ApiError::unavailable(format!(
            "read models are at position {} and have not reached {head} yet",
            state.models.checkpoint()
        )));
    }
    // An identifier claimed without any event (a failed append) is no one yet.
    let Some(j) = state.models.journey(person)? else {
        return Ok(PersonState::unknown());
    };
    Ok(PersonState {
        person: Some(person),
        released: j.in_community().is_some() || j.in_hospital,
        prison: j.prison.as_deref().and_then(|p| PrisonCode::parse(p).ok()),
    })
}
