//! throughcare-hmpps: HMPPS domain events (bare, or in the SNS notification SQS delivers)
//! turned into throughcare CloudEvents, as DESIGN.md "HMPPS domain events in" says.
//!
//! Pure: no IO, no clock, no randomness. [`parse`] reads and checks a message (every
//! problem at a JSON pointer); the caller looks up the prisoner's [`PersonState`] (and, for
//! a merge, the state of the number merged away); [`map`] says what the message becomes:
//! a CloudEvent to record through the ordinary write path, an [`Ignored`] reason, or an
//! identity conflict for a human. The transports (`POST /v1/hmpps/domain-events`, the
//! JetStream consumer) live in throughcare-server and throughcare-nats.

mod map;
mod parse;

pub use map::{map, Ignored, Mapping, PersonState, SOURCE};
pub use parse::{
    jcs_sha256, parse, Movement, Notification, Reception, Release, MERGED, RECALL_CODES, RECEIVED,
    RELEASED,
};

#[cfg(test)]
mod tests;
