//! Keeps the projector running: when its task fails (the log subscription breaks, a
//! read-model write fails, a chunk does not fold) the failure is published as the
//! projector's [`Health`], so that `/readyz` answers 503 with the reason instead of serving
//! stale read models as if current, and the task is restarted from its checkpoint with
//! exponential backoff. A chunk is written with its checkpoint in one sled batch, so a
//! failure mid-chunk leaves nothing half-applied and the restart folds it again whole.

use std::sync::Arc;
use std::time::Duration;

use throughcare_ledger::EventLog;

use crate::store::{Error, Projector, ReadAhead};

/// Whether the projector is folding the log, as `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `None` while running; the reason it stopped while it is down (until a restarted
    /// task has folded a chunk or found nothing to fold).
    pub down: Option<String>,
    /// Restarts since the process started.
    pub restarts: u64,
}

impl Health {
    pub(crate) fn running() -> Self {
        Health {
            down: None,
            restarts: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.down.is_none()
    }
}

/// How long to wait before restarting a failed projector: `first`, doubling after each
/// failure up to `max`, back to `first` once a restarted task has made progress.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Projector {
    /// Follows the log from the checkpoint for as long as the process runs, restarting
    /// after every failure (logged, counted in [`Health::restarts`]) with `backoff`.
    pub async fn run_supervised(&self, log: Arc<dyn EventLog>, backoff: Backoff) {
        let mut delay = backoff.first;
        loop {
            let mut progressed = false;
            let why = match self.follow(log.as_ref(), &mut progressed).await {
                Ok(()) => "the log subscription ended".to_string(),
                Err(e) => e.to_string(),
            };
            if progressed {
                delay = backoff.first;
            }
            let restarts = self.health_sender().borrow().restarts + 1;
            tracing::error!(
                error = %why,
                checkpoint = self.checkpoint(),
                restarts,
                retry_in_ms = delay.as_millis() as u64,
                "projector stopped; restarting from its checkpoint"
            );
            self.health_sender().send_replace(Health {
                down: Some(why),
                restarts,
            });
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(backoff.max);
        }
    }

    /// One run of the projector: subscribes from the checkpoint and folds chunk by chunk.
    /// Marks the projector up once it has folded a chunk, or at once when the read models
    /// already hold the head (nothing to prove itself on).
    async fn follow(&self, log: &dyn EventLog, progressed: &mut bool) -> Result<(), Error> {
        let mut chunks = ReadAhead::start(log.subscribe(self.checkpoint() + 1), false);
        if self.checkpoint() >= log.head().await? {
            self.mark_up();
        }
        while let Some(chunk) = chunks.next().await {
            self.fold(chunk?).await?;
            *progressed = true;
            self.mark_up();
        }
        Ok(())
    }

    fn mark_up(&self) {
        self.health_sender().send_if_modified(|h| {
            let was_down = h.down.take().is_some();
            if was_down {
                tracing::info!(restarts = h.restarts, "projector running again");
            }
            was_down
        });
    }
}
