//! Crash test: the real binary appending under load is killed with SIGKILL; after a
//! restart every acknowledged position is present exactly once, every chain verifies, and
//! the read models (resumed from their checkpoint) equal a rebuild from scratch.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use support::{binary, event, nhs_number, nomis, Client, Server};

/// One acknowledged append.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    person: String,
    position: u64,
}

/// Submits referral, acceptance, then contact attempts for a series of new people until the
/// server stops answering; records every acknowledgement.
async fn writer(c: Client, task: u64, acks: Arc<Mutex<Vec<Ack>>>) {
    let time = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for n in 0.. {
        let seed = task * 1000 + n;
        let who = json!({"nomis": nomis(seed), "nhs_number": nhs_number(seed)});
        let mut steps = vec![
            event(
                "referral.received",
                &format!("t{task}-p{n}-ref"),
                &time,
                json!({"person": who, "referral_id": format!("R-{seed}"),
                "referrer": {"kind": "PRISON_STAFF"}, "prison": "SPI", "vulnerabilities": ["COMMUNICATION"]}),
            ),
            event(
                "referral.accepted",
                &format!("t{task}-p{n}-acc"),
                &time,
                json!({"person": who, "referral_id": format!("R-{seed}")}),
            ),
        ];
        for k in 0..6 {
            steps.push(event(
                "contact.attempted",
                &format!("t{task}-p{n}-c{k}"),
                &time,
                json!({"person": who, "channel": "PHONE", "outcome": "NO_ANSWER"}),
            ));
        }
        for s in steps {
            let r = match tokio::time::timeout(Duration::from_secs(5), c.try_post(&s)).await {
                Ok(Some(r)) => r,
                _ => return, // the server is gone
            };
            if r.0 != 201 {
                panic!("unexpected reply under load: {} {}", r.0, r.1);
            }
            acks.lock().unwrap().push(Ack {
                id: s["id"].as_str().unwrap().into(),
                person: r.1["person_id"].as_str().unwrap().into(),
                position: r.1["position"].as_u64().unwrap(),
            });
        }
    }
}

async fn journeys(c: &Client, persons: &HashSet<String>, min: u64) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for p in persons {
        let mut j = c
            .get(&format!("/v1/people/{p}/journey?min_position={min}"))
            .await;
        assert_eq!(j.status, 200, "{j:?}");
        j.body.as_object_mut().unwrap().remove("as_of");
        out.insert(p.clone(), j.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let c = Client::new(&server.url);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..16)
        .map(|t| tokio::spawn(writer(c.clone(), t, acks.clone())))
        .collect();
    // Let the load build, then crash the server mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert!(
        acks.len() > 50,
        "too little load before the crash: {} acks",
        acks.len()
    );

    let server = Server::start(dir.path());
    let c = Client::new(&server.url);
    let head = c.get("/readyz").await.body["head"].as_u64().unwrap();
    let max_acked = acks.iter().map(|a| a.position).max().unwrap();
    assert!(
        head >= max_acked,
        "head {head} is behind an acknowledged position {max_acked}"
    );

    // Every acknowledged event is present, once, at its position; every chain verifies.
    let persons: HashSet<String> = acks.iter().map(|a| a.person.clone()).collect();
    let mut stored_positions = HashSet::new();
    let mut found = 0;
    for p in &persons {
        let events = c.get(&format!("/v1/people/{p}/events")).await.body;
        let events = events["events"].as_array().unwrap().clone();
        let mut ids = HashSet::new();
        for e in &events {
            assert!(
                ids.insert(e["event"]["id"].as_str().unwrap().to_string()),
                "event recorded twice for {p}"
            );
            assert!(
                stored_positions.insert(e["position"].as_u64().unwrap()),
                "position used twice"
            );
        }
        for a in acks.iter().filter(|a| &a.person == p) {
            let e = events
                .iter()
                .find(|e| e["position"] == a.position)
                .unwrap_or_else(|| panic!("acknowledged {a:?} is missing"));
            assert_eq!(e["event"]["id"], a.id.as_str());
            found += 1;
        }
        let v = c.get(&format!("/v1/people/{p}/verify")).await.body;
        assert_eq!(v["ok"], true, "chain of {p}: {v}");
    }
    assert_eq!(found, acks.len());
    eprintln!(
        "crash test: {} acknowledged, {found} found, 0 duplicated, head {head}",
        acks.len()
    );

    // Read models resumed after the crash equal a rebuild from scratch.
    let resumed = journeys(&c, &persons, head).await;
    drop(server);
    let status = Command::new(binary())
        .args(["rebuild", "--data"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::start(dir.path());
    let c = Client::new(&server.url);
    let rebuilt = journeys(&c, &persons, head).await;
    assert_eq!(resumed, rebuilt);
}
