//! Names and stored forms: the stream's subjects, the message headers, and the payloads of
//! the two kinds of record that share the stream with the events (a submission's
//! idempotency record, an identifier's claim). Public for tests and tools that inspect
//! the stream.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use throughcare_events::{Identifier, PersonId};
use throughcare_ledger::{Error, PriorSubmission};

/// The event stream; it also holds the submission records and the identity claims.
pub const STREAM: &str = "THROUGHCARE";
/// Events: one subject per person, `throughcare.person.<ULID>`.
pub const SUBJECT_PREFIX: &str = "throughcare.person.";
/// Idempotency records: `throughcare.submission.<hex SHA-256 of (source, id)>`.
pub const SUBMISSION_PREFIX: &str = "throughcare.submission.";
/// Identity claims: `throughcare.identity.<kind>.<hex SHA-256 of the value>`.
pub const IDENTITY_PREFIX: &str = "throughcare.identity.";
/// Every subject of the stream (for "the stream's last message").
pub const ALL_SUBJECTS: &str = "throughcare.>";
/// Every event (the filter of `read_all` and `subscribe`).
pub const EVENT_SUBJECTS: &str = "throughcare.person.*";

/// SHA-256 of the payload, lower-case hex (the same as the event's `hash`).
pub const HASH_HEADER: &str = "Throughcare-Hash";
/// The stream sequence of the person's previous event (0 for their first). On the
/// person's first event of a batch it is also the `Nats-Expected-Last-Subject-Sequence`
/// the server checks; later events of one batch follow it inside the same atomic batch.
pub const PREV_SEQ_HEADER: &str = "Throughcare-Prev-Seq";
/// The event's position: 1, 2, 3, ... over events only (records and claims have none).
pub const POSITION_HEADER: &str = "Throughcare-Position";

/// The subjects the stream is created with.
pub fn stream_subjects() -> Vec<String> {
    vec![
        format!("{SUBJECT_PREFIX}*"),
        format!("{SUBMISSION_PREFIX}*"),
        format!("{IDENTITY_PREFIX}*.*"),
    ]
}

pub fn subject_of(person: PersonId) -> String {
    format!("{SUBJECT_PREFIX}{person}")
}

/// The person a stream subject belongs to.
pub fn person_of_subject(subject: &str) -> Option<PersonId> {
    subject.strip_prefix(SUBJECT_PREFIX)?.parse().ok()
}

/// The key of a submission: hex SHA-256 over len(source) (u16 BE), source, id. Sources are
/// URNs with characters subjects do not allow, and ids may be long, so both are hashed.
pub fn submission_key(source: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update((source.len() as u16).to_be_bytes());
    h.update(source.as_bytes());
    h.update(id.as_bytes());
    hex::encode(h.finalize())
}

/// The subject of a submission's idempotency record.
pub fn submission_subject(source: &str, id: &str) -> String {
    format!("{SUBMISSION_PREFIX}{}", submission_key(source, id))
}

/// The subject of an identifier's claim, `None` for a person's own id: a person id is
/// claimed by the person's first event (its subject exists from then on), so it needs no
/// message of its own.
pub fn identity_subject(identifier: &Identifier) -> Option<String> {
    if matches!(identifier, Identifier::Person(_)) {
        return None;
    }
    let text = identifier.to_string();
    let (kind, value) = text.split_once(':').unwrap_or(("id", text.as_str()));
    Some(format!(
        "{IDENTITY_PREFIX}{kind}.{}",
        hex::encode(Sha256::digest(value.as_bytes()))
    ))
}

/// What a submission record holds: who, which body (digest), and where its event is.
#[derive(Debug, Serialize, Deserialize)]
struct SubmissionHead {
    person: PersonId,
    /// Idempotency digest of the submission (hex).
    digest: String,
    /// The event's position.
    position: u64,
    /// The event's stream sequence (the message right after this record).
    seq: u64,
}

/// A submission record: the permanent (source, id) -> event link, stored in the same
/// atomic batch as the event it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionRecord {
    pub prior: PriorSubmission,
    /// The stream sequence of the event.
    pub seq: u64,
}

impl SubmissionRecord {
    /// Stored form: one line of JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&SubmissionHead {
            person: self.prior.person,
            digest: hex::encode(self.prior.digest),
            position: self.prior.position,
            seq: self.seq,
        })
        .expect("json values serialize")
    }

    pub fn decode(subject: &str, bytes: &[u8]) -> Result<SubmissionRecord, Error> {
        let bad = |detail: String| Error::Corrupt(format!("submission record {subject}: {detail}"));
        let head: SubmissionHead = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&head.digest, &mut digest)
            .map_err(|_| bad("digest is not 64 hex digits".into()))?;
        if head.position == 0 || head.seq == 0 {
            return Err(bad("no position".into()));
        }
        Ok(SubmissionRecord {
            prior: PriorSubmission {
                position: head.position,
                person: head.person,
                digest,
            },
            seq: head.seq,
        })
    }
}

/// An identity claim's payload: the owner's ULID.
pub fn encode_claim(person: PersonId) -> Vec<u8> {
    person.to_string().into_bytes()
}

pub fn decode_claim(subject: &str, bytes: &[u8]) -> Result<PersonId, Error> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "identity claim {subject} does not hold a person id"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> PersonId {
        "01JD3Z8Q6V2X9S7W4K5M1N0P3R".parse().unwrap()
    }

    #[test]
    fn subjects_are_valid_and_stable() {
        let k = submission_key(
            "urn:throughcare:partner:probation",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
        );
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        // (source, id) boundaries matter.
        assert_ne!(submission_key("ab", "c"), submission_key("a", "bc"));
        let id: Identifier = "nomis:A1234BC".parse().unwrap();
        let s = identity_subject(&id).unwrap();
        assert!(s.starts_with("throughcare.identity.nomis."), "{s}");
        assert_eq!(s.split('.').count(), 4, "matches throughcare.identity.*.*");
        assert_eq!(identity_subject(&Identifier::Person(person())), None);
        assert_eq!(person_of_subject(&subject_of(person())), Some(person()));
        assert_eq!(person_of_subject("throughcare.person.nope"), None);
    }

    #[test]
    fn records_round_trip() {
        let r = SubmissionRecord {
            prior: PriorSubmission {
                position: 43,
                person: person(),
                digest: [7; 32],
            },
            seq: 90,
        };
        assert_eq!(SubmissionRecord::decode("s", &r.encode()).unwrap(), r);
        assert!(matches!(
            SubmissionRecord::decode("s", b"{}"),
            Err(Error::Corrupt(_))
        ));
        assert_eq!(
            decode_claim("c", &encode_claim(person())).unwrap(),
            person()
        );
        assert!(decode_claim("c", b"nobody").is_err());
    }
}
