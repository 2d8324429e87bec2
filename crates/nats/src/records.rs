//! Names and stored forms: stream subjects, message headers, KV keys, and the two states of
//! a submission record (pending intent, recorded). Public for tests and tools that inspect
//! the stream and the buckets.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use throughcare_events::{Hash, Identifier, PersonId};
use throughcare_ledger::{Error, PriorSubmission};

/// The event stream.
pub const STREAM: &str = "THROUGHCARE";
/// Subject prefix: one subject per person, `throughcare.person.<ULID>`.
pub const SUBJECT_PREFIX: &str = "throughcare.person.";
/// Identity index: identifier -> person, create-only.
pub const IDENTITY_BUCKET: &str = "THROUGHCARE_IDENTITY";
/// Permanent idempotency: (source, id) -> pending intent, then where it was recorded.
pub const SUBMISSIONS_BUCKET: &str = "THROUGHCARE_SUBMISSIONS";

/// SHA-256 of the payload, lower-case hex (the same as the event's `hash`).
pub const HASH_HEADER: &str = "Throughcare-Hash";
/// The person's previous position (0 for their first event); the server checks it, because
/// it is also the `Nats-Expected-Last-Subject-Sequence` of the publish.
pub const PREV_SEQ_HEADER: &str = "Throughcare-Prev-Seq";

pub fn subject_of(person: PersonId) -> String {
    format!("{SUBJECT_PREFIX}{person}")
}

/// The person a stream subject belongs to.
pub fn person_of_subject(subject: &str) -> Option<PersonId> {
    subject.strip_prefix(SUBJECT_PREFIX)?.parse().ok()
}

/// KV key of an identifier: `nomis.A1234BC`, `nhs.9434765919`, `crn.X123456`,
/// `person.<ULID>` (all characters are valid in KV keys).
pub fn identity_key(identifier: &Identifier) -> String {
    identifier.to_string().replacen(':', ".", 1)
}

/// The key of a submission, used both as its KV key and as the `Nats-Msg-Id` of the event:
/// hex SHA-256 over len(source) (u16 BE), source, id. Sources are URNs with characters KV
/// keys do not allow, and ids may be long, so both are hashed.
pub fn submission_key(source: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update((source.len() as u16).to_be_bytes());
    h.update(source.as_bytes());
    h.update(id.as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Pending,
    Recorded,
}

#[derive(Debug, Serialize, Deserialize)]
struct Head {
    state: State,
    person: PersonId,
    /// Idempotency digest of the submission (hex).
    digest: String,
    /// Pending: the person's version the publish expects.
    #[serde(default, skip_serializing_if = "is_zero")]
    expected: u64,
    /// Pending: hash of the payload that follows the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<Hash>,
    /// Recorded: the stream sequence of the event.
    #[serde(default, skip_serializing_if = "is_zero")]
    position: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// An accepted append that may or may not have reached the stream yet: everything needed to
/// publish it again, byte for byte, with the same expected sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub person: PersonId,
    pub digest: [u8; 32],
    pub expected: u64,
    pub hash: Hash,
    pub payload: Vec<u8>,
}

/// A submission record as stored in the submissions bucket.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    Pending(Intent),
    Recorded(PriorSubmission),
}

impl Submission {
    /// Stored form: one line of JSON, then (pending only) a newline and the payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Submission::Pending(i) => {
                let head = Head {
                    state: State::Pending,
                    person: i.person,
                    digest: hex::encode(i.digest),
                    expected: i.expected,
                    hash: Some(i.hash),
                    position: 0,
                };
                let mut out = serde_json::to_vec(&head).expect("json values serialize");
                out.push(b'\n');
                out.extend_from_slice(&i.payload);
                out
            }
            Submission::Recorded(p) => serde_json::to_vec(&Head {
                state: State::Recorded,
                person: p.person,
                digest: hex::encode(p.digest),
                expected: 0,
                hash: None,
                position: p.position,
            })
            .expect("json values serialize"),
        }
    }

    pub fn decode(key: &str, bytes: &[u8]) -> Result<Submission, Error> {
        let bad = |detail: String| Error::Corrupt(format!("submission record {key}: {detail}"));
        let (head, payload) = match bytes.iter().position(|b| *b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (bytes, &[][..]),
        };
        let head: Head = serde_json::from_slice(head).map_err(|e| bad(e.to_string()))?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&head.digest, &mut digest)
            .map_err(|_| bad("digest is not 64 hex digits".into()))?;
        match head.state {
            State::Recorded if head.position > 0 => Ok(Submission::Recorded(PriorSubmission {
                position: head.position,
                person: head.person,
                digest,
            })),
            State::Recorded => Err(bad("recorded without a position".into())),
            State::Pending => {
                let hash = head
                    .hash
                    .ok_or_else(|| bad("pending without a hash".into()))?;
                if Hash::of(payload) != hash {
                    return Err(bad("the pending payload does not match its hash".into()));
                }
                Ok(Submission::Pending(Intent {
                    person: head.person,
                    digest,
                    expected: head.expected,
                    hash,
                    payload: payload.to_vec(),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> PersonId {
        "01JD3Z8Q6V2X9S7W4K5M1N0P3R".parse().unwrap()
    }

    #[test]
    fn keys_are_valid_kv_keys_and_stable() {
        let k = submission_key(
            "urn:throughcare:partner:probation",
            "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
        );
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        // (source, id) boundaries matter.
        assert_ne!(submission_key("ab", "c"), submission_key("a", "bc"));
        let id: Identifier = "nomis:A1234BC".parse().unwrap();
        assert_eq!(identity_key(&id), "nomis.A1234BC");
        let p = Identifier::Person(person());
        assert_eq!(identity_key(&p), format!("person.{}", person()));
        assert_eq!(person_of_subject(&subject_of(person())), Some(person()));
        assert_eq!(person_of_subject("throughcare.person.nope"), None);
    }

    #[test]
    fn submission_records_round_trip() {
        let payload = b"{\"some\":\"bytes\"}\n with a newline".to_vec();
        let pending = Submission::Pending(Intent {
            person: person(),
            digest: [7; 32],
            expected: 42,
            hash: Hash::of(&payload),
            payload,
        });
        assert_eq!(Submission::decode("k", &pending.encode()).unwrap(), pending);
        let recorded = Submission::Recorded(PriorSubmission {
            position: 43,
            person: person(),
            digest: [7; 32],
        });
        assert_eq!(
            Submission::decode("k", &recorded.encode()).unwrap(),
            recorded
        );
        // A pending record whose payload was altered is refused.
        let mut bytes = pending.encode();
        *bytes.last_mut().unwrap() ^= 1;
        assert!(matches!(
            Submission::decode("k", &bytes),
            Err(Error::Corrupt(_))
        ));
    }
}
