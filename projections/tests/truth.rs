//! Issue 9, "the journey tells the truth": given/when/then tests of each lifecycle item
//! (contact outcomes, hospital releases, corrections that take effect, flags that clear,
//! release-date precedence, referrals after release, recall, the referral window, the
//! RECONNECT vulnerabilities) and of the served view. Each test is named after what was
//! wrong. Pure: no database, no clock, synthetic people only.

mod support;

use serde_json::{json, Value};
use support::*;
use throughcare_events::catalogue::*;
use throughcare_events::{EventData, EventType};
use throughcare_projections::{
    allowed, contact_overdue, next_action, EpisodeFacts, FlagCode, NextAction, Status,
};

fn contact_with(outcome: ContactOutcome) -> Ev {
    ev(
        WORKER,
        EventData::ContactMade(ContactMade {
            person: person(),
            channel: ContactChannel::Phone,
            outcome: Some(outcome),
            personal: None,
        }),
    )
}

fn dated(kind: ReleaseDateType, d: &str) -> Ev {
    ev(
        HMPPS,
        EventData::ReleaseDateSet(ReleaseDateSet {
            person: person(),
            date: date(d),
            date_type: kind,
            personal: None,
        }),
    )
}

/// A correction from information governance of its own event `target`.
fn fix(target: &str, kind: CorrectionKind, value: Option<(&str, Value)>) -> Ev {
    ev(
        IG,
        EventData::RecordCorrected(RecordCorrected {
            person: person(),
            target_event_id: target.into(),
            target_source: None,
            what_was_wrong: kind,
            pointer: value.as_ref().map(|(p, _)| p.to_string()),
            corrected_value: value.map(|(_, v)| v),
            personal: None,
        }),
    )
}

/// The same, of an event from `source`.
fn fix_from(target: &str, source: &str, kind: CorrectionKind, value: Option<(&str, Value)>) -> Ev {
    let mut e = fix(target, kind, value);
    if let EventData::RecordCorrected(d) = &mut e.data {
        d.target_source = Some(source.to_string());
    }
    e
}

fn referral_from(referral_id: &str, prison_code: &str, expected: Option<&str>) -> Ev {
    let mut e = referral_expecting(referral_id, expected);
    if let EventData::ReferralReceived(d) = &mut e.data {
        d.prison = prison(prison_code);
    }
    e
}

fn active(g: &Given, now: &str) -> Vec<FlagCode> {
    g.view(now).active_flags.into_iter().collect()
}

// 1. Contact outcomes -----------------------------------------------------------------------

#[test]
fn contact_made_with_no_answer_is_not_contact() {
    // Recorded before contact.made refused these outcomes: the fold treats them as attempts.
    for outcome in [
        ContactOutcome::NoAnswer,
        ContactOutcome::NotFound,
        ContactOutcome::MessageLeft,
        ContactOutcome::Declined,
    ] {
        let g = given(&plus(seeking_contact(), [contact_with(outcome)]));
        let j = g.journey();
        assert_eq!(j.status, Status::SeekingContact, "{outcome}");
        assert_eq!(j.last_contact_at, None, "{outcome}");
        assert_eq!(j.episode().unwrap().first_contact_at, None, "{outcome}");
        assert!(active(&g, "2027-01-19T00:00:00Z").contains(&FlagCode::NoContact72h));
    }
    for outcome in [ContactOutcome::Met, ContactOutcome::Spoke] {
        let g = given(&plus(seeking_contact(), [contact_with(outcome)]));
        assert_eq!(g.journey().status, Status::Engaged, "{outcome}");
        assert!(g.journey().episode().unwrap().first_contact_at.is_some());
    }
}

// 2. Hospital releases ----------------------------------------------------------------------

