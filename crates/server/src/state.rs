//! What every handler can reach (`AppState`): the ledger, the read models, the access
//! log, the principals, and the few pieces of per-process state the edge keeps (web
//! sessions, metrics, as-of replays, the sampler of unauthenticated refusals).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use throughcare_ledger::{AccessLog, Ledger};
use throughcare_projector::{ReadModels, Replays};

use crate::auth::session::Sessions;
use crate::auth::Authenticator;
pub use crate::checkpoints::LedgerAudit;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub models: ReadModels,
    /// The principals; `None` is open development mode.
    pub auth: Option<Arc<Authenticator>>,
    pub access: Arc<dyn AccessLog>,
    /// Whether cookies get `Secure` (served over TLS, directly or behind a proxy).
    pub secure_cookies: bool,
    /// Read models replayed as of past cuts (`?as_of=`, `?at_position=`), cached.
    pub(crate) replays: Arc<Replays>,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) metrics: Arc<Metrics>,
    /// Samples refusals of callers without valid credentials (`access::log`).
    pub(crate) unauthenticated: Arc<Sampler>,
    /// The audit tree and checkpoint key behind `/v1/ledger/*` (`None`: those answer 503).
    pub ledger_audit: Option<Arc<LedgerAudit>>,
    /// The services beside the HTTP server (NATS submit, HMPPS consumer) and whether each
    /// is up: `/readyz` is 503 while one is not.
    pub services: Arc<Services>,
}

impl AppState {
    /// State in open development mode (no `--auth`); reads are still logged.
    pub fn new(ledger: Ledger, models: ReadModels, access: Arc<dyn AccessLog>) -> Self {
        AppState {
            replays: Arc::new(Replays::new(ledger.log().clone())),
            ledger,
            models,
            auth: None,
            access,
            secure_cookies: false,
            sessions: Arc::default(),
            metrics: Arc::default(),
            unauthenticated: Arc::default(),
            ledger_audit: None,
            services: Arc::default(),
        }
    }

    /// Serves `/v1/ledger/*` from this audit tree and checkpoint key.
    pub fn with_ledger_audit(mut self, audit: LedgerAudit) -> Self {
        self.ledger_audit = Some(Arc::new(audit));
        self
    }

    /// Requires a principal from `auth` on every non-open route.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// Builds as-of replays in scratch directories under `dir` (default: the system's
    /// temp directory); each is the size of the read models at its cut.
    pub fn with_replay_scratch(mut self, dir: std::path::PathBuf) -> Self {
        self.replays = Arc::new(Replays::in_dir(self.ledger.log().clone(), dir));
        self
    }

    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }
}

/// The services a server runs beside its HTTP listener, by name, and whether each is up.
#[derive(Default)]
pub struct Services {
    up: Mutex<std::collections::BTreeMap<&'static str, bool>>,
}

impl Services {
    /// Records that `name` runs here and whether it is up now (a service is expected from
    /// its first report on: down until it says it is up).
    pub fn set(&self, name: &'static str, up: bool) {
        let mut map = self.up.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(name, up);
    }

    /// The expected services that are not up.
    pub fn down(&self) -> Vec<&'static str> {
        let map = self.up.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|(_, up)| !**up)
            .map(|(n, _)| *n)
            .collect()
    }
}

/// How long a query with `min_position` waits for the read models before a 503.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

/// At most one entry per this long for refusals of callers with no valid credentials.
pub const UNAUTHENTICATED_SAMPLE: Duration = Duration::from_secs(10);

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
        assert_eq!(
            s.admit(),
            Some(300),
            "the entry stands for the skipped ones"
        );
    }
}
