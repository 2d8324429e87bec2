//! Given/when/then domain tests of the case lifecycle (DESIGN.md, "Case lifecycle" and
//! "Validation"): what `decide` lets be recorded, what `Journey::apply` makes of it, and
//! the flags `Journey::view(now)` shows. Pure: no database, no clock, synthetic people only.

mod support;

use support::*;
use throughcare_events::catalogue::*;
use throughcare_events::EventType;
use throughcare_projections::journey::ReferralState;
use throughcare_projections::{allowed, FlagCode, Journey, Status};

// ------------------------------------------------------------------------------------------
// The lifecycle
// ------------------------------------------------------------------------------------------

#[test]
fn every_transition_of_the_lifecycle() {
    use EngagementStatus as E;
    use Status::*;
    check(vec![
        (
            "a referral opens a case",
            vec![],
            referral("REF-1"),
            Becomes(Referred),
        ),
        (
            "REFERRED -accepted-> ACCEPTED",
            referred(),
            accept("REF-1"),
            Becomes(Accepted),
        ),
        (
            "ACCEPTED in prison is PRE_RELEASE once allocated",
            accepted(),
            allocate("W-017"),
            Becomes(PreRelease),
        ),
        (
            "ACCEPTED -released-> SEEKING_CONTACT",
            accepted(),
            released(),
            Becomes(SeekingContact),
        ),
        (
            "PRE_RELEASE -released-> SEEKING_CONTACT",
            planned(),
            released(),
            Becomes(SeekingContact),
        ),
        (
            "an allocation after release keeps SEEKING_CONTACT",
            plus(accepted(), [released()]),
            allocate("W-017"),
            Becomes(SeekingContact),
        ),
        (
            "REFERRED stays REFERRED on release",
            referred(),
            released(),
            Becomes(Referred),
        ),
        (
            "accepted after release -> SEEKING_CONTACT",
            plus(referred(), [released()]),
            accept("REF-1"),
            Becomes(SeekingContact),
        ),
        (
            "SEEKING_CONTACT -contact.made-> ENGAGED",
            seeking_contact(),
            contact(),
            Becomes(Engaged),
        ),
        (
            "a contact attempt keeps SEEKING_CONTACT",
            seeking_contact(),
            attempt(),
            Becomes(SeekingContact),
        ),
        (
            "contact in prison keeps PRE_RELEASE",
            planned(),
            contact(),
            Becomes(PreRelease),
        ),
        (
            "ENGAGED -engagement DISENGAGED-> DISENGAGED",
            engaged(),
            engagement(E::Disengaged),
            Becomes(Disengaged),
        ),
        (
            "DISENGAGED -engagement ENGAGED-> ENGAGED",
            disengaged(),
            engagement(E::Engaged),
            Becomes(Engaged),
        ),
        (
            "ENGAGED -engagement LOST_CONTACT-> DISENGAGED",
            engaged(),
            engagement(E::LostContact),
            Becomes(Disengaged),
        ),
        (
            "SEEKING_CONTACT -engagement ENGAGED-> ENGAGED",
            seeking_contact(),
            engagement(E::Engaged),
            Becomes(Engaged),
        ),
        (
            "SEEKING_CONTACT -returned-> IN_CUSTODY",
            seeking_contact(),
            returned(),
            Becomes(InCustody),
        ),
        (
            "ENGAGED -returned-> IN_CUSTODY",
            engaged(),
            returned(),
            Becomes(InCustody),
        ),
        (
            "DISENGAGED -returned-> IN_CUSTODY",
            disengaged(),
            returned(),
            Becomes(InCustody),
        ),
        (
            "IN_CUSTODY -released-> SEEKING_CONTACT",
            in_custody(),
            released(),
            Becomes(SeekingContact),
        ),
        (
            "IN_CUSTODY stays IN_CUSTODY when allocated",
            in_custody(),
            allocate("W-020"),
            Becomes(InCustody),
        ),
        (
            "REFERRED -declined-> CLOSED",
            referred(),
            decline("REF-1"),
            Becomes(Closed),
        ),
        (
            "REFERRED -withdrawn-> CLOSED",
            referred(),
            withdraw("REF-1"),
            Becomes(Closed),
        ),
        (
            "declining one of two pending referrals keeps REFERRED",
            plus(referred(), [referral("REF-2")]),
            decline("REF-1"),
            Becomes(Referred),
        ),
        (
            "declining the last pending referral -> CLOSED",
            plus(referred(), [referral("REF-2"), withdraw("REF-1")]),
            decline("REF-2"),
            Becomes(Closed),
        ),
        (
            "accepting the other referral after a withdrawal -> ACCEPTED",
            plus(referred(), [referral("REF-2"), withdraw("REF-1")]),
            accept("REF-2"),
            Becomes(Accepted),
        ),
        (
            "declining a second referral on an accepted case keeps it open",
            plus(accepted(), [referral("REF-2")]),
            decline("REF-2"),
            Becomes(Accepted),
        ),
        (
            "a second referral on an open case joins it",
            engaged(),
            referral("REF-2"),
            Becomes(Engaged),
        ),
        (
            "CLOSED -reopened-> ACCEPTED (in prison, no worker)",
            plus(accepted(), [close(CloseReason::DeclinedSupport)]),
            reopen(),
            Becomes(Accepted),
        ),
        (
            "CLOSED -reopened-> PRE_RELEASE (in prison, allocated)",
            plus(planned(), [close(CloseReason::DeclinedSupport)]),
            reopen(),
            Becomes(PreRelease),
        ),
        (
            "CLOSED -reopened-> PRE_RELEASE (back in custody, allocated)",
            plus(in_custody(), [close(CloseReason::ReturnedToCustody)]),
            reopen(),
            Becomes(PreRelease),
        ),
        (
            "CLOSED -reopened-> SEEKING_CONTACT (in the community)",
            closed(),
            reopen(),
            Becomes(SeekingContact),
        ),
        (
            "a reopened case in prison is released to SEEKING_CONTACT",
            plus(planned(), [close(CloseReason::DeclinedSupport), reopen()]),
            released(),
            Becomes(SeekingContact),
        ),
        (
            "CLOSED -referral-> REFERRED",
            declined(),
            referral("REF-2"),
            Becomes(Referred),
        ),
        (
            "CLOSED -referral reusing an old id-> REFERRED",
            declined(),
            referral("REF-1"),
            Becomes(Referred),
        ),
        (
            "a person known only from facts is referred",
            vec![release_date("2027-01-15"), linked()],
            referral("REF-1"),
            Becomes(Referred),
        ),
        (
            "consent.withdrawn ENGAGE closes an engaged case",
            engaged(),
            consent_withdrawn(),
            Becomes(Closed),
        ),
        (
            "consent.withdrawn ENGAGE closes a referred case",
            referred(),
            consent_withdrawn(),
            Becomes(Closed),
        ),
        (
            "consent.withdrawn SHARE_WITH keeps the case open",
            plus(engaged(), [share(&["Synthetic GP Practice"])]),
            unshare(&["Synthetic GP Practice"]),
            Becomes(Engaged),
        ),
    ]);
}

