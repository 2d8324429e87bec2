//! The write path: validate -> resolve the person from any identifier -> decide against
//! the person's state -> append with the expected version, re-deciding on conflict.
//! The clock and the id generator are given at construction: this is the edge.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use throughcare_events::{
    verify_chain, ChainBreak, Event, EventData, Hash, Identifier, PersonId, Problem, RecordedEvent,
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

/// Most events in one batch: JetStream's atomic batch limit (ADR-50), kept on both
/// backends so that a batch accepted by one is accepted by the other.
pub const MAX_BATCH: usize = 1000;

/// The outcome of one item of a batch that could not be recorded.
#[derive(Debug)]
pub struct ItemError {
    pub index: usize,
    pub error: Error,
}

/// Why a batch was not recorded. Either way nothing in it was.
#[derive(Debug)]
pub enum BatchError {
    /// These items cannot be recorded (each with its reason, in item order).
    Items(Vec<ItemError>),
    /// The batch as a whole cannot be recorded: over [`MAX_BATCH`], or the store failed.
    Whole(Error),
}

/// How one batch item gets its receipt once the batch is appended.
#[derive(Debug, Clone)]
enum Planned {
    /// Recorded before the batch: its original receipt.
    Recorded(Receipt),
    /// A repeat of an earlier item (by index) of the same batch.
    SameAs(usize),
    /// The `event`-th event of the `request`-th append request.
    Append { request: usize, event: usize },
}

/// One person's share of a batch while it is decided.
struct PersonPlan {
    /// The journey the batch was decided against (kept to update the cache).
    base: Arc<Journey>,
    /// `base` with the batch's events for the person folded in so far.
    state: Journey,
    expected: ExpectedVersion,
    claims: Vec<Identifier>,
    events: Vec<Event>,
}

/// A batch decided whole: the appends it needs and how each item finds its receipt.
struct BatchPlan {
    items: Vec<Planned>,
    requests: Vec<AppendRequest>,
    bases: Vec<Arc<Journey>>,
    recorded_at: DateTime<Utc>,
}

