//! The projector loop and the read-model store.
//!
//! One sled tree with prefixed keys, so that one `apply_batch` covers documents, indexes
//! and the checkpoint atomically:
//! - `J` person            -> journey without its lines (JSON), a newline, then the
//!   person's earliest lines (a segment, below): those of the chunk that brought the
//!   person's first event, when they are few ([`EMBED_MAX`]), so that a new person is one
//!   key, not two; they are copied as they are whenever the document is rewritten
//! - `T` person position   -> a segment of the person's later lines from that position on:
//!   for each event one text line, its kept history entry (JSON), preceded by
//!   `c<position> ` when a correction at that position marks it. The timeline entry is
//!   made from the history entry when read (`TimelineEntry::of_kept`), so it is not
//!   stored. A chunk appends one segment per person it touches, so folding an event never
//!   rewrites the person's earlier lines; a `record.corrected` (which marks or re-folds
//!   them) writes all of them back, with the document if they are few, else as one
//!   segment, in place of the old ones
//! - `X` identifier text   -> person (16 bytes)      identity index
//! - `W` worker 0 person   -> (empty)                caseload index
//! - `R` date person       -> (empty)                release calendar (expected or actual)
//! - `K` prison person ep  -> episode facts (JSON)   KPI inputs: each episode under every
//!   prison a KPI of it counts for (`EpisodeFacts::prisons`: its referrals' prisons and
//!   the releasing prison), so that one prison's KPIs read one prefix
//! - `M` name              -> meta (checkpoint, projection version)

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use futures::stream::BoxStream;
use futures::StreamExt;
use throughcare_events::{Identifier, PersonId, RecordedEvent};
use throughcare_ledger::EventLog;
use throughcare_projections::journey::{HistoryEntry, TimelineEntry};
use throughcare_projections::{EpisodeFacts, Journey};
use tokio::sync::{mpsc, watch};

use crate::supervise::Health;

/// Bump when a fold changes: read models are then rebuilt from position 1 at start.
pub const PROJECTION_VERSION: u64 = 5;

/// Most events folded into one read-model batch.
pub(crate) const CHUNK: usize = 2048;

/// Most bytes of lines kept in a journey's `J` value (see the module docs): bounded,
/// because they are copied whenever the document is rewritten.
const EMBED_MAX: usize = 8 * 1024;

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

/// A segment of lines as stored (see the module docs): compact JSON never holds a raw
/// newline, so each event's line is one text line.
fn encode_segment(timeline: &[TimelineEntry], history: &[HistoryEntry]) -> Result<Vec<u8>, Error> {
    let mut v = Vec::with_capacity(640 * history.len());
    for (line, kept) in timeline.iter().zip(history) {
        if let Some(by) = line.corrected_by {
            v.push(b'c');
            v.extend_from_slice(by.to_string().as_bytes());
            v.push(b' ');
        }
        serde_json::to_writer(&mut v, kept).map_err(|e| Error::Corrupt(e.to_string()))?;
        v.push(b'\n');
    }
    Ok(v)
}

/// The line [`Journey::apply`] keeps for `e` (its history entry, unmarked), appended to
/// `out` as in a segment: what a chunk appends for a person is these, concatenated, unless
/// a correction rewrites their lines.
///
/// The history entry is `{"position","recorded_at","event"}` with the event without its
/// `personal` object. An event without one, read from a log, is spliced from the stored
/// bytes (`{"event":..,"person_id":..,"prev":..,"recorded_at":".."}`, see
/// `StoredBody::assemble`) rather than serialised again: reading the entry back parses
/// the same event JSON the ledger decoded `e` from.
fn encode_event_line(e: &RecordedEvent, out: &mut Vec<u8>) -> Result<(), Error> {
    match spliced(e) {
        Some((event, recorded_at)) => {
            use std::io::Write;
            write!(out, "{{\"position\":{},\"recorded_at\":\"", e.position)
                .expect("writing to a Vec cannot fail");
            out.extend_from_slice(recorded_at.as_bytes());
            out.extend_from_slice(b"\",\"event\":");
            out.extend_from_slice(event.as_bytes());
            out.push(b'}');
        }
        None => serde_json::to_writer(&mut *out, &HistoryEntry::of(e))
            .map_err(|e| Error::Corrupt(e.to_string()))?,
    }
    out.push(b'\n');
    Ok(())
}