#[test]
fn case_closed_from_every_open_status() {
    use Status::*;
    let open: Vec<(&'static str, Vec<Ev>, Status)> = vec![
        ("REFERRED", referred(), Referred),
        ("ACCEPTED", accepted(), Accepted),
        ("PRE_RELEASE", planned(), PreRelease),
        ("SEEKING_CONTACT", seeking_contact(), SeekingContact),
        ("ENGAGED", engaged(), Engaged),
        ("DISENGAGED", disengaged(), Disengaged),
        ("IN_CUSTODY", in_custody(), InCustody),
    ];
    for (_, history, status) in &open {
        assert_eq!(
            given(history).journey().status,
            *status,
            "the history reaches {status:?}"
        );
    }
    check(
        open.into_iter()
            .map(|(name, history, _)| {
                (
                    name,
                    history,
                    close(CloseReason::MovedArea),
                    Becomes(Closed),
                )
            })
            .collect(),
    );
}

#[test]
fn closing_records_when_and_why_on_the_episode() {
    given(&engaged())
        .when(close(CloseReason::LostContact).at("2027-03-01T12:00:00Z"))
        .then(|j| {
            let ep = j.episode().unwrap();
            assert_eq!(ep.closed_at, Some(t("2027-03-01T12:00:00Z")));
            assert_eq!(ep.close_reason, Some(CloseReason::LostContact));
        });
    given(&engaged()).when(consent_withdrawn()).then(|j| {
        assert_eq!(
            j.episode().unwrap().close_reason,
            Some(CloseReason::ConsentWithdrawn)
        );
        assert!(!j.consent.engage);
    });
    given(&referred()).when(decline("REF-1")).then(|j| {
        let ep = j.episode().unwrap();
        assert!(ep.closed_at.is_some());
        assert_eq!(ep.referrals[0].state, ReferralState::Declined);
        assert!(ep.accepted_at.is_none());
    });
}

#[test]
fn reopening_clears_the_closure_of_the_episode() {
    given(&closed()).when(reopen()).then(|j| {
        assert_eq!(j.episodes.len(), 1, "reopening does not open a new episode");
        let ep = j.episode().unwrap();
        assert_eq!(ep.closed_at, None);
        assert_eq!(ep.close_reason, None);
        assert!(ep.accepted_at.is_some());
        assert_eq!(
            j.worker.as_ref().unwrap().worker_id,
            "W-017",
            "the worker stays"
        );
    });
}

#[test]
fn a_new_referral_on_a_closed_case_opens_a_new_episode_and_keeps_the_old() {
    // Closed in the community, recalled, then referred again in prison.
    let history = plus(closed(), [returned()]);
    let j = given(&history)
        .when(referral("REF-2").at("2027-06-01T10:00:00Z"))
        .then(|j| {
            assert_eq!(j.status, Status::Referred);
            assert_eq!(j.episodes.len(), 2);
            let (first, second) = (&j.episodes[0], &j.episodes[1]);
            assert_eq!(first.number, 1);
            assert_eq!(first.referrals[0].referral_id, "REF-1");
            assert_eq!(first.referrals[0].state, ReferralState::Accepted);
            assert!(first.accepted_at.is_some() && first.released_at.is_some());
            assert!(first.first_contact_at.is_some());
            assert_eq!(first.close_reason, Some(CloseReason::NeedsMet));
            assert_eq!(second.number, 2);
            assert_eq!(second.opened_at, t("2027-06-01T10:00:00Z"));
            assert_eq!(second.referrals.len(), 1);
            assert_eq!(second.referrals[0].state, ReferralState::Pending);
            assert!(second.closed_at.is_none() && second.accepted_at.is_none());
            // What belonged to the last episode is history now.
            assert!(j.worker.is_none() && j.plan.is_none() && j.needs.is_empty());
        });
    assert_eq!(j.version, history.len() as u64 + 1);
    let referred_again = plus(history, [referral("REF-2")]);
    given(&referred_again).when(accept("REF-2")).then(|j| {
        assert_eq!(j.status, Status::Accepted);
        assert!(j.episodes[1].accepted_at.is_some());
        assert!(j.episodes[0].closed_at.is_some(), "episode 1 stays closed");
    });

    // Referred again in the community (e.g. by liaison and diversion): accepted means
    // seeking contact, with nothing carried over from the first episode.
    given(&plus(closed(), [referral("REF-2")]))
        .when(accept("REF-2"))
        .then(|j| {
            assert_eq!(j.episodes.len(), 2);
            assert_eq!(j.status, Status::SeekingContact);
            assert!(j.engagement.is_none());
        });
}

