//! The casework resources of the Bundle: a CarePlan per episode's plan (and one per plan
//! entered in error), a Consent per consent decision, an Encounter per contact made, and a
//! Flag per flag of the journey (cleared ones inactive, with the period's end).

use throughcare_events::catalogue::{ConsentScope, NeedDomain, PlanAction};
use throughcare_events::{EventData, EventType};

use super::build::{wire, Export};
use super::facts::Fact;
use super::status::{self, ENTERED_IN_ERROR};
use super::systems::*;
use super::types::*;

impl Export<'_> {
    /// A CarePlan for each episode's plan as it stands (the last plan.agreed or
    /// plan.reviewed of the episode), and one entered in error per voided plan event.
    pub(super) fn plans(&mut self) {
        let journey = self.journey;
        let mut out = Vec::new();
        for ep in &journey.episodes {
            let facts: Vec<&Fact> = self
                .facts
                .in_episode(ep.number)
                .filter(|f| matches!(f.kind(), EventType::PlanAgreed | EventType::PlanReviewed))
                .collect();
            for f in facts.iter().filter(|f| f.is_void()) {
                let (actions, next_review) = plan_of(f);
                let url = self.url("CarePlan", f.position());
                let plan = self.care_plan(&url, ENTERED_IN_ERROR, f, actions, next_review, |_| {
                    ENTERED_IN_ERROR
                });
                out.push((url, plan, vec![f.position()]));
            }
            let standing: Vec<&&Fact> = facts.iter().filter(|f| !f.is_void()).collect();
            let (Some(first), Some(last)) = (standing.first(), standing.last()) else {
                continue;
            };
            let (actions, next_review) = plan_of(last);
            let outcomes = |action: &PlanAction| {
                let o: Vec<_> = journey
                    .signposts
                    .iter()
                    .filter(|s| s.episode == ep.number && s.service_type == action.service_type)
                    .map(|s| s.outcome)
                    .collect();
                status::activity_status(&o)
            };
            let status = if ep.closed_at.is_some() {
                "completed"
            } else {
                "active"
            };
            let url = self.url("CarePlan", first.position());
            let plan = self.care_plan(&url, status, first, actions, next_review, outcomes);
            out.push((url, plan, standing.iter().map(|f| f.position()).collect()));
        }
        for (url, plan, sources) in out {
            self.push(url, Resource::CarePlan(plan), sources);
        }
    }

    fn care_plan(
        &self,
        url: &str,
        status: &'static str,
        agreed: &Fact,
        actions: &[PlanAction],
        next_review: Option<chrono::NaiveDate>,
        activity_status: impl Fn(&PlanAction) -> &'static str,
    ) -> CarePlan {
        let activity = actions
            .iter()
            .map(|a| CarePlanActivity {
                detail: CarePlanDetail {
                    code: CodeableConcept::code(SERVICE_TYPE, a.service_type.as_str()),
                    reason_code: vec![need(a.need)],
                    status: activity_status(a),
                    scheduled_period: Period {
                        start: None,
                        end: Some(date(a.due_by)),
                    },
                    description: format!("{} for {} by {}", a.service_type, a.need, date(a.due_by)),
                },
            })
            .collect();
        CarePlan {
            id: url.trim_start_matches("urn:uuid:").into(),
            status,
            intent: "plan",
            title: "Care after custody support plan".into(),
            subject: self.subject(),
            period: Period {
                start: Some(instant(agreed.time())),
                end: None,
            },
            created: instant(agreed.time()),
            activity,
            note: next_review
                .map(|d| Annotation {
                    text: format!("next review by {}", date(d)),
                })
                .into_iter()
                .collect(),
        }
    }

    /// A Consent per consent.given / consent.withdrawn. A decision is `active` while it is
    /// the one in force for its scope (and, for sharing, its organisations) in the current
    /// episode, `inactive` once a later decision or a new episode replaced it.
    pub(super) fn consents(&mut self) {
        let last_episode = self.journey.episodes.last().map(|e| e.number);
        let decisions: Vec<&Fact> = self
            .facts
            .iter()
            .filter(|f| {
                matches!(
                    f.kind(),
                    EventType::ConsentGiven | EventType::ConsentWithdrawn
                )
            })
            .collect();
        let mut out = Vec::new();
        for (i, f) in decisions.iter().enumerate() {
            let Some((given, scope, orgs)) = consent_of(f) else {
                continue;
            };
            let replaced = self.facts.episode_of(f.position()) != last_episode
                || decisions[i + 1..]
                    .iter()
                    .filter(|g| !g.is_void())
                    .filter_map(|g| consent_of(g))
                    .any(|later| replaces(later, scope, orgs));
            let consent = &self.journey.consent;
            let in_force = match scope {
                ConsentScope::Engage => consent.engage,
                ConsentScope::ShareWith => orgs.iter().any(|o| consent.share_with.contains(o)),
            };
            let status = match (f.is_void(), replaced, given) {
                (true, _, _) => ENTERED_IN_ERROR,
                (false, true, _) => "inactive",
                (false, false, false) => "active",
                (false, false, true) if in_force => "active",
                (false, false, true) => "inactive",
            };
            let (scope_code, scope_display) = match scope {
                ConsentScope::Engage => ("treatment", "Treatment"),
                ConsentScope::ShareWith => ("patient-privacy", "Privacy Consent"),
            };
            let url = self.url("Consent", f.position());
            let resource = Consent {
                id: url.trim_start_matches("urn:uuid:").into(),
                status,
                scope: CodeableConcept::coded(CONSENT_SCOPE, scope_code, scope_display),
                category: vec![CodeableConcept::coded(LOINC, "59284-0", "Patient Consent")],
                patient: self.subject(),
                date_time: instant(f.time()),
                policy_rule: if given {
                    CodeableConcept::coded(V3_ACT_CODE, "OPTIN", "opt-in")
                } else {
                    CodeableConcept::coded(V3_ACT_CODE, "OPTOUT", "opt-out")
                },
                provision: ConsentProvision {
                    kind: if given { "permit" } else { "deny" },
                    actor: orgs
                        .iter()
                        .map(|o| ConsentActor {
                            role: CodeableConcept::coded(
                                V3_PARTICIPATION_TYPE,
                                "IRCP",
                                "information recipient",
                            ),
                            reference: Reference::display(o.clone()),
                        })
                        .collect(),
                },
            };
            out.push((url, resource, vec![f.position()]));
        }
        for (url, resource, sources) in out {
            self.push(url, Resource::Consent(resource), sources);
        }
    }

    /// An Encounter per contact.made (those recorded with an outcome that is not contact,
    /// before issue 9 refused them, are attempts and are left out).
    pub(super) fn encounters(&mut self) {
        let mut out = Vec::new();
        for f in self.facts.iter() {
            let EventData::ContactMade(d) = f.data() else {
                continue;
            };
            if d.outcome.is_some_and(|o| !o.is_contact()) {
                continue;
            }
            let (code, display) = status::encounter_class(d.channel);
            let url = self.url("Encounter", f.position());
            let resource = Encounter {
                id: url.trim_start_matches("urn:uuid:").into(),
                status: if f.is_void() {
                    ENTERED_IN_ERROR
                } else {
                    "finished"
                },
                class: Coding {
                    system: V3_ACT_CODE,
                    code: code.into(),
                    display: Some(display.into()),
                },
                kind: vec![CodeableConcept::code(CONTACT_CHANNEL, d.channel.as_str())],
                subject: self.subject(),
                episode_of_care: self
                    .facts
                    .episode_of(f.position())
                    .map(|n| Reference::to(&self.episode_url(n)))
                    .into_iter()
                    .collect(),
                period: Period {
                    start: Some(instant(f.time())),
                    end: None,
                },
            };
            out.push((url, resource, vec![f.position()]));
        }
        for (url, resource, sources) in out {
            self.push(url, Resource::Encounter(resource), sources);
        }
    }

    /// A Flag per flag of the journey at the export's time: raised by events (with the
    /// events that raised and cleared it) or by time (no ledger position behind it).
    pub(super) fn flags(&mut self) {
        let mut out = Vec::new();
        for flag in &self.view.flags {
            let code = wire(&flag.code);
            let key = match flag.raised_by {
                Some(p) => format!("{code}@{p}"),
                None => format!("{code}@time"),
            };
            let (category, category_display) = status::flag_category(flag.code);
            let url = self.url("Flag", key);
            let resource = Flag {
                id: url.trim_start_matches("urn:uuid:").into(),
                status: if flag.is_active() {
                    "active"
                } else {
                    "inactive"
                },
                category: vec![CodeableConcept::coded(
                    FLAG_CATEGORY,
                    category,
                    category_display,
                )],
                code: CodeableConcept::code(FLAG, code),
                subject: self.subject(),
                period: Period {
                    start: Some(instant(flag.raised_at)),
                    end: flag.cleared_at.map(instant),
                },
            };
            let sources = flag.raised_by.into_iter().chain(flag.cleared_by).collect();
            out.push((url, resource, sources));
        }
        for (url, resource, sources) in out {
            self.push(url, Resource::Flag(resource), sources);
        }
    }
}

