//! The timeline: one line per recorded event, corrected or not, with when it happened
//! (occurred_at) and when the ledger learnt it (recorded_at), so a late report shows both
//! and a correction never hides what was first recorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::{EventData, RecordedEvent};

use super::history::HistoryEntry;

/// One line of the timeline.
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

impl TimelineEntry {
    /// The line of `e` as it was recorded (as [`super::Journey::apply`] appends it).
    pub fn of(e: &RecordedEvent) -> Self {
        TimelineEntry {
            position: e.position,
            id: e.event.id.clone(),
            source: e.event.source.clone(),
            kind: e.event.event_type().as_str().to_string(),
            occurred_at: e.event.time,
            recorded_at: e.recorded_at,
            summary: summarise(&e.event.data),
            corrected_by: None,
        }
    }

    /// The line of a kept event ([`HistoryEntry`]), marked by `corrected_by`: what [`of`]
    /// gives for the event it was kept from (the summary never reads the `personal`
    /// object the kept copy lacks), so a store may keep the history entries alone and
    /// make the timeline from them.
    ///
    /// [`of`]: TimelineEntry::of
    pub fn of_kept(h: &HistoryEntry, corrected_by: Option<u64>) -> Self {
        TimelineEntry {
            position: h.position,
            id: h.event.id.clone(),
            source: h.event.source.clone(),
            kind: h.event.event_type().as_str().to_string(),
            occurred_at: h.event.time,
            recorded_at: h.recorded_at,
            summary: summarise(&h.event.data),
            corrected_by,
        }
    }
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
        EventData::ContactMade(d) => match d.outcome.filter(|o| !o.is_contact()) {
            // Recorded before contact.made refused these outcomes: folded as an attempt.
            Some(o) => format!("contact attempted by {} ({o})", d.channel),
            None => format!("contact made by {}", d.channel),
        },
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
