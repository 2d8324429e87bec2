//! RFC 9162 inclusion and consistency proofs (2.1.3, 2.1.4): generated from stored nodes,
//! verified with nothing but hashes.

use crate::hash::{empty_root, node_hash, Hash};
use crate::tree::{range_hash, NodeStore};
use crate::Error;

/// The inclusion proof of leaf `leaf_index` in the tree of `tree_size` leaves: RFC 9162
/// PATH(m, D[n]), deepest sibling first. Reads O(log n) stored nodes.
pub fn inclusion_proof<S: NodeStore + ?Sized>(
    store: &S,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, Error> {
    if leaf_index >= tree_size {
        return Err(Error::InvalidRange(format!(
            "leaf index {leaf_index} is not below tree size {tree_size}"
        )));
    }
    // Walk down from the root, noting each sibling range; the proof lists them bottom-up.
    let (mut lo, mut hi) = (0, tree_size);
    let mut siblings = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if leaf_index < lo + k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
        }
    }
    siblings
        .into_iter()
        .rev()
        .map(|(a, b)| range_hash(store, a, b))
        .collect()
}

/// The consistency proof from the tree of `first` leaves to the tree of `second`: RFC 9162
/// PROOF(m, D[n]). Empty when `first` is 0 or equal to `second`. Reads O(log n) nodes.
pub fn consistency_proof<S: NodeStore + ?Sized>(
    store: &S,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, Error> {
    if first > second {
        return Err(Error::InvalidRange(format!(
            "tree size {first} is larger than tree size {second}"
        )));
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: `m` is relative to `lo`.
    let (mut lo, mut hi, mut m, mut whole) = (0, second, first, true);
    let mut ranges = Vec::new();
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    if !whole {
        ranges.push((lo, hi));
    }
    ranges
        .into_iter()
        .rev()
        .map(|(a, b)| range_hash(store, a, b))
        .collect()
}

/// Checks that `proof` proves the leaf with hash `leaf_hash` is leaf `leaf_index` of the
/// tree of `tree_size` leaves whose root is `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    leaf_index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), Error> {
    if leaf_index >= tree_size {
        return Err(Error::InvalidRange(format!(
            "leaf index {leaf_index} is not below tree size {tree_size}"
        )));
    }
    let (mut f, mut s) = (leaf_index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if s == 0 {
            return Err(Error::BadProof("inclusion proof is too long"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(Error::BadProof("inclusion proof is too short"));
    }
    if r != *root {
        return Err(Error::BadProof("inclusion proof does not lead to the root"));
    }
    Ok(())
}

/// Checks that `proof` proves the tree of `first` leaves with root `first_root` is a
/// prefix of the tree of `second` leaves with root `second_root` (RFC 9162 2.1.4.2; the
/// sizes 0 and `first == second` take the empty proof).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), Error> {
    if first > second {
        return Err(Error::InvalidRange(format!(
            "tree size {first} is larger than tree size {second}"
        )));
    }
    if first == 0 || first == second {
        if !proof.is_empty() {
            return Err(Error::BadProof("consistency proof should be empty"));
        }
        if first == 0 && *first_root != empty_root() {
            return Err(Error::BadProof("the empty tree has another root"));
        }
        if first == second && first_root != second_root {
            return Err(Error::BadProof(
                "trees of the same size have different roots",
            ));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(Error::BadProof("consistency proof is empty"));
    }
    // A first tree that is a complete subtree is its own first node: the proof omits it.
    let (start, rest) = if first.is_power_of_two() {
        (first_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if s == 0 {
            return Err(Error::BadProof("consistency proof is too long"));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(Error::BadProof("consistency proof is too short"));
    }
    if fr != *first_root {
        return Err(Error::BadProof(
            "consistency proof does not lead to the first root",
        ));
    }
    if sr != *second_root {
        return Err(Error::BadProof(
            "consistency proof does not lead to the second root",
        ));
    }
    Ok(())
}

/// The largest power of two strictly below `n` (n >= 2): RFC 9162's split point k.
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}
