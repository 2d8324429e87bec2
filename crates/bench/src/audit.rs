//! Audit (issue 10): what the RFC 9162 tree over the log costs and how fast an auditor can
//! check it, each beside a baseline measured in the same run.
//!
//! 1. The embedded write path with the audit tree follower running (as `serve` runs it:
//!    its own sled store, subscribed to the log) beside the same write path without it,
//!    same workload, reps alternating which goes first. Each "on" run also waits for the
//!    tree to reach the head and checks its root against a from-scratch computation over
//!    the stored bytes.
//! 2. Inclusion proofs at the large size (1M events in full mode): the function the route
//!    calls (`AuditTree::inclusion_proof` over the sled node store) and the real route
//!    `GET /v1/ledger/proof/inclusion` of an in-process server (the router `serve`
//!    builds), each proof verified against the signed root outside the timing.
//! 3. `throughcare audit verify` of the whole log: the CLI's own verifier
//!    (`crates/cli/src/audit.rs`, compiled in here as a module, since the CLI crate is a
//!    binary only) against that server, beside `read_all` + decode of the same log in
//!    this process.
//!
//! The follower's catch-up over the whole generated log is reported too (no target).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures::StreamExt;
use serde_json::json;
use throughcare_ledger::{EmbeddedLog, EventLog, Ledger};
use throughcare_projector::{AuditTree, Projector};
use throughcare_server::{AppState, LedgerAudit};
use throughcare_tlog::{leaf_hash, verify_inclusion, Hash, SigningKey, Tree};

use crate::rebuild::{ledger_dir, readmodels_dir, run_child, Job};
use crate::report::{median, percentile, Row, Target};
use crate::PER_PERSON;

/// The CLI's `audit verify`, compiled from its own source file (the CLI crate has no
/// library target): the bench measures exactly the code an auditor runs. `replay` and the
/// printing wrapper are not used here.
#[allow(dead_code)]
#[path = "../../cli/src/audit.rs"]
mod cli_audit;

/// The checkpoint origin of the bench's logs.
const ORIGIN: &str = "bench.throughcare.local/audit";

/// Sizes of the audit section in one mode.
pub struct Sizes {
    /// (concurrent submitters, persons each; ten events a person) of the append rows.
    pub append: (usize, usize),
    /// Reps of each of tree on and tree off.
    pub append_reps: usize,
    /// Events of the log that proofs and verify run on.
    pub events: u64,
    /// Inclusion proofs timed through the function the route calls.
    pub proofs: usize,
    /// Inclusion proofs timed over HTTP (one client, one request at a time).
    pub http_proofs: usize,
}

/// All rows of the section.
pub async fn bench_audit(sizes: &Sizes, run_dir: &Path) -> Result<Vec<Row>> {
    let mut rows = vec![append_with_tree(sizes, run_dir).await?];
    rows.extend(proofs_and_verify(sizes, run_dir).await?);
    Ok(rows)
}

/// One write-path run, with or without the follower.
struct AppendRun {
    /// Acknowledged events per second (the write path's own clock).
    acked: f64,
    /// Time from the write path returning to the tree holding every event (tree on).
    tree_lag: Option<Duration>,
    /// Events over (write path time + lag): a lower bound of the rate the tree keeps.
    through_tree: Option<f64>,
}

