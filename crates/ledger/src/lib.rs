//! throughcare-ledger: the `EventLog` trait, the write path (validate -> resolve person ->
//! decide -> append with expected version) and the embedded sled backend.
//!
//! Only this crate and the projector touch sled; only crates/nats touches NATS.

pub mod access;
mod cache;
mod embedded;
mod error;
mod log;
mod write;

pub use access::{
    AccessChainReport, AccessEntry, AccessFilter, AccessLog, AccessRecord, AccessWhat,
    EmbeddedAccessLog, Outcome, Purpose,
};
pub use embedded::EmbeddedLog;
pub use error::Error;
pub use log::{
    AppendRequest, Appended, EventLog, ExpectedVersion, NewEvent, PriorSubmission, StoredEntry,
};
pub use write::{BatchError, ChainReport, Clock, IdSource, ItemError, Ledger, Receipt, MAX_BATCH};
