//! The HMPPS domain-events consumer (`serve --hmpps-stream NAME`): a durable JetStream
//! pull consumer on an existing stream of SQS-delivered notifications (JSON messages,
//! bare domain events or SNS envelopes), handing each message to the caller's handler in
//! stream order and acknowledging it only once the handler says it is settled.
//!
//! At-least-once, nothing lost across restarts: the consumer is durable (its position is
//! kept by the server), the ack is a double ack (the server confirms it), and a message
//! whose handler did not finish (a crash, SIGKILL, a store outage) is redelivered after
//! [`ACK_WAIT`] or at once after a nak. Redelivery is harmless: the handler records a
//! message's event under a key derived from the message, so a second delivery is a
//! duplicate. At most one message is outstanding (`max_ack_pending` 1), so messages are
//! settled in stream order even when one has to wait. A message that can never be
//! recorded (malformed, or an identity conflict for a human) is published to
//! [`DEAD_LETTER_SUBJECT`] with the reason, and only then acked.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::AckKind;
use async_nats::HeaderMap;
use futures::StreamExt;

use crate::{JetStreamConfig, JetStreamError};

/// Where messages that can never be recorded go, with the reason in a header.
pub const DEAD_LETTER_SUBJECT: &str = "throughcare.hmpps.dead-letter";
/// The durable consumer's name on the HMPPS stream.
pub const HMPPS_CONSUMER: &str = "throughcare-hmpps";
/// Header of a dead-lettered message: why (a problem+json document).
pub const DEAD_LETTER_REASON_HEADER: &str = "Throughcare-Dead-Letter-Reason";
/// Header of a dead-lettered message: the stream and sequence it came from.
pub const DEAD_LETTER_ORIGIN_HEADER: &str = "Throughcare-Dead-Letter-Origin";
/// How long a delivered message may stay unacknowledged before it is delivered again.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// What the handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Recorded, a duplicate, or deliberately ignored: acknowledge.
    Settled,
    /// Can never be recorded: publish to the dead-letter subject with this reason, then
    /// acknowledge.
    DeadLetter(String),
    /// Could not be decided now (the ledger is unavailable): deliver again later.
    Retry,
}

fn setup(what: &str, e: impl std::fmt::Display) -> JetStreamError {
    JetStreamError::Setup {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

/// Consumes stream `stream` (which must exist) through the durable consumer
/// [`HMPPS_CONSUMER`], one message at a time in stream order, until the connection closes
/// for good. `dead_lettered` is called after each message sent to the dead-letter subject.
pub async fn consume_hmpps<F, Fut>(
    config: &JetStreamConfig,
    stream: &str,
    handler: F,
    dead_lettered: impl Fn() + Send + Sync + 'static,
) -> Result<(), JetStreamError>
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Disposition> + Send + 'static,
{
    let client = config
        .reconnecting("-hmpps")
        .await?
        .connect(config.servers())
        .await
        .map_err(|e| config.connect_error(e))?;
    let js = async_nats::jetstream::new(client);
    let source = js
        .get_stream(stream)
        .await
        .map_err(|e| setup(&format!("the HMPPS stream {stream} (it must exist)"), e))?;
    let consumer = source
        .get_or_create_consumer(
            HMPPS_CONSUMER,
            pull::Config {
                durable_name: Some(HMPPS_CONSUMER.to_string()),
                description: Some("throughcare: HMPPS domain events into the ledger".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                // One message at a time, even across redeliveries: a release must be
                // settled before the admission after it is looked at.
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            setup(
                &format!("the durable consumer {HMPPS_CONSUMER} on {stream}"),
                e,
            )
        })?;
    tracing::info!(
        stream,
        consumer = HMPPS_CONSUMER,
        "consuming HMPPS domain events"
    );
    let mut pause = Duration::from_millis(100);
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull from the HMPPS stream; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    // Missed heartbeats and the like during a server restart: keep pulling.
                    tracing::warn!(error = %e, "HMPPS stream interrupted; resuming");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            pause = Duration::from_millis(100);
            let origin = message
                .info()
                .map(|i| format!("{stream}/{}", i.stream_sequence))
                .unwrap_or_else(|_| stream.to_string());
            let settled = match handler(message.payload.to_vec()).await {
                Disposition::Settled => true,
                Disposition::DeadLetter(reason) => {
                    match dead_letter(&js, &message.payload, &reason, &origin).await {
                        Ok(()) => {
                            dead_lettered();
                            true
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot dead-letter an HMPPS message; it will be delivered again");
                            false
                        }
                    }
                }
                Disposition::Retry => false,
            };
            let acked = if settled {
                message.double_ack().await
            } else {
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await
            };
            if let Err(e) = acked {
                // Not acknowledged: it comes again after ACK_WAIT and is then a duplicate.
                tracing::warn!(error = %e, settled, "cannot acknowledge an HMPPS message");
            }
        }
        tracing::warn!("the HMPPS message stream ended; pulling again");
        tokio::time::sleep(pause).await;
    }
}

/// Publishes the message to the dead-letter subject with the reason. When a stream
/// captures that subject the publish is acknowledged by JetStream; otherwise it goes to
/// whoever subscribes (core NATS), flushed to the server.
async fn dead_letter(
    js: &async_nats::jetstream::Context,
    payload: &bytes::Bytes,
    reason: &str,
    origin: &str,
) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    // A header value is one line.
    let reason: String = reason
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    headers.insert(DEAD_LETTER_REASON_HEADER, reason.as_str());
    headers.insert(DEAD_LETTER_ORIGIN_HEADER, origin);
    match js
        .publish_with_headers(DEAD_LETTER_SUBJECT, headers.clone(), payload.clone())
        .await
    {
        Ok(ack) => match ack.await {
            Ok(_) => return Ok(()),
            Err(e)
                if e.kind() == async_nats::jetstream::context::PublishErrorKind::StreamNotFound => {
            }
            Err(e) => return Err(e.to_string()),
        },
        Err(e) => return Err(e.to_string()),
    }
    let client = js.client();
    client
        .publish_with_headers(DEAD_LETTER_SUBJECT, headers, payload.clone())
        .await
        .map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())
}
