//! Access control: the rules a route carries (`rules`), the guard that enforces it on
//! every HTTP route in one place and hands handlers the capabilities their scope grants
//! (`scoped`), the rules that need data (scope, submissions) and the access-log writing.
//! DESIGN.md "Access" is the contract.

mod guard;
pub mod log;
pub mod policy;
pub mod rules;
pub mod scoped;

pub use guard::{bearer, guard, Caller, Guarded, LogNote, RouteIndex, REQUEST_ID};
pub use scoped::{ScopedPerson, ScopedWorker, Subject};
