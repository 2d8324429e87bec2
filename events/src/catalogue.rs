//! The event catalogue: one type per event in DESIGN.md, its code lists, and the
//! `EventType` ↔ `EventData` mapping. Events are a persisted contract: never rename a
//! field or a type; add fields with defaults; a new shape is a new `.vN`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::ids::{Crn, NhsNumber, Nomis, PersonRef, PrisonCode};
use crate::problems::{FromJson, Problems};
use crate::{codes, record};

/// Personal free text (names, addresses, notes), kept in one place per event so that it
/// can later be encrypted per person and erased by destroying the key.
pub type Personal = BTreeMap<String, String>;

codes! { pub enum ReferrerKind {
    PrisonHealthcare = "PRISON_HEALTHCARE", Probation = "PROBATION", LiaisonDiversion = "LIAISON_DIVERSION",
    SubstanceMisuse = "SUBSTANCE_MISUSE", SelfReferral = "SELF", PrisonStaff = "PRISON_STAFF", FamilyFriend = "FAMILY_FRIEND",
} }
codes! { pub enum Vulnerability {
    MentalHealth = "MENTAL_HEALTH", Autism = "AUTISM", Adhd = "ADHD", LearningDisability = "LEARNING_DISABILITY",
    Communication = "COMMUNICATION", Trauma = "TRAUMA", Other = "OTHER",
    // Named by the RECONNECT service specification (issue 9); a learning difficulty is not
    // a learning disability.
    LearningDifficulty = "LEARNING_DIFFICULTY", PersonalityDisorder = "PERSONALITY_DISORDER",
    AcquiredBrainInjury = "ACQUIRED_BRAIN_INJURY", PhysicalHealth = "PHYSICAL_HEALTH", Veteran = "VETERAN",
} }
codes! { pub enum DeclineReason {
    Ineligible = "INELIGIBLE", OutsideWindow = "OUTSIDE_WINDOW", OutOfArea = "OUT_OF_AREA",
    EnhancedService = "ENHANCED_SERVICE", Duplicate = "DUPLICATE",
} }
codes! { pub enum WithdrawReason {
    PersonDeclined = "PERSON_DECLINED", ReferrerWithdrew = "REFERRER_WITHDREW", NoLongerNeeded = "NO_LONGER_NEEDED", Other = "OTHER",
} }
codes! { pub enum WorkerRole {
    PeerSupport = "PEER_SUPPORT", SupportTimeRecovery = "SUPPORT_TIME_RECOVERY", Navigator = "NAVIGATOR",
} }
codes! { pub enum ConsentScope { Engage = "ENGAGE", ShareWith = "SHARE_WITH" } }
codes! { pub enum AssessmentKind { Initial = "INITIAL", PreRelease = "PRE_RELEASE", Review = "REVIEW" } }
codes! { pub enum NeedDomain {
    Accommodation = "ACCOMMODATION", Health = "HEALTH", MentalHealth = "MENTAL_HEALTH",
    DrugsAndAlcohol = "DRUGS_AND_ALCOHOL", FinanceAndId = "FINANCE_AND_ID",
    EducationSkillsAndWork = "EDUCATION_SKILLS_AND_WORK", ChildrenFamiliesAndCommunity = "CHILDREN_FAMILIES_AND_COMMUNITY",
} }
codes! { pub enum NeedLevel { None = "NONE", Low = "LOW", Medium = "MEDIUM", High = "HIGH" } }
codes! { pub enum ReleaseDateType {
    Confirmed = "CONFIRMED", Crd = "CRD", Ard = "ARD", Hdcad = "HDCAD", Ped = "PED", Hdced = "HDCED",
} }

impl ReleaseDateType {
    /// Parole and home detention curfew eligibility dates say when a release may be
    /// considered, not when it will happen: they are never the release date.
    pub fn is_eligibility(self) -> bool {
        matches!(self, ReleaseDateType::Ped | ReleaseDateType::Hdced)
    }

