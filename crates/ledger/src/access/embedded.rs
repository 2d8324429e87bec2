//! [`EmbeddedAccessLog`]: the access log in the sled tree `access` of the event log's
//! database, written by one writer thread with group commit (every append waiting while a
//! flush runs shares the next flush), like the event log's writer in `embedded.rs`.
//!
//! Keys of the tree (numbers big-endian, so keys sort by number):
//! - `S` seq             -> hash (32 bytes) ++ stored bytes
//! - `P` person seq      -> (empty)  person index for queries by person
//! - `H`                 -> seq (8) ++ hash (32) of the last entry, so a restart continues
//!   the chain, and so that a rewritten last entry is caught by `verify`
//!
//! A group's entries, index keys and head go in one `apply_batch` (atomic), then one
//! flush and one fdatasync of sled's data file, then every caller of the group is
//! answered. Readers never look past the durable head.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use throughcare_events::{Hash, PersonId};
use tokio::sync::{mpsc, oneshot, watch};

use super::{AccessChainReport, AccessEntry, AccessFilter, AccessLog, AccessRecord, ChainCheck};
use crate::Error;

/// Name of the sled tree holding the access log.
pub const TREE: &str = "access";
/// Most appends folded into one group commit.
const MAX_GROUP: usize = 1024;
const HEAD: &[u8] = b"H";

/// The sled-backed access log. Cloning shares the same log (and writer).
#[derive(Clone)]
pub struct EmbeddedAccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Tree,
    jobs: mpsc::Sender<Job>,
    /// The last durable seq; readers never look past it.
    durable: watch::Receiver<u64>,
}

struct Job {
    record: AccessRecord,
    reply: oneshot::Sender<Result<AccessEntry, Error>>,
}

fn key_entry(seq: u64) -> [u8; 9] {
    let mut k = [b'S'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}
fn key_person(person: PersonId, seq: u64) -> [u8; 25] {
    let mut k = [b'P'; 25];
    k[1..17].copy_from_slice(&person.to_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}
fn u64_from(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[..8].try_into().expect("8-byte number"))
}
fn hash_from(bytes: &[u8]) -> Hash {
    Hash(bytes[..32].try_into().expect("32-byte hash"))
}

fn read_head(tree: &sled::Tree) -> Result<(u64, Hash), Error> {
    match tree.get(HEAD)? {
        None => Ok((0, Hash::ZERO)),
        Some(v) if v.len() == 40 => Ok((u64_from(&v), hash_from(&v[8..]))),
        Some(_) => Err(Error::Corrupt("the access log's head is malformed".into())),
    }
}

/// Splits a stored value into the hash recorded at append time and the stored bytes.
fn split(seq: u64, value: &[u8]) -> Result<(Hash, &[u8]), Error> {
    if value.len() < 32 {
        return Err(Error::Corrupt(format!(
            "access log entry {seq} is truncated"
        )));
    }
    Ok((hash_from(value), &value[32..]))
}

fn decode(seq: u64, value: &[u8]) -> Result<AccessEntry, Error> {
    let (recorded, stored) = split(seq, value)?;
    AccessEntry::decode_at(seq, stored, Some(recorded))
}

impl EmbeddedAccessLog {
    /// Opens the access tree of `db` (the database in `dir`) and starts its writer thread.
    /// Used by [`crate::EmbeddedLog::open`]: one writer per database.
    pub(crate) fn open(db: &sled::Db, dir: &Path) -> Result<Self, Error> {
        let tree = db.open_tree(TREE)?;
        let (last, prev) = read_head(&tree)?;
        let stored_last = tree
            .scan_prefix([b'S'])
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| u64_from(&k[1..]));
        if stored_last != last {
            return Err(Error::Corrupt(format!(
                "the access log's head says entry {last} is the last, but the last stored is {stored_last}"
            )));
        }
        // As for the event log: sled's flush does not reach the drive's cache, so each
        // group is also fdatasynced before anyone is told it is durable.
        let data_file = std::fs::File::open(dir.join("db")).map_err(|e| {
            Error::Unavailable(format!(
                "cannot open the ledger's data file for syncing the access log: {e}"
            ))
        })?;
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let (durable_tx, durable_rx) = watch::channel(last);
        let writer = Writer {
            db: db.clone(),
            tree: tree.clone(),
            data_file,
            next: last + 1,
            prev,
            durable: durable_tx,
        };
        std::thread::Builder::new()
            .name("access-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| {
                Error::Unavailable(format!("cannot start the access log writer thread: {e}"))
            })?;
        Ok(EmbeddedAccessLog {
            inner: Arc::new(Inner {
                tree,
                jobs: tx,
                durable: durable_rx,
            }),
        })
    }

    fn durable(&self) -> u64 {
        *self.inner.durable.borrow()
    }
}

fn stopped() -> Error {
    Error::Unavailable("the access log writer stopped".into())
}

