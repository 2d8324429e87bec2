//! Episodes and referrals: a referral opens an episode (or joins the open one), triage
//! accepts, declines or withdraws it, and the episode closes and may be reopened. A new
//! referral after closure opens a new episode; the journey keeps every one.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::*;
use throughcare_events::RecordedEvent;

use super::flags::FlagCode;
use super::parts::{Consent, ReleaseDate, Status};
use super::Journey;

/// One contact made with the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub at: DateTime<Utc>,
    pub channel: ContactChannel,
}

/// The state of one referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReferralState {
    Pending,
    Accepted,
    Declined,
    Withdrawn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Referral {
    pub referral_id: String,
    pub referrer: ReferrerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub prison: String,
    pub received_at: DateTime<Utc>,
    pub state: ReferralState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    pub vulnerabilities: Vec<Vulnerability>,
    /// Received more than 12 weeks before the expected release or more than 28 days after
    /// release (the RECONNECT referral window).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_window: bool,
}

/// One episode of support: from a referral to closure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub number: u32,
    pub opened_at: DateTime<Utc>,
    pub referrals: Vec<Referral>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_assessed_at: Option<DateTime<Utc>>,
    /// The episode's first release to the community (a hospital transfer is not one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_at: Option<DateTime<Utc>>,
    /// Prison the episode's first release was from, and why (for the KPIs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<ReleaseReason>,
    /// Whether a plan existed when the person was first released in this episode.
    #[serde(default)]
    pub plan_at_release: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned_to_custody_at: Option<DateTime<Utc>>,
    /// When the person was first transferred to a secure hospital in this episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_contact_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gp_registered_at: Option<DateTime<Utc>>,
    /// Every contact.made of the episode (occurred time), so that a release reported late
    /// still finds the contacts that followed it.
    #[serde(default)]
    pub contacts: Vec<ContactRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<CloseReason>,
}

/// A referral may come up to 12 weeks before release ...
const BEFORE_RELEASE: Duration = Duration::weeks(12);
/// ... or up to 28 days after it.
pub(super) const AFTER_RELEASE: Duration = Duration::days(28);

impl Episode {
    fn new(number: u32, opened_at: DateTime<Utc>, referral: Referral) -> Self {
        Episode {
            number,
            opened_at,
            referrals: vec![referral],
            accepted_at: None,
            first_assessed_at: None,
            released_at: None,
            first_contact_at: None,
            released_from: None,
            release_reason: None,
            plan_at_release: false,
            returned_to_custody_at: None,
            hospital_at: None,
            gate_contact_at: None,
            gp_registered_at: None,
            contacts: Vec::new(),
            closed_at: None,
            close_reason: None,
        }
    }

    /// Sets the first contact after release and the gate meeting (a GATE contact from 12
    /// hours before to 24 hours after release) from the contacts, by occurred time.
    pub(super) fn settle_contacts(&mut self) {
        let Some(r) = self.released_at else { return };
        self.first_contact_at = self
            .contacts
            .iter()
            .map(|c| c.at)
            .filter(|at| *at >= r)
            .min();
        self.gate_contact_at = self
            .contacts
            .iter()
            .filter(|c| c.channel == ContactChannel::Gate)
            .map(|c| c.at)
            .filter(|at| *at >= r - Duration::hours(12) && *at <= r + Duration::hours(24))
            .min();
    }
}

