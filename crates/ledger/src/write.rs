//! The write path: validate -> resolve the person from any identifier -> decide against
//! the person's state -> append with the expected version, re-deciding on conflict.
//! The clock and the id generator are given at construction: this is the edge.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughcare_events::{
    verify_chain, ChainBreak, Event, EventData, Hash, Identifier, PersonId, RecordedEvent,
};
use throughcare_projections::{decide, Journey};

use crate::cache::JourneyCache;
use crate::log::{AppendRequest, Appended, EventLog, ExpectedVersion, NewEvent};
use crate::Error;

/// How often an append is re-decided after losing a race before the caller is told. Each
/// lost race means another writer won, so N writers racing on one person need at most N.
const MAX_ATTEMPTS: usize = 256;

/// What the ledger tells a submitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub id: String,
    pub person_id: PersonId,
    pub position: u64,
    pub duplicate: bool,
}

/// The outcome of one item of a batch that could not be recorded.
#[derive(Debug)]
pub struct ItemError {
    pub index: usize,
    pub error: Error,
}

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// A source of new person ids.
pub type IdSource = Arc<dyn Fn() -> PersonId + Send + Sync>;

/// The ledger: an [`EventLog`] plus the rules for writing to it.
#[derive(Clone)]
pub struct Ledger {
    log: Arc<dyn EventLog>,
    clock: Clock,
    new_person: IdSource,
    journeys: Arc<JourneyCache>,
}

/// Journeys the write path keeps folded in memory.
const CACHED_JOURNEYS: usize = 100_000;

/// Result of checking one person's hash chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub person_id: PersonId,
    pub events: usize,
    pub ok: bool,
    pub head: Option<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<ChainBreak>,
}

/// How a batch item's person was resolved in a dry run: an existing person or the n-th
/// person the batch would create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tentative {
    Existing(PersonId),
    New(usize),
}

impl Ledger {
    pub fn new(log: Arc<dyn EventLog>, clock: Clock, new_person: IdSource) -> Self {
        Ledger {
            journeys: Arc::new(JourneyCache::new(CACHED_JOURNEYS)),
            log,
            clock,
            new_person,
        }
    }

