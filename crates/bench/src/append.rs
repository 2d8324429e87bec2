//! Append: the full write path (`validate_body` then `Ledger::submit`: idempotency lookup,
//! identity, fold, decide, hash chain, expected version, group-commit durability) with
//! many concurrent persons, beside the raw baseline of sled `apply_batch` + `flush` of the
//! same stored bytes in groups.
//!
//! The write path is measured through `Arc<dyn EventLog>`, so another backend (JetStream)
//! can be measured by the same [`write_path`] once it exists; only its raw baseline differs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::Utc;
use futures::TryStreamExt;
use throughcare_events::{validate_body, Hash, StoredBody, Submission};
use throughcare_ledger::{EmbeddedLog, EventLog, Ledger};

use crate::data;

/// What one write-path run did.
pub struct WriteRun {
    pub events: u64,
    pub elapsed: Duration,
    /// Per-submit latency (validate + submit), milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// The stored value of every event the run recorded, as the embedded log keeps it
    /// (hash ++ stored body), in position order: the bytes of the raw baseline.
    pub stored: Vec<(u64, Vec<u8>)>,
}

impl WriteRun {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Submits `tasks * persons_per_task` ten-event journeys through the write path, `tasks`
/// submitters at once, each working through its own persons one event at a time (so each
/// task has exactly one submission in flight, for a person no other task touches).
/// Every submission is the CloudEvents JSON a partner would POST: the timed part is
/// `validate_body` + `Ledger::submit`.
pub async fn write_path(
    log: Arc<dyn EventLog>,
    tag: &str,
    tasks: usize,
    persons_per_task: usize,
) -> Result<WriteRun> {
    let ledger = Ledger::with_system_clock(log.clone());
    let now = Utc::now();
    // Bodies are serialized before the clock starts.
    let work: Vec<Vec<Vec<u8>>> = (0..tasks)
        .map(|t| {
            (0..persons_per_task)
                .flat_map(|k| data::journey(tag, (t + k * tasks) as u64, now))
                .map(|v| serde_json::to_vec(&v).expect("json values serialize"))
                .collect()
        })
        .collect();
    let events: u64 = work.iter().map(|w| w.len() as u64).sum();
    let head_before = log.head().await?;
    let start = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let mut handles = Vec::with_capacity(tasks);
    for bodies in work {
        let ledger = ledger.clone();
        let start = start.clone();
        handles.push(tokio::spawn(async move {
            start.wait().await;
            let mut latencies = Vec::with_capacity(bodies.len());
            for body in bodies {
                let t0 = Instant::now();
                let event = match validate_body(&body, ledger.now()) {
                    Ok(Submission::One(e)) => *e,
                    Ok(Submission::Batch(_)) => bail!("a batch where one event was meant"),
                    Err(p) => bail!("synthetic event refused by validation: {p:?}"),
                };
                let receipt = ledger.submit(event).await?;
                ensure!(!receipt.duplicate, "a fresh event came back as a duplicate");
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            Ok(latencies)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let cpu_before = process_cpu_seconds();
    let mut latencies_ms = Vec::with_capacity(events as usize);
    for h in handles {
        latencies_ms.extend(h.await.context("a submitter panicked")??);
    }
    let elapsed = began.elapsed();
    // CPU time of the whole process (submitters, the ledger's threads, sled's I/O threads)
    // per event: on a shared machine it moves far less with other tenants' load than
    // events/s does.
    if let Some((before, after)) = cpu_before.zip(process_cpu_seconds()) {
        let us = (after - before) * 1e6 / events as f64;
        eprintln!(
            "append: {tag}: {:.0} events/s, {us:.1} us of process CPU per event",
            events as f64 / elapsed.as_secs_f64()
        );
    }
    latencies_ms.sort_by(f64::total_cmp);
    let head = log.head().await?;
    ensure!(
        head - head_before == events,
        "{events} submitted but the head moved by {}",
        head - head_before
    );
    // The exact stored bytes, recovered from the log: re-encoding a recorded event gives
    // its stored body again (the hash check proves it byte for byte).
    let stored: Vec<(u64, Vec<u8>)> = log
        .read_all(head_before + 1)
        .map_err(anyhow::Error::from)
        .and_then(|e| async move {
            let body = StoredBody::encode(e.person_id, e.recorded_at, e.prev, &e.event);
            ensure!(
                Hash::of(&body) == e.hash,
                "re-encoded body of position {} differs from the stored bytes",
                e.position
            );
            let mut value = Vec::with_capacity(32 + body.len());
            value.extend_from_slice(&e.hash.0);
            value.extend_from_slice(&body);
            Ok((e.position, value))
        })
        .try_collect()
        .await?;
    ensure!(
        stored.len() as u64 == events,
        "read back {} events",
        stored.len()
    );
    Ok(WriteRun {
        events,
        elapsed,
        latencies_ms,
        stored,
    })
}

/// The embedded write path in a fresh log under `dir`.
pub async fn embedded_write_path(
    dir: &Path,
    tag: &str,
    tasks: usize,
    persons_per_task: usize,
) -> Result<WriteRun> {
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(dir).context("open the embedded log for the write path")?);
    write_path(log, tag, tasks, persons_per_task).await
}

/// The raw baseline: the same values under the same keys (`L` + big-endian position, as
/// the embedded log stores them) written to a fresh sled tree with the embedded log's
/// cache size, `group` events per `apply_batch`, each batch followed by `flush` and an
/// fdatasync of sled's data file: the same durability the embedded log gives an append
/// (sled's own flush uses sync_file_range, which does not survive power loss).
/// Only the event bytes are written: the ledger's indexes (person, idempotency, identity)
/// are part of what the write path is measured paying for.
pub fn raw_sled(dir: &Path, stored: &[(u64, Vec<u8>)], group: usize) -> Result<f64> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .context("open sled for the raw baseline")?;
    let data_file = std::fs::File::open(dir.join("db")).context("open sled's data file")?;
    let began = Instant::now();
    let cpu_before = process_cpu_seconds();
    for chunk in stored.chunks(group.max(1)) {
        let mut batch = sled::Batch::default();
        for (position, value) in chunk {
            let mut key = [b'L'; 9];
            key[1..].copy_from_slice(&position.to_be_bytes());
            batch.insert(&key[..], value.as_slice());
        }
        db.apply_batch(batch)?;
        db.flush()?;
        data_file.sync_data()?;
    }
    let elapsed = began.elapsed();
    let rate = stored.len() as f64 / elapsed.as_secs_f64();
    if let Some((before, after)) = cpu_before.zip(process_cpu_seconds()) {
        eprintln!(
            "append: raw sled, groups of {group}: {rate:.0} events/s, {:.1} us of process CPU per event",
            (after - before) * 1e6 / stored.len() as f64
        );
    }
    Ok(rate)
}

/// User + system CPU time of this whole process so far, in seconds: fields 14 and 15 of
/// `/proc/self/stat`, which Linux reports in USER_HZ (100 per second on every platform it
/// supports). `None` off Linux.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
