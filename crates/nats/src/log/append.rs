//! The writer task: every append of one [`JetStreamLog`](super::JetStreamLog) goes
//! through it, and each round of it publishes ONE atomic batch (ADR-50).
//!
//! # A round
//!
//! 1. Take every job waiting (a job is one `append_all` call: all or nothing).
//! 2. Read what must be read: the stream's tail after a refusal or at start, a person's
//!    last event when neither a hint nor the request's `NoStream` says it, and for a job
//!    whose last batch was refused every fact it relied on.
//! 3. Plan each job against what this process knows (its hints, which hold only facts a
//!    read or an acknowledged batch established) plus the batch drafted so far. A job is
//!    refused only on certain facts (a claim or a submission record, which never change,
//!    or a person's tail read in this round); one that depends on something another job
//!    of this draft is writing (the same person with another expected version, the same
//!    identifier, the same submission) waits for the next round; one that would overflow
//!    the batch waits too (alone too large: refused, naming the limit).
//! 4. Publish the draft as one atomic batch: claims, then for each event its submission
//!    record and the event. The first message carries `Nats-Expected-Last-Sequence` =
//!    the stream's last sequence as this writer knows it, so the writer knows the
//!    sequence every message gets and the position of every event, and can clamp
//!    `recorded_at`. Every claim and record is create-only and the first event of each
//!    person carries its expected last subject sequence, so whatever the writer assumed
//!    without reading (a free identifier, an absent record, a `NoStream` person, a cached
//!    tail) is checked by the server at commit.
//! 5. Classify the answer ([`classify`]): stored -> answer the jobs; a wrong last
//!    sequence (10071, or 10164 from a clustered leader with proposals still in flight)
//!    -> another writer appended or an assumption was wrong: re-read the tail and the
//!    jobs' facts and plan them again (each may now be a duplicate, a conflict for the
//!    ledger to re-decide, or still fine); unresolved (ack timeout, no responders, 503 in
//!    an election, a broken connection) -> look whether the batch landed (the message at
//!    its predicted last sequence, compared by subject and hash) and otherwise go again
//!    with back-off; anything else -> refused for good, the jobs get the error.
//!
//! A job that has failed keeps being retried until `retry_for` after it was submitted,
//! then is answered "unavailable".
//!
//! # One batch in flight, full groups, not a pipeline
//!
//! While a batch is in flight the next round gathers every job that arrives (group
//! commit), and before it drafts it waits briefly for the callers the last batch
//! answered ([`Writer::gather`]), so a busy writer sends one full batch per round trip
//! instead of alternating between two half-full ones.
//!
//! Several batches in flight (ADR-50 allows 50 per stream) were measured and rejected,
//! for three reasons:
//!
//! - They do not raise the rate. nats-server (2.15.1) processes every message of a stream,
//!   batch or not, on the stream's one goroutine, and an R1 file-backed stream stages each
//!   atomic batch in a file store of its own (directory, meta files written with O_SYNC,
//!   directory fsync, removal at commit): ~15-20 ms per batch of 2-200 messages whether 1,
//!   4, 16 or 48 are in flight (measured with raw async-nats: 20 ms per batch of 20
//!   messages at every depth; only 1,000-message batches gained, 25 instead of 34 ms at 8
//!   in flight). With a bounded number of submitters, k batches in flight hold 1/k of
//!   them each and pay the fixed cost k times: fewer events per second, not more. Only
//!   events per batch raise the rate.
//! - Expected sequences alone are unsafe: if batch k is refused because another process
//!   appended, and that process's messages end exactly where batch k's would have, batch
//!   k+1 passes the global check and is stored with positions and chain links that assume
//!   the refused batch.
//! - The guard that would close the hole in an R1 stream (each batch's first message
//!   checking, through `Nats-Expected-Last-Subject-Sequence-Subject`, a per-writer marker
//!   subject written by the previous batch) would be refused by a clustered leader with
//!   10164 whenever the previous batch is still in flight (nats-server source:
//!   `checkMsgHeadersPreClusteredProposal` blocks subject checks on subjects with
//!   proposals in process), i.e. always; and
//!   `Nats-Expected-Last-Msg-Id`, which would chain batches without a subject, is refused
//!   inside atomic batches. So a pipeline would only ever run on R1, where it gains nothing.
//!
//! So only one batch is ever unacknowledged, and every batch is checked against the
//! stream's last sequence as it stands.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::ErrorCode;
use async_nats::{header, HeaderMap};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use throughcare_events::{Hash, Identifier, PersonId, Problem, StoredBody};
use throughcare_ledger::{AppendRequest, Appended, Error, ExpectedVersion, PriorSubmission};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::reading::StreamTail;
use super::setup::source_api_error;
use super::{unavailable, PersonTail, Shared};
use crate::error::JetStreamError;
use crate::records::{
    encode_claim, identity_subject, subject_of, submission_subject, SubmissionRecord, HASH_HEADER,
    POSITION_HEADER, PREV_SEQ_HEADER,
};
use crate::stats::Counters;

