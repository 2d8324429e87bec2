//! Sign-in and sign-out: `GET /sign-in` is a form with one field (a bearer token or a
//! JWT); `POST /sign-in` checks it once and starts a session (the browser keeps only an
//! opaque session id in an HttpOnly SameSite=Strict cookie); `POST /sign-out` ends it,
//! with the CSRF token of the header's sign-out button.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use throughcare_ledger::AccessWhat;

use super::{csrf, page, plain, session_id, Viewer};
use crate::access::{session, LogNote};
use crate::auth::Role;
use crate::extract::Form;
use crate::AppState;

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// `GET /sign-in`: one field, a bearer token or a JWT.
pub async fn sign_in_form(State(state): State<AppState>) -> Response {
    sign_in_page(&state, StatusCode::OK, None)
}

fn sign_in_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let body = if state.auth.is_none() {
        html! {
            p { "This server runs in open development mode: no sign-in is needed. "
                a href="/" { "Continue" } "." }
        }
    } else {
        html! {
            @if let Some(error) = error {
                div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                    h2 #error-summary-title { "There is a problem" }
                    ul { li { a href="#token" { (error) } } }
                }
            }
            form method="post" action="/sign-in" novalidate {
                div class=@if error.is_some() { "field-error" } {
                    label for="token" { "Your access token or identity-provider token (JWT)" }
                    @if let Some(error) = error {
                        span.error-message #token-error { span.visually-hidden { "Error: " } (error) }
                    }
                    input #token name="token" type="password" autocomplete="off" size="60"
                        required aria-describedby=[error.map(|_| "token-error")]
                        class=[error.map(|_| "error")];
                }
                p { button type="submit" { "Sign in" } }
            }
            p.muted { "The token is checked once; the browser keeps only a session cookie, which ends when you sign out or after 8 hours." }
        }
    };
    (status, page(&Viewer::nobody(), "Sign in", body)).into_response()
}

/// `POST /sign-in`: checks the token and starts a session.
pub async fn sign_in(State(state): State<AppState>, Form(form): Form<SignIn>) -> Response {
    let Some(auth) = &state.auth else {
        return Redirect::to("/").into_response();
    };
    match auth.authenticate(form.token.trim()).await {
        // A partner system has no pages: its token is for the API, not for a session.
        Ok(principal) if principal.role == Role::Partner => {
            let mut page = sign_in_page(
                &state,
                StatusCode::FORBIDDEN,
                Some(
                    "That token belongs to a partner system, which has no web pages: \
                     use it as a bearer token with the API (POST /v1/events).",
                ),
            );
            page.extensions_mut().insert(LogNote {
                what: Some(AccessWhat::Denied),
                denied: true,
                who: Some((principal.name.clone(), principal.role.to_string())),
                ..LogNote::default()
            });
            page
        }
        Ok(principal) => {
            let id = state.sessions.start(principal, session::SESSION_TTL);
            (
                [(
                    header::SET_COOKIE,
                    session::set_cookie(&id, state.secure_cookies),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let mut page = sign_in_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some(&format!("That token was not accepted: {e}")),
            );
            page.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"throughcare\""),
            );
            // A refused sign-in is a refusal like any other: on the record.
            page.extensions_mut().insert(LogNote {
                what: Some(AccessWhat::Denied),
                denied: true,
                ..LogNote::default()
            });
            page
        }
    }
}

/// `POST /sign-out`: ends the session. A session is ended only with the token of its own
/// sign-out button (403 otherwise), so another site cannot sign a worker out mid-form.
/// Without a session there is nothing to end.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Read leniently (any or no content type): the token is all that is looked at.
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    if let Some(id) = session_id(&headers) {
        if !csrf::check(
            state.sessions.csrf_secret(),
            &id,
            csrf::SIGN_OUT,
            token.as_deref(),
        ) {
            return forbidden();
        }
        state.sessions.end(&id);
    }
    (
        [(
            header::SET_COOKIE,
            session::clear_cookie(state.secure_cookies),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

/// The answer to a state-changing form without its token; a refusal, so on the record
/// like any other (the guard logs it as DENIED).
pub(crate) fn forbidden() -> Response {
    let mut r = plain(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form was not sent from a page of this service, or it is from an earlier session. Go back, reload the page and send it again.",
    );
    r.extensions_mut().insert(LogNote {
        what: Some(AccessWhat::Denied),
        denied: true,
        ..LogNote::default()
    });
    r
}