    /// HMPPS precedence among release dates (higher wins): a confirmed date, then an
    /// approved curfew date, then the automatic and conditional release dates; `None`
    /// for eligibility dates, which never are the release date.
    pub fn precedence(self) -> Option<u8> {
        match self {
            ReleaseDateType::Confirmed => Some(4),
            ReleaseDateType::Hdcad => Some(3),
            ReleaseDateType::Ard => Some(2),
            ReleaseDateType::Crd => Some(1),
            ReleaseDateType::Ped | ReleaseDateType::Hdced => None,
        }
    }
}
codes! { pub enum ReleaseReason { Released = "RELEASED", ReleasedToHospital = "RELEASED_TO_HOSPITAL" } }
codes! { pub enum ContactChannel { Gate = "GATE", Phone = "PHONE", Sms = "SMS", Outreach = "OUTREACH", ViaProbation = "VIA_PROBATION" } }
codes! { pub enum ContactOutcome {
    Met = "MET", Spoke = "SPOKE", NoAnswer = "NO_ANSWER", MessageLeft = "MESSAGE_LEFT",
    NotFound = "NOT_FOUND", Declined = "DECLINED",
} }

impl ContactOutcome {
    /// Whether the outcome is contact with the person (MET, SPOKE); the others are what an
    /// attempt can end in.
    pub fn is_contact(self) -> bool {
        matches!(self, ContactOutcome::Met | ContactOutcome::Spoke)
    }
}
codes! { pub enum EngagementStatus { Engaged = "ENGAGED", Disengaged = "DISENGAGED", LostContact = "LOST_CONTACT" } }
codes! { pub enum ServiceType {
    Gp = "GP", Cmht = "CMHT", TalkingTherapies = "TALKING_THERAPIES", SubstanceMisuse = "SUBSTANCE_MISUSE",
    Housing = "HOUSING", Benefits = "BENEFITS", Id = "ID", SocialCare = "SOCIAL_CARE", PeerGroup = "PEER_GROUP", Veterans = "VETERANS",
} }
codes! { pub enum SignpostMode { Signposted = "SIGNPOSTED", Referred = "REFERRED", Accompanied = "ACCOMPANIED" } }
codes! { pub enum SignpostOutcome {
    GpRegistered = "GP_REGISTERED", Attended = "ATTENDED", Accepted = "ACCEPTED", HousingSettled = "HOUSING_SETTLED",
    HousingTemporary = "HOUSING_TEMPORARY", Declined = "DECLINED", Rejected = "REJECTED", NoResponse = "NO_RESPONSE",
} }
codes! { pub enum SafeguardingCategory {
    SelfHarm = "SELF_HARM", SuicideRisk = "SUICIDE_RISK", HarmToOthers = "HARM_TO_OTHERS", Exploitation = "EXPLOITATION",
    DomesticAbuse = "DOMESTIC_ABUSE", Neglect = "NEGLECT", Other = "OTHER",
} }
codes! { pub enum ExtensionReason {
    OngoingNeeds = "ONGOING_NEEDS", AwaitingService = "AWAITING_SERVICE", RecentCrisis = "RECENT_CRISIS", Other = "OTHER",
} }
codes! { pub enum CloseReason {
    NeedsMet = "NEEDS_MET", SixMonthLimit = "SIX_MONTH_LIMIT", DeclinedSupport = "DECLINED_SUPPORT",
    ConsentWithdrawn = "CONSENT_WITHDRAWN", LostContact = "LOST_CONTACT", ReturnedToCustody = "RETURNED_TO_CUSTODY",
    MovedArea = "MOVED_AREA", Died = "DIED",
} }
codes! { pub enum CorrectionKind {
    EnteredInError = "ENTERED_IN_ERROR", WrongPerson = "WRONG_PERSON", WrongDate = "WRONG_DATE", WrongValue = "WRONG_VALUE",
} }

record! { /// Who referred the person.
pub struct Referrer {
    pub kind: ReferrerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
} }

record! { /// One assessed need.
pub struct Need { pub domain: NeedDomain, pub level: NeedLevel } }

record! { /// One action of a care plan.
pub struct PlanAction { pub need: NeedDomain, pub service_type: ServiceType, pub due_by: NaiveDate } }

