//! A deterministic synthetic population across the five pilot prisons: referrals from a
//! realistic mix of sources, release dates over the past 6 months and the next 3,
//! late-reported releases, declines, transfers, returns to custody, contacts, signposts
//! and outcomes. Pure: the seed, the anchor day and "now" are passed in; the caller
//! submits the events through the ledger's write path.
//!
//! Every id derives from the anchor day and the person's index, so generating again for
//! the same anchor yields the same CloudEvents (a re-run records nothing new). Only events
//! whose time is not after `now` are produced. All names are absent; NOMIS, NHS and CRN
//! numbers are synthetic (NHS numbers pass Modulus 11).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use throughcare_events::PILOT_PRISONS;
use throughcare_synthetic::{cloudevent, crn, rfc3339, with_person};

/// The CloudEvents `source` of every demo event.
pub const SOURCE: &str = "urn:throughcare:demo:seed";
/// The `source` of demo facts from prison systems.
pub const HMPPS_SOURCE: &str = "urn:throughcare:demo:hmpps";

/// splitmix64: tiny, stable across versions (unlike a library RNG), and good enough here.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    /// True with probability `p` percent.
    fn chance(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
    /// Picks by integer weights.
    fn weighted<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.next() % total;
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        &items[0].0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// The synthetic identifiers of person `i` come from `throughcare-synthetic` (distinct
/// for every `i` below [`throughcare_synthetic::NHS_SEEDS`]); re-exported because the CLI
/// names the demo's first person by NOMIS number.
pub use throughcare_synthetic::{nhs_number, nomis};

/// One person's events, oldest first, each a CloudEvent ready to submit.
pub struct PersonScript {
    pub index: u64,
    pub events: Vec<Value>,
}

struct Builder {
    anchor: NaiveDate,
    index: u64,
    person: Value,
    events: Vec<(DateTime<Utc>, Value)>,
}

impl Builder {
    fn push(&mut self, at: DateTime<Utc>, kind: &str, data: Value, fact: bool) {
        let id = format!(
            "demo-{}-{:06}-{:02}",
            self.anchor,
            self.index,
            self.events.len()
        );
        let source = if fact { HMPPS_SOURCE } else { SOURCE };
        let data = with_person(data, self.person.clone());
        self.events
            .push((at, cloudevent(source, &id, kind, &rfc3339(at), data)));
    }
}

const REFERRERS: &[(&str, u64)] = &[
    ("PRISON_HEALTHCARE", 30),
    ("PROBATION", 20),
    ("LIAISON_DIVERSION", 15),
    ("SUBSTANCE_MISUSE", 10),
    ("SELF", 10),
    ("PRISON_STAFF", 10),
    ("FAMILY_FRIEND", 5),
];
const VULNERABILITIES: &[&str] = &[
    "MENTAL_HEALTH",
    "AUTISM",
    "ADHD",
    "LEARNING_DISABILITY",
    "COMMUNICATION",
    "TRAUMA",
    "OTHER",
];
const DECLINES: &[&str] = &[
    "INELIGIBLE",
    "OUTSIDE_WINDOW",
    "OUT_OF_AREA",
    "ENHANCED_SERVICE",
    "DUPLICATE",
];
const ROLES: &[&str] = &["PEER_SUPPORT", "SUPPORT_TIME_RECOVERY", "NAVIGATOR"];
const AUTHORITIES: &[&str] = &[
    "Southampton",
    "Portsmouth",
    "Oxfordshire",
    "Buckinghamshire",
    "Hampshire",
    "Milton Keynes",
];

/// The scripts of `people` persons for the demo anchored at `anchor`, cut at `now`.
/// `people` is at most [`throughcare_synthetic::NHS_SEEDS`]: each person has their own
/// NHS number.
pub fn population(
    seed: u64,
    people: u64,
    anchor: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<PersonScript> {
    (0..people).map(|i| person(seed, i, anchor, now)).collect()
}

fn day(anchor: NaiveDate, offset: i64, hour: i64) -> DateTime<Utc> {
    (anchor + Duration::days(offset))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        + Duration::hours(hour)
}

fn person(seed: u64, i: u64, anchor: NaiveDate, now: DateTime<Utc>) -> PersonScript {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let prison = *r.weighted(&[
        (PILOT_PRISONS[0], 30),
        (PILOT_PRISONS[1], 30),
        (PILOT_PRISONS[2], 15),
        (PILOT_PRISONS[3], 10),
        (PILOT_PRISONS[4], 15),
    ]);
    let mut person = json!({"nomis": nomis(i), "nhs_number": nhs_number(i)});
    if r.chance(40) {
        person["crn"] = json!(crn(i));
    }
    let mut b = Builder {
        anchor,
        index: i,
        person,
        events: Vec::new(),
    };
    // Release day relative to the anchor: the past 6 months to the next 3.
    let release = r.range(-180, 90);
    let release_at = day(anchor, release, 10);
    let referred = r.chance(92);
    let crd = anchor + Duration::days(release);
    // For some the date first given is not the one they leave on.
    let first_date = if r.chance(15) {
        crd + Duration::days(r.range(1, 20))
    } else {
        crd
    };

    if referred {
        let referral_day = release - r.range(14, 120);
        let referral_at = day(anchor, referral_day, r.range(8, 16));
        let n = r.range(1, 3);
        let vulns: Vec<&str> = (0..n)
            .map(|_| *r.pick(VULNERABILITIES))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let referral_id = format!("DEMO-REF-{i:06}");
        b.push(referral_at, "referral.received", json!({
            "referral_id": referral_id, "referrer": {"kind": r.weighted(REFERRERS)},
            "prison": prison, "expected_release_date": first_date.to_string(), "vulnerabilities": vulns,
        }), false);
        b.push(
            referral_at + Duration::hours(20),
            "release_date.set",
            json!({"date": first_date.to_string(), "date_type": "CRD"}),
            true,
        );
        if first_date != crd {
            let confirmed_at =
                (release_at - Duration::days(10)).max(referral_at + Duration::hours(30));
            b.push(
                confirmed_at,
                "release_date.set",
                json!({"date": crd.to_string(), "date_type": "CONFIRMED"}),
                true,
            );
        }
        let triage_at = referral_at + Duration::hours(r.range(2, 96));
        let outcome = r.range(0, 99);
        if outcome < 12 {
            b.push(
                triage_at,
                "referral.declined",
                json!({"referral_id": referral_id, "reason": r.pick(DECLINES)}),
                false,
            );
            b.push(
                release_at,
                "prisoner.released",
                json!({"prison": prison, "reason": "RELEASED"}),
                true,
            );
        } else if outcome < 15 {
            b.push(
                triage_at,
                "referral.withdrawn",
                json!({"referral_id": referral_id, "reason": "PERSON_DECLINED"}),
                false,
            );
            b.push(
                release_at,
                "prisoner.released",
                json!({"prison": prison, "reason": "RELEASED"}),
                true,
            );
        } else {
            b.push(
                triage_at,
                "referral.accepted",
                json!({"referral_id": referral_id}),
                false,
            );
            supported(
                &mut r, &mut b, prison, triage_at, release, release_at, anchor,
            );
        }
    } else {
        // Never referred: HMPPS still reports the release (RELEASED_WITHOUT_REFERRAL).
        b.push(
            day(anchor, release - 30, 9),
            "release_date.set",
            json!({"date": crd.to_string(), "date_type": "CRD"}),
            true,
        );
        b.push(
            release_at,
            "prisoner.released",
            json!({"prison": prison, "reason": "RELEASED", "local_authority": r.pick(AUTHORITIES)}),
            true,
        );
    }
    let mut events = b.events;
    // A stable sort keeps the written order for events at the same instant.
    events.sort_by_key(|(t, _)| *t);
    PersonScript {
        index: i,
        events: events
            .into_iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, e)| e)
            .collect(),
    }
}

