//! The checkpoint job: signs the audit tree's head as a C2SP checkpoint at start, once the
//! tree catches up with the log, and then every [`CHECKPOINT_EVERY_EVENTS`] events or
//! [`CHECKPOINT_EVERY`] while the log grows, keeping every note; and [`LedgerAudit`],
//! what the ledger routes serve from. Runs beside the server, not in a handler.

use std::time::{Duration, Instant};

use throughcare_projector::AuditTree;
use throughcare_tlog::{Checkpoint, SigningKey, VerifierKey};

/// A new checkpoint once the log has grown by this many events...
pub const CHECKPOINT_EVERY_EVENTS: u64 = 1000;
/// ...or once this long has passed since the last one, while the log grows.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// What the ledger routes serve from: the audit tree and who signs its checkpoints.
#[derive(Clone)]
pub struct LedgerAudit {
    pub tree: AuditTree,
    pub verifier: VerifierKey,
    pub origin: String,
}

/// Signs and keeps a checkpoint of the tree's current size; returns the note.
pub async fn sign_checkpoint(
    tree: &AuditTree,
    key: &SigningKey,
    origin: &str,
) -> Result<(u64, String), String> {
    let size = tree.size();
    let root = tree.root_at(size).map_err(|e| e.to_string())?;
    let note = key
        .sign(&Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
        .map_err(|e| e.to_string())?;
    tree.keep_checkpoint(size, &note)
        .await
        .map_err(|e| e.to_string())?;
    Ok((size, note))
}

/// Signs checkpoints forever: one at start if none is kept or the tree is past the latest,
/// one as soon as the tree catches up with `head_at_start` (so that everything
/// acknowledged before a restart is provable at once), then one every
/// [`CHECKPOINT_EVERY_EVENTS`] events or [`CHECKPOINT_EVERY`] while the log grows.
/// `published` gets each new note (e.g. to publish it on NATS).
pub async fn run_checkpoints(
    tree: AuditTree,
    key: SigningKey,
    origin: String,
    head_at_start: u64,
    published: impl Fn(u64, &str) + Send + Sync + 'static,
) {
    let mut sizes = tree.watch_size();
    let mut last = match tree.latest_checkpoint() {
        Ok(latest) => latest.map(|(s, _)| s),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the kept checkpoints; checkpoints stopped");
            return;
        }
    };
    let mut last_at = Instant::now();
    let mut caught_up = false;
    loop {
        let size = tree.size();
        let due = match last {
            None => true,
            Some(last) if size > last => {
                (!caught_up && size >= head_at_start)
                    || size - last >= CHECKPOINT_EVERY_EVENTS
                    || last_at.elapsed() >= CHECKPOINT_EVERY
            }
            Some(_) => false,
        };
        caught_up |= size >= head_at_start;
        if due {
            match sign_checkpoint(&tree, &key, &origin).await {
                Ok((size, note)) => {
                    tracing::debug!(size, "checkpoint signed");
                    published(size, &note);
                    last = Some(size);
                    last_at = Instant::now();
                }
                Err(e) => tracing::error!(error = %e, "cannot sign a checkpoint"),
            }
        }
        // Wake on growth (checked again after at most a second, for the time rule).
        let _ = tokio::time::timeout(Duration::from_secs(1), sizes.changed()).await;
    }
}
