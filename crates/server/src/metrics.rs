//! Request counters for `/metrics` (Prometheus text format), kept as plain atomics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use throughcare_ledger::Error;

#[derive(Default)]
pub struct Metrics {
    recorded: AtomicU64,
    duplicates: AtomicU64,
    invalid: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    access_allowed: AtomicU64,
    access_denied: AtomicU64,
    access_review: AtomicU64,
    /// Refusals of callers without valid credentials (sampled in the access log).
    unauthenticated: AtomicU64,
    /// HMPPS messages by outcome, and those ignored by reason (labels, never identifiers).
    hmpps: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    hmpps_ignored: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn recorded(&self, duplicate: bool) {
        if duplicate {
            &self.duplicates
        } else {
            &self.recorded
        }
        .fetch_add(1, Relaxed);
    }
    pub fn invalid(&self) {
        self.invalid.fetch_add(1, Relaxed);
    }
    pub fn refused(&self, e: &Error) {
        match e {
            Error::Invalid(_) | Error::UnknownPerson(_) => &self.invalid,
            Error::Unavailable(_) | Error::Corrupt(_) => &self.failed,
            _ => &self.refused,
        }
        .fetch_add(1, Relaxed);
    }

    /// One refusal of a caller without valid credentials.
    pub fn unauthenticated(&self) {
        self.unauthenticated.fetch_add(1, Relaxed);
    }

    /// One access-log entry written (a read, or a refusal).
    pub fn access(&self, denied: bool, review: bool) {
        if denied {
            &self.access_denied
        } else {
            &self.access_allowed
        }
        .fetch_add(1, Relaxed);
        if review {
            self.access_review.fetch_add(1, Relaxed);
        }
    }

    /// One HMPPS message handled: recorded, duplicate, malformed, identity-conflict,
    /// refused, unavailable, or dead-lettered (by the consumer).
    pub fn hmpps(&self, outcome: &'static str) {
        let mut counts = self.hmpps.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(outcome).or_default() += 1;
    }

    /// One HMPPS message deliberately not recorded, by reason (e.g. unknown-person).
    pub fn hmpps_ignored(&self, reason: &'static str) {
        self.hmpps("ignored");
        let mut counts = self.hmpps_ignored.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(reason).or_default() += 1;
    }

    fn render_hmpps(&self, out: &mut String) {
        const OUTCOMES: [&str; 8] = [
            "recorded",
            "duplicate",
            "ignored",
            "malformed",
            "identity-conflict",
            "refused",
            "unavailable",
            "dead-lettered",
        ];
        let counts = self.hmpps.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP throughcare_hmpps_messages_total HMPPS domain events handled, by outcome.\n",
        );
        out.push_str("# TYPE throughcare_hmpps_messages_total counter\n");
        for o in OUTCOMES {
            let n = counts.get(o).copied().unwrap_or(0);
            out.push_str(&format!(
                "throughcare_hmpps_messages_total{{outcome=\"{o}\"}} {n}\n"
            ));
        }
        let ignored = self.hmpps_ignored.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str(
            "# HELP throughcare_hmpps_ignored_total HMPPS domain events not recorded, by reason.\n",
        );
        out.push_str("# TYPE throughcare_hmpps_ignored_total counter\n");
        for r in throughcare_hmpps::Ignored::ALL {
            let n = ignored.get(r.as_str()).copied().unwrap_or(0);
            out.push_str(&format!(
                "throughcare_hmpps_ignored_total{{reason=\"{}\"}} {n}\n",
                r.as_str()
            ));
        }
    }

    pub fn render(
        &self,
        head: u64,
        checkpoint: u64,
        projector: &throughcare_projector::Health,
    ) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        line(
            "throughcare_events_recorded_total",
            "counter",
            "Events recorded.",
            self.recorded.load(Relaxed),
        );
        line(
            "throughcare_events_duplicate_total",
            "counter",
            "Retries answered with the original position.",
            self.duplicates.load(Relaxed),
        );
        line(
            "throughcare_events_invalid_total",
            "counter",
            "Submissions refused as invalid (422).",
            self.invalid.load(Relaxed),
        );
        line(
            "throughcare_events_refused_total",
            "counter",
            "Submissions refused by the case state or identity (409).",
            self.refused.load(Relaxed),
        );
        line(
            "throughcare_events_failed_total",
            "counter",
            "Submissions that failed in the store (5xx).",
            self.failed.load(Relaxed),
        );
        line(
            "throughcare_access_allowed_total",
            "counter",
            "Person-level reads written to the access log.",
            self.access_allowed.load(Relaxed),
        );
        line(
            "throughcare_access_denied_total",
            "counter",
            "Refusals (401, 403, out of scope) written to the access log.",
            self.access_denied.load(Relaxed),
        );
        line(
            "throughcare_access_review_total",
            "counter",
            "Break-glass reads marked for review.",
            self.access_review.load(Relaxed),
        );
        line(
            "throughcare_unauthenticated_total",
            "counter",
            "Refusals of callers without valid credentials (sampled in the access log).",
            self.unauthenticated.load(Relaxed),
        );
        line(
            "throughcare_log_head",
            "gauge",
            "Position of the last acknowledged event.",
            head,
        );
        line(
            "throughcare_projection_checkpoint",
            "gauge",
            "Position folded into the read models.",
            checkpoint,
        );
        line(
            "throughcare_projection_lag",
            "gauge",
            "Events not yet in the read models.",
            head.saturating_sub(checkpoint),
        );
        line(
            "throughcare_projector_up",
            "gauge",
            "1 while the projector folds the log, 0 while it is down and restarting.",
            u64::from(projector.is_up()),
        );
        line(
            "throughcare_projector_restarts_total",
            "counter",
            "Restarts of the projector task after a failure.",
            projector.restarts,
        );
        self.render_hmpps(&mut out);
        out
    }
}
