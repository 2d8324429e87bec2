//! throughcare-tests: shared test code; `conformance` is the `EventLog` suite every backend runs.

pub mod conformance;