record! { /// Identifiers to link to the person (identifiers.linked).
pub struct LinkedIdentifiers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nomis: Option<Nomis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<NhsNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crn: Option<Crn>,
} }

/// Declares the data records of the catalogue: every one names its `person` and may carry
/// one `personal` object; the rest is the event's own fields.
macro_rules! events {
    ($( $(#[$m:meta])* $name:ident { $( $(#[$fm:meta])* $f:ident : $t:ty ),* $(,)? } )*) => {
        $( record! { $(#[$m])* pub struct $name {
            pub person: PersonRef,
            $( $(#[$fm])* pub $f: $t, )*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub personal: Option<Personal>,
        } } )*
    };
}

events! {
    /// throughcare.referral.received.v1
    ReferralReceived {
        referral_id: String,
        referrer: Referrer,
        prison: PrisonCode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_release_date: Option<NaiveDate>,
        vulnerabilities: Vec<Vulnerability>,
    }
    /// throughcare.referral.accepted.v1
    ReferralAccepted { referral_id: String }
    /// throughcare.referral.declined.v1
    ReferralDeclined { referral_id: String, reason: DeclineReason }
    /// throughcare.referral.withdrawn.v1
    ReferralWithdrawn {
        referral_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<WithdrawReason>,
    }
    /// throughcare.case.allocated.v1
    CaseAllocated { worker_id: String, worker_role: WorkerRole }
    /// throughcare.consent.given.v1
    ConsentGiven {
        scope: ConsentScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orgs: Option<Vec<String>>,
    }
    /// throughcare.consent.withdrawn.v1
    ConsentWithdrawn {
        scope: ConsentScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        orgs: Option<Vec<String>>,
    }
    /// throughcare.assessment.completed.v1
    AssessmentCompleted { kind: AssessmentKind, needs: Vec<Need> }
    /// throughcare.plan.agreed.v1
    PlanAgreed {
        actions: Vec<PlanAction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_review: Option<NaiveDate>,
    }
    /// throughcare.plan.reviewed.v1
    PlanReviewed {
        actions: Vec<PlanAction>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_review: Option<NaiveDate>,
    }
    /// throughcare.release_date.set.v1
    ReleaseDateSet { date: NaiveDate, date_type: ReleaseDateType }
    /// throughcare.prisoner.transferred.v1
    PrisonerTransferred { from_prison: PrisonCode, to_prison: PrisonCode }
    /// throughcare.prisoner.released.v1
    PrisonerReleased {
        prison: PrisonCode,
        reason: ReleaseReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local_authority: Option<String>,
    }
    /// throughcare.prisoner.returned_to_custody.v1
    PrisonerReturnedToCustody { prison: PrisonCode, recall: bool }
    /// throughcare.identifiers.linked.v1
    IdentifiersLinked { identifiers: LinkedIdentifiers }
    /// throughcare.contact.attempted.v1
    ContactAttempted {
        channel: ContactChannel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<ContactOutcome>,
    }
    /// throughcare.contact.made.v1
    ContactMade {
        channel: ContactChannel,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<ContactOutcome>,
    }
    /// throughcare.engagement.changed.v1
    EngagementChanged { status: EngagementStatus }
    /// throughcare.signposting.made.v1
    SignpostingMade { signpost_id: String, service_type: ServiceType, org: String, mode: SignpostMode }
    /// throughcare.signposting.outcome.v1
    SignpostingOutcome { signpost_id: String, outcome: SignpostOutcome }
    /// throughcare.safeguarding.raised.v1
    SafeguardingRaised { category: SafeguardingCategory, referred_to: String }
    /// throughcare.support.extended.v1
    SupportExtended { until: NaiveDate, reason: ExtensionReason }
    /// throughcare.case.closed.v1
    CaseClosed { reason: CloseReason }
    /// throughcare.case.reopened.v1
    CaseReopened {}
    /// throughcare.record.corrected.v1
    RecordCorrected {
        target_event_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target_source: Option<String>,
        what_was_wrong: CorrectionKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pointer: Option<String>,
        /// For WRONG_DATE / WRONG_VALUE: the value that belongs at `pointer` (`/time` or a
        /// member of `/data` other than `person`); the ledger folds the target as if it had
        /// said this. Absent on older corrections, which only mark their target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corrected_value: Option<Value>,
    }
}

/// Declares `EventType` and `EventData` together so the two can never disagree.
macro_rules! catalogue {
    ($( $variant:ident => $wire:literal, $kind:ident ),* $(,)?) => {
        /// Every event type of the catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType { $($variant),* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];
            /// The CloudEvents `type`, e.g. `throughcare.referral.received.v1`.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $wire),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some(EventType::$variant),)* _ => None }
            }
            /// Whether the event is a fact from prison systems (always recorded) or a
            /// decision of the service (checked against the case state).
            pub fn origin(self) -> Origin {
                match self { $(EventType::$variant => Origin::$kind),* }
            }
        }

        /// The `data` of an event, typed by its `type`.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum EventData { $($variant($variant)),* }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self { $(EventData::$variant(_) => EventType::$variant),* }
            }
            pub fn person(&self) -> &PersonRef {
                match self { $(EventData::$variant(d) => &d.person),* }
            }
            pub fn person_mut(&mut self) -> &mut PersonRef {
                match self { $(EventData::$variant(d) => &mut d.person),* }
            }
            pub fn personal(&self) -> Option<&Personal> {
                match self { $(EventData::$variant(d) => d.personal.as_ref()),* }
            }
            /// Drops the `personal` object (for copies kept where personal text must not be).
            pub fn clear_personal(&mut self) {
                match self { $(EventData::$variant(d) => d.personal = None),* }
            }
            /// Reads `data` for `kind`, reporting every problem under `pointer`.
            pub fn from_json(kind: EventType, value: &Value, pointer: &crate::problems::Pointer, problems: &mut Problems) -> Option<Self> {
                match kind { $(EventType::$variant => $variant::from_json(value, pointer, problems).map(EventData::$variant)),* }
            }
            /// Reads `data` of a stored event with serde alone (it was validated when it was
            /// recorded): much cheaper than [`EventData::from_json`], with no problem list.
            pub fn from_value(kind: EventType, value: Value) -> Result<Self, serde_json::Error> {
                match kind { $(EventType::$variant => serde_json::from_value(value).map(EventData::$variant)),* }
            }
            /// The JSON Schema of each type's data, for the checked-in catalogue schema.
            pub fn schemas(gen: &mut schemars::gen::SchemaGenerator) -> Vec<(EventType, schemars::schema::Schema)> {
                vec![$((EventType::$variant, gen.subschema_for::<$variant>())),*]
            }
        }
    };
}