/// The stored event JSON and `recorded_at` text of `e`, when its stored bytes have the
/// layout `StoredBody::assemble` writes and it has no `personal` object; else None (bytes
/// stored before that layout, or an event never read from a log), and the entry is
/// serialised instead.
fn spliced(e: &RecordedEvent) -> Option<(&str, &str)> {
    if e.event.data.personal().is_some() {
        return None;
    }
    let body = e.stored.strip_prefix("{\"event\":")?;
    // The members after `event` are three strings that need no escape (a ULID, hex and an
    // RFC 3339 time), so the last `,"person_id":"` starts them, and nothing in them opens
    // an object or array. With the time in microseconds (as the ledger writes it) they
    // are TAIL bytes long: looked at there first, searched for otherwise.
    const PERSON_ID: &str = ",\"person_id\":\"";
    const TAIL: usize = PERSON_ID.len()
        + 26
        + r#"","prev":""#.len()
        + 64
        + r#"","recorded_at":""#.len()
        + "2026-11-20T12:00:00.000000Z".len()
        + 2;
    let tail_at = match body.len().checked_sub(TAIL) {
        Some(at) if body.is_char_boundary(at) && body[at..].starts_with(PERSON_ID) => at,
        _ => body.rfind(PERSON_ID)?,
    };
    let (event, tail) = body.split_at(tail_at);
    let tail = tail.strip_suffix("\"}")?;
    if tail.contains(['{', '[', '}', ']', '\\']) {
        return None;
    }
    let (_, recorded_at) = tail.split_once("\",\"recorded_at\":\"")?;
    if recorded_at.contains('"') || !tail.contains("\",\"prev\":\"") {
        return None;
    }
    Some((event, recorded_at))
}

fn decode_segment(
    person: PersonId,
    v: &[u8],
    timeline: &mut Vec<TimelineEntry>,
    history: &mut Vec<HistoryEntry>,
) -> Result<(), Error> {
    let corrupt = |e: String| Error::Corrupt(format!("a timeline segment of {person}: {e}"));
    for line in v.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let (corrected_by, kept) = match line.strip_prefix(b"c") {
            Some(marked) => {
                let space = marked
                    .iter()
                    .position(|b| *b == b' ')
                    .ok_or_else(|| corrupt("a correction mark without its line".into()))?;
                let by = std::str::from_utf8(&marked[..space])
                    .ok()
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| corrupt("a correction mark is not a position".into()))?;
                (Some(by), &marked[space + 1..])
            }
            None => (None, line),
        };
        let kept: HistoryEntry =
            serde_json::from_slice(kept).map_err(|e| corrupt(e.to_string()))?;
        timeline.push(TimelineEntry::of_kept(&kept, corrected_by));
        history.push(kept);
    }
    Ok(())
}

/// A journey's stored value split into its document and the lines kept with it.
fn split_value(v: &[u8]) -> (&[u8], &[u8]) {
    match v.iter().position(|b| *b == b'\n') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[]),
    }
}

/// A journey's stored document without its lines, and the stored value it was read from
/// (None when the person is unknown).
fn read_core(db: &sled::Db, person: PersonId) -> Result<Option<(Journey, sled::IVec)>, Error> {
    match db.get(key_journey(person))? {
        None => Ok(None),
        Some(v) => Ok(Some((parse_core(&v)?, v))),
    }
}

fn parse_core(v: &[u8]) -> Result<Journey, Error> {
    serde_json::from_slice(split_value(v).0)
        .map_err(|e| Error::Corrupt(format!("a journey document: {e}")))
}

/// A journey's stored lines in position order (those kept with its document, then its
/// segments), and the keys of its segments.
#[allow(clippy::type_complexity)]
fn read_lines(
    db: &sled::Db,
    person: PersonId,
    value: &[u8],
) -> Result<(Vec<TimelineEntry>, Vec<HistoryEntry>, Vec<sled::IVec>), Error> {
    let mut timeline = Vec::new();
    let mut history = Vec::new();
    decode_segment(person, split_value(value).1, &mut timeline, &mut history)?;
    let mut keys = Vec::new();
    for item in db.scan_prefix(prefix_lines(person)) {
        let (k, v) = item?;
        decode_segment(person, &v, &mut timeline, &mut history)?;
        keys.push(k);
    }
    Ok((timeline, history, keys))
}

