//! `?as_of=<RFC 3339>` and `?at_position=P` (DESIGN.md "Audit" -> "As of"): parsing, the
//! 400s naming the parameter, the cut of the log they ask for, and the journey and
//! read models at that cut.
//!
//! Not a scope rule: the guard has already checked the caller's scope against the
//! journey *now*, and the aggregate handlers keep a row only if the caller may read the
//! person both then and now (`access::scoped::readable`), so reading the past never
//! widens scope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use throughcare_projections::Journey;
use throughcare_projector::as_of::{cut_at_position, cut_at_time};
use throughcare_projector::Cut;

use crate::access::ScopedPerson;
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
struct Params {
    as_of: Option<String>,
    at_position: Option<String>,
}

/// The cut a request asks for; `None` answers as now (no parameter, or an `as_of` that
/// is not in the past).
pub struct AsOf(pub Option<Cut>);

impl FromRequestParts<AppState> for AsOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(p) = Query::<Params>::from_request_parts(parts, state).await?;
        let cut = match (p.as_of, p.at_position) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give as_of or at_position, not both: they name the same cut two ways",
                ))
            }
            (Some(raw), None) => cut_at(state, parse_instant(&raw)?).await?,
            (None, Some(raw)) => Some(cut_at_log_position(state, &raw).await?),
        };
        Ok(AsOf(cut))
    }
}

/// An RFC 3339 time. A `+` of an offset sent unescaped in a query string arrives as a
/// space, and is read as the `+` it was.
fn parse_instant(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .or_else(|e| DateTime::parse_from_rfc3339(&raw.replace(' ', "+")).map_err(|_| e))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "as_of must be an RFC 3339 time such as 2026-11-20T09:30:00Z, not {raw:?} ({e})"
            ))
        })
}

/// What the web page's date picker sends: a day (what was known by the end of that day,
/// UTC), or an RFC 3339 time; empty means now.
pub fn parse_page_as_of(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let end = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("a valid time");
        return Ok(Some(day.and_time(end).and_utc()));
    }
    parse_instant(raw).map(Some)
}

/// The cut at time `t`: every event recorded at or before it, read at `t`. A time not in
/// the past is answered as now (`None`): what the ledger knows of the future is what it
/// knows now, and the live read models already say it.
pub async fn cut_at(state: &AppState, t: DateTime<Utc>) -> Result<Option<Cut>, ApiError> {
    if t >= state.ledger.now() {
        return Ok(None);
    }
    Ok(Some(cut_at_time(state.ledger.log().as_ref(), t).await?))
}

async fn cut_at_log_position(state: &AppState, raw: &str) -> Result<Cut, ApiError> {
    let head = state.ledger.log().head().await?;
    let position = raw.parse::<u64>().ok().filter(|p| (1..=head).contains(p));
    let Some(position) = position else {
        return Err(ApiError::bad_request(format!(
            "at_position must be a position of the log, from 1 to the head {head}, not {raw:?}"
        )));
    };
    Ok(cut_at_position(state.ledger.log().as_ref(), position).await?)
}

/// The person's journey folded from the events of the cut, as the projector folds it;
/// 404 when the ledger knew nothing of the person then.
pub async fn journey(
    state: &AppState,
    person: &ScopedPerson,
    cut: Cut,
) -> Result<Journey, ApiError> {
    let events = person.history(state).await?;
    let known: Vec<_> = events
        .iter()
        .take_while(|e| e.position <= cut.position)
        .collect();
    if known.is_empty() {
        return Err(ApiError::unknown_person(person.id()));
    }
    Ok(Journey::fold(person.id(), known))
}
