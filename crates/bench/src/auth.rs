//! Access control's cost over HTTP: the same load against the server in open mode and with
//! an auth file (`serve --auth`), the access log on in both (open mode logs reads too).
//!
//! 1. query-auth: `GET /v1/people/{id}/journey` with an AUDITOR token (reads everyone)
//!    beside the same GETs in open mode; and a WORKER token reading only the people
//!    allocated to its `worker_id` (the scope check against the journey's allocation)
//!    beside open mode reading the same people. As a reference (no target), open mode with
//!    an access log that seals entries but keeps nothing shows what the durable append
//!    (group commit, fsync) costs a read. The read models are read once first, so that
//!    every mode starts with them in the page cache, however long a kept `--dataset` lay
//!    unused.
//! 2. write-auth: `POST /v1/events` (one event a request) with a PARTNER token whose
//!    `sources` hold the synthetic events' source, beside the same in open mode, each on a
//!    fresh data directory.
//!
//! Each rep measures both modes, in alternating order, on servers of their own (a server's
//! mode is fixed when it starts). The p99 judged against 5 ms is pooled over the reps, as
//! in the query section; the auth/open ratio is of the medians of the reps' own p99s, so a
//! burst of other work during one rep does not decide it. Every measured read must add
//! exactly one access-log entry, so a run where reads are not logged fails rather than
//! reporting a false figure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chrono::Utc;
use serde_json::json;
use throughcare_server::auth::{new_token, principal_block};
use throughcare_server::Role;

use crate::query::{self, AccessKind, Conn, Load, Server};
use crate::report::{median, percentile, Row, Target};
use crate::{data, rebuild, Plan, PER_PERSON};

/// Synthetic person `n`'s case is allocated to worker `W-{n % WORKERS:04}` (data.rs).
const WORKERS: u64 = 997;
/// The worker whose caseload the WORKER variant reads.
const WORKER: u64 = 1;

/// The auth file of a run and the bearer tokens of its principals.
pub struct Principals {
    pub file: PathBuf,
    pub auditor: Arc<str>,
    pub worker: Arc<str>,
    pub worker_id: String,
    pub partner: Arc<str>,
}

/// Writes an auth file in `dir` holding an AUDITOR, a WORKER (worker [`WORKER`]) and a
/// PARTNER allowed the synthetic events' source, each with a new token.
pub fn write_auth_file(dir: &Path) -> Result<Principals> {
    let worker_id = format!("W-{WORKER:04}");
    let (auditor, auditor_sha) = new_token();
    let (worker, worker_sha) = new_token();
    let (partner, partner_sha) = new_token();
    let text = [
        principal_block(
            "bench.auditor",
            Role::Auditor,
            &auditor_sha,
            None,
            &[],
            &[],
            &[],
        ),
        principal_block(
            "bench.worker",
            Role::Worker,
            &worker_sha,
            Some(&worker_id),
            &[],
            &[],
            &[],
        ),
        principal_block(
            "bench.partner",
            Role::Partner,
            &partner_sha,
            None,
            &[],
            &[data::SOURCE.to_string()],
            // Every synthetic type: a PARTNER's types are never implied.
            &["throughcare.*".to_string()],
        ),
    ]
    .join("\n");
    let file = dir.join("bench-auth.toml");
    std::fs::write(&file, text).with_context(|| format!("write {}", file.display()))?;
    Ok(Principals {
        file,
        auditor: auditor.into(),
        worker: worker.into(),
        worker_id,
        partner: partner.into(),
    })
}