/// Who may state an event, which decides how the write path treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A decision of the service: refused (409) when the case state does not allow it.
    Service,
    /// A fact from prison systems: always recorded; the unexpected ones raise flags.
    Fact,
}

catalogue! {
    ReferralReceived => "throughcare.referral.received.v1", Service,
    ReferralAccepted => "throughcare.referral.accepted.v1", Service,
    ReferralDeclined => "throughcare.referral.declined.v1", Service,
    ReferralWithdrawn => "throughcare.referral.withdrawn.v1", Service,
    CaseAllocated => "throughcare.case.allocated.v1", Service,
    ConsentGiven => "throughcare.consent.given.v1", Service,
    ConsentWithdrawn => "throughcare.consent.withdrawn.v1", Service,
    AssessmentCompleted => "throughcare.assessment.completed.v1", Service,
    PlanAgreed => "throughcare.plan.agreed.v1", Service,
    PlanReviewed => "throughcare.plan.reviewed.v1", Service,
    ReleaseDateSet => "throughcare.release_date.set.v1", Fact,
    PrisonerTransferred => "throughcare.prisoner.transferred.v1", Fact,
    PrisonerReleased => "throughcare.prisoner.released.v1", Fact,
    PrisonerReturnedToCustody => "throughcare.prisoner.returned_to_custody.v1", Fact,
    IdentifiersLinked => "throughcare.identifiers.linked.v1", Fact,
    ContactAttempted => "throughcare.contact.attempted.v1", Service,
    ContactMade => "throughcare.contact.made.v1", Service,
    EngagementChanged => "throughcare.engagement.changed.v1", Service,
    SignpostingMade => "throughcare.signposting.made.v1", Service,
    SignpostingOutcome => "throughcare.signposting.outcome.v1", Service,
    SafeguardingRaised => "throughcare.safeguarding.raised.v1", Service,
    SupportExtended => "throughcare.support.extended.v1", Service,
    CaseClosed => "throughcare.case.closed.v1", Service,
    CaseReopened => "throughcare.case.reopened.v1", Service,
    RecordCorrected => "throughcare.record.corrected.v1", Service,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EventType::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type {s:?}")))
    }
}