/// A whole journey from its stored value: its document and its lines.
fn whole_journey(db: &sled::Db, value: &[u8]) -> Result<Journey, Error> {
    let mut j = parse_core(value)?;
    let (timeline, history, _) = read_lines(db, j.person_id, value)?;
    j.put_lines(timeline, history);
    Ok(j)
}

/// A whole journey: its document and its lines.
fn read_journey(db: &sled::Db, person: PersonId) -> Result<Option<Journey>, Error> {
    match db.get(key_journey(person))? {
        None => Ok(None),
        Some(v) => whole_journey(db, &v).map(Some),
    }
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
            let (_, v) = item?;
            whole_journey(&self.db, &v)
        })
    }
}

/// What folds chunks into the store: shared by the projector and the blocking task a chunk
/// is folded on, so that the next chunk is read and decoded meanwhile.
#[derive(Clone)]
struct Folder {
    db: sled::Db,
    checkpoint: Arc<watch::Sender<u64>>,
    /// The persons the store holds, when known without asking it: a rebuild starts from an
    /// empty store, so a person it has not written yet needs no read (else None).
    known: Option<Arc<Mutex<HashSet<PersonId>>>>,
}

/// A person touched by a chunk: the journey being folded, the index entries it had before,
/// and whether it holds its lines.
struct Touched {
    journey: Journey,
    before: BTreeSet<(Vec<u8>, Vec<u8>)>,
    /// The person's stored `J` value (None: the chunk brings their first event), whose
    /// lines are kept when the document is rewritten.
    stored: Option<sled::IVec>,
    /// Whether `journey` holds all its lines (only once a correction needs them: every
    /// other event is folded without them, [`Journey::apply_unlined`]).
    lined: bool,
    /// The stored segments read into `journey` (replaced by one when it is written).
    segments: Vec<sled::IVec>,
    /// Indexes in the chunk of the events folded in.
    folded: Vec<usize>,
}

impl Touched {
    /// The stored document without its lines: enough to fold any event but a correction.
    /// `unknown`: the store is known not to hold the person.
    fn load(db: &sled::Db, person: PersonId, unknown: bool) -> Result<Touched, Error> {
        let stored = if unknown {
            None
        } else {
            read_core(db, person)?
        };
        let (journey, stored) = match stored {
            Some((journey, value)) => (journey, Some(value)),
            None => (Journey::new(person), None),
        };
        Ok(Touched {
            before: if stored.is_some() {
                index_entries(&journey)
            } else {
                BTreeSet::new()
            },
            journey,
            stored,
            lined: false,
            segments: Vec::new(),
            folded: Vec::new(),
        })
    }

