//! Event constructors (one per event type, taking only what matters to a test) and the
//! standard histories (the ids are evt-1, evt-2, ... in order).

use super::*;

/// The seed of the synthetic person of every test (`throughcare_synthetic` ids).
pub const SEED: u64 = 1;

/// The synthetic person of every test, by NOMIS and NHS number (999 range, Modulus 11).
pub fn person() -> PersonRef {
    PersonRef {
        person_id: None,
        nomis: Some(Nomis::parse(&throughcare_synthetic::nomis(SEED)).unwrap()),
        nhs_number: Some(NhsNumber::parse(&throughcare_synthetic::nhs_number(SEED)).unwrap()),
        crn: None,
    }
}

pub fn ev(source: &'static str, data: EventData) -> Ev {
    Ev {
        data,
        source,
        id: None,
        at: None,
        recorded: None,
    }
}

/// A referral from probation at Winchester, expecting release on 2027-01-15.
pub fn referral(referral_id: &str) -> Ev {
    referral_expecting(referral_id, Some("2027-01-15"))
}

pub fn referral_expecting(referral_id: &str, expected_release: Option<&str>) -> Ev {
    ev(
        PROBATION,
        EventData::ReferralReceived(ReferralReceived {
            person: person(),
            referral_id: referral_id.into(),
            referrer: Referrer {
                kind: ReferrerKind::Probation,
                org: Some("Probation Service, Hampshire".into()),
            },
            prison: prison("WCI"),
            expected_release_date: expected_release.map(date),
            vulnerabilities: vec![Vulnerability::MentalHealth],
            personal: None,
        }),
    )
}

pub fn accept(referral_id: &str) -> Ev {
    ev(
        TRIAGE,
        EventData::ReferralAccepted(ReferralAccepted {
            person: person(),
            referral_id: referral_id.into(),
            personal: None,
        }),
    )
}

pub fn decline(referral_id: &str) -> Ev {
    ev(
        TRIAGE,
        EventData::ReferralDeclined(ReferralDeclined {
            person: person(),
            referral_id: referral_id.into(),
            reason: DeclineReason::OutOfArea,
            personal: None,
        }),
    )
}

pub fn withdraw(referral_id: &str) -> Ev {
    ev(
        TRIAGE,
        EventData::ReferralWithdrawn(ReferralWithdrawn {
            person: person(),
            referral_id: referral_id.into(),
            reason: Some(WithdrawReason::ReferrerWithdrew),
            personal: None,
        }),
    )
}

pub fn allocate(worker_id: &str) -> Ev {
    ev(
        MANAGER,
        EventData::CaseAllocated(CaseAllocated {
            person: person(),
            worker_id: worker_id.into(),
            worker_role: WorkerRole::PeerSupport,
            personal: None,
        }),
    )
}

pub fn consent() -> Ev {
    ev(
        WORKER,
        EventData::ConsentGiven(ConsentGiven {
            person: person(),
            scope: ConsentScope::Engage,
            orgs: None,
            personal: None,
        }),
    )
}

pub fn consent_withdrawn() -> Ev {
    ev(
        WORKER,
        EventData::ConsentWithdrawn(ConsentWithdrawn {
            person: person(),
            scope: ConsentScope::Engage,
            orgs: None,
            personal: None,
        }),
    )
}

pub fn share(orgs: &[&str]) -> Ev {
    ev(
        WORKER,
        EventData::ConsentGiven(ConsentGiven {
            person: person(),
            scope: ConsentScope::ShareWith,
            orgs: Some(orgs.iter().map(|o| o.to_string()).collect()),
            personal: None,
        }),
    )
}

pub fn unshare(orgs: &[&str]) -> Ev {
    ev(
        WORKER,
        EventData::ConsentWithdrawn(ConsentWithdrawn {
            person: person(),
            scope: ConsentScope::ShareWith,
            orgs: Some(orgs.iter().map(|o| o.to_string()).collect()),
            personal: None,
        }),
    )
}

pub fn assess() -> Ev {
    ev(
        WORKER,
        EventData::AssessmentCompleted(AssessmentCompleted {
            person: person(),
            kind: AssessmentKind::Initial,
            needs: vec![Need {
                domain: NeedDomain::Accommodation,
                level: NeedLevel::High,
            }],
            personal: None,
        }),
    )
}

pub fn actions() -> Vec<PlanAction> {
    vec![PlanAction {
        need: NeedDomain::Accommodation,
        service_type: ServiceType::Housing,
        due_by: date("2027-01-29"),
    }]
}

pub fn plan() -> Ev {
    ev(
        WORKER,
        EventData::PlanAgreed(PlanAgreed {
            person: person(),
            actions: actions(),
            next_review: Some(date("2027-02-15")),
            personal: None,
        }),
    )
}

pub fn review() -> Ev {
    ev(
        WORKER,
        EventData::PlanReviewed(PlanReviewed {
            person: person(),
            actions: actions(),
            next_review: Some(date("2027-03-15")),
            personal: None,
        }),
    )
}

pub fn release_date(d: &str) -> Ev {
    ev(
        HMPPS,
        EventData::ReleaseDateSet(ReleaseDateSet {
            person: person(),
            date: date(d),
            date_type: ReleaseDateType::Confirmed,
            personal: None,
        }),
    )
}

pub fn transfer(from: &str, to: &str) -> Ev {
    ev(
        HMPPS,
        EventData::PrisonerTransferred(PrisonerTransferred {
            person: person(),
            from_prison: prison(from),
            to_prison: prison(to),
            personal: None,
        }),
    )
}

