//! How to reach NATS, as whom, and how patient to be with it.
//!
//! Every connection this crate opens (the log's, the access log's, the submit service's,
//! the HMPPS consumer's, the checkpoint publisher's) is built by
//! [`JetStreamConfig::reconnecting`] so that credentials, TLS, the connect timeout and the
//! reconnect policy apply everywhere alike.
//!
//! `--nats-creds FILE` holds one of two things, told apart by content:
//!
//! - a NATS `.creds` file as `nsc` writes it (`-----BEGIN NATS USER JWT-----` ... and the
//!   user's nkey seed), for servers in operator/JWT mode;
//! - just a user nkey seed (one line `SU...`, as `nk -gen user` or `nsc generate nkey
//!   --user` prints), for a plain server config whose users are listed by public nkey
//!   (`deploy/nats-accounts.conf`).
//!
//! Anything else is refused with [`JetStreamError::Credentials`] before connecting, and a
//! server that refuses the connection answers [`JetStreamError::Unauthorized`] at once
//! (never a retry loop).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectError, ConnectErrorKind, ConnectOptions, Event, ServerError};
use tokio::sync::watch;

use crate::JetStreamError;

/// Settings of a [`crate::JetStreamLog`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// `nats://HOST:PORT` (several may be given comma-separated, for a cluster).
    pub url: String,
    /// Replicas of the event and access-log streams when this process creates them: 1 on one
    /// server, 3 in a 3-node cluster. Existing streams keep theirs.
    pub replicas: usize,
    /// `Nats-Msg-Id` dedupe window of the stream when this process creates it (`None`: the
    /// server's default, 2 minutes). Permanent idempotency does not depend on it.
    pub duplicate_window: Option<Duration>,
    /// How long one request (a batch's ack, a message get, an API call) may take before
    /// it is retried. Short, because it is also how long a request sent to a stream
    /// leader that has just died waits: nats-server answers nothing for it, and every
    /// request the ledger makes is safe to repeat.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying through transient failures (a server restart,
    /// a leader election) before it reports the ledger unavailable.
    pub retry_for: Duration,
    /// Client name shown by the server (`nats server report connections`).
    pub client_name: String,
    /// How many persons' histories `read_person` keeps in memory (0: none). Events never
    /// change, so a cached history only needs what came after it: one get when nothing did.
    pub history_cache: usize,
    /// Credentials of this process's NATS user: a `.creds` file (JWT + nkey seed) or a
    /// file holding just a user nkey seed (`SU...`). `None`: connect without credentials.
    pub creds: Option<PathBuf>,
    /// PEM file of the CA that signed the server's certificate; when set, TLS is required.
    pub tls_ca: Option<PathBuf>,
}

impl JetStreamConfig {
    /// The default of [`JetStreamConfig::request_timeout`]: a batch's ack takes
    /// milliseconds (tens with `sync_interval: always`), so a second is far above any
    /// answer and bounds the stall after a leader is lost to the election plus a second
    /// (measured in tests/tests/availability.rs).
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default of [`JetStreamConfig::retry_for`].
    pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(30);

