//! [`JetStreamLog`]: the ledger's [`EventLog`] on one JetStream stream that holds the
//! events, the submission records and the identity claims. The layout and the protocol are
//! described in the crate documentation; this module connects, checks the stream and
//! hands each call to the part that does it:
//!
//! - [`setup`]: the stream's configuration and the checks of an existing one;
//! - [`reading`]: gets by subject and sequence, a person's history, positions;
//! - [`identity`]: identity claims (who owns an identifier);
//! - [`submissions`]: idempotency records (what was recorded for a (source, id));
//! - [`append`]: the writer task that turns appends into atomic batches.

mod append;
mod identity;
mod reading;
mod setup;
mod submissions;

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::Client;
use async_trait::async_trait;
use futures::stream::BoxStream;
use throughcare_events::{Hash, Identifier, PersonId, RecordedEvent};
use throughcare_ledger::{AppendRequest, Appended, Error, EventLog, PriorSubmission};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::cache::HistoryCache;
use crate::config::{JetStreamConfig, Violations};
use crate::error::{Attempt, JetStreamError};
use crate::records::{STREAM, SUBJECT_PREFIX};
use crate::stats::{Counters, Stats};
use crate::version::check_server_version;

pub use append::{CLAIM_ROOM, MAX_BATCH_MESSAGES};
pub(crate) use reading::decode_message;
pub(crate) use setup::{
    ensure_stream, kept_stream, source_api_error, stream_problems, transient_api,
};

/// The JetStream event log. Cloning shares the connection and the writer task.
#[derive(Clone)]
pub struct JetStreamLog {
    pub(crate) inner: Arc<Inner>,
}

/// What the handles own: the shared state, and the way into the writer task (which stops
/// when the last handle is dropped).
pub(crate) struct Inner {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<append::Job>,
}

impl Deref for Inner {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// State shared by the handles, the readers and the writer task.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) js: jetstream::Context,
    pub(crate) stream: stream::Stream,
    pub(crate) cache: HistoryCache,
    /// Facts learnt by reads and by this process's own appends, so an append seldom has
    /// to read first. Claims and submission records never change once stored, so those
    /// are certain; a person's tail may be overtaken by another process, which the
    /// server's per-subject check catches.
    pub(crate) hints: Mutex<Hints>,
    /// How many `read_all` head requests are in flight; the writer waits for 0 before it
    /// publishes, so that an append made after `read_all` was called is never counted in
    /// its head.
    pub(crate) heads_in_flight: watch::Sender<usize>,
    pub(crate) counters: Counters,
    pub(crate) config: JetStreamConfig,
}

/// A person's last event: stream sequence, position, hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PersonTail {
    pub seq: u64,
    pub position: u64,
    pub hash: Hash,
}

impl PersonTail {
    pub const NONE: PersonTail = PersonTail {
        seq: 0,
        position: 0,
        hash: Hash::ZERO,
    };
}

/// See [`Shared::hints`]. Bounded: cleared when it grows past its limit (it is only a
/// shortcut; everything in it can be read again).
#[derive(Default)]
pub(crate) struct Hints {
    pub persons: HashMap<PersonId, PersonTail>,
    /// Claim subject -> owner.
    pub claims: HashMap<String, PersonId>,
    /// Submission subject -> record.
    pub submissions: HashMap<String, PriorSubmission>,
}

/// Entries of each map in [`Hints`] before it is cleared.
const MAX_HINTS: usize = 200_000;

impl Hints {
    pub fn person(&mut self, person: PersonId, tail: PersonTail) {
        if self.persons.len() >= MAX_HINTS {
            self.persons.clear();
        }
        let e = self.persons.entry(person).or_insert(tail);
        if tail.seq > e.seq {
            *e = tail;
        }
    }
    pub fn claim(&mut self, subject: String, owner: PersonId) {
        if self.claims.len() >= MAX_HINTS {
            self.claims.clear();
        }
        self.claims.insert(subject, owner);
    }
    pub fn submission(&mut self, subject: String, prior: PriorSubmission) {
        if self.submissions.len() >= MAX_HINTS {
            self.submissions.clear();
        }
        self.submissions.insert(subject, prior);
    }
}

pub(crate) fn unavailable(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {detail}"))
}

impl JetStreamLog {
    /// Connects with default settings (one replica).
    pub async fn connect(url: &str) -> Result<Self, JetStreamError> {
        Self::connect_with(JetStreamConfig::new(url)).await
    }

