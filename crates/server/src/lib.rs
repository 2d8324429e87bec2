//! throughcare-server: the HTTP API (axum), the web pages, access control and the access
//! log.
//!
//! `app(state)` builds the router from the route table (`routes.rs`) so tests can
//! drive it without a port; the binary serves it on a listener, with TLS when given.
//! Every route passes the access guard (`access::guard`). Errors are RFC 9457
//! problem+json, mapped in one place (`problem.rs`).

pub mod access;
mod access_api;
mod api;
mod as_of;
pub mod auth;
mod body;
mod checkpoints;
mod csv;
mod error;
mod escape;
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
pub mod routes;
mod sar;
mod state;
mod submit;
pub mod tls;
mod web;

use axum::Router;

pub use access::REQUEST_ID;
pub use auth::{Authenticator, Principal, Role};
pub use error::Error;
pub use hmpps::{handle_hmpps_message, note_hmpps_dead_letter};
pub use ledger_api::LedgerAudit;
pub use problem::ApiError;
pub use state::AppState;
pub use submit::handle_submission;

/// The whole HTTP surface, built from the route table.
pub fn app(state: AppState) -> Router {
    let secure = state.secure_cookies;
    let mut router = Router::new();
    let table = routes::routes();
    for route in &table {
        router = router.route(route.path, (route.handler)());
    }
    let guarded = access::Guarded {
        state: state.clone(),
        routes: std::sync::Arc::new(access::RouteIndex::new(table)),
    };
    let router = router
        .fallback(api::not_found)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(guarded, access::guard))
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