    pub fn new(url: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            replicas: 1,
            duplicate_window: None,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            retry_for: Self::DEFAULT_RETRY_FOR,
            client_name: "throughcare".into(),
            history_cache: 4096,
            creds: None,
            tls_ca: None,
        }
    }

    /// How long connecting (TCP, TLS, the NATS handshake) may take: at least 5 s, which a
    /// remote TLS server needs more than a request does.
    pub fn connect_timeout(&self) -> Duration {
        self.request_timeout.max(Duration::from_secs(5))
    }

    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = Some(window);
        self
    }

    pub fn history_cache(mut self, persons: usize) -> Self {
        self.history_cache = persons;
        self
    }

    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Connects as the user of this `.creds` or nkey seed file (`--nats-creds`).
    pub fn creds(mut self, path: impl Into<PathBuf>) -> Self {
        self.creds = Some(path.into());
        self
    }

    /// Requires TLS, trusting the CA certificates in this PEM file (`--nats-tls-ca`).
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// The server URLs of [`JetStreamConfig::url`] (comma-separated for a cluster).
    pub(crate) fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Connect options for one of this process's connections, named `<client_name><role>`:
    /// credentials and TLS, [`JetStreamConfig::connect_timeout`], and reconnecting forever
    /// with a delay growing by 100 ms per attempt up to 2 s (a server restart or a cluster
    /// election is waited out, never given up on). Callers add request timeouts and event
    /// callbacks.
    pub(crate) async fn reconnecting(&self, role: &str) -> Result<ConnectOptions, JetStreamError> {
        Ok(self
            .connect_options()
            .await?
            .name(format!("{}{role}", self.client_name))
            .connection_timeout(self.connect_timeout())
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(2_000))
            }))
    }

    /// Connect options carrying this configuration's credentials and TLS settings (and
    /// nothing else: [`JetStreamConfig::reconnecting`] adds the rest).
    async fn connect_options(&self) -> Result<ConnectOptions, JetStreamError> {
        let mut options = ConnectOptions::new();
        if let Some(path) = &self.creds {
            options = match load_credentials(path).await? {
                Credentials::Jwt(contents) => {
                    options
                        .credentials(&contents)
                        .map_err(|e| JetStreamError::Credentials {
                            path: path.clone(),
                            detail: format!("not a usable .creds file: {e}"),
                        })?
                }
                Credentials::Seed(seed) => options.nkey(seed),
            };
        }
        if let Some(ca) = &self.tls_ca {
            if let Err(e) = tokio::fs::metadata(ca).await {
                return Err(JetStreamError::Credentials {
                    path: ca.clone(),
                    detail: format!("cannot read the TLS CA certificate file: {e}"),
                });
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        Ok(options)
    }

    /// What a failed connect means: the server refusing these credentials is
    /// [`JetStreamError::Unauthorized`] (waiting will not help); anything else is
    /// [`JetStreamError::Connect`].
    pub(crate) fn connect_error(&self, e: ConnectError) -> JetStreamError {
        match e.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                let given = match &self.creds {
                    Some(path) => format!("the credentials in {}", path.display()),
                    None => "no credentials (pass --nats-creds FILE)".to_string(),
                };
                JetStreamError::Unauthorized {
                    url: self.url.clone(),
                    detail: format!("{e}; this process connected with {given}"),
                }
            }
            _ => JetStreamError::Connect {
                url: self.url.clone(),
                detail: e.to_string(),
            },
        }
    }
}

/// The permission violations the server reported on one connection (the last few), so
/// that a user without the rights the ledger needs is named at once instead of surfacing
/// as timeouts: the server drops a forbidden publish or subscription and says so only in
/// an asynchronous `-ERR`.
#[derive(Clone)]
pub(crate) struct Violations(Arc<watch::Sender<Vec<String>>>);

impl Violations {
    pub(crate) fn new() -> Self {
        Violations(Arc::new(watch::channel(Vec::new()).0))
    }

    /// Feeds one connection event (call from the connection's event callback).
    pub(crate) fn note(&self, event: &Event) {
        if let Event::ServerError(ServerError::Other(text)) = event {
            if text
                .to_ascii_lowercase()
                .starts_with("permissions violation")
            {
                self.0.send_modify(|seen| {
                    if seen.len() >= 16 {
                        seen.remove(0);
                    }
                    seen.push(text.clone());
                });
            }
        }
    }

    /// Waits for a reported violation containing `needle` (`""`: any) and returns it.
    pub(crate) async fn wait_for(&self, needle: &str) -> String {
        let mut seen = self.0.subscribe();
        let found = seen
            .wait_for(|v| v.iter().any(|t| t.contains(needle)))
            .await
            .map(|v| v.iter().find(|t| t.contains(needle)).cloned());
        match found {
            Ok(Some(text)) => text,
            // The sender lives in `self`, so it cannot be gone while we wait.
            _ => std::future::pending().await,
        }
    }
}

