//! A store that keeps a journey's lines under keys of its own folds every event but a
//! correction with `Journey::apply_unlined` and makes the timeline from the kept history
//! with `TimelineEntry::of_kept`: both must give exactly what `Journey::apply` gives.

mod support;

use support::*;
use throughcare_events::catalogue::*;
use throughcare_events::RecordedEvent;
use throughcare_projections::journey::{HistoryEntry, TimelineEntry};
use throughcare_projections::Journey;

/// A whole journey: referral to signposting, with a transfer, a safeguarding concern and
/// an extension on the way.
fn history() -> Vec<Ev> {
    vec![
        referral("REF-1"),
        accept("REF-1"),
        allocate("W-0001"),
        consent(),
        assess(),
        plan(),
        release_date("2027-01-15"),
        transfer("WCI", "BNI"),
        safeguarding(),
        released(),
        contact(),
        signpost("SP-1", ServiceType::Gp),
        outcome("SP-1", SignpostOutcome::GpRegistered),
        extend("2027-06-01"),
        close(CloseReason::NeedsMet),
    ]
}

fn recorded(history: &[Ev]) -> Vec<RecordedEvent> {
    let mut g = given(&[]);
    history
        .iter()
        .map(|ev| {
            let r = g.record(ev);
            g.journey.apply(&r);
            r
        })
        .collect()
}

#[test]
fn folding_without_lines_gives_the_journey_without_its_lines() {
    let events = recorded(&history());
    let mut lined = Journey::new(person_id());
    let mut unlined = Journey::new(person_id());
    for e in &events {
        lined.apply(e);
        assert!(
            unlined.apply_unlined(e),
            "{} is not a correction",
            e.position
        );
        let mut without = lined.clone();
        let (timeline, history) = without.take_lines();
        assert_eq!(timeline.len(), history.len());
        assert_eq!(without, unlined, "after position {}", e.position);
    }
}

#[test]
fn a_correction_is_not_folded_without_lines() {
    let mut events = history();
    events.push(correction("evt-11", None));
    let events = recorded(&events);
    let mut j = Journey::new(person_id());
    let (correction, rest) = events.split_last().unwrap();
    for e in rest {
        assert!(j.apply_unlined(e));
    }
    let before = j.clone();
    assert!(!j.apply_unlined(correction));
    assert_eq!(
        j, before,
        "a refused correction leaves the journey as it was"
    );
}

#[test]
fn the_timeline_made_from_the_kept_history_is_the_timeline() {
    let events = recorded(&history());
    let mut j = Journey::new(person_id());
    for e in &events {
        j.apply(e);
    }
    let (timeline, history): (Vec<TimelineEntry>, Vec<HistoryEntry>) = j.take_lines();
    for ((line, kept), e) in timeline.iter().zip(&history).zip(&events) {
        assert_eq!(*line, TimelineEntry::of(e));
        assert_eq!(TimelineEntry::of_kept(kept, None), *line);
        let marked = TimelineEntry::of_kept(kept, Some(99));
        assert_eq!(marked.corrected_by, Some(99));
    }
}