/// Open development mode or `--auth`; and, as a reference for reads only, open mode with
/// an access log that is not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open = 0,
    Auth = 1,
    OpenMemoryLog = 2,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Open => "open",
            Mode::Auth => "auth",
            Mode::OpenMemoryLog => "open (access log in memory)",
        }
    }
    fn access(self) -> AccessKind {
        match self {
            Mode::OpenMemoryLog => AccessKind::Memory,
            Mode::Open | Mode::Auth => AccessKind::Durable,
        }
    }
    /// As [`Mode::order`], with the reference last or first.
    fn order_with_reference(rep: usize) -> [Mode; 3] {
        match Mode::order(rep) {
            [Mode::Open, b] => [Mode::Open, b, Mode::OpenMemoryLog],
            [a, b] => [Mode::OpenMemoryLog, a, b],
        }
    }
    /// Both modes, the first one alternating with the rep so neither always goes first.
    fn order(rep: usize) -> [Mode; 2] {
        if rep.is_multiple_of(2) {
            [Mode::Open, Mode::Auth]
        } else {
            [Mode::Auth, Mode::Open]
        }
    }
}

/// One load's samples gathered over the reps.
#[derive(Default)]
struct Samples {
    latencies_ms: Vec<f64>,
    rates: Vec<f64>,
    /// The p99 of each rep on its own (the pooled one is the figure judged).
    p99s: Vec<f64>,
    requests: u64,
    logged: u64,
}

