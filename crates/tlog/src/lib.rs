//! Verifiable-log primitives for throughcare's audit trail (DESIGN.md "Audit"): RFC 8785
//! canonical JSON, the RFC 9162 Merkle tree with inclusion and consistency proofs, and
//! C2SP checkpoints signed as C2SP signed notes with Ed25519.
//!
//! Pure: no IO, no clock, no randomness. Nodes are handed to the caller to persist (see
//! [`NodeStore`]); keys come from seeds the caller draws.

mod checkpoint;
mod error;
mod hash;
mod jcs;
mod note;
mod proof;
mod tree;

pub use checkpoint::Checkpoint;
pub use error::Error;
pub use hash::{empty_root, leaf_hash, node_hash, Hash};
pub use jcs::canonical_json;
pub use note::{keygen, SigningKey, VerifierKey};
pub use proof::{consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
pub use tree::{root_at, MemoryStore, Node, NodeStore, Tree};
