//! The JetStream backend in the benchmarks: a nats-server of our own (the binary from
//! `scripts/nats-server.sh`, on a free 127.0.0.1 port, a temporary store, killed by the
//! process id we started), with or without `jetstream { sync_interval: always }`, and the
//! write path over `throughcare_nats::JetStreamLog`, beside its raw baseline on the same
//! server: async-nats publishing the same stored bytes with up to 1024 acks in flight
//! ([`throughcare_nats::raw_publish_baseline`]; only crates/nats may import async-nats).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use throughcare_events::StoredBody;
use throughcare_ledger::EventLog;
use throughcare_nats::{raw_publish_baseline, JetStreamConfig, JetStreamLog};

/// The script that provides the pinned nats-server (honours `NATS_SERVER_BIN`).
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/nats-server.sh");

/// Path of the nats-server binary, or why there is none.
pub fn server_binary() -> Result<PathBuf> {
    let out = Command::new("bash")
        .arg(SCRIPT)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {SCRIPT}"))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        bail!(
            "scripts/nats-server.sh found no nats-server: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(path))
}

/// One nats-server process with JetStream on 127.0.0.1, killed on drop.
pub struct NatsServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl NatsServer {
    /// Starts a server storing under `dir`; `sync_always` adds
    /// `jetstream { sync_interval: always }` (fsync before every acknowledgement).
    pub fn start(bin: &Path, dir: &Path, sync_always: bool) -> Result<NatsServer> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let store = dir.join("store");
        let sync = if sync_always {
            "\n  sync_interval: always"
        } else {
            ""
        };
        let conf = dir.join("nats-server.conf");
        std::fs::write(
            &conf,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: {:?}{sync}\n}}\n",
                store.display().to_string()
            ),
        )?;
        let log = dir.join("nats-server.log");
        let out = File::create(&log)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut server = NatsServer { child, port, log };
        let began = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "nats-server exited at start ({status}): {}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            if began.elapsed() > Duration::from_secs(20) {
                bail!("nats-server did not listen on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // `Child::kill` signals exactly the process we spawned (by its pid).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects the ledger's JetStream backend to `url`.
pub async fn connect(url: &str) -> Result<Arc<dyn EventLog>> {
    let log =
        JetStreamLog::connect_with(JetStreamConfig::new(url).client_name("throughcare-bench"))
            .await
            .with_context(|| format!("connect the JetStream backend to {url}"))?;
    Ok(Arc::new(log))
}

/// Acknowledgements the raw baseline keeps in flight (issue 5: "up to 1024").
pub const RAW_IN_FLIGHT: usize = 1024;

/// The raw baseline's messages from a write-path run's stored values (hash ++ stored body,
/// in position order): exactly the stored body the ledger published as each payload, on
/// `baseline.person.<ULID>`, one subject per person as the ledger's stream has.
pub fn baseline_messages(stored: &[(u64, Vec<u8>)]) -> Result<Vec<(String, Vec<u8>)>> {
    stored
        .iter()
        .map(|(position, value)| {
            let body = value
                .get(32..)
                .with_context(|| format!("stored value of position {position} is too short"))?;
            let event = StoredBody::decode(*position, body)
                .with_context(|| format!("decode the stored body of position {position}"))?;
            Ok((
                format!("baseline.person.{}", event.person_id),
                body.to_vec(),
            ))
        })
        .collect()
}

/// Publishes `messages` `reps` times with bare async-nats (each time to a fresh stream on
/// the server at `url`, deleted afterwards) and returns each run's events/s.
pub async fn raw_baseline(
    url: &str,
    messages: &[(String, Vec<u8>)],
    reps: usize,
) -> Result<Vec<f64>> {
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let (acked, elapsed) = raw_publish_baseline(url, messages, RAW_IN_FLIGHT)
            .await
            .context("raw async-nats publish baseline")?;
        ensure!(
            acked == messages.len() as u64,
            "the raw baseline acknowledged {acked} of {} messages",
            messages.len()
        );
        rates.push(acked as f64 / elapsed.as_secs_f64());
    }
    Ok(rates)
}

/// Appends `people` synthetic ten-event journeys to a JetStream log (see
/// [`crate::data::append_journeys`]). Returns the events written.
pub async fn generate(log: Arc<dyn EventLog>, people: u64, concurrency: usize) -> Result<u64> {
    crate::data::append_journeys(log, 0, people, concurrency).await
}

/// `EventLog::read_all(1)` consumed to the end (read + `StoredBody::decode` + header
/// checks, no fold): the events read and the time it took.
pub async fn read_all(log: &dyn EventLog) -> Result<(u64, Duration)> {
    use futures::StreamExt;
    let began = Instant::now();
    let mut events = log.read_all(1);
    let mut n = 0u64;
    while let Some(e) = events.next().await {
        e?;
        n += 1;
    }
    Ok((n, began.elapsed()))
}
