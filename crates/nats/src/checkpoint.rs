//! Publishes each signed checkpoint of the audit tree on `throughcare.checkpoint`, so
//! that outside witnesses can keep copies (core NATS, fire and forget: the server keeps
//! every checkpoint itself, and a witness that misses one fetches the next).

use crate::{JetStreamConfig, JetStreamError};

/// The subject checkpoints are published on.
pub const CHECKPOINT_SUBJECT: &str = "throughcare.checkpoint";

/// A connection that publishes checkpoints.
#[derive(Clone)]
pub struct CheckpointPublisher {
    client: async_nats::Client,
}

impl CheckpointPublisher {
    /// Connects with the ledger's own credentials (reconnecting forever once connected).
    pub async fn connect(config: &JetStreamConfig) -> Result<Self, JetStreamError> {
        let client = config
            .reconnecting("-checkpoint")
            .await?
            .connect(config.servers())
            .await
            .map_err(|e| config.connect_error(e))?;
        Ok(Self { client })
    }

    /// Publishes one signed checkpoint note; a failure is logged, never fatal.
    pub async fn publish(&self, note: String) {
        if let Err(e) = self.client.publish(CHECKPOINT_SUBJECT, note.into()).await {
            tracing::warn!(error = %e, "cannot publish a checkpoint on {CHECKPOINT_SUBJECT}");
        }
    }
}
