//! The projector loop and the read-model store.
//!
//! One sled tree with prefixed keys, so that one `apply_batch` covers documents, indexes
//! and the checkpoint atomically:
//! - `J` person            -> journey (JSON)
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
use futures::StreamExt;
use throughcare_events::{Identifier, PersonId, RecordedEvent};
use throughcare_ledger::EventLog;
use throughcare_projections::{EpisodeFacts, Journey};
use tokio::sync::watch;

use crate::supervise::Health;

/// Bump when a fold changes: read models are then rebuilt from position 1 at start.
pub const PROJECTION_VERSION: u64 = 3;

/// Most events folded into one read-model batch.
pub(crate) const CHUNK: usize = 2048;

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

    pub fn journey(&self, person: PersonId) -> Result<Option<Journey>, Error> {
        match self.db.get(key_journey(person))? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("journey of {person}: {e}"))),
        }
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
            serde_json::from_slice(&v)
                .map_err(|e| Error::Corrupt(format!("journey at key {k:?}: {e}")))
        })
    }
}

/// Owns the read-model store and folds events into it.
pub struct Projector {
    db: sled::Db,
    checkpoint: watch::Sender<u64>,
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
            .cache_capacity(64 * 1024 * 1024)
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
            db,
            checkpoint: tx,
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
        crate::AuditTree::open(&self.db)
    }

    pub fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// Follows the log from the checkpoint until the log's stream ends or a chunk fails;
    /// a server runs [`Projector::run_supervised`] instead, which restarts it.
    pub async fn run(&self, log: Arc<dyn EventLog>) -> Result<(), Error> {
        let mut events = log.subscribe(self.checkpoint() + 1).ready_chunks(CHUNK);
        while let Some(chunk) = events.next().await {
            let chunk: Vec<RecordedEvent> = chunk.into_iter().collect::<Result<_, _>>()?;
            self.apply(&chunk)?;
        }
        Ok(())
    }

    /// Clears the read models and folds the whole log again; returns the events folded.
    pub async fn rebuild(&self, log: &dyn EventLog) -> Result<u64, Error> {
        self.db.clear()?;
        self.db.insert(VERSION, &PROJECTION_VERSION.to_be_bytes())?;
        self.checkpoint.send_replace(0);
        // A finite stream: wait for full chunks (a network log yields events a few at a
        // time, and every chunk rewrites each journey it touches once).
        let mut events = log.read_all(1).chunks(CHUNK);
        let mut n = 0;
        while let Some(chunk) = events.next().await {
            let chunk: Vec<RecordedEvent> = chunk.into_iter().collect::<Result<_, _>>()?;
            n += chunk.len() as u64;
            self.apply(&chunk)?;
        }
        self.db.flush_async().await?;
        Ok(n)
    }

    /// Folds a chunk in and writes documents, indexes and checkpoint in one batch.
    /// Events at or below the checkpoint were folded before and are skipped.
    pub fn apply(&self, chunk: &[RecordedEvent]) -> Result<(), Error> {
        let mut at = self.checkpoint();
        let mut touched: HashMap<PersonId, (Option<Journey>, Journey)> = HashMap::new();
        for e in chunk {
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
            let entry = match touched.entry(e.person_id) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let before = self.models.journey(e.person_id)?;
                    let now = before.clone().unwrap_or_else(|| Journey::new(e.person_id));
                    v.insert((before, now))
                }
            };
            entry.1.apply(e);
        }
        if at == self.checkpoint() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (person, (before, after)) in &touched {
            let old = before.as_ref().map(index_entries).unwrap_or_default();
            let new = index_entries(after);
            for (k, _) in old.difference(&new) {
                batch.remove(k.as_slice());
            }
            for (k, v) in new.difference(&old) {
                batch.insert(k.as_slice(), v.as_slice());
            }
            let doc = serde_json::to_vec(after).map_err(|e| Error::Corrupt(e.to_string()))?;
            batch.insert(&key_journey(*person)[..], doc);
        }
        batch.insert(CHECKPOINT, &at.to_be_bytes());
        self.db.apply_batch(batch)?;
        self.checkpoint.send_replace(at);
        Ok(())
    }
}

fn u64_from(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8-byte number"))
}
