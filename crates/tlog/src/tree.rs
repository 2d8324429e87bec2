//! The incremental RFC 9162 Merkle tree: O(log n) right edge in memory, complete-subtree
//! nodes handed to the caller to persist, and roots of any earlier size from those nodes.
//!
//! Addressing: the node at `(level, index)` is the root of the complete subtree over
//! leaves `index * 2^level .. (index + 1) * 2^level`; leaves are level 0. Such a node never
//! changes once the tree has grown past it, so a store of these nodes serves proofs and
//! roots for every size up to the tree's own. Incomplete subtrees (the right edge of an
//! older size) are never stored: they are folded from O(log n) complete ones on demand.

use std::collections::HashMap;

use crate::hash::{empty_root, leaf_hash, node_hash, Hash};
use crate::Error;

/// A complete-subtree node: the root hash of leaves `index * 2^level .. (index + 1) * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub level: u8,
    pub index: u64,
    pub hash: Hash,
}

/// Where the complete-subtree nodes returned by [`Tree::append`] are kept (sled, a KV
/// bucket, memory). Proof and root functions read O(log n) nodes from it.
pub trait NodeStore {
    /// The stored node at `(level, index)`, `None` if it was never stored. A store that
    /// cannot be read answers [`Error::Unavailable`].
    fn get(&self, level: u8, index: u64) -> Result<Option<Hash>, Error>;
}

/// An in-memory [`NodeStore`] (tests, and an auditor rebuilding a tree from entries).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    nodes: HashMap<(u8, u64), Hash>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the nodes returned by [`Tree::append`].
    pub fn insert(&mut self, nodes: &[Node]) {
        for n in nodes {
            self.nodes.insert((n.level, n.index), n.hash);
        }
    }

    /// How many nodes are kept.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeStore for MemoryStore {
    fn get(&self, level: u8, index: u64) -> Result<Option<Hash>, Error> {
        Ok(self.nodes.get(&(level, index)).copied())
    }
}

/// The tree head kept incrementally: its size and the right edge, the roots of the
/// complete subtrees that partition `0..size` from largest (leftmost) to smallest, one per
/// set bit of `size`. Appending costs O(1) amortised hashes; nothing is ever rescanned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    size: u64,
    edge: Vec<Hash>,
}

impl Tree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes a tree from a right edge saved with [`Tree::size`] and [`Tree::right_edge`].
    pub fn from_right_edge(size: u64, edge: Vec<Hash>) -> Result<Self, Error> {
        if edge.len() != size.count_ones() as usize {
            return Err(Error::InvalidRange(format!(
                "a tree of size {size} has a right edge of {} hashes, not {}",
                size.count_ones(),
                edge.len()
            )));
        }
        Ok(Self { size, edge })
    }

    /// Resumes a tree of `size` leaves from its stored nodes (O(log n) reads), e.g. after a
    /// restart: the right edge of `size` is made of complete subtrees, all of them stored.
    pub fn from_store<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Self, Error> {
        let edge = perfect_subtrees(0, size)
            .map(|(level, index)| need(store, level, index))
            .collect::<Result<_, _>>()?;
        Ok(Self { size, edge })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right edge: what [`Tree::from_right_edge`] needs to resume at this size.
    pub fn right_edge(&self) -> &[Hash] {
        &self.edge
    }

    /// Appends the leaf whose bytes are `leaf` (it becomes leaf `size()`), and returns the
    /// nodes this completes, to be stored: the leaf hash itself (level 0) and every parent
    /// that now covers a full subtree (1 + the number of trailing one bits of the old size).
    pub fn append(&mut self, leaf: &[u8]) -> Vec<Node> {
        let mut hash = leaf_hash(leaf);
        let mut level = 0u8;
        let mut index = self.size;
        let mut completed = vec![Node { level, index, hash }];
        while index & 1 == 1 {
            let left = self
                .edge
                .pop()
                .expect("a right edge holds one hash per set bit of the size");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed.push(Node { level, index, hash });
        }
        self.edge.push(hash);
        self.size += 1;
        completed
    }

    /// The root hash at the current size (RFC 9162 MTH), from the right edge alone.
    pub fn root(&self) -> Hash {
        fold_edge(self.edge.iter().copied())
    }
}

/// The root hash of the tree's first `size` leaves (RFC 9162 MTH(D[0:size])), folded from
/// O(log size) stored nodes; `size` may be any size up to the store's tree.
pub fn root_at<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Hash, Error> {
    range_hash(store, 0, size)
}

/// MTH(D[lo:hi]) for a range that starts on a multiple of a power of two at least its
/// length (every range RFC 9162's recursion visits, and the whole tree `0..n`).
pub(crate) fn range_hash<S: NodeStore + ?Sized>(
    store: &S,
    lo: u64,
    hi: u64,
) -> Result<Hash, Error> {
    let hashes = perfect_subtrees(lo, hi)
        .map(|(level, index)| need(store, level, index))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fold_edge(hashes))
}

/// The complete subtrees that partition `lo..hi`, largest (leftmost) first, as
/// `(level, index)`: one per set bit of the length.
fn perfect_subtrees(lo: u64, hi: u64) -> impl Iterator<Item = (u8, u64)> {
    let len = hi - lo;
    debug_assert!(
        lo == 0 || lo.trailing_zeros() >= 64 - (len.max(1) - 1).leading_zeros(),
        "range {lo}..{hi} is not aligned"
    );
    let mut start = lo;
    (0..64u8).rev().filter_map(move |level| {
        let width = 1u64 << level;
        (len & width != 0).then(|| {
            let node = (level, start >> level);
            start += width;
            node
        })
    })
}

/// Folds a right edge (largest subtree first) into a root: the smallest two subtrees
/// join first, as RFC 9162's split at the largest power of two below n prescribes.
fn fold_edge(edge: impl IntoIterator<Item = Hash, IntoIter: DoubleEndedIterator>) -> Hash {
    let mut rev = edge.into_iter().rev();
    match rev.next() {
        None => empty_root(),
        Some(last) => rev.fold(last, |right, left| node_hash(&left, &right)),
    }
}

fn need<S: NodeStore + ?Sized>(store: &S, level: u8, index: u64) -> Result<Hash, Error> {
    store
        .get(level, index)?
        .ok_or(Error::MissingNode { level, index })
}
