//! A reference Merkle tree written straight from RFC 9162 section 2.1's recursive
//! definitions (MTH, PATH, PROOF/SUBPROOF), hashing with `sha2` directly. Slow on purpose
//! apart from a memo of MTH over ranges; shares no code with the crate.

use std::cell::RefCell;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub struct Reference {
    leaves: Vec<Vec<u8>>,
    memo: RefCell<HashMap<(usize, usize), Hash>>,
}

/// The largest power of two smaller than n (n > 1).
fn k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

impl Reference {
    pub fn new(leaves: Vec<Vec<u8>>) -> Self {
        Self {
            leaves,
            memo: RefCell::default(),
        }
    }

    /// MTH(D[lo:hi]).
    pub fn mth(&self, lo: usize, hi: usize) -> Hash {
        if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
            return *h;
        }
        let n = hi - lo;
        let h = match n {
            0 => sha256(&[]),
            1 => sha256(&[&[0x00], &self.leaves[lo]]),
            _ => {
                let k = k(n);
                sha256(&[&[0x01], &self.mth(lo, lo + k), &self.mth(lo + k, hi)])
            }
        };
        self.memo.borrow_mut().insert((lo, hi), h);
        h
    }

    pub fn leaf_hash(&self, i: usize) -> Hash {
        self.mth(i, i + 1)
    }

    /// PATH(m, D[0:n]).
    pub fn path(&self, m: usize, n: usize) -> Vec<Hash> {
        self.path_in(m, 0, n)
    }

    fn path_in(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n == 1 {
            return Vec::new();
        }
        let k = k(n);
        if m < k {
            let mut p = self.path_in(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path_in(m - k, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true), for 0 < m < n.
    pub fn proof(&self, m: usize, n: usize) -> Vec<Hash> {
        self.subproof(m, 0, n, true)
    }

    fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![self.mth(lo, hi)]
            };
        }
        let k = k(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }
}
