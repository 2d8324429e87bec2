//! Test harness for end-to-end tests: builds and runs the real `throughcare` binary on a
//! loopback port with a temp data dir, kills it (SIGKILL) on drop, and posts CloudEvents.

#![allow(dead_code)]

pub mod auth;
pub mod tamper;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The `throughcare` binary of this build, built once per test process.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test> -> target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "throughcare-cli",
            "--bin",
            "throughcare",
            "--target-dir",
        ])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build for the throughcare binary");
        assert!(status.success(), "building the throughcare binary failed");
        let bin = profile_dir.join("throughcare");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// `m` minutes before now, RFC 3339.
pub fn minutes_ago(m: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339()
}

/// `n` days before now, RFC 3339.
pub fn days_ago(n: i64) -> String {
    days_from_now(-n)
}

/// `n` days from now (before now when negative), RFC 3339.
pub fn days_from_now(n: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(n)).to_rfc3339()
}

/// The date `n` days from today (before today when negative), `YYYY-MM-DD`.
pub fn date_in_days(n: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(n))
        .date_naive()
        .to_string()
}

/// `$THROUGHCARE_VENV_BIN/<tool>` (the Python venv's `python`, `schemathesis`), or a
/// panic saying how to get it.
pub fn venv_tool(tool: &str) -> PathBuf {
    let hint = "run `export THROUGHCARE_VENV_BIN=\"$(bash scripts/python-venv.sh)\"` first \
                (scripts/test.sh does this for you)";
    let bin = std::env::var_os("THROUGHCARE_VENV_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("THROUGHCARE_VENV_BIN is not set: {hint}"));
    let path = bin.join(tool);
    assert!(
        path.is_file(),
        "{} does not exist: THROUGHCARE_VENV_BIN must be the venv's bin directory; {hint}",
        path.display()
    );
    path
}

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `throughcare keygen --name <name>` into the file `dir/<name>`: (signing key file,
/// verifier key text), as an operator would hand the verifier key to auditors out of band.
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(name);
    let o = Command::new(binary())
        .args(["keygen", "--name", name, "--out"])
        .arg(&file)
        .output()
        .expect("run throughcare keygen");
    assert!(o.status.success(), "keygen: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let vkey = out
        .split_whitespace()
        .find(|w| throughcare_tlog::VerifierKey::parse(w).is_ok())
        .unwrap_or_else(|| panic!("no verifier key in keygen's output: {out}"))
        .to_string();
    (file, vkey)
}

/// A running `throughcare serve`, killed with SIGKILL when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts `throughcare serve` on `data` on a free loopback port and waits until healthy.
    pub fn start(data: &Path) -> Server {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            // THROUGHCARE_TEST_LOG (e.g. `throughcare_nats=debug`) shows more of serve's log.
            .env(
                "RUST_LOG",
                std::env::var("THROUGHCARE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn throughcare serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .trim()
            .strip_prefix("throughcare listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_string();
        let server = Server {
            child,
            url,
            data: data.to_path_buf(),
        };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&self) {
        for _ in 0..200 {
            if std::net::TcpStream::connect(
                self.url
                    .trim_start_matches("http://")
                    .trim_start_matches("https://"),
            )
            .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("server at {} never accepted connections", self.url);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JSON HTTP client for one server.
#[derive(Clone)]
pub struct Client {
    http: ::reqwest::Client,
    pub url: String,
}

/// A response: status and JSON body (problem+json on errors).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Client {
    pub fn new(url: &str) -> Client {
        Client {
            http: ::reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                // The server closes a keep-alive connection idle for 10 s: never reuse one that
                // old, or a request may be sent as the server closes it.
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
            url: url.to_string(),
        }
    }

    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>) -> Reply {
        let r = self
            .http
            .post(format!("{}/v1/events", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST /v1/events");
        Self::reply(r).await
    }

    pub async fn post(&self, event: &Value) -> Reply {
        let ct = if event.is_array() {
            "application/cloudevents-batch+json"
        } else {
            "application/cloudevents+json"
        };
        self.post_raw(ct, serde_json::to_vec(event).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        Self::reply(r).await
    }

    async fn reply(r: ::reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Reply {
            status,
            content_type,
            body,
        }
    }
}

/// A CloudEvent with the given type suffix (e.g. "referral.received"), id and data.
pub fn event(kind: &str, id: &str, time: &str, data: Value) -> Value {
    throughcare_synthetic::cloudevent("urn:throughcare:test:e2e", id, kind, time, data)
}

/// A `referral.received` about `person` (any person reference) at `prison` from a
/// `referrer` kind, with the synthetic defaults of [`throughcare_synthetic::data`].
pub fn referral(
    id: &str,
    time: &str,
    person: Value,
    referral_id: &str,
    referrer: &str,
    prison: &str,
) -> Value {
    let data = throughcare_synthetic::data::referral_received(referral_id, referrer, prison);
    event(
        "referral.received",
        id,
        time,
        throughcare_synthetic::with_person(data, person),
    )
}

/// A synthetic NHS number (999 range, passes Modulus 11), unique per `seed` below
/// [`throughcare_synthetic::NHS_SEEDS`].
pub fn nhs_number(seed: u64) -> String {
    throughcare_synthetic::nhs_number(seed)
}

/// A synthetic NOMIS number, unique per `seed`.
pub fn nomis(seed: u64) -> String {
    throughcare_synthetic::nomis(seed)
}

impl Client {
    /// Posts one event (or a batch, given an array); `None` when the server cannot be
    /// reached (e.g. it was killed).
    pub async fn try_post(&self, event: &Value) -> Option<(u16, Value)> {
        let ct = if event.is_array() {
            "application/cloudevents-batch+json"
        } else {
            "application/cloudevents+json"
        };
        let r = self
            .http
            .post(format!("{}/v1/events", self.url))
            .header("content-type", ct)
            .body(serde_json::to_vec(event).unwrap())
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        let body = r.json().await.ok()?;
        Some((status, body))
    }
}