#[test]
fn released_to_hospital_is_not_a_release_to_the_community() {
    let hospital = released_for(ReleaseReason::ReleasedToHospital).at(RELEASE);
    let g = given(&plus(planned(), [hospital]));
    let j = g.journey();
    assert_eq!(j.status, Status::InHospital);
    assert!(j.in_hospital && j.in_custody);
    assert_eq!(j.released_at, None);
    let ep = j.episode().unwrap();
    assert_eq!(ep.released_at, None, "no community release for the KPIs");
    assert_eq!(ep.hospital_at, Some(t(RELEASE)));
    let later = active(&g, "2027-03-15T00:00:00Z");
    assert!(!later.contains(&FlagCode::NoContact72h), "{later:?}");
    assert!(!later.contains(&FlagCode::NotGpRegistered28d), "{later:?}");
    assert!(!allowed(j).contains(&EventType::EngagementChanged));
    assert_ne!(
        next_action(j, t("2027-03-15T00:00:00Z")),
        NextAction::MakeContact
    );
    assert!(EpisodeFacts::of(j)[0].released_at.is_none());

    // Discharged to the community later: that is the release.
    let out = "2027-03-01T10:00:00Z";
    let g = given(&plus(
        planned(),
        [
            released_for(ReleaseReason::ReleasedToHospital).at(RELEASE),
            released().at(out),
        ],
    ));
    assert_eq!(g.journey().status, Status::SeekingContact);
    assert_eq!(g.journey().episode().unwrap().released_at, Some(t(out)));
    // Or back to prison.
    let g = given(&plus(
        planned(),
        [
            released_for(ReleaseReason::ReleasedToHospital).at(RELEASE),
            returned(),
        ],
    ));
    assert_eq!(g.journey().status, Status::InCustody);
    assert!(!g.journey().in_hospital);
}

// 3. Corrections take effect -----------------------------------------------------------------

#[test]
fn an_entered_in_error_contact_no_longer_counts() {
    // evt-7 is the gate contact of `engaged()`.
    let g = given(&plus(
        engaged(),
        [fix_from(
            "evt-7",
            WORKER,
            CorrectionKind::EnteredInError,
            None,
        )],
    ));
    let j = g.journey();
    assert_eq!(j.status, Status::SeekingContact);
    assert_eq!(j.last_contact_at, None);
    assert_eq!(j.episode().unwrap().first_contact_at, None);
    assert_eq!(EpisodeFacts::of(j)[0].first_contact_at, None, "KPIs");
    assert!(active(&g, "2027-01-19T00:00:00Z").contains(&FlagCode::NoContact72h));
    assert!(contact_overdue(j, t("2027-01-19T00:00:00Z")), "caseload");
    // The timeline still shows the contact and the correction.
    assert_eq!(j.timeline.len(), 8);
    assert_eq!(j.timeline[6].id, "evt-7");
    assert_eq!(j.timeline[6].corrected_by, Some(8));
    assert_eq!(j.timeline[7].kind, "throughcare.record.corrected.v1");
    assert_eq!(j.version, 8);
}

#[test]
fn a_wrong_person_release_leaves_the_journey() {
    // evt-6 is the release of `seeking_contact()`.
    let g = given(&plus(
        seeking_contact(),
        [fix_from("evt-6", HMPPS, CorrectionKind::WrongPerson, None)],
    ));
    let j = g.journey();
    assert_eq!(j.status, Status::PreRelease);
    assert!(j.in_custody);
    assert_eq!(j.released_at, None);
    assert_eq!(j.episode().unwrap().released_at, None);
    assert_eq!(
        j.release_date.as_ref().map(|d| d.date),
        Some(date("2027-01-15"))
    );
    assert_eq!(j.timeline[5].corrected_by, Some(7));
}

#[test]
fn a_wrong_date_correction_moves_the_release() {
    let real = "2027-01-17T09:00:00Z";
    let g = given(&plus(
        seeking_contact(),
        [fix_from(
            "evt-6",
            HMPPS,
            CorrectionKind::WrongDate,
            Some(("/time", json!(real))),
        )],
    ));
    let j = g.journey();
    assert_eq!(j.released_at, Some(t(real)));
    assert_eq!(j.episode().unwrap().released_at, Some(t(real)));
    // The timeline keeps what was recorded.
    assert_eq!(j.timeline[5].occurred_at, t(RELEASE));
}

#[test]
fn a_wrong_value_correction_changes_the_release_date() {
    let g = given(&plus(
        pre_release(),
        [
            dated(ReleaseDateType::Confirmed, "2027-02-01"),
            fix_from(
                "evt-4",
                HMPPS,
                CorrectionKind::WrongValue,
                Some(("/data/date", json!("2027-03-01"))),
            ),
        ],
    ));
    assert_eq!(
        g.journey().release_date.as_ref().map(|d| d.date),
        Some(date("2027-03-01"))
    );
}

#[test]
fn a_corrected_value_that_does_not_fit_is_refused() {
    let err = given(&plus(
        pre_release(),
        [dated(ReleaseDateType::Confirmed, "2027-02-01")],
    ))
    .when(fix_from(
        "evt-4",
        HMPPS,
        CorrectionKind::WrongValue,
        Some(("/data/date", json!("soon"))),
    ))
    .then_err(Status::PreRelease);
    assert!(err.reason.contains("/data/date"), "{}", err.reason);
}

