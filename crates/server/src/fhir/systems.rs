//! The URIs the export writes: identifier systems, extension URLs and code systems
//! (throughcare's own under `https://throughcare.example/`, as DESIGN.md allows until the
//! README names better ones; HL7's and LOINC's where FHIR has a code for the thing).

/// The media type of the answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Identifier systems (README "FHIR R4").
pub const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const NOMIS: &str = "https://throughcare.example/Id/nomis";
pub const CRN: &str = "https://throughcare.example/Id/crn";
pub const WORKER: &str = "https://throughcare.example/Id/worker";
/// A ledger position (Provenance.entity.what.identifier).
pub const LEDGER_POSITION: &str = "https://throughcare.example/Id/ledger-position";

/// Extensions.
pub const LEDGER_HASH: &str = "https://throughcare.example/fhir/StructureDefinition/ledger-hash";
pub const JOURNEY_STATUS: &str =
    "https://throughcare.example/fhir/StructureDefinition/journey-status";
pub const SIGNPOST_OUTCOME: &str =
    "https://throughcare.example/fhir/StructureDefinition/signpost-outcome";

/// throughcare's own code systems (the catalogue's codes, as DESIGN.md names them).
pub const PROGRAMME: &str = "https://throughcare.example/CodeSystem/programme";
pub const REQUEST_CATEGORY: &str = "https://throughcare.example/CodeSystem/request-category";
pub const VULNERABILITY: &str = "https://throughcare.example/CodeSystem/vulnerability";
pub const SERVICE_TYPE: &str = "https://throughcare.example/CodeSystem/service-type";
pub const NEED_DOMAIN: &str = "https://throughcare.example/CodeSystem/need-domain";
pub const CONTACT_CHANNEL: &str = "https://throughcare.example/CodeSystem/contact-channel";
pub const FLAG: &str = "https://throughcare.example/CodeSystem/flag";

/// HL7 and LOINC code systems.
pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const V3_PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const FLAG_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/flag-category";
pub const PARTICIPANT_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
pub const LOINC: &str = "http://loinc.org";
