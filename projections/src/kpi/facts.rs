//! What the KPIs keep of one episode (`EpisodeFacts`), and where each part of it counts
//! (attribution). Derived from the journey; the projector stores one record per episode,
//! keyed by every prison it counts for.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::{
    CloseReason, ReferrerKind, ReleaseReason, ServiceType, SignpostOutcome,
};
use throughcare_events::PersonId;

use crate::journey::{Journey, ReferralState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferralFact {
    pub received_at: DateTime<Utc>,
    pub referrer: ReferrerKind,
    /// The prison the referral named: referral-based KPIs count for it.
    pub prison: String,
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
    pub opened_at: DateTime<Utc>,
    pub referrals: Vec<ReferralFact>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    /// The prison of the episode's first release: release-based KPIs count for it.
    pub released_from: Option<String>,
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
                opened_at: ep.opened_at,
                referrals: ep
                    .referrals
                    .iter()
                    .map(|r| ReferralFact {
                        received_at: r.received_at,
                        referrer: r.referrer,
                        prison: r.prison.clone(),
                        state: r.state,
                        decided_at: r.decided_at,
                    })
                    .collect(),
                accepted_at: ep.accepted_at,
                released_at: ep.released_at,
                released_from: ep.released_from.clone(),
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

    /// The prison of the episode's first referral.
    pub fn referral_prison(&self) -> &str {
        self.referrals.first().map_or("", |r| r.prison.as_str())
    }

    /// The episode's release and the prison that released the person, when the episode
    /// was open at it (an episode opened by a referral after the release has no release
    /// of its own to prepare for). Release-based KPIs count for that prison.
    pub fn release(&self) -> Option<(DateTime<Utc>, &str)> {
        let r = self.released_at.filter(|r| self.opened_at <= *r)?;
        let prison = self
            .released_from
            .as_deref()
            .unwrap_or_else(|| self.referral_prison());
        Some((r, prison))
    }

    /// Where something that happened at `t` (a signpost, the closure) counts: the prison
    /// of the first referral before the release, the releasing prison from it on.
    pub fn prison_at(&self, t: DateTime<Utc>) -> &str {
        match self.release() {
            Some((r, p)) if t >= r => p,
            _ => self.referral_prison(),
        }
    }

    /// Every prison some KPI of the episode counts for (the projector keys the record by
    /// each, so that one prison's query finds all it needs).
    pub fn prisons(&self) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.referrals.iter().map(|r| r.prison.as_str()).collect();
        out.extend(self.release().map(|(_, p)| p));
        out.remove("");
        out
    }

    /// Whether a referral of the episode may still be accepted (none accepted yet, one
    /// still awaiting triage).
    pub fn awaiting_triage(&self) -> bool {
        self.accepted_at.is_none()
            && self
                .referrals
                .iter()
                .any(|r| r.state == ReferralState::Pending)
    }
}