pub fn released_for(reason: ReleaseReason) -> Ev {
    ev(
        HMPPS,
        EventData::PrisonerReleased(PrisonerReleased {
            person: person(),
            prison: prison("WCI"),
            reason,
            local_authority: Some("Southampton".into()),
            personal: None,
        }),
    )
}

pub fn released() -> Ev {
    released_for(ReleaseReason::Released)
}

pub fn returned() -> Ev {
    ev(
        HMPPS,
        EventData::PrisonerReturnedToCustody(PrisonerReturnedToCustody {
            person: person(),
            prison: prison("BNI"),
            recall: true,
            personal: None,
        }),
    )
}

pub fn linked() -> Ev {
    ev(
        HMPPS,
        EventData::IdentifiersLinked(IdentifiersLinked {
            person: person(),
            identifiers: LinkedIdentifiers {
                nomis: None,
                nhs_number: None,
                crn: Some(Crn::parse(&throughcare_synthetic::crn(SEED)).unwrap()),
            },
            personal: None,
        }),
    )
}

pub fn attempt() -> Ev {
    ev(
        WORKER,
        EventData::ContactAttempted(ContactAttempted {
            person: person(),
            channel: ContactChannel::Phone,
            outcome: Some(ContactOutcome::NoAnswer),
            personal: None,
        }),
    )
}

pub fn contact() -> Ev {
    ev(
        WORKER,
        EventData::ContactMade(ContactMade {
            person: person(),
            channel: ContactChannel::Gate,
            outcome: Some(ContactOutcome::Met),
            personal: None,
        }),
    )
}

pub fn engagement(status: EngagementStatus) -> Ev {
    ev(
        WORKER,
        EventData::EngagementChanged(EngagementChanged {
            person: person(),
            status,
            personal: None,
        }),
    )
}

pub fn signpost(signpost_id: &str, service_type: ServiceType) -> Ev {
    ev(
        WORKER,
        EventData::SignpostingMade(SignpostingMade {
            person: person(),
            signpost_id: signpost_id.into(),
            service_type,
            org: "Synthetic Health Centre".into(),
            mode: SignpostMode::Accompanied,
            personal: None,
        }),
    )
}

pub fn outcome(signpost_id: &str, outcome: SignpostOutcome) -> Ev {
    ev(
        WORKER,
        EventData::SignpostingOutcome(SignpostingOutcome {
            person: person(),
            signpost_id: signpost_id.into(),
            outcome,
            personal: None,
        }),
    )
}

pub fn safeguarding() -> Ev {
    ev(
        WORKER,
        EventData::SafeguardingRaised(SafeguardingRaised {
            person: person(),
            category: SafeguardingCategory::SelfHarm,
            referred_to: "Local authority adult safeguarding".into(),
            personal: None,
        }),
    )
}

pub fn extend(until: &str) -> Ev {
    ev(
        MANAGER,
        EventData::SupportExtended(SupportExtended {
            person: person(),
            until: date(until),
            reason: ExtensionReason::AwaitingService,
            personal: None,
        }),
    )
}

pub fn close(reason: CloseReason) -> Ev {
    ev(
        WORKER,
        EventData::CaseClosed(CaseClosed {
            person: person(),
            reason,
            personal: None,
        }),
    )
}

pub fn reopen() -> Ev {
    ev(
        MANAGER,
        EventData::CaseReopened(CaseReopened {
            person: person(),
            personal: None,
        }),
    )
}

/// A correction from information governance of its own event `target_event_id`.
pub fn correct(target_event_id: &str) -> Ev {
    correction(target_event_id, None)
}

/// A correction from information governance of another source's event.
pub fn correct_from(target_event_id: &str, target_source: &str) -> Ev {
    correction(target_event_id, Some(target_source))
}

pub fn correction(target_event_id: &str, target_source: Option<&str>) -> Ev {
    ev(
        IG,
        EventData::RecordCorrected(RecordCorrected {
            person: person(),
            target_event_id: target_event_id.into(),
            target_source: target_source.map(str::to_string),
            what_was_wrong: CorrectionKind::WrongDate,
            pointer: Some("/time".into()),
            corrected_value: None,
            personal: None,
        }),
    )
}

/// evt-1: referred by probation at Winchester.
pub fn referred() -> Vec<Ev> {
    vec![referral("REF-1")]
}
/// evt-2: the referral accepted.
pub fn accepted() -> Vec<Ev> {
    plus(referred(), [accept("REF-1")])
}
/// evt-3: allocated to a peer-support worker while in prison.
pub fn pre_release() -> Vec<Ev> {
    plus(accepted(), [allocate("W-017")])
}
/// evt-4, evt-5: assessed and a plan agreed before release.
pub fn planned() -> Vec<Ev> {
    plus(pre_release(), [assess(), plan()])
}
/// evt-6: released at [`RELEASE`].
pub fn seeking_contact() -> Vec<Ev> {
    plus(planned(), [released().at(RELEASE)])
}
/// evt-7: met at the gate.
pub fn engaged() -> Vec<Ev> {
    plus(seeking_contact(), [contact()])
}
pub fn disengaged() -> Vec<Ev> {
    plus(engaged(), [engagement(EngagementStatus::Disengaged)])
}
pub fn in_custody() -> Vec<Ev> {
    plus(engaged(), [returned()])
}
/// Accepted, engaged, then closed with needs met.
pub fn closed() -> Vec<Ev> {
    plus(engaged(), [close(CloseReason::NeedsMet)])
}
/// Referred, then the only referral declined.
pub fn declined() -> Vec<Ev> {
    plus(referred(), [decline("REF-1")])
}

pub fn flags(j: &Journey) -> Vec<FlagCode> {
    j.flags.iter().map(|f| f.code).collect()
}
