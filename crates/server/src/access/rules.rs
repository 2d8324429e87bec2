//! The shape of a row of the route table (`crate::routes`): who may call a route, what
//! the guard checks beyond the role (its scope), how a refusal is answered, what a call
//! is logged as, its body limit, and its handler. The guard decides on these rows.

use axum::http::Method;
use axum::routing::MethodRouter;
use throughcare_ledger::{AccessWhat, Purpose};

use crate::auth::Role;
use crate::state::AppState;
use throughcare_events::MAX_EVENT_BYTES;

/// The body limit of every route but the batch submission: forms, sign-in, one event,
/// one HMPPS message.
pub const SMALL_BODY: usize = MAX_EVENT_BYTES;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// No credentials needed (health, schema, sign-in).
    Open,
    /// The Prometheus scrape token of `[metrics]` (open without `--auth`).
    Metrics,
    /// A signed-in caller of one of these roles.
    Roles(&'static [Role]),
}

/// What the guard checks beyond the role, before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Nothing more.
    None,
    /// The `{id}` path parameter, decoded, is a person the caller may read (else 404, as
    /// unknown); the handler gets a `ScopedPerson`.
    Person,
    /// The `identifier` query parameter names a person the caller may read (else 404, as
    /// unknown); the handler gets a `Subject`.
    Identifier,
    /// The HMPPS SAR's `prn` / `crn` query parameters, as `Identifier`.
    SarSubject,
    /// The `{worker_id}` path parameter, decoded: a WORKER only its own; the handler gets
    /// a `ScopedWorker`.
    Worker,
    /// The `prison` query parameter, if given, is one of the caller's prisons (else 403);
    /// handlers limit the answer to the caller's prisons.
    Prisons,
}

/// How a refusal is answered: APIs with problem+json, pages by sending the browser to
/// the sign-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Page,
}

/// One row of the table.
pub struct Route {
    pub method: Method,
    /// The axum path pattern (also the `route` of access-log entries and the OpenAPI path).
    pub path: &'static str,
    pub allow: Allow,
    pub scope: Scope,
    pub kind: Kind,
    /// What a call is logged as in the access log (`None`: only refusals are logged).
    pub what: Option<AccessWhat>,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Statuses the route answers with (for the OpenAPI document).
    pub statuses: &'static [u16],
    /// The largest request body the route takes, in bytes: a larger one is 413 before
    /// anything is read or parsed (DESIGN.md "Rules at the edge").
    pub body_limit: usize,
    /// The purposes a call may give (the guard answers any other with 400); the first is
    /// the default when none is given. Empty: any purpose, defaulting by role.
    pub purposes: &'static [Purpose],
    pub handler: fn() -> MethodRouter<AppState>,
}

impl Route {
    /// Every status the route may answer: its own, and what the guard answers whatever
    /// the handler does (413 for a body over the limit, 408 for one sent too slowly; 404 for a subject that is unknown,
    /// out of scope or does not parse; 400, 401 and 403 on routes that need a caller).
    pub fn answers(&self) -> std::collections::BTreeSet<u16> {
        let mut all: std::collections::BTreeSet<u16> = self.statuses.iter().copied().collect();
        all.insert(413);
        // A body not sent within its deadline (`body.rs`).
        if self.method == Method::POST {
            all.insert(408);
        }
        if matches!(self.scope, Scope::Person | Scope::Identifier) {
            all.insert(404);
        }
        if matches!(self.allow, Allow::Roles(_)) {
            all.extend([400, 401, 403]);
        }
        all
    }

    /// `GET /v1/people/{id}/journey`: how the access log names the route.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}
