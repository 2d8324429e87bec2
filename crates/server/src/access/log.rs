//! Writing the access log from the edge: one function appends an entry for every
//! transport (HTTP reads and refusals, NATS submissions), so a failing access log is
//! answered the same way everywhere (503; the data does not leave), and the sampler that
//! keeps unauthenticated refusals from flooding the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use throughcare_ledger::AccessRecord;

use crate::problem::ApiError;
use crate::AppState;

/// At most one entry per this long for refusals of callers with no valid credentials.
pub const UNAUTHENTICATED_SAMPLE: Duration = Duration::from_secs(10);

/// Appends `record` durably; on failure the caller must not send the data (503).
pub async fn write(state: &AppState, record: AccessRecord) -> Result<(), ApiError> {
    let denied = record.outcome == throughcare_ledger::Outcome::Denied;
    let review = record.review;
    match state.access.append(record).await {
        Ok(_) => {
            state.metrics.access(denied, review);
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "access log append failed; response withheld");
            Err(ApiError::unavailable(
                "the access log is unavailable; retry shortly",
            ))
        }
    }
}

/// Refusals of callers without valid credentials are counted, and one in each
/// `UNAUTHENTICATED_SAMPLE` is written, saying how many it stands for. Anyone can send
/// them, so writing each would let anyone grow the log (and a person's record) at will.
#[derive(Default)]
pub struct Sampler {
    /// Refusals not yet written.
    pending: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Sampler {
    /// Counts one refusal; `Some(n)` when this one is to be written, standing for `n`
    /// refusals (itself and those skipped since the last entry).
    pub fn admit(&self) -> Option<u64> {
        let pending = self.pending.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < UNAUTHENTICATED_SAMPLE) {
            return None;
        }
        *last = Some(now);
        self.pending.fetch_sub(pending, Ordering::Relaxed);
        Some(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_each_window_is_written_for_all() {
        let s = Sampler::default();
        assert_eq!(s.admit(), Some(1));
        for _ in 0..299 {
            assert_eq!(s.admit(), None);
        }
        *s.last.lock().unwrap() = Some(Instant::now() - UNAUTHENTICATED_SAMPLE);
        assert_eq!(s.admit(), Some(300), "the entry stands for the skipped ones");
    }
}
