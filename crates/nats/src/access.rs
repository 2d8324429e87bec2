//! [`JetStreamAccessLog`]: the access log ([`AccessLog`]) on the JetStream stream
//! `THROUGHCARE_ACCESS`, one hash chain even when several `serve` processes append to it.
//!
//! # Layout
//!
//! Stream `THROUGHCARE_ACCESS`, subjects `throughcare.access.<person ULID>` (or
//! `throughcare.access.none` for entries about no person), file storage, `deny_delete`,
//! `deny_purge`, no limits, `allow_atomic` (atomic batch publish, nats-server 2.12+). One
//! entry is one message: its payload is exactly the entry's stored bytes (see
//! [`throughcare_ledger::access`]), its `Throughcare-Hash` header is the entry's hash in
//! hex, and its stream sequence is the entry's `seq` (the stream holds nothing else, so
//! sequences run 1, 2, 3, ... as seqs must).
//!
//! # One chain, several writers, group commit
//!
//! An entry's `seq` and `prev` are fixed before it is published, so it must land exactly
//! in the slot they assume. One task per [`JetStreamAccessLog`] takes every queued record
//! (up to [`MAX_GROUP`]), seals them into a chain on top of the last entry it knows and
//! publishes the group as **one atomic batch** whose first message carries
//! `Nats-Expected-Last-Sequence` = that last entry's seq. The server stores the whole
//! batch right after it, or nothing; the callers are answered when the batch's commit is
//! acknowledged. (A group of one is a plain publish with the same header.)
//!
//! Why not pipelined single publishes, each expecting the one before: if entry *k* loses
//! its slot to another process's message, entry *k + 1* (expecting the last sequence to be
//! *k*'s slot, which the other message now fills) would be stored with a `prev` that is
//! not in the stream. `Nats-Expected-Last-Msg-Id` would catch that, but nats-server
//! (2.15.1) checks it only when applying a replicated message, and there a mismatch is a
//! "critical write error" that stops the stream on every replica (found by this crate's
//! tests). So it is never used. Without atomic batches (a server older than 2.12, or a
//! stream that refuses them) the writer publishes one entry at a time, each acknowledged
//! before the next is sent.
//!
//! A refused batch or entry (JetStream error 10071, wrong last sequence) goes again: the
//! writer re-reads the stream's last message (a leader get of the last message on
//! `throughcare.access.>`; stream info can lag behind acknowledged writes in a cluster),
//! reseals the records on top of it and publishes them again.
//!
//! # Lost acks
//!
//! A publish whose ack is lost may still have been stored. The slot of its first entry is
//! read: our hash there means stored (a batch is all or nothing). An empty slot means not
//! yet: the records are resealed on the stream's last entry and published again; if the
//! first copy is stored late, the second finds its slot taken, and the late copy then
//! shows up as the stream's last entry, which the writer recognises before sealing again,
//! so a record is not stored twice in that case either. If another process took the slot
//! meanwhile, the first copy can never be stored anywhere (its expected sequence is gone).
//!
//! # Reads
//!
//! `query` reads with an ordered consumer from `after_seq + 1`, filtered on the person's
//! subject when the filter names one, until it has `limit` matches or the consumer has
//! nothing pending; `verify` reads every message the same way and also treats an entry
//! stored under another person's subject as a break.
//!
//! One caveat of older servers: nats-server releases that ignore an expected last sequence
//! of 0 cannot stop two processes from both storing a "first" entry of an empty stream at
//! the same instant (`verify` would report the break); the pinned 2.15.1 enforces it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::{self, context::PublishErrorKind, stream, ErrorCode};
use async_nats::{header, Client, HeaderMap};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use throughcare_events::{Hash, PersonId};
use throughcare_ledger::access::ChainCheck;
use throughcare_ledger::{
    AccessChainReport, AccessEntry, AccessFilter, AccessLog, AccessRecord, Error,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::JetStreamConfig;
use crate::error::JetStreamError;
use crate::log::{
    ensure_stream, kept_stream, source_api_error, stream_problems, transient_api, JetStreamLog,
};
use crate::records::HASH_HEADER;
use crate::version::{check_server_version, ServerVersion};

/// The access log's stream.
pub const ACCESS_STREAM: &str = "THROUGHCARE_ACCESS";
/// Subjects are this prefix plus a person's ULID or `none`.
pub const ACCESS_SUBJECT_PREFIX: &str = "throughcare.access.";
/// Most entries published in one atomic batch (the server's own limit is 1000).
const MAX_GROUP: usize = 256;

/// The subject of lists' entries (READ_LIST with `people`): a query by person reads it
/// beside the person's own subject, since one message has one subject.
pub const ACCESS_LIST_SUBJECT: &str = "throughcare.access.list";

/// The subject of entries about `person` (`throughcare.access.none` for none).
pub fn access_subject(person: Option<PersonId>) -> String {
    match person {
        Some(p) => format!("{ACCESS_SUBJECT_PREFIX}{p}"),
        None => format!("{ACCESS_SUBJECT_PREFIX}none"),
    }
}

/// The subject an entry is stored under: its person's, the lists' subject for an entry
/// naming several people, else `none`.
pub fn entry_subject(record: &AccessRecord) -> String {
    match record.person_id {
        None if !record.people.is_empty() => ACCESS_LIST_SUBJECT.to_string(),
        person => access_subject(person),
    }
}

/// The JetStream access log. Cloning shares the connection and the writer task.
#[derive(Clone)]
pub struct JetStreamAccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    stream: stream::Stream,
    config: JetStreamConfig,
    jobs: mpsc::Sender<Job>,
    conflicts: Arc<AtomicU64>,
}

