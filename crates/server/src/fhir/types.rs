//! The FHIR R4 shapes the export serves, as typed `Serialize` structs: only the elements
//! it fills, under FHIR's JSON names. Not a FHIR library: nothing here reads FHIR, and no
//! element is here that the export does not write.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

/// A FHIR `dateTime` / `instant` (UTC, milliseconds).
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A FHIR `date`.
pub fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coding {
    pub system: &'static str,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CodeableConcept {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// One code of `system`, with the code as the text.
    pub fn code(system: &'static str, code: impl Into<String>) -> Self {
        let code = code.into();
        CodeableConcept {
            coding: vec![Coding {
                system,
                code: code.clone(),
                display: None,
            }],
            text: Some(code),
        }
    }

    /// One code of `system` with its display, which is also the text.
    pub fn coded(system: &'static str, code: &str, display: &str) -> Self {
        CodeableConcept {
            coding: vec![Coding {
                system,
                code: code.into(),
                display: Some(display.into()),
            }],
            text: Some(display.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identifier {
    pub system: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Reference {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Reference {
    /// A reference to an entry of the same Bundle, by its `urn:uuid:` full URL.
    pub fn to(full_url: &str) -> Self {
        Reference {
            reference: Some(full_url.into()),
            ..Reference::default()
        }
    }

    /// A party that is named, not a resource of the Bundle.
    pub fn display(display: impl Into<String>) -> Self {
        Reference {
            display: Some(display.into()),
            ..Reference::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Period {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Extension {
    pub url: &'static str,
    #[serde(flatten)]
    pub value: ExtensionValue,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExtensionValue {
    #[serde(rename = "valueCode")]
    Code(String),
    #[serde(rename = "valueString")]
    String(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    pub text: String,
}

/// Every resource the export writes; `resourceType` is the variant's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "resourceType")]
pub enum Resource {
    Patient(Patient),
    EpisodeOfCare(EpisodeOfCare),
    ServiceRequest(ServiceRequest),
    CarePlan(CarePlan),
    Consent(Consent),
    Encounter(Encounter),
    Flag(Flag),
    Provenance(Provenance),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patient {
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EpisodeOfCare {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: Vec<CodeableConcept>,
    pub patient: Reference,
    pub period: Period,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referral_request: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub care_manager: Option<Reference>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    pub status: &'static str,
    pub intent: &'static str,
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    pub authored_on: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_code: Vec<CodeableConcept>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CarePlan {
    pub id: String,
    pub status: &'static str,
    pub intent: &'static str,
    pub title: String,
    pub subject: Reference,
    pub period: Period,
    pub created: String,
    pub activity: Vec<CarePlanActivity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarePlanActivity {
    pub detail: CarePlanDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CarePlanDetail {
    pub code: CodeableConcept,
    pub reason_code: Vec<CodeableConcept>,
    pub status: &'static str,
    pub scheduled_period: Period,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    pub id: String,
    pub status: &'static str,
    pub scope: CodeableConcept,
    pub category: Vec<CodeableConcept>,
    pub patient: Reference,
    pub date_time: String,
    pub policy_rule: CodeableConcept,
    pub provision: ConsentProvision,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentProvision {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actor: Vec<ConsentActor>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentActor {
    pub role: CodeableConcept,
    pub reference: Reference,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encounter {
    pub id: String,
    pub status: &'static str,
    pub class: Coding,
    #[serde(rename = "type")]
    pub kind: Vec<CodeableConcept>,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub episode_of_care: Vec<Reference>,
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub id: String,
    pub status: &'static str,
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub id: String,
    pub target: Vec<Reference>,
    pub recorded: String,
    pub agent: Vec<ProvenanceAgent>,
    pub entity: Vec<ProvenanceEntity>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvenanceAgent {
    #[serde(rename = "type")]
    pub kind: CodeableConcept,
    pub who: Reference,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvenanceEntity {
    pub extension: Vec<Extension>,
    pub role: &'static str,
    pub what: Reference,
}

/// A Bundle of type `collection`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bundle {
    #[serde(rename = "resourceType")]
    pub resource_type: &'static str,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub timestamp: String,
    pub entry: Vec<BundleEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    pub full_url: String,
    pub resource: Resource,
}