/// Most messages in one atomic batch: the server's limit (ADR-50).
pub const MAX_BATCH_MESSAGES: usize = 1000;

/// Messages of an atomic batch kept for identity claims when the ledger sizes a batch of
/// events ([`throughcare_ledger::EventLog::max_batch_events`]): a batch that brings more
/// new identifiers than this may still be refused whole as too large.
pub const CLAIM_ROOM: usize = 10;

/// One `append_all` call waiting for the writer.
pub(crate) struct Job {
    requests: Vec<AppendRequest>,
    reply: oneshot::Sender<Result<Vec<Vec<Appended>>, Error>>,
    /// When the caller handed it over.
    queued: Instant,
    /// Since when this job has been failing (counted from `queued`: a round can spend
    /// `retry_for` in one read before it fails), and why last.
    failing: Option<(Instant, String)>,
    /// Its last batch was refused: read every fact it relies on before planning it again.
    verify: bool,
    /// Persons whose last event must be read before planning (a hint did not admit the
    /// expected version, or there was none).
    stale: Vec<PersonId>,
    /// (submission subject, position) of every event this job sent in a batch whose
    /// outcome was not known (a lost ack). When a later round finds that submission
    /// recorded at that very position, the lost batch landed: the event was recorded by
    /// this call, not before it, so it is answered as new (`duplicate: false`).
    attempted: HashSet<(String, u64)>,
}

impl Job {
    /// Remembers where this job's new events were placed in a batch whose outcome is not
    /// known (see [`Job::attempted`]).
    fn remember_attempt(&mut self, results: &[Vec<Appended>]) {
        for (r, appended) in self.requests.iter().zip(results) {
            for (e, a) in r.events.iter().zip(appended) {
                if !a.duplicate {
                    let subject = submission_subject(&e.event.source, &e.event.id);
                    self.attempted.insert((subject, a.position));
                }
            }
        }
    }

    fn failed(&mut self, why: &str) {
        match &mut self.failing {
            Some((_, w)) => *w = why.to_string(),
            None => self.failing = Some((self.queued, why.to_string())),
        }
    }
}

/// Starts the writer task; it stops when every sender is dropped.
pub(crate) fn start(shared: Arc<Shared>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(4096);
    let writer = Writer {
        shared,
        tail: None,
        pause: MIN_PAUSE,
        last_group: 0,
        last_trip: Duration::ZERO,
    };
    tokio::spawn(writer.run(rx));
    tx
}

/// Hands `requests` to the writer and waits for the answer.
pub(crate) async fn submit(
    jobs: &mpsc::Sender<Job>,
    shared: &Shared,
    requests: Vec<AppendRequest>,
) -> Result<Vec<Vec<Appended>>, Error> {
    shared.check_connected_version()?;
    for r in &requests {
        for c in &r.claims {
            if matches!(c, Identifier::Person(p) if *p != r.person) {
                return Err(Error::Invalid(vec![Problem {
                    pointer: String::new(),
                    detail: format!(
                        "person {} cannot claim {c}: a person id belongs to that person",
                        r.person
                    ),
                }]));
            }
        }
    }
    let (reply, rx) = oneshot::channel();
    let job = Job {
        requests,
        reply,
        queued: Instant::now(),
        failing: None,
        verify: false,
        stale: Vec::new(),
        attempted: HashSet::new(),
    };
    let stopped = || Error::Unavailable("the JetStream writer stopped".into());
    jobs.send(job).await.map_err(|_| stopped())?;
    rx.await.map_err(|_| stopped())?
}

const MIN_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_secs(1);