impl Samples {
    fn add(&mut self, load: Load, logged: u64) {
        self.p99s.push(percentile(&load.latencies_ms, 99.0));
        self.latencies_ms.extend(load.latencies_ms);
        self.rates.push(load.requests_per_sec);
        self.requests += load.requests;
        self.logged += logged;
    }
    fn finish(&mut self) {
        self.latencies_ms.sort_by(f64::total_cmp);
    }
    fn p(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
    /// The median of the reps' own p99s: what the ratio to open mode is judged on, since a
    /// burst of other work on the machine during one rep dominates the pooled p99.
    fn p99_median(&self) -> f64 {
        median(self.p99s.clone())
    }
    fn rate(&self) -> f64 {
        median(self.rates.clone())
    }
    fn detail(&self) -> serde_json::Value {
        json!({
            "p50_ms": self.p(50.0), "p99_ms": self.p(99.0), "p999_ms": self.p(99.9),
            "requests_per_sec": self.rate(), "requests_per_sec_each_rep": self.rates,
            "p99_ms_each_rep": self.p99s, "p99_ms_median_of_reps": self.p99_median(),
            "samples": self.latencies_ms.len(),
            "requests_sent": self.requests, "access_entries_appended": self.logged,
        })
    }
}

/// A GET answered with `want`, or an error saying what came instead.
async fn expect(conn: &mut Conn, path: &str, want: u16) -> Result<()> {
    let (status, body) = conn.request("GET", path, None).await?;
    ensure!(
        status == want,
        "GET {path} answered {status}, not {want}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// A load whose reads must each have appended one access-log entry by the time it ends.
async fn logged_load(
    server: &Server,
    bearer: Option<Arc<str>>,
    plan: &Plan,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Result<(Load, u64)> {
    let before = server.access.head().await?;
    let load = query::load_as(
        server.addr,
        bearer,
        plan.query_clients,
        plan.auth_query_warmup,
        plan.auth_query_measure,
        path,
    )
    .await?;
    let logged = server.access.head().await? - before;
    ensure!(
        logged == load.requests,
        "{} journey reads appended {logged} access-log entries, not one each",
        load.requests
    );
    Ok((load, logged))
}

fn journey_path(n: u64) -> String {
    format!("/v1/people/{}/journey", data::person_id(0, n))
}

/// Journey GETs with auth (AUDITOR; WORKER on its caseload) beside open mode, on the
/// generated data set `dataset` (series 0).
pub async fn bench_query_auth(plan: &Plan, dataset: &Path, run_dir: &Path) -> Result<Vec<Row>> {
    let people = rebuild::dataset_people(dataset)?;
    let principals = write_auth_file(run_dir)?;
    let readmodels = rebuild::readmodels_dir(dataset);
    let (warm_bytes, warm_secs) =
        tokio::task::spawn_blocking(move || read_files(&readmodels)).await??;
    eprintln!(
        "query-auth: read the read models' {:.0} MiB once in {warm_secs:.1}s (page cache)",
        warm_bytes as f64 / 1048576.0
    );
    let caseload: Arc<Vec<u64>> = Arc::new((WORKER..people).step_by(WORKERS as usize).collect());
    let all: Arc<dyn Fn(u64) -> String + Send + Sync> = Arc::new(move |r| journey_path(r % people));
    let mine = caseload.clone();
    let own: Arc<dyn Fn(u64) -> String + Send + Sync> =
        Arc::new(move |r| journey_path(mine[(r % mine.len() as u64) as usize]));
    let (mut all_open, mut all_auth) = (Samples::default(), Samples::default());
    let (mut own_open, mut own_auth) = (Samples::default(), Samples::default());
    let mut all_memory = Samples::default();
    for rep in 0..plan.auth_query_reps {
        for mode in Mode::order_with_reference(rep) {
            let auth_file = (mode == Mode::Auth).then_some(principals.file.as_path());
            let server = Server::start_with(dataset, auth_file, mode.access())?;
            query::wait_ready(server.addr, Duration::from_secs(600)).await?;
            if mode == Mode::Auth {
                check_scope(server.addr, &principals, people).await?;
            }
            eprintln!(
                "query-auth: journey, {} mode, {} clients (rep {})",
                mode.name(),
                plan.query_clients,
                rep + 1
            );
            let (bearer, target) = match mode {
                Mode::Open => (None, &mut all_open),
                Mode::Auth => (Some(principals.auditor.clone()), &mut all_auth),
                Mode::OpenMemoryLog => (None, &mut all_memory),
            };
            let (load, logged) = logged_load(&server, bearer, plan, all.clone()).await?;
            target.add(load, logged);
            if !caseload.is_empty() && mode != Mode::OpenMemoryLog {
                eprintln!(
                    "query-auth: journey of {}'s {} people, {} mode (rep {})",
                    principals.worker_id,
                    caseload.len(),
                    mode.name(),
                    rep + 1
                );
                let (bearer, target) = match mode {
                    Mode::Open | Mode::OpenMemoryLog => (None, &mut own_open),
                    Mode::Auth => (Some(principals.worker.clone()), &mut own_auth),
                };
                let (load, logged) = logged_load(&server, bearer, plan, own.clone()).await?;
                target.add(load, logged);
            }
            server.stop()?;
        }
    }
    for s in [
        &mut all_open,
        &mut all_auth,
        &mut own_open,
        &mut own_auth,
        &mut all_memory,
    ] {
        s.finish();
    }
    let (clients, reps) = (plan.query_clients, plan.auth_query_reps);
    let detail = json!({
        "clients": clients,
        "people": people,
        "events": people * PER_PERSON,
        "reps": plan.auth_query_reps,
        "measure_secs_per_rep": plan.auth_query_measure.as_secs_f64(),
        "readmodels_read_first_mib": warm_bytes as f64 / 1048576.0,
        "readmodels_read_first_secs": warm_secs,
        "auth_auditor": all_auth.detail(),
        "open": all_open.detail(),
        "open_access_log_in_memory": all_memory.detail(),
    });
    let name = format!("GET journey, AUDITOR token, {people} people, {clients} clients");
    let mut rows = vec![
        Row::new("query-auth", format!("{name}: p50"), all_auth.p(50.0), "ms")
            .beside("open mode p50", all_open.p(50.0))
            .detail(detail.clone()),
        Row::new("query-auth", format!("{name}: p99"), all_auth.p(99.0), "ms")
            .beside("open mode p99", all_open.p(99.0))
            .target(Target::Below {
                max: 5.0,
                what: "p99 ms".into(),
            })
            .detail(detail.clone()),
        Row::new(
            "query-auth",
            format!("{name}: p99 vs open mode, median of {reps} reps"),
            all_auth.p99_median(),
            "ms",
        )
        .beside("open mode, median p99", all_open.p99_median())
        .target(Target::RatioAtMost { max: 1.3 })
        .detail(detail.clone()),
        Row::new(
            "query-auth",
            format!("{name}: throughput"),
            all_auth.rate(),
            "req/s",
        )
        .beside("open mode", all_open.rate())
        .detail(detail.clone()),
        // A reference, not a target: how much of a read is the durable access-log append.
        Row::new(
            "query-auth",
            format!(
                "GET journey, open mode, {people} people, {clients} clients: p99, median of {reps} reps"
            ),
            all_open.p99_median(),
            "ms",
        )
        .beside(
            "access log in memory (not durable)",
            all_memory.p99_median(),
        )
        .detail(detail),
    ];
    let wname = format!(
        "GET journey, WORKER token, its {} allocated people, {clients} clients",
        caseload.len()
    );
    if caseload.is_empty() {
        rows.push(Row::not_measured(
            "query-auth",
            wname,
            format!(
                "no person allocated to {} in {people}",
                principals.worker_id
            ),
        ));
    } else {
        let detail = json!({
            "clients": clients,
            "worker_id": principals.worker_id,
            "caseload": caseload.len(),
            "reps": plan.auth_query_reps,
            "auth_worker": own_auth.detail(),
            "open_same_people": own_open.detail(),
        });
        rows.push(
            Row::new(
                "query-auth",
                format!("{wname}: p99, median of {reps} reps"),
                own_auth.p99_median(),
                "ms",
            )
            .beside("open mode, same people, median p99", own_open.p99_median())
            .target(Target::RatioAtMost { max: 1.3 })
            .detail(detail.clone()),
        );
        rows.push(
            Row::new(
                "query-auth",
                format!("{wname}: throughput"),
                own_auth.rate(),
                "req/s",
            )
            .beside("open mode, same people", own_open.rate())
            .detail(detail),
        );
    }
    Ok(rows)
}

/// Reads every file under `dir` once, so that both modes start with the data set in the
/// page cache however long it lay unused (a kept `--dataset` may have been evicted):
/// (bytes, seconds).
fn read_files(dir: &Path) -> Result<(u64, f64)> {
    let began = Instant::now();
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                bytes += std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
            }
        }
    }
    Ok((bytes, began.elapsed().as_secs_f64()))
}

/// That the server in auth mode refuses what it should: no token 401, the WORKER's read
/// of a person not allocated to it 404 (as an unknown person), of one allocated 200.
async fn check_scope(addr: SocketAddr, p: &Principals, people: u64) -> Result<()> {
    expect(&mut Conn::open(addr).await?, &journey_path(WORKER), 401).await?;
    let mut worker = Conn::open_as(addr, Some(&p.worker)).await?;
    if WORKER < people {
        expect(&mut worker, &journey_path(WORKER), 200).await?;
    }
    if WORKER + 1 < people {
        expect(&mut worker, &journey_path(WORKER + 1), 404).await?;
    }
    Ok(())
}

/// What one HTTP write run did.
struct PostRun {
    events: u64,
    elapsed: Duration,
    /// Milliseconds, sorted.
    latencies_ms: Vec<f64>,
}

/// `clients` keep-alive connections each POSTing the ten-event journeys of its own
/// `persons` people one event at a time (bodies serialized before the clock starts);
/// every answer must be 201.
async fn post_load(
    addr: SocketAddr,
    bearer: Option<Arc<str>>,
    tag: &str,
    clients: usize,
    persons: usize,
) -> Result<PostRun> {
    let now = Utc::now();
    let work: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| {
            (0..persons)
                .flat_map(|k| data::journey(tag, (c + k * clients) as u64, now))
                .map(|v| serde_json::to_vec(&v).expect("json values serialize"))
                .collect()
        })
        .collect();
    let events: u64 = work.iter().map(|w| w.len() as u64).sum();
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut handles = Vec::with_capacity(clients);
    for bodies in work {
        let start = start.clone();
        let bearer = bearer.clone();
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::open_as(addr, bearer.as_deref()).await?;
            start.wait().await;
            let mut latencies = Vec::with_capacity(bodies.len());
            for body in bodies {
                let t0 = Instant::now();
                let (status, reply) = conn
                    .request(
                        "POST",
                        "/v1/events",
                        Some(("application/cloudevents+json", &body)),
                    )
                    .await?;
                ensure!(
                    status == 201,
                    "POST /v1/events answered {status}: {}",
                    String::from_utf8_lossy(&reply)
                );
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut latencies_ms = Vec::with_capacity(events as usize);
    for h in handles {
        latencies_ms.extend(h.await.context("a client panicked")??);
    }
    let elapsed = began.elapsed();
    latencies_ms.sort_by(f64::total_cmp);
    Ok(PostRun {
        events,
        elapsed,
        latencies_ms,
    })
}

/// `POST /v1/events` over HTTP with a PARTNER token beside open mode, each run on a fresh
/// data directory under `run_dir`.
pub async fn bench_write_auth(plan: &Plan, run_dir: &Path) -> Result<Vec<Row>> {
    let principals = write_auth_file(run_dir)?;
    let (clients, persons) = plan.http_write;
    let mut rates: [Vec<f64>; 2] = Default::default();
    let mut p99s: [Vec<f64>; 2] = Default::default();
    let mut latencies: [Vec<f64>; 2] = Default::default();
    for rep in 0..plan.http_write_reps {
        for mode in Mode::order(rep) {
            let dir = run_dir.join(format!("http-write-{}-{rep}", mode.name()));
            std::fs::create_dir_all(&dir)?;
            let auth_file = (mode == Mode::Auth).then_some(principals.file.as_path());
            let server = Server::start_with(&dir, auth_file, AccessKind::Durable)?;
            let bearer = match mode {
                Mode::Open => None,
                Mode::OpenMemoryLog => unreachable!("the write path runs open and auth only"),
                Mode::Auth => {
                    // Without a token a submission is refused.
                    let mut anonymous = Conn::open(server.addr).await?;
                    let (status, _) = anonymous
                        .request("POST", "/v1/events", Some(("application/json", b"{}")))
                        .await?;
                    ensure!(
                        status == 401,
                        "an anonymous POST answered {status}, not 401"
                    );
                    Some(principals.partner.clone())
                }
            };
            eprintln!(
                "write-auth: POST /v1/events, {} mode, {clients} clients x {persons} persons x 10 events (rep {})",
                mode.name(),
                rep + 1
            );
            let tag = format!("h{}{rep}", mode.name());
            let run = post_load(server.addr, bearer, &tag, clients, persons).await?;
            let head = query::wait_ready(server.addr, Duration::from_secs(600)).await?;
            ensure!(
                head == run.events,
                "{} events posted but the head is {head}",
                run.events
            );
            server.stop()?;
            std::fs::remove_dir_all(&dir).ok();
            let m = mode as usize;
            rates[m].push(run.events as f64 / run.elapsed.as_secs_f64());
            p99s[m].push(percentile(&run.latencies_ms, 99.0));
            latencies[m].extend(run.latencies_ms);
        }
    }
    for l in &mut latencies {
        l.sort_by(f64::total_cmp);
    }
    let [open_rate, auth_rate] = rates.clone().map(median);
    let [open_lat, auth_lat] = &latencies;
    let detail = json!({
        "clients": clients,
        "events_per_run": clients * persons * PER_PERSON as usize,
        "reps": plan.http_write_reps,
        "auth_partner": {"events_per_sec_each_rep": rates[Mode::Auth as usize],
            "post_p50_ms": percentile(auth_lat, 50.0), "post_p99_ms": percentile(auth_lat, 99.0),
            "post_p99_ms_each_rep": p99s[Mode::Auth as usize]},
        "open": {"events_per_sec_each_rep": rates[Mode::Open as usize],
            "post_p50_ms": percentile(open_lat, 50.0), "post_p99_ms": percentile(open_lat, 99.0),
            "post_p99_ms_each_rep": p99s[Mode::Open as usize]},
    });
    let name = format!("POST /v1/events over HTTP, PARTNER token, {clients} clients");
    Ok(vec![
        Row::new("write-auth", name.clone(), auth_rate, "events/s")
            .beside("open mode", open_rate)
            .detail(detail.clone()),
        Row::new(
            "write-auth",
            format!("{name}: POST p99"),
            percentile(auth_lat, 99.0),
            "ms",
        )
        .beside("open mode p99", percentile(open_lat, 99.0))
        .detail(detail),
    ])
}