#[test]
fn every_step_of_a_long_journey_is_accepted() {
    use EngagementStatus as E;
    let steps = [
        referral("REF-1"),
        consent(),
        accept("REF-1"),
        allocate("W-017"),
        assess(),
        plan(),
        share(&["Synthetic GP Practice"]),
        release_date("2027-01-15"),
        transfer("WCI", "BNI"),
        review(),
        released().at(RELEASE),
        attempt(),
        contact(),
        signpost("S-1", ServiceType::Gp),
        signpost("S-2", ServiceType::Housing),
        outcome("S-1", SignpostOutcome::GpRegistered),
        engagement(E::Disengaged),
        safeguarding(),
        engagement(E::Engaged),
        returned(),
        released(),
        contact(),
        extend("2027-09-30"),
        outcome("S-2", SignpostOutcome::HousingSettled),
        correct_from("evt-12", WORKER),
        close(CloseReason::NeedsMet),
        reopen(),
        close(CloseReason::SixMonthLimit),
        referral("REF-2"),
        withdraw("REF-2"),
    ];
    let mut history = Vec::new();
    for step in steps {
        let kind = step.kind();
        let j = given(&history).when(step.clone()).then(|_| {});
        assert!(
            allowed(&history_journey(&history)).contains(&kind),
            "allowed lists {kind}"
        );
        assert_eq!(j.version, history.len() as u64 + 1);
        history.push(step);
    }
    let j = given(&history).journey().clone();
    assert_eq!(j.status, Status::Closed);
    assert_eq!(j.episodes.len(), 2);
    assert_eq!(j.timeline.len(), history.len());
}

fn history_journey(history: &[Ev]) -> Journey {
    given(history).journey().clone()
}

// ------------------------------------------------------------------------------------------
// Refusals: 409 with the current state and the allowed events; nothing recorded
// ------------------------------------------------------------------------------------------

#[test]
fn refusals_of_referral_decisions() {
    use Status::*;
    check(vec![
        (
            "accept an unknown referral",
            referred(),
            accept("REF-9"),
            RefusedByData(Referred),
        ),
        (
            "accept when never referred",
            vec![],
            accept("REF-1"),
            Refused(NotReferred),
        ),
        (
            "accept an accepted referral",
            accepted(),
            accept("REF-1"),
            Refused(Accepted),
        ),
        (
            "decline an accepted referral",
            accepted(),
            decline("REF-1"),
            Refused(Accepted),
        ),
        (
            "withdraw an accepted referral",
            engaged(),
            withdraw("REF-1"),
            Refused(Engaged),
        ),
        (
            "accept a declined referral",
            declined(),
            accept("REF-1"),
            Refused(Closed),
        ),
        (
            "withdraw a declined referral",
            declined(),
            withdraw("REF-1"),
            Refused(Closed),
        ),
        (
            "decline a withdrawn referral while another is pending",
            plus(referred(), [referral("REF-2"), withdraw("REF-1")]),
            decline("REF-1"),
            RefusedByData(Referred),
        ),
        (
            "accept a referral of an earlier episode",
            plus(declined(), [referral("REF-2")]),
            accept("REF-1"),
            RefusedByData(Referred),
        ),
        (
            "a duplicate referral id on an open case",
            referred(),
            referral("REF-1"),
            RefusedByData(Referred),
        ),
        (
            "a duplicate referral id on an engaged case",
            engaged(),
            referral("REF-1"),
            RefusedByData(Engaged),
        ),
    ]);
}

/// DESIGN.md: a closed case goes on only by case.reopened or a new referral; the pending
/// referral of a case closed before triage cannot then be accepted, declined or withdrawn.
#[test]
fn a_referral_of_a_closed_case_cannot_be_decided() {
    use Status::*;
    let closed_before_triage = plus(referred(), [close(CloseReason::DeclinedSupport)]);
    check(vec![
        (
            "accept",
            closed_before_triage.clone(),
            accept("REF-1"),
            Refused(Closed),
        ),
        (
            "decline",
            closed_before_triage.clone(),
            decline("REF-1"),
            Refused(Closed),
        ),
        (
            "withdraw",
            closed_before_triage,
            withdraw("REF-1"),
            Refused(Closed),
        ),
    ]);
}

#[test]
fn refusals_of_case_work() {
    use EngagementStatus as E;
    use Status::*;
    let signposted = plus(engaged(), [signpost("S-1", ServiceType::Gp)]);
    check(vec![
        (
            "allocate a closed case",
            closed(),
            allocate("W-020"),
            Refused(Closed),
        ),
        (
            "allocate a declined case",
            declined(),
            allocate("W-020"),
            Refused(Closed),
        ),
        (
            "allocate a case not yet accepted",
            referred(),
            allocate("W-020"),
            Refused(Referred),
        ),
        (
            "allocate a person never referred",
            vec![],
            allocate("W-020"),
            Refused(NotReferred),
        ),
        (
            "consent for a person never referred",
            vec![],
            consent(),
            Refused(NotReferred),
        ),
        (
            "consent on a closed case",
            closed(),
            consent(),
            Refused(Closed),
        ),
        (
            "withdraw consent on a closed case",
            closed(),
            consent_withdrawn(),
            Refused(Closed),
        ),
        (
            "withdraw consent to share never given",
            engaged(),
            unshare(&["Synthetic Housing Options"]),
            RefusedByData(Engaged),
        ),
        (
            "assess a case not yet accepted",
            referred(),
            assess(),
            Refused(Referred),
        ),
        ("assess a closed case", closed(), assess(), Refused(Closed)),
        (
            "plan a case not yet accepted",
            referred(),
            plan(),
            Refused(Referred),
        ),
        (
            "plan.reviewed without a plan",
            pre_release(),
            review(),
            Refused(PreRelease),
        ),
        (
            "plan.reviewed on a closed case",
            closed(),
            review(),
            Refused(Closed),
        ),
        (
            "contact before acceptance",
            referred(),
            contact(),
            Refused(Referred),
        ),
        (
            "contact attempt on a closed case",
            closed(),
            attempt(),
            Refused(Closed),
        ),
        (
            "engagement.changed before release (REFERRED)",
            referred(),
            engagement(E::Engaged),
            Refused(Referred),
        ),
        (
            "engagement.changed before release (ACCEPTED)",
            accepted(),
            engagement(E::Engaged),
            Refused(Accepted),
        ),
        (
            "engagement.changed before release (PRE_RELEASE)",
            planned(),
            engagement(E::Disengaged),
            Refused(PreRelease),
        ),
        (
            "engagement.changed in custody",
            in_custody(),
            engagement(E::Disengaged),
            Refused(InCustody),
        ),
        (
            "engagement.changed on a closed case",
            closed(),
            engagement(E::Engaged),
            Refused(Closed),
        ),
        (
            "signpost before acceptance",
            referred(),
            signpost("S-1", ServiceType::Gp),
            Refused(Referred),
        ),
        (
            "signpost on a closed case",
            closed(),
            signpost("S-1", ServiceType::Gp),
            Refused(Closed),
        ),
        (
            "a duplicate signpost id",
            signposted.clone(),
            signpost("S-1", ServiceType::Housing),
            RefusedByData(Engaged),
        ),
        (
            "an outcome for an unknown signpost (none made)",
            engaged(),
            outcome("S-9", SignpostOutcome::Attended),
            Refused(Engaged),
        ),
        (
            "an outcome for an unknown signpost (another made)",
            signposted,
            outcome("S-9", SignpostOutcome::Attended),
            RefusedByData(Engaged),
        ),
        (
            "safeguarding for a person never referred",
            vec![released()],
            safeguarding(),
            Refused(NotReferred),
        ),
    ]);
}

