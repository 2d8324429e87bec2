//! Service KPIs per prison and month, computed from per-episode facts. The projector
//! stores one `EpisodeFacts` per episode; a query folds them into `MonthKpis` against a
//! query time passed in (no clock here).
//!
//! - Attribution: referral-based KPIs (referrals by source, triage time) count for the
//!   prison each referral named; release-based ones for the prison that released the
//!   person (`released_from`); signposts and closures for the prison of the first
//!   referral before the release and the releasing prison from the release on.
//! - Months: referrals count in the month received, release-based KPIs in the month of
//!   release, signposts in the month made, closures in the month closed.
//! - Maturity: a windowed KPI (72 hours, the gate, 28 days) counts an episode only once
//!   its window has closed; until then it is `pending`, in neither numerator nor
//!   denominator, so early successes do not bias the rate.
//! - Denominators: release-based KPIs count accepted episodes that were open at the
//!   release (`EpisodeFacts::release`), never a transfer to hospital; an episode still
//!   awaiting triage is pending.
//!
//! `published()` (in `publish`) applies statistical disclosure control.

mod facts;
mod publish;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;
use throughcare_events::catalogue::{ReferrerKind, ReleaseReason, ServiceType, SignpostOutcome};

use crate::journey::ReferralState;

pub use facts::{EpisodeFacts, ReferralFact, SignpostFact};
pub use publish::{shown, SUPPRESSION, SUPPRESS_BELOW, WITHHELD};

/// How long after release a first contact counts.
fn contact_window() -> Duration {
    Duration::hours(72)
}

/// How long after release a GATE contact counts (the journey fold finds it, from 12
/// hours before release).
fn gate_closes() -> Duration {
    Duration::hours(24)
}

/// How long after release a GP registration counts.
fn gp_window() -> Duration {
    Duration::days(28)
}

/// A rate's parts, and the episodes not decided yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
    /// In scope but not decided at the query time: the window is still open, or the
    /// referral still awaits triage. In neither numerator nor denominator.
    pub pending: u64,
}

impl Ratio {
    fn count(&mut self, hit: bool) {
        self.denominator += 1;
        self.numerator += u64::from(hit);
    }

    /// Counts `hit` once the window has closed at `closes`, else as pending.
    fn once_closed(&mut self, now: DateTime<Utc>, closes: DateTime<Utc>, hit: bool) {
        if now < closes {
            self.pending += 1;
        } else {
            self.count(hit);
        }
    }
}

/// The KPIs of one prison in one month, unsuppressed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MonthKpis {
    pub prison: String,
    /// `YYYY-MM`
    pub month: String,
    pub referrals_by_source: BTreeMap<ReferrerKind, u64>,
    /// Hours from each referral's receipt to its triage decision (accepted or declined).
    pub triage_hours: Vec<f64>,
    pub assessed_before_release: Ratio,
    pub released_with_plan: Ratio,
    pub contacted_within_72h: Ratio,
    pub met_at_gate: Ratio,
    pub gp_registered_within_28d: Ratio,
    pub signposting_conversion: BTreeMap<ServiceType, Ratio>,
    pub closure_reasons: BTreeMap<String, u64>,
}

impl MonthKpis {
    /// The release-based measures.
    fn release_ratios(&mut self) -> [&mut Ratio; 5] {
        [
            &mut self.assessed_before_release,
            &mut self.released_with_plan,
            &mut self.contacted_within_72h,
            &mut self.met_at_gate,
            &mut self.gp_registered_within_28d,
        ]
    }
}

/// Outcomes that count as a signpost converted into service.
pub fn converted(o: Option<SignpostOutcome>) -> bool {
    use SignpostOutcome::*;
    matches!(
        o,
        Some(GpRegistered | Attended | Accepted | HousingSettled | HousingTemporary)
    )
}

