//! Synthetic data for the benchmarks: person ids, NOMIS and NHS numbers, a ten-event
//! journey per person as CloudEvents, and generation of a real log through the embedded
//! backend's append path.
//!
//! Everything is synthetic and deterministic: identifiers and event data come from
//! `throughcare-synthetic` (NOMIS numbers unique per person index, NHS numbers in the 999
//! range passing Modulus 11); no names or free text are generated.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use throughcare_events::{validate_event, Event, Identifier};
use throughcare_ledger::{AppendRequest, EmbeddedLog, EventLog, ExpectedVersion, NewEvent};
use throughcare_synthetic::{cloudevent, data, rfc3339, with_person};

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

/// The synthetic identifiers of person `n`: ledger id (`series` keeps runs apart), NOMIS
/// and NHS number, all from `throughcare-synthetic` (distinct for every `n` below
/// [`throughcare_synthetic::NHS_SEEDS`]).
pub use throughcare_synthetic::{nhs_number as nhs, nomis, person_id};

fn day(base: NaiveDate, days: i64) -> String {
    (base + Duration::days(days)).format("%Y-%m-%d").to_string()
}

fn envelope(id: String, kind: &str, time: DateTime<Utc>, data: Value, person: &Value) -> Value {
    cloudevent(
        SOURCE,
        &id,
        kind,
        &rfc3339(time),
        with_person(data, person.clone()),
    )
}

/// The ten CloudEvents of synthetic person `n`'s journey, in an order the case state
/// machine accepts: referred, accepted, allocated, consent, assessed, planned, release
/// date, released, met at the gate, signposted. `tag` keeps event ids of different runs
/// apart. The first names the person by NOMIS and NHS number, the rest by NOMIS only.
pub fn journey(tag: &str, n: u64, now: DateTime<Utc>) -> Vec<Value> {
    let first = throughcare_synthetic::person(n);
    let by_nomis = json!({ "nomis": nomis(n) });
    let prison = PRISONS[(n % 5) as usize];
    let referral = format!("REF-{tag}-{n}");
    // Journeys start 30..130 days ago, one event a day.
    let start = now - Duration::days(30 + (n % 100) as i64);
    let base = start.date_naive();
    let need = NEEDS[(n % 4) as usize];
    let service = SERVICES[(n % 5) as usize];
    let release = day(base, 7);
    let mut referred = data::referral_received(&referral, "PRISON_HEALTHCARE", prison);
    referred["referrer"]["org"] = json!("Synthetic Healthcare Team");
    referred["expected_release_date"] = json!(release);
    let mut released = data::prisoner_released(prison, "RELEASED");
    released["local_authority"] = json!("Hampshire");
    let steps = [
        (0, "referral.received", referred),
        (1, "referral.accepted", data::referral_accepted(&referral)),
        (
            1,
            "case.allocated",
            data::case_allocated(&format!("W-{:04}", n % 997)),
        ),
        (2, "consent.given", data::consent_given("ENGAGE", None)),
        (
            3,
            "assessment.completed",
            data::assessment_completed(
                "PRE_RELEASE",
                &[(need, LEVELS[(n % 3) as usize]), ("HEALTH", "LOW")],
            ),
        ),
        (
            4,
            "plan.agreed",
            data::plan_agreed(
                &[
                    (need, service, &day(base, 20)),
                    ("HEALTH", "GP", &day(base, 14)),
                ],
                Some(&day(base, 30)),
            ),
        ),
        (
            5,
            "release_date.set",
            data::release_date_set(&release, "CONFIRMED"),
        ),
        (7, "prisoner.released", released),
        (7, "contact.made", data::contact_made("GATE", "MET")),
        (
            8,
            "signposting.made",
            data::signposting_made(&format!("SP-{tag}-{n}"), service),
        ),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(k, (days, kind, data))| {
            // The first event names the person by NOMIS and NHS number, the rest by NOMIS.
            let person = if k == 0 { &first } else { &by_nomis };
            envelope(
                format!("{tag}-{n}-{k}"),
                kind,
                start + Duration::days(days),
                data,
                person,
            )
        })
        .collect()
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
