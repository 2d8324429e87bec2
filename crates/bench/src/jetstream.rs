//! The JetStream backend in the benchmarks: a nats-server of our own (the binary from
//! `scripts/nats-server.sh`, on a free 127.0.0.1 port, a temporary store, killed by the
//! process id we started), with or without `jetstream { sync_interval: always }`, and the
//! write path over `throughcare_nats::JetStreamLog`, beside its raw baseline on the same
//! server: async-nats publishing the same stored bytes with up to 1024 acks in flight
//! ([`throughcare_nats::raw_publish_baseline`]; only crates/nats may import async-nats).
//!
//! The server also serves its monitoring endpoint on a second loopback port, so that
//! [`write_costs`] can count what one recorded event costs the server by the server's own
//! counters (`/varz` `in_msgs`) and, with `sync_interval: always`, how many fsyncs it
//! takes (`strace -c` attached to the server's pid, when strace is there and allowed).

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
    /// The monitoring port (`/varz`).
    http_port: u16,
    log: PathBuf,
}

impl NatsServer {
    /// Starts a server storing under `dir`; `sync_always` adds
    /// `jetstream { sync_interval: always }` (fsync before every acknowledgement).
    pub fn start(bin: &Path, dir: &Path, sync_always: bool) -> Result<NatsServer> {
        std::fs::create_dir_all(dir)?;
        let (port, http_port) = {
            let a = TcpListener::bind("127.0.0.1:0")?;
            let b = TcpListener::bind("127.0.0.1:0")?;
            (a.local_addr()?.port(), b.local_addr()?.port())
        };
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
                "listen: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{http_port}\"\n\
                 jetstream {{\n  store_dir: {:?}{sync}\n}}\n",
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
        let mut server = NatsServer {
            child,
            port,
            http_port,
            log,
        };
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

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Messages the server has received from clients so far (`/varz` `in_msgs`): every
    /// publish, every message of a batch, every API request (gets, stream info).
    pub async fn in_msgs(&self) -> Result<u64> {
        let url = format!("http://127.0.0.1:{}/varz", self.http_port);
        let varz: serde_json::Value = reqwest::get(&url)
            .await
            .with_context(|| format!("GET {url}"))?
            .json()
            .await
            .with_context(|| format!("decode {url}"))?;
        varz["in_msgs"]
            .as_u64()
            .with_context(|| format!("{url} has no in_msgs"))
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

/// Acknowledgements the raw baseline keeps in flight (issue 5: "up to 1024"): the ceiling.
pub const RAW_IN_FLIGHT: usize = 1024;
/// The raw baseline at the write path's own concurrency (issue 11: "at the same number in
/// flight (64)").
pub const RAW_SAME_IN_FLIGHT: usize = 64;

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
    raw_baseline_with(url, messages, reps, RAW_IN_FLIGHT).await
}

/// As [`raw_baseline`], with up to `in_flight` acks outstanding.
pub async fn raw_baseline_with(
    url: &str,
    messages: &[(String, Vec<u8>)],
    reps: usize,
    in_flight: usize,
) -> Result<Vec<f64>> {
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let (acked, elapsed) = raw_publish_baseline(url, messages, in_flight)
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

/// What recording events cost the server, by its own counters.
#[derive(Debug, Clone, Copy)]
pub struct WriteCosts {
    pub events: u64,
    /// Client messages the server received per recorded event (`/varz` `in_msgs`),
    /// counting everything the write path sent: batch messages, gets, info requests.
    pub messages_per_event: f64,
    /// `fsync` + `fdatasync` calls of the server per recorded event (strace), or `None`
    /// when strace could not attach.
    pub fsyncs_per_event: Option<f64>,
    /// Batches the backend published per recorded event.
    pub batches_per_event: f64,
}

/// Appends `people` synthetic journeys (three identity claims and ten events each, as
/// [`crate::data::append_journeys`] does) with `concurrency` at once to a fresh server in
/// `dir` and reads the server's counters around it. The fsync count comes from `strace -c`
/// attached to the server for the appends only (it slows the server, so this run is not
/// timed).
pub async fn write_costs(
    bin: &Path,
    dir: &Path,
    sync_always: bool,
    people: u64,
    concurrency: usize,
) -> Result<WriteCosts> {
    let server = NatsServer::start(bin, dir, sync_always)?;
    let log = JetStreamLog::connect_with(
        JetStreamConfig::new(server.url()).client_name("throughcare-bench-costs"),
    )
    .await
    .context("connect the JetStream backend")?;
    let shared: Arc<dyn EventLog> = Arc::new(log.clone());
    let summary = dir.join("strace.txt");
    let mut tracer = Command::new("strace")
        .args(["-c", "-f", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&summary)
        .args(["-p", &server.pid().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    // strace needs a moment to attach to every thread.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.in_msgs().await?;
    let stats_before = log.stats();
    let events = crate::data::append_journeys(shared, 0, people, concurrency).await?;
    let after = server.in_msgs().await?;
    let batches = log.stats().batches - stats_before.batches;
    let fsyncs = match tracer.as_mut() {
        Some(t) => {
            // SIGINT detaches strace and makes it write its summary.
            let _ = Command::new("kill")
                .args(["-INT", &t.id().to_string()])
                .status();
            let _ = t.wait();
            std::fs::read_to_string(&summary)
                .ok()
                .and_then(|text| fsync_calls(&text))
        }
        None => None,
    };
    ensure!(events > 0, "no events recorded");
    Ok(WriteCosts {
        events,
        // The final `head()` of append_journeys is one request; leave it in (it is
        // part of what the call sent).
        messages_per_event: (after - before) as f64 / events as f64,
        fsyncs_per_event: fsyncs.map(|n| n as f64 / events as f64),
        batches_per_event: batches as f64 / events as f64,
    })
}

/// The number of fsync and fdatasync calls in a `strace -c` summary.
fn fsync_calls(summary: &str) -> Option<u64> {
    let mut total = None;
    for line in summary.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let name = cols.last().copied().unwrap_or_default();
        if name == "fsync" || name == "fdatasync" {
            // % time, seconds, usecs/call, calls, [errors,] syscall
            let calls = cols.get(3).and_then(|c| c.parse::<u64>().ok())?;
            *total.get_or_insert(0) += calls;
        }
    }
    // A summary without the two lines: attached, and none were made.
    total.or_else(|| summary.contains("total").then_some(0))
}

#[cfg(test)]
mod tests {
    use super::fsync_calls;

    #[test]
    fn counts_fsyncs_in_a_strace_summary() {
        let summary = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
             97.10    0.412000          41     10021           fsync\n\
              2.90    0.012300          30       410         3 fdatasync\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.424300          40     10431         3 total\n";
        assert_eq!(fsync_calls(summary), Some(10_431));
        let none = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.000000           0         0           total\n";
        assert_eq!(fsync_calls(none), Some(0));
        assert_eq!(
            fsync_calls("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted"),
            None
        );
    }
}
