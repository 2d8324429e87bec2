//! throughcare-server: the HTTP API (axum) and the web pages.
//!
//! `app(state)` builds the router so tests can drive it without a port; the binary serves
//! it on a listener. Errors are RFC 9457 problem+json, mapped in one place (`problem.rs`).

mod api;
mod metrics;
mod pages;
mod problem;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use throughcare_ledger::Ledger;
use throughcare_projector::ReadModels;

pub use problem::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub models: ReadModels,
    metrics: Arc<metrics::Metrics>,
}

impl AppState {
    pub fn new(ledger: Ledger, models: ReadModels) -> Self {
        AppState {
            ledger,
            models,
            metrics: Arc::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/events", post(api::post_events))
        .route("/v1/people", get(api::find_person))
        .route("/v1/people/{id}/journey", get(api::journey))
        .route("/v1/people/{id}/events", get(api::person_events))
        .route("/v1/people/{id}/verify", get(api::verify))
        .route("/v1/caseload/{worker_id}", get(api::caseload))
        .route("/v1/releases", get(api::releases))
        .route("/v1/kpis", get(api::kpis))
        .route("/v1/schema/events", get(api::schema))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/", get(pages::home))
        .route("/people/{id}", get(pages::person))
        .fallback(api::not_found)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Answers one submission body from another transport (the NATS submit service) exactly
/// as `POST /v1/events` would: (status, media type, body).
pub async fn handle_submission(
    state: &AppState,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, &'static str, Vec<u8>) {
    let media = content_type.and_then(api::parse_media);
    let (status, media, value) = match api::submit(state, media.as_deref(), body).await {
        Ok((status, value)) => (status, "application/json", value),
        Err(e) => (e.status, "application/problem+json", e.to_json()),
    };
    (status.as_u16(), media, value.to_string().into_bytes())
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}
