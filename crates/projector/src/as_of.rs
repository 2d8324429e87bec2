//! What the ledger knew at a past moment: the cut of the log at a time or a position, and
//! read models replayed from the log's prefix up to a cut (the projector's own fold into a
//! scratch sled store), kept in a small cache keyed by the cut's position.
//!
//! Not the live read models: a replay is built once for its position and never changes,
//! so an answer as of a past time is the same however far the log has moved since.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use throughcare_events::RecordedEvent;
use throughcare_ledger::EventLog;
use tokio::sync::OnceCell;

use crate::store::{Projector, ReadModels, CHUNK};
use crate::Error;

/// How many replays the cache keeps (each is a scratch store the size of the read models
/// at its position).
pub const CACHED_REPLAYS: usize = 4;

/// How many replays may be built at once: each folds the log's prefix, which takes a core
/// and disk for as long as it runs; more callers wait their turn (or get a 503 when none
/// comes within [`BUILD_WAIT`]).
pub const CONCURRENT_BUILDS: usize = 2;

/// How long a caller waits for a turn to build before being told to retry.
pub const BUILD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A cut of the log: the events at positions `1..=position`, read as at time `at` (the
/// `now` of every time-based rule in the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub position: u64,
    pub at: DateTime<Utc>,
}

/// The event at `position` (which must be at or below the head).
pub async fn event_at(log: &dyn EventLog, position: u64) -> Result<RecordedEvent, Error> {
    log.read_at(position)
        .await?
        .ok_or_else(|| Error::Corrupt(format!("position {position} is beyond the head of the log")))
}

