//! The raw JetStream baseline of `throughcare-bench` (issue 5), and nothing else: bare
//! async-nats publishes of given bytes. It lives here only because this is the one crate
//! that may import async-nats; the ledger never calls it.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use async_nats::ConnectOptions;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::JetStreamError;

/// Subjects of every baseline stream (the caller's subjects must be under it, e.g.
/// `baseline.person.<ULID>`, one per person as the ledger's stream has).
pub const BASELINE_SUBJECTS: &str = "baseline.>";

/// Keeps the names of baseline streams made by one process apart.
static BASELINE_COUNTER: AtomicU64 = AtomicU64::new(0);

fn failed(what: &str, detail: impl std::fmt::Display) -> JetStreamError {
    JetStreamError::Setup {
        what: format!("raw baseline: {what}"),
        detail: detail.to_string(),
    }
}

/// Publishes exactly `messages` (subject, payload; no headers) with plain async-nats
/// JetStream publishes to a stream of its own, `THROUGHCARE_BASELINE_<pid>_<n>` (subjects
/// [`BASELINE_SUBJECTS`], file storage, limits retention, one replica: the ledger stream's
/// storage settings), keeping up to `max_in_flight` acknowledgements outstanding. A publish
/// is two awaits: the send, then its ack future.
///
/// Returns the number of messages acknowledged and the time from the first send to the
/// last ack (the stream's creation and deletion are not timed). The stream is deleted
/// afterwards, also when a publish failed.
pub async fn raw_publish_baseline(
    url: &str,
    messages: &[(String, Vec<u8>)],
    max_in_flight: usize,
) -> Result<(u64, Duration), JetStreamError> {
    let max_in_flight = max_in_flight.max(1);
    let client = ConnectOptions::new()
        .name("throughcare-bench-raw-baseline")
        .connect(url)
        .await
        .map_err(|e| JetStreamError::Connect {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .max_ack_inflight(max_in_flight)
        .build(client);
    let name = format!(
        "THROUGHCARE_BASELINE_{}_{}",
        std::process::id(),
        BASELINE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    js.create_stream(stream::Config {
        name: name.clone(),
        description: Some("throughcare-bench raw publish baseline (deleted after the run)".into()),
        subjects: vec![BASELINE_SUBJECTS.into()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| failed(&format!("create stream {name}"), e))?;

    // The payloads are copied into `Bytes` before the clock starts (untimed).
    let payloads: Vec<(String, Bytes)> = messages
        .iter()
        .map(|(s, p)| (s.clone(), Bytes::copy_from_slice(p)))
        .collect();
    let published = publish_all(&js, payloads, max_in_flight).await;

    let deleted = js.delete_stream(&name).await;
    let (acked, elapsed) = published?;
    deleted.map_err(|e| failed(&format!("delete stream {name}"), e))?;
    Ok((acked, elapsed))
}

async fn publish_all(
    js: &jetstream::Context,
    payloads: Vec<(String, Bytes)>,
    max_in_flight: usize,
) -> Result<(u64, Duration), JetStreamError> {
    let began = Instant::now();
    let mut in_flight: FuturesUnordered<<PublishAckFuture as IntoFuture>::IntoFuture> =
        FuturesUnordered::new();
    let mut acked = 0u64;
    for (subject, payload) in payloads {
        if in_flight.len() >= max_in_flight {
            if let Some(ack) = in_flight.next().await {
                ack.map_err(|e| failed("publish ack", e))?;
                acked += 1;
            }
        }
        let ack = js
            .publish(subject, payload)
            .await
            .map_err(|e| failed("publish", e))?;
        in_flight.push(ack.into_future());
    }
    while let Some(ack) = in_flight.next().await {
        ack.map_err(|e| failed("publish ack", e))?;
        acked += 1;
    }
    Ok((acked, began.elapsed()))
}