#[test]
fn a_correction_entered_in_error_restores_its_target() {
    // evt-8 voids the contact; evt-9 says evt-8 itself was entered in error.
    let g = given(&plus(
        engaged(),
        [
            fix_from("evt-7", WORKER, CorrectionKind::EnteredInError, None),
            fix("evt-8", CorrectionKind::EnteredInError, None),
        ],
    ));
    assert_eq!(g.journey().status, Status::Engaged);
    assert!(g.journey().last_contact_at.is_some());
}

// 4. Flags clear ----------------------------------------------------------------------------

#[test]
fn no_plan_at_release_clears_when_a_plan_is_agreed() {
    let history = plus(pre_release(), [released().at(RELEASE), plan()]);
    let j = given(&history).journey.clone();
    let f = j
        .flags
        .iter()
        .find(|f| f.code == FlagCode::NoPlanAtRelease)
        .expect("raised at release");
    assert_eq!((f.raised_by, f.cleared_by), (Some(4), Some(5)));
    assert!(!active(&given(&history), "2027-01-15T12:00:00Z").contains(&FlagCode::NoPlanAtRelease));
}

#[test]
fn released_without_referral_clears_when_a_referral_is_accepted() {
    let history = vec![
        released().at(RELEASE),
        referral_from("REF-1", "WCI", None).at("2027-01-20T09:00:00Z"),
        accept("REF-1"),
    ];
    let j = given(&history).journey.clone();
    let f = &j.flags[0];
    assert_eq!(f.code, FlagCode::ReleasedWithoutReferral);
    assert_eq!(f.cleared_by, Some(3));
}

#[test]
fn flags_of_a_closed_episode_do_not_leak_into_a_new_one() {
    let history = plus(
        pre_release(),
        [
            released().at(RELEASE),
            safeguarding(),
            close(CloseReason::NeedsMet),
            referral_from("REF-2", "WCI", None).at("2027-02-01T09:00:00Z"),
        ],
    );
    let g = given(&history);
    let now = "2027-02-01T10:00:00Z";
    let flags = active(&g, now);
    assert!(!flags.contains(&FlagCode::NoPlanAtRelease), "{flags:?}");
    assert!(!flags.contains(&FlagCode::SafeguardingRaised), "{flags:?}");
    assert!(g.journey().flags.iter().all(|f| f.cleared_by == Some(7)));
}

// 5. Release-date precedence -----------------------------------------------------------------

#[test]
fn a_parole_eligibility_date_does_not_overwrite_a_confirmed_date() {
    use ReleaseDateType::*;
    let g = given(&plus(
        pre_release(),
        [dated(Confirmed, "2027-01-15"), dated(Ped, "2026-12-01")],
    ));
    let j = g.journey();
    let rd = j.release_date.as_ref().unwrap();
    assert_eq!((rd.date, rd.date_type), (date("2027-01-15"), Confirmed));
    assert!(!flags(j).contains(&FlagCode::ReleaseDateChanged));
    let kinds: Vec<_> = j
        .release_dates
        .iter()
        .map(|d| (d.date_type, d.date))
        .collect();
    assert!(kinds.contains(&(Ped, date("2026-12-01"))), "{kinds:?}");
    assert!(
        kinds.contains(&(Confirmed, date("2027-01-15"))),
        "{kinds:?}"
    );

    // Precedence, whatever the order: CONFIRMED > HDCAD > ARD > CRD; PED/HDCED never.
    for (history, want) in [
        (
            vec![dated(Crd, "2027-03-01"), dated(Hdcad, "2027-02-01")],
            (Hdcad, "2027-02-01"),
        ),
        (
            vec![dated(Hdcad, "2027-02-01"), dated(Crd, "2027-03-01")],
            (Hdcad, "2027-02-01"),
        ),
        (
            vec![dated(Confirmed, "2027-02-10"), dated(Ard, "2027-03-01")],
            (Confirmed, "2027-02-10"),
        ),
        (
            vec![dated(Crd, "2027-03-01"), dated(Hdced, "2027-01-01")],
            (Crd, "2027-03-01"),
        ),
        (
            vec![dated(Crd, "2027-03-01"), dated(Crd, "2027-03-08")],
            (Crd, "2027-03-08"),
        ),
    ] {
        let j = given(&plus(vec![referral_expecting("REF-1", None)], history))
            .journey
            .clone();
        let rd = j.release_date.unwrap();
        assert_eq!((rd.date_type, rd.date), (want.0, date(want.1)));
    }
    // An eligibility date alone is no release date.
    let j = given(&[referral_expecting("REF-1", None), dated(Ped, "2027-01-01")])
        .journey
        .clone();
    assert_eq!(j.release_date, None);
}

