//! The journey: one person's path from referral in prison to support in the community,
//! folded from their recorded events. `apply` cannot fail and holds no rules; the rules
//! live in [`crate::decide`]. Time-based flags are computed by [`Journey::view`] against a
//! query time passed in, never the wall clock.
//!
//! A module per concept: `parts` (the small types), `episode` (referrals, episodes,
//! closure), `custody` (release dates, releases, hospital, recall, support window), `fold`
//! (what each event does), `flags`, `history` (corrections that take effect), `timeline`,
//! and `view` (the served type).

mod custody;
mod episode;
mod flags;
mod fold;
mod history;
mod parts;
mod timeline;
mod view;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use throughcare_events::catalogue::*;
use throughcare_events::{EventData, PersonId, RecordedEvent};

pub use episode::{ContactRecord, Episode, Referral, ReferralState};
pub use flags::{Flag, FlagCode};
pub use history::HistoryEntry;
pub use parts::{Consent, Identifiers, Plan, ReleaseDate, Safeguarding, Signpost, Status, Worker};
pub use timeline::TimelineEntry;
pub use view::{EpisodeView, JourneyView};

/// The journey read model of one person, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journey {
    pub person_id: PersonId,
    /// Position of the person's last event (their version).
    pub version: u64,
    pub status: Status,
    pub identifiers: Identifiers,
    /// Detained: in prison, or in a secure hospital (`in_hospital`).
    pub in_custody: bool,
    /// Transferred to a secure hospital (RELEASED_TO_HOSPITAL) and not released since.
    #[serde(default)]
    pub in_hospital: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prison: Option<String>,
    /// The release date of the current time in custody, by HMPPS precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<ReleaseDate>,
    /// Every release date reported, with its kind, in order.
    #[serde(default)]
    pub release_dates: Vec<ReleaseDate>,
    /// When the person was last released to the community (occurred time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<ReleaseReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Worker>,
    pub consent: Consent,
    pub vulnerabilities: BTreeSet<Vulnerability>,
    pub needs: Vec<Need>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    pub signposts: Vec<Signpost>,
    pub safeguarding: Vec<Safeguarding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_extended_until: Option<NaiveDate>,
    pub flags: Vec<Flag>,
    pub episodes: Vec<Episode>,
    pub timeline: Vec<TimelineEntry>,
    /// The events folded (without `personal`), so a correction can re-fold them.
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

impl Journey {
    pub fn new(person_id: PersonId) -> Self {
        Journey {
            person_id,
            version: 0,
            status: Status::NotReferred,
            identifiers: Identifiers::default(),
            in_custody: false,
            in_hospital: false,
            prison: None,
            release_date: None,
            release_dates: Vec::new(),
            released_at: None,
            release_reason: None,
            local_authority: None,
            worker: None,
            consent: Consent::default(),
            vulnerabilities: BTreeSet::new(),
            needs: Vec::new(),
            plan: None,
            signposts: Vec::new(),
            safeguarding: Vec::new(),
            engagement: None,
            last_contact_at: None,
            support_extended_until: None,
            flags: Vec::new(),
            episodes: Vec::new(),
            timeline: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Folds a person's events from scratch.
    pub fn fold<'a>(
        person_id: PersonId,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Self {
        let mut j = Journey::new(person_id);
        for e in events {
            j.apply(e);
        }
        j
    }

    /// Folds one recorded event in. Never fails: refused submissions are never recorded,
    /// and facts that surprise the model raise flags instead. A correction that takes
    /// effect re-folds the kept history.
    ///
    /// Only a `record.corrected` reads the lines already folded (it marks or re-folds
    /// them); any other event only appends a line of each, so a journey whose lines were
    /// taken out ([`Journey::take_lines`]) folds it to the same state and the same new
    /// lines.
    pub fn apply(&mut self, e: &RecordedEvent) {
        self.history.push(HistoryEntry::of(e));
        if let EventData::RecordCorrected(d) = &e.event.data {
            if history::takes_effect(d) {
                return self.refold();
            }
        }
        self.version = e.position;
        self.identify(&e.event.data);
        self.effect(e);
        self.timeline.push(TimelineEntry::of(e));
    }

    /// Folds one event in as [`Journey::apply`] does, without keeping its lines (its
    /// timeline entry and history entry): for a store that keeps the lines under keys of
    /// its own and has taken them out ([`Journey::take_lines`]). A `record.corrected`
    /// reads the lines (it marks or re-folds them), so it is not folded here: false, and
    /// the journey is unchanged; fold it with [`Journey::apply`] once the lines are back.
    #[must_use]
    pub fn apply_unlined(&mut self, e: &RecordedEvent) -> bool {
        if matches!(e.event.data, EventData::RecordCorrected(_)) {
            return false;
        }
        self.version = e.position;
        self.identify(&e.event.data);
        self.effect(e);
        true
    }

    /// Takes the identifiers an event names (its person, and those it links). A
    /// correction does not take them back: the ledger's identity claims are permanent, and
    /// the journey's identifiers are the identity index's.
    fn identify(&mut self, data: &EventData) {
        self.identifiers.add(data.person());
        if let EventData::IdentifiersLinked(d) = data {
            let i = &d.identifiers;
            self.identifiers.add(&throughcare_events::PersonRef {
                person_id: None,
                nomis: i.nomis.clone(),
                nhs_number: i.nhs_number.clone(),
                crn: i.crn.clone(),
            });
        }
    }

    pub fn episode(&self) -> Option<&Episode> {
        self.episodes.last()
    }
    fn episode_mut(&mut self) -> Option<&mut Episode> {
        self.episodes.last_mut()
    }

    /// The referral with this id in the current episode.
    pub fn referral(&self, referral_id: &str) -> Option<&Referral> {
        self.episode()?
            .referrals
            .iter()
            .find(|r| r.referral_id == referral_id)
    }

    pub fn signpost(&self, signpost_id: &str) -> Option<&Signpost> {
        self.signposts.iter().find(|s| s.signpost_id == signpost_id)
    }

    /// Takes out the journey's lines, one per folded event: its timeline and the kept
    /// history, in order and of the same length (a line of each per event, with the same
    /// position). The read models keep each event's pair under its own key, so that
    /// folding an event appends a line instead of rewriting the whole document.
    pub fn take_lines(&mut self) -> (Vec<TimelineEntry>, Vec<HistoryEntry>) {
        (
            std::mem::take(&mut self.timeline),
            std::mem::take(&mut self.history),
        )
    }

    /// Puts lines taken by [`Journey::take_lines`] (or read back from a store) back, in
    /// position order, replacing any the journey holds.
    pub fn put_lines(&mut self, timeline: Vec<TimelineEntry>, history: Vec<HistoryEntry>) {
        self.timeline = timeline;
        self.history = history;
    }

    /// Whether an event with this (source, id) is in the person's history.
    pub fn has_event(&self, source: &str, id: &str) -> bool {
        self.timeline
            .iter()
            .any(|t| t.id == id && t.source == source)
    }
}