fn query_tree(
    tree: &sled::Tree,
    durable: u64,
    f: &AccessFilter,
) -> Result<Vec<AccessEntry>, Error> {
    let mut out = Vec::new();
    if f.limit == 0 || f.after_seq >= durable {
        return Ok(out);
    }
    let first = f.after_seq + 1;
    match f.person {
        Some(person) => {
            for item in tree.range(key_person(person, first)..=key_person(person, durable)) {
                let (k, _) = item?;
                let seq = u64_from(&k[17..]);
                let v = tree.get(key_entry(seq))?.ok_or_else(|| {
                    Error::Corrupt(format!(
                        "the access log's person index names missing entry {seq}"
                    ))
                })?;
                let e = decode(seq, &v)?;
                if f.matches(&e) {
                    out.push(e);
                    if out.len() >= f.limit {
                        break;
                    }
                }
            }
        }
        // A scan from `after_seq` that filters as it goes: fine while the log is modest
        // and queries are paged; `who` or time queries over a long log would want indexes.
        None => {
            for item in tree.range(key_entry(first)..=key_entry(durable)) {
                let (k, v) = item?;
                let e = decode(u64_from(&k[1..]), &v)?;
                if f.matches(&e) {
                    out.push(e);
                    if out.len() >= f.limit {
                        break;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn verify_tree(tree: &sled::Tree, durable: u64) -> Result<AccessChainReport, Error> {
    let mut check = ChainCheck::new();
    for item in tree.range(key_entry(1)..=key_entry(durable)) {
        let (k, v) = item?;
        let seq = u64_from(&k[1..]);
        match split(seq, &v) {
            Ok((recorded, stored)) => check.feed(seq, stored, Some(recorded)),
            Err(_) => check.feed(seq, &v, Some(Hash::ZERO)),
        }
    }
    // The head key is written with each group, possibly past `durable` if a group is being
    // committed right now; then the first entry after `durable` commits to our last hash
    // through its `prev` instead.
    let (head_seq, head_hash) = read_head(tree)?;
    let head = if head_seq <= durable {
        Some((head_seq, head_hash))
    } else {
        match tree.get(key_entry(durable + 1))? {
            Some(v) => split(durable + 1, &v)
                .ok()
                .and_then(|(_, stored)| AccessEntry::from_stored(stored).ok())
                .map(|next| (durable, next.prev)),
            None => Some((head_seq, head_hash)),
        }
    };
    Ok(check.finish(head))
}

#[async_trait]
impl AccessLog for EmbeddedAccessLog {
    async fn append(&self, record: AccessRecord) -> Result<AccessEntry, Error> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .jobs
            .send(Job { record, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn query(&self, filter: &AccessFilter) -> Result<Vec<AccessEntry>, Error> {
        let tree = self.inner.tree.clone();
        let durable = self.durable();
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || query_tree(&tree, durable, &filter))
            .await
            .map_err(|e| Error::Unavailable(format!("the access log query failed: {e}")))?
    }

    async fn verify(&self) -> Result<AccessChainReport, Error> {
        let tree = self.inner.tree.clone();
        let durable = self.durable();
        tokio::task::spawn_blocking(move || verify_tree(&tree, durable))
            .await
            .map_err(|e| Error::Unavailable(format!("the access log check failed: {e}")))?
    }

    async fn head(&self) -> Result<u64, Error> {
        Ok(self.durable())
    }
}

/// The single writer: owns seq assignment and every write to the tree.
struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    data_file: std::fs::File,
    next: u64,
    prev: Hash,
    durable: watch::Sender<u64>,
}

impl Writer {
    fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut poisoned: Option<String> = None;
        while let Some(group) = crate::embedded::next_group(&mut jobs, MAX_GROUP) {
            if let Some(why) = &poisoned {
                for job in group {
                    let _ = job.reply.send(Err(Error::Unavailable(why.clone())));
                }
                continue;
            }
            let (start_next, start_prev) = (self.next, self.prev);
            let mut batch = sled::Batch::default();
            let mut done = Vec::with_capacity(group.len());
            for Job { record, reply } in group {
                let (entry, stored) = AccessEntry::seal(self.next, record, self.prev);
                let mut value = Vec::with_capacity(32 + stored.len());
                value.extend_from_slice(&entry.hash.0);
                value.extend_from_slice(&stored);
                batch.insert(&key_entry(entry.seq)[..], value);
                // A list's entry is found under every person it showed.
                for person in entry.record.person_id.iter().chain(&entry.record.people) {
                    batch.insert(&key_person(*person, entry.seq)[..], &[][..]);
                }
                self.next += 1;
                self.prev = entry.hash;
                done.push((reply, entry));
            }
            let mut head = Vec::with_capacity(40);
            head.extend_from_slice(&(self.next - 1).to_be_bytes());
            head.extend_from_slice(&self.prev.0);
            batch.insert(HEAD, head);
            let committed = self
                .tree
                .apply_batch(batch)
                .and_then(|()| self.db.flush().map(|_| ()))
                .and_then(|()| self.data_file.sync_data().map_err(sled::Error::from));
            match committed {
                Ok(()) => {
                    self.durable.send_replace(self.next - 1);
                    for (reply, entry) in done {
                        let _ = reply.send(Ok(entry));
                    }
                }
                Err(e) => {
                    // The tree may hold part of the group; numbering on top of an unknown
                    // state could fork the chain, so refuse further appends until restart.
                    (self.next, self.prev) = (start_next, start_prev);
                    let why = format!("the access log store failed and needs a restart: {e}");
                    tracing::error!(error = %e, "access log group commit failed");
                    poisoned = Some(why.clone());
                    for (reply, _) in done {
                        let _ = reply.send(Err(Error::Unavailable(why.clone())));
                    }
                }
            }
        }
    }
}
