//! Service KPIs per prison and month, computed from per-episode facts. The projector
//! stores one `EpisodeFacts` per episode; a query folds them into `MonthKpis` against a
//! query time passed in (outcomes whose window has not closed yet are left out).
//!
//! Attribution: every KPI of an episode counts for the prison of the episode's first
//! referral. Referrals count in the month they were received, release-based KPIs in the
//! month of release, signposts in the month they were made, closures in the month closed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use throughcare_events::catalogue::{
    CloseReason, ReferrerKind, ReleaseReason, ServiceType, SignpostOutcome,
};
use throughcare_events::PersonId;

use crate::journey::{Journey, ReferralState};

/// Counts under this are shown as "<5" wherever a commissioner could see them.
pub const SUPPRESS_BELOW: u64 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralFact {
    pub received_at: DateTime<Utc>,
    pub referrer: ReferrerKind,
    pub state: ReferralState,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignpostFact {
    pub made_at: DateTime<Utc>,
    pub service_type: ServiceType,
    pub outcome: Option<SignpostOutcome>,
}

/// What the KPIs need to know about one episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeFacts {
    pub person_id: PersonId,
    pub episode: u32,
    pub prison: String,
    pub referrals: Vec<ReferralFact>,
    pub released_at: Option<DateTime<Utc>>,
    pub release_reason: Option<ReleaseReason>,
    pub returned_to_custody_at: Option<DateTime<Utc>>,
    pub first_assessed_at: Option<DateTime<Utc>>,
    pub plan_at_release: bool,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub gate_contact_at: Option<DateTime<Utc>>,
    pub gp_registered_at: Option<DateTime<Utc>>,
    pub signposts: Vec<SignpostFact>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
}

impl EpisodeFacts {
    /// One record per episode of the journey.
    pub fn of(j: &Journey) -> Vec<EpisodeFacts> {
        j.episodes
            .iter()
            .map(|ep| EpisodeFacts {
                person_id: j.person_id,
                episode: ep.number,
                prison: ep
                    .referrals
                    .first()
                    .map(|r| r.prison.clone())
                    .unwrap_or_default(),
                referrals: ep
                    .referrals
                    .iter()
                    .map(|r| ReferralFact {
                        received_at: r.received_at,
                        referrer: r.referrer,
                        state: r.state,
                        decided_at: r.decided_at,
                    })
                    .collect(),
                released_at: ep.released_at,
                release_reason: ep.release_reason,
                returned_to_custody_at: ep.returned_to_custody_at,
                first_assessed_at: ep.first_assessed_at,
                plan_at_release: ep.plan_at_release,
                first_contact_at: ep.first_contact_at,
                gate_contact_at: ep.gate_contact_at,
                gp_registered_at: ep.gp_registered_at,
                signposts: j
                    .signposts
                    .iter()
                    .filter(|s| s.episode == ep.number)
                    .map(|s| SignpostFact {
                        made_at: s.made_at,
                        service_type: s.service_type,
                        outcome: s.outcome,
                    })
                    .collect(),
                closed_at: ep.closed_at,
                close_reason: ep.close_reason,
            })
            .collect()
    }
}

/// A rate's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
}