/// The position of the last event recorded at or before `t` among positions
/// `1..=head` (0 when none): a binary search, O(log head) reads. Exact because
/// `recorded_at` never decreases with position (the writer clamps it; see
/// ARCHITECTURE.md "As of"), so the events recorded by `t` are a prefix of the log.
pub async fn position_at(log: &dyn EventLog, t: DateTime<Utc>, head: u64) -> Result<u64, Error> {
    // Invariant: recorded_at(lo) <= t (position 0 stands for "before everything") and
    // recorded_at(hi + 1) > t (head + 1 stands for "after everything").
    let (mut lo, mut hi) = (0, head);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if event_at(log, mid).await?.recorded_at <= t {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Read models as they were at one position of the log, answering the same queries as
/// the live ones (it dereferences to [`ReadModels`]).
pub struct Replay {
    // Declared before the directory so the store closes before its files are removed.
    models: ReadModels,
    position: u64,
    _scratch: tempfile::TempDir,
}

impl Replay {
    /// The last position folded in.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Folds positions `1..=position` of `log` into a new scratch store under `scratch`
    /// with the projector's own fold and batches.
    pub async fn build(
        log: Arc<dyn EventLog>,
        position: u64,
        scratch: &Path,
    ) -> Result<Replay, Error> {
        std::fs::create_dir_all(scratch)
            .map_err(|e| Error::Unavailable(format!("as-of scratch directory: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix("throughcare-as-of-")
            .tempdir_in(scratch)
            .map_err(|e| Error::Unavailable(format!("as-of scratch directory: {e}")))?;
        let db = sled::Config::new()
            .path(dir.path().join("readmodels"))
            .cache_capacity(16 * 1024 * 1024)
            .open()?;
        let projector = Projector::with_db(db)?;
        fold_prefix(&projector, log.as_ref(), position).await?;
        Ok(Replay {
            models: projector.read_models(),
            position,
            _scratch: dir,
        })
    }
}

/// Folds the log from the projector's checkpoint up to and including `position` with the
/// projector's own batches (an as-of replay; `throughcare audit replay` into a directory).
pub async fn fold_prefix(
    projector: &Projector,
    log: &dyn EventLog,
    position: u64,
) -> Result<(), Error> {
    let from = projector.checkpoint() + 1;
    let wanted = position.saturating_sub(from - 1);
    let mut events = log
        .read_all(from)
        .take(usize::try_from(wanted).unwrap_or(usize::MAX))
        .chunks(CHUNK);
    while let Some(chunk) = events.next().await {
        let chunk: Vec<RecordedEvent> = chunk.into_iter().collect::<Result<_, _>>()?;
        projector.apply(&chunk)?;
    }
    if projector.checkpoint() != position {
        return Err(Error::Corrupt(format!(
            "the read models are at position {}, not at the cut at {position} (the log ended \
             before it, or the store was already past it)",
            projector.checkpoint()
        )));
    }
    Ok(())
}

impl std::ops::Deref for Replay {
    type Target = ReadModels;
    fn deref(&self) -> &ReadModels {
        &self.models
    }
}

type Slot = Arc<OnceCell<Arc<Replay>>>;

/// Replays of the log, least recently used evicted: a repeated as-of query (a month's
/// published KPIs, a page of a past release calendar) folds the log once. Concurrent
/// queries for the same position share one build; at most [`CONCURRENT_BUILDS`] run at
/// once, and a build whose callers have all gone away is stopped (the next caller for
/// that position starts it again).
pub struct Replays {
    log: Arc<dyn EventLog>,
    scratch: PathBuf,
    builds: Arc<tokio::sync::Semaphore>,
    /// (position, slot), most recently used last.
    cache: Mutex<Vec<(u64, Slot)>>,
}

impl Replays {
    /// Replays of `log`, in scratch directories under the system's temp directory.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Replays::in_dir(log, std::env::temp_dir())
    }

    /// Replays of `log` in scratch directories under `scratch` (removed when evicted).
    pub fn in_dir(log: Arc<dyn EventLog>, scratch: PathBuf) -> Self {
        Replays {
            log,
            scratch,
            builds: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BUILDS)),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// The read models at `position` (at most the head), from the cache or a new replay.
    pub async fn at(&self, position: u64) -> Result<Arc<Replay>, Error> {
        let slot = self.slot(position);
        let log = self.log.clone();
        let scratch = self.scratch.clone();
        let builds = self.builds.clone();
        slot.get_or_try_init(|| async move {
            let turn = tokio::time::timeout(BUILD_WAIT, builds.acquire_owned())
                .await
                .map_err(|_| {
                    Error::Unavailable(format!(
                        "{CONCURRENT_BUILDS} as-of replays are being built; retry shortly"
                    ))
                })?
                .map_err(|_| Error::Unavailable("as-of replays are shutting down".into()))?;
            // The build is a task of its own (the fold blocks on the store) that is
            // aborted if this future is dropped: every caller waiting on it went away.
            let build = AbortOnDrop(tokio::spawn(async move {
                let _turn = turn;
                Replay::build(log, position, &scratch).await
            }));
            build
                .join()
                .await
                .map_err(|e| Error::Unavailable(format!("as-of replay stopped: {e}")))?
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    fn slot(&self, position: u64) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let slot = match cache.iter().position(|(p, _)| *p == position) {
            Some(i) => cache.remove(i).1,
            None => Slot::default(),
        };
        cache.push((position, slot.clone()));
        if cache.len() > CACHED_REPLAYS {
            // Callers still holding the evicted replay keep it alive until they finish.
            cache.remove(0);
        }
        slot
    }
}

/// A task handle that aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The cut of `log` at time `t`: every event recorded at or before `t`, read at `t`.
pub async fn cut_at_time(log: &dyn EventLog, t: DateTime<Utc>) -> Result<Cut, Error> {
    let head = log.head().await?;
    Ok(Cut {
        position: position_at(log, t, head).await?,
        at: t,
    })
}

/// The cut of `log` at `position` (1..=head), read at the time that event was recorded.
pub async fn cut_at_position(log: &dyn EventLog, position: u64) -> Result<Cut, Error> {
    Ok(Cut {
        position,
        at: event_at(log, position).await?.recorded_at,
    })
}
