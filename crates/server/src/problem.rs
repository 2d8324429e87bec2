//! `ApiError`: every error the API returns, mapped to a status and an RFC 9457
//! application/problem+json body in one place. 4xx say exactly what to fix; 5xx never
//! leak internals (the cause goes to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use throughcare_events::Problem;
use throughcare_ledger::{Error as LedgerError, ItemError};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Short slug, made into the problem `type` URI.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members (errors, current_state, allowed_events, items...).
    pub extra: Value,
    pub retry_after: Option<u64>,
    /// Adds `WWW-Authenticate: Bearer` (401 answers).
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            title,
            detail: detail.into(),
            extra: json!({}),
            retry_after: None,
            www_authenticate: false,
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra[key] = value;
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// The answer for a person the ledger does not know *or the caller may not see*:
    /// one body for both, so that scope never reveals who exists.
    pub fn unknown_person(person: throughcare_events::PersonId) -> Self {
        ApiError::not_found(format!("no person {person} is known to the ledger"))
    }

    pub fn invalid(problems: Vec<Problem>) -> Self {
        let detail = match problems.as_slice() {
            [one] => format!(
                "{}: {}",
                if one.pointer.is_empty() {
                    "body"
                } else {
                    &one.pointer
                },
                one.detail
            ),
            many => format!("{} problems; see errors", many.len()),
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-submission",
            "The submission is not valid",
            detail,
        )
        .with("errors", json!(problems))
    }

    /// A request body over its route's limit (`limit` bytes).
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request body too large",
            format!(
                "the body is over this route's limit of {limit} bytes ({} KiB)",
                limit / 1024
            ),
        )
        .with("limit", json!(limit))
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            detail,
        );
        e.retry_after = Some(1);
        e
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the failure has been logged",
        )
    }

    /// A batch none of whose items was recorded because some could not be.
    pub fn batch(failures: Vec<ItemError>) -> Self {
        let all_invalid = failures.iter().all(|f| {
            matches!(
                f.error,
                LedgerError::Invalid(_) | LedgerError::UnknownPerson(_)
            )
        });
        let items: Vec<Value> = failures
            .into_iter()
            .map(|f| {
                let e = ApiError::from(f.error);
                json!({"index": f.index, "status": e.status.as_u16(), "type": e.type_uri(), "detail": e.detail, "extra": e.extra})
            })
            .collect();
        let status = if all_invalid {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::CONFLICT
        };
        ApiError::new(
            status,
            "batch-refused",
            "The batch was not recorded",
            format!(
                "{} item(s) cannot be recorded; nothing in the batch was recorded",
                items.len()
            ),
        )
        .with("items", json!(items))
    }

    fn type_uri(&self) -> String {
        format!("urn:throughcare:problem:{}", self.kind)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Invalid(p) => ApiError::invalid(p),
            LedgerError::Refused(d) => ApiError::new(
                StatusCode::CONFLICT,
                "case-state",
                "Not allowed in the current case state",
                d.reason.clone(),
            )
            .with("current_state", json!(d.status))
            .with("allowed_events", json!(d.allowed.iter().map(|t| t.as_str()).collect::<Vec<_>>())),
            // Who holds the identifier is never told: that would let anyone with an
            // identifier learn (or confirm) someone's ledger id. The refusal is in the
            // access log under the owner for an auditor (`submit.rs`).
            LedgerError::IdentityConflict { identifier, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "identity-conflict",
                "Identifiers belong to different people",
                format!(
                    "{identifier} already belongs to another person than the other identifiers given; records are never merged silently"
                ),
            )
            .with("identifier", json!(identifier.to_string())),
            LedgerError::IdempotencyConflict { event_source, id, position } => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency-conflict",
                "Event id reused with a different body",
                format!("event {id} from {event_source} was recorded at position {position} with a different body; use a new id for a new event"),
            )
            .with("position", json!(position)),
            LedgerError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version-conflict", "Concurrent update", e.to_string())
            }
            LedgerError::UnknownPerson(p) => ApiError::invalid(vec![Problem {
                pointer: "/data/person/person_id".into(),
                detail: format!("no person {p} is known to the ledger"),
            }]),
            LedgerError::Unavailable(why) => {
                tracing::warn!(%why, "ledger unavailable");
                ApiError::unavailable("the ledger is unavailable; retry shortly")
            }
            LedgerError::Corrupt(why) => {
                tracing::error!(%why, "ledger corrupt");
                ApiError::internal()
            }
        }
    }
}

impl From<throughcare_projector::Error> for ApiError {
    fn from(e: throughcare_projector::Error) -> Self {
        tracing::error!(error = %e, "read models failed");
        match e {
            throughcare_projector::Error::Unavailable(_) => {
                ApiError::unavailable("read models are unavailable; retry shortly")
            }
            _ => ApiError::internal(),
        }
    }
}

impl ApiError {
    /// The problem+json body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.to_json().to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.www_authenticate {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"throughcare\""),
            );
        }
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

/// 500 `ledger-corrupt`: the log holds an entry the server cannot read back intact (its
/// bytes no longer hash to the hash stored with them, or a position is missing). Names
/// the first bad position when it is known.
pub fn corrupt(why: &str, position: Option<u64>) -> ApiError {
    tracing::error!(why, ?position, "ledger corrupt");
    let detail = match position {
        Some(p) => format!(
            "the stored entry at position {p} cannot be read back intact; the log needs an audit (throughcare audit verify)"
        ),
        None => "a stored entry cannot be read back intact; the log needs an audit (throughcare audit verify)".to_string(),
    };
    let error = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ledger-corrupt",
        "The ledger cannot be read back intact",
        detail,
    );
    match position {
        Some(p) => error.with("position", json!(p)),
        None => error,
    }
}
