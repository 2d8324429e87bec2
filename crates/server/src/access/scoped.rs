//! The capabilities the guard hands to handlers: a person (`ScopedPerson`), a subject
//! found by identifier (`Subject`) or a worker (`ScopedWorker`) the guard has decided this
//! caller may read, on the same decoded value the handler will use. Only this module can
//! make them, and the person-level reads live here and take them, so a handler cannot
//! read a person without the guard's decision (`tests/layout.rs` checks that no handler
//! reads person-level data around them).
//!
//! A handler asks for one as an extractor; a route whose row in the table has no such
//! scope never has one, and the extractor then fails closed (500), never open.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::NaiveDate;
use throughcare_events::{Identifier, PersonId, RecordedEvent};
use throughcare_ledger::{AccessEntry, AccessFilter, ChainReport, Error as LedgerError};
use throughcare_projections::Journey;
use throughcare_projector::ReadModels;

use super::policy::{can_read, sees_everyone};
use super::Caller;
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::state::AppState;

/// A person the caller may read in this request.
#[derive(Clone, Debug)]
pub struct ScopedPerson {
    id: PersonId,
    /// The journey the guard decided on (None: an auditor or open mode asked about a
    /// person the read models do not hold).
    checked: Option<Arc<Journey>>,
}

impl ScopedPerson {
    pub(super) fn new(id: PersonId, checked: Option<Arc<Journey>>) -> ScopedPerson {
        ScopedPerson { id, checked }
    }

    pub fn id(&self) -> PersonId {
        self.id
    }

    /// The journey as the guard read it for its decision.
    pub fn checked(&self) -> Option<&Arc<Journey>> {
        self.checked.as_ref()
    }

    /// The journey in the read models now (404 when they hold none).
    pub fn journey(&self, state: &AppState) -> Result<Journey, ApiError> {
        state
            .models
            .journey(self.id)?
            .ok_or_else(|| ApiError::unknown_person(self.id))
    }

    /// The journey the guard checked, else the read model's now.
    pub fn journey_checked_or_now(&self, state: &AppState) -> Result<Arc<Journey>, ApiError> {
        match &self.checked {
            Some(j) => Ok(j.clone()),
            None => self.journey(state).map(Arc::new),
        }
    }

    /// Every recorded event of the person, in order, with the ledger's own error.
    pub async fn history_raw(&self, state: &AppState) -> Result<Vec<RecordedEvent>, LedgerError> {
        state.ledger.history(self.id).await
    }

    /// Every recorded event of the person, in order. A record the server cannot read
    /// back intact is a `ledger-corrupt` problem, as on `/v1/ledger/entries`.
    pub async fn history(&self, state: &AppState) -> Result<Vec<RecordedEvent>, ApiError> {
        match state.ledger.history(self.id).await {
            Ok(events) => Ok(events),
            Err(LedgerError::Corrupt(why)) => Err(crate::problem::corrupt(&why, None)),
            Err(other) => Err(other.into()),
        }
    }

    /// The person's hash chain recomputed from the stored bytes.
    pub async fn verify(&self, state: &AppState) -> Result<ChainReport, ApiError> {
        Ok(state.ledger.verify(self.id).await?)
    }

