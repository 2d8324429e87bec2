//! The one error type of the crate: each variant says what the caller can do about it.

/// Why a tree operation, proof, key or note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The sizes or indices asked for do not fit together (e.g. a leaf index that is not
    /// below the tree size, or a consistency proof from a larger tree to a smaller one).
    #[error("invalid range: {0}")]
    InvalidRange(String),
    /// The node store lacks a complete-subtree node that the tree of the asked size has:
    /// the store is behind the tree, or was damaged.
    #[error("node store has no node at level {level}, index {index}")]
    MissingNode { level: u8, index: u64 },
    /// The node store could not be read (set by `NodeStore` implementations).
    #[error("node store unavailable: {0}")]
    Unavailable(String),
    /// A Merkle proof does not prove what it was checked against.
    #[error("proof does not verify: {0}")]
    BadProof(&'static str),
    /// A key text is not in the note key format, or its key hash does not match the key.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A note or checkpoint text is not well formed.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// A signature by the trusted key is present but does not verify: the text was altered
    /// or signed by someone else under the same key name and hash.
    #[error("invalid signature by key {0}")]
    BadSignature(String),
    /// The note carries no signature by the trusted key (signatures by other keys are
    /// ignored, as the signed-note spec requires).
    #[error("note has no signature by key {0}")]
    NotSigned(String),
}