async fn append_run(
    dir: &Path,
    tag: &str,
    tasks: usize,
    persons: usize,
    tree_on: bool,
) -> Result<AppendRun> {
    let embedded = EmbeddedLog::open(&dir.join("ledger")).context("open the embedded log")?;
    let log: Arc<dyn EventLog> = Arc::new(embedded);
    // As `serve` keeps it: in the read-model store, a sled database of its own.
    let follower = if tree_on {
        let (tree, follower) = AuditTree::open_dir(&dir.join("readmodels"))?;
        let follow = log.clone();
        let task = tokio::spawn(async move { follower.run(follow).await });
        Some((tree, task))
    } else {
        None
    };
    let run = crate::append::write_path(log.clone(), tag, tasks, persons).await?;
    let returned = Instant::now();
    let mut out = AppendRun {
        acked: run.events_per_sec(),
        tree_lag: None,
        through_tree: None,
    };
    if let Some((tree, task)) = follower {
        let head = log.head().await?;
        ensure!(
            tree.wait_for(head, Duration::from_secs(120)).await,
            "the audit tree did not reach {head} within 120 s (it has {})",
            tree.size()
        );
        let lag = returned.elapsed();
        task.abort();
        // The follower's root must be the tree of the stored bytes, computed afresh.
        let mut fresh = Tree::new();
        for (_, value) in &run.stored {
            fresh.append(&value[32..]);
        }
        ensure!(
            tree.root_at(head)? == fresh.root(),
            "the follower's root at {head} differs from a from-scratch computation"
        );
        out.tree_lag = Some(lag);
        out.through_tree = Some(run.events as f64 / (run.elapsed + lag).as_secs_f64());
    }
    Ok(out)
}

/// Append throughput with the tree follower on vs off.
async fn append_with_tree(sizes: &Sizes, run_dir: &Path) -> Result<Row> {
    let (tasks, persons) = sizes.append;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for rep in 0..sizes.append_reps {
        // Alternate which goes first, so both share whatever else the machine does.
        let order = if rep % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for tree_on in order {
            eprintln!(
                "audit: write path, {tasks} submitters x {persons} persons x 10 events, tree follower {} (rep {})",
                if tree_on { "on" } else { "off" },
                rep + 1
            );
            let tag = format!("t{}r{rep}", u8::from(tree_on));
            let dir = run_dir.join(format!("audit-append-{tag}"));
            let run = append_run(&dir, &tag, tasks, persons, tree_on).await?;
            std::fs::remove_dir_all(&dir).ok();
            if tree_on {
                on.push(run);
            } else {
                off.push(run);
            }
        }
    }
    let rates = |runs: &[AppendRun]| runs.iter().map(|r| r.acked).collect::<Vec<_>>();
    let lags: Vec<f64> = on
        .iter()
        .filter_map(|r| r.tree_lag.map(|d| d.as_secs_f64() * 1e3))
        .collect();
    let through: Vec<f64> = on.iter().filter_map(|r| r.through_tree).collect();
    Ok(Row::new(
        "audit",
        format!("embedded write path with the audit tree follower, {tasks} persons at once"),
        median(rates(&on)),
        "events/s",
    )
    .beside("same, follower off", median(rates(&off)))
    .target(Target::RatioAtLeast { min: 0.9 })
    .detail(json!({
        "submitters": tasks,
        "events_per_rep": tasks * persons * PER_PERSON as usize,
        "reps": sizes.append_reps,
        "tree_on_events_per_sec": rates(&on),
        "tree_off_events_per_sec": rates(&off),
        "tree_lag_after_last_ack_ms": lags,
        "tree_on_events_per_sec_until_tree_caught_up": through,
        "note": "the tree lag includes reading the run's events back (untimed part of the write path), so the rate until the tree caught up is a lower bound",
    })))
}

/// A small deterministic generator (xorshift64*) for proof positions.
struct Positions(u64);