#[test]
fn refusals_of_support_extension() {
    use Status::*;
    // Released 2027-01-15: support runs to 2027-07-15.
    check(vec![
        (
            "to a date before the support end",
            seeking_contact(),
            extend("2027-07-01"),
            RefusedByData(SeekingContact),
        ),
        (
            "to the support end itself",
            seeking_contact(),
            extend("2027-07-15"),
            RefusedByData(SeekingContact),
        ),
        (
            "to a date before an earlier extension",
            plus(engaged(), [extend("2027-09-30")]),
            extend("2027-08-31"),
            RefusedByData(Engaged),
        ),
        (
            "on a closed case",
            closed(),
            extend("2027-12-31"),
            Refused(Closed),
        ),
        (
            "for a person never referred",
            vec![],
            extend("2027-12-31"),
            Refused(NotReferred),
        ),
        (
            "beyond the support end",
            seeking_contact(),
            extend("2027-07-16"),
            Becomes(SeekingContact),
        ),
        (
            "beyond an earlier extension",
            plus(engaged(), [extend("2027-09-30")]),
            extend("2027-10-31"),
            Becomes(Engaged),
        ),
    ]);
}

#[test]
fn refusals_of_closing_and_reopening() {
    use Status::*;
    check(vec![
        (
            "close a case never opened",
            vec![],
            close(CloseReason::NeedsMet),
            Refused(NotReferred),
        ),
        (
            "close a person known only from facts",
            vec![released(), linked()],
            close(CloseReason::NeedsMet),
            Refused(NotReferred),
        ),
        (
            "close a closed case",
            closed(),
            close(CloseReason::NeedsMet),
            Refused(Closed),
        ),
        (
            "close a declined case",
            declined(),
            close(CloseReason::NeedsMet),
            Refused(Closed),
        ),
        (
            "reopen a never-accepted (declined) case",
            declined(),
            reopen(),
            Refused(Closed),
        ),
        (
            "reopen a never-accepted (closed before triage) case",
            plus(referred(), [close(CloseReason::DeclinedSupport)]),
            reopen(),
            Refused(Closed),
        ),
        ("reopen an open case", engaged(), reopen(), Refused(Engaged)),
        (
            "reopen a referred case",
            referred(),
            reopen(),
            Refused(Referred),
        ),
        (
            "reopen a person never referred",
            vec![],
            reopen(),
            Refused(NotReferred),
        ),
        (
            "reopen when the latest episode was never accepted",
            plus(closed(), [referral("REF-2"), decline("REF-2")]),
            reopen(),
            Refused(Closed),
        ),
    ]);
}

#[test]
fn refusals_of_corrections() {
    use Status::*;
    check(vec![
        (
            "correct with nothing recorded",
            vec![],
            correct("evt-1"),
            Refused(NotReferred),
        ),
        (
            "correct an unknown event",
            engaged(),
            correct_from("evt-99", WORKER),
            RefusedByData(Engaged),
        ),
        (
            "correct an event naming the wrong source",
            engaged(),
            correct_from("evt-1", HMPPS),
            RefusedByData(Engaged),
        ),
        (
            "without target_source the correction's own source is meant",
            engaged(),
            correct("evt-1"),
            RefusedByData(Engaged),
        ),
        (
            "correct another source's event",
            engaged(),
            correct_from("evt-1", PROBATION),
            Becomes(Engaged),
        ),
        (
            "correct an own event",
            plus(engaged(), [correct_from("evt-7", WORKER).id("ig-1")]),
            correct("ig-1"),
            Becomes(Engaged),
        ),
        (
            "correct on a closed case",
            closed(),
            correct_from("evt-6", HMPPS),
            Becomes(Closed),
        ),
    ]);
}

#[test]
fn a_refusal_says_the_state_and_why() {
    let err = given(&closed())
        .when(allocate("W-020"))
        .then_err(Status::Closed);
    assert!(err.reason.contains("accepted, open case"), "{}", err.reason);
    assert!(err.to_string().contains("Closed"), "{err}");
    let err = given(&engaged())
        .when(outcome("S-9", SignpostOutcome::Attended))
        .then_err(Status::Engaged);
    assert!(err.reason.contains("S-9"), "{}", err.reason);
    let err = given(&accepted())
        .when(accept("REF-1"))
        .then_err(Status::Accepted);
    let reason = err.reason.to_lowercase();
    assert!(
        reason.contains("ref-1") && reason.contains("already accepted"),
        "{}",
        err.reason
    );
}

// ------------------------------------------------------------------------------------------
// Allowed events
// ------------------------------------------------------------------------------------------

