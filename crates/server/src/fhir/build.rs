//! Builds the Bundle from a journey and the recorded events behind it: the Patient, the
//! episodes, and the Provenance of every resource. The ServiceRequests are in
//! `requests.rs`, the casework resources (plans, consents, encounters, flags) in `care.rs`. Pure: the
//! caller passes the events and the time; ids are derived from the person and ledger
//! positions, so the same ledger exports the same Bundle.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use throughcare_events::{EventData, EventType, PersonId, PersonRef, RecordedEvent};
use throughcare_projections::{Journey, JourneyView};

use super::facts::{Fact, Facts};
use super::status;
use super::systems::*;
use super::types::*;

/// One resource of the Bundle and the ledger positions it came from.
pub(super) struct Entry {
    pub full_url: String,
    pub resource: Resource,
    pub sources: Vec<u64>,
}

/// An export being built.
pub(super) struct Export<'a> {
    pub journey: &'a Journey,
    pub view: JourneyView,
    pub facts: Facts<'a>,
    person: PersonId,
    /// The Patient's full URL, the subject of everything else.
    pub patient: String,
    pub entries: Vec<Entry>,
}

/// The Bundle of `journey`, whose recorded events are `events` (up to its version), at
/// `now` (the time of the time-based flags and of the Bundle).
pub fn bundle(journey: &Journey, events: &[RecordedEvent], now: DateTime<Utc>) -> Bundle {
    let facts = Facts::new(events, journey);
    let first = facts.iter().next().map_or(0, Fact::position);
    let person = journey.person_id;
    let mut x = Export {
        journey,
        view: journey.view(now),
        facts,
        person,
        patient: full_url(&uuid(person, "Patient", first)),
        entries: Vec::new(),
    };
    x.patient(first);
    x.episodes();
    x.referrals();
    x.signposts();
    x.plans();
    x.consents();
    x.encounters();
    x.flags();
    let provenance: Vec<BundleEntry> = x.entries.iter().filter_map(|e| x.provenance(e)).collect();
    let mut entry: Vec<BundleEntry> = x
        .entries
        .into_iter()
        .map(|e| BundleEntry {
            full_url: e.full_url,
            resource: e.resource,
        })
        .collect();
    entry.extend(provenance);
    Bundle {
        resource_type: "Bundle",
        id: uuid(person, "Bundle", journey.version),
        kind: "collection",
        timestamp: instant(now),
        entry,
    }
}

