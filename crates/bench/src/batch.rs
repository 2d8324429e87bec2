//! Batch: the latency of one large `application/cloudevents-batch+json` submission
//! through the write path (`validate_body` of the whole array, then
//! `Ledger::submit_batch`, recorded all or nothing), one batch at a time, each about new
//! people (ten events per person), on a fresh log. Reported as p50 and p99 of the
//! submissions (issue 11: "a 1,000-event batch submission, p99: reported"). On JetStream
//! the largest batch is what one atomic batch of 1,000 messages holds (450 events of new
//! people, with their identity claims), and a 1,000-event batch is checked to be refused
//! whole, naming the limit ([`EventLog::max_batch_events`]).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use chrono::Utc;
use throughcare_events::{validate_body, Submission};
use throughcare_ledger::{BatchError, Error, EventLog, Ledger};

use crate::data;
use crate::report::percentile;

/// What `reps` batch submissions took.
pub struct BatchRun {
    /// Events per batch.
    pub size: usize,
    /// Milliseconds per submission (validate + submit_batch), sorted.
    pub latencies_ms: Vec<f64>,
}

impl BatchRun {
    pub fn p50(&self) -> f64 {
        percentile(&self.latencies_ms, 50.0)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.latencies_ms, 99.0)
    }
}

/// The JSON array a partner would POST: `size` events of journeys `tag`-`first`...
fn batch_body(tag: &str, first: u64, size: usize) -> Result<Vec<u8>> {
    let now = Utc::now();
    let events: Vec<_> = (first..)
        .flat_map(|n| data::journey(tag, n, now))
        .take(size)
        .collect();
    Ok(serde_json::to_vec(&events)?)
}

/// Submits `reps` batches of `size` events one after another and times each.
pub async fn latency(
    log: Arc<dyn EventLog>,
    tag: &str,
    size: usize,
    reps: usize,
) -> Result<BatchRun> {
    let ledger = Ledger::with_system_clock(log.clone());
    let persons_per_batch = size.div_ceil(data::EVENTS_PER_PERSON) as u64;
    let bodies: Vec<Vec<u8>> = (0..reps as u64)
        .map(|r| batch_body(tag, r * persons_per_batch, size))
        .collect::<Result<_>>()?;
    let head_before = log.head().await?;
    let mut latencies_ms = Vec::with_capacity(reps);
    for body in bodies {
        let t0 = Instant::now();
        let events = match validate_body(&body, ledger.now()) {
            Ok(Submission::Batch(events)) => events,
            Ok(Submission::One(_)) => bail!("one event where a batch was meant"),
            Err(p) => bail!("synthetic batch refused by validation: {p:?}"),
        };
        let receipts = ledger
            .submit_batch(events)
            .await
            .map_err(|e| anyhow::anyhow!("a {size}-event batch was refused: {e:?}"))?;
        latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        ensure!(
            receipts.len() == size,
            "{} receipts for {size} events",
            receipts.len()
        );
        ensure!(
            receipts.iter().all(|r| !r.duplicate),
            "a fresh event came back as a duplicate"
        );
    }
    let head = log.head().await?;
    ensure!(
        head - head_before == (size * reps) as u64,
        "{} events submitted but the head moved by {}",
        size * reps,
        head - head_before
    );
    latencies_ms.sort_by(f64::total_cmp);
    Ok(BatchRun { size, latencies_ms })
}

/// Checks that a batch of `size` events, over the log's limit, is refused whole (422 over
/// HTTP) naming the limit, and that nothing of it is recorded.
pub async fn refused_over_limit(log: Arc<dyn EventLog>, tag: &str, size: usize) -> Result<()> {
    let ledger = Ledger::with_system_clock(log.clone());
    let limit = log.max_batch_events();
    ensure!(size > limit, "{size} events is within the limit {limit}");
    let body = batch_body(tag, 0, size)?;
    let Ok(Submission::Batch(events)) = validate_body(&body, ledger.now()) else {
        bail!("the synthetic batch did not validate as a batch");
    };
    let head_before = log.head().await?;
    match ledger.submit_batch(events).await {
        Err(BatchError::Whole(Error::Invalid(problems)))
            if problems
                .iter()
                .any(|p| p.detail.contains(&limit.to_string())) => {}
        other => bail!("a {size}-event batch was not refused naming the limit {limit}: {other:?}"),
    }
    let head = log.head().await.context("read the head")?;
    ensure!(
        head == head_before,
        "a refused batch recorded {} events",
        head - head_before
    );
    Ok(())
}