    /// Puts the journey's lines in, for a correction: those stored, then those of the
    /// events of `chunk` folded so far (without their lines).
    fn line_up(&mut self, db: &sled::Db, chunk: &[RecordedEvent]) -> Result<(), Error> {
        let (mut timeline, mut history, segments) = match &self.stored {
            Some(value) => read_lines(db, self.journey.person_id, value)?,
            None => Default::default(),
        };
        for e in self.folded.iter().map(|i| &chunk[*i]) {
            timeline.push(TimelineEntry::of(e));
            history.push(HistoryEntry::of(e));
        }
        self.journey.put_lines(timeline, history);
        self.lined = true;
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
    /// given, are the chunk's events' lines encoded ahead ([`Chunk::decoded`]).
    fn apply(&self, chunk: &[RecordedEvent], lines: Option<&Lines>) -> Result<(), Error> {
        let start = self.checkpoint();
        let mut at = start;
        let mut known = match &self.known {
            Some(known) => Some(
                known
                    .lock()
                    .map_err(|_| Error::Unavailable("a fold panicked".into()))?,
            ),
            None => None,
        };
        // The persons touched, in the order first touched, and where each is in it (about a
        // person in ten events in a rebuild's chunk; both grow as needed otherwise).
        let mut touched: Vec<(PersonId, Touched)> = Vec::with_capacity(chunk.len() / 8);
        let mut index: HashMap<PersonId, usize> = HashMap::with_capacity(chunk.len() / 8);
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
            let at_index = match index.entry(e.person_id) {
                std::collections::hash_map::Entry::Occupied(o) => *o.get(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let unknown = known.as_mut().is_some_and(|k| k.insert(e.person_id));
                    touched.push((e.person_id, Touched::load(&self.db, e.person_id, unknown)?));
                    *v.insert(touched.len() - 1)
                }
            };
            let t = &mut touched[at_index].1;
            // Most events append a line and need none of the earlier ones; a correction
            // marks or re-folds them (Journey::apply), so it needs them all, and then all
            // of them are written back.
            if t.lined || !t.journey.apply_unlined(e) {
                if !t.lined {
                    t.line_up(&self.db, chunk)?;
                }
                t.journey.apply(e);
            }
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
            // The lines this chunk writes, and the position they start at.
            let (first, lines_bytes) = if t.lined {
                // Written back whole, in place of the lines read.
                let (timeline, history) = t.journey.take_lines();
                let first = history.first().map(|h| h.position);
                (first, encode_segment(&timeline, &history)?)
            } else {
                let first = t.folded.first().map(|i| chunk[*i].position);
                let mut v = Vec::new();
                for i in &t.folded {
                    match lines {
                        // The lines encoded ahead are the same bytes.
                        Some(lines) => v.extend_from_slice(lines.of(*i)),
                        None => encode_event_line(&chunk[*i], &mut v)?,
                    }
                }
                (first, v)
            };
            // Sized for a typical document, so that serialising it rarely reallocates.
            let mut value = Vec::with_capacity(4096 + lines_bytes.len().min(EMBED_MAX));
            serde_json::to_writer(&mut value, &t.journey)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            value.push(b'\n');
            // All of the person's lines (a new person's, or all of them after a
            // correction) go with the document when they are few; else the lines kept
            // with it before stay there and these are a segment of their own.
            let kept = t.stored.as_ref().filter(|_| !t.lined);
            match (kept, first) {
                (None, _) if lines_bytes.len() <= EMBED_MAX => {
                    value.extend_from_slice(&lines_bytes);
                }
                (kept, first) => {
                    if let Some(kept) = kept {
                        value.extend_from_slice(split_value(kept).1);
                    }
                    if let Some(first) = first {
                        batch.insert(&key_segment(person, first)[..], lines_bytes);
                    }
                }
            }
            batch.insert(&key_journey(person)[..], value);
        }
        batch.insert(CHECKPOINT, &at.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.checkpoint.send_replace(at);
        Ok(())
    }
}

/// The lines of a chunk's events encoded ahead of the fold, one after another in one
/// buffer (one allocation per chunk, not one per event).
pub(crate) struct Lines {
    bytes: Vec<u8>,
    /// Where each event's line ends in `bytes`.
    ends: Vec<usize>,
}

impl Lines {
    fn of(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// A chunk of decoded events with their lines encoded ahead of the fold.
pub(crate) struct Chunk {
    events: Vec<RecordedEvent>,
    lines: Lines,
}

impl Chunk {
    fn decoded(
        read: Vec<Result<RecordedEvent, throughcare_ledger::Error>>,
    ) -> Result<Chunk, Error> {
        let events: Vec<RecordedEvent> = read.into_iter().collect::<Result<_, _>>()?;
        let mut lines = Lines {
            bytes: Vec::with_capacity(640 * events.len()),
            ends: Vec::with_capacity(events.len()),
        };
        for e in &events {
            encode_event_line(e, &mut lines.bytes)?;
            lines.ends.push(lines.bytes.len());
        }
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
                known: None,
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
        let folder = Folder {
            known: Some(Default::default()),
            ..self.folder.clone()
        };
        let mut chunks = ReadAhead::start(log.read_all(1), true);
        let mut n = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            fold_on(folder.clone(), chunk).await?;
        }
        db.flush_async().await?;
        Ok(n)
    }

    /// Folds a chunk on a blocking thread (sled writes block), so that the task reading
    /// ahead keeps the runtime's threads.
    pub(crate) async fn fold(&self, chunk: Chunk) -> Result<(), Error> {
        fold_on(self.folder.clone(), chunk).await
    }

    /// Folds a chunk in and writes documents, lines, indexes and checkpoint in one batch.
    /// Events at or below the checkpoint were folded before and are skipped.
    pub fn apply(&self, chunk: &[RecordedEvent]) -> Result<(), Error> {
        self.folder.apply(chunk, None)
    }
}

/// Folds a chunk with `folder` on a blocking thread ([`Projector::fold`]).
async fn fold_on(folder: Folder, chunk: Chunk) -> Result<(), Error> {
    tokio::task::spawn_blocking(move || folder.apply(&chunk.events, Some(&chunk.lines)))
        .await
        .map_err(|e| Error::Unavailable(format!("folding a chunk stopped: {e}")))?
}

fn u64_from(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8-byte number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::json;
    use throughcare_events::{validate_body, Event, Hash, StoredBody, Submission};

    fn now() -> DateTime<Utc> {
        "2026-11-20T12:00:00Z".parse().unwrap()
    }

    fn person() -> PersonId {
        PersonId(ulid::Ulid::from_parts(7, 1))
    }

    /// A release date, with personal free text when `personal` (synthetic: no names).
    fn event(id: &str, personal: bool) -> Event {
        let mut data = json!({
            "person": { "nomis": "A0001BC" }, "date": "2027-01-05", "date_type": "CRD",
        });
        if personal {
            data["personal"] = json!({ "note": "synthetic note with a \"quoted\" word" });
        }
        let body = json!({
            "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
            "type": "throughcare.release_date.set.v1", "time": "2026-11-01T09:00:00Z",
            "datacontenttype": "application/json", "data": data,
        });
        match validate_body(body.to_string().as_bytes(), now()) {
            Ok(Submission::One(e)) => *e,
            other => panic!("{id} is not one valid event: {other:?}"),
        }
    }

    /// `e` as a log reads it back: decoded from the bytes the ledger stores.
    fn read_back(position: u64, e: &Event) -> RecordedEvent {
        let bytes = StoredBody::encode(person(), now(), Hash::ZERO, e);
        StoredBody::decode(position, &bytes).unwrap()
    }

    fn line(e: &RecordedEvent) -> Vec<u8> {
        let mut v = Vec::new();
        encode_event_line(e, &mut v).unwrap();
        v
    }

    fn decoded(v: &[u8]) -> (Vec<TimelineEntry>, Vec<HistoryEntry>) {
        let (mut timeline, mut history) = (Vec::new(), Vec::new());
        decode_segment(person(), v, &mut timeline, &mut history).unwrap();
        (timeline, history)
    }

    #[test]
    fn a_line_spliced_from_the_stored_bytes_reads_back_as_the_kept_entry() {
        let e = read_back(7, &event("a-1", false));
        assert!(spliced(&e).is_some(), "the stored layout is spliced");
        let (timeline, history) = decoded(&line(&e));
        assert_eq!(history, vec![HistoryEntry::of(&e)]);
        assert_eq!(timeline, vec![TimelineEntry::of(&e)]);
    }

    #[test]
    fn personal_text_is_never_kept_in_a_line() {
        let e = read_back(3, &event("a-2", true));
        assert!(e.event.data.personal().is_some());
        assert!(spliced(&e).is_none());
        let v = line(&e);
        assert!(!String::from_utf8_lossy(&v).contains("synthetic note"));
        let (timeline, history) = decoded(&v);
        assert_eq!(history, vec![HistoryEntry::of(&e)]);
        assert!(history[0].event.data.personal().is_none());
        assert_eq!(timeline, vec![TimelineEntry::of(&e)]);
    }

    #[test]
    fn events_not_in_the_stored_layout_are_serialised() {
        let read = read_back(4, &event("a-3", false));
        let folded_only = RecordedEvent {
            stored: Default::default(),
            ..read.clone()
        };
        // serde_json's compact form of an older body: `person_id` first.
        let older = format!(
            "{{\"person_id\":\"{}\",\"recorded_at\":\"2026-11-20T12:00:00Z\",\"event\":{}}}",
            person(),
            serde_json::to_string(&read.event.to_json()).unwrap()
        );
        let older = RecordedEvent {
            stored: Arc::from(older.as_str()),
            ..read.clone()
        };
        // A tail with a member this splicer does not know.
        let extended = RecordedEvent {
            stored: Arc::from(read.stored.replace("\"}", "\",\"x\":[1]}").as_str()),
            ..read.clone()
        };
        for e in [folded_only, older, extended] {
            assert!(spliced(&e).is_none(), "{}", e.stored);
            let (_, history) = decoded(&line(&e));
            assert_eq!(history, vec![HistoryEntry::of(&e)]);
        }
    }

    fn correction(id: &str, target: &str, wrong: &str) -> Event {
        let body = json!({
            "specversion": "1.0", "id": id, "source": "urn:throughcare:test",
            "type": "throughcare.record.corrected.v1", "time": "2026-11-02T09:00:00Z",
            "datacontenttype": "application/json",
            "data": {
                "person": { "nomis": "A0001BC" }, "target_event_id": target,
                "what_was_wrong": wrong,
            },
        });
        match validate_body(body.to_string().as_bytes(), now()) {
            Ok(Submission::One(e)) => *e,
            other => panic!("{id} is not one valid event: {other:?}"),
        }
    }

    fn segments(db: &sled::Db) -> usize {
        db.scan_prefix(prefix_lines(person())).count()
    }

    #[test]
    fn lines_too_many_to_keep_with_the_document_are_a_segment_of_their_own() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let projector = Projector::with_db(db.clone()).unwrap();
        let models = projector.read_models();
        let mut events: Vec<RecordedEvent> = (1..=60)
            .map(|n| read_back(n, &event(&format!("a-{n}"), n % 7 == 0)))
            .collect();
        let at = |events: &[RecordedEvent]| Some(Journey::fold(person(), events));
        // One chunk brings the person with more lines than the document keeps.
        projector.apply(&events).unwrap();
        assert!(line(&events[0]).len() * 60 > EMBED_MAX);
        assert_eq!(segments(&db), 1);
        assert_eq!(models.journey(person()).unwrap(), at(&events));
        // A few more: a segment of their own, the document's lines kept.
        let more: Vec<_> = (61..=63)
            .map(|n| read_back(n, &event(&format!("a-{n}"), false)))
            .collect();
        projector.apply(&more).unwrap();
        events.extend(more);
        assert_eq!(segments(&db), 2);
        assert_eq!(models.journey(person()).unwrap(), at(&events));
        // A correction that marks one line, then one that voids an event: all the lines
        // written back as one segment, each time.
        for (n, wrong) in [(64, "WRONG_DATE"), (65, "ENTERED_IN_ERROR")] {
            let fix = read_back(n, &correction(&format!("a-{n}"), "a-3", wrong));
            projector.apply(std::slice::from_ref(&fix)).unwrap();
            events.push(fix);
            assert_eq!(segments(&db), 1);
            assert_eq!(models.journey(person()).unwrap(), at(&events));
        }
        assert_eq!(models.journeys().count(), 1);
    }