    /// Connects, applies the server version policy, creates (or checks) the stream and
    /// starts the writer task. Needs a Tokio runtime.
    pub async fn connect_with(config: JetStreamConfig) -> Result<Self, JetStreamError> {
        let url = config.url.clone();
        let violations = Violations::new();
        let noted = violations.clone();
        let client = config
            .reconnecting("")
            .await?
            .request_timeout(Some(config.request_timeout))
            .event_callback(move |event| {
                noted.note(&event);
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!("NATS connection (re)established")
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS connection lost; reconnecting")
                        }
                        // A permissions violation or a refused reconnect: the server's
                        // config does not give this user what the ledger needs.
                        async_nats::Event::ServerError(e) => {
                            tracing::error!(error = %e, "the NATS server reported an error")
                        }
                        other => tracing::info!(event = %other, "NATS connection event"),
                    }
                }
            })
            .connect(config.servers())
            .await
            .map_err(|e| config.connect_error(e))?;
        let info = client.server_info();
        check_server_version(&info.version)?;
        if !info.jetstream {
            return Err(JetStreamError::NoJetStream { url });
        }
        tracing::info!(version = %info.version, server = %info.server_name, "connected to nats-server");
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client.clone());
        // A user the server lets in without the rights the ledger needs: say so now, not
        // after `retry_for` of timeouts (the server drops what it forbids).
        tokio::select! {
            _ = js.get_stream(STREAM) => {}
            violation = violations.wait_for("") => return Err(config.not_permitted(&violation)),
        }
        setup::refuse_old_buckets(&js).await?;
        let deadline = Instant::now() + config.retry_for;
        let stream = ensure_stream(&js, setup::stream_config(&config), deadline).await?;
        let existing = &stream.cached_info().config;
        let problems = stream_problems(existing, SUBJECT_PREFIX);
        if !problems.is_empty() {
            return Err(JetStreamError::UnsafeStream {
                stream: STREAM.into(),
                problems: problems.join("; "),
            });
        }
        if let Some(detail) = setup::old_layout(existing) {
            return Err(JetStreamError::OldLayout {
                detail: format!("stream {STREAM}: {detail}"),
            });
        }
        if existing.num_replicas != config.replicas {
            tracing::warn!(
                existing = existing.num_replicas,
                configured = config.replicas,
                "stream {STREAM} exists with a different replica count; keeping it"
            );
        }
        let shared = Arc::new(Shared {
            client,
            js,
            stream,
            cache: HistoryCache::new(config.history_cache),
            hints: Mutex::new(Hints::default()),
            heads_in_flight: watch::channel(0).0,
            counters: Counters::default(),
            config,
        });
        let jobs = append::start(shared.clone());
        Ok(JetStreamLog {
            inner: Arc::new(Inner { shared, jobs }),
        })
    }

    /// What the backend had to do beyond the plain path so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The version the connected server reports.
    pub fn server_version(&self) -> String {
        self.inner.client.server_info().version
    }
}

impl Shared {
    /// Runs `op` until it succeeds, fails for good, or `retry_for` has passed.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let deadline = Instant::now() + self.config.retry_for;
        let mut pause = Duration::from_millis(25);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(why)) => {
                    if Instant::now() + pause > deadline {
                        return Err(unavailable(what, format!("{why} (gave up after retrying)")));
                    }
                    tracing::debug!(what, why = %why, "retrying");
                    Counters::bump(&self.counters.retries);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Refuses to write through a server older than the policy allows (the connection may
    /// have moved to another server of a cluster since connect).
    pub(crate) fn check_connected_version(&self) -> Result<(), Error> {
        let version = self.client.server_info().version;
        if version.is_empty() {
            return Ok(()); // disconnected: the publish will wait for a server and retry
        }
        check_server_version(&version).map_err(Error::from)
    }
}

#[async_trait]
impl EventLog for JetStreamLog {
    #[tracing::instrument(level = "debug", skip_all, fields(person = %request.person))]
    async fn append(&self, request: AppendRequest) -> Result<Vec<Appended>, Error> {
        let mut out = self.append_all(vec![request]).await?;
        Ok(out.pop().unwrap_or_default())
    }

    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<Vec<Appended>>, Error> {
        append::submit(&self.inner.jobs, &self.inner.shared, requests).await
    }

    async fn read_person(&self, person: PersonId, from: u64) -> Result<Vec<RecordedEvent>, Error> {
        self.inner.read_person(person, from).await
    }

    fn read_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        crate::consume::events(self.clone(), from, false)
    }

    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, Error> {
        self.inner.read_at(position).await
    }

    fn subscribe(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        crate::consume::events(self.clone(), from, true)
    }

    async fn head(&self) -> Result<u64, Error> {
        Ok(self.inner.last_event().await?.map_or(0, |t| t.position))
    }

    /// Two messages per event (its submission record and itself), with room left for a
    /// few identity claims, in one atomic batch of [`MAX_BATCH_MESSAGES`].
    fn max_batch_events(&self) -> usize {
        (MAX_BATCH_MESSAGES - CLAIM_ROOM) / 2
    }

    async fn lookup_identifier(&self, identifier: &Identifier) -> Result<Option<PersonId>, Error> {
        self.inner.owner_of(identifier).await
    }

    async fn lookup_submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<PriorSubmission>, Error> {
        self.inner.submission(source, id).await
    }
}