struct Job {
    record: AccessRecord,
    reply: oneshot::Sender<Result<AccessEntry, Error>>,
    since: Instant,
    /// The entry last published for this record and not known to be stored (its ack was
    /// lost or refused): if it turns up as the stream's last message it was stored.
    attempt: Option<AccessEntry>,
}

fn unavailable(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {detail}"))
}

fn stream_config(config: &JetStreamConfig) -> stream::Config {
    kept_stream(
        ACCESS_STREAM,
        "throughcare access log: who read what about whom, hash-chained, never deleted",
        vec![format!("{ACCESS_SUBJECT_PREFIX}*")],
        config,
    )
}

/// The hash recorded beside a message's payload when it was published.
fn recorded_hash(headers: Option<&HeaderMap>) -> Option<Hash> {
    headers
        .and_then(|h| h.get(HASH_HEADER))
        .and_then(|v| Hash::from_hex(v.as_str()))
}

/// A connection of its own with the settings [`JetStreamLog::connect_with`] uses
/// (credentials and TLS included).
async fn connect_client(config: &JetStreamConfig) -> Result<Client, JetStreamError> {
    config
        .reconnecting("-access")
        .await?
        .request_timeout(Some(config.request_timeout))
        .connect(config.servers())
        .await
        .map_err(|e| config.connect_error(e))
}

impl JetStreamLog {
    /// The access log on this log's connection (so `serve` keeps one connection). Each
    /// call starts another writer task; they share the one chain as separate processes
    /// would, so call it once and clone the result.
    pub async fn access_log(&self) -> Result<JetStreamAccessLog, JetStreamError> {
        JetStreamAccessLog::open(self.inner.client.clone(), self.inner.config.clone()).await
    }
}

impl JetStreamAccessLog {
    /// Connects on its own connection (settings as for [`JetStreamLog::connect_with`]) and
    /// opens the access log.
    pub async fn connect_with(config: JetStreamConfig) -> Result<Self, JetStreamError> {
        let client = connect_client(&config).await?;
        Self::open(client, config).await
    }

    /// As [`JetStreamAccessLog::connect_with`], but publishing one entry at a time as on a
    /// server without atomic batches: for testing that path.
    #[doc(hidden)]
    pub async fn connect_one_at_a_time(config: JetStreamConfig) -> Result<Self, JetStreamError> {
        let client = connect_client(&config).await?;
        Self::open_with(client, config, false).await
    }

    /// Opens the access log on an existing connection: applies the server version policy,
    /// creates (or checks) the stream and starts the writer task. Needs a Tokio runtime.
    pub async fn open(client: Client, config: JetStreamConfig) -> Result<Self, JetStreamError> {
        Self::open_with(client, config, true).await
    }

