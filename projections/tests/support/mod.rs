//! The given/when/then harness of the domain tests: `given(&history).when(event)` then
//! `.then(..)` / `.then_err(..)`, and `check(..)` for tables of cases. Event constructors
//! and the standard histories are in `build`. Shared by every test binary of this crate,
//! so not every binary uses every helper.
#![allow(dead_code)]

mod build;
pub use build::*;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use throughcare_events::catalogue::*;
use throughcare_events::{
    Crn, Event, EventData, EventType, Hash, NhsNumber, Nomis, PersonId, PersonRef, PrisonCode,
    RecordedEvent,
};
use throughcare_projections::{
    allowed, decide, DomainError, FlagCode, Journey, JourneyView, Status,
};

/// When the first event of a history happened; each later event without an explicit time
/// happened one hour after the one before it.
pub const START: &str = "2026-11-20T09:30:00Z";
/// When the person of the standard histories leaves prison.
pub const RELEASE: &str = "2027-01-15T08:00:00Z";

pub const PROBATION: &str = "urn:throughcare:partner:probation-south-central";
pub const HMPPS: &str = "urn:throughcare:partner:hmpps-prison-systems";
pub const TRIAGE: &str = "urn:throughcare:service:triage";
pub const MANAGER: &str = "urn:throughcare:service:manager";
pub const WORKER: &str = "urn:throughcare:service:worker";
pub const IG: &str = "urn:throughcare:service:information-governance";

/// An event to give or submit: its data and source, with id and times filled in by the
/// harness unless a test sets them.
#[derive(Debug, Clone)]
pub struct Ev {
    pub data: EventData,
    pub source: &'static str,
    pub id: Option<String>,
    pub at: Option<DateTime<Utc>>,
    pub recorded: Option<DateTime<Utc>>,
}

impl Ev {
    /// When it happened (occurred_at).
    pub fn at(mut self, time: &str) -> Self {
        self.at = Some(t(time));
        self
    }
    /// When the ledger learnt it (recorded_at); by default one minute after it happened.
    pub fn recorded(mut self, time: &str) -> Self {
        self.recorded = Some(t(time));
        self
    }
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }
    pub fn kind(&self) -> EventType {
        self.data.event_type()
    }
}

pub fn person_id() -> PersonId {
    "01JD3Z8Q6V2X9S7W4K5M1N0P3R".parse().unwrap()
}

pub struct Given {
    pub journey: Journey,
    pub last: DateTime<Utc>,
}

/// A person whose recorded history is `history` (applied as recorded, not re-decided).
pub fn given(history: &[Ev]) -> Given {
    let mut g = Given {
        journey: Journey::new(person_id()),
        last: t(START) - Duration::hours(1),
    };
    for ev in history {
        let recorded = g.record(ev);
        g.journey.apply(&recorded);
    }
    g
}

impl Given {
    /// The recorded form of `ev` at the next position: id `evt-<position>` unless set.
    pub fn record(&mut self, ev: &Ev) -> RecordedEvent {
        let position = self.journey.version + 1;
        let time = ev.at.unwrap_or(self.last + Duration::hours(1));
        self.last = time;
        RecordedEvent {
            position,
            person_id: person_id(),
            recorded_at: ev.recorded.unwrap_or(time + Duration::minutes(1)),
            prev: Hash::ZERO,
            hash: Hash::ZERO,
            event: Event {
                id: ev.id.clone().unwrap_or_else(|| format!("evt-{position}")),
                source: ev.source.to_string(),
                time,
                data: ev.data.clone(),
            },
            stored: Default::default(),
        }
    }

    pub fn when(mut self, ev: Ev) -> When {
        let recorded = self.record(&ev);
        let result = decide(&self.journey, &recorded.event);
        When {
            journey: self.journey,
            recorded,
            result,
        }
    }

    pub fn view(&self, now: &str) -> JourneyView {
        self.journey.view(t(now))
    }

    pub fn journey(&self) -> &Journey {
        &self.journey
    }
}

pub struct When {
    pub journey: Journey,
    pub recorded: RecordedEvent,
    pub result: Result<Vec<Event>, DomainError>,
}

impl When {
    /// The submission is recorded as it is; `check` sees the journey after it.
    #[track_caller]
    pub fn then(self, check: impl FnOnce(&Journey)) -> Journey {
        let j = self
            .recorded_journey()
            .unwrap_or_else(|why| panic!("{why}"));
        check(&j);
        j
    }

