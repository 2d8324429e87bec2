//! The `EventLog` trait every backend implements, and the types that cross it.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use throughcare_events::{Event, Identifier, PersonId, RecordedEvent};

use crate::Error;

/// What the person's version must be for an append to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the version.
    Any,
    /// The person must have no events yet.
    NoStream,
    /// The person's last event must be at exactly this position.
    Exactly(u64),
}

impl ExpectedVersion {
    /// The expected version for a person whose last event is at `version` (0 = none).
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exactly(version)
        }
    }
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exactly(v) => actual == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exactly(v) => write!(f, "{v}"),
        }
    }
}

/// One event to append, with the time the ledger records it (created at the edge).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    pub recorded_at: DateTime<Utc>,
}

impl NewEvent {
    /// The idempotency digest of the submission (see [`Event::digest`]).
    pub fn digest(&self) -> [u8; 32] {
        self.event.digest()
    }
}

/// One append: events for one person, the expected version, and the identifiers the
/// person claims in the identity index (create-only, atomically with the events on the
/// embedded backend).
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub person: PersonId,
    pub expected: ExpectedVersion,
    pub claims: Vec<Identifier>,
    pub events: Vec<NewEvent>,
}

/// Where one event ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub position: u64,
    pub person: PersonId,
    /// The same (source, id) and body had been recorded before; nothing new was written.
    pub duplicate: bool,
}

/// What the log remembers of a recorded (source, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorSubmission {
    pub position: u64,
    pub person: PersonId,
    pub digest: [u8; 32],
}

/// An append-only, per-person-versioned event log with a hash chain per person.
///
/// Positions are global, start at 1 and only grow. Everything returned by a read has
/// been acknowledged (is durable): readers never see an event that a crash could lose.
/// One event as [`EventLog::subscribe_stored`] yields it.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub position: u64,
    /// The exact stored bytes (UTF-8 JSON) the event's hash is over.
    pub stored: std::sync::Arc<str>,
}

#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `request.events` if the person's version admits `request.expected` and every
    /// claim is free or already the person's. Events whose (source, id) was recorded before
    /// with the same body come back as duplicates at their original position; with a
    /// different body the append fails with `IdempotencyConflict`. Returns once durable.
    async fn append(&self, request: AppendRequest) -> Result<Vec<Appended>, Error>;

    /// Appends every request (several persons, possibly new ones) all or nothing: either
    /// every event is recorded (or found a duplicate) or none is and the error says why.
    /// The result holds one `Vec<Appended>` per request, in request order.
    ///
    /// The provided default is NOT atomic: it appends request by request and stops at the
    /// first error, leaving the earlier requests recorded. It exists only so a backend that
    /// has not yet overridden this keeps compiling; every backend the server runs on must
    /// override it (the conformance suite checks atomicity).
    async fn append_all(&self, requests: Vec<AppendRequest>) -> Result<Vec<Vec<Appended>>, Error> {
        let mut out = Vec::with_capacity(requests.len());
        for request in requests {
            out.push(self.append(request).await?);
        }
        Ok(out)
    }

    /// A person's events from position `from` (inclusive), oldest first.
    async fn read_person(&self, person: PersonId, from: u64) -> Result<Vec<RecordedEvent>, Error>;

    /// Every event from position `from` (inclusive) up to the head when called, streamed.
    fn read_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>>;

    /// The event at `position`, or `None` beyond the head. The default reads the first
    /// event of `read_all(position)`; a backend with random access reads just the one.
    async fn read_at(&self, position: u64) -> Result<Option<RecordedEvent>, Error> {
        use futures::StreamExt;
        match self.read_all(position).next().await.transpose()? {
            Some(e) if e.position == position => Ok(Some(e)),
            Some(e) => Err(Error::Corrupt(format!(
                "position {position} is missing from the log (next is {})",
                e.position
            ))),
            None => Ok(None),
        }
    }

    /// Every event from `from`, then each new one as it is acknowledged: no gap and no
    /// duplicate at the seam between catch-up and live.
    fn subscribe(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, Error>>;

    /// As [`EventLog::subscribe`], but only each event's position and exact stored bytes:
    /// what the audit tree hashes, so its follower pays for no decoding. The default takes
    /// them from `subscribe`; a backend that can read the bytes alone overrides it (and
    /// still refuses bytes that do not match their recorded hash).
    fn subscribe_stored(&self, from: u64) -> BoxStream<'static, Result<StoredEntry, Error>> {
        use futures::{StreamExt, TryStreamExt};
        self.subscribe(from)
            .map_ok(|e| StoredEntry {
                position: e.position,
                stored: e.stored,
            })
            .boxed()
    }

    /// Position of the last acknowledged event (0 when empty).
    async fn head(&self) -> Result<u64, Error>;

    /// The most events one [`EventLog::append_all`] is sure to hold when few of them bring
    /// new identifiers: the ledger's batch limit is the smaller of this and `MAX_BATCH`.
    /// A store with no limit of its own keeps the default.
    fn max_batch_events(&self) -> usize {
        usize::MAX
    }

    /// Who owns an identifier in the identity index.
    async fn lookup_identifier(&self, identifier: &Identifier) -> Result<Option<PersonId>, Error>;

    /// What was recorded for (source, id), if anything.
    async fn lookup_submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<PriorSubmission>, Error>;
}
