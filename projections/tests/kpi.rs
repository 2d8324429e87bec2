//! Service KPIs on a hand-built scenario (issue 3, "Tests"): fifteen synthetic people
//! across Winchester (WCI) and Bullingdon (BNI) in January and February 2027, each a
//! history of recorded events that `decide` allows, folded into journeys, turned into
//! `EpisodeFacts::of` and folded by `kpis()`. Every expected number is worked out by hand in
//! the comments next to it; `published()` suppression ("<5", and "*" where a total would
//! give a small count away) is checked on the scenario and on hand-made KPI records. The
//! `issue_1x_` tests pin issue 9's items 10-13 (maturity, denominators, attribution,
//! secondary suppression). Pure: no database, no clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use throughcare_events::catalogue::{ReferrerKind, ServiceType};
use throughcare_events::{Event, Hash, RecordedEvent};
use throughcare_projections::kpi::{shown, SUPPRESS_BELOW};
use throughcare_projections::{decide, kpis, EpisodeFacts, Journey, MonthKpis, Ratio};
use throughcare_synthetic::{cloudevent, data, person, person_id, with_person};

// ------------------------------------------------------------------------------------------
// Building histories.
// ------------------------------------------------------------------------------------------

/// The query time of the KPIs: 1 March 2027, noon. Some February windows are still open.
const NOW: &str = "2027-03-01T12:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap_or_else(|e| panic!("bad date {s}: {e}"))
}

/// One person's history, built event by event. Each event must be one `decide` allows
/// on the journey so far (the scenario is a history the ledger could have recorded).
struct Story {
    n: u32,
    journey: Journey,
}

impl Story {
    fn new(n: u32) -> Story {
        Story {
            n,
            journey: Journey::new(person_id(0, u64::from(n))),
        }
    }

    /// Records an event that happened at `time`, reported one minute later.
    fn at(self, time: &str, kind: &str, data: Value) -> Story {
        let recorded = (t(time) + Duration::minutes(1)).to_rfc3339();
        self.reported(time, &recorded, kind, data)
    }

    /// Records an event that happened at `time` and reached the ledger at `recorded`.
    fn reported(mut self, time: &str, recorded: &str, kind: &str, data: Value) -> Story {
        let source = match kind {
            "referral.received" => "urn:throughcare:test:referrer",
            k if k.starts_with("referral.") => "urn:throughcare:test:triage",
            k if k.starts_with("prisoner.") => "urn:throughcare:test:hmpps",
            _ => "urn:throughcare:test:worker",
        };
        let position = u64::from(self.n) * 1000 + self.journey.version % 1000 + 1;
        let id = format!("p{}-{position}", self.n);
        let data = with_person(data, person(u64::from(self.n)));
        let event = Event::from_stored(&cloudevent(source, &id, kind, time, data))
            .unwrap_or_else(|p| panic!("person {}: {kind} at {time} is malformed: {p:?}", self.n));
        if let Err(e) = decide(&self.journey, &event) {
            panic!("person {}: {kind} at {time} would be refused: {e}", self.n);
        }
        self.journey.apply(&RecordedEvent {
            position,
            person_id: self.journey.person_id,
            recorded_at: t(recorded),
            prev: Hash::ZERO,
            hash: Hash::ZERO,
            event,
            stored: Default::default(),
        });
        self
    }

    fn referred(self, time: &str, rid: &str, referrer: &str, prison: &str) -> Story {
        let referral = data::referral_received(rid, referrer, prison);
        self.at(time, "referral.received", referral)
    }
    fn accepted(self, time: &str, rid: &str) -> Story {
        self.at(time, "referral.accepted", data::referral_accepted(rid))
    }
    fn declined(self, time: &str, rid: &str, reason: &str) -> Story {
        let declined = data::referral_declined(rid, reason);
        self.at(time, "referral.declined", declined)
    }
    fn withdrawn(self, time: &str, rid: &str) -> Story {
        let withdrawn = data::referral_withdrawn(rid, None);
        self.at(time, "referral.withdrawn", withdrawn)
    }
    fn allocated(self, time: &str) -> Story {
        self.at(time, "case.allocated", data::case_allocated("W-7"))
    }
    fn consented(self, time: &str) -> Story {
        self.at(time, "consent.given", data::consent_given("ENGAGE", None))
    }
    fn assessed(self, time: &str) -> Story {
        let assessment = data::assessment_completed("INITIAL", &[("MENTAL_HEALTH", "MEDIUM")]);
        self.at(time, "assessment.completed", assessment)
    }
    fn planned(self, time: &str) -> Story {
        let plan = data::plan_agreed(&[("MENTAL_HEALTH", "GP", "2027-03-31")], None);
        self.at(time, "plan.agreed", plan)
    }
    fn released(self, time: &str, prison: &str) -> Story {
        self.released_for(time, prison, "RELEASED")
    }
    fn released_for(self, time: &str, prison: &str, reason: &str) -> Story {
        let released = data::prisoner_released(prison, reason);
        self.at(time, "prisoner.released", released)
    }
    fn recalled(self, time: &str, prison: &str) -> Story {
        let back = data::prisoner_returned_to_custody(prison, true);
        self.at(time, "prisoner.returned_to_custody", back)
    }
    fn transferred(self, time: &str, from: &str, to: &str) -> Story {
        let moved = data::prisoner_transferred(from, to);
        self.at(time, "prisoner.transferred", moved)
    }
    fn contact(self, time: &str, channel: &str) -> Story {
        self.at(time, "contact.made", data::contact_made(channel, "MET"))
    }
    fn signposted(self, time: &str, sid: &str, service: &str) -> Story {
        let signpost = data::signposting_made(sid, service);
        self.at(time, "signposting.made", signpost)
    }
    fn outcome(self, time: &str, sid: &str, outcome: &str) -> Story {
        let outcome = data::signposting_outcome(sid, outcome);
        self.at(time, "signposting.outcome", outcome)
    }
    fn closed(self, time: &str, reason: &str) -> Story {
        self.at(time, "case.closed", data::case_closed(reason))
    }
}

