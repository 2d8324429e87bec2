//! Writing the access log from the edge: one function appends an entry for every
//! transport (HTTP reads and refusals, NATS submissions), so a failing access log is
//! answered the same way everywhere (503; the data does not leave). The sampler that
//! keeps unauthenticated refusals from flooding the log is part of the state.

use throughcare_ledger::AccessRecord;

use crate::problem::ApiError;
use crate::state::AppState;

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