    #[track_caller]
    pub fn then_status(self, status: Status) -> Journey {
        self.then(|j| assert_eq!(j.status, status))
    }

    /// The submission is refused while the case is `status`; the error lists what the
    /// case does accept, which always includes every fact and a new referral.
    #[track_caller]
    pub fn then_err(self, status: Status) -> DomainError {
        self.refused(status).unwrap_or_else(|why| panic!("{why}"))
    }

    pub fn recorded_journey(self) -> Result<Journey, String> {
        let kind = self.recorded.event.event_type();
        match self.result {
            Ok(events) if events == vec![self.recorded.event.clone()] => {
                let mut j = self.journey;
                j.apply(&self.recorded);
                Ok(j)
            }
            Ok(events) => Err(format!(
                "{kind}: decide returned {events:?}, not the submission"
            )),
            Err(e) => Err(format!("{kind} was refused: {e}; allowed {:?}", e.allowed)),
        }
    }

    pub fn refused(self, status: Status) -> Result<DomainError, String> {
        let kind = self.recorded.event.event_type();
        let err = match self.result {
            Ok(_) => {
                return Err(format!(
                    "{kind} was accepted on a {:?} case, expected a refusal",
                    self.journey.status
                ))
            }
            Err(e) => e,
        };
        if err.status != status {
            return Err(format!(
                "{kind} refused with status {:?}, expected {status:?}",
                err.status
            ));
        }
        if err.allowed != allowed(&self.journey) {
            return Err(format!(
                "{kind}: the error's allowed list differs from allowed()"
            ));
        }
        if err.reason.is_empty() {
            return Err(format!("{kind}: refused without a reason"));
        }
        for always in FACTS.iter().chain([&EventType::ReferralReceived]) {
            if !err.allowed.contains(always) {
                return Err(format!("{kind}: allowed does not list {always}"));
            }
        }
        Ok(err)
    }
}

/// The facts from prison systems: always recorded (reality is not rejected).
pub const FACTS: [EventType; 5] = [
    EventType::ReleaseDateSet,
    EventType::PrisonerTransferred,
    EventType::PrisonerReleased,
    EventType::PrisonerReturnedToCustody,
    EventType::IdentifiersLinked,
];

/// What a table case expects of its submission.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Recorded, and the case is then in this status.
    Becomes(Status),
    /// Recorded (a fact; the status is checked elsewhere).
    Recorded,
    /// Refused while the case is in this status, and `allowed` does not list the type:
    /// nothing of that type could be recorded now.
    Refused(Status),
    /// Refused while the case is in this status, though `allowed` lists the type: the
    /// refusal depends on the data (an unknown id, an earlier date).
    RefusedByData(Status),
}
pub use Expect::*;

pub type Case = (&'static str, Vec<Ev>, Ev, Expect);

/// Runs every case and reports every failing one, not just the first.
#[track_caller]
pub fn check(cases: Vec<Case>) {
    let total = cases.len();
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, history, ev, expect)| {
            check_one(&history, ev, expect)
                .err()
                .map(|why| format!("  {name}: {why}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub fn check_one(history: &[Ev], ev: Ev, expect: Expect) -> Result<(), String> {
    let kind = ev.kind();
    let when = given(history).when(ev);
    match expect {
        Becomes(status) => {
            let j = when.recorded_journey()?;
            if j.status == status {
                Ok(())
            } else {
                Err(format!("status is {:?}, expected {status:?}", j.status))
            }
        }
        Recorded => when.recorded_journey().map(drop),
        Refused(status) | RefusedByData(status) => {
            let err = when.refused(status)?;
            let listed = err.allowed.contains(&kind);
            match (expect, listed) {
                (Refused(_), true) => Err(format!("refused, yet allowed lists {kind}")),
                (RefusedByData(_), false) => Err(format!(
                    "refused by its data, yet allowed does not list {kind}"
                )),
                _ => Ok(()),
            }
        }
    }
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap_or_else(|e| panic!("bad date {s}: {e}"))
}

pub fn prison(code: &str) -> PrisonCode {
    PrisonCode::parse(code).unwrap()
}

pub fn plus(mut history: Vec<Ev>, more: impl IntoIterator<Item = Ev>) -> Vec<Ev> {
    history.extend(more);
    history
}
