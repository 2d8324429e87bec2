//! The access guard: one middleware in front of every route. It finds the route's row in
//! the table (`routes.rs`), identifies the caller (bearer token, JWT or session cookie),
//! checks the role, the purpose and the scope (a person outside scope is answered exactly
//! as an unknown person), runs the handler, and appends the access-log entry *before*
//! the response leaves: if the entry cannot be made durable, the data is not sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use throughcare_events::{Identifier, PersonId};
use throughcare_ledger::{AccessRecord, AccessWhat, Outcome, Purpose};

use super::log;
use super::policy::{can_read, default_purpose, forbidden, may_break_glass, sees_everyone};
use super::rules::{Allow, Kind, Route, Scope};
use super::scoped::{ScopedPerson, ScopedWorker, Subject};
use crate::auth::session;
use crate::auth::{Principal, Role};
use crate::problem::ApiError;
use crate::state::AppState;

/// The header carrying the request id, equal to the access-log entry's `request_id`.
pub const REQUEST_ID: &str = "throughcare-request-id";
/// The header form of `?purpose=`.
pub const PURPOSE_HEADER: &str = "throughcare-purpose";

/// The route table indexed by method, then path pattern.
pub struct RouteIndex {
    by_method: HashMap<Method, HashMap<&'static str, Route>>,
}

/// What the guard runs with: the server's state and the route table it enforces.
#[derive(Clone)]
pub struct Guarded {
    pub state: AppState,
    pub routes: Arc<RouteIndex>,
}

impl RouteIndex {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut by_method: HashMap<Method, HashMap<&'static str, Route>> = HashMap::new();
        for r in routes {
            by_method
                .entry(r.method.clone())
                .or_default()
                .insert(r.path, r);
        }
        RouteIndex { by_method }
    }
    fn get(&self, method: &Method, path: &str) -> Option<&Route> {
        // HEAD is answered by GET routes.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.by_method.get(method)?.get(path)
    }
}

/// Who is calling and why, for handlers (a request extension set by the guard).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub purpose: Purpose,
    pub reason: Option<String>,
    /// Set when the read broke glass.
    pub review: bool,
    pub request_id: String,
}

/// What a handler tells the guard to log beyond the route's row (a response extension):
/// the person an identifier lookup found, or a submission refused by policy.
#[derive(Clone, Debug, Default)]
pub struct LogNote {
    pub what: Option<AccessWhat>,
    pub person: Option<PersonId>,
    /// The people a list showed (READ_LIST, READ_CASELOAD).
    pub people: Vec<PersonId>,
    pub denied: bool,
    /// The read broke glass (an identifier lookup outside scope for an emergency).
    pub review: bool,
    /// Who the handler itself identified on an open route (name, role): a partner's token
    /// refused at sign-in is logged as that partner, not as anonymous.
    pub who: Option<(String, String)>,
}

