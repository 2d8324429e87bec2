//! The partner submission service on NATS request-reply: requests on `throughcare.submit`
//! carry the same CloudEvents body as `POST /v1/events`, with the caller's credential in
//! an `Authorization: Bearer <token>` header, and get the same reply body. The transport
//! lives here (the only crate importing async-nats); what to do with a request is the
//! caller's handler, so HTTP and NATS share one code path and one access check.
//!
//! A reply carries the HTTP-equivalent status in the `Throughcare-Status` header and the
//! media type in `Content-Type` (`application/json` or `application/problem+json`).
//! Several `serve` processes subscribe in one queue group, so each request is handled once.
//!
//! Replies go only to reply subjects under `_INBOX` (`_INBOX.…` or `_INBOX_…`, the inbox
//! prefixes `deploy/nats-accounts.conf` gives partners). The service's user may publish to
//! `throughcare.person.>` and `$JS.API.>`, so a request whose reply subject named one of
//! those would otherwise make the service write its reply into the ledger or call the
//! JetStream API on the sender's behalf; such a request is dropped unanswered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use futures::StreamExt;

use crate::config::Violations;
use crate::{JetStreamConfig, JetStreamError};

/// The subject partners send submissions to.
pub const SUBMIT_SUBJECT: &str = "throughcare.submit";
/// The queue group of the serving processes.
const QUEUE_GROUP: &str = "throughcare-submit";
/// Header with the HTTP-equivalent status of a reply.
pub const STATUS_HEADER: &str = "Throughcare-Status";

/// One request on [`SUBMIT_SUBJECT`], as the handler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitRequest {
    /// The request's `Content-Type` header.
    pub content_type: Option<String>,
    /// The request's `Authorization` header, whole (e.g. `Bearer abc`).
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// What the handler answers: status, media type, body.
pub struct SubmitReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

fn unavailable(what: &str, url: &str, e: impl std::fmt::Display) -> JetStreamError {
    JetStreamError::Connect {
        url: url.to_string(),
        detail: format!("{what}: {e}"),
    }
}

/// A header's first value, its name compared case-insensitively.
fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers?
        .iter()
        .find(|(k, _)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .map(|v| v.as_str().to_string())
}

/// Whether the service may answer on `subject`: only reply inboxes.
fn is_reply_inbox(subject: &str) -> bool {
    subject.starts_with("_INBOX.") || subject.starts_with("_INBOX_")
}

/// Submissions handled at once by one process; past it a request is answered 503 at
/// once (the partner retries), so a burst cannot queue unbounded work.
pub const MAX_IN_FLIGHT: usize = 64;

