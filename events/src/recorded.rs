//! Recorded events: what the ledger stored, where, when, and the per-person hash chain.
//!
//! The stored bytes of an event are the canonical JSON of [`StoredBody`]; its `hash` is
//! SHA-256 over exactly those bytes and the next event of the same person carries it as
//! `prev`. The global position is not in the body: the backend assigns it.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{Event, StoredEnvelope};
use crate::ids::PersonId;
#[cfg(doc)]
use crate::EncodedEvent;

/// A SHA-256 digest, shown as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of a person's first event.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..12])
    }
}
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("hash must be 64 hex digits"))
    }
}

/// An event as the ledger recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Global position in the log (1, 2, ...); also the person's version after it.
    pub position: u64,
    pub person_id: PersonId,
    /// When the ledger recorded it (the event's `time` is when it happened).
    pub recorded_at: DateTime<Utc>,
    /// Hash of this person's previous event ([`Hash::ZERO`] for the first).
    pub prev: Hash,
    /// SHA-256 of the stored bytes.
    pub hash: Hash,
    pub event: Event,
    /// The exact stored bytes (UTF-8 JSON) that `hash` is over, as read back from the
    /// log; empty for an event that was only folded, never read from a log.
    pub stored: Arc<str>,
}

/// Errors reading stored bytes back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("stored event at position {position} is not valid: {detail}")]
    Invalid { position: u64, detail: String },
}

/// The stored form of one event.
pub struct StoredBody;

impl StoredBody {
    /// The bytes to store for `event`, chained to `prev`: the RFC 8785 (JCS) canonical
    /// JSON of `{"person_id", "recorded_at", "prev", "event"}`, so that anyone can
    /// re-encode and re-hash them. Bytes stored before JCS (serde_json's compact form)
    /// are kept as they are: [`StoredBody::decode`] reads either, and hashes what is stored.
    pub fn encode(
        person_id: PersonId,
        recorded_at: DateTime<Utc>,
        prev: Hash,
        event: &Event,
    ) -> Vec<u8> {
        let json = crate::encoded::canonical(&event.to_json());
        Self::assemble(person_id, recorded_at, prev, &json)
    }

    /// [`StoredBody::encode`] from the event's canonical JSON made beforehand
    /// ([`EncodedEvent`]), so a writer that learns `recorded_at` and `prev` last only
    /// splices: the members in JCS order (`event` < `person_id` < `prev` <
    /// `recorded_at`), none of the three strings needing an escape (a ULID, hex, and an
    /// RFC 3339 time). The same bytes as the canonicaliser gives for the whole body.
    pub fn assemble(
        person_id: PersonId,
        recorded_at: DateTime<Utc>,
        prev: Hash,
        event_json: &[u8],
    ) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(event_json.len() + 180);
        out.extend_from_slice(b"{\"event\":");
        out.extend_from_slice(event_json);
        write!(
            out,
            ",\"person_id\":\"{person_id}\",\"prev\":\"{prev}\",\"recorded_at\":\"{}\"}}",
            recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
        .expect("writing to a Vec cannot fail");
        out
    }

    /// Reads stored bytes back; the hash is recomputed from the bytes themselves.
    pub fn decode(position: u64, bytes: &[u8]) -> Result<RecordedEvent, DecodeError> {
        let bad = |detail: String| DecodeError::Invalid { position, detail };
        #[derive(Deserialize)]
        struct Body {
            person_id: PersonId,
            recorded_at: DateTime<Utc>,
            prev: Hash,
            event: StoredEnvelope,
        }
        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        let body: Body = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let event = body.event.into_event().map_err(|e| bad(e.to_string()))?;
        Ok(RecordedEvent {
            position,
            person_id: body.person_id,
            recorded_at: body.recorded_at,
            prev: body.prev,
            hash: Hash::of(bytes),
            event,
            stored: Arc::from(text),
        })
    }
}

/// Where a person's chain is broken, if it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub position: u64,
    pub detail: String,
}

/// Checks one person's events, oldest first: each `prev` is the previous `hash`, the first
/// is [`Hash::ZERO`], positions only grow and every event belongs to the person.
pub fn verify_chain(person: PersonId, events: &[RecordedEvent]) -> Result<Hash, ChainBreak> {
    let mut prev = Hash::ZERO;
    let mut last = 0;
    for e in events {
        let fail = |detail: &str| ChainBreak {
            position: e.position,
            detail: detail.to_string(),
        };
        if e.person_id != person {
            return Err(fail("event belongs to another person"));
        }
        if e.position <= last {
            return Err(fail("positions do not increase"));
        }
        if e.prev != prev {
            return Err(fail("prev does not match the hash of the previous event"));
        }
        prev = e.hash;
        last = e.position;
    }
    Ok(prev)
}
