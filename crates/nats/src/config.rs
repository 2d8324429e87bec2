//! How to reach NATS and how patient to be with it.

use std::time::Duration;

/// Settings of a [`crate::JetStreamLog`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// `nats://HOST:PORT` (several may be given comma-separated, for a cluster).
    pub url: String,
    /// Replicas of the stream and the KV buckets when this process creates them: 1 on one
    /// server, 3 in a 3-node cluster. Existing streams keep theirs.
    pub replicas: usize,
    /// `Nats-Msg-Id` dedupe window of the stream when this process creates it (`None`: the
    /// server's default, 2 minutes). Permanent idempotency does not depend on it.
    pub duplicate_window: Option<Duration>,
    /// How long one request (publish ack, KV write, message get) may take.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying through transient failures (a server restart,
    /// a leader election) before it reports the ledger unavailable.
    pub retry_for: Duration,
    /// Client name shown by the server (`nats server report connections`).
    pub client_name: String,
    /// How many persons' histories `read_person` keeps in memory (0: none). Events never
    /// change, so a cached history only needs what came after it: one get when nothing did.
    pub history_cache: usize,
}

impl JetStreamConfig {
    pub fn new(url: impl Into<String>) -> Self {
        JetStreamConfig {
            url: url.into(),
            replicas: 1,
            duplicate_window: None,
            request_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
            client_name: "throughcare".into(),
            history_cache: 4096,
        }
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
}
