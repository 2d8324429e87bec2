//! The access guard: one middleware in front of every route. It finds the route's row in
//! the table (`routes.rs`), identifies the caller (bearer token, JWT or session cookie),
//! checks the role, the purpose and the scope (a person outside scope is answered exactly
//! as an unknown person), runs the handler, and appends the access-log entry *before*
//! the response leaves: if the entry cannot be made durable, the data is not sent.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use throughcare_events::PersonId;
use throughcare_ledger::{AccessRecord, AccessWhat, Outcome, Purpose};
use throughcare_projections::Journey;

use super::policy::{can_read, default_purpose, forbidden, may_break_glass};
use super::routes::{routes, Allow, Kind, Route, Scope};
use super::session;
use crate::auth::{Principal, Role};
use crate::problem::ApiError;
use crate::AppState;

/// The header carrying the request id, equal to the access-log entry's `request_id`.
pub const REQUEST_ID: &str = "throughcare-request-id";
/// The header form of `?purpose=`.
pub const PURPOSE_HEADER: &str = "throughcare-purpose";

/// The route table indexed by method, then path pattern.
pub struct RouteIndex {
    by_method: HashMap<Method, HashMap<&'static str, Route>>,
}

impl RouteIndex {
    pub fn new() -> Self {
        let mut by_method: HashMap<Method, HashMap<&'static str, Route>> = HashMap::new();
        for r in routes() {
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

impl Default for RouteIndex {
    fn default() -> Self {
        Self::new()
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

/// A journey the guard already loaded for the scope check (a request extension), so the
/// handler need not read it again.
#[derive(Clone)]
pub struct ScopedJourney(pub Arc<Journey>);

/// What a handler tells the guard to log beyond the route's row (a response extension):
/// the person an identifier lookup found, or a submission refused by policy.
#[derive(Clone, Debug, Default)]
pub struct LogNote {
    pub what: Option<AccessWhat>,
    pub person: Option<PersonId>,
    pub denied: bool,
    /// The read broke glass (an identifier lookup outside scope for an emergency).
    pub review: bool,
    /// Who the handler itself identified on an open route (name, role): a partner's token
    /// refused at sign-in is logged as that partner, not as anonymous.
    pub who: Option<(String, String)>,
}

/// The middleware. Routes not in the table (the fallback) pass straight through.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = ulid::Ulid::new().to_string();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let route = path.and_then(|p| state.routes.get(request.method(), &p));
    let mut response = match route {
        None => next.run(request).await,
        Some(route) => match admit(&state, route, &mut request, &request_id).await {
            Err(mut refusal) => {
                // Who tried to reach a person is on that person's record, whatever the
                // reason for the refusal.
                if route.scope == Scope::Person && refusal.person.is_none() {
                    refusal.person = path_person(&request);
                }
                refusal.respond(&state, route, &request_id).await
            }
            Ok(caller) => {
                let person = path_person(&request);
                request.extensions_mut().insert(caller.clone());
                let response = next.run(request).await;
                log_read(&state, route, &caller, person, response).await
            }
        },
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

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
        }
    }

    async fn respond(self, state: &AppState, route: &Route, request_id: &str) -> Response {
        if self.logged {
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
                person_id: self.person,
                purpose: self.purpose,
                reason: self.reason,
                outcome: Outcome::Denied,
                review: false,
                route: route.name(),
                status: self.error.status.as_u16(),
                request_id: request_id.to_string(),
            };
            if let Err(e) = state.access.append(record).await {
                tracing::error!(error = %e, "access log append failed");
                return ApiError::unavailable("the access log is unavailable; retry shortly")
                    .into_response();
            }
            state.metrics.access(true, false);
        }
        // A browser without a session is sent to sign in; a signed-in browser refused a
        // page sees the problem.
        if route.kind == Kind::Page && self.error.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/sign-in").into_response();
        }
        self.error.into_response()
    }
}

/// Decides whether the request may reach its handler.
async fn admit(
    state: &AppState,
    route: &Route,
    request: &mut Request,
    request_id: &str,
) -> Result<Caller, Refusal> {
    let open = |principal: Arc<Principal>| Caller {
        purpose: default_purpose(&principal),
        principal,
        reason: None,
        review: false,
        request_id: request_id.to_string(),
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
        return Err(Refusal::of(
            forbidden(format!(
                "the {} role may not use {}",
                principal.role,
                route.name()
            )),
            Some(principal),
        ));
    }
    let (purpose, reason) = purpose(request, &principal, route).map_err(|error| Refusal {
        logged: false,
        ..Refusal::of(error, Some(principal.clone()))
    })?;
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
    };
    match route.scope {
        Scope::None => {}
        Scope::Person => {
            // A malformed id is the handler's 400.
            let Some(person) = path_person(request) else {
                return Ok(caller);
            };
            if let Some(min) = query_param(request, "min_position").and_then(|v| v.parse().ok()) {
                // Scope may depend on events not yet projected (a fresh allocation).
                state.models.wait_for(min, crate::api::FRESHNESS_WAIT).await;
            }
            let journey = state
                .models
                .journey(person)
                .map_err(|e| refuse(ApiError::from(e), Some(person)))?;
            match journey {
                Some(j) if can_read(&principal, &j) => {
                    request.extensions_mut().insert(ScopedJourney(Arc::new(j)));
                }
                Some(j) if purpose == Purpose::Emergency && may_break_glass(&principal) => {
                    caller.review = true;
                    request.extensions_mut().insert(ScopedJourney(Arc::new(j)));
                }
                // Out of scope, or no such person: the same answer, so that scope does
                // not reveal who exists. Auditors and open mode see the handler's 404.
                None if principal.open_mode || principal.role == Role::Auditor => {}
                _ => {
                    return Err(refuse(ApiError::unknown_person(person), Some(person)));
                }
            }
        }
        Scope::Worker => {
            if principal.role == Role::Worker && !principal.open_mode {
                let asked = request
                    .uri()
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if principal.worker_id.as_deref() != Some(asked.as_str()) {
                    return Err(refuse(
                        forbidden(format!(
                            "a worker may read only its own caseload ({})",
                            principal.worker_id.as_deref().unwrap_or("none")
                        )),
                        None,
                    ));
                }
            }
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
    Ok(caller)
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

/// The person of a `/people/{id}...` path, when the id is well formed.
fn path_person(request: &Request) -> Option<PersonId> {
    let mut segments = request.uri().path().split('/');
    segments.find(|s| *s == "people")?;
    segments.next()?.parse().ok()
}

/// Appends the entry of a read (or of a handler's refusal) before the response leaves.
async fn log_read(
    state: &AppState,
    route: &Route,
    caller: &Caller,
    path_person: Option<PersonId>,
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
    let record = AccessRecord {
        at: state.ledger.now(),
        who,
        role,
        what,
        person_id: note.and_then(|n| n.person).or(path_person),
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
    match state.access.append(record).await {
        Ok(_) => {
            state.metrics.access(denied, review);
            response
        }
        Err(e) => {
            // The read is not on the record, so the data must not leave.
            tracing::error!(error = %e, "access log append failed; response withheld");
            ApiError::unavailable("the access log is unavailable; retry shortly").into_response()
        }
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
