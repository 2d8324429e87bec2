//! The access log: who read or was refused what, when and why, appended durably before
//! the response is sent, in an append-only log with its own hash chain.
//!
//! # Stored bytes and the hash chain (how an auditor recomputes it)
//!
//! Entries are numbered `seq` = 1, 2, 3, ... with no gap. The *stored bytes* of an entry
//! are the compact JSON (no whitespace) of the entry **without** its `hash` member, with
//! the members in exactly this order:
//!
//! ```text
//! seq, at, who, role, what, person_id, [people], purpose, [reason], outcome, review,
//! route, status, request_id, prev
//! ```
//!
//! - `at` is RFC 3339 in UTC with exactly three fractional digits and `Z`
//!   (`"2026-11-29T10:02:11.120Z"`); an append truncates the time to milliseconds.
//! - `person_id` and `purpose` are `null` when absent; `reason` (the break-glass reason) is
//!   left out entirely when absent, and so is `people` (the people a list showed, for
//!   READ_LIST entries) when empty.
//! - strings are escaped as JSON requires and no more (`"`, `\` and control characters;
//!   other characters as raw UTF-8), i.e. what Python's
//!   `json.dumps(entry, separators=(",", ":"), ensure_ascii=False)` writes for a dict with
//!   the members in that order.
//! - `prev` is the `hash` of entry `seq - 1` as 64 lower-case hex digits; for `seq` 1 it is
//!   64 zeros.
//!
//! `hash` = SHA-256 of exactly the stored bytes. So, given the entries as JSON (for example
//! from `GET /v1/access`), an auditor drops `hash`, writes the rest compactly in that
//! order, hashes it, compares with `hash`, and checks that the next entry's `prev` equals
//! it. The backends store these very bytes and [`AccessLog::verify`] re-hashes them (and
//! checks that they are the canonical encoding of the entry they decode to, so the JSON
//! handed out recomputes to the same hash).
//!
//! # Backends
//!
//! - [`EmbeddedAccessLog`]: the sled tree `access` in the event log's database
//!   ([`crate::EmbeddedLog::access_log`]), group-committed by one writer thread.
//! - The JetStream stream `THROUGHCARE_ACCESS`, in `throughcare-nats`.
//!
//! [`conformance`] holds the checks every backend must pass; both crates' tests run them.

mod chain;
pub mod conformance;
mod embedded;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use throughcare_events::{Hash, PersonId};

use crate::Error;

pub use chain::ChainCheck;
pub use embedded::EmbeddedAccessLog;

/// What was done (or attempted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessWhat {
    ReadJourney,
    ReadEvents,
    Verify,
    ReadCaseload,
    ReadIdentity,
    /// A list of people: calendars, queues, searches (`people` names who was shown).
    ReadList,
    Export,
    /// Refused submissions only: recorded events are their own record.
    Submit,
    Denied,
}

impl AccessWhat {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessWhat::ReadJourney => "READ_JOURNEY",
            AccessWhat::ReadEvents => "READ_EVENTS",
            AccessWhat::Verify => "VERIFY",
            AccessWhat::ReadCaseload => "READ_CASELOAD",
            AccessWhat::ReadIdentity => "READ_IDENTITY",
            AccessWhat::ReadList => "READ_LIST",
            AccessWhat::Export => "EXPORT",
            AccessWhat::Submit => "SUBMIT",
            AccessWhat::Denied => "DENIED",
        }
    }
}

impl fmt::Display for AccessWhat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a person's data was read (DESIGN.md "Access").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Purpose {
    DirectCare,
    ServiceManagement,
    Audit,
    SubjectAccess,
    Emergency,
}

impl Purpose {
    pub const ALL: [Purpose; 5] = [
        Purpose::DirectCare,
        Purpose::ServiceManagement,
        Purpose::Audit,
        Purpose::SubjectAccess,
        Purpose::Emergency,
    ];

