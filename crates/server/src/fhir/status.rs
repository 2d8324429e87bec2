//! How the journey's states become FHIR codes: one function per mapping, each a match
//! with an arm per state (a new state fails to compile until it is mapped). The README's
//! "FHIR R4" section documents the same tables.

use throughcare_events::catalogue::{ContactChannel, SignpostMode, SignpostOutcome};
use throughcare_projections::journey::{Episode, ReferralState};
use throughcare_projections::{FlagCode, Status};

/// What every corrected-away (ENTERED_IN_ERROR, WRONG_PERSON) fact is exported as.
pub const ENTERED_IN_ERROR: &str = "entered-in-error";

/// EpisodeOfCare.status of an episode. `current` is the journey's status when the episode
/// is the journey's last one (earlier episodes are always closed).
///
/// | journey | EpisodeOfCare |
/// |---|---|
/// | REFERRED (awaiting triage) | planned |
/// | ACCEPTED (no worker yet) | waitlist |
/// | PRE_RELEASE, SEEKING_CONTACT, ENGAGED, DISENGAGED | active |
/// | IN_CUSTODY (recalled), IN_HOSPITAL | onhold |
/// | CLOSED after acceptance | finished |
/// | CLOSED never accepted (declined, withdrawn) | cancelled |
pub fn episode_status(ep: &Episode, current: Option<Status>) -> &'static str {
    let closed = || {
        if ep.accepted_at.is_some() {
            "finished"
        } else {
            "cancelled"
        }
    };
    let Some(status) = current else {
        return closed();
    };
    match status {
        Status::Referred => "planned",
        Status::Accepted => "waitlist",
        Status::PreRelease | Status::SeekingContact | Status::Engaged | Status::Disengaged => {
            "active"
        }
        Status::InCustody | Status::InHospital => "onhold",
        Status::Closed => closed(),
        // A journey with an episode has been referred; should one say otherwise, the
        // episode is only planned.
        Status::NotReferred => "planned",
    }
}

/// ServiceRequest.status of a referral: pending or accepted while the episode is open is
/// `active`; accepted in a closed episode `completed`; declined, withdrawn or left pending
/// when the episode closed `revoked`.
pub fn referral_status(state: ReferralState, episode_closed: bool) -> &'static str {
    match (state, episode_closed) {
        (ReferralState::Pending | ReferralState::Accepted, false) => "active",
        (ReferralState::Accepted, true) => "completed",
        (ReferralState::Pending, true)
        | (ReferralState::Declined | ReferralState::Withdrawn, _) => "revoked",
    }
}

/// Whether a signpost's outcome is the service reached (or not).
pub fn signpost_reached(outcome: SignpostOutcome) -> bool {
    match outcome {
        SignpostOutcome::GpRegistered
        | SignpostOutcome::Attended
        | SignpostOutcome::Accepted
        | SignpostOutcome::HousingSettled
        | SignpostOutcome::HousingTemporary => true,
        SignpostOutcome::Declined | SignpostOutcome::Rejected | SignpostOutcome::NoResponse => {
            false
        }
    }
}

/// ServiceRequest.status of a signpost: `active` until its outcome, then `completed` when
/// the service was reached and `revoked` when it was not.
pub fn signpost_status(outcome: Option<SignpostOutcome>) -> &'static str {
    match outcome {
        None => "active",
        Some(o) if signpost_reached(o) => "completed",
        Some(_) => "revoked",
    }
}

/// ServiceRequest.intent of a signpost: telling the person of a service is a `proposal`;
/// referring or accompanying them is an `order`.
pub fn signpost_intent(mode: SignpostMode) -> &'static str {
    match mode {
        SignpostMode::Signposted => "proposal",
        SignpostMode::Referred | SignpostMode::Accompanied => "order",
    }
}

/// CarePlan.activity.detail.status of a plan action, from the outcomes of the episode's
/// signposts to the action's service type.
pub fn activity_status(outcomes: &[Option<SignpostOutcome>]) -> &'static str {
    if outcomes.iter().flatten().any(|o| signpost_reached(*o)) {
        "completed"
    } else if outcomes.iter().any(Option::is_none) {
        "in-progress"
    } else if outcomes.is_empty() {
        "not-started"
    } else {
        // Every signpost so far ended without the service: still to do.
        "scheduled"
    }
}

/// Encounter.class (v3 ActCode) of a contact channel: met in person away from a clinic is
/// `FLD` (field), by phone or text `VR` (virtual), at probation `AMB` (ambulatory).
pub fn encounter_class(channel: ContactChannel) -> (&'static str, &'static str) {
    match channel {
        ContactChannel::Gate | ContactChannel::Outreach => ("FLD", "field"),
        ContactChannel::Phone | ContactChannel::Sms => ("VR", "virtual"),
        ContactChannel::ViaProbation => ("AMB", "ambulatory"),
    }
}