impl Positions {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The leaf hash of every position the proofs ask about (read once, before the clocks).
async fn leaves(log: &dyn EventLog, positions: &[u64]) -> Result<Vec<Hash>> {
    let mut out = Vec::with_capacity(positions.len());
    for &p in positions {
        let e = log
            .read_at(p)
            .await?
            .with_context(|| format!("position {p} is not in the log"))?;
        out.push(leaf_hash(e.stored.as_bytes()));
    }
    Ok(out)
}

/// The server `serve` runs for the ledger routes: the real router over the log, its read
/// models and the audit tree, on 127.0.0.1:0 in this runtime.
async fn start_server(
    embedded: EmbeddedLog,
    projector: &Projector,
    audit: LedgerAudit,
) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let access = Arc::new(embedded.access_log());
    let log: Arc<dyn EventLog> = Arc::new(embedded);
    let state = AppState::new(
        Ledger::with_system_clock(log),
        projector.read_models(),
        access,
    )
    .with_ledger_audit(audit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = throughcare_server::serve(listener, state, None, async {
            let _ = stopped.await;
        })
        .await
        {
            eprintln!("audit bench server stopped: {e}");
        }
    });
    Ok((url, stop))
}

/// Entries per page and pages in flight, as `audit verify` fetches them.
const ENTRIES_PAGE: u64 = 1000;
const PAGES_IN_FLIGHT: usize = 4;

/// One served entry, parsed as the verifier parses it (the fields it reads).
#[derive(serde::Deserialize)]
struct Entry {
    position: u64,
    #[allow(dead_code)]
    person_id: String,
    #[allow(dead_code)]
    hash: String,
    #[allow(dead_code)]
    stored: String,
}

#[derive(serde::Deserialize)]
struct EntriesPage {
    entries: Vec<Entry>,
}

/// Fetches and parses every page of entries `1..=size` the way `audit verify` does
/// (pages of 1000, four in flight) and checks nothing but that the positions follow on:
/// the share of verify that is the server's and the transport's.
async fn fetch_entries(http: &reqwest::Client, url: &str, size: u64) -> Result<Duration> {
    let began = Instant::now();
    let pages = (0..size.div_ceil(ENTRIES_PAGE)).map(|i| {
        let from = 1 + i * ENTRIES_PAGE;
        let limit = ENTRIES_PAGE.min(size + 1 - from);
        async move {
            let bytes = http
                .get(format!("{url}/v1/ledger/entries?from={from}&limit={limit}"))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            anyhow::Ok(serde_json::from_slice::<EntriesPage>(&bytes)?.entries)
        }
    });
    let mut pages = futures::stream::iter(pages).buffered(PAGES_IN_FLIGHT);
    let mut expected = 1u64;
    while let Some(page) = pages.next().await {
        for e in page? {
            ensure!(
                e.position == expected,
                "entry {} where {expected} belongs",
                e.position
            );
            expected += 1;
        }
    }
    ensure!(
        expected == size + 1,
        "the entries ended at {}",
        expected - 1
    );
    Ok(began.elapsed())
}

