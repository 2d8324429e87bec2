//! Corrections that take effect. A journey keeps the events it folded (without their
//! `personal` object), so that a `record.corrected` saying an earlier event was entered in
//! error, was about the wrong person, or had a wrong date or value can re-fold the journey
//! as if the target had never been recorded, or had said the corrected value. The timeline
//! still shows the original and the correction; nothing recorded is edited.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use throughcare_events::catalogue::{CorrectionKind, RecordCorrected};
use throughcare_events::{Event, EventData, Hash, PersonId, RecordedEvent};

use super::timeline::TimelineEntry;
use super::Journey;

/// One folded event as the journey keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub position: u64,
    pub recorded_at: DateTime<Utc>,
    pub event: Event,
}

impl HistoryEntry {
    /// The entry [`Journey::apply`] keeps for `e` (the read models encode it ahead of the
    /// fold, on the thread that decodes the log).
    pub fn of(e: &RecordedEvent) -> Self {
        let mut event = e.event.clone();
        // Personal free text stays in the ledger only, where it can be erased.
        event.data.clear_personal();
        HistoryEntry {
            position: e.position,
            recorded_at: e.recorded_at,
            event,
        }
    }

    /// The recorded form again (the hash chain is the ledger's business, not the fold's).
    fn recorded(&self, person_id: PersonId, event: Event) -> RecordedEvent {
        RecordedEvent {
            position: self.position,
            person_id,
            recorded_at: self.recorded_at,
            prev: Hash::ZERO,
            hash: Hash::ZERO,
            event,
            stored: Default::default(),
        }
    }

    fn key(&self) -> (&str, &str) {
        (&self.event.source, &self.event.id)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    position: u64,
    recorded_at: DateTime<Utc>,
    event: Value,
}

impl Serialize for HistoryEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredEntry {
            position: self.position,
            recorded_at: self.recorded_at,
            event: self.event.to_json(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for HistoryEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredEntry::deserialize(d)?;
        let event = Event::from_stored(&stored.event).map_err(|p| {
            serde::de::Error::custom(format!("stored history entry is not an event: {p:?}"))
        })?;
        Ok(HistoryEntry {
            position: stored.position,
            recorded_at: stored.recorded_at,
            event,
        })
    }
}

/// Whether a correction changes what the journey folds (rather than only marking its
/// target on the timeline, as corrections without a value always did).
pub(super) fn takes_effect(d: &RecordCorrected) -> bool {
    matches!(
        d.what_was_wrong,
        CorrectionKind::EnteredInError | CorrectionKind::WrongPerson
    ) || (d.corrected_value.is_some() && d.pointer.is_some())
}

/// What the corrections of a history do to each of its events.
#[derive(Default)]
struct Corrections<'h> {
    /// Events left out of every read model.
    void: BTreeSet<(&'h str, &'h str)>,
    /// Values to put into events, in the order they were recorded: (pointer, value).
    amend: BTreeMap<(&'h str, &'h str), Vec<(&'h str, &'h Value)>>,
    /// The last correction naming each event.
    corrected_by: BTreeMap<(&'h str, &'h str), u64>,
}

impl<'h> Corrections<'h> {
    fn of(history: &'h [HistoryEntry]) -> Self {
        let mut c = Corrections::default();
        // Latest first, so that a correction voided by a later one is known to be void
        // before it is looked at.
        for h in history.iter().rev() {
            let EventData::RecordCorrected(d) = &h.event.data else {
                continue;
            };
            let source = d.target_source.as_deref().unwrap_or(&h.event.source);
            let target = (source, d.target_event_id.as_str());
            c.corrected_by.entry(target).or_insert(h.position);
            if c.void.contains(&h.key()) {
                continue;
            }
            match (&d.what_was_wrong, &d.pointer, &d.corrected_value) {
                (CorrectionKind::EnteredInError | CorrectionKind::WrongPerson, _, _) => {
                    c.void.insert(target);
                }
                (_, Some(pointer), Some(value)) => {
                    c.amend
                        .entry(target)
                        .or_default()
                        .insert(0, (pointer.as_str(), value));
                }
                _ => {}
            }
        }
        c
    }

    /// The event as the corrections say it should have been, or `None` when it is void.
    /// A value that does not fit was refused when the correction was decided; should one
    /// be here anyway, the event is folded as recorded.
    fn effective(&self, h: &HistoryEntry) -> Option<Event> {
        if self.void.contains(&h.key()) {
            return None;
        }
        let mut event = h.event.clone();
        for (pointer, value) in self.amend.get(&h.key()).into_iter().flatten() {
            if let Ok(amended) = event.amended(pointer, value) {
                event = amended;
            }
        }
        Some(event)
    }
}

impl Journey {
    /// Folds the kept history again from nothing, with every correction applied.
    pub(super) fn refold(&mut self) {
        let history = std::mem::take(&mut self.history);
        let corrections = Corrections::of(&history);
        let mut j = Journey::new(self.person_id);
        for h in &history {
            // Identifiers stay: the ledger's identity claims are not undone by a correction.
            j.identify(&h.event.data);
            j.version = h.position;
            if let Some(event) = corrections.effective(h) {
                j.effect(&h.recorded(self.person_id, event));
            }
            let corrected_by = corrections.corrected_by.get(&h.key()).copied();
            j.timeline.push(TimelineEntry::of_kept(h, corrected_by));
        }
        j.history = history;
        *self = j;
    }

    /// The kept event with this (source, id), as recorded.
    pub fn recorded_event(&self, source: &str, id: &str) -> Option<&Event> {
        self.history
            .iter()
            .find(|h| h.key() == (source, id))
            .map(|h| &h.event)
    }
}
