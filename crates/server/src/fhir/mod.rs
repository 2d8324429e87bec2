//! FHIR R4 out: `GET /v1/people/{id}/fhir` answers `application/fhir+json`, a Bundle of
//! type `collection` holding the person's record as NHS services read it: Patient,
//! EpisodeOfCare, ServiceRequest (referrals and signposts), CarePlan, Consent, Encounter,
//! Flag, and a Provenance per resource naming the ledger positions and hashes it came
//! from. Facts corrected away (ENTERED_IN_ERROR, WRONG_PERSON) are exported with status
//! `entered-in-error`, never dropped. Read-only and pure apart from the handler: `build`
//! turns a journey and its recorded events into the Bundle; `status` holds the code
//! mappings (documented in the README's "FHIR R4" section).
//!
//! Access is the journey's: the route row (`routes.rs`) scopes the person and logs
//! the read as EXPORT; the guard hands over the journey it loaded.

mod build;
mod care;
mod facts;
mod requests;
mod status;
mod systems;
mod types;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::ScopedPerson;
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

pub use build::bundle;
pub use systems::FHIR_JSON;

#[derive(Deserialize)]
pub struct ExportQuery {
    min_position: Option<u64>,
}

/// `GET /v1/people/{id}/fhir[?min_position=N]`
pub async fn export(
    State(state): State<AppState>,
    person: ScopedPerson,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    crate::api::fresh(&state, q.min_position).await?;
    // The guard read the journey for the scope check (after the same wait).
    let journey = person.journey_checked_or_now(&state)?;
    // The events the journey has folded: the read model may trail the log.
    let mut events = person.history(&state).await?;
    events.retain(|e| e.position <= journey.version);
    let bundle = bundle(&journey, &events, state.ledger.now());
    let body = serde_json::to_vec(&bundle).map_err(|e| {
        tracing::error!(error = %e, "serialising a FHIR bundle failed");
        ApiError::internal()
    })?;
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body).into_response())
}

#[cfg(test)]
mod tests;