/// The KPIs of `prison` in the month of `t`, created empty on first use.
fn slot<'a>(
    out: &'a mut BTreeMap<(String, String), MonthKpis>,
    prison: &str,
    t: DateTime<Utc>,
) -> &'a mut MonthKpis {
    out.entry((prison.to_string(), month(t)))
        .or_insert_with(|| MonthKpis {
            prison: prison.to_string(),
            month: month(t),
            ..Default::default()
        })
}

fn month(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// Folds episode facts into KPIs per (prison, month) for dates in `[from, to]` as known at
/// `now`. `prison` keeps only what counts for that prison (see the module's attribution).
/// Each episode must appear once.
pub fn kpis(
    facts: impl IntoIterator<Item = EpisodeFacts>,
    prison: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<MonthKpis> {
    let mut out: BTreeMap<(String, String), MonthKpis> = BTreeMap::new();
    let in_range = |t: DateTime<Utc>| t.date_naive() >= from && t.date_naive() <= to;
    let wanted = |p: &str| prison.is_none_or(|q| q == p);
    for f in facts {
        for r in f.referrals.iter() {
            if !in_range(r.received_at) || !wanted(&r.prison) {
                continue;
            }
            let m = slot(&mut out, &r.prison, r.received_at);
            *m.referrals_by_source.entry(r.referrer).or_default() += 1;
            if let (Some(d), ReferralState::Accepted | ReferralState::Declined) =
                (r.decided_at, r.state)
            {
                m.triage_hours
                    .push((d - r.received_at).num_seconds() as f64 / 3600.0);
            }
        }
        if let Some((r, p)) = f.release() {
            if in_range(r) && wanted(p) {
                count_release(slot(&mut out, p, r), &f, r, now);
            }
        }
        for s in f.signposts.iter() {
            let p = f.prison_at(s.made_at);
            if in_range(s.made_at) && wanted(p) {
                slot(&mut out, p, s.made_at)
                    .signposting_conversion
                    .entry(s.service_type)
                    .or_default()
                    .count(converted(s.outcome));
            }
        }
        if let Some(c) = f.closed_at {
            let p = f.prison_at(c);
            if in_range(c) && wanted(p) {
                let reason = f
                    .close_reason
                    .map_or("NOT_ACCEPTED".to_string(), |r| r.as_str().to_string());
                *slot(&mut out, p, c)
                    .closure_reasons
                    .entry(reason)
                    .or_default() += 1;
            }
        }
    }
    out.into_values().collect()
}

/// One episode's release `r` in the release-based measures of `m`.
fn count_release(m: &mut MonthKpis, f: &EpisodeFacts, r: DateTime<Utc>, now: DateTime<Utc>) {
    // A transfer to a secure hospital is not a release to the community (the journey
    // records none for it; older records may).
    if f.release_reason == Some(ReleaseReason::ReleasedToHospital) {
        return;
    }
    if f.accepted_at.is_none() {
        // Declined or withdrawn: never the service's case. Awaiting triage: not yet known.
        if f.awaiting_triage() {
            for ratio in m.release_ratios() {
                ratio.pending += 1;
            }
        }
        return;
    }
    m.assessed_before_release
        .count(f.first_assessed_at.is_some_and(|a| a <= r));
    m.released_with_plan.count(f.plan_at_release);
    let back_by = |end: DateTime<Utc>| f.returned_to_custody_at.is_some_and(|b| b <= end);
    let h72 = r + contact_window();
    if !back_by(h72) {
        let contacted = f.first_contact_at.is_some_and(|c| c <= h72);
        m.contacted_within_72h.once_closed(now, h72, contacted);
    }
    m.met_at_gate
        .once_closed(now, r + gate_closes(), f.gate_contact_at.is_some());
    let d28 = r + gp_window();
    if !back_by(d28) {
        let registered = f.gp_registered_at.is_some_and(|g| g <= d28);
        m.gp_registered_within_28d.once_closed(now, d28, registered);
    }
}
