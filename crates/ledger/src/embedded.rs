//! The embedded backend: the event log in one sled tree, written by a single writer
//! thread with group commit (every append waiting while a flush runs shares the next
//! flush), so durability costs one fsync per group, not per event. The commit is
//! pipelined: a second thread flushes and fdatasyncs applied groups and answers their
//! callers while the writer prepares the next group (`Writer::run` says why that is safe).
//!
//! Key layout (one tree, so that one `apply_batch` is atomic across all of it; numbers
//! are big-endian so keys sort by number):
//! - `L` position           -> hash (32 bytes) ++ stored body
//! - `E` person position    -> hash (32 bytes)  person index for `read_person`; the
//!   person's last `E` key is its version and head hash
//! - `I` len(source) source id -> position (8) ++ digest (32) ++ person (16)
//! - `X` identifier text    -> person (16) ++ position (8)  identity index, create-only
//!
//! Three keys per event (`L`, `E`, `I`) plus one per new identifier. Stores written before
//! issue 11 also hold `P` person -> version ++ head hash, rewritten with every event, and
//! empty `E` values: both are still read correctly (an empty `E` value sends the writer to
//! the `L` entry for the hash), and the `P` keys are no longer read or written.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use throughcare_events::{EncodedEvent, Hash, Identifier, PersonId, RecordedEvent, StoredBody};
use tokio::sync::{mpsc, oneshot, watch};

use crate::log::{AppendRequest, Appended, EventLog, NewEvent, PriorSubmission, StoredEntry};
use crate::Error;

/// Most appends folded into one group commit.
const MAX_GROUP: usize = 1024;
/// Person heads the writer keeps in memory (about 60 bytes each).
const CACHED_HEADS: usize = 200_000;
/// Events read from sled per page by streams.
const PAGE: u64 = 512;

/// The sled-backed event log. Cloning shares the same log.
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    jobs: mpsc::Sender<Job>,
    /// The last durable position; readers never look past it.
    durable: watch::Receiver<u64>,
    /// The access log in the same database (its own tree and writer thread).
    access: crate::access::EmbeddedAccessLog,
}

/// One call of the log: a single `append` is a job of one request; `append_all` is one
/// job of several, staged all or nothing inside the group that carries it.
struct Job {
    requests: Vec<AppendRequest>,
    /// Each event's canonical JSON and digest, made by the caller's task before it queues
    /// (in parallel with other callers), so the single writer only splices and hashes.
    encoded: Vec<Vec<EncodedEvent>>,
    reply: Reply,
}

fn key_log(position: u64) -> [u8; 9] {
    let mut k = [b'L'; 9];
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}
fn key_person_event(person: PersonId, position: u64) -> [u8; 25] {
    let mut k = [b'E'; 25];
    k[1..17].copy_from_slice(&person.to_bytes());
    k[17..].copy_from_slice(&position.to_be_bytes());
    k
}
fn key_person_prefix(person: PersonId) -> [u8; 17] {
    let mut k = [b'E'; 17];
    k[1..].copy_from_slice(&person.to_bytes());
    k
}
fn key_submission(source: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + source.len() + id.len());
    k.push(b'I');
    k.extend_from_slice(&(source.len() as u16).to_be_bytes());
    k.extend_from_slice(source.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}
