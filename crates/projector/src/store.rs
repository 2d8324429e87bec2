//! The projector loop and the read-model store.
//!
//! One sled tree with prefixed keys, so that one `apply_batch` covers documents, indexes
//! and the checkpoint atomically:
//! - `J` person            -> journey without its lines (JSON)
//! - `T` person position   -> a segment of the person's lines from that position on: for
//!   each event its timeline entry and its kept history entry (JSON, one per text line). A
//!   chunk appends one segment per person it touches, so folding an event never rewrites
//!   the person's earlier lines; a `record.corrected` (which marks or re-folds them) writes
//!   all of them back as one segment in place of the old ones
//! - `X` identifier text   -> person (16 bytes)      identity index
//! - `W` worker 0 person   -> (empty)                caseload index
//! - `R` date person       -> (empty)                release calendar (expected or actual)
//! - `K` prison person ep  -> episode facts (JSON)   KPI inputs: each episode under every
//!   prison a KPI of it counts for (`EpisodeFacts::prisons`: its referrals' prisons and
//!   the releasing prison), so that one prison's KPIs read one prefix
//! - `M` name              -> meta (checkpoint, projection version)

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use futures::stream::BoxStream;
use futures::StreamExt;
use throughcare_events::{EventData, Identifier, PersonId, RecordedEvent};
use throughcare_ledger::EventLog;
use throughcare_projections::journey::{HistoryEntry, TimelineEntry};
use throughcare_projections::{EpisodeFacts, Journey};
use tokio::sync::{mpsc, watch};

use crate::supervise::Health;

/// Bump when a fold changes: read models are then rebuilt from position 1 at start.
pub const PROJECTION_VERSION: u64 = 4;

/// Most events folded into one read-model batch.
pub(crate) const CHUNK: usize = 2048;

/// Chunks read and decoded ahead of the fold (bounded, so a fast reader never holds more
/// than this many chunks of a large log in memory).
const READ_AHEAD: usize = 2;

/// The store's sled page cache. sled's resident memory runs well above this nominal size,
/// so it is kept small: the OS page cache serves what sled evicts.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

const CHECKPOINT: &[u8] = b"Mcheckpoint";
const VERSION: &[u8] = b"Mversion";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read-model store unavailable: {0}")]
    Unavailable(String),
    #[error("read model is corrupt: {0}")]
    Corrupt(String),
    #[error("ledger: {0}")]
    Ledger(#[from] throughcare_ledger::Error),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

fn key_journey(person: PersonId) -> [u8; 17] {
    let mut k = [b'J'; 17];
    k[1..].copy_from_slice(&person.to_bytes());
    k
}

fn prefix_lines(person: PersonId) -> [u8; 17] {
    let mut k = [b'T'; 17];
    k[1..].copy_from_slice(&person.to_bytes());
    k
}

fn key_segment(person: PersonId, position: u64) -> [u8; 25] {
    let mut k = [0; 25];
    k[..17].copy_from_slice(&prefix_lines(person));
    k[17..].copy_from_slice(&position.to_be_bytes());
    k
}

/// A segment of lines as stored: compact JSON never holds a raw newline, so each
/// timeline entry and each history entry is one text line, in pairs.
fn encode_segment(timeline: &[TimelineEntry], history: &[HistoryEntry]) -> Result<Vec<u8>, Error> {
    let mut v = Vec::with_capacity(1024 * timeline.len());
    for (line, kept) in timeline.iter().zip(history) {
        serde_json::to_writer(&mut v, line).map_err(|e| Error::Corrupt(e.to_string()))?;
        v.push(b'\n');
        serde_json::to_writer(&mut v, kept).map_err(|e| Error::Corrupt(e.to_string()))?;
        v.push(b'\n');
    }
    Ok(v)
}

/// The line [`Journey::apply`] appends for `e`, encoded as in a segment: what a chunk
/// appends for a person is these, concatenated, unless a correction rewrites their lines.
fn encode_event_line(e: &RecordedEvent) -> Result<Vec<u8>, Error> {
    encode_segment(&[TimelineEntry::of(e)], &[HistoryEntry::of(e)])
}

fn decode_segment(
    person: PersonId,
    v: &[u8],
    timeline: &mut Vec<TimelineEntry>,
    history: &mut Vec<HistoryEntry>,
) -> Result<(), Error> {
    let corrupt = |e: String| Error::Corrupt(format!("a timeline segment of {person}: {e}"));
    let mut parts = v.split(|b| *b == b'\n');
    while let Some(line) = parts.next().filter(|l| !l.is_empty()) {
        let kept = parts
            .next()
            .ok_or_else(|| corrupt("a timeline entry without its history entry".into()))?;
        timeline.push(serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?);
        history.push(serde_json::from_slice(kept).map_err(|e| corrupt(e.to_string()))?);
    }
    Ok(())
}

/// A journey's stored document without its lines (None when the person is unknown).
fn read_core(db: &sled::Db, person: PersonId) -> Result<Option<Journey>, Error> {
    match db.get(key_journey(person))? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("journey of {person}: {e}"))),
    }
}