/// The story of an accepted referral: allocation, consent, assessment, plan, release,
/// contact, signposting, and how the case ends.
fn supported(
    r: &mut Rng,
    b: &mut Builder,
    prison: &str,
    accepted_at: DateTime<Utc>,
    release: i64,
    release_at: DateTime<Utc>,
    anchor: NaiveDate,
) {
    let mut t = accepted_at;
    let allocated = r.chance(88);
    if allocated {
        t += Duration::hours(r.range(4, 200));
        let worker = format!("W-{prison}-{:02}", r.range(1, 6));
        b.push(
            t,
            "case.allocated",
            json!({"worker_id": worker, "worker_role": r.pick(ROLES)}),
            false,
        );
        if r.chance(92) {
            t += Duration::hours(r.range(2, 48));
            b.push(t, "consent.given", json!({"scope": "ENGAGE"}), false);
        }
    }
    let assessed = allocated && r.chance(82);
    if assessed {
        t += Duration::hours(r.range(24, 160));
        b.push(
            t,
            "assessment.completed",
            json!({"kind": "INITIAL", "needs": [
                {"domain": "MENTAL_HEALTH", "level": *r.pick(&["LOW", "MEDIUM", "HIGH"])},
                {"domain": "ACCOMMODATION", "level": *r.pick(&["NONE", "MEDIUM", "HIGH"])},
                {"domain": "FINANCE_AND_ID", "level": *r.pick(&["LOW", "MEDIUM"])},
            ]}),
            false,
        );
        if r.chance(80) {
            t += Duration::hours(r.range(24, 120));
            let due = (release_at + Duration::days(r.range(3, 28))).date_naive();
            b.push(t, "plan.agreed", json!({"actions": [
                {"need": "HEALTH", "service_type": "GP", "due_by": due.to_string()},
                {"need": "ACCOMMODATION", "service_type": "HOUSING", "due_by": release_at.date_naive().to_string()},
            ], "next_review": (release_at + Duration::days(14)).date_naive().to_string()}), false);
        }
    }
    if r.chance(5) && release_at - t > Duration::days(2) {
        let to = *r.pick(
            &PILOT_PRISONS
                .iter()
                .filter(|p| **p != prison)
                .copied()
                .collect::<Vec<_>>(),
        );
        let at = t + (release_at - t) / 2;
        b.push(
            at,
            "prisoner.transferred",
            json!({"from_prison": prison, "to_prison": to}),
            true,
        );
        return release_story(r, b, to, release, release_at, anchor);
    }
    release_story(r, b, prison, release, release_at, anchor)
}

