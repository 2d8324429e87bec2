//! An independent attack suite, written from DESIGN.md ("Access", "Rules at the edge", "The
//! access log") as an attacker would work: against the real `throughcare serve --auth`
//! binary over loopback HTTP, with a seed of synthetic people and principals of its own.
//! Each test collects every problem it finds and reports them together, so one run shows
//! every hole. Issue 17 lists the findings these attacks reproduce.
//!
//! 1. `subject_matrix`: no read or write outside scope, however a subject is spelt.
//! 2. `access_truth`: every refusal and every read of a person is in its access log.
//! 3. `identity`: no identity oracle, no takeover of identifiers by staff or partners.
//! 4. `limits`: bodies are bounded before authentication, RSS stays flat, slow headers
//!    are cut off.
//! 5. `headers`: security headers on every route of the OpenAPI document and every page.
//! 6. `sign_in`: no cross-site sign-in; a new sign-in ends the browser's old session.
//! 7. `flood`: unauthenticated refusals cannot flood a person's access log.
//! 8. `lists`: lists of people are logged, naming who was shown.
//! 9. `freshness`: scope of a staff write is decided at the write path's freshness.

mod support;

#[path = "attacks/access_truth.rs"]
mod access_truth;
#[path = "attacks/flood.rs"]
mod flood;
#[path = "attacks/freshness.rs"]
mod freshness;
#[path = "attacks/headers.rs"]
mod headers;
#[path = "attacks/identity.rs"]
mod identity;
#[path = "attacks/limits.rs"]
mod limits;
#[path = "attacks/lists.rs"]
mod lists;
#[path = "attacks/matrix.rs"]
mod matrix;
#[path = "attacks/raw.rs"]
mod raw;
#[path = "attacks/sign_in.rs"]
mod sign_in;
#[path = "attacks/subject_matrix.rs"]
mod subject_matrix;
#[path = "attacks/world.rs"]
mod world;
