//! The `data` of each catalogue event type as tests use it: the fields a test varies are
//! arguments, the rest take a fixed synthetic value. `person` is left out; add it with
//! [`crate::with_person`] (or set `data["person"]`). A caller that needs an optional
//! field sets it on the returned object (`data["expected_release_date"] = json!(..)`).
//!
//! One function per type, named after it (`referral.received` -> [`referral_received`]);
//! the unit test below checks that every one validates against the catalogue.

use serde_json::{json, Value};

/// The organisation named by every synthetic signpost.
pub const SIGNPOST_ORG: &str = "Synthetic Service";

/// `referral.received` at `prison` from a `referrer` kind (e.g. `PROBATION`), one
/// vulnerability (`MENTAL_HEALTH`), no expected release date.
pub fn referral_received(referral_id: &str, referrer: &str, prison: &str) -> Value {
    json!({
        "referral_id": referral_id,
        "referrer": { "kind": referrer },
        "prison": prison,
        "vulnerabilities": ["MENTAL_HEALTH"],
    })
}

/// `referral.accepted`.
pub fn referral_accepted(referral_id: &str) -> Value {
    json!({ "referral_id": referral_id })
}

/// `referral.declined` for `reason` (e.g. `INELIGIBLE`).
pub fn referral_declined(referral_id: &str, reason: &str) -> Value {
    json!({ "referral_id": referral_id, "reason": reason })
}

/// `referral.withdrawn`, with a reason (e.g. `REFERRER_WITHDREW`) when given.
pub fn referral_withdrawn(referral_id: &str, reason: Option<&str>) -> Value {
    let mut d = json!({ "referral_id": referral_id });
    if let Some(r) = reason {
        d["reason"] = json!(r);
    }
    d
}

/// `case.allocated` to a peer-support worker.
pub fn case_allocated(worker_id: &str) -> Value {
    json!({ "worker_id": worker_id, "worker_role": "PEER_SUPPORT" })
}

/// `consent.given` for `scope` (`ENGAGE`, or `SHARE_WITH` with `orgs`).
pub fn consent_given(scope: &str, orgs: Option<&[&str]>) -> Value {
    consent(scope, orgs)
}

/// `consent.withdrawn` for `scope` (`ENGAGE`, or `SHARE_WITH` with `orgs`).
pub fn consent_withdrawn(scope: &str, orgs: Option<&[&str]>) -> Value {
    consent(scope, orgs)
}

fn consent(scope: &str, orgs: Option<&[&str]>) -> Value {
    let mut d = json!({ "scope": scope });
    if let Some(orgs) = orgs {
        d["orgs"] = json!(orgs);
    }
    d
}

/// `assessment.completed` of `kind` (e.g. `INITIAL`) with `(domain, level)` needs.
pub fn assessment_completed(kind: &str, needs: &[(&str, &str)]) -> Value {
    let needs: Vec<Value> = needs
        .iter()
        .map(|(domain, level)| json!({ "domain": domain, "level": level }))
        .collect();
    json!({ "kind": kind, "needs": needs })
}

fn actions(actions: &[(&str, &str, &str)]) -> Vec<Value> {
    actions
        .iter()
        .map(|(need, service, due_by)| {
            json!({ "need": need, "service_type": service, "due_by": due_by })
        })
        .collect()
}

/// `plan.agreed` with `(need, service_type, due_by)` actions and an optional review date.
pub fn plan_agreed(plan: &[(&str, &str, &str)], next_review: Option<&str>) -> Value {
    let mut d = json!({ "actions": actions(plan) });
    if let Some(r) = next_review {
        d["next_review"] = json!(r);
    }
    d
}

/// `plan.reviewed` with `(need, service_type, due_by)` actions.
pub fn plan_reviewed(plan: &[(&str, &str, &str)]) -> Value {
    json!({ "actions": actions(plan) })
}

/// `release_date.set`: `date` of `date_type` (e.g. `CONFIRMED`, `CRD`, `PED`).
pub fn release_date_set(date: &str, date_type: &str) -> Value {
    json!({ "date": date, "date_type": date_type })
}

/// `prisoner.transferred`.
pub fn prisoner_transferred(from_prison: &str, to_prison: &str) -> Value {
    json!({ "from_prison": from_prison, "to_prison": to_prison })
}

/// `prisoner.released` from `prison` for `reason` (e.g. `RELEASED`).
pub fn prisoner_released(prison: &str, reason: &str) -> Value {
    json!({ "prison": prison, "reason": reason })
}

/// `prisoner.returned_to_custody` at `prison`.
pub fn prisoner_returned_to_custody(prison: &str, recall: bool) -> Value {
    json!({ "prison": prison, "recall": recall })
}

/// `identifiers.linked` for an `identifiers` object (`{"crn": ..}`, `{"nhs_number": ..}`).
pub fn identifiers_linked(identifiers: Value) -> Value {
    json!({ "identifiers": identifiers })
}

fn contact(channel: &str, outcome: Option<&str>) -> Value {
    let mut d = json!({ "channel": channel });
    if let Some(o) = outcome {
        d["outcome"] = json!(o);
    }
    d
}

