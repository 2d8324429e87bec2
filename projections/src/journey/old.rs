//! The journey: one person's path from referral in prison to support in the community,
//! folded from their recorded events. `apply` cannot fail and holds no rules; the rules
//! live in [`crate::decide`]. Time-based flags are computed by [`Journey::view`] against a
//! query time passed in, never the wall clock.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::*;
use throughcare_events::{EventData, EventType, PersonId, PersonRef, RecordedEvent};

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
}

impl Status {
    /// Whether a case is open (support can be given).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::NotReferred | Status::Closed)
    }
}

/// Flags raised on a journey by unexpected facts or by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlagCode {
    ReleasedWithoutReferral,
    ReleaseDateChanged,
    NoPlanAtRelease,
    #[serde(rename = "NO_CONTACT_72H")]
    NoContact72h,
    #[serde(rename = "NOT_GP_REGISTERED_28D")]
    NotGpRegistered28d,
    PastSupportEnd,
    UnallocatedNearRelease,
    /// A release was reported for someone the ledger did not have in custody.
    ReleasedWhileNotInCustody,
    /// A transfer named a different prison from the one the ledger had.
    TransferFromUnexpectedPrison,
    SafeguardingRaised,
}

/// One flag with the event that raised it and, once cleared, the event that cleared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub code: FlagCode,
    /// Position of the event that raised it (none for time-based flags).
    pub raised_by: Option<u64>,
    pub raised_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_by: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_at: Option<DateTime<Utc>>,
}

/// One contact made with the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub at: DateTime<Utc>,
    pub channel: ContactChannel,
}

