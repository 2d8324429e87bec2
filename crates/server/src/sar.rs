//! `GET /subject-access-request?prn=|crn=&fromDate=&toDate=`: the HMPPS subject access
//! request convention (the endpoint every HMPPS service offers to the SAR service; see
//! `hmpps-kotlin-lib`'s `HmppsSubjectAccessRequestController`):
//!
//! - `prn` is a NOMIS prison number, `crn` an nDelius case reference number. At least one
//!   is required (400 problem otherwise). The SAR service sends both when it has both, as
//!   the convention asks ("preferably both"), so both are accepted: they must not name two
//!   different people (400); one the ledger does not know is ignored when the other is.
//! - `fromDate` / `toDate` (ISO `yyyy-mm-dd`, optional, inclusive) bound when events
//!   *occurred* (the CloudEvent `time`), as the convention's "date of event occurrence".
//! - 200 `{"content": {...}}`: the person's identifiers, the journey now, and the events
//!   in the range (type, when it occurred and was recorded, source, data); 204 with no
//!   body when the ledger holds no event of the person in the range; 209 with no body when
//!   no identifier given is known to the ledger (a malformed one cannot be).
//!
//! The access log records the call as EXPORT about the person found, with the purpose
//! SUBJECT_ACCESS unless the caller names AUDIT (the route table's purposes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;
use throughcare_events::PersonId;
use throughcare_projections::Journey;

use crate::access::{LogNote, Subject};
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

/// 209: the subject identifier is not recognised by this service (HMPPS SAR convention).
pub const NOT_RECOGNISED: u16 = 209;

#[derive(Deserialize)]
pub struct SarQuery {
    // `prn` and `crn` are read by the guard, which resolves them (`Scope::SarSubject`).
    #[serde(rename = "fromDate")]
    from_date: Option<String>,
    #[serde(rename = "toDate")]
    to_date: Option<String>,
}

fn date(name: &str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ApiError::bad_request(format!("{name} must be a date as yyyy-mm-dd, not {s:?}"))
            }),
    }
}

fn empty(status: u16, person: Option<PersonId>) -> Response {
    let mut response = StatusCode::from_u16(status)
        .map(IntoResponse::into_response)
        .unwrap_or_else(|_| ApiError::internal().into_response());
    response.extensions_mut().insert(LogNote {
        person,
        ..LogNote::default()
    });
    response
}

/// `GET /subject-access-request?prn=|crn=&fromDate=&toDate=`
pub async fn subject_access_request(
    State(state): State<AppState>,
    subject: Subject,
    Query(q): Query<SarQuery>,
) -> Result<Response, ApiError> {
    let from = date("fromDate", q.from_date.as_deref())?;
    let to = date("toDate", q.to_date.as_deref())?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad_request("toDate must not be before fromDate"));
        }
    }
    // The guard resolved prn / crn (two different people are its 400).
    let scoped = match subject {
        Subject::Known { person, .. } => person,
        Subject::Unknown { .. } => return Ok(empty(NOT_RECOGNISED, None)),
    };
    let person = scoped.id();
    let events = scoped.history(&state).await?;
    if events.is_empty() {
        return Ok(empty(NOT_RECOGNISED, None));
    }
    let in_range = |day: NaiveDate| from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t);
    let held: Vec<_> = events
        .iter()
        .filter(|e| in_range(e.event.time.date_naive()))
        .map(|e| {
            json!({
                "position": e.position,
                "type": e.event.event_type().as_str(),
                "occurred_at": e.event.time,
                "recorded_at": e.recorded_at,
                "source": e.event.source,
                "data": e.event.data,
            })
        })
        .collect();
    if held.is_empty() {
        return Ok(empty(StatusCode::NO_CONTENT.as_u16(), Some(person)));
    }
    let journey = Journey::fold(person, events.iter());
    let mut response = Json(json!({
        "content": {
            "person_id": person,
            "identifiers": journey.identifiers,
            "fromDate": from,
            "toDate": to,
            "journey": journey.view(state.ledger.now()),
            "events": held,
        }
    }))
    .into_response();
    response.extensions_mut().insert(LogNote {
        person: Some(person),
        ..LogNote::default()
    });
    Ok(response)
}