/// `contact.attempted` over `channel` (e.g. `PHONE`), with an outcome when given.
pub fn contact_attempted(channel: &str, outcome: Option<&str>) -> Value {
    contact(channel, outcome)
}

/// `contact.made` over `channel` (e.g. `GATE`) with `outcome` (e.g. `MET`).
pub fn contact_made(channel: &str, outcome: &str) -> Value {
    contact(channel, Some(outcome))
}

/// `engagement.changed` to `status` (e.g. `DISENGAGED`).
pub fn engagement_changed(status: &str) -> Value {
    json!({ "status": status })
}

/// `signposting.made` to a `service_type` (e.g. `GP`), referred to [`SIGNPOST_ORG`].
pub fn signposting_made(signpost_id: &str, service_type: &str) -> Value {
    json!({
        "signpost_id": signpost_id,
        "service_type": service_type,
        "org": SIGNPOST_ORG,
        "mode": "REFERRED",
    })
}

/// `signposting.outcome` (e.g. `GP_REGISTERED`).
pub fn signposting_outcome(signpost_id: &str, outcome: &str) -> Value {
    json!({ "signpost_id": signpost_id, "outcome": outcome })
}

/// `safeguarding.raised` of `category` (e.g. `SELF_HARM`) to a synthetic team.
pub fn safeguarding_raised(category: &str) -> Value {
    json!({ "category": category, "referred_to": "Synthetic Safeguarding Team" })
}

/// `support.extended` until `until` for `reason` (e.g. `ONGOING_NEEDS`).
pub fn support_extended(until: &str, reason: &str) -> Value {
    json!({ "until": until, "reason": reason })
}

/// `case.closed` for `reason` (e.g. `NEEDS_MET`).
pub fn case_closed(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// `case.reopened`.
pub fn case_reopened() -> Value {
    json!({})
}

/// `record.corrected` of `target_event_id` for `what_was_wrong` (e.g. `ENTERED_IN_ERROR`).
pub fn record_corrected(target_event_id: &str, what_was_wrong: &str) -> Value {
    json!({ "target_event_id": target_event_id, "what_was_wrong": what_was_wrong })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cloudevent, person, with_person, SOURCE};
    use chrono::{DateTime, Utc};
    use throughcare_events::{validate_event, EventType};

    /// One event of every catalogue type, built here, passes the catalogue's validation;
    /// a new type without a builder fails the count.
    #[test]
    fn every_builder_validates_against_the_catalogue() {
        let now: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        let plan = [("ACCOMMODATION", "HOUSING", "2027-02-01")];
        let cases: Vec<(&str, Value)> = vec![
            (
                "referral.received",
                referral_received("R1", "PROBATION", "WCI"),
            ),
            ("referral.accepted", referral_accepted("R1")),
            ("referral.declined", referral_declined("R1", "INELIGIBLE")),
            (
                "referral.withdrawn",
                referral_withdrawn("R1", Some("REFERRER_WITHDREW")),
            ),
            ("case.allocated", case_allocated("W-1")),
            ("consent.given", consent_given("SHARE_WITH", Some(&["GP"]))),
            ("consent.withdrawn", consent_withdrawn("ENGAGE", None)),
            (
                "assessment.completed",
                assessment_completed("INITIAL", &[("MENTAL_HEALTH", "MEDIUM")]),
            ),
            ("plan.agreed", plan_agreed(&plan, Some("2027-03-01"))),
            ("plan.reviewed", plan_reviewed(&plan)),
            (
                "release_date.set",
                release_date_set("2027-01-15", "CONFIRMED"),
            ),
            ("prisoner.transferred", prisoner_transferred("WCI", "BNI")),
            ("prisoner.released", prisoner_released("WCI", "RELEASED")),
            (
                "prisoner.returned_to_custody",
                prisoner_returned_to_custody("WCI", true),
            ),
            (
                "identifiers.linked",
                identifiers_linked(json!({ "crn": crate::crn(1) })),
            ),
            (
                "contact.attempted",
                contact_attempted("PHONE", Some("NO_ANSWER")),
            ),
            ("contact.made", contact_made("GATE", "MET")),
            ("engagement.changed", engagement_changed("DISENGAGED")),
            ("signposting.made", signposting_made("S1", "GP")),
            (
                "signposting.outcome",
                signposting_outcome("S1", "GP_REGISTERED"),
            ),
            ("safeguarding.raised", safeguarding_raised("SELF_HARM")),
            (
                "support.extended",
                support_extended("2027-06-01", "ONGOING_NEEDS"),
            ),
            ("case.closed", case_closed("NEEDS_MET")),
            ("case.reopened", case_reopened()),
            (
                "record.corrected",
                record_corrected("e-1", "ENTERED_IN_ERROR"),
            ),
        ];
        assert_eq!(cases.len(), EventType::ALL.len(), "a type has no builder");
        for (i, (kind, data)) in cases.into_iter().enumerate() {
            let e = cloudevent(
                SOURCE,
                &format!("e-{i}"),
                kind,
                "2026-12-01T09:00:00Z",
                with_person(data, person(i as u64)),
            );
            let event = validate_event(&e, now).unwrap_or_else(|p| panic!("{kind}: {p:?}"));
            assert_eq!(
                event.event_type().as_str(),
                format!("throughcare.{kind}.v1")
            );
        }
    }
}