#[test]
fn allowed_lists_what_the_state_accepts() {
    use EventType::*;
    let with = |extra: &[EventType]| {
        let mut v: Vec<EventType> = FACTS.iter().chain(extra).copied().collect();
        v.sort();
        v
    };
    let cases: Vec<(&str, Vec<Ev>, Vec<EventType>)> = vec![
        ("nobody", vec![], with(&[ReferralReceived])),
        (
            "known from facts only",
            vec![released(), linked()],
            with(&[ReferralReceived, RecordCorrected]),
        ),
        (
            "referred",
            referred(),
            with(&[
                ReferralReceived,
                ReferralAccepted,
                ReferralDeclined,
                ReferralWithdrawn,
                ConsentGiven,
                ConsentWithdrawn,
                CaseClosed,
                SafeguardingRaised,
                SupportExtended,
                RecordCorrected,
            ]),
        ),
        (
            "pre-release with a plan",
            planned(),
            with(&[
                ReferralReceived,
                ConsentGiven,
                ConsentWithdrawn,
                CaseClosed,
                CaseAllocated,
                AssessmentCompleted,
                PlanAgreed,
                PlanReviewed,
                ContactAttempted,
                ContactMade,
                SignpostingMade,
                SafeguardingRaised,
                SupportExtended,
                RecordCorrected,
            ]),
        ),
        (
            "engaged with a signpost",
            plus(engaged(), [signpost("S-1", ServiceType::Gp)]),
            with(&[
                ReferralReceived,
                ConsentGiven,
                ConsentWithdrawn,
                CaseClosed,
                CaseAllocated,
                AssessmentCompleted,
                PlanAgreed,
                PlanReviewed,
                ContactAttempted,
                ContactMade,
                SignpostingMade,
                SignpostingOutcome,
                EngagementChanged,
                SafeguardingRaised,
                SupportExtended,
                RecordCorrected,
            ]),
        ),
        (
            "closed after acceptance",
            closed(),
            with(&[
                ReferralReceived,
                CaseReopened,
                SafeguardingRaised,
                RecordCorrected,
            ]),
        ),
        (
            "closed by a declined referral",
            declined(),
            with(&[ReferralReceived, SafeguardingRaised, RecordCorrected]),
        ),
    ];
    for (name, history, expected) in cases {
        let j = given(&history).journey().clone();
        assert_eq!(allowed(&j), expected, "{name}");
        let view: Vec<&str> = j.view(t(START)).allowed_events;
        let names: Vec<&str> = expected.iter().map(|k| k.as_str()).collect();
        assert_eq!(view, names, "{name}: the view shows the allowed events");
    }
}

/// A plausible event of each type for the person's state: it names the referral, signpost
/// or event the journey has, so that only the state can make `decide` refuse it.
fn sample(kind: EventType, j: &Journey) -> Ev {
    use EventType::*;
    let pending = j
        .episode()
        .and_then(|ep| {
            ep.referrals
                .iter()
                .find(|r| r.state == ReferralState::Pending)
        })
        .map_or("REF-1".to_string(), |r| r.referral_id.clone());
    let signpost_id = j
        .signposts
        .first()
        .map_or("S-1".to_string(), |s| s.signpost_id.clone());
    let (target, target_source) = j
        .timeline
        .first()
        .map_or(("evt-1".to_string(), WORKER.to_string()), |e| {
            (e.id.clone(), e.source.clone())
        });
    match kind {
        ReferralReceived => referral("REF-NEW"),
        ReferralAccepted => accept(&pending),
        ReferralDeclined => decline(&pending),
        ReferralWithdrawn => withdraw(&pending),
        CaseAllocated => allocate("W-020"),
        ConsentGiven => consent(),
        ConsentWithdrawn => consent_withdrawn(),
        AssessmentCompleted => assess(),
        PlanAgreed => plan(),
        PlanReviewed => review(),
        ReleaseDateSet => release_date("2027-02-01"),
        PrisonerTransferred => transfer("WCI", "BNI"),
        PrisonerReleased => released(),
        PrisonerReturnedToCustody => returned(),
        IdentifiersLinked => linked(),
        ContactAttempted => attempt(),
        ContactMade => contact(),
        EngagementChanged => engagement(EngagementStatus::Engaged),
        SignpostingMade => signpost("S-NEW", ServiceType::Benefits),
        SignpostingOutcome => outcome(&signpost_id, SignpostOutcome::Attended),
        SafeguardingRaised => safeguarding(),
        SupportExtended => extend("2099-01-01"),
        CaseClosed => close(CloseReason::NeedsMet),
        CaseReopened => reopen(),
        RecordCorrected => correct_from(&target, &target_source),
    }
}