/// Answers requests on [`SUBMIT_SUBJECT`] with `handler(request)` until the connection
/// closes, connecting with `config`'s URL, credentials and TLS settings. Each request is
/// handled in its own task, at most [`MAX_IN_FLIGHT`] at once. A refused credential is
/// [`JetStreamError::Unauthorized`].
pub async fn serve_submissions<F, Fut>(
    config: &JetStreamConfig,
    handler: F,
) -> Result<(), JetStreamError>
where
    F: Fn(SubmitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SubmitReply> + Send + 'static,
{
    serve_submissions_reporting(config, handler, |_| {}).await
}

/// As [`serve_submissions`], telling `subscribed(true)` once the subscription is in
/// place (partners get answers from then on) and `subscribed(false)` when it ends.
pub async fn serve_submissions_reporting<F, Fut>(
    config: &JetStreamConfig,
    handler: F,
    subscribed: impl Fn(bool) + Send + Sync + 'static,
) -> Result<(), JetStreamError>
where
    F: Fn(SubmitRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SubmitReply> + Send + 'static,
{
    struct Down<S: Fn(bool)>(S);
    impl<S: Fn(bool)> Drop for Down<S> {
        fn drop(&mut self) {
            (self.0)(false);
        }
    }
    let subscribed = Down(subscribed);
    let url = config.url.as_str();
    let violations = Violations::new();
    let noted = violations.clone();
    let client = config
        .reconnecting("-submit")
        .await?
        .event_callback(move |event| {
            noted.note(&event);
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    tracing::error!(error = %e, "the NATS server reported an error to the submit service");
                }
            }
        })
        .connect(config.servers())
        .await
        .map_err(|e| config.connect_error(e))?;
    let mut requests = client
        .queue_subscribe(SUBMIT_SUBJECT, QUEUE_GROUP.into())
        .await
        .map_err(|e| unavailable("subscribe", url, e))?;
    tracing::info!(
        subject = SUBMIT_SUBJECT,
        "serving partner submissions on NATS"
    );
    (subscribed.0)(true);
    let handler = Arc::new(handler);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    // The server refuses a forbidden subscription only with an asynchronous -ERR.
    let forbidden = format!("Subscription to \"{SUBMIT_SUBJECT}\"");
    let refused = violations.wait_for(&forbidden);
    tokio::pin!(refused);
    loop {
        let message = tokio::select! {
            violation = &mut refused => return Err(config.not_permitted(&violation)),
            message = requests.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!("a submission without a reply subject was ignored");
            continue;
        };
        if !is_reply_inbox(&reply_to) {
            tracing::warn!(
                reply = %reply_to,
                "a submission whose reply subject is not an _INBOX was dropped unanswered"
            );
            continue;
        }
        let (client, handler) = (client.clone(), handler.clone());
        let turn = in_flight.clone().try_acquire_owned();
        tokio::spawn(async move {
            let headers = message.headers.as_ref();
            let reply = match turn {
                Ok(_turn) => {
                    let request = SubmitRequest {
                        content_type: header(headers, "Content-Type"),
                        authorization: header(headers, "Authorization"),
                        body: message.payload.to_vec(),
                    };
                    handler(request).await
                }
                Err(_) => busy(),
            };
            let mut headers = HeaderMap::new();
            headers.insert(STATUS_HEADER, reply.status.to_string().as_str());
            headers.insert("Content-Type", reply.content_type);
            if let Err(e) = client
                .publish_with_headers(reply_to, headers, reply.body.into())
                .await
            {
                tracing::warn!(error = %e, "could not send a submission reply");
            }
        });
    }
    Ok(())
}

/// The answer when [`MAX_IN_FLIGHT`] submissions are being handled already.
fn busy() -> SubmitReply {
    SubmitReply {
        status: 503,
        content_type: "application/problem+json",
        body: serde_json::json!({
            "type": "urn:throughcare:problem:unavailable",
            "title": "Temporarily unavailable",
            "status": 503,
            "detail": format!("{MAX_IN_FLIGHT} submissions are being handled; retry shortly"),
        })
        .to_string()
        .into_bytes(),
    }
}

/// A partner's side, for tests and tools on an open server: sends one body to
/// [`SUBMIT_SUBJECT`] (with `Authorization: Bearer <token>` when a token is given) and
/// returns (status, body).
pub async fn submit_request(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), JetStreamError> {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(timeout))
        .connect(url)
        .await
        .map_err(|e| unavailable("connect", url, e))?;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", content_type);
    if let Some(token) = bearer {
        headers.insert("Authorization", format!("Bearer {token}").as_str());
    }
    let reply = client
        .request_with_headers(SUBMIT_SUBJECT, headers, body.into())
        .await
        .map_err(|e| unavailable("request", url, e))?;
    let status = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(STATUS_HEADER))
        .and_then(|v| v.as_str().parse().ok())
        .ok_or_else(|| unavailable("reply", url, "the reply has no Throughcare-Status header"))?;
    Ok((status, reply.payload.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_only_to_inboxes() {
        assert!(is_reply_inbox("_INBOX.abc.def"));
        assert!(is_reply_inbox("_INBOX_partner.abc"));
        assert!(!is_reply_inbox(
            "throughcare.person.01JD0000000000000000000000"
        ));
        assert!(!is_reply_inbox("$JS.API.STREAM.DELETE.THROUGHCARE"));
        assert!(!is_reply_inbox("_INBOXES"));
    }
}
