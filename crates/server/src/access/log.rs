//! Writing the access log from the edge: one function appends an entry for every
//! transport (HTTP reads and refusals, NATS submissions), so a failing access log is
//! answered the same way everywhere (503; the data does not leave). The sampler that
//! keeps unauthenticated refusals from flooding the log is part of the state.

use throughcare_ledger::AccessRecord;

use crate::problem::ApiError;
use crate::state::AppState;

/// Counts a refusal of a caller without valid credentials; `Some(reason)` when this one
/// is to be written (the sampled entry's `reason`, saying how many it stands for), `None`
/// when it is only counted (`state::Sampler`).
pub fn sample_unauthenticated(state: &AppState) -> Option<String> {
    state.metrics.unauthenticated();
    state
        .unauthenticated
        .admit()
        .map(|n| format!("sampled: one entry for {n} refusal(s) without valid credentials"))
}

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