fn key_identifier(identifier: &Identifier) -> Vec<u8> {
    let mut k = vec![b'X'];
    k.extend_from_slice(identifier.to_string().as_bytes());
    k
}
fn person_from(bytes: &[u8]) -> PersonId {
    PersonId::from_bytes(bytes[..16].try_into().expect("16-byte person id"))
}
fn u64_from(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[..8].try_into().expect("8-byte number"))
}
fn prior_from(v: &[u8]) -> PriorSubmission {
    PriorSubmission {
        position: u64_from(&v[..8]),
        digest: v[8..40].try_into().expect("32-byte digest"),
        person: person_from(&v[40..56]),
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(dir)
            // Mostly read once in order (rebuild, subscribe); the write path keeps its own
            // journey cache, so a small page cache keeps memory flat as the log grows.
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let tail = db.scan_prefix([b'L']).next_back().transpose()?;
        let last = tail.as_ref().map_or(0, |(k, _)| u64_from(&k[1..]));
        let last_recorded_at = match &tail {
            Some((k, v)) => Some(decode(u64_from(&k[1..]), v)?.recorded_at),
            None => None,
        };
        let access = crate::access::EmbeddedAccessLog::open(&db, dir)?;
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let (durable_tx, durable_rx) = watch::channel(last);
        // sled's flush writes with sync_file_range, which neither flushes the drive's write
        // cache nor file metadata; an fdatasync of its data file after each group's flush
        // makes an acknowledged append survive power loss too, not only a process crash.
        let data_file = std::fs::File::open(dir.join("db")).map_err(|e| {
            Error::Unavailable(format!(
                "cannot open the ledger's data file for syncing: {e}"
            ))
        })?;
        let poisoned = Arc::new(std::sync::OnceLock::new());
        let flushed = Arc::new(Flushed::default());
        let (applied_tx, applied_rx) = std::sync::mpsc::channel();
        let flusher = Flusher {
            db: db.clone(),
            data_file,
            durable: durable_tx,
            poisoned: poisoned.clone(),
            flushed: flushed.clone(),
        };
        let writer = Writer {
            db: db.clone(),
            next: last + 1,
            last_recorded_at,
            heads: HashMap::new(),
            applied: applied_tx,
            poisoned,
            flushed,
            handed: 0,
        };
        std::thread::Builder::new()
            .name("ledger-flusher".into())
            .spawn(move || flusher.run(applied_rx))
            .map_err(|e| Error::Unavailable(format!("cannot start the flusher thread: {e}")))?;
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(EmbeddedLog {
            inner: Arc::new(Inner {
                db,
                jobs: tx,
                durable: durable_rx,
                access,
            }),
        })
    }

    /// The access log kept in this database: the sled tree `access`, with its own writer
    /// thread (one per database; every clone hands out the same log).
    pub fn access_log(&self) -> crate::access::EmbeddedAccessLog {
        self.inner.access.clone()
    }

    fn durable(&self) -> u64 {
        *self.inner.durable.borrow()
    }

    /// Hands a job to the writer thread and waits for its group commit.
    async fn submit_job(&self, requests: Vec<AppendRequest>) -> Result<Vec<Vec<Appended>>, Error> {
        let (reply, rx) = oneshot::channel();
        let encoded = requests
            .iter()
            .map(|r| {
                r.events
                    .iter()
                    .map(|e| EncodedEvent::new(&e.event))
                    .collect()
            })
            .collect();
        self.inner
            .jobs
            .send(Job {
                requests,
                encoded,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable("the ledger writer stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("the ledger writer stopped".into()))?
    }

    /// Waits until `position` is durable (a retry may find a submission whose first
    /// attempt is still in its group commit).
    async fn wait_durable(&self, position: u64) -> Result<(), Error> {
        let mut rx = self.inner.durable.clone();
        rx.wait_for(|d| *d >= position)
            .await
            .map(|_| ())
            .map_err(|_| Error::Unavailable("the ledger writer stopped".into()))
    }
}

/// Reads positions `from..=to` (at most [`PAGE`] of them).
fn read_range(db: &sled::Db, from: u64, to: u64) -> Result<Vec<RecordedEvent>, Error> {
    read_page(db, from, to, decode)
}

/// Reads positions `from..=to` (at most [`PAGE`] of them) as their stored bytes alone,
/// each checked against its recorded hash (what [`decode`] checks, without the parse).
fn read_range_stored(db: &sled::Db, from: u64, to: u64) -> Result<Vec<StoredEntry>, Error> {
    read_page(db, from, to, |position, value| {
        let body = value
            .get(32..)
            .ok_or_else(|| Error::Corrupt(format!("entry at position {position} is truncated")))?;
        if Hash::of(body).0[..] != value[..32] {
            return Err(Error::Corrupt(format!(
                "hash mismatch at position {position}: the stored bytes changed"
            )));
        }
        let stored = std::str::from_utf8(body)
            .map_err(|_| Error::Corrupt(format!("entry at position {position} is not UTF-8")))?;
        Ok(StoredEntry {
            position,
            stored: stored.into(),
        })
    })
}

fn read_page<T>(
    db: &sled::Db,
    from: u64,
    to: u64,
    read: impl Fn(u64, &[u8]) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    for item in db.range(key_log(from)..=key_log(to)).take(PAGE as usize) {
        let (k, v) = item?;
        out.push(read(u64_from(&k[1..]), &v)?);
    }
    Ok(out)
}

/// What a log stream yields: an item that knows its position.
trait Positioned: Send + 'static {
    fn position(&self) -> u64;
}

impl Positioned for RecordedEvent {
    fn position(&self) -> u64 {
        self.position
    }
}

impl Positioned for StoredEntry {
    fn position(&self) -> u64 {
        self.position
    }
}

fn decode(position: u64, value: &[u8]) -> Result<RecordedEvent, Error> {
    if value.len() < 32 {
        return Err(Error::Corrupt(format!(
            "entry at position {position} is truncated"
        )));
    }
    let e = StoredBody::decode(position, &value[32..])?;
    if e.hash.0[..] != value[..32] {
        return Err(Error::Corrupt(format!(
            "hash mismatch at position {position}: the stored bytes changed"
        )));
    }
    Ok(e)
}

/// A stream over `[from, limit]` where `limit` follows the durable head when `live`, each
/// page read by `read` (decoded events, or stored bytes alone).
fn log_stream<T: Positioned>(
    log: EmbeddedLog,
    from: u64,
    live: bool,
    read: fn(&sled::Db, u64, u64) -> Result<Vec<T>, Error>,
) -> BoxStream<'static, Result<T, Error>> {
    let fixed_end = log.durable();
    let rx = log.inner.durable.clone();
    let state = (log, from.max(1), Vec::<T>::new().into_iter(), rx, false);
    stream::unfold(
        state,
        move |(log, mut next, mut buf, mut rx, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(e) = buf.next() {
                    return Some((Ok(e), (log, next, buf, rx, false)));
                }
                let end = if live {
                    *rx.borrow_and_update()
                } else {
                    fixed_end
                };
                if next <= end {
                    match read(&log.inner.db, next, end.min(next + PAGE - 1)) {
                        Ok(page) if page.is_empty() => {
                            let e =
                                Error::Corrupt(format!("position {next} is missing from the log"));
                            return Some((Err(e), (log, next, buf, rx, true)));
                        }
                        Ok(page) => {
                            next = page.last().expect("non-empty").position() + 1;
                            buf = page.into_iter();
                        }
                        Err(e) => return Some((Err(e), (log, next, buf, rx, true))),
                    }
                    continue;
                }
                if !live || rx.changed().await.is_err() {
                    return None;
                }
            }
        },
    )
    .boxed()
}

