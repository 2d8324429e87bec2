//! throughcare-events: the event catalogue, identifiers, the CloudEvents submission
//! envelope with validation, the recorded-event form with its hash chain, and the JSON
//! Schema of the catalogue.
//!
//! This crate is pure: serde only, no IO, no clock, no randomness. Times ("now") and ids
//! are created at the edge and passed in.

pub mod catalogue;
mod encoded;
mod envelope;
mod ids;
pub mod problems;
mod recorded;
mod schema;

pub use catalogue::{EventData, EventType, Origin, Personal};
pub use encoded::EncodedEvent;
pub use envelope::{
    validate_body, validate_event, Event, Submission, MAX_BODY_BYTES, MAX_EVENT_BYTES,
    MAX_FUTURE_SKEW,
};
pub use ids::{
    nhs_check_digit, Crn, Identifier, NhsNumber, Nomis, PersonId, PersonRef, PrisonCode,
    PILOT_PRISONS, PRISONS,
};
pub use problems::Problem;
pub use recorded::{verify_chain, ChainBreak, DecodeError, Hash, RecordedEvent, StoredBody};
pub use schema::{catalogue_schema, catalogue_schema_text};
