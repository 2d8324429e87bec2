//! Idempotency records: what was recorded for a (source, id). A record is one message on
//! `throughcare.submission.<hex SHA-256 of (source, id)>` holding the person, the body's
//! digest, and the event's position and stream sequence. It is written create-only
//! (`Nats-Expected-Last-Subject-Sequence: 0`) in the same atomic batch as its event, right
//! before it, so a record exists exactly when its event does; found with one get.

use throughcare_ledger::{Error, PriorSubmission};

use super::Shared;
use crate::records::{submission_subject, SubmissionRecord};

impl Shared {
    /// The record of (source, id), if any (and remembered as a hint: records never change).
    pub(crate) async fn submission(
        &self,
        source: &str,
        id: &str,
    ) -> Result<Option<PriorSubmission>, Error> {
        self.submission_at(&submission_subject(source, id)).await
    }

    pub(crate) async fn submission_at(
        &self,
        subject: &str,
    ) -> Result<Option<PriorSubmission>, Error> {
        if let Some(p) = self
            .hints
            .lock()
            .expect("hints lock")
            .submissions
            .get(subject)
        {
            return Ok(Some(*p));
        }
        match self.last_on_subject(subject).await? {
            None => Ok(None),
            Some(m) => {
                let record = SubmissionRecord::decode(subject, &m.payload)?;
                self.hints
                    .lock()
                    .expect("hints lock")
                    .submission(subject.to_string(), record.prior);
                Ok(Some(record.prior))
            }
        }
    }
}
