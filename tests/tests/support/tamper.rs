//! Tampering with a stopped server's sled ledger, as an insider with file access could:
//! the key of a stored event, flipping one byte of it (with or without recomputing the
//! hash stored in front of it), swapping two events, and copying a data directory.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The sled key of the event at `position` in the ledger's log tree.
pub fn key_log(position: u64) -> [u8; 9] {
    let mut k = [b'L'; 9];
    k[1..].copy_from_slice(&position.to_be_bytes());
    k
}

/// Where `needle` first stands in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("marker in the stored bytes")
}

/// Opens the stopped server's sled ledger and changes it with `f`.
pub fn tamper<T>(data: &Path, f: impl FnOnce(&sled::Db) -> T) -> T {
    let db = sled::open(data.join("ledger")).expect("open the ledger's sled files");
    let out = f(&db);
    db.flush().unwrap();
    out
}

/// `stored` (a stored event: its 32-byte hash, then its bytes) with the third byte of
/// `marker` in the event's bytes flipped (`R-MARK` becomes `R,MARK`); with `rehash` the
/// hash in front is recomputed over the changed bytes, as a careful forger would.
pub fn flip_marker(stored: &[u8], marker: &str, rehash: bool) -> Vec<u8> {
    let mut new = stored.to_vec();
    let at = 32 + find(&new[32..], marker.as_bytes()) + 2;
    new[at] ^= 0x01;
    if rehash {
        let hash: [u8; 32] = Sha256::digest(&new[32..]).into();
        new[..32].copy_from_slice(&hash);
    }
    new
}

/// The stored event at `position`.
pub fn stored_at(db: &sled::Db, position: u64) -> Vec<u8> {
    db.get(key_log(position))
        .unwrap()
        .unwrap_or_else(|| panic!("no event stored at {position}"))
        .to_vec()
}

/// Flips one byte of `marker` in the event at `position` (see [`flip_marker`]); answers
/// the event as it was stored before.
pub fn flip_stored(db: &sled::Db, position: u64, marker: &str, rehash: bool) -> Vec<u8> {
    let old = stored_at(db, position);
    db.insert(key_log(position), flip_marker(&old, marker, rehash))
        .unwrap();
    old
}

/// Swaps the stored events at positions `a` and `b` (a second swap puts them back).
pub fn swap(db: &sled::Db, a: u64, b: u64) {
    let (va, vb) = (stored_at(db, a), stored_at(db, b));
    db.insert(key_log(a), vb).unwrap();
    db.insert(key_log(b), va).unwrap();
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
