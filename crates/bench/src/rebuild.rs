//! Rebuild: `Projector::rebuild` over a generated log, beside reading the same log without
//! folding it. Each measurement runs in a child process of the bench binary (see
//! [`run_child`]), so the peak RSS it reports (`VmHWM`) belongs to that measurement and
//! that size alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use throughcare_ledger::{EmbeddedLog, EventLog};
use throughcare_projector::Projector;

/// What a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Job {
    /// Generate a log of `--people` ten-event journeys through `EmbeddedLog::append`.
    Generate,
    /// `Projector::rebuild` (read, decode, fold, write read models + checkpoint).
    Rebuild,
    /// `EventLog::read_all(1)` consumed to the end: sled read + `StoredBody::decode`
    /// (serde_json, typed event parse, SHA-256 of the bytes); no fold, no writes.
    ReadAll,
    /// Bare sled scan of the log's `L` keys + `serde_json::from_slice::<Value>` of each
    /// stored body: what the bare parts cost, below the ledger's own decode.
    SledDecode,
}

/// A child's answer, one JSON line on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    pub events: u64,
    pub secs: f64,
    /// Peak resident set size of the child process (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

impl ChildReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

/// This process's peak resident set size (VmHWM), KiB.
pub fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    line.split_whitespace()
        .nth(1)
        .context("VmHWM has no number")?
        .parse()
        .context("VmHWM is not a number")
}

/// What a generated data directory holds (written by the generate child).
pub const DATASET_FILE: &str = "bench-dataset.json";

/// The number of synthetic people a generated data directory was made with.
pub fn dataset_people(data: &Path) -> Result<u64> {
    let path = data.join(DATASET_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (not a generated data set?)", path.display()))?;
    let about: serde_json::Value = serde_json::from_str(&text)?;
    about["people"]
        .as_u64()
        .context("no people in the data set file")
}

/// The ledger and read-model directories of a data directory (as `throughcare serve`
/// lays them out).
pub fn ledger_dir(data: &Path) -> PathBuf {
    data.join("ledger")
}
pub fn readmodels_dir(data: &Path) -> PathBuf {
    data.join("readmodels")
}

/// Runs `job` in this process (the child side) and returns its report.
pub async fn child(job: Job, data: &Path, people: u64, series: u16) -> Result<ChildReport> {
    let began = Instant::now();
    let events = match job {
        Job::Generate => {
            std::fs::create_dir_all(data)?;
            let n = crate::data::generate_log(&ledger_dir(data), series, people).await?;
            let about = serde_json::json!({ "people": people, "series": series, "events": n });
            std::fs::write(data.join(DATASET_FILE), about.to_string())?;
            n
        }
        Job::Rebuild => {
            let log = EmbeddedLog::open(&ledger_dir(data))?;
            let projector = Projector::open(&readmodels_dir(data))?;
            let began = Instant::now();
            let n = projector.rebuild(&log).await?;
            let secs = began.elapsed().as_secs_f64();
            ensure!(
                n == log.head().await?,
                "rebuild folded {n} events, not the whole log"
            );
            return Ok(ChildReport {
                events: n,
                secs,
                peak_rss_kib: peak_rss_kib()?,
            });
        }
        Job::ReadAll => {
            let log = EmbeddedLog::open(&ledger_dir(data))?;
            let began = Instant::now();
            let mut events = log.read_all(1);
            let mut n = 0u64;
            while let Some(e) = events.next().await {
                e?;
                n += 1;
            }
            let secs = began.elapsed().as_secs_f64();
            return Ok(ChildReport {
                events: n,
                secs,
                peak_rss_kib: peak_rss_kib()?,
            });
        }
        Job::SledDecode => {
            // The same sled settings as the embedded log; its key layout is documented in
            // crates/ledger/src/embedded.rs (`L` position -> hash (32) ++ stored body).
            let db = sled::Config::new()
                .path(ledger_dir(data))
                .cache_capacity(256 * 1024 * 1024)
                .open()?;
            let began = Instant::now();
            let mut n = 0u64;
            for item in db.scan_prefix([b'L']) {
                let (_, v) = item?;
                let body: serde_json::Value = serde_json::from_slice(&v[32..])?;
                ensure!(body.is_object(), "stored body is not an object");
                n += 1;
            }
            let secs = began.elapsed().as_secs_f64();
            return Ok(ChildReport {
                events: n,
                secs,
                peak_rss_kib: peak_rss_kib()?,
            });
        }
    };
    Ok(ChildReport {
        events,
        secs: began.elapsed().as_secs_f64(),
        peak_rss_kib: peak_rss_kib()?,
    })
}

/// Runs `job` in a child process of this binary and returns its report.
pub fn run_child(job: Job, data: &Path, people: u64, series: u16) -> Result<ChildReport> {
    let exe = std::env::current_exe().context("find the bench binary")?;
    let job_name = clap::ValueEnum::to_possible_value(&job)
        .expect("every job has a name")
        .get_name()
        .to_string();
    let output = Command::new(exe)
        .arg("child")
        .arg(&job_name)
        .arg("--data")
        .arg(data)
        .arg("--people")
        .arg(people.to_string())
        .arg("--series")
        .arg(series.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("run the {job_name} child"))?;
    if !output.status.success() {
        bail!("the {job_name} child failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("the {job_name} child printed no report"))?;
    serde_json::from_str(line).with_context(|| format!("the {job_name} child's report: {line}"))
}
