//! The ServiceRequests of the Bundle: one per referral received (its status from the
//! journey's referral, the requester the referrer's kind, a decline or withdrawal reason
//! as a note) and one per signpost (its status and extension from the outcome).

use throughcare_events::{EventData, EventType};

use super::build::{programme, Export};
use super::facts::Fact;
use super::status::{self, ENTERED_IN_ERROR};
use super::systems::*;
use super::types::*;

impl Export<'_> {
    /// One ServiceRequest per referral received; its status from the journey's referral.
    pub(super) fn referrals(&mut self) {
        let received: Vec<&Fact> = self
            .facts
            .iter()
            .filter(|f| f.kind() == EventType::ReferralReceived)
            .collect();
        let mut out = Vec::new();
        for f in received {
            let EventData::ReferralReceived(d) = f.data() else {
                continue;
            };
            let number = self.facts.episode_of(f.position());
            let ep = number.and_then(|n| self.journey.episodes.iter().find(|e| e.number == n));
            // The decisions about it in its episode.
            let decisions: Vec<&Fact> = number
                .into_iter()
                .flat_map(|n| self.facts.in_episode(n))
                .filter(|g| g.position() > f.position())
                .filter(|g| match g.data() {
                    EventData::ReferralAccepted(x) => x.referral_id == d.referral_id,
                    EventData::ReferralDeclined(x) => x.referral_id == d.referral_id,
                    EventData::ReferralWithdrawn(x) => x.referral_id == d.referral_id,
                    _ => false,
                })
                .collect();
            let status = match (f.is_void(), ep) {
                (true, _) => ENTERED_IN_ERROR,
                (false, Some(ep)) => ep
                    .referrals
                    .iter()
                    .find(|r| r.referral_id == d.referral_id)
                    .map_or("unknown", |r| {
                        status::referral_status(r.state, ep.closed_at.is_some())
                    }),
                (false, None) => "unknown",
            };
            let note = decisions
                .iter()
                .filter(|g| !g.is_void())
                .filter_map(|g| match g.data() {
                    EventData::ReferralDeclined(x) => Some(format!("declined: {}", x.reason)),
                    EventData::ReferralWithdrawn(x) => Some(match x.reason {
                        Some(r) => format!("withdrawn: {r}"),
                        None => "withdrawn".into(),
                    }),
                    _ => None,
                })
                .map(|text| Annotation { text })
                .collect();
            let url = self.url("ServiceRequest", f.position());
            let resource = ServiceRequest {
                id: url.trim_start_matches("urn:uuid:").into(),
                extension: Vec::new(),
                status,
                intent: "order",
                category: vec![CodeableConcept::coded(
                    REQUEST_CATEGORY,
                    "REFERRAL",
                    "Referral to the care-after-custody service",
                )],
                code: programme(),
                subject: self.subject(),
                authored_on: instant(f.time()),
                requester: Some(Reference::display(d.referrer.kind.as_str())),
                performer: Vec::new(),
                reason_code: d
                    .vulnerabilities
                    .iter()
                    .map(|v| CodeableConcept::code(VULNERABILITY, v.as_str()))
                    .collect(),
                note,
            };
            let mut sources = vec![f.position()];
            sources.extend(decisions.iter().map(|g| g.position()));
            out.push((url, resource, sources));
        }
        for (url, resource, sources) in out {
            self.push(url, Resource::ServiceRequest(resource), sources);
        }
    }

    /// One ServiceRequest per signpost, with its outcome.
    pub(super) fn signposts(&mut self) {
        let mut out = Vec::new();
        for f in self.facts.iter() {
            let EventData::SignpostingMade(d) = f.data() else {
                continue;
            };
            let number = self.facts.episode_of(f.position()).unwrap_or(0);
            let signpost = self
                .journey
                .signposts
                .iter()
                .filter(|s| s.signpost_id == d.signpost_id)
                .find(|s| s.episode == number || s.episode == 0);
            let outcomes: Vec<u64> = self
                .facts
                .iter()
                .filter(|g| g.position() > f.position())
                .filter(|g| {
                    matches!(g.data(), EventData::SignpostingOutcome(x) if x.signpost_id == d.signpost_id)
                })
                .map(Fact::position)
                .collect();
            let outcome = signpost.filter(|_| !f.is_void()).and_then(|s| s.outcome);
            let status = if f.is_void() {
                ENTERED_IN_ERROR
            } else {
                status::signpost_status(outcome)
            };
            let note = match (outcome, signpost.and_then(|s| s.outcome_at)) {
                (Some(o), Some(at)) => vec![Annotation {
                    text: format!("outcome {o} at {}", instant(at)),
                }],
                _ => Vec::new(),
            };
            let url = self.url("ServiceRequest", f.position());
            let resource = ServiceRequest {
                id: url.trim_start_matches("urn:uuid:").into(),
                extension: outcome
                    .map(|o| Extension {
                        url: SIGNPOST_OUTCOME,
                        value: ExtensionValue::Code(o.as_str().into()),
                    })
                    .into_iter()
                    .collect(),
                status,
                intent: status::signpost_intent(d.mode),
                category: vec![CodeableConcept::coded(
                    REQUEST_CATEGORY,
                    "SIGNPOST",
                    "Signposting to a community service",
                )],
                code: CodeableConcept::code(SERVICE_TYPE, d.service_type.as_str()),
                subject: self.subject(),
                authored_on: instant(f.time()),
                requester: None,
                performer: vec![Reference::display(d.org.clone())],
                reason_code: Vec::new(),
                note,
            };
            let mut sources = vec![f.position()];
            sources.extend(outcomes);
            out.push((url, resource, sources));
        }
        for (url, resource, sources) in out {
            self.push(url, Resource::ServiceRequest(resource), sources);
        }
    }
}
