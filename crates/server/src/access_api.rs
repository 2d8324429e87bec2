//! The auditor's view of the access log: search it, list the entries about one person,
//! and recompute its hash chain. Only AUDITOR reaches these (the route table says so).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use throughcare_events::PersonId;
use throughcare_ledger::{AccessEntry, AccessFilter};

use crate::access::ScopedPerson;
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

/// One page of entries. Typed (not `json!`) so that each entry keeps the member order of
/// its stored bytes, which an auditor re-hashes.
#[derive(Serialize)]
pub struct Page {
    #[serde(skip_serializing_if = "Option::is_none")]
    person_id: Option<PersonId>,
    entries: Vec<AccessEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<u64>,
}

impl Page {
    fn of(person_id: Option<PersonId>, entries: Vec<AccessEntry>, limit: usize) -> Page {
        let next_after = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.seq))
            .flatten();
        Page {
            person_id,
            entries,
            next_after,
        }
    }
}

/// Most entries one answer holds; page on with `after=<last seq>`.
const MAX_LIMIT: usize = 1000;

#[derive(Deserialize)]
pub struct AccessQuery {
    person: Option<String>,
    who: Option<String>,
    from: Option<String>,
    to: Option<String>,
    review: Option<bool>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// A time bound: an RFC 3339 instant or a date (`from` at its start, `to` at its end).
fn instant(
    name: &str,
    raw: Option<&str>,
    end_of_day: bool,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(s) = raw else { return Ok(None) };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a date (YYYY-MM-DD) or an RFC 3339 time, not {s:?}"
        ))
    })?;
    let t = if end_of_day {
        day.and_hms_milli_opt(23, 59, 59, 999)
    } else {
        day.and_hms_opt(0, 0, 0)
    };
    Ok(t.map(|t| t.and_utc()))
}

fn filter(q: &AccessQuery, person: Option<PersonId>) -> Result<AccessFilter, ApiError> {
    let limit = q.limit.unwrap_or(MAX_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        )));
    }
    let from = instant("from", q.from.as_deref(), false)?;
    let to = instant("to", q.to.as_deref(), true)?;
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(ApiError::bad_request("to must not be before from"));
        }
    }
    Ok(AccessFilter {
        person,
        who: q.who.clone().filter(|w| !w.is_empty()),
        from,
        to,
        review: q.review,
        after_seq: q.after.unwrap_or(0),
        limit,
    })
}

/// `GET /v1/access?person=&who=&from=&to=&review=true&after=&limit=`
pub async fn search(
    State(state): State<AppState>,
    Query(q): Query<AccessQuery>,
) -> Result<Json<Page>, ApiError> {
    let person = q
        .person
        .as_deref()
        .map(|raw| {
            raw.parse::<PersonId>().map_err(|_| {
                ApiError::bad_request(format!("person: {raw:?} is not a person id (a ULID)"))
            })
        })
        .transpose()?;
    let f = filter(&q, person)?;
    let entries = state.access.query(&f).await?;
    Ok(Json(Page::of(None, entries, f.limit)))
}

/// `GET /v1/people/{id}/access`: who looked at this person, and who was refused.
pub async fn person_access(
    State(state): State<AppState>,
    person: ScopedPerson,
    Query(q): Query<AccessQuery>,
) -> Result<Json<Page>, ApiError> {
    let person = person.id();
    let f = filter(&q, Some(person))?;
    let entries = state.access.query(&f).await?;
    Ok(Json(Page::of(Some(person), entries, f.limit)))
}

/// `GET /v1/access/verify`: recomputes the access log's chain from its stored bytes.
pub async fn verify(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.access.verify().await?)))
}
