//! A burst of concurrent appends that survives faults: writers that retry each event
//! until it is acknowledged (as partners do), and the check that every acknowledged event
//! is in the log exactly once, where it was acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use throughcare_events::{verify_chain, PersonId, RecordedEvent};
use throughcare_ledger::{Error, EventLog, ExpectedVersion};
use throughcare_nats::JetStreamLog;

use super::{person, release_date, request};

#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub person: PersonId,
    pub position: u64,
}

#[derive(Default)]
pub struct Tally {
    pub acks: Mutex<HashMap<String, Ack>>,
    /// Appends that failed and were retried by the writer, as a partner would.
    pub failed_attempts: AtomicU64,
    /// Acks reporting `duplicate: true` (a retry whose first attempt had been stored).
    pub duplicate_acks: AtomicU64,
}

impl Tally {
    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }
}

/// Writers appending events for their own persons until stopped.
pub struct Burst {
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Burst {
    pub fn start(log: &JetStreamLog, writers: u64, persons_per_writer: u64) -> Burst {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..writers)
            .map(|w| {
                tokio::spawn(writer(
                    log.clone(),
                    w,
                    persons_per_writer,
                    tally.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Burst { tally, stop, tasks }
    }

    pub fn acked(&self) -> usize {
        self.tally.acked()
    }

    /// Waits until `more` further events are acknowledged.
    pub async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.acked() + more;
        let start = Instant::now();
        while self.acked() < target {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{what}: only {} acks after 2 minutes (waiting for {target})",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the writers (each finishes the event it is on) and returns the acks.
    pub async fn stop(self) -> HashMap<String, Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("writer");
        }
        let acks = self.tally.acks.lock().unwrap().clone();
        acks
    }
}

/// Writer `w`: one event at a time for its own persons, and every fourth round an atomic
/// batch (`append_all`) of two events for one person and one for the next, so faults also
/// land on batches: each batch is retried whole until acknowledged.
async fn writer(log: JetStreamLog, w: u64, persons: u64, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut versions: HashMap<PersonId, u64> = HashMap::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let p = person(w * 100 + i % persons);
        let q = person(w * 100 + (i + 1) % persons);
        let id = |k: &str| format!("burst-{w}-{i}{k}");
        // (person, event ids) of each request of this round's append.
        let shape: Vec<(PersonId, Vec<String>)> = if i % 4 == 3 && p != q {
            vec![(p, vec![id("a"), id("b")]), (q, vec![id("c")])]
        } else {
            vec![(p, vec![id("")])]
        };
        loop {
            let requests: Vec<_> = shape
                .iter()
                .map(|(who, ids)| {
                    let version = versions.get(who).copied().unwrap_or(0);
                    let events: Vec<_> = ids
                        .iter()
                        .map(|e| release_date(e, "A9999BC", i as u32))
                        .collect();
                    request(*who, ExpectedVersion::from_version(version), &events)
                })
                .collect();
            let outcome = if requests.len() == 1 {
                let one = requests.into_iter().next().expect("one request");
                log.append(one).await.map(|out| vec![out])
            } else {
                log.append_all(requests).await
            };
            match outcome {
                Ok(out) => {
                    for ((who, ids), appended) in shape.iter().zip(&out) {
                        assert_eq!(ids.len(), appended.len(), "one receipt per event");
                        for (e, a) in ids.iter().zip(appended) {
                            if a.duplicate {
                                tally.duplicate_acks.fetch_add(1, Ordering::Relaxed);
                            }
                            versions.insert(*who, a.position);
                            let prior = tally.acks.lock().unwrap().insert(
                                e.clone(),
                                Ack {
                                    person: a.person,
                                    position: a.position,
                                },
                            );
                            assert!(prior.is_none(), "{e} acknowledged twice");
                        }
                    }
                    break;
                }
                Err(Error::Conflict { person, actual, .. }) => {
                    // Only this writer writes its persons: a conflict can only mean that
                    // an earlier attempt was stored after all; the retry will find it.
                    tally.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    versions.insert(person, actual);
                }
                Err(Error::Unavailable(why)) => {
                    tally.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{}: unavailable, retrying: {why}", id(""));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{}: unexpected error {e}", id("")),
            }
        }
        i += 1;
    }
}

/// What the log holds compared with what was acknowledged.
#[derive(Debug)]
pub struct Report {
    pub acked: usize,
    pub found: usize,
    pub duplicated: usize,
    pub missing: usize,
    pub misplaced: usize,
    pub unacked: usize,
    pub head: u64,
}

/// Where each event id stands in `all` (more than one position: recorded twice).
pub fn positions_by_id(all: &[RecordedEvent]) -> HashMap<&str, Vec<u64>> {
    let mut found: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in all {
        found
            .entry(e.event.id.as_str())
            .or_default()
            .push(e.position);
    }
    found
}

/// `all` (a whole log read from 1) has the positions 1, 2, ... with no gap.
pub fn assert_contiguous(all: &[RecordedEvent], what: &str) {
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "{what}"
    );
}

/// Reads the whole log back and checks it against `acks`: every acknowledged event once
/// at its position, nothing twice, nothing unacknowledged (writers retry until acked),
/// contiguous positions, and each person's history exactly its events with a valid chain.
pub async fn check(log: &JetStreamLog, acks: &HashMap<String, Ack>) -> Report {
    let all: Vec<_> = log
        .read_all(1)
        .try_collect()
        .await
        .expect("read_all after the faults");
    let found = positions_by_id(&all);
    let report = Report {
        acked: acks.len(),
        found: found.len(),
        duplicated: found.values().filter(|p| p.len() > 1).count(),
        missing: acks
            .keys()
            .filter(|id| !found.contains_key(id.as_str()))
            .count(),
        misplaced: acks
            .iter()
            .filter(|(id, a)| found.get(id.as_str()).is_some_and(|p| p != &[a.position]))
            .count(),
        unacked: found.keys().filter(|id| !acks.contains_key(**id)).count(),
        head: log.head().await.expect("head"),
    };
    eprintln!("{report:?}");
    assert_eq!(report.duplicated, 0, "no event is recorded twice");
    assert_eq!(report.missing, 0, "no acknowledged event is lost");
    assert_eq!(
        report.misplaced, 0,
        "each event is where it was acknowledged"
    );
    assert_eq!(report.unacked, 0, "nothing stored was left unacknowledged");
    assert_contiguous(&all, "positions are contiguous");
    assert_eq!(report.head, all.len() as u64);

    let mut per_person: BTreeMap<PersonId, usize> = BTreeMap::new();
    for a in acks.values() {
        *per_person.entry(a.person).or_default() += 1;
    }
    for (p, count) in per_person {
        let history = log.read_person(p, 1).await.expect("read_person");
        assert_eq!(history.len(), count, "history of {p}");
        verify_chain(p, &history).unwrap_or_else(|b| panic!("chain of {p} broken: {b:?}"));
    }
    report
}