impl JetStreamConfig {
    /// [`JetStreamError::Unauthorized`] for a connected user that lacks a permission.
    pub(crate) fn not_permitted(&self, violation: &str) -> JetStreamError {
        let who = match &self.creds {
            Some(path) => format!("the user of {}", path.display()),
            None => "this connection (no --nats-creds given)".to_string(),
        };
        JetStreamError::Unauthorized {
            url: self.url.clone(),
            detail: format!(
                "connected, but {who} lacks a permission throughcare needs: {violation}"
            ),
        }
    }
}

/// What a credentials file turned out to hold.
enum Credentials {
    /// A `.creds` file: user JWT and nkey seed (operator/JWT mode).
    Jwt(String),
    /// A bare user nkey seed (`SU...`).
    Seed(String),
}

const JWT_MARKER: &str = "BEGIN NATS USER JWT";

/// Reads `path` and tells a `.creds` file from a bare user seed; refuses anything else,
/// naming what it found (never the secret itself).
async fn load_credentials(path: &Path) -> Result<Credentials, JetStreamError> {
    let refuse = |detail: String| JetStreamError::Credentials {
        path: path.to_path_buf(),
        detail,
    };
    let contents = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if contents.contains(JWT_MARKER) {
        return Ok(Credentials::Jwt(contents));
    }
    let lines: Vec<&str> = contents
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [seed] if seed.starts_with("SU") => match nkeys::KeyPair::from_seed(seed) {
            Ok(_) => Ok(Credentials::Seed(seed.to_string())),
            Err(e) => Err(refuse(format!(
                "it looks like a user nkey seed but is not a valid one ({e})"
            ))),
        },
        [seed] if seed.starts_with('S') && seed.len() == 58 => Err(refuse(format!(
            "it holds an nkey seed of another kind ({}...), not a user seed (SU...)",
            seed.chars().take(2).collect::<String>()
        ))),
        [key] if key.starts_with('U') && key.len() == 56 => Err(refuse(
            "it holds a public user nkey (U...); the connection needs the user's seed (SU...), \
             which stays on this machine while the public key goes in the server config"
                .into(),
        )),
        [] => Err(refuse("it is empty".into())),
        _ => Err(refuse(
            "it is neither a NATS .creds file (with -----BEGIN NATS USER JWT-----) nor a file \
             holding just a user nkey seed (one line starting SU)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[tokio::test]
    async fn tells_a_creds_file_from_a_bare_seed() {
        let dir = tempfile::tempdir().unwrap();
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        // The layout nsc writes (the JWT is not checked here; the server checks it).
        let creds = format!(
            "-----BEGIN NATS USER JWT-----\n\
             eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln\n\
             ------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        );
        let path = write(dir.path(), "user.creds", &creds);
        assert!(matches!(
            load_credentials(&path).await,
            Ok(Credentials::Jwt(_))
        ));
        assert!(JetStreamConfig::new("nats://127.0.0.1:4222")
            .creds(&path)
            .connect_options()
            .await
            .is_ok());
        // A seed with surrounding blank lines and CRLF, as editors leave it.
        let path = write(dir.path(), "user.nk", &format!("\r\n{seed}\r\n\r\n"));
        match load_credentials(&path).await {
            Ok(Credentials::Seed(s)) => assert_eq!(s, seed),
            _ => panic!("a bare seed"),
        }
        // A .creds file whose seed section is damaged is refused before connecting.
        let broken = creds.replace(&seed, "SUNOTASEED");
        let path = write(dir.path(), "broken.creds", &broken);
        let err = JetStreamConfig::new("nats://127.0.0.1:4222")
            .creds(&path)
            .connect_options()
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, JetStreamError::Credentials { detail, .. } if detail.contains(".creds")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_tls_ca_is_refused_before_connecting() {
        let err = JetStreamConfig::new("nats://127.0.0.1:4222")
            .tls_ca("/nonexistent/ca.pem")
            .connect_options()
            .await
            .expect_err("refused");
        assert!(
            matches!(&err, JetStreamError::Credentials { .. }) && err.is_permanent(),
            "{err}"
        );
    }
}
