//! Extractors whose rejections are `ApiError`s: axum's `Query`, `Path` and `Form` say
//! what is wrong in plain text, ours say it in RFC 9457 problem+json like every other
//! error. Also the answer for a wrong method.
//!
//! Handlers import `crate::extract::{Form, Path, Query}` instead of axum's.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{
    FromRequest, FromRequestParts, MatchedPath, OriginalUri, RawPathParams, Request,
};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The query string deserialized as `T`; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// The path parameters deserialized as `T`; a bad one is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

/// An `application/x-www-form-urlencoded` body deserialized as `T`: a wrong content
/// type is a 415, a body over the limit a 413, a bad field a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                // A lone parameter's parse error does not name it; the raw params do.
                let lone = match RawPathParams::from_request_parts(parts, state).await {
                    Ok(raw) if raw.iter().count() == 1 => {
                        raw.iter().next().map(|(key, _)| key.to_string())
                    }
                    _ => None,
                };
                Err(path_rejection(&rejection, lone.as_deref()))
            }
        }
    }
}

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Form::<T>::from_request(req, state).await {
            Ok(axum::extract::Form(value)) => Ok(Form(value)),
            Err(rejection) => Err(form_rejection(&rejection)),
        }
    }
}

/// "Failed to deserialize query string: min_position: invalid digit found in string"
/// becomes "query string: min_position: invalid digit found in string".
fn query_rejection(rejection: &QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let why = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::bad_request(format!("query string: {why}"))
}

fn path_rejection(rejection: &PathRejection, lone: Option<&str>) -> ApiError {
    use axum::extract::path::ErrorKind;
    let detail = match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => format!("path parameter {key}: cannot parse {value:?} as {expected_type}"),
            ErrorKind::ParseError {
                value,
                expected_type,
            } => match lone {
                Some(key) => {
                    format!("path parameter {key}: cannot parse {value:?} as {expected_type}")
                }
                None => format!("path: cannot parse {value:?} as {expected_type}"),
            },
            ErrorKind::InvalidUtf8InPathParam { key } => {
                format!("path parameter {key}: not valid UTF-8 once percent-decoded")
            }
            ErrorKind::DeserializeError {
                key,
                value,
                message,
            } => format!("path parameter {key}: {value:?}: {message}"),
            _ => format!("path: {}", e.body_text()),
        },
        // A route without the parameters its handler asks for: our bug, not the caller's.
        PathRejection::MissingPathParams(e) => {
            tracing::error!(error = %e.body_text(), "handler asks for path parameters its route lacks");
            return ApiError::internal();
        }
        other => format!("path: {}", other.body_text()),
    };
    ApiError::bad_request(detail)
}

fn form_rejection(rejection: &FormRejection) -> ApiError {
    let status = rejection.status();
    let text = rejection.body_text();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "payload-too-large",
            "Payload too large",
            format!("the form body is over the limit: {text}"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "unsupported-media-type",
            "Unsupported media type",
            "send the form as application/x-www-form-urlencoded",
        ),
        s if s.is_server_error() => {
            tracing::warn!(error = %text, "reading a form body failed");
            ApiError::bad_request("the form body could not be read")
        }
        _ => {
            let why = text
                .strip_prefix("Failed to deserialize form body: ")
                .or_else(|| text.strip_prefix("Failed to deserialize form: "))
                .unwrap_or(&text);
            ApiError::bad_request(format!("form: {why}"))
        }
    }
}

/// The answer for a known path with a method it does not take: 405 problem+json. axum
/// adds the `Allow` header listing the methods the path does take.
///
/// Wired with `Router::method_not_allowed_fallback(extract::method_not_allowed)`, after
/// every route has been added.
pub async fn method_not_allowed(
    method: Method,
    matched: Option<MatchedPath>,
    uri: OriginalUri,
) -> ApiError {
    let path = matched
        .as_ref()
        .map_or_else(|| uri.path().to_string(), |m| m.as_str().to_string());
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}; the Allow header lists the methods it takes"),
    )
}

