//! Where the person is and when they leave: release dates (every one kept with its kind;
//! the release date is chosen by HMPPS precedence), transfers, releases to the community
//! or to a secure hospital, returns to custody, and the support window that follows.

use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use throughcare_events::catalogue::*;
use throughcare_events::RecordedEvent;

use super::flags::FlagCode;
use super::parts::{ReleaseDate, Status};
use super::Journey;

impl Journey {
    /// When the person was released, if they are in the community now (released and not
    /// detained again, in prison or in a secure hospital).
    pub fn in_community(&self) -> Option<DateTime<Utc>> {
        self.released_at.filter(|_| !self.in_custody)
    }

    /// The end of the support window: 6 months after the last release (or after the
    /// expected release while detained), unless extended. Back in custody after a recall
    /// with no new release date, there is no window until one is known.
    pub fn support_end(&self) -> Option<NaiveDate> {
        let end = self.support_base()?.checked_add_months(Months::new(6))?;
        Some(self.support_extended_until.map_or(end, |u| u.max(end)))
    }

    /// The start of the support window: 12 weeks before the (expected) release.
    pub fn support_start(&self) -> Option<NaiveDate> {
        Some(self.support_base()? - Duration::weeks(12))
    }

    /// The release the support window counts from: the last one while in the community,
    /// else the expected one of the current time in custody.
    fn support_base(&self) -> Option<NaiveDate> {
        match self.in_community() {
            Some(r) => Some(r.date_naive()),
            None => self.release_date.as_ref().map(|d| d.date),
        }
    }

    /// A date from the prison systems: kept with its kind; a change of the chosen release
    /// date (not of an eligibility date behind it) raises RELEASE_DATE_CHANGED.
    pub(super) fn release_date_set(&mut self, d: &ReleaseDateSet, e: &RecordedEvent) {
        let before = self.release_date.as_ref().map(|d| d.date);
        self.add_release_date(ReleaseDate {
            date: d.date,
            date_type: d.date_type,
            set_at: Some(e.event.time),
            current: true,
            from_referral: false,
        });
        let after = self.release_date.as_ref().map(|d| d.date);
        if before.is_some_and(|b| after.is_some_and(|a| a != b)) {
            self.raise(FlagCode::ReleaseDateChanged, e);
        }
    }

    /// Keeps `rd` and re-chooses the release date: among the current dates, the latest of
    /// each kind, and of those the kind HMPPS puts first (CONFIRMED, HDCAD, ARD, CRD).
    /// Eligibility dates (PED, HDCED) are kept but never chosen.
    pub(super) fn add_release_date(&mut self, rd: ReleaseDate) {
        self.release_dates.push(rd);
        self.choose_release_date();
    }

    fn choose_release_date(&mut self) {
        self.release_date = self
            .release_dates
            .iter()
            .enumerate()
            .filter(|(_, d)| d.current)
            .filter_map(|(i, d)| d.date_type.precedence().map(|p| ((p, i), d)))
            .max_by_key(|(key, _)| *key)
            .map(|(_, d)| d.clone());
    }

    pub(super) fn transferred(&mut self, d: &PrisonerTransferred, e: &RecordedEvent) {
        if self
            .prison
            .as_deref()
            .is_some_and(|p| p != d.from_prison.as_str())
        {
            self.raise(FlagCode::TransferFromUnexpectedPrison, e);
        }
        self.prison = Some(d.to_prison.to_string());
        self.in_custody = true;
        self.back_from_hospital();
    }

    /// From a secure hospital back to prison: in custody again.
    fn back_from_hospital(&mut self) {
        if std::mem::take(&mut self.in_hospital) && self.status == Status::InHospital {
            self.status = Status::InCustody;
        }
    }

    pub(super) fn released(&mut self, d: &PrisonerReleased, e: &RecordedEvent) {
        if d.reason == ReleaseReason::ReleasedToHospital {
            return self.transferred_to_hospital(d, e);
        }
        let t = e.event.time;
        if !self.status.is_open() {
            self.raise(FlagCode::ReleasedWithoutReferral, e);
        } else if self.plan.is_none() {
            self.raise(FlagCode::NoPlanAtRelease, e);
        }
        if self.in_community().is_some() {
            self.raise(FlagCode::ReleasedWhileNotInCustody, e);
        }
        self.prison = Some(d.prison.to_string());
        self.in_custody = false;
        self.in_hospital = false;
        self.released_at = Some(t);
        self.release_reason = Some(d.reason);
        self.local_authority = d.local_authority.clone();
        self.engagement = None;
        // The dates of this sentence are history now; a recall brings new ones.
        for rd in &mut self.release_dates {
            rd.current = false;
        }
        self.choose_release_date();
        let has_plan = self.plan.is_some();
        if self.status.is_open() {
            if let Some(ep) = self.episode_mut().filter(|ep| ep.released_at.is_none()) {
                ep.released_at = Some(t);
                ep.released_from = Some(d.prison.to_string());
                ep.release_reason = Some(d.reason);
                ep.plan_at_release = has_plan;
                ep.settle_contacts();
            }
        }
        if matches!(
            self.status,
            Status::Accepted
                | Status::PreRelease
                | Status::InCustody
                | Status::InHospital
                | Status::SeekingContact
        ) {
            self.status = Status::SeekingContact;
        }
    }

    /// RELEASED_TO_HOSPITAL: a transfer to a secure hospital (a restricted patient), not a
    /// release to the community. The person stays detained (`in_custody`), no contact
    /// clock starts, and the episode has no release until a later one to the community.
    fn transferred_to_hospital(&mut self, d: &PrisonerReleased, e: &RecordedEvent) {
        if self.in_community().is_some() {
            self.raise(FlagCode::ReleasedWhileNotInCustody, e);
        }
        self.prison = Some(d.prison.to_string());
        self.in_custody = true;
        self.in_hospital = true;
        if self.status.is_open() {
            if let Some(ep) = self.episode_mut() {
                ep.hospital_at.get_or_insert(e.event.time);
            }
        }
        if self.status.is_open() && self.status != Status::Referred {
            self.engagement = None;
            self.status = Status::InHospital;
        }
    }

    pub(super) fn returned_to_custody(&mut self, d: &PrisonerReturnedToCustody, e: &RecordedEvent) {
        let t = e.event.time;
        if let Some(ep) = self
            .episodes
            .last_mut()
            .filter(|ep| ep.released_at.is_some())
        {
            ep.returned_to_custody_at.get_or_insert(t);
        }
        self.prison = Some(d.prison.to_string());
        self.in_custody = true;
        self.back_from_hospital();
        if matches!(
            self.status,
            Status::SeekingContact | Status::Engaged | Status::Disengaged
        ) {
            self.status = Status::InCustody;
        }
    }
}
