//! Errors of the JetStream backend, and how they map onto the ledger's [`Error`].

use throughcare_ledger::Error;

/// Why the JetStream log could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// No connection to the NATS server.
    #[error("cannot connect to NATS at {url}: {detail}")]
    Connect { url: String, detail: String },
    /// The server refused this process's credentials (or their absence), or lets the user
    /// in without the permissions throughcare needs. Waiting will not help: fix
    /// `--nats-creds` or the user's entry in the server's config.
    #[error(
        "the NATS server at {url} does not let throughcare in: {detail}; check --nats-creds \
         and the user's entry in the server's config (see deploy/ACCESS.md)"
    )]
    Unauthorized { url: String, detail: String },
    /// A credentials or TLS CA file that cannot be used (unreadable, or neither a `.creds`
    /// file nor a user nkey seed). Nothing was sent to the server.
    #[error("cannot connect to NATS with {}: {detail}", path.display())]
    Credentials {
        path: std::path::PathBuf,
        detail: String,
    },
    /// The server is older than the ledger accepts.
    #[error(
        "nats-server {found} is too old: throughcare needs nats-server {minimum} or newer, because \
         every append is one atomic batch publish (ADR-50, added in 2.12; 2.10.20-2.10.22 also \
         lost acknowledged writes when the server process crashed); upgrade the server"
    )]
    TooOld { found: String, minimum: String },
    /// The stream was written by an older throughcare (KV buckets for claims and submission
    /// intents, no atomic batches), which this version cannot read or extend.
    #[error(
        "the JetStream data was written by an older throughcare ({detail}); export it with that \
         version (`throughcare export`) into a fresh ledger, or point --nats at a server without \
         a THROUGHCARE stream"
    )]
    OldLayout { detail: String },
    /// One append would need more messages than one atomic batch may hold.
    #[error("{0}")]
    TooLarge(String),
    /// The server did not say which version it is, so the version policy cannot be applied.
    #[error("the NATS server did not report a usable version ({reported:?}); refusing to use it")]
    UnknownVersion { reported: String },
    /// The server runs without JetStream.
    #[error("the NATS server at {url} does not have JetStream enabled (start it with -js)")]
    NoJetStream { url: String },
    /// The stream or a KV bucket exists with a configuration that could lose or rewrite events.
    #[error("JetStream stream {stream} is not safe for the ledger: {problems}")]
    UnsafeStream { stream: String, problems: String },
    /// Setting up the stream or the buckets failed.
    #[error("cannot set up JetStream {what}: {detail}")]
    Setup { what: String, detail: String },
}

impl JetStreamError {
    /// True for errors that retrying cannot cure (a refused credential, an unusable
    /// credentials file, an old or unsafe server): report them at once. Only
    /// [`JetStreamError::Connect`] and [`JetStreamError::Setup`] may be transient.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            JetStreamError::Connect { .. } | JetStreamError::Setup { .. }
        )
    }
}

impl From<JetStreamError> for Error {
    fn from(e: JetStreamError) -> Self {
        match e {
            // The request itself is too large: retrying cannot help (422, naming the limit).
            JetStreamError::TooLarge(detail) => Error::Invalid(vec![throughcare_events::Problem {
                pointer: String::new(),
                detail,
            }]),
            e => Error::Unavailable(e.to_string()),
        }
    }
}

/// One attempt of an operation that may be retried.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// A transient failure (timeout, no responders while a server restarts, disconnected):
    /// the same operation may be tried again.
    Retry(String),
    /// A final answer.
    Fail(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Fail(e)
    }
}
