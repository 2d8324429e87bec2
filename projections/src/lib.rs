//! throughcare-projections: pure folds over recorded events (the journey of each person)
//! and the `decide` rules of the case lifecycle.
//!
//! No IO, no clock, no randomness: queries that depend on time take `now` as an argument.

pub mod caseload;
pub mod decide;
pub mod journey;
pub mod kpi;

pub use caseload::{contact_overdue, next_action, NextAction};
pub use decide::{allowed, decide, DomainError};
pub use journey::{Flag, FlagCode, Journey, JourneyView, Status};
pub use kpi::{kpis, EpisodeFacts, MonthKpis, Ratio};