    /// Every access-log entry about the person, oldest first, at most `limit` after
    /// `after_seq` (an export pages through them).
    pub async fn access_entries(
        &self,
        state: &AppState,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AccessEntry>, ApiError> {
        let filter = AccessFilter {
            person: Some(self.id),
            after_seq,
            limit,
            ..AccessFilter::default()
        };
        Ok(state.access.query(&filter).await?)
    }
}

/// The person a query's identifier named, as the guard resolved it: known and in scope,
/// or unknown to the ledger (only an AUDITOR or open mode is told so; anyone else gets the
/// guard's 404).
#[derive(Clone, Debug)]
pub enum Subject {
    Known {
        person: ScopedPerson,
        identifier: Identifier,
    },
    Unknown {
        identifier: Option<Identifier>,
    },
}

/// A worker whose caseload the caller may read (a WORKER only its own).
#[derive(Clone, Debug)]
pub struct ScopedWorker {
    worker_id: String,
}

impl ScopedWorker {
    pub(super) fn new(worker_id: String) -> ScopedWorker {
        ScopedWorker { worker_id }
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The worker's open cases in `models` (the live read models or an as-of replay;
    /// `past` for a replay) that the caller may read (a manager the ones at its prisons).
    pub fn caseload(
        &self,
        models: &ReadModels,
        state: &AppState,
        caller: &Caller,
        past: bool,
    ) -> Result<Vec<Journey>, ApiError> {
        let rows = models.caseload(&self.worker_id)?;
        readable(state, caller, past, rows, |j| j)
    }
}

/// The release calendar (`from..=to`, optionally one prison) of `models` (the live read
/// models or an as-of replay; `past` for a replay), limited to the people the caller may
/// read.
#[allow(clippy::too_many_arguments)]
pub fn releases(
    models: &ReadModels,
    state: &AppState,
    caller: &Caller,
    past: bool,
    from: NaiveDate,
    to: NaiveDate,
    prison: Option<&str>,
) -> Result<Vec<(NaiveDate, Journey)>, ApiError> {
    let rows = models.releases(from, to, prison)?;
    readable(state, caller, past, rows, |(_, j)| j)
}

/// The open and closed cases the caller may read (a manager's triage queue and lists).
pub fn cases(state: &AppState, caller: &Caller) -> Result<Vec<Journey>, ApiError> {
    let mut out = Vec::new();
    for j in state.models.journeys() {
        let j = j?;
        if can_read(&caller.principal, &j) {
            out.push(j);
        }
    }
    Ok(out)
}

/// The signed-in worker's own caseload (in open mode, the one asked for): the worker id
/// and its cases.
pub fn own_caseload(
    state: &AppState,
    caller: &Caller,
    asked: Option<String>,
) -> Result<(String, Vec<Journey>), ApiError> {
    let p = &caller.principal;
    let worker = if p.open_mode {
        asked.unwrap_or_default()
    } else {
        p.worker_id.clone().unwrap_or_default()
    };
    if worker.is_empty() {
        return Ok((worker, Vec::new()));
    }
    let rows = state.models.caseload(&worker)?;
    let rows = readable(state, caller, false, rows, |j| j)?;
    Ok((worker, rows))
}

/// What a page's identifier search found for the caller.
pub enum Found {
    /// A person the caller may read.
    Readable(PersonId),
    /// No one the caller may read: nobody has the identifier (`None`), or someone out of
    /// the caller's scope does (named only for the access log).
    NotFound(Option<PersonId>),
}

/// Looks an identifier up for a page's search, as `GET /v1/people?identifier=` would
/// answer the caller (no break glass on pages).
pub async fn find(
    state: &AppState,
    caller: &Caller,
    identifier: &Identifier,
) -> Result<Found, ApiError> {
    let Some(person) = state.ledger.log().lookup_identifier(identifier).await? else {
        return Ok(Found::NotFound(None));
    };
    Ok(if readable_now(state, &caller.principal, person)? {
        Found::Readable(person)
    } else {
        Found::NotFound(Some(person))
    })
}

/// The rows of a list whose people the caller may read: at the cut (a manager sees its
/// own prisons only) and, for an answer about the past (`past`), now as well (reading
/// the past never widens scope).
fn readable<T>(
    state: &AppState,
    caller: &Caller,
    past: bool,
    rows: Vec<T>,
    journey: impl Fn(&T) -> &Journey,
) -> Result<Vec<T>, ApiError> {
    let p = &caller.principal;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let j = journey(&row);
        if can_read(p, j) && (!past || readable_now(state, p, j.person_id)?) {
            out.push(row);
        }
    }
    Ok(out)
}

/// Whether the caller may read the person today.
fn readable_now(state: &AppState, p: &Principal, person: PersonId) -> Result<bool, ApiError> {
    Ok(match state.models.journey(person)? {
        Some(j) => can_read(p, &j),
        None => sees_everyone(p),
    })
}

/// The capability the guard put in the request. Fails closed: a handler asking for one
/// its route does not grant is a bug in the route table, answered 500 and logged, never
/// served.
fn granted<T: Clone + Send + Sync + 'static>(parts: &Parts, what: &str) -> Result<T, ApiError> {
    parts.extensions.get::<T>().cloned().ok_or_else(|| {
        tracing::error!(
            path = %parts.uri.path(),
            "a handler asked for {what} but the guard granted none; check the route's scope"
        );
        ApiError::internal()
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ScopedPerson {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        granted(parts, "a scoped person")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Subject {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        granted(parts, "a subject")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ScopedWorker {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        granted(parts, "a scoped worker")
    }
}
