//! Access control: the route table (who may call what), the guard that enforces it on
//! every HTTP route in one place, the rules that need data (scope, submissions), and web
//! sessions. DESIGN.md "Access" is the contract.

mod guard;
pub mod policy;
pub mod routes;
pub mod session;

pub use guard::{bearer, guard, Caller, LogNote, RouteIndex, ScopedJourney, REQUEST_ID};
