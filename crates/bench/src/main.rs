//! `throughcare-bench`: how fast the ledger is, as ratios against raw baselines measured in
//! the same run (absolute figures on shared 2-core machines drift; ratios drift less).
//!
//! ```text
//! throughcare-bench [--quick] [--json FILE] [--dir DIR]
//!                   [--only append,rebuild,query,freshness,query-auth,write-auth,audit,batch]
//! ```
//!
//! 1. append: the full write path with many concurrent persons beside sled `apply_batch` +
//!    `flush` of the same stored bytes in groups; on JetStream (default sync and
//!    `sync_interval: always`) beside async-nats publishing the same stored bytes to the
//!    same nats-server with up to 1024 acks in flight;
//! 2. rebuild: `Projector::rebuild` beside reading + decoding the same log, with the peak
//!    RSS of each size measured in a child process of its own; on JetStream (one size,
//!    in this process) beside `read_all` + decode of the same stream;
//! 3. query: `GET /v1/people/{id}/journey` with 16 clients beside `/healthz` on the same
//!    server;
//! 4. freshness: acknowledgement to `min_position` satisfied, beside the same GET repeated;
//! 5. query-auth: the journey GETs with `--auth` (AUDITOR token; WORKER token on its own
//!    caseload) beside the same in open mode, the access log on in both;
//! 6. write-auth: `POST /v1/events` over HTTP with a PARTNER token beside open mode;
//! 7. audit (issue 10): the write path with the audit tree follower on vs off, inclusion
//!    proofs at the large size (function and route), and `audit verify` of the whole log
//!    beside `read_all` + decode (audit.rs);
//! 8. batch (issue 11): p50/p99 of one 1,000-event batch submission on the embedded log,
//!    and of the largest batch of new people JetStream takes in one atomic batch (450
//!    events), which also refuses 1,000 events whole (batch.rs).
//!
//! `--quick` (CI) uses small sizes and finishes well under a minute; the full mode is what
//! the targets of issue 5 are stated for.

mod append;
mod audit;
mod auth;
mod batch;
mod data;
#[cfg(feature = "jetstream")]
mod jetstream;
mod query;
mod rebuild;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;

use rebuild::{run_child, Job};

/// Events per synthetic person.
const PER_PERSON: u64 = data::EVENTS_PER_PERSON as u64;
use report::{median, percentile, Row, Target};

#[derive(Parser)]
#[command(
    name = "throughcare-bench",
    about = "Benchmarks of the throughcare ledger beside raw baselines measured in the same run"
)]
struct Cli {
    /// Small sizes for CI (well under a minute).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Working directory for the generated logs (default: a temporary directory, removed
    /// at the end). It must be on a real disk: the benchmarks fsync.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Run only these sections (comma-separated: append, rebuild, query, freshness,
    /// query-auth, write-auth, audit, batch).
    #[arg(long, value_delimiter = ',', value_name = "SECTIONS")]
    only: Vec<Section>,
    /// Query and freshness on this existing data directory (one a run made with --keep:
    /// its `log-N` directory, read models rebuilt) instead of generating one.
    #[arg(long, value_name = "DIR")]
    dataset: Option<PathBuf>,
    /// Keep the generated logs in --dir (for profiling them afterwards).
    #[arg(long, requires = "dir")]
    keep: bool,
    #[command(subcommand)]
    child: Option<ChildCommand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    Append,
    Rebuild,
    Query,
    Freshness,
    QueryAuth,
    WriteAuth,
    Audit,
    Batch,
}

#[derive(Subcommand)]
enum ChildCommand {
    /// (internal) One measurement in a process of its own; prints one JSON line.
    #[command(hide = true)]
    Child {
        job: Job,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 0)]
        people: u64,
        #[arg(long, default_value_t = 0)]
        series: u16,
    },
}

