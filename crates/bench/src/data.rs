//! Synthetic data for the benchmarks: person ids, NOMIS and NHS numbers, a ten-event
//! journey per person as CloudEvents, and generation of a real log through the embedded
//! backend's append path.
//!
//! Everything is synthetic and deterministic: NOMIS numbers are `A1234BC`-shaped and
//! unique per person index, NHS numbers pass the Modulus 11 check
//! ([`throughcare_events::nhs_check_digit`]); no names or free text are generated.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use throughcare_events::{nhs_check_digit, validate_event, Event, Identifier, PersonId};
use throughcare_ledger::{AppendRequest, EmbeddedLog, EventLog, ExpectedVersion, NewEvent};
use ulid::Ulid;

/// Events in each synthetic journey (so N events = N / 10 people).
pub const EVENTS_PER_PERSON: usize = 10;

/// The `source` of every synthetic event.
pub const SOURCE: &str = "urn:throughcare:partner:bench";

const PRISONS: [&str; 5] = ["WCI", "BNI", "AYI", "GNI", "SPI"];
const SERVICES: [&str; 5] = [
    "GP",
    "HOUSING",
    "TALKING_THERAPIES",
    "SUBSTANCE_MISUSE",
    "BENEFITS",
];
const NEEDS: [&str; 4] = [
    "ACCOMMODATION",
    "MENTAL_HEALTH",
    "DRUGS_AND_ALCOHOL",
    "FINANCE_AND_ID",
];
const LEVELS: [&str; 3] = ["LOW", "MEDIUM", "HIGH"];

/// The deterministic ledger id of synthetic person `n` (`series` keeps runs apart).
pub fn person_id(series: u16, n: u64) -> PersonId {
    PersonId(Ulid::from_parts(
        1_780_000_000_000 + u64::from(series),
        u128::from(n) + 1,
    ))
}

/// A NOMIS number unique for every `n` below 26 * 676 * 10 000 (about 175 million):
/// letter, four digits, two letters.
pub fn nomis(n: u64) -> String {
    let letter = |k: u64| char::from(b'A' + (k % 26) as u8);
    let high = n / 10_000;
    format!(
        "{}{:04}{}{}",
        letter(high / 676),
        n % 10_000,
        letter(high / 26),
        letter(high)
    )
}

/// A ten-digit NHS number in the 999 test range, unique for every `n` below 500 000, with
/// a valid Modulus 11 check digit. Stem `n` is 999 000 000 + 2n or the one after it: the
/// two differ only in the last digit (weight 2), so at most one of them has no valid check
/// digit, and no other `n` uses either.
pub fn nhs(n: u64) -> String {
    assert!(
        n < 500_000,
        "synthetic NHS numbers run out at 500 000 people"
    );
    let stem = 999_000_000 + 2 * n;
    for stem in [stem, stem + 1] {
        let text = format!("{stem:09}");
        let digits: Vec<u8> = text.bytes().map(|b| b - b'0').collect();
        if let Some(check) = nhs_check_digit(&digits) {
            return format!("{text}{check}");
        }
    }
    unreachable!("one of two stems differing only in the last digit has a check digit")
}

fn day(base: NaiveDate, days: i64) -> String {
    (base + Duration::days(days)).format("%Y-%m-%d").to_string()
}

