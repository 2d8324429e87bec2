//! The small parts of a stored journey: the status, identifiers, worker, consent, release
//! dates, plan, signposts and safeguarding concerns. Plain data; the rules that change
//! them are in the sibling modules and in [`crate::decide`].

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::*;
use throughcare_events::PersonRef;

/// Where a case stands (DESIGN.md, case lifecycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Known to the ledger (e.g. a release fact) but never referred.
    NotReferred,
    Referred,
    Accepted,
    /// Accepted and allocated to a worker while still in prison.
    PreRelease,
    SeekingContact,
    Engaged,
    Disengaged,
    InCustody,
    Closed,
    /// Transferred from prison to a secure hospital (RELEASED_TO_HOSPITAL): still
    /// detained, not in the community, until a later release, return or closure.
    InHospital,
}

impl Status {
    /// Whether a case is open (support can be given).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::NotReferred | Status::Closed)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Identifiers {
    pub nomis: BTreeSet<String>,
    pub nhs_number: BTreeSet<String>,
    pub crn: BTreeSet<String>,
}

impl Identifiers {
    pub(crate) fn add(&mut self, p: &PersonRef) {
        // Most events name identifiers the journey has already: no copy for those.
        fn put(set: &mut BTreeSet<String>, v: &str) {
            if !set.contains(v) {
                set.insert(v.to_owned());
            }
        }
        if let Some(n) = &p.nomis {
            put(&mut self.nomis, n.as_str());
        }
        if let Some(n) = &p.nhs_number {
            put(&mut self.nhs_number, n.as_str());
        }
        if let Some(c) = &p.crn {
            put(&mut self.crn, c.as_str());
        }
    }
    /// Every identifier as `kind:value` (the form of the identity index).
    pub fn all(&self) -> Vec<String> {
        let f = |k: &str, s: &BTreeSet<String>| {
            s.iter().map(|v| format!("{k}:{v}")).collect::<Vec<_>>()
        };
        [
            f("nomis", &self.nomis),
            f("nhs", &self.nhs_number),
            f("crn", &self.crn),
        ]
        .concat()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    pub worker_id: String,
    pub role: WorkerRole,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Consent {
    pub engage: bool,
    pub share_with: BTreeSet<String>,
}

/// One release date as reported, with its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseDate {
    pub date: NaiveDate,
    pub date_type: ReleaseDateType,
    /// When it was reported (occurred time of the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_at: Option<DateTime<Utc>>,
    /// Whether it belongs to the current time in custody; a release makes the dates of
    /// that sentence history (a recall brings new ones).
    #[serde(default)]
    pub current: bool,
    /// Taken from a referral's expected release date, not from the prison systems.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_referral: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub agreed_at: DateTime<Utc>,
    pub actions: Vec<PlanAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_review: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signpost {
    /// The episode it was made in.
    #[serde(default)]
    pub episode: u32,
    pub signpost_id: String,
    pub service_type: ServiceType,
    pub org: String,
    pub mode: SignpostMode,
    pub made_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SignpostOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Safeguarding {
    pub category: SafeguardingCategory,
    pub referred_to: String,
    pub raised_at: DateTime<Utc>,
}
