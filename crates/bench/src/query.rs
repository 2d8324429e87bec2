//! Query and freshness over HTTP: the real router (`throughcare_server::serve`) wired as
//! `throughcare serve` wires it (embedded log, projector following the log, read models)
//! on 127.0.0.1:0, on a runtime of its own; clients on another runtime with keep-alive
//! HTTP/1.1 connections and a minimal client, so the client costs little of the 2 cores.
//! The server runs in open mode or with an auth file (`--auth`), and logs reads to the
//! embedded access log either way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use throughcare_events::Hash;
use throughcare_ledger::{
    AccessChainReport, AccessEntry, AccessFilter, AccessLog, AccessRecord, EmbeddedLog,
    Error as LedgerError, EventLog, Ledger,
};
use throughcare_projector::Projector;
use throughcare_server::{AppState, Authenticator};

use crate::data;
use crate::rebuild::{ledger_dir, readmodels_dir};

/// A server running on its own runtime and threads.
pub struct Server {
    pub addr: SocketAddr,
    /// The server's access log (to count the entries a load made).
    pub access: Arc<dyn AccessLog>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Serves the data directory `data` (ledger + read models) as `throughcare serve` in
    /// open mode.
    pub fn start(data: &Path) -> Result<Server> {
        Server::start_with(data, None, AccessKind::Durable)
    }

    /// As [`Server::start`], with `--auth auth_file` when given (every request then needs
    /// a principal's bearer token), and the access log `access`.
    pub fn start_with(data: &Path, auth_file: Option<&Path>, access: AccessKind) -> Result<Server> {
        let kind = access;
        let data = data.to_path_buf();
        let auth_file: Option<PathBuf> = auth_file.map(Path::to_path_buf);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("server-worker")
                    .build()?;
                runtime.block_on(async move {
                    let embedded = open_log(&ledger_dir(&data)).await?;
                    let access: Arc<dyn AccessLog> = match kind {
                        AccessKind::Durable => Arc::new(embedded.access_log()),
                        AccessKind::Memory => Arc::new(MemoryAccessLog::default()),
                    };
                    let log: Arc<dyn EventLog> = Arc::new(embedded);
                    let projector = Projector::open(&readmodels_dir(&data))?;
                    let ledger = Ledger::with_system_clock(log.clone());
                    let models = projector.read_models();
                    let projector_log = log.clone();
                    let projector_task = tokio::spawn(async move {
                        if let Err(e) = projector.run(projector_log).await {
                            eprintln!("bench server: projector stopped: {e}");
                        }
                    });
                    let access_handle = access.clone();
                    let mut state = AppState::new(ledger, models, access);
                    if let Some(file) = &auth_file {
                        state = state.with_auth(Authenticator::load(file).await?);
                    }
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                    let _ = addr_tx.send((listener.local_addr()?, access_handle));
                    throughcare_server::serve(listener, state, None, async {
                        let _ = stop_rx.await;
                    })
                    .await?;
                    projector_task.abort();
                    Ok(())
                })
            })?;
        let (addr, access) = match addr_rx.recv_timeout(Duration::from_secs(120)) {
            Ok(started) => started,
            // The thread ended before listening: its error says why.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e.context("the bench server did not start"),
                    _ => anyhow::anyhow!("the bench server did not start"),
                })
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("the bench server did not start within 120 s")
            }
        };
        Ok(Server {
            addr,
            access,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the bench server panicked"))??;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Which access log a bench server appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// The embedded one, as `throughcare serve` uses it: durable before the response.
    Durable,
    /// [`MemoryAccessLog`]: a reference only, to show what durability costs a read.
    Memory,
}

/// An access log that seals each entry into the hash chain (the same encoding and SHA-256
/// as a real one) but keeps nothing and writes nothing: no fsync, no group commit.
#[derive(Default)]
pub struct MemoryAccessLog {
    /// (last seq, its hash).
    head: std::sync::Mutex<(u64, Hash)>,
}

#[async_trait::async_trait]
impl AccessLog for MemoryAccessLog {
    async fn append(&self, record: AccessRecord) -> Result<AccessEntry, LedgerError> {
        let mut head = self.head.lock().expect("not poisoned");
        let (entry, _stored) = AccessEntry::seal(head.0 + 1, record, head.1);
        *head = (entry.seq, entry.hash);
        Ok(entry)
    }
    async fn query(&self, _filter: &AccessFilter) -> Result<Vec<AccessEntry>, LedgerError> {
        Ok(Vec::new())
    }
    async fn verify(&self) -> Result<AccessChainReport, LedgerError> {
        let (seq, hash) = *self.head.lock().expect("not poisoned");
        Ok(AccessChainReport {
            entries: seq,
            ok: true,
            head: (seq > 0).then_some(hash),
            broken_at: None,
        })
    }
    async fn head(&self) -> Result<u64, LedgerError> {
        Ok(self.head.lock().expect("not poisoned").0)
    }
}

/// Opens the embedded log, waiting (up to 30 s) for the writer threads of a server just
/// stopped on the same directory to let go of sled's lock: they end after the server.
async fn open_log(dir: &Path) -> Result<EmbeddedLog> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match EmbeddedLog::open(dir) {
            Ok(log) => return Ok(log),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One keep-alive HTTP/1.1 connection. Responses must carry Content-Length (axum's JSON
/// responses do); anything else is an error, never a guess.
pub struct Conn {
    stream: BufReader<TcpStream>,
    line: String,
    /// The `Authorization` header line sent with every request, if any.
    authorization: Option<String>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        Conn::open_as(addr, None).await
    }

    /// A connection whose every request carries `Authorization: Bearer <bearer>`.
    pub async fn open_as(addr: SocketAddr, bearer: Option<&str>) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
            line: String::new(),
            authorization: bearer.map(|t| format!("Authorization: Bearer {t}\r\n")),
        })
    }

    /// Sends one request and reads the whole response: (status, body).
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(a) = &self.authorization {
            head.push_str(a);
        }
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        head.push_str("\r\n");
        let w = self.stream.get_mut();
        w.write_all(head.as_bytes()).await?;
        if let Some((_, bytes)) = body {
            w.write_all(bytes).await?;
        }
        self.line.clear();
        self.stream.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", self.line))?;
        let mut length = None;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).await? == 0 {
                bail!("connection closed inside a response head");
            }
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let length = length.context("response without Content-Length")?;
        let mut out = vec![0; length];
        self.stream.read_exact(&mut out).await?;
        Ok((status, out))
    }
}