    #[test]
    fn a_new_persons_few_lines_are_kept_with_the_document() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let projector = Projector::with_db(db.clone()).unwrap();
        let models = projector.read_models();
        let mut events: Vec<RecordedEvent> = (1..=3)
            .map(|n| read_back(n, &event(&format!("b-{n}"), false)))
            .collect();
        projector.apply(&events).unwrap();
        assert_eq!(segments(&db), 0, "one key for a new person");
        assert_eq!(
            models.journey(person()).unwrap(),
            Some(Journey::fold(person(), &events))
        );
        let fix = read_back(4, &correction("b-4", "b-1", "ENTERED_IN_ERROR"));
        projector.apply(std::slice::from_ref(&fix)).unwrap();
        events.push(fix);
        assert_eq!(
            segments(&db),
            0,
            "a correction of few lines keeps them there"
        );
        assert_eq!(
            models.journey(person()).unwrap(),
            Some(Journey::fold(person(), &events))
        );
    }

    #[test]
    fn a_segment_keeps_the_correction_marks() {
        let events = [
            read_back(1, &event("a-4", false)),
            read_back(2, &event("a-5", true)),
        ];
        let mut timeline: Vec<TimelineEntry> = events.iter().map(TimelineEntry::of).collect();
        let history: Vec<HistoryEntry> = events.iter().map(HistoryEntry::of).collect();
        timeline[0].corrected_by = Some(12);
        let segment = encode_segment(&timeline, &history).unwrap();
        assert_eq!(decoded(&segment), (timeline, history.clone()));
        // A segment of lines encoded ahead is the same lines, unmarked.
        let ahead: Vec<u8> = events.iter().flat_map(line).collect();
        let (unmarked, kept) = decoded(&ahead);
        assert_eq!(kept, history);
        assert!(unmarked.iter().all(|l| l.corrected_by.is_none()));
    }
}