#[async_trait]
impl EventLog for EmbeddedLog {
    #[tracing::instrument(level = "debug", skip_all, fields(person = %request.person))]
    async fn append(&self, request: AppendRequest) -> Result<Vec<Appended>, Error> {
        let mut out = self.submit_job(vec![request]).await?;
        out.pop()
            .ok_or_else(|| Error::Corrupt("the writer answered no request".into()))
    }

    /// One job for the writer: every request is staged into the same sled batch and
    /// shares one group commit, or none is (the first refusal fails the whole call).
    #[tracing::instrument(level = "debug", skip_all, fields(requests = requests.len()))]
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<Vec<Appended>>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        self.submit_job(requests).await
    }

    async fn read_person(&self, person: PersonId, from: u64) -> Result<Vec<RecordedEvent>, Error> {
        let durable = self.durable();
        let db = &self.inner.db;
        let mut out = Vec::new();
        let start = key_person_event(person, from);
        let end = key_person_event(person, u64::MAX);
        for item in db.range(start..=end) {
            let (k, _) = item?;
            let position = u64_from(&k[17..]);
            if position > durable {
                break;
            }
            let v = db.get(key_log(position))?.ok_or_else(|| {
                Error::Corrupt(format!("person index names missing position {position}"))
            })?;
            out.push(decode(position, &v)?);
        }
        Ok(out)
    }

    fn read_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        log_stream(self.clone(), from, false, read_range)
    }

    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, Error> {
        if position == 0 || position > self.durable() {
            return Ok(None);
        }
        match self.inner.db.get(key_log(position))? {
            Some(v) => decode(position, &v).map(Some),
            None => Err(Error::Corrupt(format!(
                "position {position} is missing from the log"
            ))),
        }
    }

    fn subscribe(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>> {
        log_stream(self.clone(), from, true, read_range)
    }

    fn subscribe_stored(&self, from: u64) -> BoxStream<'static, Result<StoredEntry, Error>> {
        log_stream(self.clone(), from, true, read_range_stored)
    }

    async fn head(&self) -> Result<u64, Error> {
        Ok(self.durable())
    }

    async fn lookup_identifier(&self, identifier: &Identifier) -> Result<Option<PersonId>, Error> {
        let Some(v) = self.inner.db.get(key_identifier(identifier))? else {
            return Ok(None);
        };
        // A claim is acknowledged with its append: wait for that, as every read does.
        if let Some(position) = v.get(16..24) {
            self.wait_durable(u64_from(position)).await?;
        }
        Ok(Some(person_from(&v)))
    }

    async fn lookup_submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<PriorSubmission>, Error> {
        let Some(v) = self.inner.db.get(key_submission(source, id))? else {
            return Ok(None);
        };
        let prior = prior_from(&v);
        self.wait_durable(prior.position).await?;
        Ok(Some(prior))
    }
}

/// The single writer: owns position assignment and every write to the tree. It prepares
/// and applies one group after another and leaves each group's durability and replies to
/// the [`Flusher`] (see [`Writer::run`] for why that is safe).
struct Writer {
    db: sled::Db,
    next: u64,
    /// The `recorded_at` of the last event staged: no later position records an earlier
    /// time, so "recorded by T" is always a prefix of the log (DESIGN.md "As of").
    last_recorded_at: Option<DateTime<Utc>>,
    /// Version and head hash of recently written persons (groups applied to the tree), so
    /// an append does not read its person's head from the tree.
    heads: HashMap<PersonId, (u64, Hash)>,
    /// Applied groups, in order, for the flusher.
    applied: std::sync::mpsc::Sender<Applied>,
    /// Set once, by whichever thread sees the store fail first; every later group is refused.
    poisoned: Arc<std::sync::OnceLock<String>>,
    /// How many groups the flusher has flushed into sled's file (see [`Writer::run`]).
    flushed: Arc<Flushed>,
    /// How many groups this writer has handed to the flusher.
    handed: u64,
}

