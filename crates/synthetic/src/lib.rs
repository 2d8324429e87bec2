//! throughcare-synthetic: the one source of synthetic identifiers (NHS numbers in the 999
//! test range with a valid Modulus 11 check digit, NOMIS numbers, CRNs, person ids) and of
//! CloudEvent JSON for every type of the catalogue, and of HMPPS domain events, as the
//! tests, the benches and the demo build them.
//!
//! Pure, like `throughcare-events`: no IO, no clock, no randomness. Every value is a
//! function of what the caller passes in (a seed, a time), so a test that says
//! `nhs_number(7)` gets the same number on every run and on every machine, and two seeds
//! in the documented range never share an identifier.
//!
//! Not a fixture store: no names, no free text beyond fixed synthetic organisation names.

mod cloudevent;
pub mod data;
pub mod hmpps;
mod ids;

pub use cloudevent::{cloudevent, person, rfc3339, with_person, SOURCE};
pub use ids::{
    crn, invalid_nhs_number, nhs_number, nomis, person_id, CRN_SEEDS, NHS_SEEDS, NOMIS_SEEDS,
};
