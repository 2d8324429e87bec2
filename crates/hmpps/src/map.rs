//! What a read HMPPS message becomes (DESIGN.md "HMPPS domain events in", whose table is
//! the contract): a throughcare CloudEvent, a deliberate `Ignored(reason)`, or an identity
//! conflict for a human. Whether an admission is a return to custody depends on the
//! person, so the caller looks the person up and passes a [`PersonState`]; the mapping
//! itself reads nothing.

use chrono::SecondsFormat;
use serde_json::{json, Value};
use throughcare_events::{PersonId, PrisonCode};

use crate::parse::{Movement, Notification, Reception, Release};

/// The CloudEvents `source` of every event made from an HMPPS message.
pub const SOURCE: &str = "urn:throughcare:hmpps:domain-events";

/// What the ledger knows of a person, as far as the mapping needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonState {
    /// The person the NOMIS number belongs to; `None`: the ledger does not know it.
    pub person: Option<PersonId>,
    /// Released (to the community, or to a secure hospital) and not received back since.
    pub released: bool,
    /// The prison the ledger last had the person at.
    pub prison: Option<PrisonCode>,
}

impl PersonState {
    /// A NOMIS number the ledger does not know.
    pub fn unknown() -> PersonState {
        PersonState::default()
    }

    fn known(&self) -> bool {
        self.person.is_some()
    }
}

/// Why a message records nothing. Each is a `/metrics` label, never with identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ignored {
    /// No person the ledger knows has the NOMIS number (data minimisation).
    UnknownPerson,
    /// released, TRANSFERRED: the receiving prison's `received` says where.
    TransferredOut,
    /// released, SENT_TO_COURT.
    SentToCourt,
    /// released, TEMPORARY_ABSENCE_RELEASE.
    TemporaryAbsenceRelease,
    /// released, UNKNOWN.
    UnknownReleaseReason,
    /// received, RETURN_FROM_COURT.
    ReturnFromCourt,
    /// received, TEMPORARY_ABSENCE_RETURN.
    TemporaryAbsenceReturn,
    /// An admission or transfer in that changes nothing the ledger knows: no release
    /// before it and the same prison (or no prison known to transfer from).
    NoChange,
    /// A merge of two numbers the ledger already has as one person.
    AlreadyLinked,
    /// A `reason` the adapter does not know.
    UnhandledReason,
    /// An `eventType` the adapter does not map.
    UnhandledEventType,
}

impl Ignored {
    pub const ALL: [Ignored; 11] = [
        Ignored::UnknownPerson,
        Ignored::TransferredOut,
        Ignored::SentToCourt,
        Ignored::TemporaryAbsenceRelease,
        Ignored::UnknownReleaseReason,
        Ignored::ReturnFromCourt,
        Ignored::TemporaryAbsenceReturn,
        Ignored::NoChange,
        Ignored::AlreadyLinked,
        Ignored::UnhandledReason,
        Ignored::UnhandledEventType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::UnknownPerson => "unknown-person",
            Ignored::TransferredOut => "transferred-out",
            Ignored::SentToCourt => "sent-to-court",
            Ignored::TemporaryAbsenceRelease => "temporary-absence-release",
            Ignored::UnknownReleaseReason => "unknown-release-reason",
            Ignored::ReturnFromCourt => "return-from-court",
            Ignored::TemporaryAbsenceReturn => "temporary-absence-return",
            Ignored::NoChange => "no-change",
            Ignored::AlreadyLinked => "already-linked",
            Ignored::UnhandledReason => "unhandled-reason",
            Ignored::UnhandledEventType => "unhandled-event-type",
        }
    }
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one message becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapping {
    /// Record this CloudEvent (structured JSON, `source` [`SOURCE`]).
    Record(Value),
    /// Record nothing, deliberately.
    Ignored(Ignored),
    /// A merge of two NOMIS numbers the ledger has as two different people: never merged
    /// silently; a human must decide.
    IdentityConflict { person: PersonId, other: PersonId },
}

/// Maps a read message given what the ledger knows of its prisoner (`subject`, by
/// `nomsNumber`) and, for a merge, of the number merged away (`removed`).
pub fn map(n: &Notification, subject: &PersonState, removed: &PersonState) -> Mapping {
    use Ignored::*;
    let ignore = Mapping::Ignored;
    let (Some(nomis), Some(time)) = (&n.nomis, n.occurred_at) else {
        // Only an eventType the adapter does not map is read without them.
        return ignore(UnhandledEventType);
    };
    let event = |kind: &str, data: Value| {
        let mut data = data;
        data["person"] = json!({ "nomis": nomis });
        Mapping::Record(json!({
            "specversion": "1.0",
            "id": n.id,
            "source": SOURCE,
            "type": format!("throughcare.{kind}.v1"),
            "time": time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "datacontenttype": "application/json",
            "data": data,
        }))
    };
    match &n.movement {
        Movement::Other => ignore(UnhandledEventType),
        Movement::Released(release) => {
            let (prison, reason) = match release {
                Release::Released { prison } => (prison, "RELEASED"),
                Release::ToHospital { prison } => (prison, "RELEASED_TO_HOSPITAL"),
                Release::Transferred => return ignore(TransferredOut),
                Release::SentToCourt => return ignore(SentToCourt),
                Release::TemporaryAbsence => return ignore(TemporaryAbsenceRelease),
                Release::Unknown => return ignore(UnknownReleaseReason),
                Release::Other => return ignore(UnhandledReason),
            };
            if !subject.known() {
                return ignore(UnknownPerson);
            }
            event(
                "prisoner.released",
                json!({ "prison": prison, "reason": reason }),
            )
        }
        Movement::Received(reception) => {
            let (prison, recall) = match reception {
                Reception::Admission { prison, recall } => (prison, Some(*recall)),
                Reception::Transferred { prison } => (prison, None),
                Reception::ReturnFromCourt => return ignore(ReturnFromCourt),
                Reception::TemporaryAbsenceReturn => return ignore(TemporaryAbsenceReturn),
                Reception::Other => return ignore(UnhandledReason),
            };
            if !subject.known() {
                return ignore(UnknownPerson);
            }
            match (recall, subject.released, &subject.prison) {
                // An admission after a release is a return to custody.
                (Some(recall), true, _) => event(
                    "prisoner.returned_to_custody",
                    json!({ "prison": prison, "recall": recall }),
                ),
                // A transfer in (or an admission with no release before it) at another
                // prison than the one the ledger has.
                (_, _, Some(from)) if from != prison => event(
                    "prisoner.transferred",
                    json!({ "from_prison": from, "to_prison": prison }),
                ),
                _ => ignore(NoChange),
            }
        }
        Movement::Merged { removed: gone } => match (subject.person, removed.person) {
            (None, None) => ignore(UnknownPerson),
            (Some(a), Some(b)) if a == b => ignore(AlreadyLinked),
            (Some(person), Some(other)) => Mapping::IdentityConflict { person, other },
            _ => event(
                "identifiers.linked",
                json!({ "identifiers": { "nomis": gone } }),
            ),
        },
    }
}
