//! What a worker sees of each case: the next action due and whether contact is overdue,
//! judged against a query time passed in.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use throughcare_events::catalogue::{ServiceType, SignpostOutcome};

use crate::journey::{Journey, Status};

/// Days without contact after which an engaged person's contact is overdue.
pub const CONTACT_EVERY_DAYS: i64 = 14;

/// The next action on a case, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NextAction {
    TriageReferral,
    AllocateWorker,
    RecordConsent,
    CompleteAssessment,
    AgreePlan,
    MakeContact,
    RegisterWithGp,
    ReviewPlan,
    KeepInTouch,
    None,
}

/// Whether contact is overdue at `now`: no contact within 72 hours of release, or an open
/// community case not contacted for [`CONTACT_EVERY_DAYS`].
pub fn contact_overdue(j: &Journey, now: DateTime<Utc>) -> bool {
    let Some(released) = j
        .released_at
        .filter(|_| !j.in_custody && j.status.is_open())
    else {
        return false;
    };
    match j.last_contact_at.filter(|c| *c >= released) {
        None => now > released + Duration::hours(72),
        Some(c) => now > c + Duration::days(CONTACT_EVERY_DAYS),
    }
}

/// The next thing the service should do for this person.
pub fn next_action(j: &Journey, now: DateTime<Utc>) -> NextAction {
    use NextAction::*;
    match j.status {
        Status::NotReferred | Status::Closed => return None,
        Status::Referred => return TriageReferral,
        _ => {}
    }
    if j.worker.is_none() {
        return AllocateWorker;
    }
    if !j.consent.engage {
        return RecordConsent;
    }
    if j.episode().is_some_and(|ep| ep.first_assessed_at.is_none()) {
        return CompleteAssessment;
    }
    if j.plan.is_none() {
        return AgreePlan;
    }
    let community = j.released_at.is_some() && !j.in_custody;
    if community && (j.status == Status::SeekingContact || contact_overdue(j, now)) {
        return MakeContact;
    }
    let gp = j.signposts.iter().any(|s| {
        s.service_type == ServiceType::Gp
            && (s.outcome.is_none() || s.outcome == Some(SignpostOutcome::GpRegistered))
    });
    if community && !gp {
        return RegisterWithGp;
    }
    if j.plan
        .as_ref()
        .and_then(|p| p.next_review)
        .is_some_and(|d| d <= now.date_naive())
    {
        return ReviewPlan;
    }
    KeepInTouch
}
