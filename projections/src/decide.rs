//! The rules: `decide(&Journey, &Event)` says whether a submission may be recorded given the
//! person's current state. Decisions of the service follow the case state machine and are
//! refused with the current state and the allowed events; facts from prison systems are
//! always recorded (reality is not rejected).

use serde::Serialize;
use throughcare_events::catalogue::ConsentScope;
use throughcare_events::{Event, EventData, EventType, Origin};

use crate::journey::{facts, Journey, ReferralState, Status};

/// Why a decision of the service cannot be recorded now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{reason} (case is {status:?})")]
pub struct DomainError {
    pub status: Status,
    pub reason: String,
    /// The event types the case accepts in its current state.
    pub allowed: Vec<EventType>,
}

/// Decides whether `event` may be recorded for the person whose state is `journey`;
/// on success returns the events to append (the submission itself).
pub fn decide(journey: &Journey, event: &Event) -> Result<Vec<Event>, DomainError> {
    check(journey, &event.data, &event.source).map_err(|reason| DomainError {
        status: journey.status,
        reason,
        allowed: allowed(journey),
    })?;
    Ok(vec![event.clone()])
}

fn check(j: &Journey, data: &EventData, source: &str) -> Result<(), String> {
    use Status::*;
    if data.event_type().origin() == Origin::Fact {
        return Ok(());
    }
    let s = j.status;
    let open = s.is_open();
    let accepted = open && s != Referred;
    let need = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
    match data {
        // A referral on an open case joins the current episode; after closure it opens a new one.
        EventData::ReferralReceived(d) => need(
            j.referral(&d.referral_id).is_none() || !open,
            &format!("referral {} is already part of this episode", d.referral_id),
        ),
        EventData::ReferralAccepted(d) => pending_referral(j, &d.referral_id),
        EventData::ReferralDeclined(d) => pending_referral(j, &d.referral_id),
        EventData::ReferralWithdrawn(d) => pending_referral(j, &d.referral_id),
        EventData::CaseAllocated(_) => need(accepted, "only an accepted, open case can be allocated"),
        EventData::ConsentGiven(_) => need(open, "consent can only be recorded on an open case"),
        EventData::ConsentWithdrawn(d) => match d.scope {
            ConsentScope::Engage => need(open, "consent can only be withdrawn on an open case"),
            ConsentScope::ShareWith => need(
                d.orgs.iter().flatten().all(|o| j.consent.share_with.contains(o)),
                "consent to share was never given to one of these orgs",
            ),
        },
        EventData::AssessmentCompleted(_) => need(accepted, "assess only an accepted, open case"),
        EventData::PlanAgreed(_) => need(accepted, "a plan needs an accepted, open case"),
        EventData::PlanReviewed(_) => {
            need(accepted, "a plan needs an accepted, open case")?;
            need(j.plan.is_some(), "there is no plan to review; agree one first")
        }
        EventData::ContactAttempted(_) | EventData::ContactMade(_) => {
            need(accepted, "contact is recorded on an accepted, open case")
        }
        EventData::EngagementChanged(_) => need(
            matches!(s, SeekingContact | Engaged | Disengaged),
            "engagement changes after release, on an open case in the community",
        ),
        EventData::SignpostingMade(d) => {
            need(accepted, "signposting needs an accepted, open case")?;
            need(
                j.signpost(&d.signpost_id).is_none(),
                &format!("signpost {} already exists", d.signpost_id),
            )
        }
        EventData::SignpostingOutcome(d) => need(
            j.signpost(&d.signpost_id).is_some(),
            &format!("there is no signpost {} for this person", d.signpost_id),
        ),
        EventData::SafeguardingRaised(_) => need(!j.episodes.is_empty(), "the person has never been referred"),
        EventData::SupportExtended(d) => {
            need(open, "support can only be extended on an open case")?;
            need(
                j.support_end().is_none_or(|end| d.until > end),
                "the new end date must be after the current support end",
            )
        }
        EventData::CaseClosed(_) => need(open, "the case is not open"),
        EventData::CaseReopened(_) => need(
            s == Closed && j.episode().is_some_and(|ep| ep.accepted_at.is_some()),
            "only a closed case that was once accepted can be reopened (a new referral opens a new episode)",
        ),
        EventData::RecordCorrected(d) => {
            let target_source = d.target_source.as_deref().unwrap_or(source);
            need(
                j.has_event(target_source, &d.target_event_id),
                &format!("no event {} from {target_source} in this person's history", d.target_event_id),
            )
        }
        // Facts were handled above.
        _ => Ok(()),
    }
}

fn pending_referral(j: &Journey, referral_id: &str) -> Result<(), String> {
    if !j.status.is_open() {
        return Err("the case is closed; a referral can only be decided on an open case".into());
    }
    match j.referral(referral_id) {
        None => Err(format!(
            "there is no referral {referral_id} in the current episode"
        )),
        Some(r) if r.state != ReferralState::Pending => {
            Err(format!("referral {referral_id} was already {:?}", r.state).to_lowercase())
        }
        Some(_) => Ok(()),
    }
}

/// The event types the case accepts in its current state (facts always; decisions by
/// the state machine). Some still depend on their data (e.g. a known signpost id).
pub fn allowed(j: &Journey) -> Vec<EventType> {
    use EventType::*;
    use Status::*;
    let s = j.status;
    let open = s.is_open();
    let accepted = open && s != Referred;
    let pending = j.episode().is_some_and(|ep| {
        open && ep
            .referrals
            .iter()
            .any(|r| r.state == ReferralState::Pending)
    });
    let mut out: Vec<EventType> = Vec::new();
    let mut allow = |ok: bool, types: &[EventType]| {
        if ok {
            out.extend_from_slice(types)
        }
    };
    allow(true, &[ReferralReceived]);
    allow(
        pending,
        &[ReferralAccepted, ReferralDeclined, ReferralWithdrawn],
    );
    allow(open, &[ConsentGiven, ConsentWithdrawn, CaseClosed]);
    // Withdrawing consent to share stays possible after closure.
    allow(!j.consent.share_with.is_empty(), &[ConsentWithdrawn]);
    allow(
        accepted,
        &[
            CaseAllocated,
            AssessmentCompleted,
            PlanAgreed,
            ContactAttempted,
            ContactMade,
            SignpostingMade,
        ],
    );
    allow(accepted && j.plan.is_some(), &[PlanReviewed]);
    allow(
        matches!(s, SeekingContact | Engaged | Disengaged),
        &[EngagementChanged],
    );
    allow(!j.signposts.is_empty(), &[SignpostingOutcome]);
    allow(!j.episodes.is_empty(), &[SafeguardingRaised]);
    allow(open, &[SupportExtended]);
    allow(
        s == Closed && j.episode().is_some_and(|ep| ep.accepted_at.is_some()),
        &[CaseReopened],
    );
    allow(!j.timeline.is_empty(), &[RecordCorrected]);
    out.extend(facts());
    out.sort();
    out.dedup();
    out
}
