//! Counters of what the backend had to do beyond the plain path (for tests, logs and
//! metrics): retries, checked 10071s and duplicate acks, intents rolled forward or dead.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of [`crate::JetStreamLog::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations retried after a transient failure (timeout, no responders, ...).
    pub retries: u64,
    /// Publishes answered 10071 whose event turned out to be stored (slot held our msg-id).
    pub wrong_last_but_stored: u64,
    /// Publishes answered 10071 whose slot held another event: the intent was dead.
    pub wrong_last_lost: u64,
    /// Duplicate acks (the msg-id was already stored in the dedupe window).
    pub duplicate_acks: u64,
    /// Pending intents found by a reader and published or found stored.
    pub rolled_forward: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub wrong_last_but_stored: AtomicU64,
    pub wrong_last_lost: AtomicU64,
    pub duplicate_acks: AtomicU64,
    pub rolled_forward: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            retries: get(&self.retries),
            wrong_last_but_stored: get(&self.wrong_last_but_stored),
            wrong_last_lost: get(&self.wrong_last_lost),
            duplicate_acks: get(&self.duplicate_acks),
            rolled_forward: get(&self.rolled_forward),
        }
    }
}
