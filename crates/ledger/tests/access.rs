//! The embedded access log (sled tree `access` beside the event log) against the shared
//! access-log conformance checks, plus what only the embedded backend can show: reopening
//! the directory, and `verify` catching entries rewritten in the tree behind its back.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use throughcare_events::Hash;
use throughcare_ledger::access::conformance::{self, record, Log};
use throughcare_ledger::{AccessEntry, AccessLog, EmbeddedLog, EventLog};

fn open(dir: &Path) -> Log {
    let log = EmbeddedLog::open(dir).expect("open the embedded log");
    Arc::new(log.access_log())
}

/// Opens `dir` again once the previous handles' writer threads have let go of sled's lock.
async fn reopen(dir: &Path) -> EmbeddedLog {
    let mut last = None;
    for _ in 0..200 {
        match EmbeddedLog::open(dir) {
            Ok(log) => return log,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot reopen the embedded log: {last:?}");
}

/// Opens the bare sled database once the log's threads have let go of it.
async fn raw_tree(dir: &Path) -> (sled::Db, sled::Tree) {
    for _ in 0..200 {
        if let Ok(db) = sled::open(dir) {
            let tree = db.open_tree("access").expect("the access tree");
            return (db, tree);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cannot open the sled database directly");
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_access_log_conformance() {
    let dirs = Mutex::new(Vec::new());
    conformance::run_all(|| {
        let dir = TempDir::new().expect("temporary directory");
        let log = open(dir.path());
        dirs.lock().expect("dirs").push(dir);
        async move { log }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn embedded_access_log_continues_after_reopen() {
    let dir = TempDir::new().expect("temporary directory");
    let path = dir.path().to_path_buf();
    conformance::continues_after_reopen(|| {
        let path = path.clone();
        async move { Arc::new(reopen(&path).await.access_log()) as Log }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_handles_share_one_writer() {
    let dir = TempDir::new().expect("temporary directory");
    let log = EmbeddedLog::open(dir.path()).expect("open");
    let (a, b): (Log, Log) = (
        Arc::new(log.access_log()),
        Arc::new(log.clone().access_log()),
    );
    conformance::two_handles_make_one_chain(a, b, 100).await;
}

/// The access log lives in its own tree and leaves the event log alone (and vice versa).
#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_is_a_tree_of_its_own() {
    let dir = TempDir::new().expect("temporary directory");
    let log = EmbeddedLog::open(dir.path()).expect("open");
    let access = log.access_log();
    let t = chrono::Utc::now();
    access
        .append(record("a.worker", None, t))
        .await
        .expect("append");
    assert_eq!(
        log.head().await.expect("event head"),
        0,
        "no event appended"
    );
    drop((log, access));
    let (_db, tree) = raw_tree(dir.path()).await;
    assert!(tree.get(b"H").expect("read").is_some(), "the head is kept");
    assert_eq!(tree.scan_prefix(b"S").count(), 1);
}

/// The key of entry `seq` in the access tree.
fn entry_key(seq: u64) -> Vec<u8> {
    let mut key = vec![b'S'];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Stored bytes with their hash in front, as the log keeps an entry: a forgery whose
/// recorded hash matches.
fn sealed(stored: Vec<u8>) -> Vec<u8> {
    [&Hash::of(&stored).0[..], &stored].concat()
}

/// Rewrites entry `seq` in the tree: `rewrite` gets (recorded hash, stored bytes) and
/// returns the new value.
async fn tamper(dir: &Path, seq: u64, rewrite: impl FnOnce(Hash, Vec<u8>) -> Vec<u8>) {
    let (db, tree) = raw_tree(dir).await;
    let key = entry_key(seq);
    let v = tree.get(&key).expect("read").expect("the entry is there");
    let recorded = Hash(v[..32].try_into().expect("hash"));
    let new = rewrite(recorded, v[32..].to_vec());
    tree.insert(key, new).expect("overwrite");
    db.flush().expect("flush");
}

/// Appends `n` entries in a fresh directory and closes it; returns the entries.
async fn fill(dir: &Path, n: usize) -> Vec<AccessEntry> {
    let log = reopen(dir).await.access_log();
    let mut out = Vec::new();
    for i in 0..n {
        let who = format!("worker.{i}");
        out.push(
            log.append(record(
                &who,
                Some(conformance::person(1)),
                chrono::Utc::now(),
            ))
            .await
            .expect("append"),
        );
    }
    out
}

/// Replaces "worker.N" by "worker.X" in stored bytes (same length, still valid JSON).
fn forge(stored: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(stored.to_vec()).expect("utf-8");
    let i = text.find("worker.").expect("who") + "worker.".len();
    let mut forged = text.into_bytes();
    forged[i] = b'X';
    forged
}

async fn verify(dir: &Path) -> throughcare_ledger::AccessChainReport {
    reopen(dir)
        .await
        .access_log()
        .verify()
        .await
        .expect("verify")
}

/// `verify` after entry `seq` of a fresh log of `n` entries is rewritten (see [`tamper`]).
async fn verify_tampered(
    n: usize,
    seq: u64,
    rewrite: impl FnOnce(Hash, Vec<u8>) -> Vec<u8>,
) -> throughcare_ledger::AccessChainReport {
    let dir = TempDir::new().expect("temporary directory");
    fill(dir.path(), n).await;
    tamper(dir.path(), seq, rewrite).await;
    verify(dir.path()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_rewritten_entries() {
    // The bytes of a middle entry changed, its recorded hash left as it was.
    let dir = TempDir::new().expect("temporary directory");
    fill(dir.path(), 5).await;
    assert!(verify(dir.path()).await.ok);
    tamper(dir.path(), 3, |h, stored| {
        [&h.0[..], &forge(&stored)].concat()
    })
    .await;
    let report = verify(dir.path()).await;
    assert_eq!(
        (report.ok, report.broken_at, report.entries),
        (false, Some(3), 5)
    );
    // Reading it is refused too, rather than handing out altered history.
    let log = reopen(dir.path()).await.access_log();
    let err = log
        .query(&Default::default())
        .await
        .expect_err("a rewritten entry is not served");
    assert!(
        matches!(err, throughcare_ledger::Error::Corrupt(_)),
        "{err}"
    );
    drop(log);

    // The bytes and their recorded hash both rewritten: the next entry's prev catches it.
    let report = verify_tampered(5, 2, |_, stored| sealed(forge(&stored))).await;
    assert_eq!((report.ok, report.broken_at), (false, Some(3)));

    // The last entry rewritten with its hash: the head kept apart catches it.
    let report = verify_tampered(4, 4, |_, stored| sealed(forge(&stored))).await;
    assert_eq!((report.ok, report.broken_at), (false, Some(4)));

    // An entry removed from the middle: a gap.
    let dir = TempDir::new().expect("temporary directory");
    fill(dir.path(), 4).await;
    {
        let (db, tree) = raw_tree(dir.path()).await;
        tree.remove(entry_key(2)).expect("remove");
        db.flush().expect("flush");
    }
    let report = verify(dir.path()).await;
    assert_eq!(
        (report.ok, report.broken_at, report.entries),
        (false, Some(2), 3)
    );

    // A stored entry that is valid JSON but not in canonical form (whitespace added).
    let report = verify_tampered(2, 1, |_, stored| sealed([&b" "[..], &stored].concat())).await;
    assert_eq!((report.ok, report.broken_at), (false, Some(1)));
}

/// An untouched log verifies after reopening, and the head is what was appended last.
#[tokio::test(flavor = "multi_thread")]
async fn verify_after_reopen() {
    let dir = TempDir::new().expect("temporary directory");
    let entries = fill(dir.path(), 3).await;
    let report = verify(dir.path()).await;
    assert!(report.ok);
    assert_eq!(report.head, Some(entries[2].hash));
}