// 6. Referral after release -----------------------------------------------------------------

#[test]
fn a_referral_after_release_keeps_the_person_in_the_community() {
    let history = vec![
        released().at(RELEASE),
        referral_from("REF-1", "BNI", Some("2027-01-15")).at("2027-01-25T09:00:00Z"),
        accept("REF-1"),
    ];
    let g = given(&history);
    let j = g.journey();
    assert!(!j.in_custody);
    assert_eq!(j.prison.as_deref(), Some("WCI"));
    assert_eq!(j.status, Status::SeekingContact);
    let ep = j.episode().unwrap();
    assert_eq!(
        ep.released_at,
        Some(t(RELEASE)),
        "the episode keeps the real release"
    );
    assert_eq!(ep.released_from.as_deref(), Some("WCI"));
}

// 7. Recall and re-release ------------------------------------------------------------------

#[test]
fn recall_and_re_release_recompute_the_support_window() {
    let recalled = plus(engaged(), [returned().at("2027-03-01T10:00:00Z")]);
    let g = given(&recalled);
    // Back in custody with no new date: the old sentence's date is no window any more.
    assert_eq!(g.journey().support_end(), None);
    assert!(!active(&g, "2027-09-01T00:00:00Z").contains(&FlagCode::PastSupportEnd));
    let again = "2027-06-10T08:00:00Z";
    let g = given(&plus(recalled.clone(), [released().at(again)]));
    let v = g.view("2027-06-11T00:00:00Z");
    assert_eq!(v.support_end, Some(date("2027-12-10")));
    assert_eq!(v.support_start, Some(date("2027-03-18")));
    // A new release date for the recall counts while in custody.
    let g = given(&plus(recalled, [dated(ReleaseDateType::Crd, "2027-05-01")]));
    assert_eq!(g.journey().support_end(), Some(date("2027-11-01")));
}

// 8. Referral window -------------------------------------------------------------------------

#[test]
fn referrals_outside_the_window_are_recorded_with_a_flag() {
    let outside = |history: &[Ev]| {
        let j = given(history).journey.clone();
        let flagged = flags(&j).contains(&FlagCode::OutsideReferralWindow);
        assert_eq!(flagged, j.episode().unwrap().referrals[0].outside_window);
        flagged
    };
    // START is 2026-11-20: more than 12 weeks before a release on 2027-03-01.
    assert!(outside(&[referral_expecting("REF-1", Some("2027-03-01"))]));
    assert!(!outside(&[referral_expecting("REF-1", Some("2027-01-15"))]));
    assert!(!outside(&[referral_expecting("REF-1", None)]));
    let after = |days: i64| {
        let at = t(RELEASE) + chrono::Duration::days(days);
        vec![
            released().at(RELEASE),
            referral_from("REF-1", "WCI", None).at(&at.to_rfc3339()),
        ]
    };
    assert!(!outside(&after(28)));
    assert!(outside(&after(29)));
}

// 9. Vulnerabilities ------------------------------------------------------------------------

#[test]
fn reconnect_vulnerabilities_are_kept_on_the_journey() {
    let mut r = referral("REF-1");
    if let EventData::ReferralReceived(d) = &mut r.data {
        d.vulnerabilities = vec![
            Vulnerability::LearningDifficulty,
            Vulnerability::PersonalityDisorder,
            Vulnerability::AcquiredBrainInjury,
            Vulnerability::PhysicalHealth,
            Vulnerability::Veteran,
        ];
    }
    let j = given(&[r]).journey.clone();
    assert_eq!(j.vulnerabilities.len(), 5);
}

// Code shape: the API serves a view ------------------------------------------------------------

#[test]
fn the_view_is_not_the_stored_document() {
    let g = given(&engaged());
    let view = serde_json::to_value(g.view("2027-01-16T00:00:00Z")).unwrap();
    let stored = serde_json::to_value(g.journey()).unwrap();
    assert!(
        stored.get("history").is_some(),
        "the stored journey keeps its events"
    );
    assert!(view.get("history").is_none(), "the view never serves them");
    let keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "active_flags",
            "allowed_events",
            "as_of",
            "consent",
            "engagement",
            "episodes",
            "flags",
            "identifiers",
            "in_custody",
            "in_hospital",
            "last_contact_at",
            "local_authority",
            "needs",
            "person_id",
            "plan",
            "prison",
            "release_date",
            "release_dates",
            "release_reason",
            "released_at",
            "safeguarding",
            "signposts",
            "status",
            "support_end",
            "support_extended_until",
            "support_start",
            "timeline",
            "version",
            "vulnerabilities",
            "worker",
        ]
    );
}