fn release_story(
    r: &mut Rng,
    b: &mut Builder,
    prison: &str,
    release: i64,
    release_at: DateTime<Utc>,
    anchor: NaiveDate,
) {
    let hospital = r.chance(4);
    b.push(
        release_at,
        "prisoner.released",
        json!({
            "prison": prison, "reason": if hospital { "RELEASED_TO_HOSPITAL" } else { "RELEASED" },
            "local_authority": r.pick(AUTHORITIES),
        }),
        true,
    );
    // The community part.
    let contact_at = if r.chance(40) {
        release_at + Duration::minutes(r.range(0, 90))
    } else {
        b.push(
            release_at + Duration::hours(r.range(4, 30)),
            "contact.attempted",
            json!({"channel": "PHONE", "outcome": "NO_ANSWER"}),
            false,
        );
        release_at + Duration::hours(r.range(24, 140))
    };
    let gate = contact_at < release_at + Duration::hours(2);
    let contacted = gate || r.chance(80);
    if !contacted {
        if r.chance(50) {
            b.push(
                release_at + Duration::days(30),
                "case.closed",
                json!({"reason": "LOST_CONTACT"}),
                false,
            );
        }
        return;
    }
    b.push(contact_at, "contact.made", json!({"channel": if gate { "GATE" } else { *r.pick(&["PHONE", "OUTREACH", "VIA_PROBATION"]) }, "outcome": "MET"}), false);
    if r.chance(6) {
        let back = release_at + Duration::days(r.range(2, 60));
        b.push(
            back,
            "prisoner.returned_to_custody",
            json!({"prison": prison, "recall": true}),
            true,
        );
        if r.chance(50) {
            b.push(
                back + Duration::days(2),
                "case.closed",
                json!({"reason": "RETURNED_TO_CUSTODY"}),
                false,
            );
        }
        return;
    }
    let mut n = 0;
    for (service, p, good) in [
        ("GP", 85, "GP_REGISTERED"),
        ("HOUSING", 60, "HOUSING_SETTLED"),
        ("TALKING_THERAPIES", 30, "ATTENDED"),
        ("SUBSTANCE_MISUSE", 20, "ATTENDED"),
        ("BENEFITS", 40, "ACCEPTED"),
        ("ID", 30, "ACCEPTED"),
        ("PEER_GROUP", 25, "ATTENDED"),
    ] {
        if !r.chance(p) {
            continue;
        }
        n += 1;
        let id = format!("SP-{n}");
        let made = contact_at + Duration::hours(r.range(2, 240));
        b.push(
            made,
            "signposting.made",
            json!({"signpost_id": id, "service_type": service,
            "org": format!("Example {} service", service.to_lowercase().replace('_', " ")),
            "mode": *r.pick(&["SIGNPOSTED", "REFERRED", "ACCOMPANIED"])}),
            false,
        );
        let outcome = if r.chance(65) {
            good
        } else {
            *r.pick(&["DECLINED", "REJECTED", "NO_RESPONSE"])
        };
        b.push(
            made + Duration::days(r.range(3, 40)),
            "signposting.outcome",
            json!({"signpost_id": id, "outcome": outcome}),
            false,
        );
    }
    if r.chance(10) {
        b.push(
            contact_at + Duration::days(r.range(10, 50)),
            "engagement.changed",
            json!({"status": "DISENGAGED"}),
            false,
        );
    }
    if r.chance(3) {
        b.push(contact_at + Duration::days(r.range(1, 20)), "safeguarding.raised", json!({"category": *r.pick(&["SELF_HARM", "EXPLOITATION", "DOMESTIC_ABUSE"]), "referred_to": "Adult social care (synthetic)"}), false);
    }
    let six_months = release + 182;
    if r.chance(12) {
        b.push(
            release_at + Duration::days(r.range(60, 150)),
            "case.closed",
            json!({"reason": "NEEDS_MET"}),
            false,
        );
    } else if six_months < 0 {
        b.push(
            day(anchor, six_months, 17),
            "case.closed",
            json!({"reason": "SIX_MONTH_LIMIT"}),
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughcare_events::validate_event;

    #[test]
    fn deterministic_valid_and_in_order() {
        let anchor: NaiveDate = "2026-11-28".parse().unwrap();
        let now = anchor.and_hms_opt(12, 0, 0).unwrap().and_utc();
        let a = population(7, 300, anchor, now);
        let b = population(7, 300, anchor, now);
        assert_eq!(
            a.iter().map(|p| &p.events).collect::<Vec<_>>(),
            b.iter().map(|p| &p.events).collect::<Vec<_>>()
        );
        for p in &a {
            let mut last = None;
            for e in &p.events {
                let ev = validate_event(e, now).unwrap_or_else(|errs| panic!("{e}: {errs:?}"));
                assert!(ev.time <= now);
                assert!(
                    last.is_none_or(|l| l <= ev.time),
                    "events out of order for person {}",
                    p.index
                );
                last = Some(ev.time);
            }
        }
        let total: usize = a.iter().map(|p| p.events.len()).sum();
        assert!(total > 300 * 5, "a thin population: {total} events");
    }
}