/// The middleware. Routes not in the table (the fallback) pass straight through.
pub async fn guard(
    State(Guarded { state, routes }): State<Guarded>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = ulid::Ulid::new().to_string();
    let started = Instant::now();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = path.and_then(|p| routes.get(request.method(), &p));
    let mut response = match route {
        None => next.run(request).await,
        Some(route) => {
            // The body limit comes first: before the caller is identified, and before a
            // byte of the body is read (a declared length over it is refused at once; a
            // body without one is cut off at the limit and the handler's read fails).
            if declared_length(request.headers()).is_some_and(|n| n > route.body_limit) {
                return too_large(route, &request_id);
            }
            // The path parameters as the handler's extractors will see them: decoded.
            let (mut parts, body) = request.into_parts();
            let body = crate::body::guarded(body, route.body_limit);
            let params = RawPathParams::from_request_parts(&mut parts, &state)
                .await
                .map(|raw| {
                    raw.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let mut request = Request::from_parts(parts, body);
            match admit(&state, route, &mut request, &params, &request_id).await {
                Err(refusal) => refusal.respond(&state, route, &request_id, started).await,
                Ok(admitted) => {
                    let person = admitted.person;
                    let caller = admitted.caller;
                    request.extensions_mut().insert(caller.clone());
                    let response = next.run(request).await;
                    log_read(&state, route, &caller, person, response).await
                }
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// The `Content-Length` a request declares (an unreadable one counts as too large).
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    let v = headers.get(header::CONTENT_LENGTH)?;
    Some(
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX),
    )
}

/// 413 problem+json for a body over the route's limit.
fn too_large(route: &Route, request_id: &str) -> Response {
    let mut response = ApiError::too_large(route.body_limit).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    // The client may still be sending: do not keep the connection for the rest.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A scope refusal (unknown or out of scope) is answered no sooner than this after the
/// request arrived, so that the two cannot be told apart by time either.
const SCOPE_REFUSAL_FLOOR: Duration = Duration::from_millis(5);

/// Why a request is refused before its handler runs.
struct Refusal {
    error: ApiError,
    /// None: no or bad credentials.
    principal: Option<Arc<Principal>>,
    person: Option<PersonId>,
    purpose: Option<Purpose>,
    reason: Option<String>,
    /// Whether to log it (a malformed purpose is a bad request, not a refusal).
    logged: bool,
    /// A refusal by scope (answered as an unknown subject, at the floor's time).
    by_scope: bool,
}

impl Refusal {
    fn unauthenticated(detail: &str) -> Refusal {
        let mut error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail.to_string(),
        );
        error.www_authenticate = true;
        Refusal::of(error, None)
    }
    fn of(error: ApiError, principal: Option<Arc<Principal>>) -> Refusal {
        Refusal {
            error,
            principal,
            person: None,
            purpose: None,
            reason: None,
            logged: true,
            by_scope: false,
        }
    }

    async fn respond(
        self,
        state: &AppState,
        route: &Route,
        request_id: &str,
        started: Instant,
    ) -> Response {
        // Without credentials nobody is identified: such refusals are counted and
        // sampled, never written one by one, and never against a person.
        let sampled = match (&self.principal, self.logged) {
            (_, false) => None,
            (Some(_), true) => Some(None),
            (None, true) => log::sample_unauthenticated(state).map(Some),
        };
        if let Some(sample) = sampled {
            let reason = sample.clone().or(self.reason);
            let record = AccessRecord {
                at: state.ledger.now(),
                who: self
                    .principal
                    .as_ref()
                    .map_or("anonymous".into(), |p| p.name.clone()),
                role: self
                    .principal
                    .as_ref()
                    .map_or("NONE".into(), |p| p.role.to_string()),
                what: AccessWhat::Denied,
                person_id: if sample.is_some() { None } else { self.person },
                people: Vec::new(),
                purpose: self.purpose,
                reason,
                outcome: Outcome::Denied,
                review: false,
                route: route.name(),
                status: self.error.status.as_u16(),
                request_id: request_id.to_string(),
            };
            if let Err(e) = log::write(state, record).await {
                return e.into_response();
            }
        }
        if self.by_scope {
            tokio::time::sleep_until((started + SCOPE_REFUSAL_FLOOR).into()).await;
        }
        // A browser without a session is sent to sign in; a signed-in browser refused a
        // page sees the problem.
        if route.kind == Kind::Page && self.error.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/sign-in").into_response();
        }
        self.error.into_response()
    }
}

/// What the guard lets through: the caller, and the person the request is about (for
/// its access-log entry).
struct Admitted {
    caller: Caller,
    person: Option<PersonId>,
}

/// Query parameters the guard decides on or hands on: each may be given once.
const SINGLE_PARAMS: &[&str] = &[
    "purpose",
    "reason",
    "prison",
    "identifier",
    "prn",
    "crn",
    "min_position",
    "as_of",
    "at_position",
    "worker",
];

/// Decides whether the request may reach its handler; on the way, puts the capability
/// the route's scope grants into the request's extensions.
async fn admit(
    state: &AppState,
    route: &Route,
    request: &mut Request,
    params: &[(String, String)],
    request_id: &str,
) -> Result<Admitted, Refusal> {
    let open = |principal: Arc<Principal>| Admitted {
        caller: Caller {
            purpose: default_purpose(&principal),
            principal,
            reason: None,
            review: false,
            request_id: request_id.to_string(),
        },
        person: None,
    };
    let roles = match route.allow {
        Allow::Open => return Ok(open(Arc::new(Principal::anonymous()))),
        Allow::Metrics => {
            let ok = match &state.auth {
                None => true,
                Some(auth) => bearer(request.headers()).is_some_and(|t| auth.is_metrics_token(t)),
            };
            return if ok {
                Ok(open(Arc::new(Principal::anonymous())))
            } else {
                Err(Refusal::unauthenticated(
                    "/metrics needs the scrape token of the [metrics] table",
                ))
            };
        }
        Allow::Roles(roles) => roles,
    };
    let principal = identify(state, request.headers()).await?;
    if !principal.open_mode && !roles.contains(&principal.role) {
        // Who tried to reach a person is on that person's record, whatever the reason.
        let person = (route.scope == Scope::Person)
            .then(|| param(params, "id").parse::<PersonId>().ok())
            .flatten();
        return Err(Refusal {
            person,
            ..Refusal::of(
                forbidden(format!(
                    "the {} role may not use {}",
                    principal.role,
                    route.name()
                )),
                Some(principal),
            )
        });
    }
    let bad_request = |error: ApiError| Refusal {
        logged: false,
        ..Refusal::of(error, Some(principal.clone()))
    };
    if let Some(name) = repeated_param(request) {
        return Err(bad_request(ApiError::bad_request(format!(
            "query parameter {name} is given more than once; give it once"
        ))));
    }
    let (purpose, reason) = purpose(request, &principal, route).map_err(bad_request)?;
    let mut caller = Caller {
        principal: principal.clone(),
        purpose,
        reason: reason.clone(),
        review: false,
        request_id: request_id.to_string(),
    };
    let refuse = |error: ApiError, person: Option<PersonId>| Refusal {
        error,
        principal: Some(principal.clone()),
        person,
        purpose: Some(purpose),
        reason: reason.clone(),
        logged: true,
        by_scope: false,
    };
    let mut person = None;
    match route.scope {
        Scope::None => {}
        Scope::Person => {
            let asked = param(params, "id");
            let Ok(id) = asked.parse::<PersonId>() else {
                // Nothing can be read by an id that does not parse: refused here, on the
                // record with what was asked for, never passed on.
                return Err(Refusal {
                    by_scope: true,
                    ..refuse(
                        ApiError::not_found(format!(
                            "no person {} is known to the ledger",
                            shown(&asked)
                        )),
                        None,
                    )
                    .asked(&asked)
                });
            };
            let min = query_param(request, "min_position").and_then(|v| v.parse().ok());
            let scoped = decide(state, &principal, purpose, id, min)
                .await
                .map_err(|e| refuse(e, Some(id)))?
                .ok_or_else(|| Refusal {
                    by_scope: true,
                    ..refuse(ApiError::unknown_person(id), Some(id))
                })?;
            caller.review = scoped.1;
            request.extensions_mut().insert(scoped.0);
            person = Some(id);
        }
        Scope::Identifier | Scope::SarSubject => {
            let identifiers = if route.scope == Scope::Identifier {
                identifier_param(request).map_err(bad_request)?
            } else {
                sar_params(request).map_err(bad_request)?
            };
            let mut found: Option<(PersonId, Identifier)> = None;
            for identifier in identifiers.iter().flatten() {
                let owner = state
                    .ledger
                    .log()
                    .lookup_identifier(identifier)
                    .await
                    .map_err(|e| refuse(ApiError::from(e), None))?;
                match (owner, &found) {
                    (Some(o), Some((f, _))) if o != *f => {
                        return Err(bad_request(ApiError::bad_request(
                            "the identifiers name two different people; send the identifiers of one person",
                        )))
                    }
                    (Some(o), None) => found = Some((o, identifier.clone())),
                    _ => {}
                }
            }
            let unknown = || {
                let named = identifiers
                    .iter()
                    .flatten()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                ApiError::not_found(format!("no person has identifier {named}"))
            };
            let subject = match found {
                None if sees_everyone(&principal) => Subject::Unknown {
                    identifier: identifiers.into_iter().flatten().next(),
                },
                None => {
                    return Err(Refusal {
                        by_scope: true,
                        ..refuse(unknown(), None)
                    })
                }
                Some((id, identifier)) => {
                    let scoped = decide(state, &principal, purpose, id, None)
                        .await
                        .map_err(|e| refuse(e, Some(id)))?;
                    let Some((scoped, review)) = scoped else {
                        return Err(Refusal {
                            by_scope: true,
                            ..refuse(unknown(), Some(id))
                        });
                    };
                    caller.review = review;
                    person = Some(id);
                    Subject::Known {
                        person: scoped,
                        identifier,
                    }
                }
            };
            request.extensions_mut().insert(subject);
        }
        Scope::Worker => {
            let asked = param(params, "worker_id");
            if principal.role == Role::Worker
                && !principal.open_mode
                && principal.worker_id.as_deref() != Some(asked.as_str())
            {
                return Err(refuse(
                    forbidden(format!(
                        "a worker may read only its own caseload ({})",
                        principal.worker_id.as_deref().unwrap_or("none")
                    )),
                    None,
                ));
            }
            request
                .extensions_mut()
                .insert(ScopedWorker::new(asked.clone()));
        }
        Scope::Prisons => {
            if matches!(principal.role, Role::Manager | Role::Commissioner) && !principal.open_mode
            {
                if let Some(prison) = query_param(request, "prison") {
                    if !principal.covers_prison(&prison) {
                        return Err(refuse(
                            ApiError::new(
                                StatusCode::FORBIDDEN,
                                "prison-not-allowed",
                                "Prison not allowed",
                                format!(
                                    "{} may see only its prisons: {}",
                                    principal.name,
                                    principal.prisons.join(", ")
                                ),
                            ),
                            None,
                        ));
                    }
                }
            }
        }
    }
    Ok(Admitted { caller, person })
}

impl Refusal {
    /// Notes what a refused subject was asked as (an id that does not parse).
    fn asked(mut self, asked: &str) -> Refusal {
        self.reason = Some(format!("asked for {}", shown(asked)));
        self
    }
}

/// A value as a refusal quotes it: at most 64 characters, escaped.
fn shown(raw: &str) -> String {
    let cut: String = raw.chars().take(64).collect();
    format!("{cut:?}")
}

/// Decides whether `principal` may read `person` now: `Ok(Some((capability, review)))`
/// in scope (review: by breaking glass), `Ok(None)` out of scope or unknown (one answer
/// for both, so that scope does not reveal who exists).
async fn decide(
    state: &AppState,
    principal: &Principal,
    purpose: Purpose,
    person: PersonId,
    min_position: Option<u64>,
) -> Result<Option<(ScopedPerson, bool)>, ApiError> {
    if let Some(min) = min_position {
        // Scope may depend on events not yet projected (a fresh allocation).
        state
            .models
            .wait_for(min, crate::state::FRESHNESS_WAIT)
            .await;
    }
    let journey = state.models.journey(person)?;
    Ok(match journey {
        Some(j) if can_read(principal, &j) => {
            Some((ScopedPerson::new(person, Some(Arc::new(j))), false))
        }
        Some(j) if purpose == Purpose::Emergency && may_break_glass(principal) => {
            Some((ScopedPerson::new(person, Some(Arc::new(j))), true))
        }
        // Auditors and open mode are told the person is unknown by the handler.
        None if sees_everyone(principal) => Some((ScopedPerson::new(person, None), false)),
        _ => None,
    })
}

/// A path parameter, percent-decoded as the handler's `Path` sees it ("" when absent).
fn param(params: &[(String, String)], name: &str) -> String {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The first of `SINGLE_PARAMS` the query gives more than once.
fn repeated_param(request: &Request) -> Option<&'static str> {
    let query = request.uri().query()?;
    SINGLE_PARAMS
        .iter()
        .copied()
        .find(|name| url_pairs(query).filter(|(k, _)| k == name).count() > 1)
}

/// `?identifier=nomis:A1234BC` (required, well formed: else 400).
fn identifier_param(request: &Request) -> Result<Vec<Option<Identifier>>, ApiError> {
    let raw = query_param(request, "identifier").ok_or_else(|| {
        ApiError::bad_request(
            "query parameter identifier is required, e.g. ?identifier=nomis:A1234BC",
        )
    })?;
    let identifier: Identifier = raw
        .parse()
        .map_err(|e: String| ApiError::bad_request(format!("identifier: {e}")))?;
    Ok(vec![Some(identifier)])
}

/// The HMPPS SAR's `prn` (a NOMIS number) and `crn`: one is required; a malformed value
/// names no one (the SAR convention answers that 209, not 400).
fn sar_params(request: &Request) -> Result<Vec<Option<Identifier>>, ApiError> {
    let get = |name: &str, kind: &str| {
        query_param(request, name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| format!("{kind}:{}", v.trim()).parse::<Identifier>().ok())
    };
    let given: Vec<Option<Identifier>> = [get("prn", "nomis"), get("crn", "crn")]
        .into_iter()
        .flatten()
        .collect();
    if given.is_empty() {
        return Err(ApiError::bad_request(
            "one of prn (a NOMIS prison number) or crn (a case reference number) must be supplied",
        ));
    }
    Ok(given)
}

/// The caller: bearer token or JWT, else the session cookie; open mode without `--auth`.
async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Arc<Principal>, Refusal> {
    let Some(auth) = &state.auth else {
        return Ok(Arc::new(Principal::open_mode()));
    };
    if let Some(token) = bearer(headers) {
        return match auth.authenticate(token).await {
            Ok(p) => Ok(Arc::new(p)),
            Err(e) => Err(Refusal::unauthenticated(&e.to_string())),
        };
    }
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
        .and_then(|id| state.sessions.get(id));
    session.ok_or_else(|| {
        Refusal::unauthenticated("send Authorization: Bearer <token>, or sign in at /sign-in")
    })
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The purpose of the read (`?purpose=` or the `Throughcare-Purpose` header) and the
/// break-glass reason. A route that names its purposes takes only those (the first when
/// none is given).
fn purpose(
    request: &Request,
    p: &Principal,
    route: &Route,
) -> Result<(Purpose, Option<String>), ApiError> {
    let raw = query_param(request, "purpose").or_else(|| {
        request
            .headers()
            .get(PURPOSE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let purpose = match raw {
        None => route
            .purposes
            .first()
            .copied()
            .unwrap_or_else(|| default_purpose(p)),
        Some(s) => Purpose::parse(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "purpose {s:?} is not one of DIRECT_CARE, SERVICE_MANAGEMENT, AUDIT, SUBJECT_ACCESS, EMERGENCY"
            ))
        })?,
    };
    if !route.purposes.is_empty() && !route.purposes.contains(&purpose) {
        let allowed: Vec<&str> = route.purposes.iter().map(|p| p.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "purpose {} is not allowed for {}: use one of {}",
            purpose.as_str(),
            route.name(),
            allowed.join(", ")
        )));
    }
    let reason = query_param(request, "reason").filter(|r| !r.trim().is_empty());
    if purpose == Purpose::Emergency && reason.is_none() {
        return Err(ApiError::bad_request(
            "purpose EMERGENCY needs a reason: add &reason=... saying why the record is needed now",
        ));
    }
    if reason.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(ApiError::bad_request(
            "reason may be at most 500 characters",
        ));
    }
    Ok((purpose, reason))
}

/// One query parameter, percent-decoded.
fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.uri().query()?;
    url_pairs(query).find(|(k, _)| k == name).map(|(_, v)| v)
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// Appends the entry of a read (or of a handler's refusal) before the response leaves.
async fn log_read(
    state: &AppState,
    route: &Route,
    caller: &Caller,
    person: Option<PersonId>,
    response: Response,
) -> Response {
    let note = response.extensions().get::<LogNote>().cloned();
    let what = note.as_ref().and_then(|n| n.what).or(route.what);
    let Some(what) = what else { return response };
    let denied = note.as_ref().is_some_and(|n| n.denied);
    let review = caller.review || note.as_ref().is_some_and(|n| n.review);
    // On open routes (sign-in) nobody is identified by the guard: a refusal there is
    // anonymous unless the handler identified the caller itself.
    let anonymous = matches!(route.allow, Allow::Open | Allow::Metrics);
    let (who, role) = match note.as_ref().and_then(|n| n.who.clone()) {
        Some(named) => named,
        None if anonymous => ("anonymous".into(), "NONE".into()),
        None => (
            caller.principal.name.clone(),
            caller.principal.role.to_string(),
        ),
    };
    let (note_person, people) = note.map(|n| (n.person, n.people)).unwrap_or_default();
    let record = AccessRecord {
        at: state.ledger.now(),
        who,
        role,
        what,
        person_id: note_person.or(person),
        people,
        // A submission has no purpose of reading; an anonymous refusal has none at all.
        purpose: (what != AccessWhat::Submit && !anonymous).then_some(caller.purpose),
        reason: caller.reason.clone(),
        outcome: if denied {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        review,
        route: route.name(),
        status: response.status().as_u16(),
        request_id: caller.request_id.clone(),
    };
    match log::write(state, record).await {
        Ok(()) => response,
        // The read is not on the record, so the data must not leave.
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        let pairs: Vec<_> = url_pairs("purpose=EMERGENCY&reason=a+b%2Fc%zz&x").collect();
        assert_eq!(pairs[0], ("purpose".into(), "EMERGENCY".into()));
        assert_eq!(pairs[1], ("reason".into(), "a b/c%zz".into()));
        assert_eq!(pairs[2], ("x".into(), "".into()));
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