/// The media type of a Content-Type value, lower-cased, without parameters.
pub fn parse_media(content_type: &str) -> Option<String> {
    Some(
        content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use axum::routing::{get, post};
    use axum::Router;
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize)]
    struct Fresh {
        min_position: Option<u64>,
    }

    #[derive(Deserialize)]
    struct SignIn {
        token: String,
    }

    async fn journey(Path(id): Path<u32>, Query(q): Query<Fresh>) -> String {
        format!("{id} {:?}", q.min_position)
    }

    async fn sign_in(Form(f): Form<SignIn>) -> String {
        f.token
    }

    fn router() -> Router {
        Router::new()
            .route("/people/{id}/journey", get(journey))
            .route("/sign-in", post(sign_in))
            .method_not_allowed_fallback(method_not_allowed)
    }

    /// (status, content type, Allow header, body) of one request to the tiny router.
    async fn call(request: Request<Body>) -> (StatusCode, String, Option<String>, Value) {
        let res = router().oneshot(request).await.unwrap();
        let header = |name| {
            res.headers()
                .get(name)
                .map(|v: &header::HeaderValue| v.to_str().unwrap().to_string())
        };
        let content_type = header(header::CONTENT_TYPE).unwrap_or_default();
        let allow = header(header::ALLOW);
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, content_type, allow, body)
    }

    fn get_req(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    /// Asserts a problem+json answer of `status` whose detail contains `needle`.
    fn assert_problem(
        (status, content_type, _, body): &(StatusCode, String, Option<String>, Value),
        want: StatusCode,
        needle: &str,
    ) {
        assert_eq!(*status, want, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], want.as_u16());
        for member in ["type", "title", "detail"] {
            assert!(body[member].is_string(), "{member} missing in {body}");
        }
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{detail:?} lacks {needle:?}");
    }

    #[tokio::test]
    async fn good_parameters_reach_the_handler() {
        let (status, _, _, body) = call(get_req("/people/7/journey?min_position=3")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "7 Some(3)");
    }

    #[tokio::test]
    async fn a_bad_query_parameter_is_a_problem_naming_it() {
        let reply = call(get_req("/people/7/journey?min_position=abc")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "min_position");
        let reply = call(get_req("/people/7/journey?min_position=-1")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "min_position");
    }

    #[tokio::test]
    async fn a_bad_path_parameter_is_a_problem_naming_it() {
        let reply = call(get_req("/people/abc/journey")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "path parameter id");
        let reply = call(get_req("/people/%FF/journey")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "path parameter id");
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_405_problem_with_allow() {
        let request = Request::delete("/people/7/journey")
            .body(Body::empty())
            .unwrap();
        let reply = call(request).await;
        assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "DELETE");
        assert_problem(
            &reply,
            StatusCode::METHOD_NOT_ALLOWED,
            "/people/{id}/journey",
        );
        assert_eq!(reply.2.as_deref(), Some("GET,HEAD"));
        let reply = call(get_req("/sign-in")).await;
        assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED, "GET");
        assert_eq!(reply.2.as_deref(), Some("POST"));
    }

    #[tokio::test]
    async fn form_rejections_are_problems() {
        let form = |content_type: &str, body: &str| {
            Request::post("/sign-in")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let (status, _, _, body) =
            call(form("application/x-www-form-urlencoded", "token=abc")).await;
        assert_eq!((status, body), (StatusCode::OK, Value::from("abc")));
        let reply = call(form("application/x-www-form-urlencoded", "nothing=1")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST, "token");
        let reply = call(form("text/plain", "token=abc")).await;
        assert_problem(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "x-www-form-urlencoded",
        );
        let big = format!("token={}", "a".repeat(3 * 1024 * 1024));
        let reply = call(form("application/x-www-form-urlencoded", &big)).await;
        assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE, "limit");
    }
}
