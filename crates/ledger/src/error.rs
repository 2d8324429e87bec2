//! The ledger's one error type: variants say what the caller can do about it.

use throughcare_events::{Identifier, PersonId, Problem};
use throughcare_projections::DomainError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The person's version was not what the append expected; re-read and decide again.
    #[error("expected version {expected} of person {person} but it is at {actual}")]
    Conflict {
        person: PersonId,
        expected: String,
        actual: u64,
    },
    /// An identifier already belongs to another person: a silent merge is never made.
    #[error("identifier {identifier} belongs to person {owner}, not {person}")]
    IdentityConflict {
        identifier: Identifier,
        owner: PersonId,
        person: PersonId,
    },
    /// The same (source, id) was recorded before with a different body.
    #[error("event {id} from {event_source} was already recorded with a different body")]
    IdempotencyConflict {
        event_source: String,
        id: String,
        position: u64,
    },
    /// The submission is malformed; nothing was recorded.
    #[error("invalid submission: {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    /// The case state does not allow this decision; nothing was recorded.
    #[error("refused: {0}")]
    Refused(DomainError),
    /// No such person.
    #[error("unknown person {0}")]
    UnknownPerson(PersonId),
    /// The store is unavailable or failed; the request may be retried.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed to decode or verify.
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<throughcare_events::DecodeError> for Error {
    fn from(e: throughcare_events::DecodeError) -> Self {
        Error::Corrupt(e.to_string())
    }
}
