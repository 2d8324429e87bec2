//! `serve --demo`: seeds the synthetic population of throughcare-demo through the ledger's
//! write path (validation, identity, decide, append), as a partner would, with progress
//! in the log. Idempotent: the population is anchored on the day it was first seeded, so a
//! re-run submits the same CloudEvents and records nothing new.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use anyhow::Result;
use chrono::NaiveDate;
use futures::StreamExt;
use throughcare_events::{validate_event, Identifier, Nomis};
use throughcare_ledger::{Error, Ledger};

/// The seed of the demo population (fixed, so every demo shows the same people).
pub const SEED: u64 = 20_261_128;

/// What a seeding run did.
#[derive(Debug, Default)]
pub struct Seeded {
    pub recorded: u64,
    pub already: u64,
    pub refused: u64,
    pub seconds: f64,
}

/// The day the demo was first seeded on this ledger, or today for a new one.
async fn anchor(ledger: &Ledger) -> Result<NaiveDate> {
    let today = ledger.now().date_naive();
    let first =
        Identifier::Nomis(Nomis::parse(&throughcare_demo::nomis(0)).map_err(anyhow::Error::msg)?);
    let Some(person) = ledger.log().lookup_identifier(&first).await? else {
        return Ok(today);
    };
    let history = ledger.history(person).await?;
    let day = history.iter().find_map(|e| {
        e.event
            .id
            .strip_prefix("demo-")
            .and_then(|rest| rest.get(..10))
            .and_then(|d| d.parse().ok())
    });
    Ok(day.unwrap_or(today))
}

/// Seeds `people` persons; logs progress every tenth.
pub async fn seed(ledger: &Ledger, people: u64) -> Result<Seeded> {
    let started = Instant::now();
    let anchor = anchor(ledger).await?;
    let now = ledger.now();
    tracing::info!(people, %anchor, "demo: seeding a synthetic population through the write path");
    let scripts = throughcare_demo::population(SEED, people, anchor, now);
    let (recorded, already, refused, done) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let step = (people / 10).max(1);
    futures::stream::iter(scripts)
        .for_each_concurrent(32, |script| {
            let (recorded, already, refused, done) = (&recorded, &already, &refused, &done);
            async move {
                for value in script.events {
                    let event = match validate_event(&value, now) {
                        Ok(e) => e,
                        Err(problems) => {
                            tracing::error!(?problems, id = %value["id"], "demo: generated an invalid event");
                            refused.fetch_add(1, Relaxed);
                            continue;
                        }
                    };
                    match ledger.submit(event).await {
                        Ok(r) if r.duplicate => already.fetch_add(1, Relaxed),
                        Ok(_) => recorded.fetch_add(1, Relaxed),
                        Err(Error::Refused(why)) => {
                            tracing::warn!(id = %value["id"], %why, "demo: an event was refused");
                            refused.fetch_add(1, Relaxed)
                        }
                        Err(e) => {
                            tracing::error!(id = %value["id"], error = %e, "demo: submit failed");
                            refused.fetch_add(1, Relaxed)
                        }
                    };
                }
                let n = done.fetch_add(1, Relaxed) + 1;
                if n % step == 0 || n == people {
                    tracing::info!(
                        "demo: {n}/{people} people, {} events recorded, {} already present",
                        recorded.load(Relaxed),
                        already.load(Relaxed)
                    );
                }
            }
        })
        .await;
    let seeded = Seeded {
        recorded: recorded.into_inner(),
        already: already.into_inner(),
        refused: refused.into_inner(),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        people,
        recorded = seeded.recorded,
        already = seeded.already,
        refused = seeded.refused,
        seconds = format!("{:.1}", seeded.seconds),
        "demo: seeded"
    );
    Ok(seeded)
}