/// The actions and next review of a plan event.
fn plan_of<'f>(f: &'f Fact) -> (&'f [PlanAction], Option<chrono::NaiveDate>) {
    match f.data() {
        EventData::PlanAgreed(d) => (&d.actions, d.next_review),
        EventData::PlanReviewed(d) => (&d.actions, d.next_review),
        _ => (&[], None),
    }
}

/// (given, scope, organisations) of a consent decision.
fn consent_of<'f>(f: &'f Fact) -> Option<(bool, ConsentScope, &'f [String])> {
    let orgs = |o: &'f Option<Vec<String>>| o.as_deref().unwrap_or_default();
    match f.data() {
        EventData::ConsentGiven(d) => Some((true, d.scope, orgs(&d.orgs))),
        EventData::ConsentWithdrawn(d) => Some((false, d.scope, orgs(&d.orgs))),
        _ => None,
    }
}

/// Whether a later decision replaces one about `scope` and `orgs`: any later ENGAGE
/// decision replaces an ENGAGE one; withdrawing ENGAGE also ends all sharing (as the fold
/// does); a later SHARE_WITH replaces an earlier one when it names all of its orgs.
fn replaces(later: (bool, ConsentScope, &[String]), scope: ConsentScope, orgs: &[String]) -> bool {
    let (later_given, later_scope, later_orgs) = later;
    match (scope, later_scope) {
        (ConsentScope::Engage, ConsentScope::Engage) => true,
        (ConsentScope::ShareWith, ConsentScope::Engage) => !later_given,
        (ConsentScope::Engage, ConsentScope::ShareWith) => false,
        (ConsentScope::ShareWith, ConsentScope::ShareWith) => {
            !orgs.is_empty() && orgs.iter().all(|o| later_orgs.contains(o))
        }
    }
}

fn need(domain: NeedDomain) -> CodeableConcept {
    CodeableConcept::code(NEED_DOMAIN, domain.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_consent_decisions_replace_earlier_ones() {
        let orgs = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (gp, both) = (orgs(&["GP"]), orgs(&["GP", "HOUSING"]));
        use ConsentScope::{Engage, ShareWith};
        let check = |later, scope, earlier: &[String], expected| {
            assert_eq!(
                replaces(later, scope, earlier),
                expected,
                "{later:?} {scope:?}"
            );
        };
        check((true, Engage, &[]), Engage, &[], true);
        check((false, Engage, &[]), Engage, &[], true);
        check((false, Engage, &[]), ShareWith, &gp, true);
        check((true, Engage, &[]), ShareWith, &gp, false);
        check((true, ShareWith, &gp), Engage, &[], false);
        check((false, ShareWith, &both), ShareWith, &gp, true);
        check((false, ShareWith, &gp), ShareWith, &both, false);
    }
}