    async fn open_with(
        client: Client,
        config: JetStreamConfig,
        batches: bool,
    ) -> Result<Self, JetStreamError> {
        let info = client.server_info();
        check_server_version(&info.version)?;
        if !info.jetstream {
            return Err(JetStreamError::NoJetStream {
                url: config.url.clone(),
            });
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            .build(client.clone());
        let deadline = Instant::now() + config.retry_for;
        // Atomic batches (nats-server 2.12+) make group commit safe with several writers.
        let supports_atomic =
            ServerVersion::parse(&info.version).is_some_and(|v| v.at_least((2, 12, 0)));
        let mut wanted = stream_config(&config);
        wanted.allow_atomic_publish = supports_atomic;
        let stream = ensure_stream(&js, wanted, deadline).await?;
        let existing = stream.cached_info().config.clone();
        let problems = stream_problems(&existing, ACCESS_SUBJECT_PREFIX);
        if !problems.is_empty() {
            return Err(JetStreamError::UnsafeStream {
                stream: ACCESS_STREAM.into(),
                problems: problems.join("; "),
            });
        }
        let mut atomic = existing.allow_atomic_publish;
        if supports_atomic && !atomic {
            // Made by an older server: turn atomic batches on (a setting that can only
            // make writes safer); if that is refused, publish one entry at a time.
            let mut updated = existing;
            updated.allow_atomic_publish = true;
            match js.update_stream(updated).await {
                Ok(info) => atomic = info.config.allow_atomic_publish,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot allow atomic batches on {ACCESS_STREAM}; appending one entry at a time")
                }
            }
        }
        if !atomic {
            tracing::warn!("{ACCESS_STREAM} has no atomic batches (nats-server older than 2.12): access log appends are published one at a time");
        }
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let conflicts = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            client,
            js,
            stream: stream.clone(),
            config: config.clone(),
            conflicts: conflicts.clone(),
            atomic: atomic && batches,
            solo_next: false,
        };
        tokio::spawn(writer.run(rx));
        Ok(JetStreamAccessLog {
            inner: Arc::new(Inner {
                stream,
                config,
                jobs: tx,
                conflicts,
            }),
        })
    }

    /// How many times this log's writer found that another writer had taken the slot its
    /// entries expected, and rebuilt them on top.
    pub fn conflicts(&self) -> u64 {
        self.inner.conflicts.load(Ordering::Relaxed)
    }

    /// Reads messages from `from` on (only `subject`'s when given) and hands each to
    /// `take` (seq, subject, recorded hash, payload) until it returns `false` or nothing
    /// is pending. Resumes after interruptions for up to `retry_for`. Without a subject
    /// this reads from `from` to the end whatever the filter: fine while queries are paged
    /// and the log modest; `who` or time queries over a long log would want an index.
    async fn scan(
        &self,
        subjects: Vec<String>,
        from: u64,
        mut take: impl FnMut(u64, &str, Option<Hash>, &[u8]) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let config = &self.inner.config;
        let mut next = from.max(1);
        let mut failing_since: Option<Instant> = None;
        let mut pause = Duration::from_millis(50);
        loop {
            let why = match self.scan_from(&subjects, &mut next, &mut take).await {
                Ok(()) => return Ok(()),
                Err(Scan::Fail(e)) => return Err(e),
                Err(Scan::Retry(why)) => why,
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() + pause > config.retry_for {
                return Err(unavailable("reading the access log", why));
            }
            tracing::debug!(next, why = %why, "access log read interrupted; resuming");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    async fn scan_from(
        &self,
        subjects: &[String],
        next: &mut u64,
        take: &mut impl FnMut(u64, &str, Option<Hash>, &[u8]) -> Result<bool, Error>,
    ) -> Result<(), Scan> {
        let consumer = self
            .inner
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects: subjects.to_vec(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: *next,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Scan::Retry(format!("cannot create an ordered consumer: {e}")))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Scan::Retry(format!("cannot start an ordered consumer: {e}")))?;
        // The consumer sends heartbeats; a read that hears nothing for this long is
        // restarted rather than left hanging.
        let patience = self.inner.config.request_timeout * 3;
        loop {
            let msg = match tokio::time::timeout(patience, messages.next()).await {
                Err(_) => return Err(Scan::Retry("no message or heartbeat in time".into())),
                Ok(None) => return Err(Scan::Retry("the consumer ended".into())),
                Ok(Some(Err(e))) => return Err(Scan::Retry(e.to_string())),
                Ok(Some(Ok(msg))) => msg,
            };
            let info = msg
                .info()
                .map_err(|e| Scan::Retry(format!("a message without its position: {e}")))?;
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq < *next {
                continue;
            }
            *next = seq + 1;
            let more = take(
                seq,
                msg.subject.as_str(),
                recorded_hash(msg.headers.as_ref()),
                &msg.payload,
            )
            .map_err(Scan::Fail)?;
            if !more || pending == 0 {
                return Ok(());
            }
        }
    }
}

enum Scan {
    Retry(String),
    Fail(Error),
}

#[async_trait]
impl AccessLog for JetStreamAccessLog {
    async fn append(&self, record: AccessRecord) -> Result<AccessEntry, Error> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            record,
            reply,
            since: Instant::now(),
            attempt: None,
        };
        let stopped = || Error::Unavailable("the access log writer stopped".into());
        self.inner.jobs.send(job).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn query(&self, filter: &AccessFilter) -> Result<Vec<AccessEntry>, Error> {
        let mut out = Vec::new();
        if filter.limit == 0 {
            return Ok(out);
        }
        // A person's entries are on its subject and, for lists that showed it, on the
        // lists' subject.
        let subjects = filter
            .person
            .map(|p| vec![access_subject(Some(p)), ACCESS_LIST_SUBJECT.to_string()])
            .unwrap_or_default();
        self.scan(
            subjects,
            filter.after_seq + 1,
            |seq, _, recorded, payload| {
                let entry = AccessEntry::decode_at(seq, payload, recorded)?;
                if filter.matches(&entry) {
                    out.push(entry);
                }
                Ok(out.len() < filter.limit)
            },
        )
        .await?;
        Ok(out)
    }

    async fn verify(&self) -> Result<AccessChainReport, Error> {
        // The stream keeps no head apart from its messages: at least everything up to its
        // last sequence now must be read.
        let head = self.head().await?;
        let mut check = ChainCheck::new();
        self.scan(Vec::new(), 1, |seq, subject, recorded, payload| {
            // An entry on another person's subject would escape queries by person.
            let misfiled = AccessEntry::from_stored(payload)
                .is_ok_and(|e| entry_subject(&e.record) != subject);
            if misfiled {
                check.feed_broken(seq, payload);
            } else {
                check.feed(seq, payload, recorded);
            }
            Ok(true)
        })
        .await?;
        Ok(check.finish_reaching(head))
    }

    async fn head(&self) -> Result<u64, Error> {
        let last = last_message(&self.inner.stream, &self.inner.config).await?;
        Ok(last.map_or(0, |m| m.sequence))
    }
}

