//! [`JetStreamLog`]: the ledger's [`EventLog`] on a JetStream stream plus two KV buckets.
//! The protocol (intents, roll-forward, claims) is described in the crate documentation.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{
    self, context::PublishErrorKind, kv, message::PublishMessage, message::StreamMessage, stream,
};
use async_nats::{header, Client, HeaderMap};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use throughcare_events::{Hash, Identifier, PersonId, Problem, RecordedEvent, StoredBody};
use throughcare_ledger::{
    AppendRequest, Appended, Error, EventLog, ExpectedVersion, NewEvent, PriorSubmission,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cache::{History, HistoryCache};
use crate::config::{JetStreamConfig, Violations};
use crate::error::{Attempt, JetStreamError};
use crate::records::{
    identity_key, person_of_subject, subject_of, submission_key, Intent, Submission, HASH_HEADER,
    IDENTITY_BUCKET, PREV_SEQ_HEADER, STREAM, SUBJECT_PREFIX, SUBMISSIONS_BUCKET,
};
use crate::stats::{Counters, Stats};
use crate::version::check_server_version;

/// How often a key is re-read when it keeps changing under us before giving up.
const MAX_ROUNDS: usize = 16;
/// Largest value in the submissions bucket: an event body (at most 64 KiB as submitted, a
/// little more once wrapped) plus its record head.
const MAX_SUBMISSION_VALUE: i32 = 512 * 1024;

/// The JetStream event log. Cloning shares the connection.
#[derive(Clone)]
pub struct JetStreamLog {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    js: jetstream::Context,
    pub(crate) stream: stream::Stream,
    identity: kv::Store,
    submissions: kv::Store,
    cache: HistoryCache,
    /// How many `read_all` head requests are in flight; publishes wait for 0, so that an
    /// append made after `read_all` was called is never counted in its head.
    pub(crate) heads_in_flight: watch::Sender<usize>,
    counters: Counters,
    pub(crate) config: JetStreamConfig,
}

/// Outcome of publishing one event (with retries).
enum Published {
    /// Stored at this sequence (now, or by an earlier attempt of the same intent).
    Stored(u64),
    /// Not stored, and it never can be: another message took the slot it expected.
    Lost,
    /// The msg-id was stored, but with a different payload: a newer intent for the same
    /// submission replaced this one (after this one was found lost) and was published.
    Superseded,
}

/// The settled state of a submission key.
enum Found {
    Absent,
    Recorded(PriorSubmission),
    /// A pending intent that can never be published; `revision` for taking it over.
    Dead {
        revision: u64,
    },
}

/// Result of recording one new event.
enum One {
    Stored {
        position: u64,
        hash: Hash,
    },
    /// The same submission was recorded meanwhile (by a concurrent retry).
    Duplicate(PriorSubmission),
    /// Another event took the version this one expected.
    Lost,
}

/// Result of trying to store an intent.
enum Placed {
    /// Ours, at this KV revision.
    Mine(u64),
    /// The submission was already recorded (by someone else, or by a retry of ours).
    Taken(PriorSubmission),
}

fn stream_config(config: &JetStreamConfig) -> stream::Config {
    stream::Config {
        name: STREAM.into(),
        description: Some(
            "throughcare event ledger: one subject per person, append-only, never deleted".into(),
        ),
        subjects: vec![format!("{SUBJECT_PREFIX}*")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        duplicate_window: config.duplicate_window.unwrap_or_default(),
        ..Default::default()
    }
}

/// A KV bucket's stream, made by hand rather than by `create_key_value` so that reads go
/// to the stream leader (`allow_direct: false`: a replica may lag, and the create/CAS
/// protocol needs to read what it just lost to) and so that neither deletes nor purges
/// (nor rollups, which `deny_purge` refuses) can remove a claim.
fn kv_stream_config(bucket: &str, max_value: i32, config: &JetStreamConfig) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!(
            "throughcare {bucket}: create-only claims, never deleted"
        )),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_message_size: max_value,
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: false,
        deny_delete: true,
        deny_purge: true,
        allow_direct: false,
        ..Default::default()
    }
}