/// A name-based UUID (RFC 9562 version 8: the first 128 bits of SHA-256 of the person,
/// the resource kind and its key, with the version and variant bits set).
pub fn uuid(person: PersonId, kind: &str, key: impl std::fmt::Display) -> String {
    let digest = Sha256::digest(format!("throughcare-fhir\n{person}\n{kind}\n{key}"));
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub fn full_url(uuid: &str) -> String {
    format!("urn:uuid:{uuid}")
}

/// The wire code of a serde enum (`FlagCode`, `Status`).
pub(super) fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// Which resource an event type feeds beyond its own (for the episode's Provenance): the
/// events that move an episode through its statuses. One arm per type.
fn moves_episode(t: EventType) -> bool {
    match t {
        EventType::ReferralReceived
        | EventType::ReferralAccepted
        | EventType::ReferralDeclined
        | EventType::ReferralWithdrawn
        | EventType::CaseAllocated
        | EventType::CaseClosed
        | EventType::CaseReopened
        | EventType::PrisonerReleased
        | EventType::PrisonerReturnedToCustody => true,
        EventType::ConsentGiven
        | EventType::ConsentWithdrawn
        | EventType::AssessmentCompleted
        | EventType::PlanAgreed
        | EventType::PlanReviewed
        | EventType::ReleaseDateSet
        | EventType::PrisonerTransferred
        | EventType::IdentifiersLinked
        | EventType::ContactAttempted
        | EventType::ContactMade
        | EventType::EngagementChanged
        | EventType::SignpostingMade
        | EventType::SignpostingOutcome
        | EventType::SafeguardingRaised
        | EventType::SupportExtended
        | EventType::RecordCorrected => false,
    }
}

/// The identifiers an event names, as `kind:value`.
fn named_identifiers(data: &EventData) -> Vec<String> {
    let of = |p: &PersonRef| {
        let mut v = Vec::new();
        v.extend(p.nhs_number.iter().map(|n| format!("nhs:{n}")));
        v.extend(p.nomis.iter().map(|n| format!("nomis:{n}")));
        v.extend(p.crn.iter().map(|n| format!("crn:{n}")));
        v
    };
    let mut names = of(data.person());
    if let EventData::IdentifiersLinked(d) = data {
        let i = &d.identifiers;
        names.extend(i.nhs_number.iter().map(|n| format!("nhs:{n}")));
        names.extend(i.nomis.iter().map(|n| format!("nomis:{n}")));
        names.extend(i.crn.iter().map(|n| format!("crn:{n}")));
    }
    names
}

impl Export<'_> {
    /// The full URL of the resource of `kind` keyed by `key` (a ledger position).
    pub fn url(&self, kind: &str, key: impl std::fmt::Display) -> String {
        full_url(&uuid(self.person, kind, key))
    }

    pub fn push(&mut self, full_url: String, resource: Resource, sources: Vec<u64>) {
        self.entries.push(Entry {
            full_url,
            resource,
            sources,
        });
    }

    pub fn subject(&self) -> Reference {
        Reference::to(&self.patient)
    }

    /// The EpisodeOfCare of episode `number`, keyed by the referral that opened it.
    pub fn episode_url(&self, number: u32) -> String {
        match self.facts.episode_start(number) {
            Some(p) => self.url("EpisodeOfCare", p),
            None => self.url("EpisodeOfCare", format!("n{number}")),
        }
    }

    /// Patient: every identifier of the person; its Provenance names the events that
    /// first named each one (identity claims stand even when the event was corrected).
    fn patient(&mut self, first: u64) {
        let ids = &self.journey.identifiers;
        let mut identifier = Vec::new();
        let mut add = |system: &'static str, values: &BTreeSet<String>| {
            identifier.extend(values.iter().map(|v| Identifier {
                system,
                value: v.clone(),
            }));
        };
        add(NHS_NUMBER, &ids.nhs_number);
        add(NOMIS, &ids.nomis);
        add(CRN, &ids.crn);
        let mut seen = BTreeSet::new();
        let mut sources = Vec::new();
        for f in self.facts.iter() {
            let mut names_new = f.kind() == EventType::IdentifiersLinked;
            for name in named_identifiers(&f.recorded.event.data) {
                names_new |= seen.insert(name);
            }
            if names_new {
                sources.push(f.position());
            }
        }
        let url = self.patient.clone();
        self.push(
            url,
            Resource::Patient(Patient {
                id: uuid(self.person, "Patient", first),
                identifier,
                active: true,
            }),
            sources,
        );
    }

    /// One EpisodeOfCare per episode of the journey.
    fn episodes(&mut self) {
        let last = self.journey.episodes.len();
        for (i, ep) in self.journey.episodes.iter().enumerate() {
            let current = (i + 1 == last).then_some(self.journey.status);
            let facts: Vec<&Fact> = self.facts.in_episode(ep.number).collect();
            let referral_request = facts
                .iter()
                .filter(|f| f.kind() == EventType::ReferralReceived && !f.is_void())
                .map(|f| Reference::to(&self.url("ServiceRequest", f.position())))
                .collect();
            let care_manager = facts
                .iter()
                .rev()
                .filter(|f| !f.is_void())
                .find_map(|f| match f.data() {
                    EventData::CaseAllocated(d) => Some(d),
                    _ => None,
                })
                .map(|d| Reference {
                    reference: None,
                    identifier: Some(Identifier {
                        system: WORKER,
                        value: d.worker_id.clone(),
                    }),
                    display: Some(d.worker_id.clone()),
                });
            let sources = facts
                .iter()
                .filter(|f| moves_episode(f.kind()))
                .map(|f| f.position())
                .collect();
            let url = self.episode_url(ep.number);
            let resource = EpisodeOfCare {
                id: url.trim_start_matches("urn:uuid:").into(),
                extension: current
                    .map(|s| Extension {
                        url: JOURNEY_STATUS,
                        value: ExtensionValue::Code(wire(&s)),
                    })
                    .into_iter()
                    .collect(),
                status: status::episode_status(ep, current),
                kind: vec![programme()],
                patient: self.subject(),
                period: Period {
                    start: Some(instant(ep.opened_at)),
                    end: ep.closed_at.map(instant),
                },
                referral_request,
                care_manager,
            };
            self.push(url, Resource::EpisodeOfCare(resource), sources);
        }
    }

    /// The Provenance of one entry: every ledger position behind it and the corrections
    /// that name them, each with its hash.
    fn provenance(&self, e: &Entry) -> Option<BundleEntry> {
        if e.sources.is_empty() {
            return None;
        }
        let facts: Vec<&Fact> = self
            .facts
            .with_corrections(&e.sources)
            .into_iter()
            .filter_map(|p| self.facts.get(p))
            .collect();
        let recorded = facts.iter().map(|f| f.recorded.recorded_at).max()?;
        let mut agent = vec![ProvenanceAgent {
            kind: CodeableConcept::coded(PARTICIPANT_TYPE, "assembler", "Assembler"),
            who: Reference::display("throughcare ledger"),
        }];
        let mut authors = BTreeSet::new();
        for f in &facts {
            let source = &f.recorded.event.source;
            if authors.insert(source.as_str()) {
                agent.push(ProvenanceAgent {
                    kind: CodeableConcept::coded(PARTICIPANT_TYPE, "author", "Author"),
                    who: Reference::display(source.clone()),
                });
            }
        }
        let entity = facts
            .iter()
            .map(|f| ProvenanceEntity {
                extension: vec![Extension {
                    url: LEDGER_HASH,
                    value: ExtensionValue::String(f.recorded.hash.to_hex()),
                }],
                role: if f.kind() == EventType::RecordCorrected {
                    "revision"
                } else {
                    "source"
                },
                what: Reference {
                    reference: None,
                    identifier: Some(Identifier {
                        system: LEDGER_POSITION,
                        value: f.position().to_string(),
                    }),
                    display: Some(f.kind().as_str().into()),
                },
            })
            .collect();
        let target = e.full_url.trim_start_matches("urn:uuid:");
        let id = uuid(self.person, "Provenance", target);
        Some(BundleEntry {
            full_url: full_url(&id),
            resource: Resource::Provenance(Provenance {
                id,
                target: vec![Reference::to(&e.full_url)],
                recorded: instant(recorded),
                agent,
                entity,
            }),
        })
    }
}

/// The service every episode and referral is of.
pub(super) fn programme() -> CodeableConcept {
    CodeableConcept::coded(
        PROGRAMME,
        "CARE_AFTER_CUSTODY",
        "Care after custody (RECONNECT)",
    )
}