    /// The purpose named by `?purpose=` or `Throughcare-Purpose` (`DIRECT_CARE`, ...;
    /// letter case is not significant).
    pub fn parse(s: &str) -> Option<Purpose> {
        let s = s.trim();
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::DirectCare => "DIRECT_CARE",
            Purpose::ServiceManagement => "SERVICE_MANAGEMENT",
            Purpose::Audit => "AUDIT",
            Purpose::SubjectAccess => "SUBJECT_ACCESS",
            Purpose::Emergency => "EMERGENCY",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the request was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "ALLOWED",
            Outcome::Denied => "DENIED",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server asks to append (no seq/prev/hash yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// When; stored with millisecond precision (an append truncates it).
    #[serde(serialize_with = "at_ser", deserialize_with = "at_de")]
    pub at: DateTime<Utc>,
    pub who: String,
    pub role: String,
    pub what: AccessWhat,
    /// The person the request was about; `null` in JSON when none.
    pub person_id: Option<PersonId>,
    /// The people a list showed (READ_LIST); left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<PersonId>,
    pub purpose: Option<Purpose>,
    /// The break-glass reason; left out of the JSON when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub outcome: Outcome,
    /// Marked for an auditor's review (break glass).
    pub review: bool,
    /// The route template, e.g. `GET /v1/people/{id}/journey`.
    pub route: String,
    /// The HTTP status answered.
    pub status: u16,
    pub request_id: String,
}

impl AccessRecord {
    /// Whether the entry is about `person`: the person read, or one a list showed.
    pub fn names(&self, person: PersonId) -> bool {
        self.person_id == Some(person) || self.people.contains(&person)
    }
}

fn at_ser<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn at_de<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("`at` must be RFC 3339: {e}")))
}

/// A stored entry: the record, its place in the log and its link in the chain. Its JSON
/// is flat (see the module documentation and [`AccessEntry::stored_bytes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessEntry {
    pub seq: u64,
    pub record: AccessRecord,
    /// `hash` of entry `seq - 1` ([`Hash::ZERO`] for the first).
    pub prev: Hash,
    /// SHA-256 of [`AccessEntry::stored_bytes`].
    pub hash: Hash,
}

/// The flat JSON form: the stored bytes when `hash` is `None`.
#[derive(Serialize)]
struct EntryOut<'a> {
    seq: u64,
    #[serde(flatten)]
    record: &'a AccessRecord,
    prev: Hash,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<Hash>,
}

#[derive(Deserialize)]
struct EntryIn {
    seq: u64,
    #[serde(flatten)]
    record: AccessRecord,
    prev: Hash,
    #[serde(default)]
    hash: Option<Hash>,
}

impl AccessEntry {
    /// Numbers `record` as entry `seq` chained to `prev`: truncates `at` to milliseconds
    /// (what the stored form holds) and computes the hash. Returns the entry and its
    /// stored bytes.
    pub fn seal(seq: u64, mut record: AccessRecord, prev: Hash) -> (AccessEntry, Vec<u8>) {
        record.at = record.at.trunc_subsecs(3);
        let stored = encode(seq, &record, prev);
        let hash = Hash::of(&stored);
        (
            AccessEntry {
                seq,
                record,
                prev,
                hash,
            },
            stored,
        )
    }

    /// The stored bytes: the compact JSON of the entry without `hash`, members in the
    /// documented order. `hash` is SHA-256 of exactly these bytes.
    pub fn stored_bytes(&self) -> Vec<u8> {
        encode(self.seq, &self.record, self.prev)
    }