/// A journey's stored lines in position order, and the keys of their segments.
#[allow(clippy::type_complexity)]
fn read_lines(
    db: &sled::Db,
    person: PersonId,
) -> Result<(Vec<TimelineEntry>, Vec<HistoryEntry>, Vec<sled::IVec>), Error> {
    let mut timeline = Vec::new();
    let mut history = Vec::new();
    let mut keys = Vec::new();
    for item in db.scan_prefix(prefix_lines(person)) {
        let (k, v) = item?;
        decode_segment(person, &v, &mut timeline, &mut history)?;
        keys.push(k);
    }
    Ok((timeline, history, keys))
}

/// A whole journey: its document and its lines.
fn read_journey(db: &sled::Db, person: PersonId) -> Result<Option<Journey>, Error> {
    let Some(mut j) = read_core(db, person)? else {
        return Ok(None);
    };
    let (timeline, history, _) = read_lines(db, person)?;
    j.put_lines(timeline, history);
    Ok(Some(j))
}

/// The index entries a journey contributes; when a journey changes, its old entries are
/// removed and the new ones written in the same batch.
fn index_entries(j: &Journey) -> BTreeSet<(Vec<u8>, Vec<u8>)> {
    let person = j.person_id.to_bytes().to_vec();
    let mut out = BTreeSet::new();
    for id in j.identifiers.all() {
        out.insert(([b"X".as_slice(), id.as_bytes()].concat(), person.clone()));
    }
    if let (true, Some(w)) = (j.status.is_open(), &j.worker) {
        out.insert((
            [b"W".as_slice(), w.worker_id.as_bytes(), &[0], &person].concat(),
            Vec::new(),
        ));
    }
    if let Some(date) = release_day(j) {
        out.insert((
            [b"R".as_slice(), date.to_string().as_bytes(), &person].concat(),
            Vec::new(),
        ));
    }
    for facts in EpisodeFacts::of(j) {
        let doc = serde_json::to_vec(&facts).expect("facts serialize");
        for prison in facts.prisons() {
            let key = [
                b"K".as_slice(),
                prison.as_bytes(),
                &person,
                &facts.episode.to_be_bytes(),
            ]
            .concat();
            out.insert((key, doc.clone()));
        }
    }
    out
}

/// The day a journey belongs on the release calendar: the expected release while in
/// custody, else the day of the last release.
pub fn release_day(j: &Journey) -> Option<NaiveDate> {
    match (&j.release_date, j.released_at) {
        (Some(rd), _) if j.in_custody || j.released_at.is_none() => Some(rd.date),
        (_, Some(r)) if !j.in_custody => Some(r.date_naive()),
        _ => None,
    }
}

/// Read access to the read models, cheap to clone.
#[derive(Clone)]
pub struct ReadModels {
    db: sled::Db,
    checkpoint: watch::Receiver<u64>,
    health: watch::Receiver<Health>,
}

impl ReadModels {
    /// Position of the last event folded into the read models.
    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// Whether the projector task is running (see [`Projector::run_supervised`]).
    pub fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    /// Waits until the read models include `position`; false after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut rx = self.checkpoint.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= position))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }

    /// A person's journey, whole (its document with its timeline and kept history).
    pub fn journey(&self, person: PersonId) -> Result<Option<Journey>, Error> {
        read_journey(&self.db, person)
    }

    /// The person an identifier belongs to, as the read models know it.
    pub fn lookup(&self, identifier: &Identifier) -> Result<Option<PersonId>, Error> {
        let key = [b"X".as_slice(), identifier.to_string().as_bytes()].concat();
        Ok(self
            .db
            .get(key)?
            .map(|v| PersonId::from_bytes(v[..16].try_into().expect("16-byte person id"))))
    }