impl Journey {
    pub(super) fn referral_received(&mut self, d: &ReferralReceived, e: &RecordedEvent) {
        let t = e.event.time;
        self.vulnerabilities
            .extend(d.vulnerabilities.iter().copied());
        let community = self.in_community();
        if community.is_none() {
            // Referred while in prison: that is where the person is, and the referrer's
            // expected date stands in until the prison systems give one.
            if !self.in_hospital {
                self.prison = Some(d.prison.to_string());
            }
            self.in_custody = true;
            if let Some(date) = d.expected_release_date {
                self.expected_by_referral(date, t);
            }
        }
        // A referral after release (allowed up to 28 days) leaves the person where they are.
        let outside = match community {
            Some(released) => t > released + AFTER_RELEASE,
            None => self
                .release_date
                .as_ref()
                .is_some_and(|rd| t.date_naive() < rd.date - BEFORE_RELEASE),
        };
        let referral = Referral {
            referral_id: d.referral_id.clone(),
            referrer: d.referrer.kind,
            org: d.referrer.org.clone(),
            prison: d.prison.to_string(),
            received_at: t,
            state: ReferralState::Pending,
            decided_at: None,
            vulnerabilities: d.vulnerabilities.clone(),
            outside_window: outside,
        };
        if self.status.is_open() {
            if let Some(ep) = self.episode_mut() {
                ep.referrals.push(referral);
            }
            if outside {
                self.raise(FlagCode::OutsideReferralWindow, e);
            }
            return;
        }
        // A new episode: what belonged to the last one is history now.
        let number = self.episodes.len() as u32 + 1;
        let mut ep = Episode::new(number, t, referral);
        if let Some(released) = community.filter(|r| t <= *r + AFTER_RELEASE) {
            // Referred within 28 days of a release: that release is the episode's.
            ep.released_at = Some(released);
            ep.released_from = self.prison.clone();
            ep.release_reason = Some(ReleaseReason::Released);
        }
        self.episodes.push(ep);
        if number > 1 {
            self.worker = None;
            self.plan = None;
            self.needs.clear();
            self.engagement = None;
            self.consent = Consent::default();
            self.support_extended_until = None;
            self.clear_for_new_episode(e);
        }
        if outside {
            self.raise(FlagCode::OutsideReferralWindow, e);
        }
        self.status = Status::Referred;
    }

    /// A referral's expected release date counts as a conditional release date when the
    /// prison systems have not given a release date.
    fn expected_by_referral(&mut self, date: chrono::NaiveDate, at: DateTime<Utc>) {
        if self.release_date.is_none() {
            self.add_release_date(ReleaseDate {
                date,
                date_type: ReleaseDateType::Crd,
                set_at: Some(at),
                current: true,
                from_referral: true,
            });
        }
    }

    pub(super) fn referral_accepted(&mut self, referral_id: &str, e: &RecordedEvent) {
        let t = e.event.time;
        self.set_referral_state(referral_id, ReferralState::Accepted, t);
        // The release that had no referral now has an accepted one.
        self.clear(FlagCode::ReleasedWithoutReferral, e);
        if self.status == Status::Referred {
            if let Some(ep) = self.episode_mut() {
                ep.accepted_at = Some(t);
            }
            self.status = self.accepted_status();
        }
    }

    /// A declined or withdrawn referral closes a case that was never accepted once no
    /// other referral of the episode is still pending.
    pub(super) fn referral_ended(
        &mut self,
        referral_id: &str,
        state: ReferralState,
        t: DateTime<Utc>,
    ) {
        self.set_referral_state(referral_id, state, t);
        let pending = self.episode().is_some_and(|ep| {
            ep.referrals
                .iter()
                .any(|r| r.state == ReferralState::Pending)
        });
        if self.status == Status::Referred && !pending {
            self.close(t, None);
        }
    }

    fn set_referral_state(&mut self, referral_id: &str, state: ReferralState, at: DateTime<Utc>) {
        if let Some(r) = self.episode_mut().and_then(|ep| {
            ep.referrals
                .iter_mut()
                .find(|r| r.referral_id == referral_id)
        }) {
            r.state = state;
            r.decided_at = Some(at);
        }
    }

    pub(super) fn close(&mut self, at: DateTime<Utc>, reason: Option<CloseReason>) {
        self.status = Status::Closed;
        if let Some(ep) = self.episode_mut() {
            ep.closed_at = Some(at);
            ep.close_reason = reason;
        }
    }

    pub(super) fn reopen(&mut self) {
        if let Some(ep) = self.episode_mut() {
            ep.closed_at = None;
            ep.close_reason = None;
        }
        self.status = if self.in_community().is_some() {
            // reopened in the community: back to finding the person
            self.engagement = None;
            Status::SeekingContact
        } else {
            self.accepted_status()
        };
    }

    /// The status an accepted case has in its current circumstances.
    pub(super) fn accepted_status(&self) -> Status {
        if self.in_community().is_some() {
            match self.engagement {
                Some(EngagementStatus::Engaged) => Status::Engaged,
                Some(_) => Status::Disengaged,
                None => Status::SeekingContact,
            }
        } else if self.in_hospital {
            Status::InHospital
        } else if self.worker.is_some() {
            Status::PreRelease
        } else {
            Status::Accepted
        }
    }
}