    /// Reads stored bytes back; the hash is recomputed from the bytes themselves. Fails if
    /// they are not an entry or not its canonical encoding.
    pub fn from_stored(bytes: &[u8]) -> Result<AccessEntry, Error> {
        let e: EntryIn = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt(format!("an access log entry does not decode: {e}")))?;
        if e.hash.is_some() {
            return Err(Error::Corrupt(format!(
                "access log entry {} holds its own hash in its stored bytes",
                e.seq
            )));
        }
        let entry = AccessEntry {
            seq: e.seq,
            record: e.record,
            prev: e.prev,
            hash: Hash::of(bytes),
        };
        if entry.stored_bytes() != bytes {
            return Err(Error::Corrupt(format!(
                "access log entry {} is not stored in its canonical form",
                entry.seq
            )));
        }
        Ok(entry)
    }

    /// Decodes the stored bytes found at `seq`, checking the number inside them and, when
    /// the backend keeps one beside them, the hash recorded at append time.
    pub fn decode_at(seq: u64, bytes: &[u8], recorded: Option<Hash>) -> Result<AccessEntry, Error> {
        let entry = AccessEntry::from_stored(bytes)?;
        if entry.seq != seq {
            return Err(Error::Corrupt(format!(
                "access log entry stored at {seq} says it is entry {}",
                entry.seq
            )));
        }
        if recorded.is_some_and(|h| h != entry.hash) {
            return Err(Error::Corrupt(format!(
                "access log entry {seq} does not hash to the hash recorded when it was appended"
            )));
        }
        Ok(entry)
    }
}

fn encode(seq: u64, record: &AccessRecord, prev: Hash) -> Vec<u8> {
    serde_json::to_vec(&EntryOut {
        seq,
        record,
        prev,
        hash: None,
    })
    .expect("an access entry serializes")
}

impl Serialize for AccessEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EntryOut {
            seq: self.seq,
            record: &self.record,
            prev: self.prev,
            hash: Some(self.hash),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AccessEntry {
    /// Takes `hash` as given (it is not recomputed here; [`AccessEntry::stored_bytes`] and
    /// [`Hash::of`] do that).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let e = EntryIn::deserialize(d)?;
        let hash = e
            .hash
            .ok_or_else(|| serde::de::Error::missing_field("hash"))?;
        Ok(AccessEntry {
            seq: e.seq,
            record: e.record,
            prev: e.prev,
            hash,
        })
    }
}

/// Which entries a query wants. Every condition given must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessFilter {
    pub person: Option<PersonId>,
    pub who: Option<String>,
    /// `at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `at < to`.
    pub to: Option<DateTime<Utc>>,
    pub review: Option<bool>,
    /// Only entries with a greater seq (exclusive; 0 from the start): the last seq of the
    /// previous page.
    pub after_seq: u64,
    /// At most this many entries.
    pub limit: usize,
}

impl Default for AccessFilter {
    /// Everything from the start, 100 at a time.
    fn default() -> Self {
        AccessFilter {
            person: None,
            who: None,
            from: None,
            to: None,
            review: None,
            after_seq: 0,
            limit: 100,
        }
    }
}

impl AccessFilter {
    /// Whether `entry` passes every condition but the paging ones.
    pub fn matches(&self, entry: &AccessEntry) -> bool {
        let r = &entry.record;
        self.person.is_none_or(|p| r.names(p))
            && self.who.as_ref().is_none_or(|w| r.who == *w)
            && self.from.is_none_or(|t| r.at >= t)
            && self.to.is_none_or(|t| r.at < t)
            && self.review.is_none_or(|v| r.review == v)
    }
}

/// The result of recomputing the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessChainReport {
    /// Entries read.
    pub entries: u64,
    /// Every entry present, numbered 1.. without gaps, hashing to its recorded hash and
    /// linked to the one before.
    pub ok: bool,
    /// Recomputed hash of the last entry read (`None` for an empty log).
    pub head: Option<Hash>,
    /// The first seq at which the chain does not hold (see [`ChainCheck`]).
    pub broken_at: Option<u64>,
}

/// An append-only, hash-chained access log.
#[async_trait]
pub trait AccessLog: Send + Sync {
    /// Appends durably (fsynced / JetStream-acked) before returning; concurrent appends
    /// share one flush (group commit). `at` is truncated to milliseconds.
    async fn append(&self, record: AccessRecord) -> Result<AccessEntry, Error>;
    /// Entries matching the filter in seq order, at most `limit`.
    async fn query(&self, filter: &AccessFilter) -> Result<Vec<AccessEntry>, Error>;
    /// Recomputes the whole chain.
    async fn verify(&self) -> Result<AccessChainReport, Error>;
    /// The seq of the last durable entry (0 when empty).
    async fn head(&self) -> Result<u64, Error>;
}
