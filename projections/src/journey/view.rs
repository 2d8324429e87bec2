//! The journey as the API serves it at a query time: its own type, built field by field
//! from the stored journey, so that the stored document (with its kept history) can change
//! shape without the API changing, and the history never leaves the server this way.
//! Time-based flags are computed here against the `now` passed in, never the clock.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use throughcare_events::catalogue::*;
use throughcare_events::PersonId;

use super::episode::{ContactRecord, Episode, Referral};
use super::flags::{Flag, FlagCode};
use super::parts::*;
use super::timeline::TimelineEntry;
use super::Journey;

/// A journey as served: what is known of the person and the case, with what depends on
/// the query time (time-based flags, the support window, the events allowed now).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyView {
    pub person_id: PersonId,
    pub version: u64,
    pub status: Status,
    pub identifiers: Identifiers,
    pub in_custody: bool,
    pub in_hospital: bool,
    pub prison: Option<String>,
    /// The release date by HMPPS precedence, for the current time in custody.
    pub release_date: Option<ReleaseDate>,
    /// Every release date reported, with its kind.
    pub release_dates: Vec<ReleaseDate>,
    pub released_at: Option<DateTime<Utc>>,
    pub release_reason: Option<ReleaseReason>,
    pub local_authority: Option<String>,
    pub worker: Option<Worker>,
    pub consent: Consent,
    pub vulnerabilities: BTreeSet<Vulnerability>,
    pub needs: Vec<Need>,
    pub plan: Option<Plan>,
    pub signposts: Vec<Signpost>,
    pub safeguarding: Vec<Safeguarding>,
    pub engagement: Option<EngagementStatus>,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub support_extended_until: Option<NaiveDate>,
    /// Stored flags (raised and cleared by events) and the time-based ones at `as_of`.
    pub flags: Vec<Flag>,
    pub episodes: Vec<EpisodeView>,
    pub timeline: Vec<TimelineEntry>,
    pub as_of: DateTime<Utc>,
    pub support_start: Option<NaiveDate>,
    pub support_end: Option<NaiveDate>,
    pub active_flags: BTreeSet<FlagCode>,
    pub allowed_events: Vec<&'static str>,
}

/// One episode as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeView {
    pub number: u32,
    pub opened_at: DateTime<Utc>,
    pub referrals: Vec<Referral>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub first_assessed_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub released_from: Option<String>,
    pub release_reason: Option<ReleaseReason>,
    pub hospital_at: Option<DateTime<Utc>>,
    pub plan_at_release: bool,
    pub first_contact_at: Option<DateTime<Utc>>,
    pub gate_contact_at: Option<DateTime<Utc>>,
    pub gp_registered_at: Option<DateTime<Utc>>,
    pub returned_to_custody_at: Option<DateTime<Utc>>,
    pub contacts: Vec<ContactRecord>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<CloseReason>,
}

impl EpisodeView {
    fn of(ep: &Episode) -> Self {
        EpisodeView {
            number: ep.number,
            opened_at: ep.opened_at,
            referrals: ep.referrals.clone(),
            accepted_at: ep.accepted_at,
            first_assessed_at: ep.first_assessed_at,
            released_at: ep.released_at,
            released_from: ep.released_from.clone(),
            release_reason: ep.release_reason,
            hospital_at: ep.hospital_at,
            plan_at_release: ep.plan_at_release,
            first_contact_at: ep.first_contact_at,
            gate_contact_at: ep.gate_contact_at,
            gp_registered_at: ep.gp_registered_at,
            returned_to_custody_at: ep.returned_to_custody_at,
            contacts: ep.contacts.clone(),
            closed_at: ep.closed_at,
            close_reason: ep.close_reason,
        }
    }
}

impl Journey {
    /// The journey as shown at `now`: the time-based flags added to the stored ones.
    /// `now` is the caller's clock; the fold never reads one.
    pub fn view(&self, now: DateTime<Utc>) -> JourneyView {
        let mut flags = self.flags.clone();
        flags.extend(self.time_flags(now));
        let active_flags = flags
            .iter()
            .filter(|f| f.is_active())
            .map(|f| f.code)
            .collect();
        JourneyView {
            person_id: self.person_id,
            version: self.version,
            status: self.status,
            identifiers: self.identifiers.clone(),
            in_custody: self.in_custody,
            in_hospital: self.in_hospital,
            prison: self.prison.clone(),
            release_date: self.release_date.clone(),
            release_dates: self.release_dates.clone(),
            released_at: self.released_at,
            release_reason: self.release_reason,
            local_authority: self.local_authority.clone(),
            worker: self.worker.clone(),
            consent: self.consent.clone(),
            vulnerabilities: self.vulnerabilities.clone(),
            needs: self.needs.clone(),
            plan: self.plan.clone(),
            signposts: self.signposts.clone(),
            safeguarding: self.safeguarding.clone(),
            engagement: self.engagement,
            last_contact_at: self.last_contact_at,
            support_extended_until: self.support_extended_until,
            flags,
            episodes: self.episodes.iter().map(EpisodeView::of).collect(),
            timeline: self.timeline.clone(),
            as_of: now,
            support_start: self.support_start(),
            support_end: self.support_end(),
            active_flags,
            allowed_events: crate::decide::allowed(self)
                .iter()
                .map(|t| t.as_str())
                .collect(),
        }
    }
}