fn envelope(id: String, kind: &str, time: DateTime<Utc>, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": format!("throughcare.{kind}.v1"),
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The ten CloudEvents of synthetic person `n`'s journey, in an order the case state
/// machine accepts: referred, accepted, allocated, consent, assessed, planned, release
/// date, released, met at the gate, signposted. `tag` keeps event ids of different runs
/// apart. The first names the person by NOMIS and NHS number, the rest by NOMIS only.
pub fn journey(tag: &str, n: u64, now: DateTime<Utc>) -> Vec<Value> {
    let nomis = nomis(n);
    let by_nomis = json!({ "nomis": nomis });
    let prison = PRISONS[(n % 5) as usize];
    let referral = format!("REF-{tag}-{n}");
    // Journeys start 30..130 days ago, one event a day.
    let start = now - Duration::days(30 + (n % 100) as i64);
    let base = start.date_naive();
    let at = |k: i64| start + Duration::days(k);
    let id = |k: usize| format!("{tag}-{n}-{k}");
    let release = day(base, 7);
    vec![
        envelope(
            id(0),
            "referral.received",
            at(0),
            json!({
                "person": { "nomis": nomis, "nhs_number": nhs(n) },
                "referral_id": referral,
                "referrer": { "kind": "PRISON_HEALTHCARE", "org": "Synthetic Healthcare Team" },
                "prison": prison,
                "expected_release_date": release,
                "vulnerabilities": ["MENTAL_HEALTH"],
            }),
        ),
        envelope(
            id(1),
            "referral.accepted",
            at(1),
            json!({ "person": by_nomis, "referral_id": referral }),
        ),
        envelope(
            id(2),
            "case.allocated",
            at(1),
            json!({ "person": by_nomis, "worker_id": format!("W-{:04}", n % 997), "worker_role": "PEER_SUPPORT" }),
        ),
        envelope(
            id(3),
            "consent.given",
            at(2),
            json!({ "person": by_nomis, "scope": "ENGAGE" }),
        ),
        envelope(
            id(4),
            "assessment.completed",
            at(3),
            json!({
                "person": by_nomis,
                "kind": "PRE_RELEASE",
                "needs": [
                    { "domain": NEEDS[(n % 4) as usize], "level": LEVELS[(n % 3) as usize] },
                    { "domain": "HEALTH", "level": "LOW" },
                ],
            }),
        ),
        envelope(
            id(5),
            "plan.agreed",
            at(4),
            json!({
                "person": by_nomis,
                "actions": [
                    { "need": NEEDS[(n % 4) as usize], "service_type": SERVICES[(n % 5) as usize], "due_by": day(base, 20) },
                    { "need": "HEALTH", "service_type": "GP", "due_by": day(base, 14) },
                ],
                "next_review": day(base, 30),
            }),
        ),
        envelope(
            id(6),
            "release_date.set",
            at(5),
            json!({ "person": by_nomis, "date": release, "date_type": "CONFIRMED" }),
        ),
        envelope(
            id(7),
            "prisoner.released",
            at(7),
            json!({ "person": by_nomis, "prison": prison, "reason": "RELEASED", "local_authority": "Hampshire" }),
        ),
        envelope(
            id(8),
            "contact.made",
            at(7),
            json!({ "person": by_nomis, "channel": "GATE", "outcome": "MET" }),
        ),
        envelope(
            id(9),
            "signposting.made",
            at(8),
            json!({
                "person": by_nomis,
                "signpost_id": format!("SP-{tag}-{n}"),
                "service_type": SERVICES[(n % 5) as usize],
                "org": "Synthetic Community Service",
                "mode": "REFERRED",
            }),
        ),
    ]
}

/// Validates a generated event (they are all valid; a failure is a bug in this file).
pub fn validated(value: &Value, now: DateTime<Utc>) -> Result<Event> {
    validate_event(value, now).map_err(|p| anyhow!("synthetic event is invalid: {p:?}"))
}

/// Appends `people` synthetic journeys (ten events each) to a new embedded log in `dir`
/// with up to 1024 appends in flight, so the writer's group commits are large. Returns the
/// events written.
pub async fn generate_log(dir: &Path, series: u16, people: u64) -> Result<u64> {
    let log = Arc::new(EmbeddedLog::open(dir).context("open the log to generate")?);
    let started = Instant::now();
    let total = append_journeys(log, series, people, 1024).await?;
    eprintln!(
        "  generated {total} events for {people} people in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(total)
}

/// Appends `people` synthetic journeys (ten events each) to `log` (any backend) through
/// `EventLog::append`: one append per person (expected NoStream, claiming the person id,
/// NOMIS and NHS number), `concurrency` appends in flight. Returns the events written and
/// checks the head agrees.
pub async fn append_journeys(
    log: Arc<dyn EventLog>,
    series: u16,
    people: u64,
    concurrency: usize,
) -> Result<u64> {
    let now = Utc::now();
    let tag = format!("g{series}");
    let results: Vec<Result<usize>> = stream::iter(0..people)
        .map(|n| {
            let log = log.clone();
            let tag = tag.clone();
            async move {
                let person = person_id(series, n);
                let events = journey(&tag, n, now)
                    .iter()
                    .map(|v| {
                        validated(v, now).map(|event| NewEvent {
                            event,
                            recorded_at: now,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let claims = vec![
                    Identifier::Person(person),
                    format!("nomis:{}", nomis(n))
                        .parse()
                        .map_err(|e| anyhow!("{e}"))?,
                    format!("nhs:{}", nhs(n))
                        .parse()
                        .map_err(|e| anyhow!("{e}"))?,
                ];
                let appended = log
                    .append(AppendRequest {
                        person,
                        expected: ExpectedVersion::NoStream,
                        claims,
                        events,
                    })
                    .await?;
                Ok(appended.len())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut total = 0u64;
    for r in results {
        total += r? as u64;
    }
    let head = log.head().await?;
    anyhow::ensure!(
        head == total,
        "generated {total} events but the head is {head}"
    );
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_unique_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..200_000).step_by(7).chain([299_999, 300_000, 499_999]) {
            let x = nomis(n);
            assert!(throughcare_events::Nomis::parse(&x).is_ok(), "{x}");
            assert!(seen.insert(x));
            let h = nhs(n);
            assert!(throughcare_events::NhsNumber::parse(&h).is_ok(), "{h}");
            assert!(seen.insert(h));
        }
    }

    #[test]
    fn journeys_validate_and_are_decided_in_order() {
        let now = Utc::now();
        let person = person_id(0, 3);
        let mut history = Vec::new();
        for (k, v) in journey("t", 3, now).iter().enumerate() {
            let e = validated(v, now).unwrap();
            let j = throughcare_projections::Journey::fold(person, &history);
            throughcare_projections::decide(&j, &e).unwrap_or_else(|d| panic!("{k}: {d}"));
            let prev = history.last().map_or(
                throughcare_events::Hash::ZERO,
                |r: &throughcare_events::RecordedEvent| r.hash,
            );
            let body = throughcare_events::StoredBody::encode(person, now, prev, &e);
            history.push(throughcare_events::StoredBody::decode(k as u64 + 1, &body).unwrap());
        }
    }
}
