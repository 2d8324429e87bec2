//! The rules: `decide(&Journey, &Event)` says whether a submission may be recorded given the
//! person's current state. Decisions of the service follow the case state machine and are
//! refused with the current state and the allowed events; facts from prison systems are
//! always recorded (reality is not rejected).
//!
//! One rule, one place: [`gate`] says which event types the state accepts at all, and
//! [`allowed`] is nothing but `gate` asked of every type; `check` adds what depends on the
//! event's data. Both matches list every type, with no catch-all, so a new event type does
//! not compile until each says what it does.

use serde::Serialize;
use throughcare_events::catalogue::ConsentScope;
use throughcare_events::{Event, EventData, EventType};

use crate::journey::{Journey, ReferralState, Status};

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

/// The event types the case accepts in its current state (facts always; decisions by
/// the state machine). Some still depend on their data (e.g. a known signpost id).
pub fn allowed(j: &Journey) -> Vec<EventType> {
    EventType::ALL
        .iter()
        .copied()
        .filter(|t| gate(j, *t).is_ok())
        .collect()
}

fn need(ok: bool, why: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why.to_string())
    }
}

/// Whether the case's state accepts events of type `t` at all.
fn gate(j: &Journey, t: EventType) -> Result<(), String> {
    use EventType::*;
    use Status::*;
    let s = j.status;
    let open = s.is_open();
    let accepted = open && s != Referred;
    match t {
        // Facts from prison systems: reality is not rejected.
        ReleaseDateSet
        | PrisonerTransferred
        | PrisonerReleased
        | PrisonerReturnedToCustody
        | IdentifiersLinked => Ok(()),
        // On an open case a referral joins the episode; otherwise it opens one.
        ReferralReceived => Ok(()),
        ReferralAccepted | ReferralDeclined | ReferralWithdrawn => {
            need(open, "the case is closed; a referral can only be decided on an open case")?;
            need(
                j.episode().is_some_and(|ep| {
                    ep.referrals.iter().any(|r| r.state == ReferralState::Pending)
                }),
                "no referral of the current episode is waiting for a decision",
            )
        }
        CaseAllocated => need(accepted, "only an accepted, open case can be allocated"),
        ConsentGiven => need(open, "consent can only be recorded on an open case"),
        // Withdrawing consent to share stays possible after closure.
        ConsentWithdrawn => need(
            open || !j.consent.share_with.is_empty(),
            "consent can only be withdrawn on an open case",
        ),
        AssessmentCompleted => need(accepted, "assess only an accepted, open case"),
        PlanAgreed => need(accepted, "a plan needs an accepted, open case"),
        PlanReviewed => {
            need(accepted, "a plan needs an accepted, open case")?;
            need(j.plan.is_some(), "there is no plan to review; agree one first")
        }
        ContactAttempted | ContactMade => {
            need(accepted, "contact is recorded on an accepted, open case")
        }
        EngagementChanged => need(
            matches!(s, SeekingContact | Engaged | Disengaged),
            "engagement changes after release, on an open case in the community",
        ),
        SignpostingMade => need(accepted, "signposting needs an accepted, open case"),
        SignpostingOutcome => need(!j.signposts.is_empty(), "the person has no signposts"),
        SafeguardingRaised => need(!j.episodes.is_empty(), "the person has never been referred"),
        SupportExtended => need(open, "support can only be extended on an open case"),
        CaseClosed => need(open, "the case is not open"),
        CaseReopened => need(
            s == Closed && j.episode().is_some_and(|ep| ep.accepted_at.is_some()),
            "only a closed case that was once accepted can be reopened (a new referral opens a new episode)",
        ),
        RecordCorrected => need(!j.timeline.is_empty(), "the person has no events to correct"),
    }
}

/// The gate and what depends on the event's data. Where the data check is the finer of the
/// two (it names the referral, signpost or event concerned) it speaks first.
fn check(j: &Journey, data: &EventData, source: &str) -> Result<(), String> {
    let t = data.event_type();
    let data_first = matches!(
        t,
        EventType::ReferralAccepted
            | EventType::ReferralDeclined
            | EventType::ReferralWithdrawn
            | EventType::SignpostingOutcome
            | EventType::RecordCorrected
    );
    if data_first {
        by_data(j, data, source)?;
        gate(j, t)
    } else {
        gate(j, t)?;
        by_data(j, data, source)
    }
}

/// What depends on the event's data, once the state accepts its type.
fn by_data(j: &Journey, data: &EventData, source: &str) -> Result<(), String> {
    match data {
        EventData::ReleaseDateSet(_)
        | EventData::PrisonerTransferred(_)
        | EventData::PrisonerReleased(_)
        | EventData::PrisonerReturnedToCustody(_)
        | EventData::IdentifiersLinked(_) => Ok(()),
        EventData::ReferralReceived(d) => need(
            j.referral(&d.referral_id).is_none() || !j.status.is_open(),
            &format!("referral {} is already part of this episode", d.referral_id),
        ),
        EventData::ReferralAccepted(d) => pending_referral(j, &d.referral_id),
        EventData::ReferralDeclined(d) => pending_referral(j, &d.referral_id),
        EventData::ReferralWithdrawn(d) => pending_referral(j, &d.referral_id),
        EventData::ConsentWithdrawn(d) => match d.scope {
            ConsentScope::Engage => need(
                j.status.is_open(),
                "consent can only be withdrawn on an open case",
            ),
            ConsentScope::ShareWith => need(
                d.orgs
                    .iter()
                    .flatten()
                    .all(|o| j.consent.share_with.contains(o)),
                "consent to share was never given to one of these orgs",
            ),
        },
        EventData::SignpostingMade(d) => need(
            j.signpost(&d.signpost_id).is_none(),
            &format!("signpost {} already exists", d.signpost_id),
        ),
        EventData::SignpostingOutcome(d) => need(
            j.signpost(&d.signpost_id).is_some(),
            &format!("there is no signpost {} for this person", d.signpost_id),
        ),
        EventData::SupportExtended(d) => need(
            j.support_end().is_none_or(|end| d.until > end),
            "the new end date must be after the current support end",
        ),
        EventData::RecordCorrected(d) => {
            let target_source = d.target_source.as_deref().unwrap_or(source);
            let target = j.recorded_event(target_source, &d.target_event_id);
            need(
                target.is_some() || j.has_event(target_source, &d.target_event_id),
                &format!(
                    "no event {} from {target_source} in this person's history",
                    d.target_event_id
                ),
            )?;
            // A corrected value must make a valid event of the target's type.
            match (target, &d.pointer, &d.corrected_value) {
                (Some(target), Some(pointer), Some(value)) => target
                    .amended(pointer, value)
                    .map(drop)
                    .map_err(|why| format!("the corrected value does not fit the target: {why}")),
                _ => Ok(()),
            }
        }
        EventData::CaseAllocated(_)
        | EventData::ConsentGiven(_)
        | EventData::AssessmentCompleted(_)
        | EventData::PlanAgreed(_)
        | EventData::PlanReviewed(_)
        | EventData::ContactAttempted(_)
        | EventData::ContactMade(_)
        | EventData::EngagementChanged(_)
        | EventData::SafeguardingRaised(_)
        | EventData::CaseClosed(_)
        | EventData::CaseReopened(_) => Ok(()),
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