/// The fifteen people. Times are UTC; "h" after a time is hours after the referral (for
/// triage) or after the release (for contact).
fn scenario() -> Vec<Journey> {
    let people = vec![
        // ---- Winchester, January ------------------------------------------------------
        // P1: probation referral, triaged in 12h; assessed and planned before release on
        // 15 Jan; met at the gate 30 minutes after; GP signpost registered 10 days later;
        // closed NEEDS_MET in February.
        Story::new(1)
            .referred("2027-01-04T09:00:00Z", "R1", "PROBATION", "WCI")
            .accepted("2027-01-04T21:00:00Z", "R1")
            .allocated("2027-01-05T10:00:00Z")
            .consented("2027-01-05T11:00:00Z")
            .assessed("2027-01-06T10:00:00Z")
            .planned("2027-01-07T10:00:00Z")
            .released("2027-01-15T08:00:00Z", "WCI")
            .contact("2027-01-15T08:30:00Z", "GATE")
            .signposted("2027-01-16T10:00:00Z", "S1", "GP")
            .outcome("2027-01-25T10:00:00Z", "S1", "GP_REGISTERED")
            .closed("2027-02-20T10:00:00Z", "NEEDS_MET"),
        // P2: prison healthcare, triaged in 24h; assessed and planned; released 16 Jan;
        // phoned 48h later; a GP signpost with no outcome and a housing signpost that
        // settled; withdrew consent to engage on 10 Feb (closed CONSENT_WITHDRAWN).
        Story::new(2)
            .referred("2027-01-05T09:00:00Z", "R2", "PRISON_HEALTHCARE", "WCI")
            .accepted("2027-01-06T09:00:00Z", "R2")
            .allocated("2027-01-06T10:00:00Z")
            .consented("2027-01-06T11:00:00Z")
            .assessed("2027-01-08T10:00:00Z")
            .planned("2027-01-09T10:00:00Z")
            .released("2027-01-16T08:00:00Z", "WCI")
            .contact("2027-01-18T08:00:00Z", "PHONE")
            .signposted("2027-01-18T09:00:00Z", "S2", "GP")
            .signposted("2027-01-18T09:30:00Z", "S3", "HOUSING")
            .outcome("2027-01-30T10:00:00Z", "S3", "HOUSING_SETTLED")
            .at(
                "2027-02-10T10:00:00Z",
                "consent.withdrawn",
                data::consent_withdrawn("ENGAGE", None),
            ),
        // P3: probation, triaged in 48h; released 18 Jan with neither assessment nor
        // plan; assessed two days after release; first contact 96h after release; GP
        // registered on 20 Feb, 33 days after release (converted, but not within 28 days).
        Story::new(3)
            .referred("2027-01-05T12:00:00Z", "R3", "PROBATION", "WCI")
            .accepted("2027-01-07T12:00:00Z", "R3")
            .released("2027-01-18T08:00:00Z", "WCI")
            .assessed("2027-01-20T10:00:00Z")
            .contact("2027-01-22T08:00:00Z", "PHONE")
            .signposted("2027-01-22T09:00:00Z", "S4", "GP")
            .outcome("2027-02-20T10:00:00Z", "S4", "GP_REGISTERED"),
        // P4: self-referral, triaged in 6h; assessed and planned; released to hospital on
        // 20 Jan: a transfer to a secure hospital, left out of every release measure.
        Story::new(4)
            .referred("2027-01-06T09:00:00Z", "R4", "SELF", "WCI")
            .accepted("2027-01-06T15:00:00Z", "R4")
            .assessed("2027-01-10T10:00:00Z")
            .planned("2027-01-11T10:00:00Z")
            .released_for("2027-01-20T08:00:00Z", "WCI", "RELEASED_TO_HOSPITAL"),
        // P5: liaison and diversion, triaged in 36h; assessed, no plan; released 21 Jan;
        // GP signpost (no response); back in custody 48h after release (left out of the
        // 72-hour and 28-day measures); closed RETURNED_TO_CUSTODY on 25 Jan.
        Story::new(5)
            .referred("2027-01-07T09:00:00Z", "R5", "LIAISON_DIVERSION", "WCI")
            .accepted("2027-01-08T21:00:00Z", "R5")
            .assessed("2027-01-12T10:00:00Z")
            .released("2027-01-21T08:00:00Z", "WCI")
            .signposted("2027-01-22T10:00:00Z", "S5", "GP")
            .recalled("2027-01-23T08:00:00Z", "WCI")
            .outcome("2027-01-24T10:00:00Z", "S5", "NO_RESPONSE")
            .closed("2027-01-25T10:00:00Z", "RETURNED_TO_CUSTODY"),
        // P6: probation, triaged in 4h; assessed and planned. Met at the gate at 07:00 on
        // 22 Jan, an hour before release (a gate meeting, not a contact after release);
        // phoned 24 Jan 07:00. The release itself (22 Jan 08:00) reached the ledger late,
        // on 24 Jan at noon: by occurred time the first contact after release came 47h
        // after it. A GP signpost rejected, a talking-therapies signpost declined.
        Story::new(6)
            .referred("2027-01-08T09:00:00Z", "R6", "PROBATION", "WCI")
            .accepted("2027-01-08T13:00:00Z", "R6")
            .allocated("2027-01-08T14:00:00Z")
            .assessed("2027-01-09T10:00:00Z")
            .planned("2027-01-10T10:00:00Z")
            .contact("2027-01-22T07:00:00Z", "GATE")
            .contact("2027-01-24T07:00:00Z", "PHONE")
            .reported(
                "2027-01-22T08:00:00Z",
                "2027-01-24T12:00:00Z",
                "prisoner.released",
                json!({ "prison": "WCI", "reason": "RELEASED" }),
            )
            .signposted("2027-01-24T13:00:00Z", "S6", "GP")
            .signposted("2027-01-24T13:30:00Z", "S7", "TALKING_THERAPIES")
            .outcome("2027-01-30T10:00:00Z", "S6", "REJECTED")
            .outcome("2027-02-05T10:00:00Z", "S7", "DECLINED"),
        // P7: prison staff referral declined after 24h (closed, not accepted, 11 Jan);
        // referred again by prison healthcare on 5 Feb, a second episode, accepted in 10h.
        Story::new(7)
            .referred("2027-01-10T09:00:00Z", "R7", "PRISON_STAFF", "WCI")
            .declined("2027-01-11T09:00:00Z", "R7", "INELIGIBLE")
            .referred("2027-02-05T09:00:00Z", "R7B", "PRISON_HEALTHCARE", "WCI")
            .accepted("2027-02-05T19:00:00Z", "R7B"),
        // P8: family referral withdrawn next day (closed, not accepted; a withdrawal is
        // not a triage decision).
        Story::new(8)
            .referred("2027-01-11T09:00:00Z", "R8", "FAMILY_FRIEND", "WCI")
            .withdrawn("2027-01-12T09:00:00Z", "R8"),
        // ---- Winchester, February -----------------------------------------------------
        // P9: probation, triaged in 24h; assessed and planned; released 27 Feb 08:00 and
        // not contacted yet: at NOW (52h later) the 72-hour window is still open, and so
        // is the 28-day one.
        Story::new(9)
            .referred("2027-02-01T09:00:00Z", "R9", "PROBATION", "WCI")
            .accepted("2027-02-02T09:00:00Z", "R9")
            .assessed("2027-02-03T10:00:00Z")
            .planned("2027-02-04T10:00:00Z")
            .released("2027-02-27T08:00:00Z", "WCI"),
        // P10: probation, triaged in 18h; assessed, no plan; released 26 Feb; GP signpost
        // the same day, phoned 24h after release, GP-registered two days after release
        // (still pending at NOW: the 28-day window is open, and early successes are not
        // counted before the failures could be).
        Story::new(10)
            .referred("2027-02-03T09:00:00Z", "R10", "PROBATION", "WCI")
            .accepted("2027-02-04T03:00:00Z", "R10")
            .assessed("2027-02-10T10:00:00Z")
            .released("2027-02-26T08:00:00Z", "WCI")
            .signposted("2027-02-26T12:00:00Z", "S8", "GP")
            .contact("2027-02-27T08:00:00Z", "PHONE")
            .outcome("2027-02-28T10:00:00Z", "S8", "GP_REGISTERED"),
        // ---- Bullingdon ---------------------------------------------------------------
        // P11: substance misuse referral at BNI, triaged in 24h; transferred to WCI, where
        // probation referred again (joins the episode, never triaged); released from WCI
        // on 10 Feb with no assessment or plan; texted 60h later. Each referral counts for
        // its own prison; the release counts for WCI, which released him.
        Story::new(11)
            .referred("2027-01-12T09:00:00Z", "R11", "SUBSTANCE_MISUSE", "BNI")
            .accepted("2027-01-13T09:00:00Z", "R11")
            .transferred("2027-01-20T10:00:00Z", "BNI", "WCI")
            .referred("2027-01-21T09:00:00Z", "R11B", "PROBATION", "WCI")
            .released("2027-02-10T08:00:00Z", "WCI")
            .contact("2027-02-12T20:00:00Z", "SMS"),
        // P12: probation at BNI, triaged in 24h; the full path: assessed, planned,
        // released 29 Jan, met at the gate an hour later, GP-registered within a week.
        Story::new(12)
            .referred("2027-01-14T09:00:00Z", "R12", "PROBATION", "BNI")
            .accepted("2027-01-15T09:00:00Z", "R12")
            .allocated("2027-01-15T10:00:00Z")
            .assessed("2027-01-16T10:00:00Z")
            .planned("2027-01-17T10:00:00Z")
            .released("2027-01-29T08:00:00Z", "BNI")
            .contact("2027-01-29T09:00:00Z", "GATE")
            .signposted("2027-01-29T12:00:00Z", "S9", "GP")
            .outcome("2027-02-05T10:00:00Z", "S9", "GP_REGISTERED"),
        // P13: self-referral at BNI, not triaged yet.
        Story::new(13).referred("2027-01-20T09:00:00Z", "R13", "SELF", "BNI"),
        // P14: probation at BNI, declined as a duplicate after 12h (closed, not accepted).
        Story::new(14)
            .referred("2027-02-15T09:00:00Z", "R14", "PROBATION", "BNI")
            .declined("2027-02-15T21:00:00Z", "R14", "DUPLICATE"),
        // P15: released from WCI without ever being referred: no episode, no KPI.
        Story::new(15).released("2027-02-01T08:00:00Z", "WCI"),
    ];
    people.into_iter().map(|s| s.journey).collect()
}

