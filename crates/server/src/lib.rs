//! throughcare-server: the HTTP API (axum), the web pages, access control and the access
//! log.
//!
//! `app(state)` builds the router from the route table (`access::routes`) so tests can
//! drive it without a port; the binary serves it on a listener, with TLS when given.
//! Every route passes the access guard (`access::guard`). Errors are RFC 9457
//! problem+json, mapped in one place (`problem.rs`).

pub mod access;
mod access_api;
mod api;
mod as_of;
pub mod auth;
mod csv;
mod error;
mod export;
mod extract;
mod fhir;
mod headers;
mod hmpps;
pub mod ledger_api;
mod listen;
mod metrics;
pub mod openapi;
mod problem;
mod sar;
mod submit;
pub mod tls;
mod web;

use std::sync::Arc;

use axum::Router;
use throughcare_ledger::{AccessLog, Ledger};
use throughcare_projector::{ReadModels, Replays};

pub use access::REQUEST_ID;
pub use auth::{Authenticator, Principal, Role};
pub use error::Error;
pub use hmpps::{handle_hmpps_message, note_hmpps_dead_letter};
pub use ledger_api::LedgerAudit;
pub use problem::ApiError;
pub use submit::handle_submission;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub models: ReadModels,
    /// The principals; `None` is open development mode.
    pub auth: Option<Arc<Authenticator>>,
    pub access: Arc<dyn AccessLog>,
    /// Whether cookies get `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Read models replayed as of past cuts (`?as_of=`, `?at_position=`), cached.
    replays: Arc<Replays>,
    sessions: Arc<access::session::Sessions>,
    routes: Arc<access::RouteIndex>,
    metrics: Arc<metrics::Metrics>,
    /// Samples refusals of callers without valid credentials (`access::log`).
    unauthenticated: Arc<access::log::Sampler>,
    /// The audit tree and checkpoint key behind `/v1/ledger/*` (`None`: those answer 503).
    pub ledger_audit: Option<Arc<ledger_api::LedgerAudit>>,
}

impl AppState {
    /// State in open development mode (no `--auth`); reads are still logged.
    pub fn new(ledger: Ledger, models: ReadModels, access: Arc<dyn AccessLog>) -> Self {
        AppState {
            replays: Arc::new(Replays::new(ledger.log().clone())),
            ledger,
            models,
            auth: None,
            access,
            secure_cookies: false,
            sessions: Arc::default(),
            routes: Arc::default(),
            metrics: Arc::default(),
            unauthenticated: Arc::default(),
            ledger_audit: None,
        }
    }

    /// Serves `/v1/ledger/*` from this audit tree and checkpoint key.
    pub fn with_ledger_audit(mut self, audit: ledger_api::LedgerAudit) -> Self {
        self.ledger_audit = Some(Arc::new(audit));
        self
    }

    /// Requires a principal from `auth` on every non-open route.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Builds as-of replays in scratch directories under `dir` (default: the system's
    /// temp directory); each is the size of the read models at its cut.
    pub fn with_replay_scratch(mut self, dir: std::path::PathBuf) -> Self {
        self.replays = Arc::new(Replays::in_dir(self.ledger.log().clone(), dir));
        self
    }

    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }
}

/// The whole HTTP surface, built from the route table.
pub fn app(state: AppState) -> Router {
    let secure = state.secure_cookies;
    let mut router = Router::new();
    for route in access::routes::routes() {
        router = router.route(route.path, (route.handler)());
    }
    let router = router
        .fallback(api::not_found)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    // CSV negotiation wraps the router so that it runs before routing: `/v1/kpis.csv` is
    // rewritten to `/v1/kpis` for the router and the guard (`csv.rs`). The security
    // headers go on every answer, the fallback's and the guard's refusals included.
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn(crate::csv::negotiate))
        .layer(axum::middleware::from_fn_with_state(
            secure,
            crate::headers::secure,
        ))
}

/// Serves the API on `listener` until `shutdown` completes, over TLS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<tls::TlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, app(state), tls, shutdown).await
}