impl BatchPlan {
    /// Each item's receipt, given what `append_all` answered for `self.requests`.
    fn receipts(
        &self,
        events: &[Event],
        appended: &[Vec<Appended>],
    ) -> Result<Vec<Receipt>, Error> {
        let mut out: Vec<Receipt> = Vec::with_capacity(self.items.len());
        for (item, event) in self.items.iter().zip(events) {
            let receipt = match item {
                Planned::Recorded(r) => r.clone(),
                Planned::SameAs(first) => Receipt {
                    duplicate: true,
                    ..out[*first].clone()
                },
                Planned::Append { request, event: k } => {
                    let a = appended
                        .get(*request)
                        .and_then(|a| a.get(*k))
                        .ok_or_else(|| {
                            Error::Corrupt("append_all answered too few events".into())
                        })?;
                    Receipt {
                        id: event.id.clone(),
                        person_id: a.person,
                        position: a.position,
                        duplicate: a.duplicate,
                    }
                }
            };
            out.push(receipt);
        }
        Ok(out)
    }
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
        // Whether to read the log for what the cached journey may have missed (see
        // `journey`): only after a lost race, or before a refusal is trusted.
        let mut fresh = false;
        for _ in 0..MAX_ATTEMPTS {
            if let Some(receipt) = self.prior(&event).await? {
                return Ok(receipt);
            }
            let (person, claims) = self.resolve(&event).await?;
            let (journey, read) = self.journey(person, fresh).await?;
            let decided = match decide(&journey, &event) {
                Ok(decided) => decided,
                Err(_) if !read => {
                    // Decided on the cache alone: another writer may have moved the person
                    // on in a way that allows this. Refuse only against the log.
                    fresh = true;
                    continue;
                }
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
                    let receipt = Receipt {
                        id: event.id.clone(),
                        person_id: a.person,
                        position: a.position,
                        duplicate: a.duplicate,
                    };
                    self.remember(journey, &appended, events, recorded_at);
                    return Ok(receipt);
                }
                // Lost a race: someone appended for this person or claimed an identifier.
                Err(Error::Conflict { .. }) | Err(Error::IdentityConflict { .. }) => {
                    fresh = true;
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

    /// The person's journey, and whether the log was read for it.
    ///
    /// A cached journey is used as it is unless `fresh`: this ledger folds in everything it
    /// appends (`remember`), so the cache is behind the log only when another writer (a
    /// second `Ledger` on the log, another process on JetStream) appended for the person.
    /// Deciding on such a journey is safe: its version makes the append conflict, and a
    /// refusal is re-checked against the log; both set `fresh`, which reads whatever was
    /// recorded since the cached version. Not cached: the whole history is read and folded.
    async fn journey(&self, person: PersonId, fresh: bool) -> Result<(Arc<Journey>, bool), Error> {
        let cached = self.journeys.get(person);
        if let (Some(j), false) = (&cached, fresh) {
            return Ok((j.clone(), false));
        }
        let from = cached.as_ref().map_or(0, |j| j.version) + 1;
        let newer = self.log.read_person(person, from).await?;
        if newer.is_empty() {
            if let Some(j) = cached {
                return Ok((j, true));
            }
        }
        let mut journey = cached.map_or_else(|| Journey::new(person), Arc::unwrap_or_clone);
        for e in &newer {
            journey.apply(e);
        }
        let journey = Arc::new(journey);
        self.journeys.put(journey.clone());
        Ok((journey, true))
    }

    /// Folds what was just appended on top of `base` into the cached journey (hashes do not
    /// matter to the fold), so the person's next submission reads nothing back. In place
    /// when the cache holds `base` unshared: no copy of the person's history per event.
    fn remember(
        &self,
        base: Arc<Journey>,
        appended: &[Appended],
        events: Vec<Event>,
        recorded_at: DateTime<Utc>,
    ) {
        if appended.iter().any(|a| a.duplicate) {
            return;
        }
        self.journeys.advance(base, |journey| {
            for (a, event) in appended.iter().zip(events) {
                journey.apply(&RecordedEvent {
                    position: a.position,
                    person_id: a.person,
                    recorded_at,
                    prev: Hash::ZERO,
                    hash: Hash::ZERO,
                    event,
                    stored: Default::default(),
                });
            }
        });
    }

    /// The most events one batch may hold on this ledger: [`MAX_BATCH`], or fewer when the
    /// store cannot append that many at once (JetStream: 1,000 messages per atomic batch,
    /// two per event).
    pub fn batch_limit(&self) -> usize {
        MAX_BATCH.min(self.log.max_batch_events())
    }

    /// The problem for a batch of `len` events over [`Ledger::batch_limit`], if it is.
    pub fn over_batch_limit(&self, len: usize) -> Option<Problem> {
        let limit = self.batch_limit();
        (len > limit).then(|| Problem {
            pointer: String::new(),
            detail: format!("a batch holds at most {limit} events; this one has {len}: split it"),
        })
    }

    /// Records a batch all or nothing. The whole batch is decided first (idempotency,
    /// identity and decisions, in order, each item seeing the items before it as if
    /// recorded) and refused with every failing item's reason unless all pass; then it is
    /// appended in one [`EventLog::append_all`] (one request per person, in order of first
    /// appearance). A concurrent writer changing one of the people in between makes the
    /// append fail whole, and the whole batch is decided again against the new state.
    pub async fn submit_batch(&self, events: Vec<Event>) -> Result<Vec<Receipt>, BatchError> {
        if let Some(problem) = self.over_batch_limit(events.len()) {
            return Err(BatchError::Whole(Error::Invalid(vec![problem])));
        }
        for _ in 0..MAX_ATTEMPTS {
            let plan = self.plan(&events).await?;
            if plan.requests.is_empty() {
                // Every item was recorded before: nothing to append.
                return plan.receipts(&events, &[]).map_err(BatchError::Whole);
            }
            let requests = plan.requests.clone();
            match self.log.append_all(requests).await {
                Ok(appended) => {
                    if appended.len() != plan.requests.len() {
                        return Err(BatchError::Whole(Error::Corrupt(format!(
                            "append_all answered {} of {} requests",
                            appended.len(),
                            plan.requests.len()
                        ))));
                    }
                    let receipts = plan.receipts(&events, &appended).map_err(BatchError::Whole);
                    for ((base, request), a) in
                        plan.bases.into_iter().zip(plan.requests).zip(&appended)
                    {
                        let events = request.events.into_iter().map(|e| e.event).collect();
                        self.remember(base, a, events, plan.recorded_at);
                    }
                    return receipts;
                }
                // Lost a race with another writer: nothing was recorded; decide again.
                Err(Error::Conflict { .. })
                | Err(Error::IdentityConflict { .. })
                | Err(Error::IdempotencyConflict { .. }) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => return Err(BatchError::Whole(e)),
            }
        }
        Err(BatchError::Whole(Error::Unavailable(format!(
            "gave up after {MAX_ATTEMPTS} attempts: people in the batch are being written by others"
        ))))
    }

    /// Decides the whole batch against the current state: the appends it needs, or every
    /// item that cannot be recorded. A store failure fails the whole batch.
    async fn plan(&self, events: &[Event]) -> Result<BatchPlan, BatchError> {
        let mut failures = Vec::new();
        let mut owners: HashMap<Identifier, Tentative> = HashMap::new();
        let mut people: Vec<PersonPlan> = Vec::new();
        let mut slot_of: HashMap<Tentative, usize> = HashMap::new();
        let mut created: Vec<PersonId> = Vec::new();
        let mut seen: HashMap<(&str, &str), (usize, [u8; 32])> = HashMap::new();
        let mut items = Vec::with_capacity(events.len());
        let recorded_at = self.now();
        for (index, event) in events.iter().enumerate() {
            let result: Result<Planned, Error> = async {
                // The same submission twice in one batch is recorded once.
                if let Some(&(first, digest)) =
                    seen.get(&(event.source.as_str(), event.id.as_str()))
                {
                    if digest == event.digest() {
                        return Ok(Planned::SameAs(first));
                    }
                    return Err(Error::IdempotencyConflict {
                        event_source: event.source.clone(),
                        id: event.id.clone(),
                        position: 0,
                    });
                }
                seen.insert((&event.source, &event.id), (index, event.digest()));
                if let Some(receipt) = self.prior(event).await? {
                    return Ok(Planned::Recorded(receipt));
                }
                let ids = identifiers_of(&event.data);
                let mut found: Vec<(Identifier, Tentative)> = Vec::new();
                let mut unclaimed: Vec<Identifier> = Vec::new();
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
                        (None, other) => unclaimed.push(other.clone()),
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
                let slot = match slot_of.get(&who) {
                    Some(&slot) => slot,
                    None => {
                        let (base, expected, claims) = match who {
                            Tentative::Existing(p) => {
                                // Read through: a batch's refusals are final, so its
                                // decisions are made against the log, never the cache alone.
                                let (j, _) = self.journey(p, true).await?;
                                let expected = ExpectedVersion::from_version(j.version);
                                (j, expected, Vec::new())
                            }
                            Tentative::New(k) => (
                                Arc::new(Journey::new(created[k])),
                                ExpectedVersion::NoStream,
                                vec![Identifier::Person(created[k])],
                            ),
                        };
                        people.push(PersonPlan {
                            state: (*base).clone(),
                            base,
                            expected,
                            claims,
                            events: Vec::new(),
                        });
                        slot_of.insert(who, people.len() - 1);
                        people.len() - 1
                    }
                };
                let person = &mut people[slot];
                // A refused item changes nothing for the items after it.
                let decided = decide(&person.state, event).map_err(Error::Refused)?;
                for id in ids {
                    owners.insert(id, who);
                }
                for id in unclaimed {
                    if !person.claims.contains(&id) {
                        person.claims.push(id);
                    }
                }
                let first = person.events.len();
                // Fold the decided events in as if recorded so later items see them.
                for e in decided {
                    let next = person.state.version + 1;
                    person.state.apply(&RecordedEvent {
                        position: next,
                        person_id: person.state.person_id,
                        recorded_at,
                        prev: Hash::ZERO,
                        hash: Hash::ZERO,
                        event: e.clone(),
                        stored: Default::default(),
                    });
                    person.events.push(e);
                }
                if person.events.len() == first {
                    return Err(Error::Corrupt(format!(
                        "the decision for {} appends nothing",
                        event.id
                    )));
                }
                Ok(Planned::Append {
                    request: slot,
                    event: first,
                })
            }
            .await;
            match result {
                Ok(planned) => items.push(planned),
                Err(e @ (Error::Unavailable(_) | Error::Corrupt(_))) => {
                    return Err(BatchError::Whole(e))
                }
                Err(error) => failures.push(ItemError { index, error }),
            }
        }
        if !failures.is_empty() {
            return Err(BatchError::Items(failures));
        }
        let mut bases = Vec::with_capacity(people.len());
        let mut requests = Vec::with_capacity(people.len());
        for p in people {
            requests.push(AppendRequest {
                person: p.state.person_id,
                expected: p.expected,
                claims: p.claims,
                events: p
                    .events
                    .into_iter()
                    .map(|event| NewEvent { event, recorded_at })
                    .collect(),
            });
            bases.push(p.base);
        }
        Ok(BatchPlan {
            items,
            requests,
            bases,
            recorded_at,
        })
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
