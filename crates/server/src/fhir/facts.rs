//! The ledger facts behind an export: each recorded event of the person with its position
//! and hash, the event as corrections say it stands (or `None` when it was entered in
//! error or was about the wrong person), the corrections that name it, and the episode it
//! belongs to. Read from the recorded events alone, by the rule of the journey fold
//! (projections/src/journey/history.rs): ENTERED_IN_ERROR and WRONG_PERSON void their
//! target unless they are void themselves; a WRONG_DATE / WRONG_VALUE with a value amends
//! it. Nothing here decides a FHIR status.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use throughcare_events::catalogue::CorrectionKind;
use throughcare_events::{Event, EventData, EventType, RecordedEvent};
use throughcare_projections::Journey;

/// One recorded event and what corrections did to it.
pub struct Fact<'a> {
    pub recorded: &'a RecordedEvent,
    /// The event as it stands; `None` when a correction voided it.
    pub effective: Option<Event>,
    /// Positions of the corrections that name it, in ledger order.
    pub corrected_by: Vec<u64>,
}

impl Fact<'_> {
    pub fn position(&self) -> u64 {
        self.recorded.position
    }
    pub fn kind(&self) -> EventType {
        self.recorded.event.event_type()
    }
    pub fn is_void(&self) -> bool {
        self.effective.is_none()
    }
    /// The data as it stands, or as recorded when void (what was entered in error).
    pub fn data(&self) -> &EventData {
        self.effective
            .as_ref()
            .map_or(&self.recorded.event.data, |e| &e.data)
    }
    /// When it happened, as it stands.
    pub fn time(&self) -> chrono::DateTime<chrono::Utc> {
        self.effective
            .as_ref()
            .map_or(self.recorded.event.time, |e| e.time)
    }
}

/// A person's facts, in ledger order, with the positions that open their episodes.
pub struct Facts<'a> {
    facts: Vec<Fact<'a>>,
    /// (episode number, position of the referral that opened it), in order.
    starts: Vec<(u32, u64)>,
}

type Key<'a> = (&'a str, &'a str);

impl<'a> Facts<'a> {
    /// `events` are the person's recorded events up to the journey's version, in order.
    pub fn new(events: &'a [RecordedEvent], journey: &Journey) -> Self {
        let key = |e: &'a RecordedEvent| (e.event.source.as_str(), e.event.id.as_str());
        let mut void: BTreeSet<Key<'a>> = BTreeSet::new();
        let mut amend: BTreeMap<Key<'a>, Vec<(&'a str, &'a Value)>> = BTreeMap::new();
        let mut corrected_by: BTreeMap<Key<'a>, Vec<u64>> = BTreeMap::new();
        // Latest first, so that a correction voided by a later one is known to be void
        // before it is looked at (as the fold does).
        for e in events.iter().rev() {
            let EventData::RecordCorrected(d) = &e.event.data else {
                continue;
            };
            let source = d.target_source.as_deref().unwrap_or(&e.event.source);
            let target = (source, d.target_event_id.as_str());
            corrected_by
                .entry(target)
                .or_default()
                .insert(0, e.position);
            if void.contains(&key(e)) {
                continue;
            }
            match (&d.what_was_wrong, &d.pointer, &d.corrected_value) {
                (CorrectionKind::EnteredInError | CorrectionKind::WrongPerson, _, _) => {
                    void.insert(target);
                }
                (_, Some(pointer), Some(value)) => {
                    amend
                        .entry(target)
                        .or_default()
                        .insert(0, (pointer.as_str(), value));
                }
                _ => {}
            }
        }
        let facts: Vec<Fact<'a>> = events
            .iter()
            .map(|e| {
                let k = key(e);
                let effective = (!void.contains(&k)).then(|| {
                    let mut event = e.event.clone();
                    for (pointer, value) in amend.get(&k).into_iter().flatten() {
                        if let Ok(amended) = event.amended(pointer, value) {
                            event = amended;
                        }
                    }
                    event
                });
                Fact {
                    recorded: e,
                    effective,
                    corrected_by: corrected_by.remove(&k).unwrap_or_default(),
                }
            })
            .collect();
        let starts = episode_starts(&facts, journey);
        Facts { facts, starts }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Fact<'a>> {
        self.facts.iter()
    }

    pub fn get(&self, position: u64) -> Option<&Fact<'a>> {
        self.facts
            .binary_search_by_key(&position, |f| f.position())
            .ok()
            .map(|i| &self.facts[i])
    }

    /// The episode a position falls in (none before the first referral).
    pub fn episode_of(&self, position: u64) -> Option<u32> {
        self.starts
            .iter()
            .rev()
            .find(|(_, start)| *start <= position)
            .map(|(n, _)| *n)
    }

    /// The position of the referral that opened episode `number`.
    pub fn episode_start(&self, number: u32) -> Option<u64> {
        self.starts
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, p)| *p)
    }

    /// The facts of episode `number`, void or not.
    pub fn in_episode(&self, number: u32) -> impl Iterator<Item = &Fact<'a>> {
        self.iter()
            .filter(move |f| self.episode_of(f.position()) == Some(number))
    }

    /// `positions` with the corrections naming each, sorted and without repeats: what a
    /// Provenance lists.
    pub fn with_corrections(&self, positions: &[u64]) -> Vec<u64> {
        let mut all: BTreeSet<u64> = positions.iter().copied().collect();
        for p in positions {
            if let Some(f) = self.get(*p) {
                all.extend(f.corrected_by.iter().copied());
            }
        }
        all.into_iter().collect()
    }
}

/// Where each of the journey's episodes starts: the first standing referral.received
/// after the previous start that names the episode's first referral.
fn episode_starts(facts: &[Fact<'_>], journey: &Journey) -> Vec<(u32, u64)> {
    let mut starts = Vec::new();
    let mut after = 0;
    for ep in &journey.episodes {
        let Some(first) = ep.referrals.first() else {
            continue;
        };
        let start = facts.iter().find(|f| {
            f.position() > after
                && matches!(
                    &f.effective,
                    Some(Event { data: EventData::ReferralReceived(d), .. })
                        if d.referral_id == first.referral_id
                )
        });
        if let Some(f) = start {
            after = f.position();
            starts.push((ep.number, after));
        }
    }
    starts
}
