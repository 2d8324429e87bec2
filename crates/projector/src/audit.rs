//! The audit tree: the RFC 9162 Merkle tree over the whole log (leaf `i` = the stored
//! bytes of position `i + 1`), followed like the read models and kept in sled beside them,
//! with every signed checkpoint.
//!
//! A [`TreeFollower`] subscribes to the log from its tree size + 1 and appends each
//! event's stored bytes with [`Tree::append`]. Of the complete-subtree nodes that returns
//! it keeps only those at levels 0, 4, 8... ([`TILE_HEIGHT`]), grouped 16 to a value as
//! tiles (C2SP tlog-tiles style, height 4): tile `(band, t)` holds the level `4 * band`
//! nodes `16t..16t + 15`, the last tile of a band growing in place until it is full. A
//! node of any other level is folded on read from at most 8 stored ones of the same tile,
//! so a node read is still one sled read and proofs still read O(log n) values. One chunk
//! of events (up to [`CHUNK`]) is ONE sled batch: its full tiles, the partial tail tile of
//! each band it touched, and the new size. That is about 1/15 of a write per event where
//! a key per node cost two (the follower's time went to sled, not to hashing), and after a
//! crash the tree resumes at a size whose tiles are all there ([`Tree::from_store`], O(log
//! n) reads) and nothing is ever rescanned. It has its own sled trees (`tlog-tiles`,
//! `tlog-checkpoints`, and `tlog-nodes` for the ledger id), so a projection rebuild
//! (which clears the read models) leaves it alone. [`AuditTree`] is the read side: roots,
//! proofs and kept checkpoints for any size the follower has reached.
//!
//! A store written by the earlier layout (one `tlog-nodes` key per node) is converted to
//! tiles once, on open, from its own nodes (the log is not read).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use throughcare_events::RecordedEvent;
use throughcare_ledger::{EventLog, StoredEntry};
use throughcare_tlog::{node_hash, Hash, NodeStore, Tree};
use tokio::sync::watch;

use crate::store::{Error, CHUNK};

/// Levels between stored levels, plus one: nodes are kept at levels that are multiples of
/// this. 4 keeps a node read to at most 7 extra hashes and a tile to 512 bytes, so the
/// tail tiles rewritten per chunk stay small while the follower keeps up live.
pub const TILE_HEIGHT: u8 = 4;
/// Nodes per tile.
const TILE_WIDTH: usize = 1 << TILE_HEIGHT;
const TILE_BYTES: usize = TILE_WIDTH * 32;

/// Key of the tree size in the tile tree (tile keys are 9 bytes, so it cannot clash).
const SIZE: &[u8] = b"size";
/// Key of the ledger id (the default checkpoint origin's tail) in the `tlog-nodes` tree
/// (the earlier layout's tree; the id is kept where it always was).
const LEDGER_ID: &[u8] = b"ledger-id";
/// Old-layout node keys converted or removed per batch.
const MIGRATE_BATCH: usize = 16_384;

/// `[band][tile index BE]`.
fn tile_key(band: u8, tile: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = band;
    k[1..].copy_from_slice(&tile.to_be_bytes());
    k
}

/// The earlier layout's key of one node: `[level][index BE]`.
fn node_key(level: u8, index: u64) -> [u8; 9] {
    tile_key(level, index)
}

fn u64_from(b: &[u8]) -> Result<u64, throughcare_tlog::Error> {
    b.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| throughcare_tlog::Error::Unavailable("a stored size is not 8 bytes".into()))
}

fn unavailable(e: sled::Error) -> throughcare_tlog::Error {
    throughcare_tlog::Error::Unavailable(e.to_string())
}

fn hashes_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

/// The stored tiles, as a [`NodeStore`] of every complete-subtree node.
struct SledTiles<'a>(&'a sled::Tree);