/// One leader get (`STREAM.MSG.GET`, answered by the stream leader, so it sees every
/// acknowledged write, also in a cluster), retrying transient failures for up to
/// `retry_for`; `None` if there is no such message.
async fn get_message(
    config: &JetStreamConfig,
    request: impl Fn() -> stream::RawMessageBuilder,
) -> Result<Option<StreamMessage>, Error> {
    let deadline = Instant::now() + config.retry_for;
    let mut pause = Duration::from_millis(25);
    loop {
        let e = match request().send().await {
            Ok(m) => return Ok(Some(m)),
            Err(e) => e,
        };
        match e.kind() {
            stream::LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            stream::LastRawMessageErrorKind::JetStream(api) if !transient_api(&api) => {
                return Err(unavailable("reading the access log", api))
            }
            _ if Instant::now() + pause > deadline => {
                return Err(unavailable("reading the access log", e))
            }
            _ => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The stream's last message. Not from stream info: in a cluster that can lag behind
/// acknowledged writes, where a get by the last message on `throughcare.access.>` goes
/// to the leader.
async fn last_message(
    stream: &stream::Stream,
    config: &JetStreamConfig,
) -> Result<Option<StreamMessage>, Error> {
    let all = format!("{ACCESS_SUBJECT_PREFIX}>");
    get_message(config, || {
        stream.raw_message_builder().last_by_subject(&all)
    })
    .await
}

/// The writer task: seals, publishes and confirms every append of this handle.
struct Writer {
    client: Client,
    js: jetstream::Context,
    stream: stream::Stream,
    config: JetStreamConfig,
    conflicts: Arc<AtomicU64>,
    /// Groups go as one atomic batch (the stream allows it); else one entry at a time.
    atomic: bool,
    /// Publish the next group one entry at a time (an atomic batch was refused for a
    /// reason that may lie with one of its entries: this finds which).
    solo_next: bool,
}

/// What JetStream said to one publish (an atomic batch, or a single entry).
enum Ack {
    /// Stored where it was meant to go.
    Stored,
    /// Another writer took the slot (10071): nothing of it was stored.
    Conflict,
    /// Not known: a lost ack, a broken connection, a server restarting.
    Unresolved,
    /// Refused for good; nothing was stored. `code`: JetStream's error code, if any.
    Refused {
        error: Error,
        code: Option<ErrorCode>,
    },
}

fn classify(e: &jetstream::context::PublishError) -> Ack {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => Ack::Conflict,
        PublishErrorKind::TimedOut
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Ack::Unresolved,
        _ => match source_api_error(e) {
            // No API error, or a transient one (503/408, 429 too many batches in flight),
            // or "batch incomplete" (a message of it was lost on the way): go again.
            None => Ack::Unresolved,
            Some(api) if matches!(api.code(), 503 | 408 | 429) => Ack::Unresolved,
            Some(api) if api.error_code() == ErrorCode::ATOMIC_PUBLISH_INCOMPLETE_BATCH => {
                Ack::Unresolved
            }
            Some(api) => Ack::Refused {
                error: unavailable("appending to the access log", e),
                code: Some(api.error_code()),
            },
        },
    }
}

fn corrupt(detail: String) -> Ack {
    Ack::Refused {
        error: Error::Corrupt(detail),
        code: None,
    }
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut pending: VecDeque<Job> = VecDeque::new();
        // (seq, hash) of the stream's last entry as far as this writer knows.
        let mut belief: Option<(u64, Hash)> = None;
        let mut pause = Duration::from_millis(10);
        loop {
            if pending.is_empty() {
                match jobs.recv().await {
                    Some(j) => pending.push_back(j),
                    None => return,
                }
            }
            while pending.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(j) => pending.push_back(j),
                    Err(_) => break,
                }
            }
            // Give up on appends that have waited through `retry_for` of failures.
            let retry_for = self.config.retry_for;
            let (expired, kept): (Vec<Job>, Vec<Job>) = pending
                .drain(..)
                .partition(|j| j.since.elapsed() > retry_for);
            pending = kept.into();
            for j in expired {
                let _ = j.reply.send(Err(unavailable(
                    "appending to the access log",
                    "gave up after retrying",
                )));
            }
            if pending.is_empty() {
                continue;
            }
            if let Err(e) = self.check_version() {
                for j in pending.drain(..) {
                    let _ = j.reply.send(Err(Error::Unavailable(e.to_string())));
                }
                continue;
            }
            let (last, prev) = match belief {
                Some(b) => b,
                None => match self.read_last().await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the access log's last entry; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                        continue;
                    }
                },
            };
            pause = Duration::from_millis(10);
            // An entry whose ack was lost may have been stored after all: if it is the
            // stream's last, it and the ones sealed before it (which it links to) are.
            if let Some(i) = pending.iter().position(|j| {
                j.attempt
                    .as_ref()
                    .is_some_and(|a| (a.seq, a.hash) == (last, prev))
            }) {
                for j in pending.drain(..=i) {
                    let entry = j.attempt.expect("an attempted entry");
                    let _ = j.reply.send(Ok(entry));
                }
                belief = Some((last, prev));
                continue;
            }
            let n = pending.len().min(MAX_GROUP);
            let group: Vec<Job> = pending.drain(..n).collect();
            let (left, next_belief) = self.publish_group(group, last, prev).await;
            belief = next_belief;
            if !left.is_empty() {
                // Lost the slot to another writer (or the server is struggling): go again
                // on top of the stream's real last entry, after a short jittered pause so
                // that two writers do not keep colliding.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                tokio::time::sleep(Duration::from_micros(u64::from(nanos % 5_000))).await;
                for j in left.into_iter().rev() {
                    pending.push_front(j);
                }
            }
        }
    }

    fn check_version(&self) -> Result<(), Error> {
        let version = self.client.server_info().version;
        if version.is_empty() {
            return Ok(()); // disconnected: the publish will wait for a server
        }
        check_server_version(&version).map_err(Error::from)
    }

    /// The stream's last entry: (seq, hash of its stored bytes), (0, zeros) when empty.
    async fn read_last(&self) -> Result<(u64, Hash), Error> {
        let last = last_message(&self.stream, &self.config).await?;
        Ok(last.map_or((0, Hash::ZERO), |m| (m.sequence, Hash::of(&m.payload))))
    }

    /// The payload stored at `seq`, if any.
    async fn message_at(&self, seq: u64) -> Result<Option<Bytes>, Error> {
        let stream = &self.stream;
        let m = get_message(&self.config, || stream.raw_message_builder().sequence(seq)).await?;
        Ok(m.map(|m| m.payload))
    }

    /// Whether `entry` is what the stream holds at its seq (after an unresolved publish).
    async fn landed(&self, entry: &AccessEntry) -> bool {
        match self.message_at(entry.seq).await {
            Ok(Some(payload)) => Hash::of(&payload) == entry.hash,
            Ok(None) | Err(_) => false,
        }
    }

    /// Publishes `group` as a chain on top of (`last`, `prev`), answers the callers whose
    /// entries are stored (or refused for good), and returns the rest, to go again, with
    /// what the writer now knows of the stream's last entry.
    async fn publish_group(
        &mut self,
        group: Vec<Job>,
        last: u64,
        prev: Hash,
    ) -> (Vec<Job>, Option<(u64, Hash)>) {
        // An entry too large for the server could never be published; refuse it alone
        // before it is sealed into the chain.
        let max_payload = self.client.server_info().max_payload;
        let mut sealed = Vec::with_capacity(group.len());
        let mut link = prev;
        for job in group {
            let seq = last + 1 + sealed.len() as u64;
            let (entry, stored) = AccessEntry::seal(seq, job.record.clone(), link);
            if max_payload > 0 && stored.len() + 1024 > max_payload {
                let _ = job.reply.send(Err(unavailable(
                    "appending to the access log",
                    format!(
                        "the entry is {} bytes, too large for the server's max_payload of {max_payload}",
                        stored.len()
                    ),
                )));
                continue;
            }
            link = entry.hash;
            sealed.push((job, entry, Bytes::from(stored)));
        }
        if sealed.is_empty() {
            return (Vec::new(), Some((last, prev)));
        }
        let solo = std::mem::take(&mut self.solo_next);
        if self.atomic && !solo && sealed.len() > 1 {
            self.publish_atomic(sealed, last).await
        } else {
            self.publish_each(sealed).await
        }
    }

    /// One atomic batch: stored whole or not at all. The first message carries the
    /// expected last sequence, so the batch lands right after (`last`, `prev`) or not.
    async fn publish_atomic(
        &mut self,
        sealed: Vec<(Job, AccessEntry, Bytes)>,
        last: u64,
    ) -> (Vec<Job>, Option<(u64, Hash)>) {
        let n = sealed.len();
        let batch = ulid::Ulid::new().to_string();
        let mut ack = None;
        for (k, (_, entry, stored)) in sealed.iter().enumerate() {
            let subject = entry_subject(&entry.record);
            let mut headers = HeaderMap::new();
            headers.insert(header::NATS_BATCH_ID, batch.as_str());
            headers.insert(header::NATS_BATCH_SEQUENCE, (k + 1).to_string().as_str());
            headers.insert(HASH_HEADER, entry.hash.to_hex().as_str());
            if k == 0 {
                headers.insert(
                    header::NATS_EXPECTED_LAST_SEQUENCE,
                    last.to_string().as_str(),
                );
            }
            if k + 1 < n {
                // Staged by the server until the commit; no reply needed.
                if let Err(e) = self
                    .client
                    .publish_with_headers(subject, headers, stored.clone())
                    .await
                {
                    tracing::debug!(error = %e, "access log batch message not sent");
                    break;
                }
            } else {
                headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                let msg = PublishMessage::build()
                    .payload(stored.clone())
                    .headers(headers);
                match self.js.send_publish(subject, msg).await {
                    Ok(a) => ack = Some(a),
                    Err(e) => tracing::debug!(error = %e, "access log batch commit not sent"),
                }
            }
        }
        let outcome = match ack {
            None => Ack::Unresolved,
            Some(a) => match a.await {
                Ok(a) if a.sequence == last + n as u64 => Ack::Stored,
                Ok(a) => corrupt(format!(
                    "an access log batch meant for {}..={} was acknowledged at {}",
                    last + 1,
                    last + n as u64,
                    a.sequence
                )),
                Err(e) => classify(&e),
            },
        };
        let stored = match outcome {
            Ack::Stored => true,
            // Atomic: the first entry in place means the whole batch is.
            Ack::Unresolved => self.landed(&sealed[0].1).await,
            Ack::Conflict => {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ack::Refused { error: e, code } => {
                if code == Some(ErrorCode::ATOMIC_PUBLISH_DISABLED) {
                    tracing::warn!(
                        "the access stream refuses atomic batches; publishing one entry at a time"
                    );
                    self.atomic = false;
                } else {
                    // Find out which entry it was by publishing them one at a time.
                    tracing::warn!(error = %e, "an access log batch was refused; retrying its entries one by one");
                    self.solo_next = true;
                }
                false
            }
        };
        if stored {
            let (_, tail, _) = sealed.last().expect("a non-empty batch");
            let belief = Some((tail.seq, tail.hash));
            for (job, entry, _) in sealed {
                let _ = job.reply.send(Ok(entry));
            }
            return (Vec::new(), belief);
        }
        let left = sealed
            .into_iter()
            .map(|(mut job, entry, _)| {
                job.attempt = Some(entry);
                job
            })
            .collect();
        (left, None)
    }

    /// One entry at a time, each acknowledged before the next is sent (servers or streams
    /// without atomic batches, and finding the entry a batch was refused for).
    async fn publish_each(
        &mut self,
        sealed: Vec<(Job, AccessEntry, Bytes)>,
    ) -> (Vec<Job>, Option<(u64, Hash)>) {
        let mut rest = sealed.into_iter();
        let mut belief = None;
        while let Some((job, entry, stored)) = rest.next() {
            let msg = PublishMessage::build()
                .payload(stored)
                .expected_last_sequence(entry.seq - 1)
                .header(HASH_HEADER, entry.hash.to_hex().as_str());
            let subject = entry_subject(&entry.record);
            let outcome = match self.js.send_publish(subject, msg).await {
                Err(e) => classify(&e),
                Ok(a) => match a.await {
                    Ok(a) if a.sequence == entry.seq => Ack::Stored,
                    Ok(a) => corrupt(format!(
                        "access log entry {} was acknowledged at {}",
                        entry.seq, a.sequence
                    )),
                    Err(e) => classify(&e),
                },
            };
            let stored = match outcome {
                Ack::Stored => true,
                Ack::Unresolved => self.landed(&entry).await,
                Ack::Conflict => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Ack::Refused { error, .. } => {
                    // The ones after it were sealed on top of it: rebuild them.
                    let _ = job.reply.send(Err(error));
                    return (rest.map(unsent).collect(), None);
                }
            };
            if !stored {
                let mut job = job;
                job.attempt = Some(entry);
                let mut left = vec![job];
                left.extend(rest.map(unsent));
                return (left, None);
            }
            belief = Some((entry.seq, entry.hash));
            let _ = job.reply.send(Ok(entry));
        }
        (Vec::new(), belief)
    }
}

/// A job sealed in a round but not sent in it: it has no attempt that could still land.
fn unsent((mut job, _, _): (Job, AccessEntry, Bytes)) -> Job {
    job.attempt = None;
    job
}