/// The count of groups whose sled flush has returned, for the writer to wait on.
#[derive(Default)]
struct Flushed {
    groups: std::sync::Mutex<u64>,
    changed: std::sync::Condvar,
}

impl Flushed {
    fn reach(&self, groups: u64) {
        let mut g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        *g = (*g).max(groups);
        self.changed.notify_all();
    }

    fn wait_for(&self, groups: u64) {
        let mut g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        while *g < groups {
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What a job is answered: one `Vec<Appended>` per request, or why none was recorded.
type Answer = Result<Vec<Vec<Appended>>, Error>;
type Reply = oneshot::Sender<Answer>;

/// A group the writer applied to the tree (or found nothing to write for), waiting for a
/// flush + fdatasync that started after it was applied before its answers go out.
struct Applied {
    /// The group's number in hand-over order (1, 2, ...).
    seq: u64,
    /// The last position numbered so far: durable once this group is flushed.
    last: u64,
    /// Whether the group put anything in the tree. A group of duplicates and refusals needs
    /// no flush of its own, only every earlier group's (its answers were decided on them).
    written: bool,
    replies: Vec<(Reply, Answer)>,
}

/// The second half of the group commit: makes applied groups durable, in order, then
/// advances the durable watermark and answers their callers.
struct Flusher {
    db: sled::Db,
    data_file: std::fs::File,
    durable: watch::Sender<u64>,
    poisoned: Arc<std::sync::OnceLock<String>>,
    flushed: Arc<Flushed>,
}

impl Flusher {
    fn run(self, applied: std::sync::mpsc::Receiver<Applied>) {
        while let Ok(first) = applied.recv() {
            // Every group applied by now shares the next flush.
            let mut ready = vec![first];
            while let Ok(more) = applied.try_recv() {
                ready.push(more);
            }
            let seq = ready.iter().map(|a| a.seq).max().unwrap_or(0);
            if let Some(why) = self.poisoned.get() {
                self.flushed.reach(seq);
                refuse(ready, why);
                continue;
            }
            let written = ready.iter().any(|a| a.written);
            let flushed = if written {
                self.db.flush().map(|_| ())
            } else {
                Ok(())
            };
            if let Err(e) = &flushed {
                // Poisoned before the writer is let go, so it applies nothing more.
                self.poison(e);
            }
            // sled's file now holds these groups; the writer may apply the next one (the
            // fdatasync below needs no sled lock).
            self.flushed.reach(seq);
            let synced = match flushed {
                Ok(()) if written => self.data_file.sync_data().map_err(sled::Error::from),
                other => other,
            };
            match synced {
                Ok(()) => {
                    let last = ready.iter().map(|a| a.last).max().unwrap_or(0);
                    self.durable.send_if_modified(|d| {
                        let moved = last > *d;
                        *d = (*d).max(last);
                        moved
                    });
                    for group in ready {
                        for (reply, result) in group.replies {
                            let _ = reply.send(result);
                        }
                    }
                }
                Err(e) => refuse(ready, self.poison(&e)),
            }
        }
    }

    /// Marks the log failed (the first failure's reason stays) and returns the reason.
    fn poison(&self, e: &sled::Error) -> &str {
        if self.poisoned.get().is_none() {
            tracing::error!(error = %e, "group commit failed");
        }
        self.poisoned
            .get_or_init(|| format!("the ledger store failed and needs a restart: {e}"))
    }
}

/// Answers every caller of `groups` with the store failure `why` (nothing of theirs is
/// acknowledged).
fn refuse(groups: Vec<Applied>, why: &str) {
    for group in groups {
        for (reply, _) in group.replies {
            let _ = reply.send(Err(Error::Unavailable(why.to_string())));
        }
    }
}

/// Waits for one job, then takes every job already queued behind it (up to `max`): the
/// group that shares one flush. `None` once every sender is gone.
pub(crate) fn next_group<J>(jobs: &mut mpsc::Receiver<J>, max: usize) -> Option<Vec<J>> {
    let mut group = vec![jobs.blocking_recv()?];
    while group.len() < max {
        match jobs.try_recv() {
            Ok(j) => group.push(j),
            Err(_) => break,
        }
    }
    Some(group)
}

/// Changes made by earlier appends of the group that is being built (not yet in sled).
#[derive(Default)]
struct Overlay {
    persons: HashMap<PersonId, (u64, Hash)>,
    submissions: HashMap<Vec<u8>, PriorSubmission>,
    identities: HashMap<Vec<u8>, PersonId>,
}

impl Overlay {
    /// An overlay sized for a group of `jobs` (most jobs are one event for one person), so
    /// the writer does not rehash it as the group grows.
    fn for_group(jobs: usize) -> Overlay {
        Overlay {
            persons: HashMap::with_capacity(2 * jobs),
            submissions: HashMap::with_capacity(2 * jobs),
            identities: HashMap::new(),
        }
    }

    fn absorb(&mut self, other: Overlay) {
        self.persons.extend(other.persons);
        self.submissions.extend(other.submissions);
        self.identities.extend(other.identities);
    }
}

/// What one job has staged so far: its writes and its overlay, on top of the group's.
/// Merged into the group only when every request of the job is accepted, so a refused
/// request leaves no trace of the job's earlier requests.
#[derive(Default)]
struct Staged {
    writes: Vec<(Vec<u8>, Vec<u8>)>,
    overlay: Overlay,
}

impl Writer {
    /// Group commit, pipelined: prepare every job of a group into one sled batch, apply
    /// it, hand the group to the flusher, and go on preparing the next group while the
    /// flusher makes the earlier ones durable.
    //
    // Why this acknowledges nothing that a crash can lose, and never answers from state
    // that is not durable:
    // - Nothing is answered here. The flusher answers a group only after a sled flush and an
    //   fdatasync that both started after the group's `apply_batch` returned (groups reach
    //   it in apply order, after the apply), so everything the group wrote, and every group
    //   applied before it, is on disk when its callers hear back.
    // - A group may be decided on earlier groups that are applied but not yet durable (its
    //   duplicates, conflicts and versions come from the tree). Its answers wait for its
    //   own flush, which covers those groups too, so no caller learns of an undurable write,
    //   even a group that wrote nothing waits for every earlier group's flush.
    // - Readers never look past the durable watermark, which the flusher advances only after
    //   the flush and fdatasync of the groups up to it.
    // - A crash loses at most groups applied after the last completed flush, none of them
    //   answered. sled recovers its log in order, stopping before a batch that is not
    //   wholly on disk (`apply_batch` is atomic on recovery), so what survives is a prefix
    //   of the applied groups: positions stay gap-free and every acknowledged group is in it.
    // - When the store fails (an apply, flush or fdatasync error), the log is poisoned: the
    //   group that failed and every group after it, applied or not, is refused, and the
    //   writer stops applying. A restart recovers a prefix as above.
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(mut group) = crate::embedded::next_group(&mut jobs, MAX_GROUP) {
            if let Some(why) = self.poisoned.get() {
                for job in group {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
                continue;
            }
            let mut batch = sled::Batch::default();
            // Sized for what usually joins while it is prepared, too.
            let mut overlay = Overlay::for_group(2 * group.len());
            let start = self.next;
            let mut results: Vec<_> = group
                .iter()
                .map(|job| self.prepare_job(&job.requests, &job.encoded, &mut batch, &mut overlay))
                .collect();
            // sled's flush holds its global lock shared while it writes; an apply queued for
            // that lock exclusively would stall every reader behind it. So the group is
            // prepared while the earlier groups flush, and applied once they have.
            self.flushed.wait_for(self.handed);
            if let Some(why) = self.poisoned.get() {
                // An earlier group's flush failed: nothing of this group goes in.
                for job in group {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
                continue;
            }
            // Whatever arrived meanwhile joins this group.
            while group.len() < MAX_GROUP {
                let Ok(job) = jobs.try_recv() else { break };
                results.push(self.prepare_job(
                    &job.requests,
                    &job.encoded,
                    &mut batch,
                    &mut overlay,
                ));
                group.push(job);
            }
            let written = self.next > start || !overlay.identities.is_empty();
            let applied = if written {
                self.db.apply_batch(batch)
            } else {
                Ok(())
            };
            if let Err(e) = applied {
                // The tree may hold part of the group; refuse further writes rather than
                // number new events on top of an unknown state.
                tracing::error!(error = %e, "group commit failed");
                let why = self
                    .poisoned
                    .get_or_init(|| format!("the ledger store failed and needs a restart: {e}"));
                for job in group {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
                continue;
            }
            // The tree holds the group now: the next group is decided on top of it.
            self.remember_heads(overlay.persons);
            let replies = group
                .into_iter()
                .map(|job| job.reply)
                .zip(results)
                .collect();
            self.handed += 1;
            let handed = self.applied.send(Applied {
                seq: self.handed,
                last: self.next - 1,
                written,
                replies,
            });
            if let Err(std::sync::mpsc::SendError(group)) = handed {
                // The flusher is gone (it stops only after this thread): nothing more can
                // become durable.
                let why = self
                    .poisoned
                    .get_or_init(|| "the ledger flusher stopped".into());
                refuse(vec![group], why);
                self.flushed.reach(self.handed);
            }
        }
    }

    /// A person's version and head hash from the tree: its last `E` key, whose value is
    /// the hash (empty in stores written before issue 11: then the `L` entry's hash).
    fn head_from_tree(&self, person: PersonId) -> Result<(u64, Hash), Error> {
        let Some((k, v)) = self
            .db
            .scan_prefix(key_person_prefix(person))
            .next_back()
            .transpose()?
        else {
            return Ok((0, Hash::ZERO));
        };
        let position = u64_from(&k[17..]);
        let hash = match v.get(..32) {
            Some(h) => h,
            None => &self.db.get(key_log(position))?.ok_or_else(|| {
                Error::Corrupt(format!("person index names missing position {position}"))
            })?[..32],
        };
        Ok((position, Hash(hash.try_into().expect("32-byte hash"))))
    }

    /// Keeps the heads a committed group moved on, for the persons' next appends.
    fn remember_heads(&mut self, persons: HashMap<PersonId, (u64, Hash)>) {
        if self.heads.len() + persons.len() > CACHED_HEADS {
            // Crude but bounded: a person left out is read from the tree again.
            self.heads.clear();
        }
        self.heads.extend(persons);
    }

    /// Checks every request of one job against the tree, the group so far and the job's
    /// earlier requests, and stages the job's writes into `batch` only if all are accepted.
    /// On a refusal the positions and clock the job took are given back, so the next job
    /// numbers on as if this one had never been seen.
    fn prepare_job(
        &mut self,
        requests: &[AppendRequest],
        encoded: &[Vec<EncodedEvent>],
        batch: &mut sled::Batch,
        overlay: &mut Overlay,
    ) -> Result<Vec<Vec<Appended>>, Error> {
        let (next, last_recorded_at) = (self.next, self.last_recorded_at);
        let mut staged = Staged::default();
        let mut out = Vec::with_capacity(requests.len());
        for (req, enc) in requests.iter().zip(encoded) {
            match self.prepare(req, enc, overlay, &mut staged) {
                Ok(appended) => out.push(appended),
                Err(e) => {
                    self.next = next;
                    self.last_recorded_at = last_recorded_at;
                    return Err(e);
                }
            }
        }
        for (k, v) in staged.writes {
            batch.insert(k, v);
        }
        overlay.absorb(staged.overlay);
        Ok(out)
    }

    /// Checks one append against the tree plus the group and job so far and stages its
    /// writes into `staged`. Nothing is staged unless the whole append is accepted.
    fn prepare(
        &mut self,
        req: &AppendRequest,
        encoded: &[EncodedEvent],
        group: &Overlay,
        staged: &mut Staged,
    ) -> Result<Vec<Appended>, Error> {
        // One slot per event: already recorded, new, or a repeat of a new one earlier in
        // this same request (recorded once).
        enum Slot {
            Recorded(Appended),
            Fresh,
            SameAs(usize),
        }
        let mut slots = Vec::with_capacity(req.events.len());
        let mut fresh: Vec<(Vec<u8>, &NewEvent, &EncodedEvent)> = Vec::new();
        for (e, enc) in req.events.iter().zip(encoded) {
            let key = key_submission(&e.event.source, &e.event.id);
            if let Some(i) = fresh.iter().position(|(k, _, _)| *k == key) {
                if fresh[i].2.digest != enc.digest {
                    return Err(Error::IdempotencyConflict {
                        event_source: e.event.source.clone(),
                        id: e.event.id.clone(),
                        position: 0,
                    });
                }
                slots.push(Slot::SameAs(i));
                continue;
            }
            let prior = match staged
                .overlay
                .submissions
                .get(&key)
                .or_else(|| group.submissions.get(&key))
            {
                Some(p) => Some(*p),
                None => self.db.get(&key)?.map(|v| prior_from(&v)),
            };
            match prior {
                Some(p) if p.digest == enc.digest => slots.push(Slot::Recorded(Appended {
                    position: p.position,
                    person: p.person,
                    duplicate: true,
                })),
                Some(p) => {
                    return Err(Error::IdempotencyConflict {
                        event_source: e.event.source.clone(),
                        id: e.event.id.clone(),
                        position: p.position,
                    })
                }
                None => {
                    slots.push(Slot::Fresh);
                    fresh.push((key, e, enc));
                }
            }
        }
        if fresh.is_empty() {
            return Ok(slots
                .into_iter()
                .filter_map(|s| match s {
                    Slot::Recorded(a) => Some(a),
                    _ => None,
                })
                .collect());
        }
        let person = req.person;
        let (version, mut prev) = match staged
            .overlay
            .persons
            .get(&person)
            .or_else(|| group.persons.get(&person))
        {
            Some(v) => *v,
            None => match self.heads.get(&person) {
                Some(v) => *v,
                None => self.head_from_tree(person)?,
            },
        };
        if !req.expected.admits(version) {
            return Err(Error::Conflict {
                person,
                expected: req.expected.to_string(),
                actual: version,
            });
        }
        let mut claims = Vec::new();
        for identifier in &req.claims {
            let key = key_identifier(identifier);
            let owner = match staged
                .overlay
                .identities
                .get(&key)
                .or_else(|| group.identities.get(&key))
            {
                Some(p) => Some(*p),
                None => self.db.get(&key)?.map(|v| person_from(&v)),
            };
            match owner {
                Some(owner) if owner != person => {
                    return Err(Error::IdentityConflict {
                        identifier: identifier.clone(),
                        owner,
                        person,
                    })
                }
                Some(_) => {}
                None => claims.push(key),
            }
        }
        // Accepted: stage everything.
        let mut positions = Vec::with_capacity(fresh.len());
        for (key, e, enc) in fresh {
            let position = self.next;
            self.next += 1;
            // Concurrent submissions stamp their time before they queue here, so a later
            // position may carry an earlier stamp: clamp it before it is hashed.
            let recorded_at = self
                .last_recorded_at
                .map_or(e.recorded_at, |last| e.recorded_at.max(last));
            self.last_recorded_at = Some(recorded_at);
            let body = StoredBody::assemble(person, recorded_at, prev, &enc.json);
            let hash = Hash::of(&body);
            let mut value = Vec::with_capacity(32 + body.len());
            value.extend_from_slice(&hash.0);
            value.extend_from_slice(&body);
            staged.writes.push((key_log(position).to_vec(), value));
            staged
                .writes
                .push((key_person_event(person, position).to_vec(), hash.0.to_vec()));
            let prior = PriorSubmission {
                position,
                person,
                digest: enc.digest,
            };
            let mut pv = Vec::with_capacity(56);
            pv.extend_from_slice(&position.to_be_bytes());
            pv.extend_from_slice(&prior.digest);
            pv.extend_from_slice(&person.to_bytes());
            staged.writes.push((key.clone(), pv));
            staged.overlay.submissions.insert(key, prior);
            prev = hash;
            positions.push(position);
        }
        let last = *positions.last().expect("at least one fresh event");
        staged.overlay.persons.insert(person, (last, prev));
        for key in claims {
            // The claim carries the position that makes it durable, so a lookup can wait.
            let mut v = person.to_bytes().to_vec();
            v.extend_from_slice(&last.to_be_bytes());
            staged.writes.push((key.clone(), v));
            staged.overlay.identities.insert(key, person);
        }
        let mut next_fresh = positions.iter();
        let mut out: Vec<Appended> = Vec::with_capacity(slots.len());
        let mut fresh_index = Vec::new();
        for slot in slots {
            let a = match slot {
                Slot::Recorded(a) => a,
                Slot::Fresh => {
                    let position = *next_fresh.next().expect("one position per fresh event");
                    fresh_index.push(position);
                    Appended {
                        position,
                        person,
                        duplicate: false,
                    }
                }
                Slot::SameAs(i) => Appended {
                    position: fresh_index[i],
                    person,
                    duplicate: true,
                },
            };
            out.push(a);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;
    use throughcare_events::{validate_body, verify_chain, Event, Submission};

    use super::*;
    use crate::log::ExpectedVersion;

    fn event(id: &str) -> Event {
        let body = json!({
            "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
            "type": "throughcare.release_date.set.v1", "time": "2026-11-01T09:00:00Z",
            "data": { "person": { "nomis": "A1234BC" }, "date": "2027-01-15", "date_type": "CRD" },
        });
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
        match validate_body(body.to_string().as_bytes(), now) {
            Ok(Submission::One(e)) => *e,
            other => panic!("not one valid event: {other:?}"),
        }
    }

    /// Writes two events for `person` the way the log did before issue 11: `P` head keys
    /// rewritten per event and empty `E` values.
    fn write_legacy_store(dir: &Path, person: PersonId) -> Hash {
        let db = sled::open(dir).expect("open sled");
        let mut prev = Hash::ZERO;
        for position in 1..=2u64 {
            let e = event(&format!("legacy-{position}"));
            let at = Utc
                .with_ymd_and_hms(2026, 11, 20, 10, 0, position as u32)
                .unwrap();
            let body = StoredBody::encode(person, at, prev, &e);
            let hash = Hash::of(&body);
            let mut value = hash.0.to_vec();
            value.extend_from_slice(&body);
            db.insert(key_log(position), value).unwrap();
            db.insert(key_person_event(person, position), &[][..])
                .unwrap();
            let mut sub = position.to_be_bytes().to_vec();
            sub.extend_from_slice(&e.digest());
            sub.extend_from_slice(&person.to_bytes());
            db.insert(key_submission(&e.source, &e.id), sub).unwrap();
            let mut head = [b'P'; 17];
            head[1..].copy_from_slice(&person.to_bytes());
            let mut v = position.to_be_bytes().to_vec();
            v.extend_from_slice(&hash.0);
            db.insert(head, v).unwrap();
            prev = hash;
        }
        let mut claim = person.to_bytes().to_vec();
        claim.extend_from_slice(&1u64.to_be_bytes());
        db.insert(key_identifier(&Identifier::Person(person)), claim)
            .unwrap();
        db.flush().unwrap();
        prev
    }

    /// Opens `dir` once sled's background threads from an earlier handle have let go of
    /// its file lock (dropping a `sled::Db` does not release the lock synchronously).
    async fn open_when_free(dir: &Path) -> EmbeddedLog {
        let mut last = None;
        for _ in 0..200 {
            match EmbeddedLog::open(dir) {
                Ok(log) => return log,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("cannot open {}: {last:?}", dir.display());
    }

    /// A store written with the old layout opens, verifies, and the next append is
    /// versioned and chained on the old head (found from its last `E` key and `L` entry).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_store_written_before_issue_11_is_read_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        let person = PersonId(ulid::Ulid(0x0190_0000_0000_0000_0000_0000_0000_0001));
        let head = write_legacy_store(dir.path(), person);
        let log = open_when_free(dir.path()).await;
        assert_eq!(log.head().await.unwrap(), 2);
        let before = log.read_person(person, 1).await.unwrap();
        assert_eq!(verify_chain(person, &before), Ok(head));

        let request = |expected| AppendRequest {
            person,
            expected,
            claims: vec![],
            events: vec![NewEvent {
                event: event("after-upgrade"),
                recorded_at: Utc.with_ymd_and_hms(2026, 11, 20, 11, 0, 0).unwrap(),
            }],
        };
        let stale = log.append(request(ExpectedVersion::Exactly(1))).await;
        assert!(
            matches!(stale, Err(Error::Conflict { actual: 2, .. })),
            "{stale:?}"
        );
        let appended = log
            .append(request(ExpectedVersion::Exactly(2)))
            .await
            .unwrap();
        assert_eq!(appended[0].position, 3);
        let after = log.read_person(person, 1).await.unwrap();
        assert_eq!(after.len(), 3);
        assert_eq!(after[2].prev, head);
        assert!(verify_chain(person, &after).is_ok());
        // A retry of a legacy submission is found as recorded.
        let again = log
            .append(AppendRequest {
                person,
                expected: ExpectedVersion::Any,
                claims: vec![],
                events: vec![NewEvent {
                    event: event("legacy-1"),
                    recorded_at: Utc::now(),
                }],
            })
            .await
            .unwrap();
        assert_eq!((again[0].position, again[0].duplicate), (1, true));
    }

    /// After a restart the head comes from the tree (`E` values now hold the hash), and
    /// the next append still chains on it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_head_survives_a_restart_without_p_keys() {
        let dir = tempfile::tempdir().unwrap();
        let person = PersonId(ulid::Ulid(0x0190_0000_0000_0000_0000_0000_0000_0002));
        let append = |log: EmbeddedLog, id: &'static str, expected| async move {
            log.append(AppendRequest {
                person,
                expected,
                claims: vec![],
                events: vec![NewEvent {
                    event: event(id),
                    recorded_at: Utc::now(),
                }],
            })
            .await
        };
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            append(log.clone(), "one", ExpectedVersion::NoStream)
                .await
                .unwrap();
            append(log.clone(), "two", ExpectedVersion::Exactly(1))
                .await
                .unwrap();
            assert_eq!(
                log.inner.db.scan_prefix([b'P']).count(),
                0,
                "no P keys written"
            );
        }
        let log = open_when_free(dir.path()).await;
        let conflict = append(log.clone(), "three", ExpectedVersion::Exactly(1)).await;
        assert!(
            matches!(conflict, Err(Error::Conflict { actual: 2, .. })),
            "{conflict:?}"
        );
        append(log.clone(), "three", ExpectedVersion::Exactly(2))
            .await
            .unwrap();
        let events = log.read_person(person, 1).await.unwrap();
        assert_eq!(events.len(), 3);
        assert!(verify_chain(person, &events).is_ok());
    }

    /// With the commit pipelined, an answer still means durable: every acknowledged append
    /// is within the durable head and readable the moment its caller hears back, and a
    /// retry racing its first attempt (decided on a group that may not be flushed yet)
    /// gets the same position.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_answer_is_durable_when_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for t in 0..32u128 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let person = PersonId(ulid::Ulid(0x0190_0000_0000_0000_0000_0000_0001_0000 + t));
                let mut positions = Vec::new();
                for k in 0..20 {
                    let request = || AppendRequest {
                        person,
                        expected: ExpectedVersion::Any,
                        claims: vec![],
                        events: vec![NewEvent {
                            event: event(&format!("pipelined-{t}-{k}")),
                            recorded_at: Utc::now(),
                        }],
                    };
                    // The same submission twice at once: one records it, one finds it.
                    let (first, again) = tokio::join!(log.append(request()), log.append(request()));
                    let (first, again) = (first.unwrap()[0], again.unwrap()[0]);
                    assert_eq!(first.position, again.position);
                    assert!(first.duplicate != again.duplicate, "{first:?} {again:?}");
                    assert!(log.head().await.unwrap() >= first.position);
                    let read = log.read_at(first.position).await.unwrap();
                    assert_eq!(read.map(|e| e.person_id), Some(person));
                    positions.push(first.position);
                }
                let events = log.read_person(person, 1).await.unwrap();
                assert_eq!(
                    events.iter().map(|e| e.position).collect::<Vec<_>>(),
                    positions
                );
                assert!(verify_chain(person, &events).is_ok());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(log.head().await.unwrap(), 32 * 20);
    }
}
