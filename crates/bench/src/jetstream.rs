//! The JetStream backend in the benchmarks: a nats-server of our own (the binary from
//! `scripts/nats-server.sh`, on a free 127.0.0.1 port, a temporary store, killed by the
//! process id we started), with or without `jetstream { sync_interval: always }`, and the
//! write path over `throughcare_nats::JetStreamLog`.
//!
//! The raw baseline (async-nats publishing the same bytes, up to 1024 acks in flight) is
//! not measured here: only crates/nats may import async-nats, so it needs a function there
//! (see the report row's note).

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use throughcare_ledger::EventLog;
use throughcare_nats::{JetStreamConfig, JetStreamLog};

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
