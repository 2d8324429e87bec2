//! [`ChainCheck`]: the one chain verification both access-log backends run over their
//! stored entries, so that "the chain holds" means the same thing everywhere.

use throughcare_events::Hash;

use super::{AccessChainReport, AccessEntry};

/// Walks the stored entries in seq order and finds the first place the chain breaks.
///
/// The chain breaks at `seq` when entry `seq` is missing (the next one read has a larger
/// number), its stored bytes do not decode or are not the canonical encoding of what they
/// decode to, they name another seq, they do not hash to the hash the backend recorded
/// beside them at append time, or their `prev` is not the recomputed hash of entry
/// `seq - 1` (zeros for the first). Past a break entries are still counted.
#[derive(Debug)]
pub struct ChainCheck {
    next: u64,
    prev: Hash,
    entries: u64,
    last: Option<Hash>,
    broken_at: Option<u64>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck::new()
    }
}

impl ChainCheck {
    pub fn new() -> Self {
        ChainCheck {
            next: 1,
            prev: Hash::ZERO,
            entries: 0,
            last: None,
            broken_at: None,
        }
    }

    /// Takes the stored bytes found at `seq` and, if the backend keeps one, the hash
    /// recorded when the entry was appended.
    pub fn feed(&mut self, seq: u64, stored: &[u8], recorded: Option<Hash>) {
        self.entries += 1;
        let hash = Hash::of(stored);
        self.last = Some(hash);
        if self.broken_at.is_some() {
            return;
        }
        if seq != self.next {
            self.broken_at = Some(self.next.min(seq));
            return;
        }
        match AccessEntry::decode_at(seq, stored, recorded) {
            Ok(e) if e.prev == self.prev => {
                self.prev = hash;
                self.next += 1;
            }
            _ => self.broken_at = Some(seq),
        }
    }

    /// Takes an entry at `seq` that the backend found wrong on its own terms (for example
    /// stored under another person's subject): the chain breaks there.
    pub fn feed_broken(&mut self, seq: u64, stored: &[u8]) {
        self.entries += 1;
        self.last = Some(Hash::of(stored));
        if self.broken_at.is_none() {
            self.broken_at = Some(self.next.min(seq));
        }
    }

    /// The report, given that the log held at least `head` entries before the walk began:
    /// a chain that stops short of it is missing entries at its end.
    pub fn finish_reaching(mut self, head: u64) -> AccessChainReport {
        if self.broken_at.is_none() && self.next <= head {
            self.broken_at = Some(self.next);
        }
        self.finish(None)
    }

    /// The report, given the head the backend keeps apart from the entries (seq and hash
    /// of the last entry), if it keeps one: a head that does not match the last entry read
    /// breaks the chain there (this is what catches a rewritten last entry).
    pub fn finish(mut self, head: Option<(u64, Hash)>) -> AccessChainReport {
        if self.broken_at.is_none() {
            if let Some((seq, hash)) = head {
                let last = self.next - 1;
                if seq > last {
                    self.broken_at = Some(last + 1);
                } else if seq < last {
                    self.broken_at = Some(seq + 1);
                } else if seq > 0 && hash != self.prev {
                    self.broken_at = Some(seq);
                }
            }
        }
        AccessChainReport {
            entries: self.entries,
            ok: self.broken_at.is_none(),
            head: self.last,
            broken_at: self.broken_at,
        }
    }
}
