//! Tests of throughcare-tlog: RFC 8785 vectors, the Merkle tree and proofs against a
//! reference written from RFC 9162's recursive definitions, and signed notes and
//! checkpoints against Go's `note` package and by hand from the C2SP specs.

mod jcs;
mod merkle;
mod note;
mod reference;