/// Flag.category (flag-category) of a flag: a safeguarding concern is `safety`, the rest
/// are the service's `admin` flags.
pub fn flag_category(code: FlagCode) -> (&'static str, &'static str) {
    match code {
        FlagCode::SafeguardingRaised => ("safety", "Safety"),
        FlagCode::ReleasedWithoutReferral
        | FlagCode::ReleaseDateChanged
        | FlagCode::NoPlanAtRelease
        | FlagCode::NoContact72h
        | FlagCode::NotGpRegistered28d
        | FlagCode::PastSupportEnd
        | FlagCode::UnallocatedNearRelease
        | FlagCode::ReleasedWhileNotInCustody
        | FlagCode::TransferFromUnexpectedPrison
        | FlagCode::OutsideReferralWindow => ("admin", "Administrative"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn episode(accepted: bool) -> Episode {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut ep: Episode = serde_json::from_value(serde_json::json!({
            "number": 1, "opened_at": t, "referrals": []
        }))
        .unwrap();
        ep.accepted_at = accepted.then_some(t);
        ep
    }

    #[test]
    fn episode_status_of_every_journey_status() {
        let check = |accepted: bool, current: Option<Status>, expected: &str| {
            assert_eq!(
                episode_status(&episode(accepted), current),
                expected,
                "{current:?} accepted={accepted}"
            );
        };
        check(false, Some(Status::Referred), "planned");
        check(true, Some(Status::Accepted), "waitlist");
        check(true, Some(Status::PreRelease), "active");
        check(true, Some(Status::SeekingContact), "active");
        check(true, Some(Status::Engaged), "active");
        check(true, Some(Status::Disengaged), "active");
        check(true, Some(Status::InCustody), "onhold");
        check(true, Some(Status::InHospital), "onhold");
        check(true, Some(Status::Closed), "finished");
        check(false, Some(Status::Closed), "cancelled");
        // Earlier episodes are closed whatever the journey's status now.
        check(true, None, "finished");
        check(false, None, "cancelled");
    }

    #[test]
    fn referral_statuses() {
        let check = |state, closed, expected| {
            assert_eq!(
                referral_status(state, closed),
                expected,
                "{state:?} {closed}"
            );
        };
        check(ReferralState::Pending, false, "active");
        check(ReferralState::Accepted, false, "active");
        check(ReferralState::Accepted, true, "completed");
        check(ReferralState::Pending, true, "revoked");
        check(ReferralState::Declined, false, "revoked");
        check(ReferralState::Withdrawn, true, "revoked");
    }

    #[test]
    fn signpost_statuses_and_intents() {
        use SignpostOutcome::*;
        assert_eq!(signpost_status(None), "active");
        for o in [
            GpRegistered,
            Attended,
            Accepted,
            HousingSettled,
            HousingTemporary,
        ] {
            assert_eq!(signpost_status(Some(o)), "completed", "{o:?}");
        }
        for o in [Declined, Rejected, NoResponse] {
            assert_eq!(signpost_status(Some(o)), "revoked", "{o:?}");
        }
        assert_eq!(signpost_intent(SignpostMode::Signposted), "proposal");
        assert_eq!(signpost_intent(SignpostMode::Referred), "order");
        assert_eq!(signpost_intent(SignpostMode::Accompanied), "order");
    }

    #[test]
    fn activity_statuses() {
        use SignpostOutcome::*;
        assert_eq!(activity_status(&[]), "not-started");
        assert_eq!(activity_status(&[None]), "in-progress");
        assert_eq!(activity_status(&[Some(Declined)]), "scheduled");
        assert_eq!(activity_status(&[Some(Declined), None]), "in-progress");
        assert_eq!(activity_status(&[None, Some(GpRegistered)]), "completed");
    }

    #[test]
    fn encounter_classes_and_flag_categories() {
        assert_eq!(encounter_class(ContactChannel::Gate).0, "FLD");
        assert_eq!(encounter_class(ContactChannel::Outreach).0, "FLD");
        assert_eq!(encounter_class(ContactChannel::Phone).0, "VR");
        assert_eq!(encounter_class(ContactChannel::Sms).0, "VR");
        assert_eq!(encounter_class(ContactChannel::ViaProbation).0, "AMB");
        assert_eq!(flag_category(FlagCode::SafeguardingRaised).0, "safety");
        assert_eq!(flag_category(FlagCode::NoContact72h).0, "admin");
    }
}
