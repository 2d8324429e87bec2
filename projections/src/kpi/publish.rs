//! Statistical disclosure control of published KPIs: what a commissioner may see.
//!
//! - Primary suppression: a count from 1 to 4 is shown as `"<5"`.
//! - Secondary suppression: where a published total would let a suppressed count be
//!   worked back (the total less the cells shown beside it), the next-smallest cell is
//!   withheld too (`"*"`), and again until at least two cells are withheld and they add
//!   up to at least 5. The rows with a total: referrals by source beside the referrals
//!   total, and every rate, whose denominator is the total of those who met the measure
//!   (the numerator) and those who did not (the complement, never shown but implied).
//! - A rate is withheld whenever its numerator, its denominator or their difference is
//!   from 1 to 4: it would give the small count away.
//!
//! Rounding totals to the nearest 5 was the alternative; withholding keeps every shown
//! figure exact (a commissioner can add them up) and keeps rates on exact counts.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{MonthKpis, Ratio};

/// Counts under this are shown as "<5" wherever a commissioner could see them.
pub const SUPPRESS_BELOW: u64 = 5;

/// How a count withheld by secondary suppression is shown.
pub const WITHHELD: &str = "*";

/// The rule, in words, for the published answer.
pub const SUPPRESSION: &str = "counts from 1 to 4 are shown as \"<5\"; where a total would give such a count away, the next-smallest count is withheld too and shown as \"*\"; a rate is withheld when its numerator, denominator or their difference is from 1 to 4";

fn small(n: u64) -> bool {
    n > 0 && n < SUPPRESS_BELOW
}

/// A count as a commissioner may see it: "<5" for 1 to 4.
pub fn shown(n: u64) -> Value {
    if small(n) {
        json!("<5")
    } else {
        json!(n)
    }
}

/// The cells of a row whose total is published, each shown, "<5", or withheld ("*") so
/// that no suppressed cell is the total less the cells shown.
fn row(cells: &[u64]) -> Vec<Value> {
    let total: u64 = cells.iter().sum();
    let mut withheld: Vec<bool> = cells.iter().map(|&n| small(n)).collect();
    let mut secondary = vec![false; cells.len()];
    // A total that is itself "<5" (or 0) gives nothing away.
    if !small(total) && withheld.iter().any(|w| *w) {
        loop {
            let (count, sum) = cells
                .iter()
                .zip(&withheld)
                .filter(|(_, w)| **w)
                .fold((0, 0), |(c, s), (n, _)| (c + 1, s + n));
            if count >= 2 && sum >= SUPPRESS_BELOW {
                break;
            }
            let next = (0..cells.len())
                .filter(|&i| !withheld[i] && cells[i] > 0)
                .min_by_key(|&i| cells[i]);
            let Some(i) = next else { break };
            withheld[i] = true;
            secondary[i] = true;
        }
    }
    cells
        .iter()
        .zip(secondary)
        .map(|(&n, s)| if s { json!(WITHHELD) } else { shown(n) })
        .collect()
}

fn shown_ratio(r: Ratio) -> Value {
    let miss = r.denominator - r.numerator;
    let suppressed = small(r.numerator) || small(r.denominator) || small(miss);
    let rate = if suppressed || r.denominator == 0 {
        Value::Null
    } else {
        json!((r.numerator as f64 / r.denominator as f64 * 1000.0).round() / 1000.0)
    };
    let numerator = row(&[r.numerator, miss]).swap_remove(0);
    json!({
        "numerator": numerator,
        "denominator": shown(r.denominator),
        "rate": rate,
        "suppressed": suppressed,
        "pending": shown(r.pending),
    })
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
    /// The KPIs as published: small counts suppressed (primary and secondary), each rate
    /// beside its parts and the episodes still pending.
    pub fn published(&self) -> Value {
        let triage = if self.triage_hours.len() as u64 >= SUPPRESS_BELOW {
            median(&self.triage_hours).map(|h| (h * 10.0).round() / 10.0)
        } else {
            None
        };
        let by_source: Vec<u64> = self.referrals_by_source.values().copied().collect();
        let by_source: BTreeMap<&str, Value> = self
            .referrals_by_source
            .keys()
            .map(|k| k.as_str())
            .zip(row(&by_source))
            .collect();
        json!({
            "prison": self.prison,
            "month": self.month,
            "referrals_total": shown(self.referrals_by_source.values().sum()),
            "referrals_by_source": by_source,
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