/// Waits until `/readyz` reports the read models at the head of the log; returns the head.
pub async fn wait_ready(addr: SocketAddr, patience: Duration) -> Result<u64> {
    let deadline = Instant::now() + patience;
    let mut conn = Conn::open(addr).await?;
    loop {
        let (status, body) = conn.request("GET", "/readyz", None).await?;
        let ready: serde_json::Value = serde_json::from_slice(&body)?;
        if status == 200 && ready["lag"] == 0 {
            return ready["head"].as_u64().context("/readyz without head");
        }
        ensure!(
            Instant::now() < deadline,
            "read models not caught up: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Latencies and throughput of one load run.
pub struct Load {
    /// Requests sent in all, warm-up included.
    pub requests: u64,
    /// Milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    pub requests_per_sec: f64,
    /// Mean response body size, bytes.
    pub mean_body_bytes: f64,
}

/// A small, fast, deterministic generator (xorshift64*), one per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `clients` connections each sending GETs of `path(random)` back to back for `warmup`
/// (not counted) then `measure`; every response must be 200.
pub async fn load(
    addr: SocketAddr,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Result<Load> {
    load_as(addr, None, clients, warmup, measure, path).await
}

/// As [`load`], every request with `Authorization: Bearer <bearer>` when given.
pub async fn load_as(
    addr: SocketAddr,
    bearer: Option<Arc<str>>,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> Result<Load> {
    let began = Instant::now();
    let counted_from = began + warmup;
    let end = counted_from + measure;
    let mut handles = Vec::new();
    for c in 0..clients {
        let path = path.clone();
        let bearer = bearer.clone();
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::open_as(addr, bearer.as_deref()).await?;
            let mut rng =
                Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut samples = Vec::new();
            let mut bytes = 0u64;
            let mut sent = 0u64;
            loop {
                let p = path(rng.next());
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let (status, body) = conn.request("GET", &p, None).await?;
                sent += 1;
                ensure!(
                    status == 200,
                    "GET {p} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                let t1 = Instant::now();
                if t0 >= counted_from && t1 <= end {
                    samples.push((t1 - t0).as_secs_f64() * 1e3);
                    bytes += body.len() as u64;
                }
            }
            Ok::<_, anyhow::Error>((samples, bytes, sent))
        }));
    }
    let mut latencies_ms = Vec::new();
    let mut bytes = 0u64;
    let mut requests = 0u64;
    for h in handles {
        let (samples, b, sent) = h.await??;
        latencies_ms.extend(samples);
        bytes += b;
        requests += sent;
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Load {
        requests,
        requests_per_sec: latencies_ms.len() as f64 / measure.as_secs_f64(),
        mean_body_bytes: bytes as f64 / latencies_ms.len().max(1) as f64,
        latencies_ms,
    })
}

/// Freshness samples: from an append's acknowledgement (the POST's 201 received) until
/// `GET .../journey?min_position=P` answers 200; and, as the baseline, the same GET
/// repeated at once (nothing left to wait for).
pub struct Freshness {
    pub fresh_ms: Vec<f64>,
    pub repeat_ms: Vec<f64>,
    pub post_ms: Vec<f64>,
}

/// `writers` concurrent writers post new synthetic journeys (people numbered from
/// `first_person`) over HTTP, one event at a time, and after each acknowledgement ask for
/// the person's journey at least as fresh as the acknowledged position; `samples` in all.
pub async fn freshness(
    addr: SocketAddr,
    writers: usize,
    samples: usize,
    first_person: u64,
    tag: &str,
) -> Result<Freshness> {
    let taken = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..writers {
        let taken = taken.clone();
        let tag = tag.to_string();
        handles.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut out = Freshness {
                fresh_ms: Vec::new(),
                repeat_ms: Vec::new(),
                post_ms: Vec::new(),
            };
            for k in 0.. {
                let n = first_person + (w + k * writers) as u64;
                for event in data::journey(&tag, n, Utc::now()) {
                    if taken.fetch_add(1, Ordering::Relaxed) >= samples {
                        return Ok::<_, anyhow::Error>(out);
                    }
                    let body = serde_json::to_vec(&event)?;
                    let t0 = Instant::now();
                    let (status, reply) = conn
                        .request(
                            "POST",
                            "/v1/events",
                            Some(("application/cloudevents+json", &body)),
                        )
                        .await?;
                    let acked = Instant::now();
                    ensure!(
                        status == 201,
                        "POST answered {status}: {}",
                        String::from_utf8_lossy(&reply)
                    );
                    let receipt: serde_json::Value = serde_json::from_slice(&reply)?;
                    let position = receipt["position"].as_u64().context("no position")?;
                    let person = receipt["person_id"].as_str().context("no person_id")?;
                    let path = format!("/v1/people/{person}/journey?min_position={position}");
                    let (status, reply) = conn.request("GET", &path, None).await?;
                    let fresh = Instant::now();
                    ensure!(
                        status == 200,
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&reply)
                    );
                    let (status, _) = conn.request("GET", &path, None).await?;
                    ensure!(status == 200, "repeated GET {path} answered {status}");
                    out.post_ms.push((acked - t0).as_secs_f64() * 1e3);
                    out.fresh_ms.push((fresh - acked).as_secs_f64() * 1e3);
                    out.repeat_ms.push(fresh.elapsed().as_secs_f64() * 1e3);
                }
            }
            Ok(out)
        }));
    }
    let mut all = Freshness {
        fresh_ms: Vec::new(),
        repeat_ms: Vec::new(),
        post_ms: Vec::new(),
    };
    for h in handles {
        let f = h.await??;
        all.fresh_ms.extend(f.fresh_ms);
        all.repeat_ms.extend(f.repeat_ms);
        all.post_ms.extend(f.post_ms);
    }
    for v in [&mut all.fresh_ms, &mut all.repeat_ms, &mut all.post_ms] {
        v.sort_by(f64::total_cmp);
    }
    Ok(all)
}