/// What makes an existing stream unfit to hold a log whose subjects are
/// `<prefix><id>` (the ledger's events, or the access log's entries): anything that could
/// drop or delete a message.
pub(crate) fn stream_problems(c: &stream::Config, prefix: &str) -> Vec<String> {
    let mut p = Vec::new();
    let subject = format!("{prefix}*");
    let wildcard = format!("{prefix}>");
    if !c.subjects.iter().any(|s| *s == subject || *s == wildcard) {
        p.push(format!(
            "its subjects {:?} do not include {subject}",
            c.subjects
        ));
    }
    if c.storage != stream::StorageType::File {
        p.push("it is not file-backed".into());
    }
    if !c.deny_delete {
        p.push("deny_delete is off".into());
    }
    if !c.deny_purge {
        p.push("deny_purge is off".into());
    }
    if c.retention != stream::RetentionPolicy::Limits {
        p.push("its retention is not Limits (messages would be removed)".into());
    }
    if c.max_age > Duration::ZERO
        || c.max_messages > 0
        || c.max_bytes > 0
        || c.max_messages_per_subject > 0
    {
        p.push("it has limits that would discard messages (max_age, max_msgs, max_bytes or max_msgs_per_subject)".into());
    }
    p
}

/// Whether a JetStream API error is worth retrying (503: temporarily unavailable, e.g. no
/// leader yet or a server restarting; 408: timed out).
pub(crate) fn transient_api(e: &jetstream::Error) -> bool {
    matches!(e.code(), 503 | 408)
}

