//! The partner submission service on NATS request-reply: requests on `throughcare.submit`
//! carry the same CloudEvents body as `POST /v1/events` and get the same reply body. The
//! transport lives here (the only crate importing async-nats); what to do with a body is
//! the caller's handler, so HTTP and NATS share one code path.
//!
//! A reply carries the HTTP-equivalent status in the `Throughcare-Status` header and the
//! media type in `Content-Type` (`application/json` or `application/problem+json`).
//! Several `serve` processes subscribe in one queue group, so each request is handled once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use futures::StreamExt;

use crate::JetStreamError;

/// The subject partners send submissions to.
pub const SUBMIT_SUBJECT: &str = "throughcare.submit";
/// The queue group of the serving processes.
const QUEUE_GROUP: &str = "throughcare-submit";
/// Header with the HTTP-equivalent status of a reply.
pub const STATUS_HEADER: &str = "Throughcare-Status";

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

/// Answers requests on [`SUBMIT_SUBJECT`] with `handler(content_type, body)` until the
/// connection closes. Each request is handled in its own task.
pub async fn serve_submissions<F, Fut>(url: &str, handler: F) -> Result<(), JetStreamError>
where
    F: Fn(Option<String>, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SubmitReply> + Send + 'static,
{
    let client = async_nats::ConnectOptions::new()
        .name("throughcare-submit")
        .max_reconnects(None)
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
        .map_err(|e| unavailable("connect", url, e))?;
    let mut requests = client
        .queue_subscribe(SUBMIT_SUBJECT, QUEUE_GROUP.into())
        .await
        .map_err(|e| unavailable("subscribe", url, e))?;
    tracing::info!(
        subject = SUBMIT_SUBJECT,
        "serving partner submissions on NATS"
    );
    let handler = Arc::new(handler);
    while let Some(message) = requests.next().await {
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!("a submission without a reply subject was ignored");
            continue;
        };
        let (client, handler) = (client.clone(), handler.clone());
        tokio::spawn(async move {
            let content_type = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Content-Type"))
                .map(|v| v.as_str().to_string());
            let reply = handler(content_type, message.payload.to_vec()).await;
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

/// A partner's side: sends one body to [`SUBMIT_SUBJECT`] and returns (status, body).
pub async fn submit_request(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), JetStreamError> {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(timeout))
        .connect(url)
        .await
        .map_err(|e| unavailable("connect", url, e))?;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", content_type);
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
