//! The one write path of the edge: a submission body (one CloudEvent or a batch) from
//! HTTP (`POST /v1/events`), the NATS submit service or a web form is checked against
//! who may submit what (`access::policy`), against the identity rules for staff, and
//! recorded by the ledger. Refusals by policy (and identity conflicts) go in the access
//! log, the same way for every transport.

use axum::http::StatusCode;
use serde_json::{json, Value};
use throughcare_events::{validate_body, EventType, Identifier, PersonId, Problem, Submission};
use throughcare_ledger::{AccessRecord, AccessWhat, BatchError, Error as LedgerError, Outcome};

use crate::access::policy::{can_read, check_submission, is_staff};
use crate::access::{log, LogNote};
use crate::auth::Principal;
use crate::extract::parse_media;
use crate::problem::ApiError;
use crate::state::AppState;

/// How long a staff write waits for the read models to reach the log's head before its
/// scope is decided (503 after that).
const SCOPE_FRESHNESS: std::time::Duration = std::time::Duration::from_secs(2);

pub const SINGLE: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// A submission not recorded: the error, and whether access rules refused it (those
/// refusals go in the access log; recorded events are their own record).
#[derive(Debug)]
pub struct SubmitRefusal {
    pub error: ApiError,
    pub by_policy: bool,
    /// The person the refusal is about, for the access log (e.g. the owner of an
    /// identifier tried in a conflict; never told to the caller).
    pub person: Option<PersonId>,
}

impl From<ApiError> for SubmitRefusal {
    fn from(error: ApiError) -> Self {
        SubmitRefusal {
            error,
            by_policy: false,
            person: None,
        }
    }
}

impl From<LedgerError> for SubmitRefusal {
    fn from(e: LedgerError) -> Self {
        refusal_of(e)
    }
}

impl SubmitRefusal {
    fn policy(error: ApiError, person: Option<PersonId>) -> SubmitRefusal {
        SubmitRefusal {
            error,
            by_policy: true,
            person,
        }
    }

    /// The note that puts a refusal by policy on the record (HTTP and web forms).
    pub fn note(&self) -> Option<LogNote> {
        self.by_policy.then(|| LogNote {
            what: Some(AccessWhat::Submit),
            person: self.person,
            denied: true,
            ..LogNote::default()
        })
    }
}