pub(crate) fn source_api_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a jetstream::Error> {
    let mut cur = e.source();
    while let Some(s) = cur {
        if let Some(api) = s.downcast_ref::<jetstream::Error>() {
            return Some(api);
        }
        cur = s.source();
    }
    None
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

/// Reads a stored message back as a recorded event, checking the hash header against the
/// bytes and the subject against the body.
pub(crate) fn decode_message(
    seq: u64,
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: &[u8],
) -> Result<RecordedEvent, Error> {
    let e = StoredBody::decode(seq, payload)?;
    let stored = headers.and_then(|h| header_str(h, HASH_HEADER));
    if stored != Some(e.hash.to_hex().as_str()) {
        return Err(Error::Corrupt(format!(
            "hash mismatch at position {seq}: the stored bytes do not match their {HASH_HEADER} header"
        )));
    }
    if person_of_subject(subject) != Some(e.person_id) {
        return Err(Error::Corrupt(format!(
            "event at position {seq} belongs to person {} but is on subject {subject}",
            e.person_id
        )));
    }
    Ok(e)
}

fn unavailable(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {detail}"))
}

impl JetStreamLog {
    /// Connects with default settings (one replica).
    pub async fn connect(url: &str) -> Result<Self, JetStreamError> {
        Self::connect_with(JetStreamConfig::new(url)).await
    }

    /// Connects, applies the server version policy, and creates (or checks) the stream and
    /// the KV buckets.
    pub async fn connect_with(config: JetStreamConfig) -> Result<Self, JetStreamError> {
        let url = config.url.clone();
        let violations = Violations::new();
        let noted = violations.clone();
        let client = config
            .connect_options()
            .await?
            .name(&config.client_name)
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(2_000))
            })
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
        let deadline = Instant::now() + config.retry_for;

        let stream = ensure_stream(&js, stream_config(&config), deadline).await?;
        let problems = stream_problems(&stream.cached_info().config, SUBJECT_PREFIX);
        if !problems.is_empty() {
            return Err(JetStreamError::UnsafeStream {
                stream: STREAM.into(),
                problems: problems.join("; "),
            });
        }
        if stream.cached_info().config.num_replicas != config.replicas {
            tracing::warn!(
                existing = stream.cached_info().config.num_replicas,
                configured = config.replicas,
                "stream {STREAM} exists with a different replica count; keeping it"
            );
        }
        let mut stores = Vec::new();
        for (bucket, max_value) in [
            (IDENTITY_BUCKET, 1024),
            (SUBMISSIONS_BUCKET, MAX_SUBMISSION_VALUE),
        ] {
            let s =
                ensure_stream(&js, kv_stream_config(bucket, max_value, &config), deadline).await?;
            let c = &s.cached_info().config;
            if !c.deny_delete || c.max_age > Duration::ZERO || c.max_bytes > 0 {
                return Err(JetStreamError::UnsafeStream {
                    stream: format!("KV_{bucket}"),
                    problems: "claims could be deleted or expire (deny_delete off, or max_age/max_bytes set)".into(),
                });
            }
            let store = js
                .get_key_value(bucket)
                .await
                .map_err(|e| JetStreamError::Setup {
                    what: format!("KV bucket {bucket}"),
                    detail: e.to_string(),
                })?;
            stores.push(store);
        }
        let submissions = stores.pop().expect("two buckets");
        let identity = stores.pop().expect("two buckets");
        Ok(JetStreamLog {
            inner: Arc::new(Inner {
                client,
                js,
                stream,
                identity,
                submissions,
                cache: HistoryCache::new(config.history_cache),
                heads_in_flight: watch::channel(0).0,
                counters: Counters::default(),
                config,
            }),
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

    /// Runs `op` until it succeeds, fails for good, or `retry_for` has passed.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let deadline = Instant::now() + self.inner.config.retry_for;
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
                    Counters::bump(&self.inner.counters.retries);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Refuses to write through a server older than the policy allows (the connection may
    /// have moved to another server of a cluster since connect).
    fn check_connected_version(&self) -> Result<(), Error> {
        let version = self.inner.client.server_info().version;
        if version.is_empty() {
            return Ok(()); // disconnected: the publish will wait for a server and retry
        }
        check_server_version(&version).map_err(Error::from)
    }

    // ----- stream reads (leader gets: read-your-writes, also in a cluster) -----

    async fn get_message(
        &self,
        what: &str,
        request: impl Fn() -> stream::RawMessageBuilder,
    ) -> Result<Option<StreamMessage>, Error> {
        self.retrying(what, || {
            let builder = request();
            async move {
                match builder.send().await {
                    Ok(m) => Ok(Some(m)),
                    Err(e) => match e.kind() {
                        stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                        stream::LastRawMessageErrorKind::InvalidSubject => {
                            Err(Attempt::Fail(unavailable(what, "invalid subject")))
                        }
                        stream::LastRawMessageErrorKind::JetStream(api) if !transient_api(&api) => {
                            Err(Attempt::Fail(unavailable(what, api)))
                        }
                        _ => Err(Attempt::Retry(e.to_string())),
                    },
                }
            }
        })
        .await
    }

    async fn last_on_subject(&self, subject: &str) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.inner.stream;
        self.get_message("reading a person's last event", || {
            stream.raw_message_builder().last_by_subject(subject)
        })
        .await
    }

    /// The first message on `subject` at or after `seq`.
    async fn next_on_subject(
        &self,
        subject: &str,
        seq: u64,
    ) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.inner.stream;
        self.get_message("reading a person's event", || {
            stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(subject)
        })
        .await
    }

    async fn message_at(&self, seq: u64) -> Result<Option<StreamMessage>, Error> {
        let stream = &self.inner.stream;
        self.get_message("reading an event", || {
            stream.raw_message_builder().sequence(seq)
        })
        .await
    }

    /// The person's version (position of their last event, 0 for none) and the hash of
    /// that event.
    async fn head_of(&self, person: PersonId) -> Result<(u64, Hash), Error> {
        match self.last_on_subject(&subject_of(person)).await? {
            None => Ok((0, Hash::ZERO)),
            Some(m) => {
                let e = decode_message(m.sequence, &m.subject, Some(&m.headers), &m.payload)?;
                Ok((m.sequence, e.hash))
            }
        }
    }

    // ----- publishing -----

    /// Publishes an intent's event with its msg-id and expected sequence, retrying
    /// transient failures with the very same message. A 10071 (wrong last sequence) is
    /// not taken at its word: an earlier attempt whose ack was lost, or another process
    /// rolling the same intent forward, may have stored it, so the message in the slot the
    /// intent expected (the first on the subject after `expected`) is read and its msg-id
    /// compared. (Reading the subject's *last* message would miss an event that others
    /// have already appended after.)
    async fn publish_intent(&self, key: &str, intent: &Intent) -> Result<Published, Error> {
        let subject = subject_of(intent.person);
        let payload = Bytes::copy_from_slice(&intent.payload);
        let hash = intent.hash.to_hex();
        let js = &self.inner.js;
        enum Ack {
            Stored { seq: u64, duplicate: bool },
            WrongLast,
        }
        // Let any `read_all` called before this publish learn its head first.
        let mut heads = self.inner.heads_in_flight.subscribe();
        let _ = heads.wait_for(|n| *n == 0).await;
        let ack = self
            .retrying("appending to the stream", || {
                let msg = PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(key)
                    .expected_last_subject_sequence(intent.expected)
                    .header(HASH_HEADER, hash.as_str())
                    .header(PREV_SEQ_HEADER, intent.expected.to_string().as_str());
                let subject = subject.clone();
                async move {
                    let result = match js.send_publish(subject, msg).await {
                        Ok(ack) => ack.await,
                        Err(e) => Err(e),
                    };
                    match result {
                        Ok(ack) => Ok(Ack::Stored {
                            seq: ack.sequence,
                            duplicate: ack.duplicate,
                        }),
                        Err(e) => match e.kind() {
                            PublishErrorKind::WrongLastSequence => Ok(Ack::WrongLast),
                            PublishErrorKind::TimedOut
                            | PublishErrorKind::StreamNotFound
                            | PublishErrorKind::BrokenPipe
                            | PublishErrorKind::MaxAckPending => Err(Attempt::Retry(e.to_string())),
                            PublishErrorKind::Other
                                if source_api_error(&e).is_none_or(transient_api) =>
                            {
                                Err(Attempt::Retry(e.to_string()))
                            }
                            _ => Err(Attempt::Fail(unavailable("appending to the stream", e))),
                        },
                    }
                }
            })
            .await?;
        match ack {
            Ack::Stored {
                seq,
                duplicate: false,
            } => Ok(Published::Stored(seq)),
            Ack::Stored {
                seq,
                duplicate: true,
            } => {
                // The msg-id was seen in the dedupe window: check it is this very payload.
                Counters::bump(&self.inner.counters.duplicate_acks);
                let m = self.message_at(seq).await?.ok_or_else(|| {
                    Error::Corrupt(format!(
                        "a duplicate ack names position {seq}, which is missing"
                    ))
                })?;
                if header_str(&m.headers, HASH_HEADER) == Some(hash.as_str()) {
                    Ok(Published::Stored(seq))
                } else {
                    Ok(Published::Superseded)
                }
            }
            Ack::WrongLast => match self.next_on_subject(&subject, intent.expected + 1).await? {
                Some(m)
                    if header_str(&m.headers, header::NATS_MESSAGE_ID.as_ref()) == Some(key) =>
                {
                    if header_str(&m.headers, HASH_HEADER) == Some(hash.as_str()) {
                        Counters::bump(&self.inner.counters.wrong_last_but_stored);
                        Ok(Published::Stored(m.sequence))
                    } else {
                        Ok(Published::Superseded)
                    }
                }
                _ => {
                    Counters::bump(&self.inner.counters.wrong_last_lost);
                    Ok(Published::Lost)
                }
            },
        }
    }

    // ----- KV helpers -----

    async fn kv_get(&self, store: &kv::Store, key: &str) -> Result<Option<(Bytes, u64)>, Error> {
        self.retrying("reading a KV entry", || async move {
            match store.entry(key).await {
                Ok(Some(e)) if e.operation == kv::Operation::Put => Ok(Some((e.value, e.revision))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == kv::EntryErrorKind::InvalidKey => Err(Attempt::Fail(
                    unavailable("reading a KV entry", "invalid key"),
                )),
                Err(e) => Err(Attempt::Retry(e.to_string())),
            }
        })
        .await
    }

    /// Create-only write: `Some(revision)` if this call created the key, `None` if it
    /// exists (which may be our own earlier attempt: callers compare the value).
    async fn kv_create(
        &self,
        store: &kv::Store,
        key: &str,
        value: &Bytes,
    ) -> Result<Option<u64>, Error> {
        self.retrying("writing a KV entry", || async move {
            match store.create(key, value.clone()).await {
                Ok(rev) => Ok(Some(rev)),
                Err(e) => match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => Ok(None),
                    kv::CreateErrorKind::InvalidKey => Err(Attempt::Fail(unavailable(
                        "writing a KV entry",
                        "invalid key",
                    ))),
                    _ => Err(Attempt::Retry(e.to_string())),
                },
            }
        })
        .await
    }

    /// Compare-and-set: `Some(revision)` if written, `None` if the entry moved on.
    async fn kv_update(
        &self,
        store: &kv::Store,
        key: &str,
        value: &Bytes,
        revision: u64,
    ) -> Result<Option<u64>, Error> {
        self.retrying("updating a KV entry", || async move {
            match store.update(key, value.clone(), revision).await {
                Ok(rev) => Ok(Some(rev)),
                Err(e) => match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    kv::UpdateErrorKind::InvalidKey => Err(Attempt::Fail(unavailable(
                        "updating a KV entry",
                        "invalid key",
                    ))),
                    _ => Err(Attempt::Retry(e.to_string())),
                },
            }
        })
        .await
    }

    // ----- submissions -----

    /// Where a submission key stands, rolling a pending intent forward first: an intent
    /// is only ever written after its event was decided against the version it expects,
    /// so publishing it again (same bytes, msg-id and expected sequence) is exactly what
    /// its writer would do, and succeeds only if that version still holds.
    async fn settled(&self, key: &str) -> Result<Found, Error> {
        for _ in 0..MAX_ROUNDS {
            let Some((value, revision)) = self.kv_get(&self.inner.submissions, key).await? else {
                return Ok(Found::Absent);
            };
            match Submission::decode(key, &value)? {
                Submission::Recorded(p) => return Ok(Found::Recorded(p)),
                Submission::Pending(intent) => match self.publish_intent(key, &intent).await? {
                    Published::Stored(seq) => {
                        Counters::bump(&self.inner.counters.rolled_forward);
                        let p = PriorSubmission {
                            position: seq,
                            person: intent.person,
                            digest: intent.digest,
                        };
                        self.finalize(key, revision, p).await;
                        return Ok(Found::Recorded(p));
                    }
                    Published::Lost => return Ok(Found::Dead { revision }),
                    Published::Superseded => continue,
                },
            }
        }
        Err(unavailable(
            "settling a submission",
            "its record keeps changing",
        ))
    }

    /// Replaces a pending intent by where its event was stored. Best effort: a pending
    /// record is settled by whoever reads it next.
    async fn finalize(&self, key: &str, revision: u64, p: PriorSubmission) {
        let value = Bytes::from(Submission::Recorded(p).encode());
        if let Err(e) = self
            .kv_update(&self.inner.submissions, key, &value, revision)
            .await
        {
            tracing::warn!(key, error = %e, "could not mark a submission recorded; the next reader will");
        }
    }

    /// Removes a dead intent (compare-and-set, best effort) so later lookups are cheap.
    async fn clear_dead(&self, key: &str, revision: u64) {
        let store = &self.inner.submissions;
        let r = self
            .retrying("clearing a dead intent", || async move {
                match store.delete_expect_revision(key, Some(revision)).await {
                    Ok(()) => Ok(()),
                    // Someone else cleared or took over the key: nothing left to do.
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(()),
                    Err(e) => Err(Attempt::Retry(e.to_string())),
                }
            })
            .await;
        if let Err(e) = r {
            tracing::debug!(key, error = %e, "dead intent left in place");
        }
    }

    /// Stores `intent` as the pending record of `key`, unless the submission is recorded.
    async fn place_intent(&self, key: &str, intent: &Intent) -> Result<Placed, Error> {
        let value = Bytes::from(Submission::Pending(intent.clone()).encode());
        let store = &self.inner.submissions;
        for _ in 0..MAX_ROUNDS {
            if let Some(rev) = self.kv_create(store, key, &value).await? {
                return Ok(Placed::Mine(rev));
            }
            match self.kv_get(store, key).await? {
                None => continue,
                // Our own create whose ack was lost.
                Some((v, rev)) if v == value => return Ok(Placed::Mine(rev)),
                Some(_) => {}
            }
            match self.settled(key).await? {
                Found::Absent => continue,
                Found::Recorded(p) => return Ok(Placed::Taken(p)),
                Found::Dead { revision } => {
                    if let Some(rev) = self.kv_update(store, key, &value, revision).await? {
                        return Ok(Placed::Mine(rev));
                    }
                }
            }
        }
        Err(unavailable(
            "recording a submission",
            "its record keeps changing",
        ))
    }

    // ----- identity -----

    /// Claims `identifier` for `person`, create-only: succeeds if it was free or is
    /// already this person's.
    async fn claim(&self, identifier: &Identifier, person: PersonId) -> Result<(), Error> {
        let key = identity_key(identifier);
        let value = Bytes::from(person.to_string());
        let store = &self.inner.identity;
        for _ in 0..MAX_ROUNDS {
            if self.kv_create(store, &key, &value).await?.is_some() {
                return Ok(());
            }
            if let Some((v, _)) = self.kv_get(store, &key).await? {
                let owner = parse_person(&key, &v)?;
                if owner == person {
                    return Ok(());
                }
                return Err(Error::IdentityConflict {
                    identifier: identifier.clone(),
                    owner,
                    person,
                });
            }
        }
        Err(unavailable(
            "claiming an identifier",
            "its entry keeps changing",
        ))
    }

    /// A person's events, oldest first, by walking back from the subject's last message
    /// along `Throughcare-Prev-Seq`: one get by sequence per event, never a scan, and the
    /// links cannot lie (each equals the expected sequence the server checked when it
    /// accepted the publish). With a cached history only the events after it are fetched
    /// (`None` if the stream does not continue it); without one the walk stops before
    /// `from`. Complete histories are cached.
    async fn history(
        &self,
        person: PersonId,
        cached: Option<History>,
        from: u64,
    ) -> Result<Option<History>, Error> {
        let subject = subject_of(person);
        let base = cached
            .as_ref()
            .and_then(|c| c.last())
            .map(|e| (e.position, e.hash));
        let mut newer = Vec::new();
        let mut next = self.last_on_subject(&subject).await?;
        let mut complete = false;
        while let Some(m) = next {
            if let Some((position, hash)) = base {
                if m.sequence < position {
                    return Ok(None);
                }
                if m.sequence == position {
                    if header_str(&m.headers, HASH_HEADER) != Some(hash.to_hex().as_str()) {
                        return Ok(None);
                    }
                    complete = true;
                    break;
                }
            }
            let e = decode_message(m.sequence, &m.subject, Some(&m.headers), &m.payload)?;
            let prev: u64 = header_str(&m.headers, PREV_SEQ_HEADER)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    Error::Corrupt(format!("position {} has no {PREV_SEQ_HEADER}", m.sequence))
                })?;
            if prev >= m.sequence {
                return Err(Error::Corrupt(format!(
                    "position {} names a previous position {prev} that is not earlier",
                    m.sequence
                )));
            }
            newer.push(e);
            if prev == 0 {
                complete = true;
                break;
            }
            if base.is_none() && prev < from {
                break;
            }
            let m = self.message_at(prev).await?.ok_or_else(|| {
                Error::Corrupt(format!("{subject}: previous position {prev} is missing"))
            })?;
            if m.subject.as_str() != subject {
                return Err(Error::Corrupt(format!(
                    "{subject}: previous position {prev} is on another subject"
                )));
            }
            next = Some(m);
        }
        if base.is_some() && !complete {
            return Ok(None);
        }
        newer.reverse();
        let history: History = match cached {
            Some(c) if newer.is_empty() => c,
            Some(c) => Arc::new(c.iter().cloned().chain(newer).collect()),
            None => Arc::new(newer),
        };
        if complete {
            self.inner.cache.put(person, history.clone());
        }
        Ok(Some(history))
    }

    /// Records one new event on top of `version`: intent, publish, record.
    async fn append_one(
        &self,
        person: PersonId,
        e: &NewEvent,
        version: u64,
        prev: Hash,
        max_payload: usize,
    ) -> Result<One, Error> {
        let key = submission_key(&e.event.source, &e.event.id);
        let payload = StoredBody::encode(person, e.recorded_at, prev, &e.event);
        // Refuse before writing an intent that could never be published.
        if max_payload > 0 && payload.len() + 1024 > max_payload {
            return Err(unavailable(
                "appending to the stream",
                format!(
                    "the event is {} bytes, too large for the server's max_payload of {max_payload}",
                    payload.len()
                ),
            ));
        }
        let intent = Intent {
            person,
            digest: e.digest(),
            expected: version,
            hash: Hash::of(&payload),
            payload,
        };
        let conflict = |p: PriorSubmission| Error::IdempotencyConflict {
            event_source: e.event.source.clone(),
            id: e.event.id.clone(),
            position: p.position,
        };
        let revision = match self.place_intent(&key, &intent).await? {
            Placed::Mine(rev) => rev,
            // Recorded meanwhile by a concurrent retry of the same submission.
            Placed::Taken(p) if p.digest == intent.digest => return Ok(One::Duplicate(p)),
            Placed::Taken(p) => return Err(conflict(p)),
        };
        match self.publish_intent(&key, &intent).await? {
            Published::Stored(position) => {
                let p = PriorSubmission {
                    position,
                    person,
                    digest: intent.digest,
                };
                self.finalize(&key, revision, p).await;
                Ok(One::Stored {
                    position,
                    hash: intent.hash,
                })
            }
            Published::Lost => {
                self.clear_dead(&key, revision).await;
                Ok(One::Lost)
            }
            // This intent was found lost and the submission recorded anew by a concurrent
            // retry: a duplicate if the body is the same.
            Published::Superseded => match self.settled(&key).await? {
                Found::Recorded(p) if p.digest == intent.digest => Ok(One::Duplicate(p)),
                Found::Recorded(p) => Err(conflict(p)),
                Found::Absent | Found::Dead { .. } => Ok(One::Lost),
            },
        }
    }

    async fn conflict(&self, person: PersonId, expected: ExpectedVersion) -> Error {
        let actual = match self.head_of(person).await {
            Ok((v, _)) => v,
            Err(e) => return e,
        };
        Error::Conflict {
            person,
            expected: expected.to_string(),
            actual,
        }
    }
}