impl NodeStore for SledTiles<'_> {
    fn get(&self, level: u8, index: u64) -> Result<Option<Hash>, throughcare_tlog::Error> {
        let band = level / TILE_HEIGHT;
        let rise = level % TILE_HEIGHT;
        // The node covers these level `band * TILE_HEIGHT` nodes, all in one tile (a
        // tile's width is a multiple of their count, and they are aligned to it).
        let count = 1usize << rise;
        let Some(first) = index.checked_mul(count as u64) else {
            return Ok(None);
        };
        let tile = first / TILE_WIDTH as u64;
        let offset = (first % TILE_WIDTH as u64) as usize;
        let Some(v) = self.0.get(tile_key(band, tile)).map_err(unavailable)? else {
            return Ok(None);
        };
        if v.len() % 32 != 0 || v.len() > TILE_BYTES {
            return Err(throughcare_tlog::Error::Unavailable(format!(
                "stored tile {tile} of level {} is {} bytes, not a multiple of 32 up to {TILE_BYTES}",
                u32::from(band) * u32::from(TILE_HEIGHT),
                v.len()
            )));
        }
        if v.len() < (offset + count) * 32 {
            return Ok(None);
        }
        // At most 8 nodes (rise <= 3), folded pairwise in place up to the asked level.
        let mut buf = [[0u8; 32]; TILE_WIDTH / 2];
        for (slot, h) in buf
            .iter_mut()
            .zip(v[offset * 32..(offset + count) * 32].chunks_exact(32))
        {
            slot.copy_from_slice(h);
        }
        let mut width = count;
        while width > 1 {
            for j in 0..width / 2 {
                buf[j] = node_hash(&buf[2 * j], &buf[2 * j + 1]);
            }
            width /= 2;
        }
        Ok(Some(buf[0]))
    }
}

/// The earlier layout's nodes, one key each (read only to convert them).
struct SledNodes<'a>(&'a sled::Tree);

impl NodeStore for SledNodes<'_> {
    fn get(&self, level: u8, index: u64) -> Result<Option<Hash>, throughcare_tlog::Error> {
        match self.0.get(node_key(level, index)).map_err(unavailable)? {
            None => Ok(None),
            Some(v) => Hash::try_from(&v[..]).map(Some).map_err(|_| {
                throughcare_tlog::Error::Unavailable(format!(
                    "stored node at level {level}, index {index} is not 32 bytes"
                ))
            }),
        }
    }
}

/// Converts a tree kept in the earlier layout (a `tlog-nodes` key per node and its size)
/// into tiles, then removes the old nodes. The tiles and their size land in one batch, so
/// a crash before it leaves the old layout whole (converted again on the next open), and
/// a crash after it leaves only old keys to remove, which the next open finishes.
fn migrate(meta: &sled::Tree, tiles: &sled::Tree) -> Result<(), Error> {
    let Some(v) = meta.get(SIZE)? else {
        return Ok(());
    };
    let corrupt = |e: throughcare_tlog::Error| Error::Corrupt(e.to_string());
    if tiles.get(SIZE)?.is_none() {
        let size = u64_from(&v).map_err(corrupt)?;
        let old = SledNodes(meta);
        let mut batch = sled::Batch::default();
        let mut band = 0u8;
        while u32::from(band) * u32::from(TILE_HEIGHT) < 64 {
            let level = band * TILE_HEIGHT;
            let count = size >> level;
            if count == 0 {
                break;
            }
            let mut tile = Vec::with_capacity(TILE_BYTES);
            for index in 0..count {
                let h = old.get(level, index).map_err(corrupt)?.ok_or_else(|| {
                    Error::Corrupt(format!(
                        "the audit tree of size {size} lacks its node at level {level}, index {index}"
                    ))
                })?;
                tile.extend_from_slice(&h);
                if tile.len() == TILE_BYTES || index + 1 == count {
                    batch.insert(
                        &tile_key(band, index / TILE_WIDTH as u64)[..],
                        std::mem::take(&mut tile),
                    );
                }
            }
            band += 1;
        }
        batch.insert(SIZE, &size.to_be_bytes());
        tiles.apply_batch(batch)?;
        tiles.flush()?;
    }
    // Every old node key is 9 bytes (as is `ledger-id`, which stays: no node has level
    // b'l', the tree would need 2^108 leaves).
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in meta.iter().keys() {
            let k = k?;
            if k.len() == 9 && &k[..] != LEDGER_ID {
                batch.remove(k);
                n += 1;
                if n == MIGRATE_BATCH {
                    break;
                }
            }
        }
        if n == 0 {
            break;
        }
        meta.apply_batch(batch)?;
    }
    meta.remove(SIZE)?;
    meta.flush()?;
    Ok(())
}