    /// The persons on a worker's open caseload.
    pub fn caseload(&self, worker_id: &str) -> Result<Vec<Journey>, Error> {
        let prefix = [b"W".as_slice(), worker_id.as_bytes(), &[0]].concat();
        let mut out = Vec::new();
        for item in self.db.scan_prefix(&prefix) {
            let (k, _) = item?;
            let person =
                PersonId::from_bytes(k[prefix.len()..].try_into().expect("16-byte person id"));
            if let Some(j) = self.journey(person)? {
                out.push(j);
            }
        }
        Ok(out)
    }

    /// Journeys on the release calendar in `[from, to]`, by day, optionally for one prison.
    pub fn releases(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        prison: Option<&str>,
    ) -> Result<Vec<(NaiveDate, Journey)>, Error> {
        let start = [b"R".as_slice(), from.to_string().as_bytes()].concat();
        let end = [b"R".as_slice(), to.to_string().as_bytes(), &[0xff; 17]].concat();
        let mut out = Vec::new();
        for item in self.db.range(start..end) {
            let (k, _) = item?;
            let day = std::str::from_utf8(&k[1..11])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| Error::Corrupt("bad release calendar key".into()))?;
            let person = PersonId::from_bytes(k[11..27].try_into().expect("16-byte person id"));
            if let Some(j) = self.journey(person)? {
                if prison.is_none() || j.prison.as_deref() == prison {
                    out.push((day, j));
                }
            }
        }
        Ok(out)
    }

    /// The KPI inputs of every episode (each once), or of the episodes with a KPI that
    /// counts for one prison.
    pub fn episode_facts(&self, prison: Option<&str>) -> Result<Vec<EpisodeFacts>, Error> {
        let prefix = [b"K".as_slice(), prison.unwrap_or("").as_bytes()].concat();
        // An episode counting for several prisons is stored under each: person and
        // episode end every key.
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix) {
            let (k, v) = item?;
            if !seen.insert(k[k.len().saturating_sub(20)..].to_vec()) {
                continue;
            }
            out.push(
                serde_json::from_slice(&v)
                    .map_err(|e| Error::Corrupt(format!("episode facts: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Every journey, in person-id order (for rebuild comparisons and exports).
    pub fn journeys(&self) -> impl Iterator<Item = Result<Journey, Error>> + '_ {
        self.db.scan_prefix(b"J").map(|item| {
            let (k, v) = item?;
            let mut j: Journey = serde_json::from_slice(&v)
                .map_err(|e| Error::Corrupt(format!("journey at key {k:?}: {e}")))?;
            let (timeline, history, _) = read_lines(&self.db, j.person_id)?;
            j.put_lines(timeline, history);
            Ok(j)
        })
    }
}

/// What folds chunks into the store: shared by the projector and the blocking task a chunk
/// is folded on, so that the next chunk is read and decoded meanwhile.
#[derive(Clone)]
struct Folder {
    db: sled::Db,
    checkpoint: Arc<watch::Sender<u64>>,
}

/// A person touched by a chunk: the journey being folded, the index entries it had before,
/// and whether it holds all its lines (else only those this chunk appends).
struct Touched {
    journey: Journey,
    before: BTreeSet<(Vec<u8>, Vec<u8>)>,
    whole: bool,
    /// The stored segments read into `journey` (replaced by one when it is written).
    segments: Vec<sled::IVec>,
    /// Indexes in the chunk of the events folded in.
    folded: Vec<usize>,
    /// Whether one of them was a correction (so the lines were marked or re-folded).
    corrected: bool,
}

impl Touched {
    /// The stored document without its lines: enough to fold any event but a correction.
    fn load(db: &sled::Db, person: PersonId) -> Result<Touched, Error> {
        Ok(match read_core(db, person)? {
            Some(journey) => Touched {
                before: index_entries(&journey),
                journey,
                whole: false,
                segments: Vec::new(),
                folded: Vec::new(),
                corrected: false,
            },
            None => Touched {
                journey: Journey::new(person),
                before: BTreeSet::new(),
                whole: true,
                segments: Vec::new(),
                folded: Vec::new(),
                corrected: false,
            },
        })
    }

    /// Reads the stored lines in ahead of those appended in memory, for a correction.
    fn load_lines(&mut self, db: &sled::Db) -> Result<(), Error> {
        let (mut timeline, mut history, segments) = read_lines(db, self.journey.person_id)?;
        let (new_timeline, new_history) = self.journey.take_lines();
        timeline.extend(new_timeline);
        history.extend(new_history);
        self.journey.put_lines(timeline, history);
        self.whole = true;
        self.segments = segments;
        Ok(())
    }
}

impl Folder {
    fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// Folds a chunk in and writes documents, lines, indexes and checkpoint in one batch.
    /// Events at or below the checkpoint were folded before and are skipped. `lines`, when
    /// given, are the chunk's events' lines encoded ahead ([`encode_event_line`]), one per
    /// event.
    fn apply(&self, chunk: &[RecordedEvent], lines: Option<&[Vec<u8>]>) -> Result<(), Error> {
        let start = self.checkpoint();
        let mut at = start;
        let mut touched: HashMap<PersonId, Touched> = HashMap::new();
        for (i, e) in chunk.iter().enumerate() {
            if e.position <= at {
                continue;
            }
            if e.position != at + 1 {
                return Err(Error::Corrupt(format!(
                    "gap in the log: expected position {} but got {}",
                    at + 1,
                    e.position
                )));
            }
            at = e.position;
            let t = match touched.entry(e.person_id) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Touched::load(&self.db, e.person_id)?)
                }
            };
            // A correction marks or re-folds earlier lines (Journey::apply): it needs them
            // all, and then all of them are written back.
            if matches!(e.event.data, EventData::RecordCorrected(_)) {
                if !t.whole {
                    t.load_lines(&self.db)?;
                }
                t.corrected = true;
            }
            t.journey.apply(e);
            t.folded.push(i);
        }
        if at == start {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (person, mut t) in touched {
            let new = index_entries(&t.journey);
            for (k, _) in t.before.difference(&new) {
                batch.remove(k.as_slice());
            }
            for (k, v) in new.difference(&t.before) {
                batch.insert(k.as_slice(), v.as_slice());
            }
            for k in &t.segments {
                batch.remove(k);
            }
            let (timeline, history) = t.journey.take_lines();
            if let Some(first) = timeline.first() {
                let segment = match lines {
                    // Appended only: the lines encoded ahead are the same bytes.
                    Some(lines) if !t.corrected => {
                        t.folded.iter().flat_map(|i| &lines[*i]).copied().collect()
                    }
                    _ => encode_segment(&timeline, &history)?,
                };
                batch.insert(&key_segment(person, first.position)[..], segment);
            }
            let doc = serde_json::to_vec(&t.journey).map_err(|e| Error::Corrupt(e.to_string()))?;
            batch.insert(&key_journey(person)[..], doc);
        }
        batch.insert(CHECKPOINT, &at.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.checkpoint.send_replace(at);
        Ok(())
    }
}

/// A chunk of decoded events with their lines encoded ahead of the fold.
pub(crate) struct Chunk {
    events: Vec<RecordedEvent>,
    lines: Vec<Vec<u8>>,
}

impl Chunk {
    fn decoded(
        read: Vec<Result<RecordedEvent, throughcare_ledger::Error>>,
    ) -> Result<Chunk, Error> {
        let events: Vec<RecordedEvent> = read.into_iter().collect::<Result<_, _>>()?;
        let lines = events
            .iter()
            .map(encode_event_line)
            .collect::<Result<_, _>>()?;
        Ok(Chunk { events, lines })
    }

    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }
}

/// Chunks of a log stream read and decoded on a task of their own, [`READ_AHEAD`] chunks
/// ahead of the caller, which folds them: reading + decoding and folding + writing run on
/// two threads. Dropping it stops the reader.
pub(crate) struct ReadAhead {
    chunks: mpsc::Receiver<Result<Chunk, Error>>,
    /// Taken once the channel has closed and the reader has been awaited.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl ReadAhead {
    /// `whole`: wait for full chunks (a finite read: a network log yields a few events at
    /// a time, and every chunk writes each journey it touches once); else take what is
    /// ready (a live subscription, which must not wait for events that are not there yet).
    pub(crate) fn start(
        events: BoxStream<'static, Result<RecordedEvent, throughcare_ledger::Error>>,
        whole: bool,
    ) -> ReadAhead {
        let (tx, chunks) = mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(async move {
            let mut chunked = if whole {
                events.chunks(CHUNK).boxed()
            } else {
                events.ready_chunks(CHUNK).boxed()
            };
            while let Some(chunk) = chunked.next().await {
                let chunk = Chunk::decoded(chunk);
                let failed = chunk.is_err();
                // A closed channel means the folding side stopped (and reports why).
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        ReadAhead {
            chunks,
            reader: Some(reader),
        }
    }

    /// The next chunk, or None at the end of the stream.
    pub(crate) async fn next(&mut self) -> Option<Result<Chunk, Error>> {
        if let Some(chunk) = self.chunks.recv().await {
            return Some(chunk);
        }
        // The reader has finished or panicked (a panic also closes the channel): a panic
        // is an error, not the end of the log.
        match self.reader.take()?.await {
            Ok(()) => None,
            Err(e) => Some(Err(Error::Unavailable(format!(
                "the log reader stopped: {e}"
            )))),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(reader) = &self.reader {
            reader.abort();
        }
    }
}

/// Owns the read-model store and folds events into it.
pub struct Projector {
    folder: Folder,
    health: watch::Sender<Health>,
    models: ReadModels,
}

impl Projector {
    /// Opens the store in `dir`; a store written by another projection version is cleared
    /// so that it is rebuilt from position 1.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let db = sled::Config::new()
            .path(dir)
            // Journeys outgrow any fixed cache on a large service; the OS page cache serves
            // what sled evicts, and a small cache keeps memory flat as the log grows.
            .cache_capacity(CACHE_BYTES)
            .open()?;
        Self::with_db(db)
    }

    /// A projector over an opened store (the live one, or an as-of replay's scratch store).
    pub(crate) fn with_db(db: sled::Db) -> Result<Self, Error> {
        let stored_version = db.get(VERSION)?.map(|v| u64_from(&v));
        if stored_version != Some(PROJECTION_VERSION) {
            if stored_version.is_some() {
                tracing::warn!(
                    ?stored_version,
                    PROJECTION_VERSION,
                    "projection version changed: rebuilding read models"
                );
            }
            db.clear()?;
            db.insert(VERSION, &PROJECTION_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        let at = db.get(CHECKPOINT)?.map_or(0, |v| u64_from(&v));
        let (tx, rx) = watch::channel(at);
        let (health, health_rx) = watch::channel(Health::running());
        let models = ReadModels {
            db: db.clone(),
            checkpoint: rx,
            health: health_rx,
        };
        Ok(Projector {
            folder: Folder {
                db,
                checkpoint: Arc::new(tx),
            },
            health,
            models,
        })
    }

    pub(crate) fn health_sender(&self) -> &watch::Sender<Health> {
        &self.health
    }

    pub fn read_models(&self) -> ReadModels {
        self.models.clone()
    }

    /// The audit tree kept beside the read models, and its follower (crate::audit).
    pub fn audit_tree(&self) -> Result<(crate::AuditTree, crate::TreeFollower), Error> {
        crate::AuditTree::open(&self.folder.db)
    }

    pub fn checkpoint(&self) -> u64 {
        self.folder.checkpoint()
    }

    /// Follows the log from the checkpoint until the log's stream ends or a chunk fails;
    /// a server runs [`Projector::run_supervised`] instead, which restarts it.
    pub async fn run(&self, log: Arc<dyn EventLog>) -> Result<(), Error> {
        let mut chunks = ReadAhead::start(log.subscribe(self.checkpoint() + 1), false);
        while let Some(chunk) = chunks.next().await {
            self.fold(chunk?).await?;
        }
        Ok(())
    }

    /// Clears the read models and folds the whole log again; returns the events folded.
    /// The log is read and decoded on one thread while chunks are folded and written on
    /// another.
    pub async fn rebuild(&self, log: &dyn EventLog) -> Result<u64, Error> {
        let db = &self.folder.db;
        db.clear()?;
        db.insert(VERSION, &PROJECTION_VERSION.to_be_bytes())?;
        self.folder.checkpoint.send_replace(0);
        let mut chunks = ReadAhead::start(log.read_all(1), true);
        let mut n = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            self.fold(chunk).await?;
        }
        db.flush_async().await?;
        Ok(n)
    }

    /// Folds a chunk on a blocking thread (sled writes block), so that the task reading
    /// ahead keeps the runtime's threads.
    pub(crate) async fn fold(&self, chunk: Chunk) -> Result<(), Error> {
        let folder = self.folder.clone();
        tokio::task::spawn_blocking(move || folder.apply(&chunk.events, Some(&chunk.lines)))
            .await
            .map_err(|e| Error::Unavailable(format!("folding a chunk stopped: {e}")))?
    }

    /// Folds a chunk in and writes documents, lines, indexes and checkpoint in one batch.
    /// Events at or below the checkpoint were folded before and are skipped.
    pub fn apply(&self, chunk: &[RecordedEvent]) -> Result<(), Error> {
        self.folder.apply(chunk, None)
    }
}

fn u64_from(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8-byte number"))
}