struct Writer {
    shared: Arc<Shared>,
    /// The stream's tail as this writer knows it; `None`: read it before the next batch.
    tail: Option<StreamTail>,
    pause: Duration,
    /// How many jobs were in the writer's hands when the last stored batch was answered
    /// (its own jobs plus those left waiting): the callers likely to be back for the next
    /// round. 0 after a failed round (then nothing is waited for).
    last_group: usize,
    /// How long the last stored batch took from the first message sent to its ack.
    last_trip: Duration,
}

/// The longest a round waits for callers the previous round answered (see
/// [`Writer::gather`]).
const MAX_LINGER: Duration = Duration::from_millis(5);

/// One message of a drafted batch.
struct Outgoing {
    subject: String,
    payload: Bytes,
    headers: Vec<(&'static str, String)>,
    /// `Nats-Expected-Last-Subject-Sequence`, if this message carries one.
    expect_subject: Option<u64>,
}

/// The batch being drafted in a round, and what it would make true.
struct Draft {
    base: StreamTail,
    seq: u64,
    position: u64,
    recorded_at: Option<DateTime<Utc>>,
    messages: Vec<Outgoing>,
    persons: HashMap<PersonId, PersonTail>,
    claims: HashMap<String, PersonId>,
    submissions: HashMap<String, PriorSubmission>,
}

impl Draft {
    fn new(base: StreamTail) -> Draft {
        Draft {
            base,
            seq: base.seq,
            position: base.position,
            recorded_at: base.recorded_at,
            messages: Vec::new(),
            persons: HashMap::new(),
            claims: HashMap::new(),
            submissions: HashMap::new(),
        }
    }
}

/// What planning one job decided.
enum Plan {
    /// Staged into the draft (or needing no message at all): these are its results.
    Staged(Vec<Vec<Appended>>),
    /// Refused on certain facts: nothing of it is written.
    Refused(Error),
    /// Depends on something the draft is writing: next round.
    Wait,
    /// Needs these persons' last events read first: next round.
    Read(Vec<PersonId>),
}

/// What JetStream said to one batch.
enum Outcome {
    Stored,
    /// Wrong last sequence (10071) or its clustered variant (10164): nothing was stored;
    /// the writer's picture of the stream was out of date.
    Conflict(String),
    /// Not known whether it was stored: a lost ack, a broken connection, a server
    /// restarting or electing a leader, too many batches in flight.
    Unresolved(String),
    /// Refused for good; nothing was stored.
    Refused(Error),
}

/// Classifies every way a batch publish can end. Deliberately exhaustive: each JetStream
/// answer is either a conflict (re-read and re-decide), unresolved (check, then retry with
/// back-off) or final.
fn classify(e: &PublishError) -> Outcome {
    let why = e.to_string();
    match e.kind() {
        PublishErrorKind::WrongLastSequence => Outcome::Conflict(why),
        PublishErrorKind::TimedOut
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => Outcome::Unresolved(why),
        PublishErrorKind::MaxPayloadExceeded => Outcome::Refused(Error::Unavailable(format!(
            "appending to the stream: a message exceeds the server's max_payload: {why}"
        ))),
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::Other => {
            match source_api_error(e) {
                // No API answer at all (the request failed on the way): not known.
                None => Outcome::Unresolved(why),
                Some(api) => match api.error_code() {
                    ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                    | ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT => Outcome::Conflict(why),
                    // A message of the batch was lost on the way (a reconnect): the server
                    // dropped the whole batch.
                    ErrorCode::ATOMIC_PUBLISH_INCOMPLETE_BATCH
                    | ErrorCode::ATOMIC_PUBLISH_TOO_MANY_INFLIGHT => Outcome::Unresolved(why),
                    ErrorCode::ATOMIC_PUBLISH_TOO_LARGE_BATCH => Outcome::Refused(
                        JetStreamError::TooLarge(format!(
                            "the server refused a batch as too large ({why}); its limit is \
                             below {MAX_BATCH_MESSAGES} messages"
                        ))
                        .into(),
                    ),
                    _ if matches!(api.code(), 503 | 408 | 429) => Outcome::Unresolved(why),
                    _ => Outcome::Refused(unavailable("appending to the stream", why)),
                },
            }
        }
    }
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut pending: VecDeque<Job> = VecDeque::new();
        loop {
            if pending.is_empty() {
                match jobs.recv().await {
                    Some(j) => pending.push_back(j),
                    None => return,
                }
            }
            while let Ok(j) = jobs.try_recv() {
                pending.push_back(j);
            }
            self.gather(&mut pending, &mut jobs).await;
            self.expire(&mut pending);
            if pending.is_empty() {
                continue;
            }
            if let Err(e) = self.shared.check_connected_version() {
                for j in pending.drain(..) {
                    let _ = j.reply.send(Err(Error::Unavailable(e.to_string())));
                }
                continue;
            }
            if let Err(why) = self.round(&mut pending).await {
                // A read failed for `retry_for` (no quorum, no server): the jobs waited
                // that long; let them be answered, or go again if they are young.
                for j in pending.iter_mut() {
                    j.failed(&why);
                }
                self.back_off().await;
            }
        }
    }