impl Ratio {
    fn count(&mut self, hit: bool) {
        self.denominator += 1;
        self.numerator += u64::from(hit);
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
/// `now`. `prison` filters by the episode's prison.
pub fn kpis(
    facts: impl IntoIterator<Item = EpisodeFacts>,
    prison: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<MonthKpis> {
    let mut out: BTreeMap<(String, String), MonthKpis> = BTreeMap::new();
    let in_range = |t: DateTime<Utc>| t.date_naive() >= from && t.date_naive() <= to;
    for f in facts {
        if prison.is_some_and(|p| p != f.prison) {
            continue;
        }
        for r in f.referrals.iter().filter(|r| in_range(r.received_at)) {
            let m = slot(&mut out, &f.prison, r.received_at);
            *m.referrals_by_source.entry(r.referrer).or_default() += 1;
            if let (Some(d), ReferralState::Accepted | ReferralState::Declined) =
                (r.decided_at, r.state)
            {
                m.triage_hours
                    .push((d - r.received_at).num_seconds() as f64 / 3600.0);
            }
        }
        if let Some(r) = f.released_at.filter(|r| in_range(*r)) {
            let hospital = f.release_reason == Some(ReleaseReason::ReleasedToHospital);
            let m = slot(&mut out, &f.prison, r);
            m.assessed_before_release
                .count(f.first_assessed_at.is_some_and(|a| a <= r));
            m.released_with_plan.count(f.plan_at_release);
            let back_within_72h = f
                .returned_to_custody_at
                .is_some_and(|b| b <= r + Duration::hours(72));
            let contacted = f
                .first_contact_at
                .is_some_and(|c| c <= r + Duration::hours(72));
            // Still inside the window and not yet contacted: not decided yet.
            let pending_72h = now < r + Duration::hours(72) && !contacted;
            if !hospital && !back_within_72h && !pending_72h {
                m.contacted_within_72h.count(contacted);
            }
            if !hospital {
                m.met_at_gate.count(f.gate_contact_at.is_some());
            }
            let gp = f
                .gp_registered_at
                .is_some_and(|g| g <= r + Duration::days(28));
            let pending_28d = now < r + Duration::days(28) && !gp;
            if !hospital && !pending_28d {
                m.gp_registered_within_28d.count(gp);
            }
        }
        for s in f.signposts.iter().filter(|s| in_range(s.made_at)) {
            slot(&mut out, &f.prison, s.made_at)
                .signposting_conversion
                .entry(s.service_type)
                .or_default()
                .count(converted(s.outcome));
        }
        if let Some(c) = f.closed_at.filter(|c| in_range(*c)) {
            let reason = f
                .close_reason
                .map_or("NOT_ACCEPTED".to_string(), |r| r.as_str().to_string());
            *slot(&mut out, &f.prison, c)
                .closure_reasons
                .entry(reason)
                .or_default() += 1;
        }
    }
    out.into_values().collect()
}

/// A count as a commissioner may see it: "<5" for 1 to 4.
pub fn shown(n: u64) -> Value {
    if n > 0 && n < SUPPRESS_BELOW {
        json!("<5")
    } else {
        json!(n)
    }
}

fn shown_ratio(r: Ratio) -> Value {
    let suppressed = (r.numerator > 0 && r.numerator < SUPPRESS_BELOW)
        || (r.denominator > 0 && r.denominator < SUPPRESS_BELOW);
    let rate = if suppressed || r.denominator == 0 {
        Value::Null
    } else {
        json!((r.numerator as f64 / r.denominator as f64 * 1000.0).round() / 1000.0)
    };
    json!({ "numerator": shown(r.numerator), "denominator": shown(r.denominator), "rate": rate, "suppressed": suppressed })
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

impl MonthKpis {
    /// The KPIs as published: small counts suppressed, each rate beside its parts.
    pub fn published(&self) -> Value {
        let triage = if self.triage_hours.len() as u64 >= SUPPRESS_BELOW {
            median(&self.triage_hours).map(|h| (h * 10.0).round() / 10.0)
        } else {
            None
        };
        json!({
            "prison": self.prison,
            "month": self.month,
            "referrals_total": shown(self.referrals_by_source.values().sum()),
            "referrals_by_source": self.referrals_by_source.iter().map(|(k, v)| (k.as_str(), shown(*v))).collect::<BTreeMap<_, _>>(),
            "median_hours_referral_to_triage": { "value": triage, "referrals_triaged": shown(self.triage_hours.len() as u64) },
            "assessed_before_release": shown_ratio(self.assessed_before_release),
            "released_with_plan": shown_ratio(self.released_with_plan),
            "contacted_within_72h_of_release": shown_ratio(self.contacted_within_72h),
            "met_at_gate": shown_ratio(self.met_at_gate),
            "gp_registered_within_28d_of_release": shown_ratio(self.gp_registered_within_28d),
            "signposting_conversion": self.signposting_conversion.iter().map(|(k, r)| (k.as_str(), shown_ratio(*r))).collect::<BTreeMap<_, _>>(),
            "closure_reasons": self.closure_reasons.iter().map(|(k, v)| (k.clone(), shown(*v))).collect::<BTreeMap<_, _>>(),
        })
    }
}