fn parse_person(key: &str, v: &[u8]) -> Result<PersonId, Error> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Corrupt(format!("identity entry {key} does not hold a person id")))
}

/// Gets or creates a stream, retrying transient failures until `deadline`.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    deadline: Instant,
) -> Result<stream::Stream, JetStreamError> {
    let name = config.name.clone();
    let mut pause = Duration::from_millis(50);
    loop {
        let err = match js.get_or_create_stream(config.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let transient = match err.kind() {
            jetstream::context::CreateStreamErrorKind::TimedOut
            | jetstream::context::CreateStreamErrorKind::JetStreamUnavailable => true,
            jetstream::context::CreateStreamErrorKind::JetStream(api) => transient_api(&api),
            _ => false,
        };
        if !transient || Instant::now() + pause > deadline {
            return Err(JetStreamError::Setup {
                what: format!("stream {name}"),
                detail: err.to_string(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

#[async_trait]
impl EventLog for JetStreamLog {
    #[tracing::instrument(level = "debug", skip_all, fields(person = %request.person))]
    async fn append(&self, request: AppendRequest) -> Result<Vec<Appended>, Error> {
        self.check_connected_version()?;
        let person = request.person;
        // 0. One (source, id) twice with two bodies in one request can never be recorded.
        let mut digests: HashMap<String, [u8; 32]> = HashMap::new();
        for (i, e) in request.events.iter().enumerate() {
            let key = submission_key(&e.event.source, &e.event.id);
            if digests
                .insert(key, e.digest())
                .is_some_and(|d| d != e.digest())
            {
                return Err(Error::Invalid(vec![Problem {
                    pointer: format!("/{i}/id"),
                    detail: format!(
                        "({}, {}) appears twice in one append with different bodies",
                        e.event.source, e.event.id
                    ),
                }]));
            }
        }
        // 1. Idempotency, before anything is written.
        let mut slots: Vec<Option<Appended>> = Vec::with_capacity(request.events.len());
        for e in &request.events {
            let key = submission_key(&e.event.source, &e.event.id);
            slots.push(match self.settled(&key).await? {
                Found::Recorded(p) if p.digest == e.digest() => Some(Appended {
                    position: p.position,
                    person: p.person,
                    duplicate: true,
                }),
                Found::Recorded(p) => {
                    return Err(Error::IdempotencyConflict {
                        event_source: e.event.source.clone(),
                        id: e.event.id.clone(),
                        position: p.position,
                    })
                }
                Found::Absent | Found::Dead { .. } => None,
            });
        }
        if slots.iter().all(Option::is_some) {
            return Ok(slots.into_iter().flatten().collect());
        }
        // 2. The person's version, checked before claiming anything (the publish checks it
        //    again, atomically, through Nats-Expected-Last-Subject-Sequence).
        let (mut version, mut prev) = self.head_of(person).await?;
        if !request.expected.admits(version) {
            return Err(Error::Conflict {
                person,
                expected: request.expected.to_string(),
                actual: version,
            });
        }
        // 3. Identity claims, create-only, in one global order (identifiers sorted, the
        //    person's own id last) so that racing writers meet on the same first key.
        let mut claims = request.claims.clone();
        claims.sort_by_key(|c| (matches!(c, Identifier::Person(_)), c.clone()));
        claims.dedup();
        // Read first, so that an append refused for a taken identifier claims none of its
        // free ones (absent a race between this read and the creates below).
        for c in &claims {
            if let Some(owner) = self.lookup_identifier(c).await? {
                if owner != person {
                    return Err(Error::IdentityConflict {
                        identifier: c.clone(),
                        owner,
                        person,
                    });
                }
            }
        }
        for c in &claims {
            self.claim(c, person).await?;
        }
        // 4. Each new event: intent, publish, record. `Any` follows a concurrent writer.
        let max_payload = self.inner.client.server_info().max_payload;
        for (slot, e) in slots.iter_mut().zip(&request.events) {
            if slot.is_some() {
                continue;
            }
            let (started, mut rounds) = (Instant::now(), 0u64);
            loop {
                match self
                    .append_one(person, e, version, prev, max_payload)
                    .await?
                {
                    One::Stored { position, hash } => {
                        (version, prev) = (position, hash);
                        *slot = Some(Appended {
                            position,
                            person,
                            duplicate: false,
                        });
                        break;
                    }
                    One::Duplicate(p) => {
                        *slot = Some(Appended {
                            position: p.position,
                            person: p.person,
                            duplicate: true,
                        });
                        (version, prev) = self.head_of(person).await?;
                        break;
                    }
                    One::Lost
                        if request.expected == ExpectedVersion::Any
                            && started.elapsed() < self.inner.config.retry_for =>
                    {
                        // Lost a race under `Any`: back off a little (jittered, so that
                        // the same writers do not collide again) and go again on top.
                        rounds += 1;
                        let jitter = u64::from(started.elapsed().subsec_nanos());
                        let ms = rounds.min(10) * 2 + jitter % (rounds.min(10) * 3 + 1);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        (version, prev) = self.head_of(person).await?;
                    }
                    One::Lost => return Err(self.conflict(person, request.expected).await),
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    async fn read_person(&self, person: PersonId, from: u64) -> Result<Vec<RecordedEvent>, Error> {
        let history = match self.inner.cache.get(person) {
            Some(cached) => match self.history(person, Some(cached), 1).await? {
                Some(h) => h,
                None => {
                    // The stream does not continue the cached history (it was replaced).
                    self.inner.cache.forget(person);
                    self.history(person, None, from).await?.unwrap_or_default()
                }
            },
            None => self.history(person, None, from).await?.unwrap_or_default(),
        };
        Ok(history
            .iter()
            .filter(|e| e.position >= from)
            .cloned()
            .collect())
    }

    fn read_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        crate::consume::events(self.clone(), from, false)
    }

    fn subscribe(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        crate::consume::events(self.clone(), from, true)
    }

    async fn head(&self) -> Result<u64, Error> {
        let stream = &self.inner.stream;
        self.retrying("reading the stream head", || async move {
            stream
                .get_info()
                .await
                .map(|i| i.state.last_sequence)
                .map_err(|e| Attempt::Retry(e.to_string()))
        })
        .await
    }

    async fn lookup_identifier(&self, identifier: &Identifier) -> Result<Option<PersonId>, Error> {
        let key = identity_key(identifier);
        match self.kv_get(&self.inner.identity, &key).await? {
            None => Ok(None),
            Some((v, _)) => parse_person(&key, &v).map(Some),
        }
    }

    async fn lookup_submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<PriorSubmission>, Error> {
        let key = submission_key(source, id);
        match self.settled(&key).await? {
            Found::Recorded(p) => Ok(Some(p)),
            Found::Absent => Ok(None),
            Found::Dead { revision } => {
                self.clear_dead(&key, revision).await;
                Ok(None)
            }
        }
    }
}