/// Sizes and durations of one mode.
struct Plan {
    mode: &'static str,
    /// (concurrent submitters, persons per submitter); ten events per person.
    append: Vec<(usize, usize)>,
    append_reps: usize,
    /// (submitters, persons each) on JetStream (sync_interval: always is slow).
    jetstream_append: (usize, usize),
    /// Events of the JetStream log that rebuild is measured on (default sync).
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    jetstream_rebuild_events: u64,
    /// Raw publish baselines per JetStream rep (each on a fresh stream; the median counts).
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    jetstream_raw_reps: usize,
    /// Log sizes in events for rebuild (the last one also serves query and freshness).
    rebuild_events: Vec<u64>,
    query_clients: usize,
    query_warmup: Duration,
    query_measure: Duration,
    query_reps: usize,
    fresh_writers: usize,
    fresh_samples: usize,
    /// Journey GETs with auth beside open mode (`query_clients` clients): warm-up and
    /// measured time of each load, and reps (each measures both modes, alternating which
    /// goes first).
    auth_query_warmup: Duration,
    auth_query_measure: Duration,
    auth_query_reps: usize,
    /// (HTTP clients, persons each) of `POST /v1/events` with auth beside open mode.
    http_write: (usize, usize),
    http_write_reps: usize,
    /// The audit section's sizes (audit.rs).
    audit: audit::Sizes,
    /// Batch submissions timed per backend in the batch section (batch.rs).
    batch_reps: usize,
}

