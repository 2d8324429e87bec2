//! The route table: every route the server answers, who may call it, what a call is logged
//! as, its body limit and its handler. The router (`crate::app`), the access guard and
//! the OpenAPI document are all built from this one table, so a route cannot exist
//! without a rule. The top of the crate: it names every handler.

use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use throughcare_events::MAX_BODY_BYTES;
use throughcare_ledger::{AccessWhat, Purpose};

use crate::access::rules::{Allow, Kind, Route, Scope, SMALL_BODY};
use crate::auth::Role;
use crate::state::AppState;
use crate::{access_api, api, ledger_api, web};

use Role::{Auditor as A, Commissioner as C, Manager as M, Partner as P, Worker as W};

const READERS: &[Role] = &[W, M, A];

/// Every route. Order does not matter; (method, path) is unique.
pub fn routes() -> Vec<Route> {
    use AccessWhat::*;
    let api = |method: Method,
               path: &'static str,
               allow: Allow,
               scope: Scope,
               what: Option<AccessWhat>,
               summary: &'static str,
               statuses: &'static [u16],
               handler: fn() -> MethodRouter<AppState>| Route {
        method,
        path,
        allow,
        scope,
        kind: Kind::Api,
        what,
        summary,
        statuses,
        body_limit: SMALL_BODY,
        purposes: &[],
        handler,
    };
    let page = |method: Method,
                path: &'static str,
                allow: Allow,
                scope: Scope,
                what: Option<AccessWhat>,
                summary: &'static str,
                handler: fn() -> MethodRouter<AppState>| Route {
        method,
        path,
        allow,
        scope,
        kind: Kind::Page,
        what,
        summary,
        statuses: &[200, 303, 400, 401, 403, 404, 413, 415],
        body_limit: SMALL_BODY,
        purposes: &[],
        handler,
    };
    vec![
        Route {
            // A batch: 4 MiB in all, each event at most 64 KiB (validation checks that).
            body_limit: MAX_BODY_BYTES,
            ..api(
                Method::POST,
                "/v1/events",
                Allow::Roles(&[P, W, M]),
                Scope::None,
                None,
                "Submit one CloudEvent or a batch",
                &[200, 201, 400, 401, 403, 409, 413, 415, 422, 503],
                || post(api::post_events),
            )
        },
        api(
            Method::GET,
            "/v1/people",
            Allow::Roles(READERS),
            Scope::Identifier,
            Some(ReadIdentity),
            "Find a person by identifier (nomis:, nhs:, crn:)",
            &[200, 400, 401, 403, 404, 503],
            || get(api::find_person),
        ),
        api(
            Method::GET,
            "/v1/people/{id}/journey",
            Allow::Roles(READERS),
            Scope::Person,
            Some(ReadJourney),
            "A person's journey read model",
            &[200, 400, 401, 403, 404, 503],
            || get(api::journey),
        ),
        api(
            Method::GET,
            "/v1/people/{id}/events",
            Allow::Roles(READERS),
            Scope::Person,
            Some(ReadEvents),
            "A person's recorded events with the hash chain",
            &[200, 400, 401, 403, 404, 503],
            || get(api::person_events),
        ),
        api(
            Method::GET,
            "/v1/people/{id}/verify",
            Allow::Roles(READERS),
            Scope::Person,
            Some(Verify),
            "Recompute a person's hash chain",
            &[200, 400, 401, 403, 404, 503],
            || get(api::verify),
        ),
        api(
            Method::GET,
            "/v1/people/{id}/access",
            Allow::Roles(&[A]),
            Scope::Person,
            None,
            "Access-log entries about a person (auditor)",
            &[200, 400, 401, 403, 503],
            || get(access_api::person_access),
        ),
        api(
            Method::GET,
            "/v1/access",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "Search the access log (auditor)",
            &[200, 400, 401, 403, 503],
            || get(access_api::search),
        ),
        api(
            Method::GET,
            "/v1/access/verify",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "Recompute the access log's hash chain (auditor)",
            &[200, 401, 403, 503],
            || get(access_api::verify),
        ),
        api(
            Method::GET,
            "/v1/caseload/{worker_id}",
            Allow::Roles(READERS),
            Scope::Worker,
            Some(ReadCaseload),
            "A worker's open cases, most urgent first",
            &[200, 400, 401, 403, 503],
            || get(api::caseload),
        ),
        api(
            Method::GET,
            "/v1/releases",
            Allow::Roles(&[M, A]),
            Scope::Prisons,
            None,
            "Release calendar with allocation and plan gaps",
            &[200, 400, 401, 403, 503],
            || get(api::releases),
        ),
        api(
            Method::GET,
            "/v1/kpis",
            Allow::Roles(&[M, C, A]),
            Scope::Prisons,
            None,
            "Service KPIs per prison and month",
            &[200, 400, 401, 403, 503],
            || get(api::kpis),
        ),
        // -- audit routes (ledger checkpoint, entries, proofs, export) --
        api(
            Method::GET,
            "/v1/ledger/checkpoint",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "The latest signed checkpoint of the log's Merkle tree, or the kept one of ?size= (C2SP signed note, text/plain)",
            &[200, 400, 401, 403, 404, 503],
            || get(ledger_api::checkpoint),
        ),
        api(
            Method::GET,
            "/v1/ledger/key",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "The verifier key of the checkpoints (text/plain)",
            &[200, 401, 403, 503],
            || get(ledger_api::key),
        ),
        api(
            Method::GET,
            "/v1/ledger/entries",
            Allow::Roles(&[A]),
            Scope::None,
            Some(Export),
            "Log entries from a position, each with its exact stored bytes and hash (500 ledger-corrupt names the first entry that cannot be read back intact)",
            &[200, 400, 401, 403, 500, 503],
            || get(ledger_api::entries),
        ),
        api(
            Method::GET,
            "/v1/ledger/proof/inclusion",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "RFC 9162 inclusion proof of a position in the tree of a size",
            &[200, 400, 401, 403, 404, 503],
            || get(ledger_api::inclusion),
        ),
        api(
            Method::GET,
            "/v1/ledger/proof/consistency",
            Allow::Roles(&[A]),
            Scope::None,
            None,
            "RFC 9162 consistency proof between two tree sizes",
            &[200, 400, 401, 403, 404, 503],
            || get(ledger_api::consistency),
        ),
        Route {
            // An export is for an audit or a subject access request, nothing else.
            purposes: &[Purpose::Audit, Purpose::SubjectAccess],
            ..api(
                Method::GET,
                "/v1/people/{id}/export",
                Allow::Roles(&[A]),
                Scope::Person,
                Some(Export),
                "Subject access export: identifiers, the journey, every event with its stored bytes and inclusion proof, the checkpoint, the verifier key and the access log about the person (JSON, or printable HTML with ?format=html)",
                &[200, 400, 401, 403, 404, 500, 503],
                || get(crate::export::export),
            )
        },
        // -- interoperability routes (HMPPS domain events, FHIR, HMPPS SAR) --
        Route {
            // The HMPPS SAR service asks on a subject's behalf and names no purpose.
            purposes: &[Purpose::SubjectAccess, Purpose::Audit],
            ..api(
                Method::GET,
                "/subject-access-request",
                Allow::Roles(&[A]),
                Scope::SarSubject,
                Some(Export),
                "HMPPS subject access request: {\"content\": ...} for a prn (NOMIS) or crn, 204 when nothing is held in the date range, 209 when the identifier is not known",
                &[200, 204, 209, 400, 401, 403, 500, 503],
                || get(crate::sar::subject_access_request),
            )
        },
        api(
            Method::POST,
            "/v1/hmpps/domain-events",
            Allow::Roles(&[P]),
            Scope::None,
            None,
            "One HMPPS domain event, bare or in its SNS notification (the HMPPS partner)",
            &[200, 201, 202, 401, 403, 409, 413, 422, 503],
            || post(crate::hmpps::post_domain_event),
        ),
        api(
            Method::GET,
            "/v1/people/{id}/fhir",
            Allow::Roles(READERS),
            Scope::Person,
            Some(Export),
            "A person's record as a FHIR R4 Bundle (collection), application/fhir+json",
            &[200, 400, 401, 403, 404, 503],
            || get(crate::fhir::export),
        ),
        api(
            Method::GET,
            "/v1/schema/events",
            Allow::Open,
            Scope::None,
            None,
            "JSON Schema of the event catalogue",
            &[200],
            || get(api::schema),
        ),
        api(
            Method::GET,
            "/v1/openapi.json",
            Allow::Open,
            Scope::None,
            None,
            "This API as OpenAPI 3.1",
            &[200],
            || get(openapi),
        ),
        api(
            Method::GET,
            "/healthz",
            Allow::Open,
            Scope::None,
            None,
            "Liveness",
            &[200],
            || get(api::healthz),
        ),
        api(
            Method::GET,
            "/readyz",
            Allow::Open,
            Scope::None,
            None,
            "Readiness (projection lag)",
            &[200, 503],
            || get(api::readyz),
        ),
        api(
            Method::GET,
            "/metrics",
            Allow::Metrics,
            Scope::None,
            None,
            "Prometheus metrics (no personal data)",
            &[200, 401],
            || get(api::metrics),
        ),
        api(
            Method::GET,
            crate::headers::STYLESHEET,
            Allow::Open,
            Scope::None,
            None,
            "The pages' stylesheet (text/css)",
            &[200],
            || get(web::stylesheet),
        ),
        page(
            Method::GET,
            "/sign-in",
            Allow::Open,
            Scope::None,
            None,
            "Sign-in form",
            || get(web::sign_in_form),
        ),
        page(
            Method::POST,
            "/sign-in",
            Allow::Open,
            Scope::None,
            None,
            "Sign in with a token; sets the session cookie",
            || post(web::sign_in),
        ),
        page(
            Method::POST,
            "/sign-out",
            Allow::Open,
            Scope::None,
            None,
            "End the session",
            || post(web::sign_out),
        ),
        page(
            Method::GET,
            "/",
            Allow::Roles(&[W, M, C, A]),
            Scope::None,
            None,
            "Home: the page for the caller's role",
            || get(web::home),
        ),
        page(
            Method::GET,
            "/people/{id}",
            Allow::Roles(READERS),
            Scope::Person,
            Some(ReadJourney),
            "A person's journey strip and timeline, and the forms the viewer may use now",
            || get(web::person),
        ),
        page(
            Method::GET,
            "/caseload",
            Allow::Roles(&[W]),
            Scope::None,
            Some(ReadCaseload),
            "My caseload: a worker's open cases, contact overdue first",
            || get(web::caseload),
        ),
        Route {
            // A form answers with the person's page again (422, 409, 403 refusals shown
            // by the field) or sends the browser back to it (303).
            statuses: &[303, 400, 401, 403, 404, 409, 413, 415, 422, 503],
            ..page(
                Method::POST,
                "/people/{id}/events/{type}",
                Allow::Roles(&[W, M]),
                Scope::Person,
                None,
                "Record one of the worker's events from its form (CSRF token and the event id made when the form was drawn)",
                || post(web::post_event),
            )
        },
        page(
            Method::GET,
            "/kpis",
            Allow::Roles(&[M, C, A]),
            Scope::Prisons,
            None,
            "Service KPIs of a prison and month: the figures /v1/kpis publishes, bar charts of the rates by month with a table beside each, and a CSV link",
            || get(web::kpis_page),
        ),
        page(
            Method::GET,
            "/releases",
            Allow::Roles(&[M, A]),
            Scope::Prisons,
            None,
            "The release calendar: releases of the last week and the next four, unallocated and no-plan gaps, an identifier search",
            || get(web::releases),
        ),
        page(
            Method::GET,
            "/cases",
            Allow::Roles(&[M, A]),
            Scope::Prisons,
            None,
            "Cases by status: the triage queue (referred, waiting longest first) and open cases with no release date",
            || get(web::cases),
        ),
        Route {
            // As the worker's forms: the person's page again with a refusal by the field,
            // or a redirect back to it.
            statuses: &[303, 400, 401, 403, 404, 409, 413, 415, 422, 503],
            ..page(
                Method::POST,
                "/people/{id}/manage/{type}",
                Allow::Roles(&[M]),
                Scope::Person,
                None,
                "A manager's action from its form: allocate or re-allocate, extend support, reopen (CSRF token and the event id made when the form was drawn)",
                || post(web::post_manager_event),
            )
        },
    ]
}

/// `GET /v1/openapi.json`: the document of this very table, rendered once.
async fn openapi() -> Response {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = TEXT.get_or_init(|| crate::openapi::document(&routes()).to_string());
    crate::openapi::json(text)
}