    /// A ledger on the system clock with ULIDs for new persons.
    pub fn with_system_clock(log: Arc<dyn EventLog>) -> Self {
        Ledger::new(
            log,
            Arc::new(Utc::now),
            Arc::new(|| PersonId(ulid::Ulid::new())),
        )
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Records one validated event, or says why not. A retry of the same (source, id) and
    /// body returns the original receipt with `duplicate: true`.
    #[tracing::instrument(level = "debug", skip_all, fields(id = %event.id, kind = %event.event_type()))]
    pub async fn submit(&self, event: Event) -> Result<Receipt, Error> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(receipt) = self.prior(&event).await? {
                return Ok(receipt);
            }
            let (person, claims) = self.resolve(&event).await?;
            let journey = self.journey(person).await?;
            let decided = match decide(&journey, &event) {
                Ok(decided) => decided,
                Err(refusal) => {
                    // A concurrent writer (another task or process) may have recorded this
                    // very submission since the check above, and the state now reflects
                    // it: that is a retry, not a refusal.
                    if let Some(receipt) = self.prior(&event).await? {
                        return Ok(receipt);
                    }
                    return Err(Error::Refused(refusal));
                }
            };
            let recorded_at = self.now();
            let request = AppendRequest {
                person,
                expected: ExpectedVersion::from_version(journey.version),
                claims,
                events: decided
                    .into_iter()
                    .map(|event| NewEvent { event, recorded_at })
                    .collect(),
            };
            let events: Vec<Event> = request.events.iter().map(|e| e.event.clone()).collect();
            match self.log.append(request).await {
                Ok(appended) => {
                    let a = appended
                        .first()
                        .ok_or_else(|| Error::Corrupt("append returned nothing".into()))?;
                    self.remember(&journey, &appended, events, recorded_at);
                    return Ok(Receipt {
                        id: event.id.clone(),
                        person_id: a.person,
                        position: a.position,
                        duplicate: a.duplicate,
                    });
                }
                // Lost a race: someone appended for this person or claimed an identifier.
                Err(Error::Conflict { .. }) | Err(Error::IdentityConflict { .. }) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!(
            "gave up after {MAX_ATTEMPTS} attempts: the person is being written by others"
        )))
    }

    /// The person's journey: the cached fold plus whatever was recorded since.
    async fn journey(&self, person: PersonId) -> Result<Arc<Journey>, Error> {
        let cached = self.journeys.get(person);
        let from = cached.as_ref().map_or(0, |j| j.version) + 1;
        let newer = self.log.read_person(person, from).await?;
        if newer.is_empty() {
            if let Some(j) = cached {
                return Ok(j);
            }
        }
        let mut journey = cached.map_or_else(|| Journey::new(person), |j| (*j).clone());
        for e in &newer {
            journey.apply(e);
        }
        let journey = Arc::new(journey);
        self.journeys.put(journey.clone());
        Ok(journey)
    }

    /// Folds what was just appended into the cached journey (hashes do not matter to the
    /// fold), so the person's next submission reads nothing back.
    fn remember(
        &self,
        journey: &Journey,
        appended: &[Appended],
        events: Vec<Event>,
        recorded_at: DateTime<Utc>,
    ) {
        if appended.iter().any(|a| a.duplicate) {
            return;
        }
        let mut next = journey.clone();
        for (a, event) in appended.iter().zip(events) {
            next.apply(&RecordedEvent {
                position: a.position,
                person_id: a.person,
                recorded_at,
                prev: Hash::ZERO,
                hash: Hash::ZERO,
                event,
                stored: Default::default(),
            });
        }
        self.journeys.put(Arc::new(next));
    }

    /// Records a batch. The whole batch is checked first (idempotency, identity and
    /// decisions, in order, as if applied) and nothing is appended unless every item
    /// passes; then items are appended in order. Only a concurrent writer changing a
    /// person between the check and the append can fail an item after that.
    pub async fn submit_batch(
        &self,
        events: Vec<Event>,
    ) -> Result<Vec<Result<Receipt, Error>>, Vec<ItemError>> {
        let failures = self.dry_run(&events).await;
        if !failures.is_empty() {
            return Err(failures);
        }
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.submit(e).await);
        }
        Ok(out)
    }

    async fn dry_run(&self, events: &[Event]) -> Vec<ItemError> {
        let mut failures = Vec::new();
        let mut owners: HashMap<Identifier, Tentative> = HashMap::new();
        let mut states: HashMap<Tentative, Journey> = HashMap::new();
        let mut created: Vec<PersonId> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let result: Result<(), Error> = async {
                if self.prior(event).await?.is_some() {
                    return Ok(());
                }
                let ids = identifiers_of(&event.data);
                let mut found: Vec<(Identifier, Tentative)> = Vec::new();
                for id in &ids {
                    let owner = match owners.get(id) {
                        Some(t) => Some(*t),
                        None => self
                            .log
                            .lookup_identifier(id)
                            .await?
                            .map(Tentative::Existing),
                    };
                    match (owner, id) {
                        (Some(t), _) => found.push((id.clone(), t)),
                        (None, Identifier::Person(p)) => return Err(Error::UnknownPerson(*p)),
                        (None, _) => {}
                    }
                }
                let who = match found.first() {
                    Some((_, t)) => *t,
                    None => {
                        created.push((self.new_person)());
                        Tentative::New(created.len() - 1)
                    }
                };
                // A person this batch would create is named by the id it would get.
                let id_of = |t: Tentative| match t {
                    Tentative::Existing(p) => p,
                    Tentative::New(k) => created[k],
                };
                if let Some((identifier, other)) = found.iter().find(|(_, t)| *t != who) {
                    return Err(Error::IdentityConflict {
                        identifier: identifier.clone(),
                        owner: id_of(*other),
                        person: id_of(who),
                    });
                }
                let mut journey = match states.get(&who) {
                    Some(j) => j.clone(),
                    None => match who {
                        Tentative::Existing(p) => (*self.journey(p).await?).clone(),
                        Tentative::New(k) => Journey::new(created[k]),
                    },
                };
                // A refused item changes nothing for the items after it.
                decide(&journey, event).map_err(Error::Refused)?;
                for id in ids {
                    owners.insert(id, who);
                }
                // Fold the item in as if recorded so later items see it.
                let next = journey.version + 1;
                journey.apply(&RecordedEvent {
                    position: next,
                    person_id: journey.person_id,
                    recorded_at: self.now(),
                    prev: Hash::ZERO,
                    hash: Hash::ZERO,
                    event: event.clone(),
                    stored: Default::default(),
                });
                states.insert(who, journey);
                Ok(())
            }
            .await;
            if let Err(error) = result {
                failures.push(ItemError { index, error });
            }
        }
        failures
    }

    /// The receipt of an earlier recording of the same submission, or a conflict when the
    /// same (source, id) was recorded with a different body.
    async fn prior(&self, event: &Event) -> Result<Option<Receipt>, Error> {
        match self.log.lookup_submission(&event.source, &event.id).await? {
            None => Ok(None),
            Some(p) if p.digest == event.digest() => Ok(Some(Receipt {
                id: event.id.clone(),
                person_id: p.person,
                position: p.position,
                duplicate: true,
            })),
            Some(p) => Err(Error::IdempotencyConflict {
                event_source: event.source.clone(),
                id: event.id.clone(),
                position: p.position,
            }),
        }
    }

    /// Finds the person an event is about ("no wrong door"): the one owner of its
    /// identifiers, or a new person when none is known. Returns the identifiers to claim.
    async fn resolve(&self, event: &Event) -> Result<(PersonId, Vec<Identifier>), Error> {
        let ids = identifiers_of(&event.data);
        let mut owner: Option<(Identifier, PersonId)> = None;
        let mut unclaimed = Vec::new();
        for id in ids {
            match self.log.lookup_identifier(&id).await? {
                Some(p) => match &owner {
                    Some((_, o)) if *o != p => {
                        return Err(Error::IdentityConflict {
                            identifier: id,
                            owner: p,
                            person: *o,
                        })
                    }
                    _ => owner = Some((id, p)),
                },
                None => match id {
                    Identifier::Person(p) => return Err(Error::UnknownPerson(p)),
                    other => unclaimed.push(other),
                },
            }
        }
        let person = match owner {
            Some((_, p)) => p,
            None => {
                let p = (self.new_person)();
                unclaimed.push(Identifier::Person(p));
                p
            }
        };
        Ok((person, unclaimed))
    }

    /// A person's recorded events, oldest first.
    pub async fn history(&self, person: PersonId) -> Result<Vec<RecordedEvent>, Error> {
        self.log.read_person(person, 1).await
    }

    /// Checks a person's hash chain from the stored bytes.
    pub async fn verify(&self, person: PersonId) -> Result<ChainReport, Error> {
        let events = self.log.read_person(person, 1).await?;
        let result = verify_chain(person, &events);
        Ok(ChainReport {
            person_id: person,
            events: events.len(),
            ok: result.is_ok(),
            head: result.as_ref().ok().copied().filter(|_| !events.is_empty()),
            broken_at: result.err(),
        })
    }
}

/// Every identifier an event names: its person, and for identifiers.linked the linked ones.
fn identifiers_of(data: &EventData) -> Vec<Identifier> {
    let mut ids = data.person().identifiers();
    if let EventData::IdentifiersLinked(d) = data {
        let i = &d.identifiers;
        ids.extend(i.nomis.clone().map(Identifier::Nomis));
        ids.extend(i.nhs_number.clone().map(Identifier::Nhs));
        ids.extend(i.crn.clone().map(Identifier::Crn));
    }
    ids.sort();
    ids.dedup();
    ids
}
