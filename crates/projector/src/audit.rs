//! The audit tree: the RFC 9162 Merkle tree over the whole log (leaf `i` = the stored
//! bytes of position `i + 1`), followed like the read models and kept in sled beside them,
//! with every signed checkpoint.
//!
//! A [`TreeFollower`] subscribes to the log from its tree size + 1 and appends each
//! event's stored bytes with [`Tree::append`]; the complete-subtree nodes that returns
//! (keyed `[level][index BE]`) and the new size are written in ONE sled batch, so after a
//! crash the tree resumes at a size whose nodes are all there ([`Tree::from_store`], O(log
//! n) reads) and nothing is ever rescanned. It has its own sled trees (`tlog-nodes`,
//! `tlog-checkpoints`), so a projection rebuild (which clears the read models) leaves it
//! alone. [`AuditTree`] is the read side: roots, proofs and kept checkpoints for any size
//! the follower has reached.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use throughcare_events::RecordedEvent;
use throughcare_ledger::EventLog;
use throughcare_tlog::{Hash, NodeStore, Tree};
use tokio::sync::watch;

use crate::store::{Error, CHUNK};

/// Key of the tree size in the node tree (node keys are 9 bytes, so it cannot clash).
const SIZE: &[u8] = b"size";
/// Key of the ledger id (the default checkpoint origin's tail) in the node tree.
const LEDGER_ID: &[u8] = b"ledger-id";

fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn u64_from(b: &[u8]) -> Result<u64, throughcare_tlog::Error> {
    b.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| throughcare_tlog::Error::Unavailable("a stored size is not 8 bytes".into()))
}

fn unavailable(e: sled::Error) -> throughcare_tlog::Error {
    throughcare_tlog::Error::Unavailable(e.to_string())
}

/// The stored nodes, as a [`NodeStore`].
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

/// Read access to the audit tree and the kept checkpoints, cheap to clone.
#[derive(Clone)]
pub struct AuditTree {
    db: sled::Db,
    nodes: sled::Tree,
    checkpoints: sled::Tree,
    size: watch::Receiver<u64>,
}

impl AuditTree {
    /// Opens the audit tree of the read-model store `db` and a follower to grow it.
    pub fn open(db: &sled::Db) -> Result<(AuditTree, TreeFollower), Error> {
        let nodes = db.open_tree("tlog-nodes")?;
        let checkpoints = db.open_tree("tlog-checkpoints")?;
        let size = match nodes.get(SIZE)? {
            Some(v) => u64_from(&v).map_err(|e| Error::Corrupt(e.to_string()))?,
            None => 0,
        };
        let tree = Tree::from_store(&SledNodes(&nodes), size)
            .map_err(|e| Error::Corrupt(format!("audit tree of size {size}: {e}")))?;
        let (tx, rx) = watch::channel(size);
        let audit = AuditTree {
            db: db.clone(),
            nodes: nodes.clone(),
            checkpoints,
            size: rx,
        };
        let follower = TreeFollower {
            nodes,
            tree,
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
        throughcare_tlog::root_at(&SledNodes(&self.nodes), size)
    }

    /// The inclusion proof of leaf `leaf_index` in the tree of `size` leaves.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, throughcare_tlog::Error> {
        self.reached(size)?;
        throughcare_tlog::inclusion_proof(&SledNodes(&self.nodes), leaf_index, size)
    }

    /// The consistency proof from the tree of `first` leaves to the tree of `second`.
    pub fn consistency_proof(
        &self,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>, throughcare_tlog::Error> {
        self.reached(second)?;
        throughcare_tlog::consistency_proof(&SledNodes(&self.nodes), first, second)
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
        if let Some(v) = self.nodes.get(LEDGER_ID)? {
            return String::from_utf8(v.to_vec())
                .map_err(|_| Error::Corrupt("the ledger id is not UTF-8".into()));
        }
        let id = new();
        // Two first starts racing is impossible (one process owns the directory), but
        // keep whichever id landed first all the same.
        match self
            .nodes
            .compare_and_swap(LEDGER_ID, None as Option<&[u8]>, Some(id.as_bytes()))?
        {
            Ok(()) => {
                self.nodes.flush()?;
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
    nodes: sled::Tree,
    tree: Tree,
    size: watch::Sender<u64>,
}

impl TreeFollower {
    /// The tree size reached.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Follows the log from the tree size + 1 forever (until the log's stream ends).
    pub async fn run(mut self, log: Arc<dyn EventLog>) -> Result<(), Error> {
        let mut events = log.subscribe(self.tree.size() + 1).ready_chunks(CHUNK);
        while let Some(chunk) = events.next().await {
            let chunk: Vec<RecordedEvent> = chunk.into_iter().collect::<Result<_, _>>()?;
            self.apply(&chunk)?;
        }
        Ok(())
    }

    /// Appends a chunk's stored bytes and writes the new nodes and size in one batch.
    /// Events at or below the tree size were appended before and are skipped.
    pub fn apply(&mut self, chunk: &[RecordedEvent]) -> Result<(), Error> {
        let mut tree = self.tree.clone();
        let mut batch = sled::Batch::default();
        for e in chunk {
            if e.position <= tree.size() {
                continue;
            }
            if e.position != tree.size() + 1 {
                return Err(Error::Corrupt(format!(
                    "gap in the log: the audit tree expected position {} but got {}",
                    tree.size() + 1,
                    e.position
                )));
            }
            if e.stored.is_empty() {
                return Err(Error::Corrupt(format!(
                    "event at position {} came without its stored bytes",
                    e.position
                )));
            }
            for n in tree.append(e.stored.as_bytes()) {
                batch.insert(&node_key(n.level, n.index)[..], &n.hash[..]);
            }
        }
        if tree.size() == self.tree.size() {
            return Ok(());
        }
        batch.insert(SIZE, &tree.size().to_be_bytes());
        self.nodes.apply_batch(batch)?;
        self.tree = tree;
        self.size.send_replace(self.tree.size());
        Ok(())
    }
}