impl Plan {
    fn quick() -> Plan {
        Plan {
            mode: "quick",
            append: vec![(64, 8)],
            append_reps: 1,
            jetstream_append: (64, 2),
            jetstream_raw_reps: 3,
            jetstream_rebuild_events: 2_000,
            rebuild_events: vec![2_000, 20_000],
            query_clients: 16,
            query_warmup: Duration::from_millis(300),
            query_measure: Duration::from_secs(2),
            query_reps: 1,
            fresh_writers: 8,
            fresh_samples: 300,
            // Two reps, so each mode goes first once.
            auth_query_warmup: Duration::from_millis(150),
            auth_query_measure: Duration::from_millis(400),
            auth_query_reps: 2,
            http_write: (32, 1),
            http_write_reps: 2,
            batch_reps: 3,
            audit: audit::Sizes {
                append: (32, 4),
                append_reps: 1,
                events: 10_000,
                proofs: 2_000,
                http_proofs: 500,
            },
        }
    }
    fn full() -> Plan {
        Plan {
            mode: "full",
            append: vec![(64, 32), (256, 16)],
            append_reps: 3,
            jetstream_append: (64, 8),
            jetstream_raw_reps: 5,
            jetstream_rebuild_events: 100_000,
            rebuild_events: vec![100_000, 1_000_000],
            query_clients: 16,
            query_warmup: Duration::from_secs(2),
            query_measure: Duration::from_secs(10),
            query_reps: 2,
            fresh_writers: 16,
            fresh_samples: 3_000,
            // Shorter loads, more of them, in alternating order: the modes then share
            // whatever else the machine is doing.
            auth_query_warmup: Duration::from_secs(2),
            auth_query_measure: Duration::from_secs(5),
            auth_query_reps: 4,
            http_write: (64, 16),
            http_write_reps: 5,
            batch_reps: 50,
            audit: audit::Sizes {
                append: (64, 32),
                append_reps: 3,
                events: 1_000_000,
                proofs: 100_000,
                http_proofs: 10_000,
            },
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match cli.child {
        Some(ChildCommand::Child {
            job,
            ref data,
            people,
            series,
        }) => runtime
            .block_on(rebuild::child(job, data, people, series))
            .map(|r| println!("{}", serde_json::to_string(&r).expect("report serializes"))),
        None => run(&cli, &runtime),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throughcare-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn machine() -> serde_json::Value {
    let mem_kib: Option<u64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "cpu": cpu,
        "os": std::env::consts::OS,
    })
}

fn run(cli: &Cli, runtime: &tokio::runtime::Runtime) -> Result<()> {
    let plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let wanted = |s: Section| cli.only.is_empty() || cli.only.contains(&s);
    let _temp;
    let work: PathBuf = match &cli.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            _temp = tempfile::Builder::new()
                .prefix("throughcare-bench-")
                .tempdir()?;
            _temp.path().to_path_buf()
        }
    };
    // A fresh run directory, so earlier runs in --dir are never mixed in.
    let run_dir = work.join(format!("run-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&run_dir)?;
    let began = Instant::now();
    eprintln!(
        "throughcare-bench: {} mode, working in {}",
        plan.mode,
        run_dir.display()
    );
    let mut rows: Vec<Row> = Vec::new();

    if wanted(Section::Append) {
        rows.extend(runtime.block_on(bench_append(&plan, &run_dir))?);
    }
    let largest = *plan.rebuild_events.last().expect("at least one size");
    let dataset = cli
        .dataset
        .clone()
        .unwrap_or_else(|| run_dir.join(format!("log-{largest}")));
    if wanted(Section::Rebuild) {
        rows.extend(bench_rebuild(&plan, &run_dir)?);
        rows.push(runtime.block_on(bench_rebuild_jetstream(&plan, &run_dir)));
    } else if (wanted(Section::Query) || wanted(Section::Freshness) || wanted(Section::QueryAuth))
        && cli.dataset.is_none()
    {
        eprintln!("preparing the {largest}-event data set for query/freshness/query-auth");
        run_child(Job::Generate, &dataset, largest / PER_PERSON, 0)?;
        run_child(Job::Rebuild, &dataset, 0, 0)?;
    }
    if wanted(Section::Query) || wanted(Section::Freshness) {
        // The clients get one thread of their own; the server has its own runtime.
        let clients = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rows.extend(clients.block_on(bench_query(
            &plan,
            &dataset,
            wanted(Section::Query),
            wanted(Section::Freshness),
        ))?);
    }
    if wanted(Section::QueryAuth) || wanted(Section::WriteAuth) {
        let clients = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if wanted(Section::QueryAuth) {
            rows.extend(clients.block_on(auth::bench_query_auth(&plan, &dataset, &run_dir))?);
        }
        if wanted(Section::WriteAuth) {
            rows.extend(clients.block_on(auth::bench_write_auth(&plan, &run_dir))?);
        }
    }
    if wanted(Section::Audit) {
        rows.extend(runtime.block_on(audit::bench_audit(&plan.audit, &run_dir))?);
    }
    if wanted(Section::Batch) {
        rows.extend(runtime.block_on(bench_batch(&plan, &run_dir))?);
    }

    let table = report::table(&rows);
    println!("{table}");
    let machine = machine();
    println!(
        "\nmode {}, {} cores, {} GiB memory, {:.0}s",
        plan.mode,
        machine["cores"],
        machine["memory_gib"],
        began.elapsed().as_secs_f64()
    );
    if let Some(path) = &cli.json {
        let doc = json!({
            "mode": plan.mode,
            "command": std::env::args().collect::<Vec<_>>(),
            "machine": machine,
            "started_at": chrono::Utc::now().to_rfc3339(),
            "seconds": began.elapsed().as_secs_f64(),
            "rows": rows,
            "table": table,
        });
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if cli.dir.is_some() && !cli.keep {
        std::fs::remove_dir_all(&run_dir).ok();
    }
    Ok(())
}

/// One large batch submission at a time: p99 (and p50 beside it) on the embedded log at
/// 1,000 events, and on JetStream at its limit, after checking that 1,000 is refused.
async fn bench_batch(plan: &Plan, run_dir: &Path) -> Result<Vec<Row>> {
    let reps = plan.batch_reps;
    let mut rows = Vec::new();
    eprintln!("batch: {reps} submissions of 1000 events, embedded");
    let dir = run_dir.join("batch-embedded");
    let log: Arc<dyn throughcare_ledger::EventLog> = Arc::new(
        throughcare_ledger::EmbeddedLog::open(&dir).context("open the embedded log for batches")?,
    );
    let run = batch::latency(log, "b", 1000, reps).await?;
    rows.push(batch_row("embedded", &run, reps));
    std::fs::remove_dir_all(&dir).ok();
    rows.extend(bench_batch_jetstream(reps, run_dir).await);
    Ok(rows)
}

fn batch_row(backend: &str, run: &batch::BatchRun, reps: usize) -> Row {
    Row::new(
        "batch",
        format!("{}-event batch submission, {backend}: p99", run.size),
        run.p99(),
        "ms",
    )
    .beside("p50", run.p50())
    .detail(json!({
        "events_per_batch": run.size,
        "submissions": reps,
        "latencies_ms": run.latencies_ms,
        "what": "validate_body of the whole array + Ledger::submit_batch, one at a time, new people each",
    }))
}

#[cfg(feature = "jetstream")]
async fn bench_batch_jetstream(reps: usize, run_dir: &Path) -> Vec<Row> {
    let measured: Result<batch::BatchRun> = async {
        let bin = jetstream::server_binary()?;
        let dir = run_dir.join("batch-nats");
        let server = jetstream::NatsServer::start(&bin, &dir, false)?;
        let log = jetstream::connect(&server.url()).await?;
        batch::refused_over_limit(log.clone(), "bx", 1000).await?;
        // The most events about new people one atomic batch holds: a submission record
        // and an event per event, and two claims (NOMIS, NHS number) per new person, so
        // 45 people x 10 events = 990 messages (`max_batch_events`, 495, assumes at most
        // 10 new identifiers per batch).
        let size = 450.min(log.max_batch_events());
        eprintln!("batch: {reps} submissions of {size} events, JetStream (default sync)");
        let run = batch::latency(log, "bj", size, reps).await?;
        drop(server);
        std::fs::remove_dir_all(&dir).ok();
        Ok(run)
    }
    .await;
    match measured {
        Ok(run) => vec![batch_row(
            "JetStream (default sync; 1,000 refused whole)",
            &run,
            reps,
        )],
        Err(e) => vec![Row::not_measured(
            "batch",
            "largest batch submission, JetStream: p99",
            format!("{e:#}"),
        )],
    }
}

#[cfg(not(feature = "jetstream"))]
async fn bench_batch_jetstream(_reps: usize, _run_dir: &Path) -> Vec<Row> {
    vec![Row::not_measured(
        "batch",
        "largest batch submission, JetStream: p99",
        "built without the jetstream feature",
    )]
}

async fn bench_append(plan: &Plan, run_dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &(tasks, persons) in &plan.append {
        let mut ledger_rates = Vec::new();
        let mut raw_rates = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut raw_by_group = Vec::new();
        for rep in 0..plan.append_reps {
            let tag = format!("a{tasks}r{rep}");
            eprintln!(
                "append: {tasks} submitters x {persons} persons x 10 events (rep {})",
                rep + 1
            );
            let dir = run_dir.join(format!("append-{tag}"));
            let run =
                append::embedded_write_path(&dir.join("ledger"), &tag, tasks, persons).await?;
            ledger_rates.push(run.events_per_sec());
            p50.push(percentile(&run.latencies_ms, 50.0));
            p99.push(percentile(&run.latencies_ms, 99.0));
            // Each submitter has one append in flight, and the writer drains every waiting
            // append into one group while the previous flush runs, so groups are at most
            // `tasks` events: the raw baseline uses exactly that, its most favourable size.
            let raw_dir = dir.join("raw");
            let stored = run.stored;
            let (raw, by_group) = tokio::task::spawn_blocking(move || {
                let raw = append::raw_sled(&raw_dir.join("g"), &stored, tasks)?;
                // How the raw figure depends on the group size (250 flushes at each size).
                let mut by_group = serde_json::Map::new();
                for g in [1, 8, 32] {
                    let n = stored.len().min(g * 250);
                    let rate = append::raw_sled(&raw_dir.join(format!("g{g}")), &stored[..n], g)?;
                    by_group.insert(g.to_string(), json!(rate));
                }
                anyhow::Ok((raw, by_group))
            })
            .await??;
            raw_rates.push(raw);
            raw_by_group.push(by_group);
            std::fs::remove_dir_all(&dir).ok();
        }
        let (ledger, raw) = (median(ledger_rates.clone()), median(raw_rates.clone()));
        rows.push(
            Row::new(
                "append",
                format!("embedded write path, {tasks} persons at once"),
                ledger,
                "events/s",
            )
            .beside(format!("sled apply_batch+flush, groups of {tasks}"), raw)
            .target(Target::RatioAtLeast { min: 0.5 })
            .detail(json!({
                "submitters": tasks,
                "events_per_rep": tasks * persons * PER_PERSON as usize,
                "reps": plan.append_reps,
                "write_path_events_per_sec": ledger_rates,
                "raw_events_per_sec": raw_rates,
                "submit_latency_p50_ms": median(p50),
                "submit_latency_p99_ms": median(p99),
                "raw_group_size": tasks,
                "raw_events_per_sec_by_group_size": raw_by_group,
            })),
        );
    }
    rows.extend(bench_append_jetstream(plan, run_dir).await);
    Ok(rows)
}

/// The JetStream write path, with and without `sync_interval: always`, each rep on a fresh
/// nats-server, beside the raw baseline on the same server right after it: async-nats
/// publishing the same stored bytes to per-person subjects of a stream of its own, up to
/// [`jetstream::RAW_IN_FLIGHT`] acks in flight. A row that cannot be measured says why.
#[cfg(feature = "jetstream")]
async fn bench_append_jetstream(plan: &Plan, run_dir: &Path) -> Vec<Row> {
    let (tasks, persons) = plan.jetstream_append;
    let mut rows = Vec::new();
    for sync_always in [false, true] {
        let sync = if sync_always {
            "sync_interval: always"
        } else {
            "default sync"
        };
        let name = format!("JetStream write path ({sync}), {tasks} persons at once");
        let measured: Result<JetStreamAppend> = async {
            let bin = jetstream::server_binary()?;
            let mut m = JetStreamAppend::default();
            for rep in 0..plan.append_reps {
                eprintln!(
                    "append: JetStream ({sync}), {tasks} submitters x {persons} persons x 10 events (rep {})",
                    rep + 1
                );
                let dir = run_dir.join(format!("nats-{sync_always}-{rep}"));
                let server = jetstream::NatsServer::start(&bin, &dir, sync_always)?;
                let log = jetstream::connect(&server.url()).await?;
                let tag = format!("j{sync_always}{rep}");
                let run = append::write_path(log, &tag, tasks, persons).await?;
                m.rates.push(run.events_per_sec());
                m.p50.push(percentile(&run.latencies_ms, 50.0));
                m.p99.push(percentile(&run.latencies_ms, 99.0));
                let messages = jetstream::baseline_messages(&run.stored)?;
                m.payload_bytes = messages.iter().map(|(_, p)| p.len()).sum();
                eprintln!(
                    "append: raw async-nats publish of the same {} events ({sync}), {} times",
                    messages.len(),
                    plan.jetstream_raw_reps
                );
                let raw =
                    jetstream::raw_baseline(&server.url(), &messages, plan.jetstream_raw_reps)
                        .await?;
                m.raw_rates.push(median(raw.clone()));
                m.raw_all.extend(raw);
                let same = jetstream::raw_baseline_with(
                    &server.url(),
                    &messages,
                    plan.jetstream_raw_reps,
                    jetstream::RAW_SAME_IN_FLIGHT,
                )
                .await?;
                m.raw_same_rates.push(median(same));
                drop(server);
                std::fs::remove_dir_all(&dir).ok();
            }
            let costs_dir = run_dir.join(format!("nats-costs-{sync_always}"));
            m.costs = Some(
                jetstream::write_costs(&bin, &costs_dir, sync_always, persons as u64 * tasks as u64, tasks)
                    .await?,
            );
            std::fs::remove_dir_all(&costs_dir).ok();
            Ok(m)
        }
        .await;
        if let Ok(m) = &measured {
            let c = m.costs.expect("measured");
            rows.push(
                Row::new("append", format!("JetStream server messages per recorded event ({sync})"), c.messages_per_event, "msgs/event")
                    .detail(json!({"events": c.events, "batches_per_event": c.batches_per_event, "target": "<= 2"})),
            );
            rows.push(match c.fsyncs_per_event {
                Some(f) => Row::new("append", format!("JetStream server fsyncs per recorded event ({sync})"), f, "fsyncs/event")
                    .detail(json!({"events": c.events, "how": "strace -c -f -e fsync,fdatasync attached to nats-server during the appends (untimed run)", "target": "<= 1.2 with sync_interval: always"})),
                None => Row::not_measured("append", format!("JetStream server fsyncs per recorded event ({sync})"), "strace could not attach to nats-server"),
            });
            rows.push(
                Row::new(
                    "append",
                    format!(
                        "JetStream write path ({sync}) vs raw at {} in flight (ceiling)",
                        jetstream::RAW_IN_FLIGHT
                    ),
                    median(m.rates.clone()),
                    "events/s",
                )
                .beside(
                    format!(
                        "async-nats publish, same bytes, <={} acks in flight",
                        jetstream::RAW_IN_FLIGHT
                    ),
                    median(m.raw_rates.clone()),
                ),
            );
        }
        rows.push(match measured {
            Ok(m) => Row::new("append", name, median(m.rates.clone()), "events/s")
                .beside(
                    format!(
                        "async-nats publish, same bytes, <={} acks in flight",
                        jetstream::RAW_SAME_IN_FLIGHT
                    ),
                    median(m.raw_same_rates.clone()),
                )
                .target(Target::RatioAtLeast { min: 0.5 })
                .detail(json!({
                    "submitters": tasks,
                    "events_per_rep": tasks * persons * PER_PERSON as usize,
                    "reps": plan.append_reps,
                    "write_path_events_per_sec": m.rates,
                    "submit_latency_p50_ms": median(m.p50),
                    "submit_latency_p99_ms": median(m.p99),
                    "sync_interval_always": sync_always,
                    "raw_events_per_sec": m.raw_rates,
                    "raw_events_per_sec_every_run": m.raw_all,
                    "raw_runs_per_rep": plan.jetstream_raw_reps,
                    "raw_max_in_flight": jetstream::RAW_IN_FLIGHT,
                    "raw_payload_bytes_per_rep": m.payload_bytes,
                })),
            Err(e) => Row::not_measured("append", name, format!("JetStream: not measured ({e:#})")),
        });
    }
    rows
}

/// What the JetStream append rows collect over their reps.
#[cfg(feature = "jetstream")]
#[derive(Default)]
struct JetStreamAppend {
    rates: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// The median raw rate of each rep.
    raw_rates: Vec<f64>,
    raw_all: Vec<f64>,
    payload_bytes: usize,
    /// The median raw rate of each rep at the write path's own concurrency.
    raw_same_rates: Vec<f64>,
    /// Server messages and fsyncs per event (one untimed run).
    costs: Option<jetstream::WriteCosts>,
}

#[cfg(not(feature = "jetstream"))]
async fn bench_append_jetstream(plan: &Plan, _run_dir: &Path) -> Vec<Row> {
    let (tasks, _) = plan.jetstream_append;
    ["default sync", "sync_interval: always"]
        .iter()
        .map(|sync| {
            Row::not_measured(
                "append",
                format!("JetStream write path ({sync}), {tasks} persons at once"),
                "JetStream: not measured (built without the jetstream feature)",
            )
        })
        .collect()
}

fn bench_rebuild(plan: &Plan, run_dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut rss: Vec<(u64, u64)> = Vec::new();
    for &events in &plan.rebuild_events {
        let data = run_dir.join(format!("log-{events}"));
        eprintln!("rebuild: generating {events} events");
        let generated = run_child(Job::Generate, &data, events / PER_PERSON, 0)?;
        eprintln!("rebuild: read_all baseline at {events}");
        let read_all = run_child(Job::ReadAll, &data, 0, 0)?;
        eprintln!("rebuild: Projector::rebuild at {events}");
        let rebuilt = run_child(Job::Rebuild, &data, 0, 0)?;
        eprintln!("rebuild: bare sled + serde_json baseline at {events}");
        let bare = run_child(Job::SledDecode, &data, 0, 0)?;
        for r in [&read_all, &rebuilt, &bare] {
            anyhow::ensure!(
                r.events == events,
                "a child saw {} events, not {events}",
                r.events
            );
        }
        let mib = |k: u64| k as f64 / 1024.0;
        let detail = json!({
            "events": events,
            "people": events / PER_PERSON,
            "generate_secs": generated.secs,
            "rebuild_secs": rebuilt.secs,
            "rebuild_peak_rss_mib": mib(rebuilt.peak_rss_kib),
            "read_all_secs": read_all.secs,
            "read_all_peak_rss_mib": mib(read_all.peak_rss_kib),
            "sled_decode_secs": bare.secs,
            "sled_decode_peak_rss_mib": mib(bare.peak_rss_kib),
        });
        rows.push(
            Row::new(
                "rebuild",
                format!("Projector::rebuild, {events} events"),
                rebuilt.events_per_sec(),
                "events/s",
            )
            .beside("read_all (read + decode)", read_all.events_per_sec())
            .target(Target::RatioAtLeast { min: 0.5 })
            .detail(detail.clone()),
        );
        rows.push(
            Row::new(
                "rebuild",
                format!("Projector::rebuild, {events} events (vs bare parts)"),
                rebuilt.events_per_sec(),
                "events/s",
            )
            .beside("sled scan + serde_json::Value", bare.events_per_sec())
            .detail(detail),
        );
        rss.push((events, rebuilt.peak_rss_kib));
    }
    if let [(small, small_rss), .., (large, large_rss)] = rss[..] {
        rows.push(
            Row::new(
                "rebuild",
                format!("peak RSS of rebuild at {large} events"),
                large_rss as f64 / 1024.0,
                "MiB",
            )
            .beside(format!("at {small} events"), small_rss as f64 / 1024.0)
            .target(Target::RatioAtMost { max: 2.0 }),
        );
    }
    Ok(rows)
}

/// `Projector::rebuild` over a `JetStreamLog` (default sync) beside `read_all` + decode of
/// the same stream, both in this process (no peak RSS: the log lives in the nats-server).
/// The log is written through `JetStreamLog::append` first, untimed.
#[cfg(feature = "jetstream")]
async fn bench_rebuild_jetstream(plan: &Plan, run_dir: &Path) -> Row {
    let events = plan.jetstream_rebuild_events;
    let name = format!("Projector::rebuild on JetStream, {events} events");
    let measured: Result<Row> = async {
        let bin = jetstream::server_binary()?;
        let dir = run_dir.join("nats-rebuild");
        let server = jetstream::NatsServer::start(&bin, &dir, false)?;
        let log = jetstream::connect(&server.url()).await?;
        eprintln!("rebuild: generating {events} events on JetStream");
        let began = Instant::now();
        let generated = jetstream::generate(log.clone(), events / PER_PERSON, 256).await?;
        let generate_secs = began.elapsed().as_secs_f64();
        eprintln!("  generated {generated} events in {generate_secs:.1}s");
        eprintln!("rebuild: read_all baseline on JetStream at {events}");
        let (read, read_time) = jetstream::read_all(log.as_ref()).await?;
        eprintln!("rebuild: Projector::rebuild on JetStream at {events}");
        let projector = throughcare_projector::Projector::open(&dir.join("readmodels"))?;
        let began = Instant::now();
        let folded = projector.rebuild(log.as_ref()).await?;
        let rebuild_time = began.elapsed();
        for n in [read, folded] {
            anyhow::ensure!(n == generated, "saw {n} events, not {generated}");
        }
        drop(projector);
        drop(log);
        drop(server);
        std::fs::remove_dir_all(&dir).ok();
        let rate = |d: Duration| generated as f64 / d.as_secs_f64();
        Ok(
            Row::new("rebuild", name.clone(), rate(rebuild_time), "events/s")
                .beside("read_all on JetStream (read + decode)", rate(read_time))
                .target(Target::RatioAtLeast { min: 0.5 })
                .detail(json!({
                    "events": generated,
                    "people": generated / PER_PERSON,
                    "generate_secs": generate_secs,
                    "rebuild_secs": rebuild_time.as_secs_f64(),
                    "read_all_secs": read_time.as_secs_f64(),
                })),
        )
    }
    .await;
    measured.unwrap_or_else(|e| {
        Row::not_measured("rebuild", name, format!("JetStream: not measured ({e:#})"))
    })
}

#[cfg(not(feature = "jetstream"))]
async fn bench_rebuild_jetstream(_plan: &Plan, _run_dir: &Path) -> Row {
    Row::not_measured(
        "rebuild",
        "Projector::rebuild on JetStream",
        "JetStream: not measured (built without the jetstream feature)",
    )
}

async fn bench_query(plan: &Plan, dataset: &Path, query: bool, fresh: bool) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let people = rebuild::dataset_people(dataset)?;
    let server = query::Server::start(dataset)?;
    let addr = server.addr;
    // Measure only once the projector has caught up with the log.
    let head = query::wait_ready(addr, Duration::from_secs(600)).await?;
    eprintln!(
        "query: serving {} ({people} people) on {addr}",
        dataset.display()
    );
    if query {
        let journey_path: Arc<dyn Fn(u64) -> String + Send + Sync> =
            Arc::new(move |r| format!("/v1/people/{}/journey", data::person_id(0, r % people)));
        let health_path: Arc<dyn Fn(u64) -> String + Send + Sync> =
            Arc::new(|_| "/healthz".to_string());
        let (mut journey, mut health) = (Vec::new(), Vec::new());
        let (mut journey_rps, mut health_rps) = (Vec::new(), Vec::new());
        let mut journey_bytes = Vec::new();
        for rep in 0..plan.query_reps {
            eprintln!(
                "query: /healthz then journey, {} clients (rep {})",
                plan.query_clients,
                rep + 1
            );
            let h = query::load(
                addr,
                plan.query_clients,
                plan.query_warmup,
                plan.query_measure,
                health_path.clone(),
            )
            .await?;
            let j = query::load(
                addr,
                plan.query_clients,
                plan.query_warmup,
                plan.query_measure,
                journey_path.clone(),
            )
            .await?;
            health_rps.push(h.requests_per_sec);
            journey_rps.push(j.requests_per_sec);
            journey_bytes.push(j.mean_body_bytes);
            health.extend(h.latencies_ms);
            journey.extend(j.latencies_ms);
        }
        journey.sort_by(f64::total_cmp);
        health.sort_by(f64::total_cmp);
        let (jr, hr) = (median(journey_rps), median(health_rps));
        let detail = json!({
            "clients": plan.query_clients,
            "people": people,
            "events": people * PER_PERSON,
            "journey_mean_body_bytes": median(journey_bytes),
            "journey": {"p50_ms": percentile(&journey, 50.0), "p99_ms": percentile(&journey, 99.0),
                        "p999_ms": percentile(&journey, 99.9), "requests_per_sec": jr, "samples": journey.len()},
            "healthz": {"p50_ms": percentile(&health, 50.0), "p99_ms": percentile(&health, 99.0),
                        "p999_ms": percentile(&health, 99.9), "requests_per_sec": hr, "samples": health.len()},
        });
        let name = format!(
            "GET journey, {people} people, {} clients",
            plan.query_clients
        );
        rows.push(
            Row::new(
                "query",
                format!("{name}: p50"),
                percentile(&journey, 50.0),
                "ms",
            )
            .beside("/healthz p50", percentile(&health, 50.0))
            .detail(detail.clone()),
        );
        rows.push(
            Row::new(
                "query",
                format!("{name}: p99"),
                percentile(&journey, 99.0),
                "ms",
            )
            .beside("/healthz p99", percentile(&health, 99.0))
            .target(Target::Below {
                max: 5.0,
                what: "p99 ms".into(),
            })
            .detail(detail.clone()),
        );
        rows.push(
            Row::new("query", format!("{name}: throughput"), jr, "req/s")
                .beside("/healthz", hr)
                .detail(detail),
        );
    }
    if fresh {
        eprintln!(
            "freshness: {} writers, {} samples",
            plan.fresh_writers, plan.fresh_samples
        );
        let f = query::freshness(
            addr,
            plan.fresh_writers,
            plan.fresh_samples,
            // Past every person of this data set and of earlier freshness runs on it.
            300_000 + head.saturating_sub(people * PER_PERSON),
            &format!("f{head}"),
        )
        .await?;
        let detail = json!({
            "writers": plan.fresh_writers,
            "samples": f.fresh_ms.len(),
            "fresh_p50_ms": percentile(&f.fresh_ms, 50.0),
            "fresh_p99_ms": percentile(&f.fresh_ms, 99.0),
            "fresh_max_ms": f.fresh_ms.last(),
            "repeat_get_p50_ms": percentile(&f.repeat_ms, 50.0),
            "repeat_get_p99_ms": percentile(&f.repeat_ms, 99.0),
            "post_p50_ms": percentile(&f.post_ms, 50.0),
            "post_p99_ms": percentile(&f.post_ms, 99.0),
        });
        let name = format!(
            "ack -> min_position journey, {} writers",
            plan.fresh_writers
        );
        rows.push(
            Row::new(
                "freshness",
                format!("{name}: p50"),
                percentile(&f.fresh_ms, 50.0),
                "ms",
            )
            .beside("same GET repeated, p50", percentile(&f.repeat_ms, 50.0))
            .detail(detail.clone()),
        );
        rows.push(
            Row::new(
                "freshness",
                format!("{name}: p99"),
                percentile(&f.fresh_ms, 99.0),
                "ms",
            )
            .beside("same GET repeated, p99", percentile(&f.repeat_ms, 99.0))
            .target(Target::Below {
                max: 100.0,
                what: "p99 ms".into(),
            })
            .detail(detail),
        );
    }
    server.stop()?;
    Ok(rows)
}