/// The last, incomplete tile of each band at `size`: what the follower extends.
fn read_tails(tiles: &sled::Tree, size: u64) -> Result<Vec<Vec<Hash>>, Error> {
    let mut tails = Vec::new();
    let mut band = 0u8;
    while u32::from(band) * u32::from(TILE_HEIGHT) < 64 {
        let count = size >> (band * TILE_HEIGHT);
        if count == 0 {
            break;
        }
        let partial = (count % TILE_WIDTH as u64) as usize;
        let mut tail = Vec::with_capacity(TILE_WIDTH);
        if partial > 0 {
            let tile = count / TILE_WIDTH as u64;
            let v = tiles.get(tile_key(band, tile))?.unwrap_or_default();
            if v.len() < partial * 32 || v.len() % 32 != 0 {
                return Err(Error::Corrupt(format!(
                    "audit tree of size {size}: tile {tile} of level {} holds {} bytes, not at least {}",
                    band * TILE_HEIGHT,
                    v.len(),
                    partial * 32
                )));
            }
            tail.extend(
                v[..partial * 32]
                    .chunks_exact(32)
                    .map(|h| Hash::try_from(h).expect("32 bytes")),
            );
        }
        tails.push(tail);
        band += 1;
    }
    Ok(tails)
}

/// Read access to the audit tree and the kept checkpoints, cheap to clone.
#[derive(Clone)]
pub struct AuditTree {
    db: sled::Db,
    tiles: sled::Tree,
    meta: sled::Tree,
    checkpoints: sled::Tree,
    size: watch::Receiver<u64>,
}

impl AuditTree {
    /// Opens the audit tree of the read-model store `db` and a follower to grow it.
    pub fn open(db: &sled::Db) -> Result<(AuditTree, TreeFollower), Error> {
        let meta = db.open_tree("tlog-nodes")?;
        let tiles = db.open_tree("tlog-tiles")?;
        let checkpoints = db.open_tree("tlog-checkpoints")?;
        migrate(&meta, &tiles)?;
        let size = match tiles.get(SIZE)? {
            Some(v) => u64_from(&v).map_err(|e| Error::Corrupt(e.to_string()))?,
            None => 0,
        };
        let tree = Tree::from_store(&SledTiles(&tiles), size)
            .map_err(|e| Error::Corrupt(format!("audit tree of size {size}: {e}")))?;
        let tails = read_tails(&tiles, size)?;
        let (tx, rx) = watch::channel(size);
        let audit = AuditTree {
            db: db.clone(),
            tiles: tiles.clone(),
            meta,
            checkpoints,
            size: rx,
        };
        let follower = TreeFollower {
            tiles,
            tree,
            tails,
            size: tx,
        };
        Ok((audit, follower))
    }

    /// Opens a standalone store in `dir` (tests and tools; `serve` shares the read models').
    pub fn open_dir(dir: &Path) -> Result<(AuditTree, TreeFollower), Error> {
        Self::open(&sled::open(dir)?)
    }

    /// The number of leaves the follower has reached (positions `1..=size`).
    pub fn size(&self) -> u64 {
        *self.size.borrow()
    }

    /// A receiver that changes whenever the tree grows.
    pub fn watch_size(&self) -> watch::Receiver<u64> {
        self.size.clone()
    }

