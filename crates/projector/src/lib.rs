//! throughcare-projector: runs the pure folds of throughcare-projections over an
//! `EventLog` subscription and keeps the read models in sled.
//!
//! Every batch of projected documents is written together with the checkpoint in one
//! sled batch, so a crash never applies an event twice or skips one. A changed
//! projection version rebuilds from position 1. A failed projector task is restarted
//! with backoff and reported as down meanwhile (`supervise`).

pub mod as_of;
mod audit;
mod store;
mod supervise;

pub use as_of::{Cut, Replay, Replays};
pub use audit::{AuditTree, TreeFollower};
pub use store::{release_day, Error, Projector, ReadModels, PROJECTION_VERSION};
pub use supervise::{Backoff, Health};