fn facts() -> Vec<EpisodeFacts> {
    scenario().iter().flat_map(EpisodeFacts::of).collect()
}

fn all_kpis(now: &str) -> Vec<MonthKpis> {
    kpis(
        facts(),
        None,
        date("2027-01-01"),
        date("2027-02-28"),
        t(now),
    )
}

fn slot<'a>(months: &'a [MonthKpis], prison: &str, month: &str) -> &'a MonthKpis {
    months
        .iter()
        .find(|m| m.prison == prison && m.month == month)
        .unwrap_or_else(|| panic!("no KPIs for {prison} {month}"))
}

fn r(numerator: u64, denominator: u64) -> Ratio {
    Ratio {
        numerator,
        denominator,
        pending: 0,
    }
}

/// A ratio with episodes still pending.
fn rp(numerator: u64, denominator: u64, pending: u64) -> Ratio {
    Ratio {
        numerator,
        denominator,
        pending,
    }
}

fn sources(pairs: &[(ReferrerKind, u64)]) -> BTreeMap<ReferrerKind, u64> {
    pairs.iter().copied().collect()
}

fn services(pairs: &[(ServiceType, Ratio)]) -> BTreeMap<ServiceType, Ratio> {
    pairs.iter().copied().collect()
}

fn reasons(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

// ------------------------------------------------------------------------------------------
// The numbers.
// ------------------------------------------------------------------------------------------

#[test]
fn episodes_know_every_prison_they_count_for() {
    let facts = facts();
    // 14 referred people, P7 with two episodes; P15 (never referred) has none: 15.
    assert_eq!(facts.len(), 15);
    let of = |n: u64| -> Vec<&EpisodeFacts> {
        let p = person_id(0, n);
        facts.iter().filter(|f| f.person_id == p).collect()
    };
    assert!(
        of(15).is_empty(),
        "a release without referral is no episode"
    );
    let p7 = of(7);
    assert_eq!(p7.len(), 2);
    assert_eq!((p7[0].episode, p7[1].episode), (1, 2));
    assert_eq!(p7[0].closed_at, Some(t("2027-01-11T09:00:00Z")));
    assert_eq!(p7[0].close_reason, None, "declined: closed, not accepted");
    assert_eq!(p7[1].closed_at, None);
    // P11 was released from WCI, but the episode began with a BNI referral.
    let p11 = of(11);
    assert_eq!(p11[0].referral_prison(), "BNI");
    assert_eq!(p11[0].release(), Some((t("2027-02-10T08:00:00Z"), "WCI")));
    assert_eq!(
        p11[0].prisons().into_iter().collect::<Vec<_>>(),
        ["BNI", "WCI"]
    );
    assert_eq!(p11[0].referrals.len(), 2);
    // P6's late-reported release still finds the contacts that came before the report.
    let p6 = of(6);
    assert_eq!(p6[0].released_at, Some(t("2027-01-22T08:00:00Z")));
    assert_eq!(p6[0].first_contact_at, Some(t("2027-01-24T07:00:00Z")));
    assert_eq!(p6[0].gate_contact_at, Some(t("2027-01-22T07:00:00Z")));
}

#[test]
fn one_record_per_prison_and_month() {
    let months = all_kpis(NOW);
    let keys: Vec<(&str, &str)> = months
        .iter()
        .map(|m| (m.prison.as_str(), m.month.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("BNI", "2027-01"),
            ("BNI", "2027-02"),
            ("WCI", "2027-01"),
            ("WCI", "2027-02"),
        ]
    );
}

#[test]
fn winchester_january() {
    let months = all_kpis(NOW);
    let m = slot(&months, "WCI", "2027-01");
    // Referrals received in January at WCI: P1, P3, P6 and P11's second (probation), P2
    // (prison healthcare), P4 (self), P5 (liaison and diversion), P7 (prison staff), P8
    // (family).
    assert_eq!(
        m.referrals_by_source,
        sources(&[
            (ReferrerKind::Probation, 4),
            (ReferrerKind::PrisonHealthcare, 1),
            (ReferrerKind::SelfReferral, 1),
            (ReferrerKind::LiaisonDiversion, 1),
            (ReferrerKind::PrisonStaff, 1),
            (ReferrerKind::FamilyFriend, 1),
        ])
    );
    // Hours to triage (accepted or declined; P8's withdrawal is not triage, P11's second
    // referral is untriaged): P1 12, P2 24, P3 48, P4 6, P5 36, P6 4, P7 24 (declined).
    // Median of
    // [4, 6, 12, 24, 24, 36, 48] is 24.
    assert_eq!(
        sorted(&m.triage_hours),
        [4.0, 6.0, 12.0, 24.0, 24.0, 36.0, 48.0]
    );
    // Released in January: P1 15th, P2 16th, P3 18th, P5 21st, P6 22nd: five (P4 went
    // to hospital on the 20th: not a release to the community, left out throughout).
    // Assessed before release: all but P3 (assessed two days after): 4 of 5.
    assert_eq!(m.assessed_before_release, r(4, 5));
    // With a plan at release: P1, P2, P6; not P3 or P5: 3 of 5.
    assert_eq!(m.released_with_plan, r(3, 5));
    // Contacted within 72h (every window closed): P5 (back in custody after 48h) is
    // left out. P1 after 30 min, P2 after 48h, P6 after 47h (the 07:00 gate meeting was
    // before release and does not count as contact after it); P3 only after 96h: 3 of 4.
    assert_eq!(m.contacted_within_72h, r(3, 4));
    // Met at the gate (GATE contact 12h before to 24h after release): P1 (08:30) and P6
    // (07:00, an hour before); not P2, P3, P5: 2 of 5.
    assert_eq!(m.met_at_gate, r(2, 5));
    // GP-registered within 28 days; every window closed by NOW; P5 (back in custody
    // within the 28 days) left out: P1 (10 days) yes; P2 (GP signpost, no outcome), P3
    // (33 days), P6 no: 1 of 4.
    assert_eq!(m.gp_registered_within_28d, r(1, 4));
    // Signposts made in January (all after release from WCI), converted when the outcome is a registration,
    // attendance, acceptance or housing: GP S1 (registered), S2 (none), S4 (registered,
    // late but converted), S5 (no response), S6 (rejected): 2 of 5; HOUSING S3
    // (settled): 1 of 1; TALKING_THERAPIES S7 (declined): 0 of 1.
    assert_eq!(
        m.signposting_conversion,
        services(&[
            (ServiceType::Gp, r(2, 5)),
            (ServiceType::Housing, r(1, 1)),
            (ServiceType::TalkingTherapies, r(0, 1)),
        ])
    );
    // Closed in January: P7 (declined) and P8 (withdrawn) were never accepted; P5
    // returned to custody.
    assert_eq!(
        m.closure_reasons,
        reasons(&[("NOT_ACCEPTED", 2), ("RETURNED_TO_CUSTODY", 1)])
    );
}

#[test]
fn winchester_february() {
    let months = all_kpis(NOW);
    let m = slot(&months, "WCI", "2027-02");
    // P9 and P10 (probation), P7's second episode (prison healthcare).
    assert_eq!(
        m.referrals_by_source,
        sources(&[
            (ReferrerKind::Probation, 2),
            (ReferrerKind::PrisonHealthcare, 1),
        ])
    );
    // P9 24h, P10 18h, P7 (second referral) 10h.
    assert_eq!(sorted(&m.triage_hours), [10.0, 18.0, 24.0]);
    // Released from WCI: P11 (10 Feb, referred at BNI), P10 (26 Feb), P9 (27 Feb). P9
    // and P10 assessed before release, P11 not: 2 of 3.
    assert_eq!(m.assessed_before_release, r(2, 3));
    // P9 had a plan, P10 and P11 none.
    assert_eq!(m.released_with_plan, r(1, 3));
    // P9's 72 hours end on 2 March: pending. P10 phoned after 24h (his window closed at
    // 08:00 on 1 March), P11 texted after 60h: 2 of 2, one pending.
    assert_eq!(m.contacted_within_72h, rp(2, 2, 1));
    // Nobody was met at the gate, and every 24-hour gate window has closed: 0 of 3.
    assert_eq!(m.met_at_gate, r(0, 3));
    // No 28-day window has closed (P11's ends on 10 March): all three pending, P10's
    // registration two days after release included.
    assert_eq!(m.gp_registered_within_28d, rp(0, 0, 3));
    // P10's GP signpost of 26 Feb, registered.
    assert_eq!(
        m.signposting_conversion,
        services(&[(ServiceType::Gp, r(1, 1))])
    );
    // Closed in February: P1 (needs met), P2 (consent withdrawn).
    assert_eq!(
        m.closure_reasons,
        reasons(&[("CONSENT_WITHDRAWN", 1), ("NEEDS_MET", 1)])
    );
}

#[test]
fn bullingdon_january_and_february() {
    let months = all_kpis(NOW);
    let jan = slot(&months, "BNI", "2027-01");
    // P11's BNI referral (substance misuse; his second, at WCI, counts for WCI), P12
    // (probation), P13 (self).
    assert_eq!(
        jan.referrals_by_source,
        sources(&[
            (ReferrerKind::SubstanceMisuse, 1),
            (ReferrerKind::Probation, 1),
            (ReferrerKind::SelfReferral, 1),
        ])
    );
    // P11's first referral and P12's, 24h each; P13's is pending.
    assert_eq!(sorted(&jan.triage_hours), [24.0, 24.0]);
    // P12, released 29 Jan, met every measure (his 28 days ended on 26 Feb).
    for (name, ratio) in [
        ("assessed", jan.assessed_before_release),
        ("plan", jan.released_with_plan),
        ("72h", jan.contacted_within_72h),
        ("gate", jan.met_at_gate),
        ("GP", jan.gp_registered_within_28d),
    ] {
        assert_eq!(ratio, r(1, 1), "{name}");
    }
    assert_eq!(
        jan.signposting_conversion,
        services(&[(ServiceType::Gp, r(1, 1))])
    );
    assert!(jan.closure_reasons.is_empty());

    let feb = slot(&months, "BNI", "2027-02");
    // P14, declined after 12h.
    assert_eq!(
        feb.referrals_by_source,
        sources(&[(ReferrerKind::Probation, 1)])
    );
    assert_eq!(feb.triage_hours, [12.0]);
    // Nobody was released from BNI in February (P11 was released from WCI).
    for ratio in [
        feb.assessed_before_release,
        feb.released_with_plan,
        feb.contacted_within_72h,
        feb.met_at_gate,
        feb.gp_registered_within_28d,
    ] {
        assert_eq!(ratio, r(0, 0));
    }
    assert!(feb.signposting_conversion.is_empty());
    assert_eq!(feb.closure_reasons, reasons(&[("NOT_ACCEPTED", 1)]));
}

#[test]
fn windows_close_as_time_passes() {
    // On 15 April every window has closed: P9 (never contacted, not registered) now
    // counts against WCI February, and so do P10 (registered) and P11 (not).
    let months = all_kpis("2027-04-15T00:00:00Z");
    let wci = slot(&months, "WCI", "2027-02");
    assert_eq!(wci.contacted_within_72h, r(2, 3));
    assert_eq!(wci.gp_registered_within_28d, r(1, 3));
    // Nothing else moves.
    let before = all_kpis(NOW);
    assert_eq!(
        slot(&months, "WCI", "2027-01"),
        slot(&before, "WCI", "2027-01")
    );
    assert_eq!(
        slot(&months, "BNI", "2027-01"),
        slot(&before, "BNI", "2027-01")
    );
    // Just before P9's 72 hours are up he is still pending; once they are up (and he
    // has not been contacted) he counts as not contacted.
    let at = |now: &str| {
        let months = all_kpis(now);
        slot(&months, "WCI", "2027-02").contacted_within_72h
    };
    assert_eq!(at("2027-03-02T07:59:00Z"), rp(2, 2, 1));
    assert_eq!(at("2027-03-02T08:00:00Z"), r(2, 3));
}

#[test]
fn filters_by_prison_and_by_date() {
    let facts = facts();
    // One prison: only its records, the same numbers.
    let bni = kpis(
        facts.clone(),
        Some("BNI"),
        date("2027-01-01"),
        date("2027-02-28"),
        t(NOW),
    );
    let all = all_kpis(NOW);
    assert_eq!(bni.len(), 2);
    assert!(bni.iter().all(|m| m.prison == "BNI"));
    assert_eq!(&bni[0], slot(&all, "BNI", "2027-01"));
    assert_eq!(&bni[1], slot(&all, "BNI", "2027-02"));

    // February only: the February records, unchanged.
    let feb = kpis(
        facts.clone(),
        None,
        date("2027-02-01"),
        date("2027-02-28"),
        t(NOW),
    );
    assert_eq!(feb.len(), 2);
    assert_eq!(&feb[0], slot(&all, "BNI", "2027-02"));
    assert_eq!(&feb[1], slot(&all, "WCI", "2027-02"));

    // 16-31 January at WCI: each measure by its own date (both ends included).
    let late_jan = kpis(
        facts,
        Some("WCI"),
        date("2027-01-16"),
        date("2027-01-31"),
        t(NOW),
    );
    assert_eq!(late_jan.len(), 1);
    let m = &late_jan[0];
    // Of the WCI January referrals only P11's second (21 Jan, untriaged) is that late.
    assert_eq!(
        m.referrals_by_source,
        sources(&[(ReferrerKind::Probation, 1)])
    );
    assert!(m.triage_hours.is_empty());
    // Releases from the 16th: P2, P3, P5, P6 (not P1 on the 15th; P4 to hospital):
    // assessed 3 of 4 (not P3); plan 2 of 4 (P2, P6).
    assert_eq!(m.assessed_before_release, r(3, 4));
    assert_eq!(m.released_with_plan, r(2, 4));
    // Signposts from the 16th: all seven, S1 made on the 16th itself.
    assert_eq!(m.signposting_conversion[&ServiceType::Gp], r(2, 5));
    // Closures from the 16th: only P5's.
    assert_eq!(m.closure_reasons, reasons(&[("RETURNED_TO_CUSTODY", 1)]));
}

// ------------------------------------------------------------------------------------------
// Publication: small numbers suppressed.
// ------------------------------------------------------------------------------------------

fn ratio_json(numerator: Value, denominator: Value, rate: Value, suppressed: bool) -> Value {
    json!({ "numerator": numerator, "denominator": denominator, "rate": rate, "suppressed": suppressed, "pending": 0 })
}

#[test]
fn published_winchester_january() {
    let months = all_kpis(NOW);
    let p = slot(&months, "WCI", "2027-01").published();
    let lt5 = || json!("<5");
    assert_eq!(p["prison"], "WCI");
    assert_eq!(p["month"], "2027-01");
    // Nine referrals in all are shown; each source (1 to 4) is not.
    assert_eq!(p["referrals_total"], 9);
    assert_eq!(
        p["referrals_by_source"],
        json!({
            "FAMILY_FRIEND": "<5", "LIAISON_DIVERSION": "<5", "PRISON_HEALTHCARE": "<5",
            "PRISON_STAFF": "<5", "PROBATION": "<5", "SELF": "<5",
        })
    );
    // Seven triaged: the median (24h) is shown.
    assert_eq!(
        p["median_hours_referral_to_triage"],
        json!({ "value": 24.0, "referrals_triaged": 7 })
    );
    // 4 of 5: the numerator is suppressed, and with it the rate.
    assert_eq!(
        p["assessed_before_release"],
        ratio_json(lt5(), json!(5), Value::Null, true)
    );
    // 3 of 5.
    assert_eq!(
        p["released_with_plan"],
        ratio_json(lt5(), json!(5), Value::Null, true)
    );
    // 3 of 4: both suppressed.
    assert_eq!(
        p["contacted_within_72h_of_release"],
        ratio_json(lt5(), lt5(), Value::Null, true)
    );
    // 2 of 5 and 1 of 4.
    assert_eq!(
        p["met_at_gate"],
        ratio_json(lt5(), json!(5), Value::Null, true)
    );
    assert_eq!(
        p["gp_registered_within_28d_of_release"],
        ratio_json(lt5(), lt5(), Value::Null, true)
    );
    // GP 2 of 5; HOUSING 1 of 1; TALKING_THERAPIES 0 of 1: a zero is shown as 0, but
    // the denominator of 1 still withholds the rate.
    assert_eq!(
        p["signposting_conversion"],
        json!({
            "GP": ratio_json(lt5(), json!(5), Value::Null, true),
            "HOUSING": ratio_json(lt5(), lt5(), Value::Null, true),
            "TALKING_THERAPIES": ratio_json(json!(0), lt5(), Value::Null, true),
        })
    );
    assert_eq!(
        p["closure_reasons"],
        json!({ "NOT_ACCEPTED": "<5", "RETURNED_TO_CUSTODY": "<5" })
    );
}

#[test]
fn published_small_months_show_nothing_identifying() {
    let months = all_kpis(NOW);
    let wci = slot(&months, "WCI", "2027-02").published();
    // Three referrals, three triaged: total suppressed, no median.
    assert_eq!(wci["referrals_total"], "<5");
    assert_eq!(
        wci["median_hours_referral_to_triage"],
        json!({ "value": null, "referrals_triaged": "<5" })
    );
    // 0 of 3 at the gate: the zero is shown, the 3 is not, no rate.
    assert_eq!(
        wci["met_at_gate"],
        ratio_json(json!(0), json!("<5"), Value::Null, true)
    );
    // 0 of 0 with three pending (every 28-day window open): the pending count is
    // suppressed like any other.
    assert_eq!(
        wci["gp_registered_within_28d_of_release"],
        json!({ "numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": "<5" })
    );
    let bni = slot(&months, "BNI", "2027-02").published();
    // 0 of 0, nothing pending: nothing to suppress, no rate either.
    assert_eq!(
        bni["gp_registered_within_28d_of_release"],
        ratio_json(json!(0), json!(0), Value::Null, false)
    );
    assert_eq!(bni["signposting_conversion"], json!({}));
    // No count from 1 to 4 appears anywhere in any published record.
    for m in &months {
        let text = m.published().to_string();
        for n in 1..SUPPRESS_BELOW {
            for shape in [format!(":{n},"), format!(":{n}}}")] {
                assert!(
                    !text.contains(&shape),
                    "{} {} publishes a count of {n}: {text}",
                    m.prison,
                    m.month
                );
            }
        }
    }
}

#[test]
fn suppression_rules_on_hand_made_records() {
    // shown(): 0 is 0, 1 to 4 are "<5", 5 and up are themselves.
    assert_eq!(shown(0), json!(0));
    for n in 1..5 {
        assert_eq!(shown(n), json!("<5"), "{n}");
    }
    assert_eq!(shown(5), json!(5));
    assert_eq!(shown(1234), json!(1234));

    let m = MonthKpis {
        prison: "AYI".into(),
        month: "2027-03".into(),
        // 5 + 4 + 0 = 9 referrals.
        referrals_by_source: sources(&[
            (ReferrerKind::Probation, 5),
            (ReferrerKind::SelfReferral, 4),
            (ReferrerKind::PrisonStaff, 0),
        ]),
        // Six triaged; sorted 2, 4, 5.5, 7.25, 10, 30: median (5.5 + 7.25) / 2 = 6.375,
        // shown to one decimal place: 6.4.
        triage_hours: vec![30.0, 2.0, 7.25, 4.0, 10.0, 5.5],
        // 0 of 7: a real zero rate, shown.
        assessed_before_release: r(0, 7),
        // 5 of 5: 1.
        released_with_plan: r(5, 5),
        // 4 of 10: numerator suppressed.
        contacted_within_72h: r(4, 10),
        // 5 of 6: the one not met would show; the 5 is withheld.
        met_at_gate: r(5, 6),
        // 2 of 3: both suppressed.
        gp_registered_within_28d: r(2, 3),
        signposting_conversion: services(&[
            (ServiceType::Housing, r(10, 15)),
            (ServiceType::Benefits, r(0, 0)),
            (ServiceType::Id, r(6, 9)),
        ]),
        closure_reasons: reasons(&[("NEEDS_MET", 12), ("MOVED_AREA", 1)]),
    };
    let p = m.published();
    // 9 less 5 less 0 would give the 4 away: the 5 is withheld too.
    assert_eq!(p["referrals_total"], 9);
    assert_eq!(
        p["referrals_by_source"],
        json!({ "PROBATION": "*", "SELF": "<5", "PRISON_STAFF": 0 })
    );
    assert_eq!(
        p["median_hours_referral_to_triage"],
        json!({ "value": 6.4, "referrals_triaged": 6 })
    );
    assert_eq!(
        p["assessed_before_release"],
        ratio_json(json!(0), json!(7), json!(0.0), false)
    );
    assert_eq!(
        p["released_with_plan"],
        ratio_json(json!(5), json!(5), json!(1.0), false)
    );
    assert_eq!(
        p["contacted_within_72h_of_release"],
        ratio_json(json!("<5"), json!(10), Value::Null, true)
    );
    assert_eq!(
        p["met_at_gate"],
        ratio_json(json!("*"), json!(6), Value::Null, true)
    );
    assert_eq!(
        p["gp_registered_within_28d_of_release"],
        ratio_json(json!("<5"), json!("<5"), Value::Null, true)
    );
    // 10 of 15 = 0.667; 6 of 9 leaves 3 not converted, so the 6 is withheld; 0 of 0 has
    // no rate but nothing to hide.
    assert_eq!(
        p["signposting_conversion"],
        json!({
            "HOUSING": ratio_json(json!(10), json!(15), json!(0.667), false),
            "ID": ratio_json(json!("*"), json!(9), Value::Null, true),
            "BENEFITS": ratio_json(json!(0), json!(0), Value::Null, false),
        })
    );
    assert_eq!(
        p["closure_reasons"],
        json!({ "NEEDS_MET": 12, "MOVED_AREA": "<5" })
    );

    // Four triaged referrals: too few for a median.
    let few = MonthKpis {
        triage_hours: vec![1.0, 2.0, 3.0, 4.0],
        ..MonthKpis::default()
    };
    assert_eq!(
        few.published()["median_hours_referral_to_triage"],
        json!({ "value": null, "referrals_triaged": "<5" })
    );
    // Five, an odd count: the middle one.
    let five = MonthKpis {
        triage_hours: vec![9.0, 1.0, 3.0, 100.0, 2.5],
        ..MonthKpis::default()
    };
    assert_eq!(
        five.published()["median_hours_referral_to_triage"],
        json!({ "value": 3.0, "referrals_triaged": 5 })
    );
}

// ------------------------------------------------------------------------------------------
// Issue 9, items 10-13: KPIs a commissioner can trust.
// ------------------------------------------------------------------------------------------

/// `count` people referred to WCI in February 2027, accepted, assessed, planned and
/// released on 1 March 08:00; the first `met` of them phoned an hour after release and
/// GP-registered four days after it.
fn cohort(first: u32, count: u32, met: u32) -> Vec<Journey> {
    (first..first + count)
        .map(|n| {
            let rid = format!("C{n}");
            let s = Story::new(n)
                .referred("2027-02-01T09:00:00Z", &rid, "PROBATION", "WCI")
                .accepted("2027-02-02T09:00:00Z", &rid)
                .assessed("2027-02-03T10:00:00Z")
                .planned("2027-02-04T10:00:00Z")
                .released("2027-03-01T08:00:00Z", "WCI");
            let s = if n < first + met {
                let sid = format!("G{n}");
                s.contact("2027-03-01T09:00:00Z", "PHONE")
                    .signposted("2027-03-01T10:00:00Z", &sid, "GP")
                    .outcome("2027-03-05T10:00:00Z", &sid, "GP_REGISTERED")
            } else {
                s
            };
            s.journey
        })
        .collect()
}

/// The KPIs of WCI, March 2027, over `journeys` as known at `now`.
fn wci_march(journeys: &[Journey], now: &str) -> MonthKpis {
    let facts: Vec<EpisodeFacts> = journeys.iter().flat_map(EpisodeFacts::of).collect();
    let months = kpis(
        facts,
        Some("WCI"),
        date("2027-03-01"),
        date("2027-03-31"),
        t(now),
    );
    slot(&months, "WCI", "2027-03").clone()
}

/// (numerator, denominator, pending) as published, before suppression.
fn parts(m: &MonthKpis, kpi: &str) -> (Value, Value, Value) {
    let p = m.published();
    let r = &p[kpi];
    (
        r["numerator"].clone(),
        r["denominator"].clone(),
        r["pending"].clone(),
    )
}

#[test]
fn issue_10_gp_rate_twenty_days_after_release_is_pending_not_eight_of_eight() {
    // 20 released on 1 March, 8 of them GP-registered on 5 March. On 21 March no 28-day
    // window has closed: nothing is counted yet, all 20 are pending (not 8 of 8 = 100 %).
    let people = cohort(100, 20, 8);
    let m = wci_march(&people, "2027-03-21T08:00:00Z");
    assert_eq!(
        (
            m.gp_registered_within_28d.numerator,
            m.gp_registered_within_28d.denominator
        ),
        (0, 0)
    );
    assert_eq!(
        parts(&m, "gp_registered_within_28d_of_release"),
        (json!(0), json!(0), json!(20))
    );
    // The 72-hour window closed on 4 March: 8 of 20, nothing pending.
    assert_eq!(
        parts(&m, "contacted_within_72h_of_release"),
        (json!(8), json!(20), json!(0))
    );
    // Twelve hours after release the 72-hour and gate windows are open too: the 8
    // already phoned are not counted early.
    let early = wci_march(&people, "2027-03-01T20:00:00Z");
    assert_eq!(
        parts(&early, "contacted_within_72h_of_release"),
        (json!(0), json!(0), json!(20))
    );
    assert_eq!(
        parts(&early, "met_at_gate"),
        (json!(0), json!(0), json!(20))
    );
    // Released with a plan is decided at release: counted at once.
    assert_eq!(
        parts(&early, "released_with_plan"),
        (json!(20), json!(20), json!(0))
    );
    // The 28 days end on 29 March 08:00: a minute before, still pending; then 8 of 20.
    let before = wci_march(&people, "2027-03-29T07:59:00Z");
    assert_eq!(
        parts(&before, "gp_registered_within_28d_of_release"),
        (json!(0), json!(0), json!(20))
    );
    let after = wci_march(&people, "2027-03-29T08:00:00Z");
    assert_eq!(
        parts(&after, "gp_registered_within_28d_of_release"),
        (json!(8), json!(20), json!(0))
    );
}

#[test]
fn issue_11_denominators_leave_out_the_never_accepted_hospital_transfers_and_recalls() {
    let people: Vec<Journey> = vec![
        // A: never triaged, released: not (yet) an accepted episode; pending everywhere.
        Story::new(201)
            .referred("2027-02-01T09:00:00Z", "A", "PROBATION", "WCI")
            .released("2027-03-01T08:00:00Z", "WCI"),
        // B: released while untriaged, then declined: never accepted, left out.
        Story::new(202)
            .referred("2027-02-01T09:00:00Z", "B", "PROBATION", "WCI")
            .released("2027-03-01T08:00:00Z", "WCI")
            .declined("2027-03-02T09:00:00Z", "B", "INELIGIBLE"),
        // C: assessed and planned, transferred to a secure hospital: left out.
        Story::new(203)
            .referred("2027-02-01T09:00:00Z", "C", "PROBATION", "WCI")
            .accepted("2027-02-02T09:00:00Z", "C")
            .assessed("2027-02-03T10:00:00Z")
            .planned("2027-02-04T10:00:00Z")
            .released_for("2027-03-01T08:00:00Z", "WCI", "RELEASED_TO_HOSPITAL"),
        // D: assessed and planned, released, never contacted, recalled on day 9: counts
        // for assessment, plan and 72 hours, but not for GP within 28 days.
        Story::new(204)
            .referred("2027-02-01T09:00:00Z", "D", "PROBATION", "WCI")
            .accepted("2027-02-02T09:00:00Z", "D")
            .assessed("2027-02-03T10:00:00Z")
            .planned("2027-02-04T10:00:00Z")
            .released("2027-03-01T08:00:00Z", "WCI")
            .recalled("2027-03-10T08:00:00Z", "WCI"),
        // E: assessed, no plan, released, phoned, GP-registered in five days.
        Story::new(205)
            .referred("2027-02-01T09:00:00Z", "E", "PROBATION", "WCI")
            .accepted("2027-02-02T09:00:00Z", "E")
            .assessed("2027-02-03T10:00:00Z")
            .released("2027-03-01T08:00:00Z", "WCI")
            .contact("2027-03-02T08:00:00Z", "PHONE")
            .signposted("2027-03-02T09:00:00Z", "SE", "GP")
            .outcome("2027-03-06T09:00:00Z", "SE", "GP_REGISTERED"),
    ]
    .into_iter()
    .map(|s| s.journey)
    .collect();
    let m = wci_march(&people, "2027-04-15T00:00:00Z");
    // D and E: both assessed; D planned; A awaits triage (pending).
    assert_eq!(
        parts(&m, "assessed_before_release"),
        (json!("<5"), json!("<5"), json!("<5"))
    );
    let ratio = |r: Ratio| (r.numerator, r.denominator);
    assert_eq!(ratio(m.assessed_before_release), (2, 2));
    assert_eq!(ratio(m.released_with_plan), (1, 2));
    // 72 hours: D (not contacted, back only on day 9) and E (contacted): 1 of 2.
    assert_eq!(ratio(m.contacted_within_72h), (1, 2));
    // GP within 28 days: D was back in custody on day 9, left out; E registered: 1 of 1.
    assert_eq!(ratio(m.gp_registered_within_28d), (1, 1));
}

#[test]
fn issue_12_release_kpis_count_for_the_releasing_prison_referrals_for_their_own() {
    let months = all_kpis("2027-04-15T00:00:00Z");
    // P11: referred at BNI (substance misuse), transferred, referred again at WCI
    // (probation), released from WCI on 10 Feb. Each referral counts where it was made;
    // the release counts for WCI, which released him.
    let bni_jan = slot(&months, "BNI", "2027-01");
    assert_eq!(
        bni_jan.referrals_by_source,
        sources(&[
            (ReferrerKind::SubstanceMisuse, 1),
            (ReferrerKind::Probation, 1),
            (ReferrerKind::SelfReferral, 1),
        ])
    );
    let wci_jan = slot(&months, "WCI", "2027-01");
    assert_eq!(wci_jan.referrals_by_source[&ReferrerKind::Probation], 4);
    let bni_feb = slot(&months, "BNI", "2027-02");
    assert_eq!(
        (
            bni_feb.assessed_before_release.denominator,
            bni_feb.contacted_within_72h.denominator
        ),
        (0, 0),
        "BNI released nobody in February"
    );
    let wci_feb = slot(&months, "WCI", "2027-02");
    // P9, P10 and P11 released from WCI in February; P11 not assessed.
    assert_eq!(
        (
            wci_feb.assessed_before_release.numerator,
            wci_feb.assessed_before_release.denominator
        ),
        (2, 3)
    );
    // The prison filter follows the same attribution.
    let wci = kpis(
        facts(),
        Some("WCI"),
        date("2027-02-01"),
        date("2027-02-28"),
        t("2027-04-15T00:00:00Z"),
    );
    assert_eq!(wci[0].assessed_before_release.denominator, 3);

    // Signposts and closures count where the person was: for the prison of the first
    // referral before release, for the releasing prison from the release on.
    let moved = Story::new(301)
        .referred("2027-01-05T09:00:00Z", "M1", "PROBATION", "BNI")
        .accepted("2027-01-06T09:00:00Z", "M1")
        .signposted("2027-01-07T09:00:00Z", "M-ID", "ID")
        .transferred("2027-01-08T10:00:00Z", "BNI", "WCI")
        .released("2027-01-20T08:00:00Z", "WCI")
        .signposted("2027-01-21T09:00:00Z", "M-GP", "GP")
        .closed("2027-01-30T09:00:00Z", "NEEDS_MET")
        .journey;
    let months = kpis(
        EpisodeFacts::of(&moved),
        None,
        date("2027-01-01"),
        date("2027-01-31"),
        t("2027-04-15T00:00:00Z"),
    );
    let bni = slot(&months, "BNI", "2027-01");
    let wci = slot(&months, "WCI", "2027-01");
    assert_eq!(
        bni.signposting_conversion.keys().collect::<Vec<_>>(),
        [&ServiceType::Id]
    );
    assert_eq!(
        wci.signposting_conversion.keys().collect::<Vec<_>>(),
        [&ServiceType::Gp]
    );
    assert!(bni.closure_reasons.is_empty());
    assert_eq!(wci.closure_reasons, reasons(&[("NEEDS_MET", 1)]));
    assert_eq!(wci.released_with_plan.denominator, 1);
    assert_eq!(bni.released_with_plan.denominator, 0);
}

/// The published counts of a row whose total is published too, as (cells, total).
fn numbers(cells: &Value, total: &Value) -> (Vec<Option<u64>>, Option<u64>) {
    let cells = cells
        .as_object()
        .expect("cells")
        .values()
        .map(Value::as_u64)
        .collect();
    (cells, total.as_u64())
}

#[test]
fn issue_13_a_total_beside_a_suppressed_cell_does_not_give_it_away() {
    // 5 probation + 4 self-referrals = 9: publishing 9, 5 and "<5" gives the 4 away.
    let m = MonthKpis {
        prison: "AYI".into(),
        month: "2027-03".into(),
        referrals_by_source: sources(&[
            (ReferrerKind::Probation, 5),
            (ReferrerKind::SelfReferral, 4),
        ]),
        ..MonthKpis::default()
    };
    let p = m.published();
    let (cells, total) = numbers(&p["referrals_by_source"], &p["referrals_total"]);
    assert_eq!(total, Some(9));
    assert!(
        cells.iter().all(Option::is_none),
        "both cells withheld: {p}"
    );
    // Every small table: whatever is published, the total less the published cells is
    // never one withheld cell alone.
    for a in 0..9u64 {
        for b in 0..9u64 {
            for c in [0, 3, 6, 20] {
                let m = MonthKpis {
                    referrals_by_source: sources(&[
                        (ReferrerKind::Probation, a),
                        (ReferrerKind::SelfReferral, b),
                        (ReferrerKind::PrisonStaff, c),
                    ]),
                    ..MonthKpis::default()
                };
                let p = m.published();
                let (cells, total) = numbers(&p["referrals_by_source"], &p["referrals_total"]);
                if total.is_some() {
                    let withheld = cells.iter().filter(|c| c.is_none()).count();
                    assert_ne!(withheld, 1, "{a} {b} {c}: {p}");
                }
            }
        }
    }
    // A rate's denominator is the total of those who met the measure and those who did
    // not: 17 of 20 would give away the 3 not contacted.
    for (n, d) in [(17, 20), (3, 20), (6, 10)] {
        let m = MonthKpis {
            contacted_within_72h: Ratio {
                numerator: n,
                denominator: d,
                ..Ratio::default()
            },
            ..MonthKpis::default()
        };
        let r = &m.published()["contacted_within_72h_of_release"];
        let (num, den) = (r["numerator"].as_u64(), r["denominator"].as_u64());
        let small = |x: u64| (1..SUPPRESS_BELOW).contains(&x);
        if let (Some(num), Some(den)) = (num, den) {
            assert!(!small(num) && !small(den - num), "{n} of {d}: {r}");
        }
        assert_eq!(
            r["rate"].is_null(),
            small(n) || small(d - n),
            "{n} of {d}: {r}"
        );
    }
}