/// A ledger refusal; an identity conflict is a refusal by policy about the owner.
fn refusal_of(e: LedgerError) -> SubmitRefusal {
    match &e {
        LedgerError::IdentityConflict { owner, .. } => {
            let owner = *owner;
            SubmitRefusal::policy(ApiError::from(e), Some(owner))
        }
        _ => ApiError::from(e).into(),
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

/// The identity and scope rules for staff ("Rules at the edge"): an event about an
/// existing person names it by `person_id`, the staff member may read that person, and
/// every identifier in it already belongs to that person. A staff referral may instead
/// open a person with identifiers nobody holds. An identifier that belongs to someone
/// else is a 409 that does not name them. Scope is decided once the read models have
/// reached the log's head, never on whatever they hold at that instant.
async fn check_staff_event(
    state: &AppState,
    p: &Principal,
    event: &throughcare_events::Event,
    pointer: &str,
) -> Result<(), SubmitRefusal> {
    let person = event.data.person();
    let at = |field: &str| format!("{pointer}/data/person{field}");
    let mut owners: Vec<(&'static str, Identifier, Option<PersonId>)> = Vec::new();
    for identifier in person.identifiers() {
        let field = match identifier {
            Identifier::Person(_) => continue,
            Identifier::Nomis(_) => "/nomis",
            Identifier::Nhs(_) => "/nhs_number",
            Identifier::Crn(_) => "/crn",
        };
        let owner = state.ledger.log().lookup_identifier(&identifier).await?;
        owners.push((field, identifier, owner));
    }
    let taken = |identifier: &Identifier, person: Option<PersonId>| {
        SubmitRefusal::policy(
            ApiError::new(
                StatusCode::CONFLICT,
                "identity-conflict",
                "Identifier belongs to someone else",
                format!(
                    "{identifier} already belongs to another person; records are never merged silently (the conflict is on the record for an auditor)"
                ),
            )
            .with("identifier", json!(identifier.to_string())),
            person,
        )
    };
    let not_theirs = |field: &str, identifier: &Identifier, person: PersonId| {
        SubmitRefusal::policy(
            ApiError::invalid(vec![Problem {
                pointer: at(field),
                detail: format!("{identifier} does not belong to this person; staff may only repeat identifiers the person already has (new ones are linked by identity sources)"),
            }]),
            Some(person),
        )
    };
    let target = match person.person_id {
        Some(id) => id,
        None if event.event_type() == EventType::ReferralReceived => {
            // A referral by identifiers: new ones open a person; known ones must all be
            // one person the staff member may read (else the conflict, unnamed).
            let known: Vec<PersonId> = owners.iter().filter_map(|(_, _, o)| *o).collect();
            let Some(first) = known.first().copied() else {
                return Ok(());
            };
            if let Some((_, identifier, _)) =
                owners.iter().find(|(_, _, o)| o.is_some_and(|o| o != first))
            {
                return Err(taken(identifier, Some(first)));
            }
            if !readable(state, p, first).await? {
                // Name the identifier that is someone's, not one nobody holds (`first`
                // came from `owners`, so one is).
                let (_, identifier, _) = owners
                    .iter()
                    .find(|(_, _, o)| *o == Some(first))
                    .unwrap_or(&owners[0]);
                return Err(taken(identifier, Some(first)));
            }
            // A person already known: as for any event about them, no new identifiers.
            if let Some((field, identifier, _)) = owners.iter().find(|(_, _, o)| o.is_none()) {
                return Err(not_theirs(field, identifier, first));
            }
            return Ok(());
        }
        None => {
            return Err(SubmitRefusal::policy(
                ApiError::invalid(vec![Problem {
                    pointer: at("/person_id"),
                    detail: "staff name the person an event is about by person_id (identifiers alone may only open a person, with a referral)".into(),
                }]),
                None,
            ))
        }
    };
    if !readable(state, p, target).await? {
        return Err(SubmitRefusal::policy(
            ApiError::invalid(vec![Problem {
                pointer: at(""),
                detail: "no person known to the ledger and allocated to you (or held at your prisons) matches this reference; staff record events only about people they can read".into(),
            }]),
            Some(target),
        ));
    }
    for (field, identifier, owner) in &owners {
        match owner {
            Some(o) if *o == target => {}
            Some(o) => return Err(taken(identifier, Some(*o))),
            None => return Err(not_theirs(field, identifier, target)),
        }
    }
    Ok(())
}

/// Whether staff member `p` may read `person`, decided on read models that have reached
/// the log's head as this write sees it.
async fn readable(
    state: &AppState,
    p: &Principal,
    person: PersonId,
) -> Result<bool, SubmitRefusal> {
    let head = state.ledger.log().head().await?;
    if !state.models.wait_for(head, SCOPE_FRESHNESS).await {
        return Err(ApiError::unavailable(format!(
            "read models are at position {} and have not reached {head} yet; retry shortly",
            state.models.checkpoint()
        ))
        .into());
    }
    Ok(state
        .models
        .journey(person)
        .map_err(ApiError::from)?
        .is_some_and(|j| can_read(p, &j)))
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
        check_submission(principal, &event.source, event.event_type())
            .map_err(|error| SubmitRefusal::policy(error, None))?;
        if is_staff(principal) {
            check_staff_event(state, principal, event, pointer).await?;
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
                .inspect_err(|e| state.metrics.refused(e))
                .map_err(refusal_of)?;
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
                            // An identity conflict in any item is on the record of the
                            // person whose identifier was tried.
                            let owner = f.iter().find_map(|item| match &item.error {
                                LedgerError::IdentityConflict { owner, .. } => Some(*owner),
                                _ => None,
                            });
                            SubmitRefusal {
                                error: ApiError::batch(f),
                                by_policy: owner.is_some(),
                                person: owner,
                            }
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

/// Answers one submission from another transport (the NATS submit service) exactly as
/// `POST /v1/events` would: the same credential check, the same rules, the same reply
/// (status, media type, body), and a refusal by policy on the record the same way.
/// `authorization` is the request's `Authorization` value.
pub async fn handle_submission(
    state: &AppState,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    const ROUTE: &str = "NATS throughcare.submit";
    let request_id = ulid::Ulid::new().to_string();
    let principal = match &state.auth {
        None => Ok(Principal::open_mode()),
        Some(auth) => {
            let token = authorization.and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
            match token {
                None => Err("send the header Authorization: Bearer <token>".to_string()),
                Some(t) => auth.authenticate(t).await.map_err(|e| e.to_string()),
            }
        }
    };
    let media = content_type.and_then(parse_media);
    let outcome = match principal {
        Err(detail) => {
            let mut error = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Authentication required",
                detail,
            );
            error.www_authenticate = true;
            Err((None, SubmitRefusal::policy(error, None)))
        }
        Ok(p) => match submit(state, &p, media.as_deref(), body).await {
            Ok(ok) => Ok(ok),
            Err(refusal) => Err((Some(p), refusal)),
        },
    };
    let problem = |e: &ApiError| {
        (
            e.status.as_u16(),
            "application/problem+json",
            e.to_json().to_string().into_bytes(),
        )
    };
    match outcome {
        Ok((status, value)) => (
            status.as_u16(),
            "application/json",
            value.to_string().into_bytes(),
        ),
        Err((principal, refusal)) => {
            let e = &refusal.error;
            // Without credentials nobody is identified: counted and sampled, as on HTTP.
            let sample = match &principal {
                Some(_) => Some(None),
                None => log::sample_unauthenticated(state).map(Some),
            };
            if let (true, Some(sample)) = (refusal.by_policy, sample) {
                let record = AccessRecord {
                    at: state.ledger.now(),
                    who: principal
                        .as_ref()
                        .map_or("anonymous".into(), |p| p.name.clone()),
                    role: principal
                        .as_ref()
                        .map_or("NONE".into(), |p| p.role.to_string()),
                    what: AccessWhat::Submit,
                    person_id: refusal.person,
                    people: Vec::new(),
                    purpose: None,
                    reason: sample,
                    outcome: Outcome::Denied,
                    review: false,
                    route: ROUTE.into(),
                    status: e.status.as_u16(),
                    request_id,
                };
                // As on HTTP: a refusal that cannot be put on the record is a 503.
                if let Err(unavailable) = log::write(state, record).await {
                    return problem(&unavailable);
                }
            }
            problem(e)
        }
    }
}