/// `allowed` is what the 409 tells a partner it may send: in every state, a plausible
/// event of a type is accepted exactly when `allowed` lists the type.
#[test]
fn decide_accepts_exactly_what_allowed_lists() {
    let states: Vec<(&str, Vec<Ev>)> = vec![
        ("nobody", vec![]),
        ("released without referral", vec![released()]),
        ("referred", referred()),
        (
            "two referrals pending",
            plus(referred(), [referral("REF-2")]),
        ),
        ("accepted", accepted()),
        ("pre-release", pre_release()),
        ("planned", planned()),
        ("seeking contact", seeking_contact()),
        ("engaged", engaged()),
        (
            "engaged with a signpost",
            plus(engaged(), [signpost("S-1", ServiceType::Gp)]),
        ),
        ("disengaged", disengaged()),
        ("in custody", in_custody()),
        ("closed", closed()),
        (
            "closed with a signpost",
            plus(
                engaged(),
                [
                    signpost("S-1", ServiceType::Gp),
                    close(CloseReason::NeedsMet),
                ],
            ),
        ),
        ("declined", declined()),
        ("withdrawn", plus(referred(), [withdraw("REF-1")])),
        ("consent withdrawn", plus(engaged(), [consent_withdrawn()])),
        ("reopened", plus(closed(), [reopen()])),
        (
            "second episode referred",
            plus(closed(), [referral("REF-2")]),
        ),
        (
            "second episode declined",
            plus(closed(), [referral("REF-2"), decline("REF-2")]),
        ),
        (
            "closed before triage",
            plus(referred(), [close(CloseReason::DeclinedSupport)]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, history) in &states {
        let g = given(history);
        let listed = allowed(g.journey());
        for &kind in EventType::ALL {
            let ev = sample(kind, g.journey());
            let accepted = given(history).when(ev).result.is_ok();
            if accepted != listed.contains(&kind) {
                failures.push(format!(
                    "  {name} ({:?}): {kind} is {} by decide but {} by allowed",
                    g.journey().status,
                    if accepted { "accepted" } else { "refused" },
                    if listed.contains(&kind) {
                        "listed"
                    } else {
                        "not listed"
                    },
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "decide and allowed disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn decide_returns_the_submission_itself() {
    let ev = signpost("S-1", ServiceType::Gp)
        .id("worker-42")
        .at("2027-01-16T10:00:00Z");
    let when = given(&engaged()).when(ev);
    let submitted = when.recorded.event.clone();
    assert_eq!(submitted.id, "worker-42");
    assert_eq!(when.result.unwrap(), vec![submitted]);
}

// ------------------------------------------------------------------------------------------
// Facts are always recorded
// ------------------------------------------------------------------------------------------

#[test]
fn facts_are_recorded_in_every_state_even_with_no_case() {
    let states: Vec<(&'static str, Vec<Ev>)> = vec![
        ("no case", vec![]),
        ("referred", referred()),
        ("accepted", accepted()),
        ("pre-release", planned()),
        ("seeking contact", seeking_contact()),
        ("engaged", engaged()),
        ("disengaged", disengaged()),
        ("in custody", in_custody()),
        ("closed", closed()),
        ("declined", declined()),
    ];
    let facts = || {
        vec![
            release_date("2027-02-01"),
            transfer("WCI", "BNI"),
            released(),
            returned(),
            linked(),
        ]
    };
    assert_eq!(
        facts().iter().map(Ev::kind).collect::<Vec<_>>(),
        FACTS.to_vec(),
        "one of each fact"
    );
    let mut cases: Vec<Case> = Vec::new();
    for (name, history) in states {
        for fact in facts() {
            cases.push((name, history.clone(), fact, Recorded));
        }
    }
    check(cases);
}

#[test]
fn facts_about_a_person_with_no_case_keep_them_not_referred() {
    let j = given(&[])
        .when(release_date("2027-01-15"))
        .then_status(Status::NotReferred);
    assert_eq!(j.release_date.as_ref().unwrap().date, date("2027-01-15"));
    given(&[]).when(linked()).then(|j| {
        assert_eq!(j.status, Status::NotReferred);
        let (nomis, nhs, crn) = (
            throughcare_synthetic::nomis(SEED),
            throughcare_synthetic::nhs_number(SEED),
            throughcare_synthetic::crn(SEED),
        );
        assert!(j.identifiers.crn.contains(&crn));
        assert!(j.identifiers.nomis.contains(&nomis));
        assert!(j.identifiers.nhs_number.contains(&nhs));
        assert_eq!(
            j.identifiers.all(),
            [
                format!("nomis:{nomis}"),
                format!("nhs:{nhs}"),
                format!("crn:{crn}")
            ]
        );
    });
    given(&[]).when(transfer("WCI", "BNI")).then(|j| {
        assert_eq!(j.status, Status::NotReferred);
        assert_eq!(j.prison.as_deref(), Some("BNI"));
        assert!(j.in_custody);
        assert!(j.flags.is_empty(), "no prison known, so nothing unexpected");
    });
    given(&[]).when(returned()).then_status(Status::NotReferred);
}

#[test]
fn a_release_moves_the_person_to_the_community() {
    given(&planned()).when(released().at(RELEASE)).then(|j| {
        assert!(!j.in_custody);
        assert_eq!(j.released_at, Some(t(RELEASE)));
        assert_eq!(j.release_reason, Some(ReleaseReason::Released));
        assert_eq!(j.local_authority.as_deref(), Some("Southampton"));
        assert_eq!(j.episode().unwrap().released_at, Some(t(RELEASE)));
    });
    given(&seeking_contact()).when(returned()).then(|j| {
        assert!(j.in_custody);
        assert_eq!(j.prison.as_deref(), Some("BNI"));
    });
}

// ------------------------------------------------------------------------------------------
// Flags raised by facts
// ------------------------------------------------------------------------------------------

#[test]
fn released_without_referral() {
    let j = given(&[]).when(released()).then(|j| {
        assert_eq!(j.status, Status::NotReferred);
        assert_eq!(flags(j), [FlagCode::ReleasedWithoutReferral]);
        assert_eq!(j.flags[0].raised_by, Some(1));
    });
    assert!(j
        .view(t(START))
        .active_flags
        .contains(&FlagCode::ReleasedWithoutReferral));
    given(&planned()).when(released()).then(|j| {
        assert!(!flags(j).contains(&FlagCode::ReleasedWithoutReferral));
    });
    given(&referred()).when(released()).then(|j| {
        assert!(
            !flags(j).contains(&FlagCode::ReleasedWithoutReferral),
            "a referral is open"
        );
    });
}

#[test]
fn release_date_changed() {
    // The referral expected 2027-01-15.
    given(&referred())
        .when(release_date("2027-01-15"))
        .then(|j| {
            assert!(flags(j).is_empty(), "the same date is no change");
            assert_eq!(
                j.release_date.as_ref().unwrap().date_type,
                ReleaseDateType::Confirmed
            );
        });
    given(&referred())
        .when(release_date("2027-01-29"))
        .then(|j| {
            assert_eq!(flags(j), [FlagCode::ReleaseDateChanged]);
            assert_eq!(j.flags[0].raised_by, Some(2));
            assert_eq!(j.release_date.as_ref().unwrap().date, date("2027-01-29"));
        });
    given(&[referral_expecting("REF-1", None)])
        .when(release_date("2027-01-29"))
        .then(|j| assert!(flags(j).is_empty(), "the first date known is no change"));
    given(&[])
        .when(release_date("2027-01-29"))
        .then(|j| assert!(flags(j).is_empty()));
    given(&plus(referred(), [release_date("2027-01-29")]))
        .when(release_date("2027-02-05"))
        .then(|j| {
            let raised: Vec<_> = j
                .flags
                .iter()
                .filter(|f| f.code == FlagCode::ReleaseDateChanged)
                .collect();
            assert_eq!(raised.len(), 1, "one open flag, not one per change");
        });
}

#[test]
fn no_plan_at_release() {
    given(&pre_release()).when(released()).then(|j| {
        assert_eq!(flags(j), [FlagCode::NoPlanAtRelease]);
        assert_eq!(j.flags[0].raised_by, Some(4));
    });
    given(&referred()).when(released()).then(|j| {
        assert_eq!(flags(j), [FlagCode::NoPlanAtRelease]);
    });
    given(&planned())
        .when(released())
        .then(|j| assert!(flags(j).is_empty()));
    given(&[]).when(released()).then(|j| {
        assert!(
            !flags(j).contains(&FlagCode::NoPlanAtRelease),
            "no case, so no plan expected"
        );
    });
}

#[test]
fn other_flags_raised_by_facts() {
    // Referred at Winchester, then a transfer reported from Bullingdon.
    given(&referred()).when(transfer("BNI", "AYI")).then(|j| {
        assert_eq!(flags(j), [FlagCode::TransferFromUnexpectedPrison]);
        assert_eq!(j.prison.as_deref(), Some("AYI"));
    });
    given(&referred()).when(transfer("WCI", "BNI")).then(|j| {
        assert!(flags(j).is_empty());
        assert_eq!(j.prison.as_deref(), Some("BNI"));
    });
    given(&seeking_contact()).when(released()).then(|j| {
        assert_eq!(flags(j), [FlagCode::ReleasedWhileNotInCustody]);
    });
    given(&in_custody())
        .when(released())
        .then(|j| assert!(flags(j).is_empty()));
    given(&engaged()).when(safeguarding()).then(|j| {
        assert_eq!(flags(j), [FlagCode::SafeguardingRaised]);
        assert_eq!(j.safeguarding.len(), 1);
    });
}

// ------------------------------------------------------------------------------------------
// Time-based flags, computed by view(now) from occurred times
// ------------------------------------------------------------------------------------------

fn active(g: &Given, now: &str) -> Vec<FlagCode> {
    g.view(now).active_flags.into_iter().collect()
}

#[test]
fn no_contact_within_72_hours_of_release() {
    use FlagCode::NoContact72h;
    // Released 2027-01-15T08:00Z, nobody met them.
    let g = given(&seeking_contact());
    assert!(!active(&g, "2027-01-18T07:59:00Z").contains(&NoContact72h));
    assert!(active(&g, "2027-01-18T08:01:00Z").contains(&NoContact72h));
    let view = g.view("2027-01-20T00:00:00Z");
    let flag = view.flags.iter().find(|f| f.code == NoContact72h).unwrap();
    assert_eq!(
        flag.raised_at,
        t("2027-01-18T08:00:00Z"),
        "raised at the deadline"
    );
    assert_eq!(flag.raised_by, None);
    assert!(
        g.journey().flags.is_empty(),
        "time-based flags are not stored"
    );

    // Met at the gate.
    assert!(!active(&given(&engaged()), "2027-01-20T00:00:00Z").contains(&NoContact72h));
    // An attempt is not contact.
    let g = given(&plus(seeking_contact(), [attempt()]));
    assert!(active(&g, "2027-01-20T00:00:00Z").contains(&NoContact72h));
    // Contact before release does not count.
    let g = given(&plus(planned(), [contact(), released().at(RELEASE)]));
    assert!(active(&g, "2027-01-20T00:00:00Z").contains(&NoContact72h));
    // Released to hospital: not expected to be met in the community.
    let g = given(&plus(
        planned(),
        [released_for(ReleaseReason::ReleasedToHospital).at(RELEASE)],
    ));
    assert!(!active(&g, "2027-01-20T00:00:00Z").contains(&NoContact72h));
    // Not while back in custody, nor on a closed case.
    assert!(!active(
        &given(&plus(seeking_contact(), [returned()])),
        "2027-01-20T00:00:00Z"
    )
    .contains(&NoContact72h));
    let g = given(&plus(seeking_contact(), [close(CloseReason::MovedArea)]));
    assert!(!active(&g, "2027-01-20T00:00:00Z").contains(&NoContact72h));
}

#[test]
fn no_contact_72h_goes_by_when_things_happened_not_when_they_were_reported() {
    use FlagCode::NoContact72h;
    // The release is reported three days late: 72 hours run from the release itself.
    let late = given(&plus(
        planned(),
        [released().at(RELEASE).recorded("2027-01-18T09:00:00Z")],
    ));
    assert!(active(&late, "2027-01-18T09:30:00Z").contains(&NoContact72h));
    // The contact happened on day one but was written up on day five: no flag.
    let g = given(&plus(
        seeking_contact(),
        [contact()
            .at("2027-01-16T10:00:00Z")
            .recorded("2027-01-20T10:00:00Z")],
    ));
    assert!(!active(&g, "2027-01-20T11:00:00Z").contains(&NoContact72h));
    assert_eq!(
        g.journey().episode().unwrap().first_contact_at,
        Some(t("2027-01-16T10:00:00Z"))
    );
}

#[test]
fn not_gp_registered_within_28_days_of_release() {
    use FlagCode::NotGpRegistered28d;
    let g = given(&engaged());
    assert!(!active(&g, "2027-02-12T07:59:00Z").contains(&NotGpRegistered28d));
    assert!(active(&g, "2027-02-12T08:01:00Z").contains(&NotGpRegistered28d));
    let registered = plus(
        engaged(),
        [
            signpost("S-1", ServiceType::Gp),
            outcome("S-1", SignpostOutcome::GpRegistered),
        ],
    );
    assert!(!active(&given(&registered), "2027-03-01T00:00:00Z").contains(&NotGpRegistered28d));
    let only_signposted = plus(engaged(), [signpost("S-1", ServiceType::Gp)]);
    assert!(active(&given(&only_signposted), "2027-03-01T00:00:00Z").contains(&NotGpRegistered28d));
    let declined_gp = plus(only_signposted, [outcome("S-1", SignpostOutcome::Declined)]);
    assert!(active(&given(&declined_gp), "2027-03-01T00:00:00Z").contains(&NotGpRegistered28d));
    assert!(!active(&given(&closed()), "2027-03-01T00:00:00Z").contains(&NotGpRegistered28d));
}

#[test]
fn past_support_end() {
    use FlagCode::PastSupportEnd;
    // Released 2027-01-15: support ends 2027-07-15, and began 12 weeks before release.
    let g = given(&engaged());
    let view = g.view("2027-03-01T00:00:00Z");
    assert_eq!(view.support_end, Some(date("2027-07-15")));
    assert_eq!(view.support_start, Some(date("2026-10-23")));
    assert!(!active(&g, "2027-07-15T23:00:00Z").contains(&PastSupportEnd));
    assert!(active(&g, "2027-07-16T00:30:00Z").contains(&PastSupportEnd));
    // Extended to the end of September.
    let g = given(&plus(engaged(), [extend("2027-09-30")]));
    assert_eq!(g.journey().support_end(), Some(date("2027-09-30")));
    assert!(!active(&g, "2027-08-01T00:00:00Z").contains(&PastSupportEnd));
    assert!(active(&g, "2027-10-01T00:00:00Z").contains(&PastSupportEnd));
    // Closed cases are not past anything.
    assert!(!active(&given(&closed()), "2027-10-01T00:00:00Z").contains(&PastSupportEnd));
    // In prison the window runs from the expected release date.
    let g = given(&accepted());
    assert_eq!(g.journey().support_end(), Some(date("2027-07-15")));
    assert_eq!(g.journey().support_start(), Some(date("2026-10-23")));
}

#[test]
fn unallocated_near_release() {
    use FlagCode::UnallocatedNearRelease;
    // Accepted in prison, expected out on 2027-01-15, no worker.
    let g = given(&accepted());
    assert!(
        !active(&g, "2026-12-31T09:00:00Z").contains(&UnallocatedNearRelease),
        "15 days out"
    );
    assert!(
        active(&g, "2027-01-01T09:00:00Z").contains(&UnallocatedNearRelease),
        "14 days out"
    );
    assert!(
        active(&g, "2027-01-15T09:00:00Z").contains(&UnallocatedNearRelease),
        "release day"
    );
    // A worker, a release or a closure ends it.
    assert!(
        !active(&given(&pre_release()), "2027-01-10T09:00:00Z").contains(&UnallocatedNearRelease)
    );
    let out = plus(accepted(), [released().at("2027-01-08T08:00:00Z")]);
    assert!(!active(&given(&out), "2027-01-10T09:00:00Z").contains(&UnallocatedNearRelease));
    let shut = plus(accepted(), [close(CloseReason::MovedArea)]);
    assert!(!active(&given(&shut), "2027-01-10T09:00:00Z").contains(&UnallocatedNearRelease));
    // A changed release date moves the window.
    let moved = plus(accepted(), [release_date("2027-02-15")]);
    assert!(!active(&given(&moved), "2027-01-10T09:00:00Z").contains(&UnallocatedNearRelease));
    assert!(active(&given(&moved), "2027-02-05T09:00:00Z").contains(&UnallocatedNearRelease));
}

#[test]
fn view_shows_stored_and_time_flags_together() {
    let g = given(&plus(pre_release(), [released().at(RELEASE)]));
    let view = g.view("2027-03-01T00:00:00Z");
    assert_eq!(
        view.active_flags.into_iter().collect::<Vec<_>>(),
        [
            FlagCode::NoPlanAtRelease,
            FlagCode::NoContact72h,
            FlagCode::NotGpRegistered28d
        ]
    );
    assert_eq!(view.as_of, t("2027-03-01T00:00:00Z"));
    assert_eq!(view.status, Status::SeekingContact);
}

// ------------------------------------------------------------------------------------------
// Timeline: bitemporal, and corrections as compensating events
// ------------------------------------------------------------------------------------------

#[test]
fn timeline_keeps_when_it_happened_and_when_it_was_recorded() {
    // A release reported two days late shows both.
    let j = given(&planned())
        .when(released().at(RELEASE).recorded("2027-01-17T09:00:00Z"))
        .then(|_| {});
    let entry = j.timeline.last().unwrap();
    assert_eq!(entry.kind, "throughcare.prisoner.released.v1");
    assert_eq!(entry.occurred_at, t(RELEASE));
    assert_eq!(entry.recorded_at, t("2027-01-17T09:00:00Z"));
    assert_eq!(entry.position, 6);
    assert_eq!(entry.id, "evt-6");
    assert_eq!(entry.source, HMPPS);
    assert_eq!(entry.summary, "released from WCI (RELEASED)");
    assert_eq!(
        j.released_at,
        Some(t(RELEASE)),
        "the journey uses the occurred time"
    );
    let positions: Vec<u64> = j.timeline.iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(j.version, 6);
}

#[test]
fn record_corrected_marks_the_target_and_edits_nothing() {
    let before = given(&engaged()).journey().clone();
    let j = given(&engaged())
        .when(correct_from("evt-7", WORKER))
        .then(|j| {
            let target = &j.timeline[6];
            assert_eq!(target.id, "evt-7");
            assert_eq!(target.corrected_by, Some(8));
            let correction = j.timeline.last().unwrap();
            assert_eq!(correction.kind, "throughcare.record.corrected.v1");
            assert_eq!(correction.position, 8);
            assert_eq!(correction.corrected_by, None);
            assert!(j.timeline[..6].iter().all(|e| e.corrected_by.is_none()));
        });
    // The corrected event itself is unchanged, and so is what it did.
    let (old, new) = (&before.timeline[6], &j.timeline[6]);
    assert_eq!(
        (&old.kind, old.occurred_at, old.recorded_at, &old.summary),
        (&new.kind, new.occurred_at, new.recorded_at, &new.summary)
    );
    assert_eq!(j.status, Status::Engaged);
    assert_eq!(j.last_contact_at, before.last_contact_at);

    // Without target_source, a correction names an event of its own source.
    let history = plus(engaged(), [correct_from("evt-1", PROBATION).id("IG-1")]);
    given(&history).when(correct("IG-1")).then(|j| {
        let first = j.timeline.iter().find(|e| e.id == "IG-1").unwrap();
        assert_eq!(first.corrected_by, Some(9));
        assert_eq!(j.timeline[0].corrected_by, Some(8));
    });
}
