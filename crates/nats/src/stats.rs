//! Counters of what the JetStream backend did (for tests, logs and metrics): batches and
//! messages published, batches refused for a wrong last sequence and planned again,
//! publishes retried, and batches found stored after their ack was lost.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of [`crate::JetStreamLog::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Atomic batches published (each one round trip).
    pub batches: u64,
    /// Messages in the batches that were stored (events, records and claims).
    pub messages: u64,
    /// Batches refused with a wrong last sequence (10071, or 10164 from a clustered
    /// leader): another writer appended, or an assumed fact was wrong; re-read and planned
    /// again.
    pub conflicts: u64,
    /// Operations retried after a transient failure (a lost ack, no responders, ...).
    pub retries: u64,
    /// Batches whose ack was lost but which were found stored.
    pub landed_after_lost_ack: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    pub conflicts: AtomicU64,
    pub retries: AtomicU64,
    pub landed_after_lost_ack: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            batches: get(&self.batches),
            messages: get(&self.messages),
            conflicts: get(&self.conflicts),
            retries: get(&self.retries),
            landed_after_lost_ack: get(&self.landed_after_lost_ack),
        }
    }
}