    /// Waits briefly for the callers the last stored batch answered to come back, so that
    /// a busy writer sends one batch holding every waiting submitter instead of
    /// alternating between two half-full ones. Measured on nats-server 2.15.1, the
    /// server's cost of an atomic batch is nearly fixed (an R1 file-backed stream stages
    /// every batch in a file store of its own: ~15-20 ms for 2 messages, ~25-35 ms for
    /// 1,000) and batches are processed one after another on the stream's own goroutine,
    /// so events per batch, not batches in flight, is what sets the write rate. The wait
    /// ends when as many jobs are waiting as the last round had, or after a quarter of the
    /// last batch's round trip (at most [`MAX_LINGER`]), whichever comes first; a lone
    /// sequential caller never waits (its group is 1).
    async fn gather(&mut self, pending: &mut VecDeque<Job>, jobs: &mut mpsc::Receiver<Job>) {
        let want = std::mem::take(&mut self.last_group);
        if pending.len() >= want {
            return;
        }
        let deadline = Instant::now() + (self.last_trip / 4).min(MAX_LINGER);
        while pending.len() < want {
            match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(j)) => {
                    pending.push_back(j);
                    while let Ok(j) = jobs.try_recv() {
                        pending.push_back(j);
                    }
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Answers jobs that have been failing for `retry_for`.
    fn expire(&self, pending: &mut VecDeque<Job>) {
        let retry_for = self.shared.config.retry_for;
        let (expired, kept): (Vec<Job>, Vec<Job>) = pending.drain(..).partition(|j| {
            j.failing
                .as_ref()
                .is_some_and(|(t, _)| t.elapsed() >= retry_for)
        });
        *pending = kept.into();
        for j in expired {
            let why = j.failing.map(|(_, w)| w).unwrap_or_default();
            let _ = j.reply.send(Err(unavailable(
                "appending to the stream",
                format!("{why} (gave up after retrying for {retry_for:?})"),
            )));
        }
    }

    async fn back_off(&mut self) {
        // Jittered so that two writers that collided do not collide again in step.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = Duration::from_micros(u64::from(nanos) % (self.pause.as_micros() as u64 + 1));
        tokio::time::sleep(self.pause / 2 + jitter / 2).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }

    /// One round: read, plan, publish, answer. `Err` when a read failed.
    async fn round(&mut self, pending: &mut VecDeque<Job>) -> Result<(), String> {
        let shared = self.shared.clone();
        let tail = match self.tail {
            Some(t) => t,
            None => {
                let t = shared.stream_tail().await.map_err(|e| e.to_string())?;
                self.tail = Some(t);
                t
            }
        };
        let fresh = self.read_facts(pending).await.map_err(|e| e.to_string())?;
        let max_payload = shared.client.server_info().max_payload;
        let mut draft = Draft::new(tail);
        let mut staged: Vec<(Job, Vec<Vec<Appended>>)> = Vec::new();
        let mut later: VecDeque<Job> = VecDeque::new();
        {
            let hints = shared.hints.lock().expect("hints lock");
            for mut job in pending.drain(..) {
                let facts = Facts {
                    hints: &hints,
                    fresh: &fresh,
                    attempted: &job.attempted,
                };
                match plan(&job.requests, &mut draft, &facts, max_payload) {
                    Plan::Staged(results) => staged.push((job, results)),
                    Plan::Refused(e) => {
                        let _ = job.reply.send(Err(e));
                    }
                    Plan::Wait => later.push_back(job),
                    Plan::Read(persons) => {
                        job.stale = persons;
                        later.push_back(job);
                    }
                }
            }
        }
        *pending = later;
        if draft.messages.is_empty() {
            // Every staged job was all duplicates.
            for (job, results) in staged {
                let _ = job.reply.send(Ok(results));
            }
            return Ok(());
        }
        let sent = Instant::now();
        let outcome = self.publish(&draft).await;
        let unresolved = matches!(outcome, Outcome::Unresolved(_));
        match outcome {
            Outcome::Stored => {
                self.pause = MIN_PAUSE;
                self.last_trip = sent.elapsed();
                self.last_group = staged.len() + pending.len();
                self.stored(&draft);
                for (job, results) in staged {
                    let _ = job.reply.send(Ok(results));
                }
            }
            Outcome::Refused(e) => {
                self.tail = None;
                let text = e.to_string();
                tracing::warn!(error = %text, "a batch was refused");
                for (job, _) in staged {
                    let _ = job.reply.send(Err(Error::Unavailable(text.clone())));
                }
            }
            Outcome::Conflict(why) | Outcome::Unresolved(why) => {
                self.tail = None;
                for (mut job, results) in staged.into_iter().rev() {
                    if unresolved {
                        job.remember_attempt(&results);
                    }
                    job.verify = true;
                    job.failed(&why);
                    pending.push_front(job);
                }
                self.back_off().await;
            }
        }
        Ok(())
    }

    /// Reads what the pending jobs need before they can be planned; returns the persons
    /// whose last event was read now (their tails are facts, not hints, this round).
    async fn read_facts(&self, pending: &mut VecDeque<Job>) -> Result<HashSet<PersonId>, Error> {
        let mut persons: HashSet<PersonId> = HashSet::new();
        let mut submissions: HashSet<String> = HashSet::new();
        let mut claims: Vec<Identifier> = Vec::new();
        {
            let hints = self.shared.hints.lock().expect("hints lock");
            for job in pending.iter_mut() {
                persons.extend(job.stale.drain(..));
                for r in &job.requests {
                    if r.events.is_empty() {
                        continue;
                    }
                    if job.verify {
                        persons.insert(r.person);
                        for e in &r.events {
                            let s = submission_subject(&e.event.source, &e.event.id);
                            if !hints.submissions.contains_key(&s) {
                                submissions.insert(s);
                            }
                        }
                        for c in &r.claims {
                            if identity_subject(c).is_some_and(|s| !hints.claims.contains_key(&s)) {
                                claims.push(c.clone());
                            }
                        }
                    } else if r.expected != ExpectedVersion::NoStream
                        && !hints.persons.contains_key(&r.person)
                    {
                        persons.insert(r.person);
                    }
                }
                job.verify = false;
            }
        }
        if persons.is_empty() && submissions.is_empty() && claims.is_empty() {
            return Ok(persons);
        }
        let shared = &self.shared;
        let people: Vec<PersonId> = persons.iter().copied().collect();
        let tails = futures::future::try_join_all(people.iter().map(|p| shared.person_tail(*p)));
        let records =
            futures::future::try_join_all(submissions.iter().map(|s| shared.submission_at(s)));
        let owners = futures::future::try_join_all(claims.iter().map(|c| shared.owner_of(c)));
        let (tails, _, _) = futures::future::try_join3(tails, records, owners).await?;
        // `person_tail` remembers persons with events; a person without any is a fact too.
        let mut hints = shared.hints.lock().expect("hints lock");
        for (p, t) in people.iter().zip(tails) {
            if t.seq == 0 {
                hints.persons.remove(p);
            } else {
                hints.persons.insert(*p, t);
            }
        }
        Ok(persons)
    }

    /// Publishes `draft` as one atomic batch and says what became of it.
    async fn publish(&self, draft: &Draft) -> Outcome {
        let shared = &self.shared;
        // Let any `read_all` called before this publish learn its head first.
        let mut heads = shared.heads_in_flight.subscribe();
        let _ = heads.wait_for(|n| *n == 0).await;
        let n = draft.messages.len();
        let batch = ulid::Ulid::new().to_string();
        let mut ack = None;
        let mut lost = None;
        for (k, m) in draft.messages.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(header::NATS_BATCH_ID, batch.as_str());
            headers.insert(header::NATS_BATCH_SEQUENCE, (k + 1).to_string().as_str());
            if k == 0 {
                headers.insert(
                    header::NATS_EXPECTED_LAST_SEQUENCE,
                    draft.base.seq.to_string().as_str(),
                );
            }
            if let Some(s) = m.expect_subject {
                headers.insert(
                    header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                    s.to_string().as_str(),
                );
            }
            for (name, value) in &m.headers {
                headers.insert(*name, value.as_str());
            }
            if k + 1 < n {
                // Staged by the server until the commit; no reply needed.
                if let Err(e) = shared
                    .client
                    .publish_with_headers(m.subject.clone(), headers, m.payload.clone())
                    .await
                {
                    lost = Some(format!("a batch message was not sent: {e}"));
                    break;
                }
            } else {
                headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                let msg = PublishMessage::build()
                    .payload(m.payload.clone())
                    .headers(headers);
                match shared.js.send_publish(m.subject.clone(), msg).await {
                    Ok(a) => ack = Some(a),
                    Err(e) => lost = Some(format!("the batch commit was not sent: {e}")),
                }
            }
        }
        Counters::bump(&shared.counters.batches);
        let outcome = match ack {
            None => Outcome::Unresolved(lost.unwrap_or_default()),
            Some(a) => match a.await {
                Ok(a) if a.sequence == draft.seq => Outcome::Stored,
                Ok(a) => Outcome::Refused(Error::Corrupt(format!(
                    "a batch meant for stream sequences {}..={} was acknowledged at {}",
                    draft.base.seq + 1,
                    draft.seq,
                    a.sequence
                ))),
                Err(e) => classify(&e),
            },
        };
        match outcome {
            Outcome::Unresolved(why) => {
                if self.landed(draft).await {
                    Counters::bump(&shared.counters.landed_after_lost_ack);
                    Outcome::Stored
                } else {
                    tracing::debug!(why = %why, "batch unresolved; retrying");
                    Counters::bump(&shared.counters.retries);
                    Outcome::Unresolved(why)
                }
            }
            Outcome::Conflict(why) => {
                tracing::debug!(why = %why, "batch refused (wrong last sequence); re-reading");
                Counters::bump(&shared.counters.conflicts);
                Outcome::Conflict(why)
            }
            other => other,
        }
    }

    /// Whether `draft` is stored although its ack was lost: batches are all or nothing,
    /// so its last message at its predicted sequence (same subject, same bytes) means the
    /// whole batch is there. One quick get; if it cannot be answered, "not known" (the
    /// batch is planned again on re-read facts, which finds it if it landed later).
    async fn landed(&self, draft: &Draft) -> bool {
        let last = draft.messages.last().expect("a non-empty batch");
        let stream = &self.shared.stream;
        let get = stream.raw_message_builder().sequence(draft.seq).send();
        match tokio::time::timeout(self.shared.config.request_timeout, get).await {
            Ok(Ok(m)) => m.subject.as_str() == last.subject && m.payload == last.payload,
            _ => false,
        }
    }

    /// Makes what a stored batch wrote this writer's knowledge.
    fn stored(&mut self, draft: &Draft) {
        self.tail = Some(StreamTail {
            seq: draft.seq,
            position: draft.position,
            recorded_at: draft.recorded_at,
        });
        Counters::add(&self.shared.counters.messages, draft.messages.len() as u64);
        let mut hints = self.shared.hints.lock().expect("hints lock");
        for (p, t) in &draft.persons {
            hints.person(*p, *t);
        }
        for (s, p) in &draft.claims {
            hints.claim(s.clone(), *p);
        }
        for (s, p) in &draft.submissions {
            hints.submission(s.clone(), *p);
        }
    }
}

/// Where a fact came from, which decides what a mismatch means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Written by an earlier request of the same job: certain if the job is.
    Job,
    /// Being written by another job of this draft: not yet certain.
    Draft,
    /// Read in this round, or a fact that never changes: certain.
    Known,
    /// A hint (cached tail) or an assumption (`NoStream`): the server checks it.
    Assumed,
}

