//! RFC 9162 section 2.1 hashing: leaves and interior nodes with their domain-separation bytes.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of a leaf: SHA-256(0x00 || bytes).
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(bytes);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}