/// Proofs and verify at the large size, with the follower's catch-up and `read_all`.
async fn proofs_and_verify(sizes: &Sizes, run_dir: &Path) -> Result<Vec<Row>> {
    let events = sizes.events;
    let data = run_dir.join(format!("audit-log-{events}"));
    eprintln!("audit: generating {events} events");
    let generated = run_child(Job::Generate, &data, events / PER_PERSON, 0)?;
    ensure!(
        generated.events == events,
        "generated {} events, not {events}",
        generated.events
    );
    let embedded = EmbeddedLog::open(&ledger_dir(&data))?;
    let log: Arc<dyn EventLog> = Arc::new(embedded.clone());

    eprintln!("audit: read_all + decode of {events} events");
    let began = Instant::now();
    let mut all = log.read_all(1);
    let mut read = 0u64;
    while let Some(e) = all.next().await {
        e?;
        read += 1;
    }
    drop(all);
    let read_all_time = began.elapsed();
    ensure!(read == events, "read_all saw {read} events, not {events}");

    eprintln!("audit: the tree follower catching up with {events} events");
    let projector = Projector::open(&readmodels_dir(&data))?;
    let (tree, follower) = projector.audit_tree()?;
    let began = Instant::now();
    let follow = log.clone();
    let task = tokio::spawn(async move { follower.run(follow).await });
    ensure!(
        tree.wait_for(events, Duration::from_secs(3600)).await,
        "the audit tree did not reach {events}"
    );
    let catch_up = began.elapsed();
    task.abort();

    // The follower's bare parts: the same read of the stored bytes (`subscribe_stored`,
    // as the follower reads them) plus hashing into an in-memory tree, with no node store;
    // its root must be the follower's.
    eprintln!("audit: subscribe_stored + Tree::append of {events} events (no store)");
    let began = Instant::now();
    let mut bare = Tree::new();
    let mut all = log.subscribe_stored(1).take(events as usize);
    while let Some(e) = all.next().await {
        bare.append(e?.stored.as_bytes());
    }
    drop(all);
    let bare_time = began.elapsed();
    ensure!(
        bare.size() == events && bare.root() == tree.root_at(events)?,
        "the follower's root differs from the tree computed in memory"
    );

    let key = SigningKey::from_seed(ORIGIN, [42; 32])
        .map_err(|e| anyhow::anyhow!("bench signing key: {e}"))?;
    let (size, note) = throughcare_server::ledger_api::sign_checkpoint(&tree, &key, ORIGIN)
        .await
        .map_err(|e| anyhow::anyhow!("sign a checkpoint: {e}"))?;
    ensure!(size == events, "signed size {size}, not {events}");
    let root = key
        .verifier()
        .open(&note)
        .map_err(|e| anyhow::anyhow!("the bench's own checkpoint: {e}"))?
        .root;

    // Proofs through the function the route calls, at random positions.
    let mut rng = Positions(0x9e37_79b9_7f4a_7c15);
    let positions: Vec<u64> = (0..sizes.proofs)
        .map(|_| 1 + rng.next_below(size))
        .collect();
    let hashes = leaves(log.as_ref(), &positions).await?;
    eprintln!(
        "audit: {} inclusion proofs at size {size} (function)",
        positions.len()
    );
    let mut fn_ms = Vec::with_capacity(positions.len());
    for (&p, leaf) in positions.iter().zip(&hashes) {
        let t0 = Instant::now();
        let proof = tree.inclusion_proof(p - 1, size)?;
        fn_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        verify_inclusion(leaf, p - 1, size, &proof, &root)
            .with_context(|| format!("the proof of position {p} does not verify"))?;
    }
    fn_ms.sort_by(f64::total_cmp);

    let audit = LedgerAudit {
        tree: tree.clone(),
        verifier: key.verifier(),
        origin: ORIGIN.to_string(),
    };
    let (url, stop) = start_server(embedded, &projector, audit).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        // The server closes a keep-alive connection idle for 10 s: never reuse one that
        // old, or a request may be sent as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let positions: Vec<u64> = (0..sizes.http_proofs)
        .map(|_| 1 + rng.next_below(size))
        .collect();
    let hashes = leaves(log.as_ref(), &positions).await?;
    eprintln!(
        "audit: {} inclusion proofs at size {size} over HTTP",
        positions.len()
    );
    let mut http_ms = Vec::with_capacity(positions.len());
    // The first tenth warms the connection and the caches up, untimed.
    let warm = positions.len() / 10;
    for (k, (&p, leaf)) in positions.iter().zip(&hashes).enumerate() {
        let t0 = Instant::now();
        let reply = http
            .get(format!(
                "{url}/v1/ledger/proof/inclusion?position={p}&size={size}"
            ))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let took = t0.elapsed().as_secs_f64() * 1e3;
        if k >= warm {
            http_ms.push(took);
        }
        let body: serde_json::Value = serde_json::from_slice(&reply)?;
        let proof = body["hashes"]
            .as_array()
            .context("no hashes in the proof")?
            .iter()
            .map(|h| {
                let bytes = BASE64.decode(h.as_str().unwrap_or_default())?;
                Hash::try_from(bytes.as_slice()).map_err(anyhow::Error::from)
            })
            .collect::<Result<Vec<_>>>()?;
        verify_inclusion(leaf, p - 1, size, &proof, &root)
            .with_context(|| format!("the served proof of position {p} does not verify"))?;
    }
    http_ms.sort_by(f64::total_cmp);

    eprintln!("audit: the entries pages of {size} entries over HTTP, parsed, unchecked");
    let fetch_time = fetch_entries(&http, &url, size).await?;
    eprintln!("audit: audit verify of {size} entries over HTTP");
    let verified = cli_audit::verify_log(&url, &key.verifier().to_string(), None, None).await?;
    ensure!(
        verified.size == size && verified.root == root,
        "audit verify checked size {} (root {}), not the signed {size}",
        verified.size,
        BASE64.encode(verified.root)
    );
    let _ = stop.send(());
    drop(projector);
    std::fs::remove_dir_all(&data).ok();

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    let proof_detail = json!({
        "events": events,
        "tree_size": size,
        "function": {"samples": fn_ms.len(), "p50_ms": percentile(&fn_ms, 50.0),
                     "p99_ms": percentile(&fn_ms, 99.0), "max_ms": fn_ms.last()},
        "http": {"samples": http_ms.len(), "warm_up_requests": warm,
                 "p50_ms": percentile(&http_ms, 50.0), "p99_ms": percentile(&http_ms, 99.0),
                 "max_ms": http_ms.last()},
    });
    let below_5ms = || Target::Below {
        max: 5.0,
        what: "p99 ms".into(),
    };
    Ok(vec![
        Row::new(
            "audit",
            format!("inclusion proof at {size} events, AuditTree::inclusion_proof (what the route calls): p99"),
            percentile(&fn_ms, 99.0),
            "ms",
        )
        .beside("p50", percentile(&fn_ms, 50.0))
        .target(below_5ms())
        .detail(proof_detail.clone()),
        Row::new(
            "audit",
            format!("inclusion proof at {size} events, GET /v1/ledger/proof/inclusion, 1 client: p99"),
            percentile(&http_ms, 99.0),
            "ms",
        )
        .beside("p50", percentile(&http_ms, 50.0))
        .target(below_5ms())
        .detail(proof_detail),
        Row::new(
            "audit",
            format!("audit verify (the CLI's verifier over HTTP), {size} events"),
            rate(verified.elapsed),
            "events/s",
        )
        .beside("read_all (read + decode), same log", rate(read_all_time))
        .target(Target::RatioAtLeast { min: 0.5 })
        .detail(json!({
            "events": events,
            "verify_secs": verified.elapsed.as_secs_f64(),
            "read_all_secs": read_all_time.as_secs_f64(),
            "persons": verified.persons,
            "generate_secs": generated.secs,
        })),
        Row::new(
            "audit",
            format!("audit verify, {size} events (vs fetching the pages alone)"),
            rate(verified.elapsed),
            "events/s",
        )
        .beside(
            "GET /v1/ledger/entries pages, parsed, unchecked",
            rate(fetch_time),
        )
        .detail(json!({
            "entries_fetch_secs": fetch_time.as_secs_f64(),
            "page": ENTRIES_PAGE,
            "pages_in_flight": PAGES_IN_FLIGHT,
        })),
        Row::new(
            "audit",
            format!("audit tree follower catching up with {events} events"),
            rate(catch_up),
            "events/s",
        )
        .beside("read_all (read + decode), same log", rate(read_all_time))
        .detail(json!({
            "events": events,
            "catch_up_secs": catch_up.as_secs_f64(),
        })),
        Row::new(
            "audit",
            format!("audit tree follower, {events} events (vs its bare parts)"),
            rate(catch_up),
            "events/s",
        )
        .beside("subscribe_stored + Tree::append, no store", rate(bare_time))
        .detail(json!({
            "catch_up_secs": catch_up.as_secs_f64(),
            "read_all_and_hash_secs": bare_time.as_secs_f64(),
        })),
    ])
}