    /// Waits until the tree holds `size` leaves; false after `timeout`.
    pub async fn wait_for(&self, size: u64, timeout: Duration) -> bool {
        let mut rx = self.size.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|s| *s >= size))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }

    fn reached(&self, size: u64) -> Result<(), throughcare_tlog::Error> {
        let have = self.size();
        if size > have {
            return Err(throughcare_tlog::Error::InvalidRange(format!(
                "tree size {size} is beyond the audit tree's {have}"
            )));
        }
        Ok(())
    }

    /// The root hash of the first `size` leaves (`size` up to [`AuditTree::size`]).
    pub fn root_at(&self, size: u64) -> Result<Hash, throughcare_tlog::Error> {
        self.reached(size)?;
        throughcare_tlog::root_at(&SledTiles(&self.tiles), size)
    }

    /// The inclusion proof of leaf `leaf_index` in the tree of `size` leaves.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, throughcare_tlog::Error> {
        self.reached(size)?;
        throughcare_tlog::inclusion_proof(&SledTiles(&self.tiles), leaf_index, size)
    }

    /// The consistency proof from the tree of `first` leaves to the tree of `second`.
    pub fn consistency_proof(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>, throughcare_tlog::Error> {
        self.reached(second)?;
        throughcare_tlog::consistency_proof(&SledTiles(&self.tiles), first, second)
    }

    /// Keeps a signed checkpoint of `size` leaves and flushes it (with the tree nodes it
    /// signs, written before it) to disk.
    pub async fn keep_checkpoint(&self, size: u64, note: &str) -> Result<(), Error> {
        self.checkpoints
            .insert(size.to_be_bytes(), note.as_bytes())?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The kept checkpoint of `size` leaves.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, Error> {
        self.checkpoints
            .get(size.to_be_bytes())?
            .map(|v| {
                String::from_utf8(v.to_vec())
                    .map_err(|_| Error::Corrupt(format!("checkpoint {size} is not UTF-8")))
            })
            .transpose()
    }

    /// The latest kept checkpoint: `(size, signed note)`.
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, Error> {
        let Some((k, v)) = self.checkpoints.last()? else {
            return Ok(None);
        };
        let size = u64_from(&k).map_err(|e| Error::Corrupt(e.to_string()))?;
        let note = String::from_utf8(v.to_vec())
            .map_err(|_| Error::Corrupt(format!("checkpoint {size} is not UTF-8")))?;
        Ok(Some((size, note)))
    }

    /// The ledger id kept with the tree, made with `new` (and kept) on first use.
    pub fn ledger_id_or(&self, new: impl FnOnce() -> String) -> Result<String, Error> {
        if let Some(v) = self.meta.get(LEDGER_ID)? {
            return String::from_utf8(v.to_vec())
                .map_err(|_| Error::Corrupt("the ledger id is not UTF-8".into()));
        }
        let id = new();
        // Two first starts racing is impossible (one process owns the directory), but
        // keep whichever id landed first all the same.
        match self
            .meta
            .compare_and_swap(LEDGER_ID, None as Option<&[u8]>, Some(id.as_bytes()))?
        {
            Ok(()) => {
                self.meta.flush()?;
                Ok(id)
            }
            Err(current) => Ok(current
                .current
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or(id)),
        }
    }
}

/// Grows the audit tree from the log; owned by one task.
pub struct TreeFollower {
    tiles: sled::Tree,
    tree: Tree,
    /// Per band, the nodes of its last, incomplete tile (fewer than [`TILE_WIDTH`]).
    tails: Vec<Vec<Hash>>,
    size: watch::Sender<u64>,
}

impl TreeFollower {
    /// The tree size reached.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Follows the log from the tree size + 1 forever (until the log's stream ends).
    /// Only the stored bytes are read (`subscribe_stored`): the tree hashes them and needs
    /// no decoded event.
    pub async fn run(mut self, log: Arc<dyn EventLog>) -> Result<(), Error> {
        let mut entries = log
            .subscribe_stored(self.tree.size() + 1)
            .ready_chunks(CHUNK);
        while let Some(chunk) = entries.next().await {
            let chunk: Vec<StoredEntry> = chunk.into_iter().collect::<Result<_, _>>()?;
            if let Some(e) = chunk.iter().find(|e| e.stored.is_empty()) {
                return Err(Error::Corrupt(format!(
                    "event at position {} came without its stored bytes",
                    e.position
                )));
            }
            self.apply_leaves(chunk.iter().map(|e| (e.position, e.stored.as_bytes())))?;
        }
        Ok(())
    }

    /// Appends a chunk's stored bytes and writes the tiles it filled, the tail tile of
    /// every band it touched and the new size in one batch. Events at or below the tree
    /// size were appended before and are skipped.
    pub fn apply(&mut self, chunk: &[RecordedEvent]) -> Result<(), Error> {
        if let Some(e) = chunk
            .iter()
            .find(|e| e.position > self.tree.size() && e.stored.is_empty())
        {
            return Err(Error::Corrupt(format!(
                "event at position {} came without its stored bytes",
                e.position
            )));
        }
        self.apply_leaves(chunk.iter().map(|e| (e.position, e.stored.as_bytes())))
    }

    /// [`TreeFollower::apply`] over `(position, stored bytes)`.
    fn apply_leaves<'a>(
        &mut self,
        leaves: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Result<(), Error> {
        let mut tree = self.tree.clone();
        let mut tails = self.tails.clone();
        // Bands whose tail tile changed and is not yet written (bit per band).
        let mut dirty = 0u32;
        let mut batch = sled::Batch::default();
        for (position, bytes) in leaves {
            if position <= tree.size() {
                continue;
            }
            if position != tree.size() + 1 {
                return Err(Error::Corrupt(format!(
                    "gap in the log: the audit tree expected position {} but got {}",
                    tree.size() + 1,
                    position
                )));
            }
            for n in tree.append(bytes) {
                if n.level % TILE_HEIGHT != 0 {
                    continue;
                }
                let band = n.level / TILE_HEIGHT;
                if tails.len() <= usize::from(band) {
                    tails.resize_with(usize::from(band) + 1, Vec::new);
                }
                let tail = &mut tails[usize::from(band)];
                if (n.index % TILE_WIDTH as u64) as usize != tail.len() {
                    return Err(Error::Corrupt(format!(
                        "audit tree: node {} of level {} does not follow its tile's {} nodes",
                        n.index,
                        n.level,
                        tail.len()
                    )));
                }
                tail.push(n.hash);
                if tail.len() == TILE_WIDTH {
                    batch.insert(
                        &tile_key(band, n.index / TILE_WIDTH as u64)[..],
                        hashes_bytes(tail),
                    );
                    tail.clear();
                    dirty &= !(1 << band);
                } else {
                    dirty |= 1 << band;
                }
            }
        }
        if tree.size() == self.tree.size() {
            return Ok(());
        }
        for (band, tail) in tails.iter().enumerate() {
            if dirty & (1 << band) != 0 {
                let count = tree.size() >> (band as u32 * u32::from(TILE_HEIGHT));
                batch.insert(
                    &tile_key(band as u8, count / TILE_WIDTH as u64)[..],
                    hashes_bytes(tail),
                );
            }
        }
        batch.insert(SIZE, &tree.size().to_be_bytes());
        self.tiles.apply_batch(batch)?;
        self.tree = tree;
        self.tails = tails;
        self.size.send_replace(self.tree.size());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughcare_tlog::{
        consistency_proof, inclusion_proof, leaf_hash, root_at, verify_inclusion, MemoryStore,
    };

    /// Opens the store in `dir`, waiting a little for a just-dropped handle's flusher
    /// thread to let go of the directory's lock.
    fn open(dir: &Path) -> (AuditTree, TreeFollower) {
        let mut tries = 0;
        loop {
            match AuditTree::open_dir(dir) {
                Ok(opened) => return opened,
                Err(e) if tries < 50 && e.to_string().contains("lock") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("open {}: {e}", dir.display()),
            }
        }
    }

    fn leaf(i: u64) -> Vec<u8> {
        format!("{{\"leaf\":{i}}}").into_bytes()
    }

    /// A reference tree of `n` leaves with every node kept in memory.
    fn reference(n: u64) -> (Tree, MemoryStore) {
        let mut tree = Tree::new();
        let mut store = MemoryStore::new();
        for i in 0..n {
            store.insert(&tree.append(&leaf(i)));
        }
        (tree, store)
    }

    fn grow(follower: &mut TreeFollower, to: u64) {
        let from = follower.size();
        let leaves: Vec<(u64, Vec<u8>)> = (from..to).map(|i| (i + 1, leaf(i))).collect();
        follower
            .apply_leaves(leaves.iter().map(|(p, b)| (*p, b.as_slice())))
            .unwrap();
    }

    /// Every complete-subtree node the reference keeps at `size`, read from the tiles.
    fn assert_nodes(tree: &AuditTree, reference: &MemoryStore, size: u64) {
        let tiles = SledTiles(&tree.tiles);
        for level in 0..=(64 - size.leading_zeros()) as u8 {
            for index in 0..(size >> level) {
                assert_eq!(
                    tiles.get(level, index).unwrap(),
                    reference.get(level, index).unwrap(),
                    "size {size}, level {level}, index {index}"
                );
            }
            assert_eq!(
                tiles.get(level, size >> level).unwrap(),
                None,
                "size {size}: level {level} has no node {} yet",
                size >> level
            );
        }
    }

    #[test]
    fn tiles_serve_every_node_for_every_size_and_chunking_and_resume() {
        let (_, full) = reference(300);
        let dir = tempfile::tempdir().unwrap();
        // Chunks of 1..=37 leaves (a different mix of full and partial tiles each time),
        // and a reopen every fifth chunk: the tails come back from the store.
        let (mut tree, mut follower) = open(dir.path());
        let mut step = 0u64;
        while follower.size() < 300 {
            step += 1;
            let to = (follower.size() + (step * 7) % 37 + 1).min(300);
            grow(&mut follower, to);
            assert_eq!(tree.size(), to);
            assert_nodes(&tree, &full, to);
            let (fresh, _) = reference(to);
            assert_eq!(tree.root_at(to).unwrap(), fresh.root(), "root at {to}");
            if step.is_multiple_of(5) {
                drop((tree, follower));
                (tree, follower) = open(dir.path());
                assert_eq!(follower.size(), to);
            }
        }
        // Proofs at every earlier size are the reference's, and verify.
        for size in 1..=300 {
            let root = root_at(&full, size).unwrap();
            assert_eq!(tree.root_at(size).unwrap(), root);
            for i in (0..size).step_by(7) {
                let proof = tree.inclusion_proof(i, size).unwrap();
                assert_eq!(proof, inclusion_proof(&full, i, size).unwrap());
                verify_inclusion(&leaf_hash(&leaf(i)), i, size, &proof, &root).unwrap();
            }
            for first in (0..=size).step_by(11) {
                assert_eq!(
                    tree.consistency_proof(first, size).unwrap(),
                    consistency_proof(&full, first, size).unwrap()
                );
            }
        }
    }

    #[test]
    fn one_leaf_at_a_time_writes_what_a_restart_needs() {
        let dir = tempfile::tempdir().unwrap();
        let (_, full) = reference(70);
        for to in 1..=70 {
            let (tree, mut follower) = open(dir.path());
            grow(&mut follower, to);
            assert_nodes(&tree, &full, to);
        }
        let (tree, _) = open(dir.path());
        assert_eq!(tree.root_at(70).unwrap(), root_at(&full, 70).unwrap());
    }

    #[test]
    fn a_gap_is_refused_and_written_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, mut follower) = open(dir.path());
        grow(&mut follower, 5);
        let (a, b) = (leaf(5), leaf(7));
        let err = follower
            .apply_leaves([(6, a.as_slice()), (8, b.as_slice())])
            .unwrap_err();
        assert!(err.to_string().contains("gap"), "{err}");
        assert_eq!(tree.size(), 5);
        grow(&mut follower, 9);
        assert_eq!(tree.root_at(9).unwrap(), reference(9).0.root());
    }

    #[test]
    fn a_store_of_the_earlier_layout_is_converted_to_tiles() {
        let dir = tempfile::tempdir().unwrap();
        let size = 1_000u64;
        let (full_tree, full) = reference(size);
        {
            // The earlier layout: a key per node in `tlog-nodes`, and the size there.
            let db = sled::open(dir.path()).unwrap();
            let nodes = db.open_tree("tlog-nodes").unwrap();
            let mut tree = Tree::new();
            for i in 0..size {
                for n in tree.append(&leaf(i)) {
                    nodes
                        .insert(node_key(n.level, n.index), &n.hash[..])
                        .unwrap();
                }
            }
            nodes.insert(SIZE, &size.to_be_bytes()).unwrap();
            nodes.insert(LEDGER_ID, "01KEPT".as_bytes()).unwrap();
            db.flush().unwrap();
        }
        let (tree, mut follower) = open(dir.path());
        assert_eq!(tree.size(), size);
        assert_eq!(tree.root_at(size).unwrap(), full_tree.root());
        assert_nodes(&tree, &full, size);
        // The old nodes are gone, the ledger id is kept.
        assert_eq!(tree.meta.len(), 1);
        assert_eq!(tree.ledger_id_or(|| "NEW".into()).unwrap(), "01KEPT");
        grow(&mut follower, size + 100);
        drop((tree, follower));
        let (tree, _) = open(dir.path());
        assert_eq!(
            tree.root_at(size + 100).unwrap(),
            reference(size + 100).0.root()
        );
    }
}