/// A corrected value needs a pointer into the target's time or data (never its identity,
/// type, source or person) and belongs to a wrong date or value only.
fn correction_checks(d: &RecordCorrected, problems: &mut Problems) {
    if d.corrected_value.is_none() {
        return;
    }
    if matches!(
        d.what_was_wrong,
        CorrectionKind::EnteredInError | CorrectionKind::WrongPerson
    ) {
        problems.push(
            "/data/corrected_value",
            "only a WRONG_DATE or WRONG_VALUE correction carries a corrected value",
        );
    }
    match d.pointer.as_deref() {
        None => problems.push("/data/pointer", "is required with corrected_value"),
        Some(p) if !correctable_pointer(p) => problems.push(
            "/data/pointer",
            "must be /time or point into /data (not /data/person or /data/personal)",
        ),
        Some(_) => {}
    }
}

/// Whether a correction may put a value at `pointer` of an event.
pub fn correctable_pointer(pointer: &str) -> bool {
    if pointer == "/time" {
        return true;
    }
    let Some(rest) = pointer.strip_prefix("/data/") else {
        return false;
    };
    let first = rest.split('/').next().unwrap_or_default();
    !first.is_empty() && first != "person" && first != "personal"
}

/// Checks that span fields of one record (the walker checks each field alone).
pub(crate) fn cross_field_checks(data: &EventData, problems: &mut Problems) {
    let consent = |scope: ConsentScope, orgs: &Option<Vec<String>>, problems: &mut Problems| match (
        scope,
        orgs.as_deref(),
    ) {
        (ConsentScope::ShareWith, None | Some([])) => problems.push(
            "/data/orgs",
            "is required and must not be empty when scope is SHARE_WITH",
        ),
        (ConsentScope::Engage, Some(_)) => {
            problems.push("/data/orgs", "is only allowed when scope is SHARE_WITH")
        }
        _ => {}
    };
    match data {
        EventData::ConsentGiven(d) => consent(d.scope, &d.orgs, problems),
        EventData::ConsentWithdrawn(d) => consent(d.scope, &d.orgs, problems),
        EventData::PrisonerTransferred(d) if d.from_prison == d.to_prison => {
            problems.push("/data/to_prison", "must differ from from_prison")
        }
        EventData::IdentifiersLinked(d) => {
            let i = &d.identifiers;
            if i.nomis.is_none() && i.nhs_number.is_none() && i.crn.is_none() {
                problems.push(
                    "/data/identifiers",
                    "must name at least one of nomis, nhs_number, crn",
                );
            }
        }
        EventData::PlanAgreed(d) if d.actions.is_empty() => {
            problems.push("/data/actions", "a plan needs at least one action")
        }
        EventData::ContactMade(d) if d.outcome.is_some_and(|o| !o.is_contact()) => problems.push(
            "/data/outcome",
            "contact.made is for MET or SPOKE; an attempt that did not reach the person is contact.attempted",
        ),
        EventData::ContactAttempted(d) if d.outcome.is_some_and(ContactOutcome::is_contact) => {
            problems.push(
                "/data/outcome",
                "an attempt that reached the person (MET, SPOKE) is contact.made",
            )
        }
        EventData::RecordCorrected(d) => correction_checks(d, problems),
        _ => {}
    }
    let person = data.person();
    if person.identifiers().is_empty() {
        problems.push(
            "/data/person",
            "must name at least one of person_id, nomis, nhs_number, crn",
        );
    }
}