/// What one job adds to the draft, kept apart until the whole job is accepted.
#[derive(Default)]
struct Staging {
    messages: Vec<Outgoing>,
    persons: HashMap<PersonId, PersonTail>,
    claims: HashMap<String, PersonId>,
    submissions: HashMap<String, PriorSubmission>,
}

/// What planning a job may rely on besides the draft.
struct Facts<'a> {
    hints: &'a super::Hints,
    /// Persons whose last event was read this round.
    fresh: &'a HashSet<PersonId>,
    /// The job's own earlier placements in batches whose outcome was not known.
    attempted: &'a HashSet<(String, u64)>,
}

/// Plans one job (all its requests, in order) on top of `draft`.
fn plan(requests: &[AppendRequest], draft: &mut Draft, facts: &Facts, max_payload: usize) -> Plan {
    let (hints, fresh) = (facts.hints, facts.fresh);
    let mut st = Staging::default();
    let (mut seq, mut position, mut recorded_at) = (draft.seq, draft.position, draft.recorded_at);
    let mut results = Vec::with_capacity(requests.len());
    for r in requests {
        let person = r.person;
        // One slot per event: recorded before, new, or a repeat of a new one earlier in
        // this same request (recorded once).
        enum Slot {
            Recorded(Appended),
            Fresh,
            SameAs(usize),
        }
        let mut slots = Vec::with_capacity(r.events.len());
        let mut fresh_events: Vec<(String, usize)> = Vec::new();
        for (i, e) in r.events.iter().enumerate() {
            let subject = submission_subject(&e.event.source, &e.event.id);
            if let Some(k) = fresh_events.iter().position(|(s, _)| *s == subject) {
                if r.events[fresh_events[k].1].digest() != e.digest() {
                    return Plan::Refused(Error::IdempotencyConflict {
                        event_source: e.event.source.clone(),
                        id: e.event.id.clone(),
                        position: 0,
                    });
                }
                slots.push(Slot::SameAs(k));
                continue;
            }
            let prior = if let Some(p) = st.submissions.get(&subject) {
                Some(*p)
            } else if draft.submissions.contains_key(&subject) {
                return Plan::Wait;
            } else {
                hints.submissions.get(&subject).copied()
            };
            match prior {
                Some(p) if p.digest == e.digest() => slots.push(Slot::Recorded(Appended {
                    position: p.position,
                    person: p.person,
                    // Recorded by this very call's batch whose ack was lost: new.
                    duplicate: !facts.attempted.contains(&(subject.clone(), p.position)),
                })),
                Some(p) => {
                    return Plan::Refused(Error::IdempotencyConflict {
                        event_source: e.event.source.clone(),
                        id: e.event.id.clone(),
                        position: p.position,
                    })
                }
                None => {
                    slots.push(Slot::Fresh);
                    fresh_events.push((subject, i));
                }
            }
        }
        if fresh_events.is_empty() {
            results.push(
                slots
                    .into_iter()
                    .filter_map(|s| match s {
                        Slot::Recorded(a) => Some(a),
                        _ => None,
                    })
                    .collect(),
            );
            continue;
        }
        // The person's last event, and how sure we are of it.
        let (tail, source) = if let Some(t) = st.persons.get(&person) {
            (*t, Source::Job)
        } else if let Some(t) = draft.persons.get(&person) {
            (*t, Source::Draft)
        } else if fresh.contains(&person) {
            (
                hints
                    .persons
                    .get(&person)
                    .copied()
                    .unwrap_or(PersonTail::NONE),
                Source::Known,
            )
        } else if let Some(t) = hints.persons.get(&person) {
            (*t, Source::Assumed)
        } else if r.expected == ExpectedVersion::NoStream {
            (PersonTail::NONE, Source::Assumed)
        } else {
            return Plan::Read(vec![person]);
        };
        if !r.expected.admits(tail.position) {
            return match source {
                Source::Job | Source::Known => Plan::Refused(Error::Conflict {
                    person,
                    expected: r.expected.to_string(),
                    actual: tail.position,
                }),
                Source::Draft => Plan::Wait,
                Source::Assumed => Plan::Read(vec![person]),
            };
        }
        // Already written to in this batch: the server allows no subject check on it.
        let checked_in_batch = matches!(source, Source::Job | Source::Draft);
        // Claims: create-only, unless already this person's.
        let mut claims: Vec<&Identifier> = r.claims.iter().collect();
        claims.sort();
        claims.dedup();
        for c in claims {
            let Some(subject) = identity_subject(c) else {
                continue; // the person's own id: claimed by the person's first event
            };
            let owner = if let Some(o) = st.claims.get(&subject) {
                Some(*o)
            } else if let Some(o) = draft.claims.get(&subject) {
                if *o != person {
                    return Plan::Wait;
                }
                Some(*o)
            } else {
                hints.claims.get(&subject).copied()
            };
            match owner {
                Some(o) if o == person => {}
                Some(owner) => {
                    return Plan::Refused(Error::IdentityConflict {
                        identifier: c.clone(),
                        owner,
                        person,
                    })
                }
                None => {
                    seq += 1;
                    st.claims.insert(subject.clone(), person);
                    st.messages.push(Outgoing {
                        subject,
                        payload: Bytes::from(encode_claim(person)),
                        headers: Vec::new(),
                        expect_subject: Some(0),
                    });
                }
            }
        }
        // The events: a submission record, then the event, each.
        let mut prev = tail;
        let mut first = !checked_in_batch;
        let mut positions = Vec::with_capacity(fresh_events.len());
        for (subject, i) in &fresh_events {
            let e = &r.events[*i];
            position += 1;
            // Submissions stamp their time before they queue here (and other processes
            // stamp theirs), so a later position may carry an earlier stamp: clamp it
            // before it is hashed, so "recorded by T" is always a prefix of the log.
            let at = recorded_at.map_or(e.recorded_at, |last| e.recorded_at.max(last));
            recorded_at = Some(at);
            let body = StoredBody::encode(person, at, prev.hash, &e.event);
            if max_payload > 0 && body.len() + 1024 > max_payload {
                return Plan::Refused(unavailable(
                    "appending to the stream",
                    format!(
                        "the event is {} bytes, too large for the server's max_payload of {max_payload}",
                        body.len()
                    ),
                ));
            }
            let hash = Hash::of(&body);
            // The record goes at seq + 1, its event right behind it.
            let event_seq = seq + 2;
            seq = event_seq;
            let prior = PriorSubmission {
                position,
                person,
                digest: e.digest(),
            };
            st.submissions.insert(subject.clone(), prior);
            st.messages.push(Outgoing {
                subject: subject.clone(),
                payload: Bytes::from(
                    SubmissionRecord {
                        prior,
                        seq: event_seq,
                    }
                    .encode(),
                ),
                headers: Vec::new(),
                expect_subject: Some(0),
            });
            st.messages.push(Outgoing {
                subject: subject_of(person),
                payload: Bytes::from(body),
                headers: vec![
                    (HASH_HEADER, hash.to_hex()),
                    (PREV_SEQ_HEADER, prev.seq.to_string()),
                    (POSITION_HEADER, position.to_string()),
                ],
                expect_subject: first.then_some(prev.seq),
            });
            first = false;
            prev = PersonTail {
                seq: event_seq,
                position,
                hash,
            };
            positions.push(position);
        }
        st.persons.insert(person, prev);
        let mut fresh_positions = positions.iter();
        results.push(
            slots
                .into_iter()
                .map(|s| match s {
                    Slot::Recorded(a) => a,
                    Slot::Fresh => Appended {
                        position: *fresh_positions.next().expect("one position per new event"),
                        person,
                        duplicate: false,
                    },
                    Slot::SameAs(k) => Appended {
                        position: positions[k],
                        person,
                        duplicate: true,
                    },
                })
                .collect(),
        );
    }
    if st.messages.is_empty() {
        return Plan::Staged(results);
    }
    if draft.messages.len() + st.messages.len() > MAX_BATCH_MESSAGES {
        if draft.messages.is_empty() {
            return Plan::Refused(
                JetStreamError::TooLarge(format!(
                    "this submission needs {} messages (a submission record and an event per \
                     event, a claim per new identifier), more than the {MAX_BATCH_MESSAGES} one \
                     atomic batch may hold; split it",
                    st.messages.len()
                ))
                .into(),
            );
        }
        return Plan::Wait;
    }
    draft.seq = seq;
    draft.position = position;
    draft.recorded_at = recorded_at;
    draft.messages.append(&mut st.messages);
    draft.persons.extend(st.persons);
    draft.claims.extend(st.claims);
    draft.submissions.extend(st.submissions);
    Plan::Staged(results)
}