impl Episode {
    /// Sets the first contact after release and the gate meeting (a GATE contact from 12
    /// hours before to 24 hours after release) from the contacts, by occurred time.
    fn settle_contacts(&mut self) {
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
}

/// One episode of support: from a referral to closure. A new referral after closure opens
/// a new episode; the journey keeps all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub number: u32,
    pub opened_at: DateTime<Utc>,
    pub referrals: Vec<Referral>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_assessed_at: Option<DateTime<Utc>>,
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

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Identifiers {
    pub nomis: BTreeSet<String>,
    pub nhs_number: BTreeSet<String>,
    pub crn: BTreeSet<String>,
}

impl Identifiers {
    fn add(&mut self, p: &PersonRef) {
        if let Some(n) = &p.nomis {
            self.nomis.insert(n.to_string());
        }
        if let Some(n) = &p.nhs_number {
            self.nhs_number.insert(n.to_string());
        }
        if let Some(c) = &p.crn {
            self.crn.insert(c.to_string());
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseDate {
    pub date: NaiveDate,
    pub date_type: ReleaseDateType,
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

/// One line of the timeline: what happened (occurred_at) and when the ledger learnt it
/// (recorded_at), so a late report shows both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub position: u64,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub summary: String,
    /// Set when a later `record.corrected` names this event; the event itself is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_by: Option<u64>,
}

/// The journey read model of one person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journey {
    pub person_id: PersonId,
    /// Position of the person's last event (their version).
    pub version: u64,
    pub status: Status,
    pub identifiers: Identifiers,
    pub in_custody: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prison: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<ReleaseDate>,
    /// When the person was last released (occurred time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<ReleaseReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Worker>,
    pub consent: Consent,
    pub vulnerabilities: BTreeSet<Vulnerability>,
    pub needs: Vec<Need>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    pub signposts: Vec<Signpost>,
    pub safeguarding: Vec<Safeguarding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_extended_until: Option<NaiveDate>,
    pub flags: Vec<Flag>,
    pub episodes: Vec<Episode>,
    pub timeline: Vec<TimelineEntry>,
}

impl Journey {
    pub fn new(person_id: PersonId) -> Self {
        Journey {
            person_id,
            version: 0,
            status: Status::NotReferred,
            identifiers: Identifiers::default(),
            in_custody: false,
            prison: None,
            release_date: None,
            released_at: None,
            release_reason: None,
            local_authority: None,
            worker: None,
            consent: Consent::default(),
            vulnerabilities: BTreeSet::new(),
            needs: Vec::new(),
            plan: None,
            signposts: Vec::new(),
            safeguarding: Vec::new(),
            engagement: None,
            last_contact_at: None,
            support_extended_until: None,
            flags: Vec::new(),
            episodes: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// Folds a person's events from scratch.
    pub fn fold<'a>(
        person_id: PersonId,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Self {
        let mut j = Journey::new(person_id);
        for e in events {
            j.apply(e);
        }
        j
    }

    pub fn episode(&self) -> Option<&Episode> {
        self.episodes.last()
    }
    fn episode_mut(&mut self) -> Option<&mut Episode> {
        self.episodes.last_mut()
    }

    /// The referral with this id in the current episode.
    pub fn referral(&self, referral_id: &str) -> Option<&Referral> {
        self.episode()?
            .referrals
            .iter()
            .find(|r| r.referral_id == referral_id)
    }

    pub fn signpost(&self, signpost_id: &str) -> Option<&Signpost> {
        self.signposts.iter().find(|s| s.signpost_id == signpost_id)
    }

    /// Whether an event with this (source, id) is in the person's history.
    pub fn has_event(&self, source: &str, id: &str) -> bool {
        self.timeline
            .iter()
            .any(|t| t.id == id && t.source == source)
    }

    /// The end of the support window: 6 months after release (or after the expected
    /// release while still in prison), unless extended.
    pub fn support_end(&self) -> Option<NaiveDate> {
        let base = match (self.in_custody, self.released_at, &self.release_date) {
            (false, Some(r), _) => Some(r.date_naive()),
            (_, _, Some(d)) => Some(d.date),
            _ => None,
        }?;
        let end = base.checked_add_months(Months::new(6))?;
        Some(self.support_extended_until.map_or(end, |u| u.max(end)))
    }

    /// The start of the support window: 12 weeks before the (expected) release.
    pub fn support_start(&self) -> Option<NaiveDate> {
        let release = match (self.in_custody, self.released_at, &self.release_date) {
            (false, Some(r), _) => r.date_naive(),
            (_, _, Some(d)) => d.date,
            _ => return None,
        };
        Some(release - Duration::weeks(12))
    }

    fn raise(&mut self, code: FlagCode, e: &RecordedEvent) {
        if !self
            .flags
            .iter()
            .any(|f| f.code == code && f.cleared_by.is_none())
        {
            self.flags.push(Flag {
                code,
                raised_by: Some(e.position),
                raised_at: e.event.time,
                cleared_by: None,
                cleared_at: None,
            });
        }
    }

    fn clear(&mut self, code: FlagCode, e: &RecordedEvent) {
        for f in self
            .flags
            .iter_mut()
            .filter(|f| f.code == code && f.cleared_by.is_none())
        {
            f.cleared_by = Some(e.position);
            f.cleared_at = Some(e.event.time);
        }
    }

    fn close(&mut self, at: DateTime<Utc>, reason: Option<CloseReason>) {
        self.status = Status::Closed;
        if let Some(ep) = self.episode_mut() {
            ep.closed_at = Some(at);
            ep.close_reason = reason;
        }
    }

    /// The status an accepted case has in its current circumstances.
    fn accepted_status(&self) -> Status {
        if self.released_at.is_some() && !self.in_custody {
            match self.engagement {
                Some(EngagementStatus::Engaged) => Status::Engaged,
                Some(_) => Status::Disengaged,
                None => Status::SeekingContact,
            }
        } else if self.worker.is_some() {
            Status::PreRelease
        } else {
            Status::Accepted
        }
    }

    /// Folds one recorded event in. Never fails: refused submissions are never recorded,
    /// and facts that surprise the model raise flags instead.
    pub fn apply(&mut self, e: &RecordedEvent) {
        let t = e.event.time;
        self.version = e.position;
        self.identifiers.add(e.event.data.person());
        let summary = summarise(&e.event.data);
        let open = self.status.is_open();
        match &e.event.data {
            EventData::ReferralReceived(d) => {
                let referral = Referral {
                    referral_id: d.referral_id.clone(),
                    referrer: d.referrer.kind,
                    org: d.referrer.org.clone(),
                    prison: d.prison.to_string(),
                    received_at: t,
                    state: ReferralState::Pending,
                    decided_at: None,
                    vulnerabilities: d.vulnerabilities.clone(),
                };
                self.vulnerabilities
                    .extend(d.vulnerabilities.iter().copied());
                // Referrals are made while the person is in prison.
                if self.released_at.is_none() || self.in_custody {
                    self.prison = Some(d.prison.to_string());
                    self.in_custody = true;
                }
                if let (Some(date), None) = (d.expected_release_date, &self.release_date) {
                    self.release_date = Some(ReleaseDate {
                        date,
                        date_type: ReleaseDateType::Crd,
                    });
                }
                if self.status.is_open() {
                    if let Some(ep) = self.episode_mut() {
                        ep.referrals.push(referral);
                    }
                } else {
                    // A new episode: what belonged to the last one is history now.
                    let number = self.episodes.len() as u32 + 1;
                    self.episodes.push(Episode {
                        number,
                        opened_at: t,
                        referrals: vec![referral],
                        accepted_at: None,
                        first_assessed_at: None,
                        released_at: None,
                        first_contact_at: None,
                        released_from: None,
                        release_reason: None,
                        plan_at_release: false,
                        returned_to_custody_at: None,
                        gate_contact_at: None,
                        gp_registered_at: None,
                        contacts: Vec::new(),
                        closed_at: None,
                        close_reason: None,
                    });
                    if number > 1 {
                        self.worker = None;
                        self.plan = None;
                        self.needs.clear();
                        self.engagement = None;
                        self.consent = Consent::default();
                        self.support_extended_until = None;
                    }
                    self.status = Status::Referred;
                }
            }
            EventData::ReferralAccepted(d) => {
                self.set_referral_state(&d.referral_id, ReferralState::Accepted, t);
                if self.status == Status::Referred {
                    if let Some(ep) = self.episode_mut() {
                        ep.accepted_at = Some(t);
                    }
                    self.status = self.accepted_status();
                }
            }
            EventData::ReferralDeclined(d) => {
                self.set_referral_state(&d.referral_id, ReferralState::Declined, t);
                self.close_if_no_referral_left(t);
            }
            EventData::ReferralWithdrawn(d) => {
                self.set_referral_state(&d.referral_id, ReferralState::Withdrawn, t);
                self.close_if_no_referral_left(t);
            }
            EventData::CaseAllocated(d) => {
                self.worker = Some(Worker {
                    worker_id: d.worker_id.clone(),
                    role: d.worker_role,
                    since: t,
                });
                if self.status == Status::Accepted {
                    self.status = self.accepted_status();
                }
                self.clear(FlagCode::UnallocatedNearRelease, e);
            }
            EventData::ConsentGiven(d) => match d.scope {
                ConsentScope::Engage => self.consent.engage = true,
                ConsentScope::ShareWith => {
                    self.consent
                        .share_with
                        .extend(d.orgs.iter().flatten().cloned());
                }
            },
            EventData::ConsentWithdrawn(d) => match d.scope {
                ConsentScope::Engage => {
                    self.consent.engage = false;
                    self.consent.share_with.clear();
                    if self.status.is_open() {
                        self.close(t, Some(CloseReason::ConsentWithdrawn));
                    }
                }
                ConsentScope::ShareWith => {
                    for o in d.orgs.iter().flatten() {
                        self.consent.share_with.remove(o);
                    }
                }
            },
            EventData::AssessmentCompleted(d) => {
                self.needs = d.needs.clone();
                if let Some(ep) = self.episode_mut() {
                    ep.first_assessed_at.get_or_insert(t);
                }
            }
            EventData::PlanAgreed(d) => {
                self.plan = Some(Plan {
                    agreed_at: t,
                    actions: d.actions.clone(),
                    next_review: d.next_review,
                    reviewed_at: None,
                });
            }
            EventData::PlanReviewed(d) => {
                let agreed_at = self.plan.as_ref().map_or(t, |p| p.agreed_at);
                self.plan = Some(Plan {
                    agreed_at,
                    actions: d.actions.clone(),
                    next_review: d.next_review,
                    reviewed_at: Some(t),
                });
            }
            EventData::ReleaseDateSet(d) => {
                if let Some(old) = &self.release_date {
                    if old.date != d.date {
                        self.raise(FlagCode::ReleaseDateChanged, e);
                    }
                }
                self.release_date = Some(ReleaseDate {
                    date: d.date,
                    date_type: d.date_type,
                });
            }
            EventData::PrisonerTransferred(d) => {
                if self
                    .prison
                    .as_deref()
                    .is_some_and(|p| p != d.from_prison.as_str())
                {
                    self.raise(FlagCode::TransferFromUnexpectedPrison, e);
                }
                self.prison = Some(d.to_prison.to_string());
                self.in_custody = true;
            }
            EventData::PrisonerReleased(d) => {
                if !self.status.is_open() {
                    self.raise(FlagCode::ReleasedWithoutReferral, e);
                } else if self.plan.is_none() {
                    self.raise(FlagCode::NoPlanAtRelease, e);
                }
                if self.released_at.is_some() && !self.in_custody {
                    self.raise(FlagCode::ReleasedWhileNotInCustody, e);
                }
                self.prison = Some(d.prison.to_string());
                self.in_custody = false;
                self.released_at = Some(t);
                self.release_reason = Some(d.reason);
                self.local_authority = d.local_authority.clone();
                self.engagement = None;
                let has_plan = self.plan.is_some();
                if self.status.is_open() {
                    if let Some(ep) = self.episode_mut() {
                        if ep.released_at.is_none() {
                            ep.released_at = Some(t);
                            ep.released_from = Some(d.prison.to_string());
                            ep.release_reason = Some(d.reason);
                            ep.plan_at_release = has_plan;
                            ep.settle_contacts();
                        }
                    }
                }
                if matches!(
                    self.status,
                    Status::Accepted
                        | Status::PreRelease
                        | Status::InCustody
                        | Status::SeekingContact
                ) {
                    self.status = Status::SeekingContact;
                }
            }
            EventData::PrisonerReturnedToCustody(d) => {
                if let Some(ep) = self
                    .episodes
                    .last_mut()
                    .filter(|ep| ep.released_at.is_some())
                {
                    ep.returned_to_custody_at.get_or_insert(t);
                }
                self.prison = Some(d.prison.to_string());
                self.in_custody = true;
                if matches!(
                    self.status,
                    Status::SeekingContact | Status::Engaged | Status::Disengaged
                ) {
                    self.status = Status::InCustody;
                }
            }
            EventData::IdentifiersLinked(d) => {
                let i = &d.identifiers;
                self.identifiers.add(&PersonRef {
                    person_id: None,
                    nomis: i.nomis.clone(),
                    nhs_number: i.nhs_number.clone(),
                    crn: i.crn.clone(),
                });
            }
            EventData::ContactAttempted(_) => {}
            EventData::ContactMade(d) => {
                self.last_contact_at = Some(t);
                if let Some(ep) = self.episode_mut().filter(|_| open) {
                    ep.contacts.push(ContactRecord {
                        at: t,
                        channel: d.channel,
                    });
                    ep.settle_contacts();
                }
                if self.status == Status::SeekingContact {
                    self.engagement = Some(EngagementStatus::Engaged);
                    self.status = Status::Engaged;
                }
            }
            EventData::EngagementChanged(d) => {
                self.engagement = Some(d.status);
                if matches!(
                    self.status,
                    Status::SeekingContact | Status::Engaged | Status::Disengaged
                ) {
                    self.status = self.accepted_status();
                }
            }
            EventData::SignpostingMade(d) => self.signposts.push(Signpost {
                episode: self.episodes.len() as u32,
                signpost_id: d.signpost_id.clone(),
                service_type: d.service_type,
                org: d.org.clone(),
                mode: d.mode,
                made_at: t,
                outcome: None,
                outcome_at: None,
            }),
            EventData::SignpostingOutcome(d) => {
                let mut episode = None;
                if let Some(s) = self
                    .signposts
                    .iter_mut()
                    .find(|s| s.signpost_id == d.signpost_id)
                {
                    s.outcome = Some(d.outcome);
                    s.outcome_at = Some(t);
                    episode = Some(s.episode);
                }
                if d.outcome == SignpostOutcome::GpRegistered {
                    if let Some(ep) = self
                        .episodes
                        .iter_mut()
                        .find(|ep| Some(ep.number) == episode)
                    {
                        ep.gp_registered_at.get_or_insert(t);
                    }
                }
            }
            EventData::SafeguardingRaised(d) => {
                self.safeguarding.push(Safeguarding {
                    category: d.category,
                    referred_to: d.referred_to.clone(),
                    raised_at: t,
                });
                self.raise(FlagCode::SafeguardingRaised, e);
            }
            EventData::SupportExtended(d) => self.support_extended_until = Some(d.until),
            EventData::CaseClosed(d) => self.close(t, Some(d.reason)),
            EventData::CaseReopened(_) => {
                if let Some(ep) = self.episode_mut() {
                    ep.closed_at = None;
                    ep.close_reason = None;
                }
                self.status = if self.in_custody || self.released_at.is_none() {
                    self.accepted_status()
                } else {
                    // reopened in the community: back to finding the person
                    self.engagement = None;
                    Status::SeekingContact
                };
            }
            EventData::RecordCorrected(d) => {
                let source = d.target_source.as_deref().unwrap_or(&e.event.source);
                let position = e.position;
                if let Some(t) = self
                    .timeline
                    .iter_mut()
                    .find(|t| t.id == d.target_event_id && t.source == source)
                {
                    t.corrected_by = Some(position);
                }
            }
        }
        self.timeline.push(TimelineEntry {
            position: e.position,
            id: e.event.id.clone(),
            source: e.event.source.clone(),
            kind: e.event.event_type().as_str().to_string(),
            occurred_at: t,
            recorded_at: e.recorded_at,
            summary,
            corrected_by: None,
        });
    }

    fn set_referral_state(&mut self, referral_id: &str, state: ReferralState, at: DateTime<Utc>) {
        if let Some(ep) = self.episode_mut() {
            if let Some(r) = ep
                .referrals
                .iter_mut()
                .find(|r| r.referral_id == referral_id)
            {
                r.state = state;
                r.decided_at = Some(at);
            }
        }
    }

    /// A declined or withdrawn referral closes a case that was never accepted once no
    /// other referral of the episode is still pending.
    fn close_if_no_referral_left(&mut self, at: DateTime<Utc>) {
        let pending = self.episode().is_some_and(|ep| {
            ep.referrals
                .iter()
                .any(|r| r.state == ReferralState::Pending)
        });
        if self.status == Status::Referred && !pending {
            self.close(at, None);
        }
    }

    /// The journey as shown at `now`: time-based flags (72 hours without contact, 28 days
    /// without a GP, past the support end, unallocated near release) added to the stored
    /// ones. `now` is the caller's clock; the fold never reads one.
    pub fn view(&self, now: DateTime<Utc>) -> JourneyView {
        let mut flags = self.flags.clone();
        let mut add = |code: FlagCode, since: DateTime<Utc>| {
            flags.push(Flag {
                code,
                raised_by: None,
                raised_at: since,
                cleared_by: None,
                cleared_at: None,
            })
        };
        let open = self.status.is_open();
        let out = self.released_at.filter(|_| !self.in_custody);
        if let (true, Some(released)) = (open, out) {
            let contacted = self.last_contact_at.is_some_and(|c| c >= released);
            let deadline = released + Duration::hours(72);
            if !contacted
                && now > deadline
                && self.release_reason != Some(ReleaseReason::ReleasedToHospital)
            {
                add(FlagCode::NoContact72h, deadline);
            }
            let gp = self
                .signposts
                .iter()
                .any(|s| s.outcome == Some(SignpostOutcome::GpRegistered));
            let deadline = released + Duration::days(28);
            if !gp && now > deadline {
                add(FlagCode::NotGpRegistered28d, deadline);
            }
        }
        if let (true, Some(end)) = (open, self.support_end()) {
            if now.date_naive() > end {
                add(
                    FlagCode::PastSupportEnd,
                    end.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
                );
            }
        }
        if let (true, true, None, Some(rd)) =
            (open, self.in_custody, &self.worker, &self.release_date)
        {
            let days = (rd.date - now.date_naive()).num_days();
            if (0..=14).contains(&days) {
                add(FlagCode::UnallocatedNearRelease, now);
            }
        }
        JourneyView {
            support_start: self.support_start(),
            support_end: self.support_end(),
            active_flags: flags
                .iter()
                .filter(|f| f.cleared_by.is_none())
                .map(|f| f.code)
                .collect(),
            allowed_events: crate::decide::allowed(self)
                .iter()
                .map(|t| t.as_str())
                .collect(),
            journey: Journey {
                flags,
                ..self.clone()
            },
            as_of: now,
        }
    }
}

/// A journey as served: the stored fold plus what depends on the query time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JourneyView {
    #[serde(flatten)]
    pub journey: Journey,
    pub as_of: DateTime<Utc>,
    pub support_start: Option<NaiveDate>,
    pub support_end: Option<NaiveDate>,
    pub active_flags: BTreeSet<FlagCode>,
    pub allowed_events: Vec<&'static str>,
}

/// A one-line, personal-data-free summary of an event for the timeline.
fn summarise(d: &EventData) -> String {
    match d {
        EventData::ReferralReceived(d) => format!(
            "referred by {} at {} ({})",
            d.referrer.kind, d.prison, d.referral_id
        ),
        EventData::ReferralAccepted(d) => format!("referral {} accepted", d.referral_id),
        EventData::ReferralDeclined(d) => {
            format!("referral {} declined: {}", d.referral_id, d.reason)
        }
        EventData::ReferralWithdrawn(d) => format!("referral {} withdrawn", d.referral_id),
        EventData::CaseAllocated(d) => format!("allocated to {} ({})", d.worker_id, d.worker_role),
        EventData::ConsentGiven(d) => format!("consent given: {}", d.scope),
        EventData::ConsentWithdrawn(d) => format!("consent withdrawn: {}", d.scope),
        EventData::AssessmentCompleted(d) => {
            format!("{} assessment: {} needs", d.kind, d.needs.len())
        }
        EventData::PlanAgreed(d) => format!("plan agreed: {} actions", d.actions.len()),
        EventData::PlanReviewed(d) => format!("plan reviewed: {} actions", d.actions.len()),
        EventData::ReleaseDateSet(d) => format!("release date {} ({})", d.date, d.date_type),
        EventData::PrisonerTransferred(d) => {
            format!("transferred {} -> {}", d.from_prison, d.to_prison)
        }
        EventData::PrisonerReleased(d) => format!("released from {} ({})", d.prison, d.reason),
        EventData::PrisonerReturnedToCustody(d) => {
            format!(
                "returned to custody at {}{}",
                d.prison,
                if d.recall { " (recall)" } else { "" }
            )
        }
        EventData::IdentifiersLinked(_) => "identifiers linked".into(),
        EventData::ContactAttempted(d) => format!("contact attempted by {}", d.channel),
        EventData::ContactMade(d) => format!("contact made by {}", d.channel),
        EventData::EngagementChanged(d) => format!("engagement: {}", d.status),
        EventData::SignpostingMade(d) => {
            format!("{} to {} ({})", d.mode, d.service_type, d.signpost_id)
        }
        EventData::SignpostingOutcome(d) => format!("signpost {}: {}", d.signpost_id, d.outcome),
        EventData::SafeguardingRaised(d) => format!("safeguarding raised: {}", d.category),
        EventData::SupportExtended(d) => format!("support extended until {}", d.until),
        EventData::CaseClosed(d) => format!("case closed: {}", d.reason),
        EventData::CaseReopened(_) => "case reopened".into(),
        EventData::RecordCorrected(d) => {
            format!("correction of {}: {}", d.target_event_id, d.what_was_wrong)
        }
    }
}

/// Event types that never need a case (facts) — used by `allowed`.
pub(crate) fn facts() -> impl Iterator<Item = EventType> {
    EventType::ALL
        .iter()
        .copied()
        .filter(|t| t.origin() == throughcare_events::Origin::Fact)
}
