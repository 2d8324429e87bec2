//! Crash tests: the real binary appending under load is killed with SIGKILL; after a
//! restart every acknowledged position is present exactly once, every chain verifies, and
//! the read models (resumed from their checkpoint) equal a rebuild from scratch; and the
//! signed tree head equals a from-scratch computation over `/v1/ledger/entries`, with an
//! inclusion proof for every acknowledged event that verifies against the latest
//! checkpoint with the verifier key alone.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{binary, event, nhs_number, nomis, Client, Server};
use throughcare_synthetic::{data, with_person};
use throughcare_tlog::{leaf_hash, verify_inclusion, Hash, Tree, VerifierKey};

/// One acknowledged append.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    person: String,
    position: u64,
}

/// Submits referral, acceptance, then `attempts` contact attempts (every other person's
/// as one batch) for a series of new people (seeds from `base`) until the server stops
/// answering; records every acknowledgement.
async fn writer(c: Client, task: u64, base: u64, attempts: u64, acks: Arc<Mutex<Vec<Ack>>>) {
    let time = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for n in 0.. {
        let seed = base + task * 1000 + n;
        let who = json!({"nomis": nomis(seed), "nhs_number": nhs_number(seed)});
        let rid = format!("R-{seed}");
        let id = |what: &str| format!("b{base}-t{task}-p{n}-{what}");
        let mut steps = vec![
            event(
                "referral.received",
                &id("ref"),
                &time,
                with_person(
                    data::referral_received(&rid, "PRISON_STAFF", "SPI"),
                    who.clone(),
                ),
            ),
            event(
                "referral.accepted",
                &id("acc"),
                &time,
                with_person(data::referral_accepted(&rid), who.clone()),
            ),
        ];
        let contacts: Vec<Value> = (0..attempts)
            .map(|k| {
                let attempt = data::contact_attempted("PHONE", Some("NO_ANSWER"));
                event(
                    "contact.attempted",
                    &id(&format!("c{k}")),
                    &time,
                    with_person(attempt, who.clone()),
                )
            })
            .collect();
        // Every other person's contacts go as one atomic batch, so the kill also lands
        // on batches: all of one is acknowledged, or none of it.
        if n % 2 == 1 && contacts.len() > 1 {
            steps.push(Value::Array(contacts));
        } else {
            steps.extend(contacts);
        }
        for s in steps {
            let r = match tokio::time::timeout(Duration::from_secs(5), c.try_post(&s)).await {
                Ok(Some(r)) => r,
                _ => return, // the server is gone
            };
            if r.0 != 201 {
                panic!("unexpected reply under load: {} {}", r.0, r.1);
            }
            let (sent, receipts) = match &s {
                Value::Array(items) => (items.clone(), r.1["items"].as_array().unwrap().clone()),
                one => (vec![one.clone()], vec![r.1.clone()]),
            };
            assert_eq!(sent.len(), receipts.len(), "one receipt per event: {}", r.1);
            let mut acks = acks.lock().unwrap();
            for (e, receipt) in sent.iter().zip(&receipts) {
                acks.push(Ack {
                    id: e["id"].as_str().unwrap().into(),
                    person: receipt["person_id"].as_str().unwrap().into(),
                    position: receipt["position"].as_u64().unwrap(),
                });
            }
        }
    }
}

/// Starts the binary on `dir`, runs `tasks` writers for 1.5 s, SIGKILLs it mid-stream and
/// returns every acknowledgement it gave.
async fn load_then_sigkill(dir: &Path, tasks: u64, base: u64, attempts: u64) -> Vec<Ack> {
    let mut server = Server::start(dir);
    let c = Client::new(&server.url);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..tasks)
        .map(|t| tokio::spawn(writer(c.clone(), t, base, attempts, acks.clone())))
        .collect();
    // Let the load build, then crash the server mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    acks
}

/// Every person's journey once the read models reach `min`, without the volatile `as_of`.
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
    let acks = load_then_sigkill(dir.path(), 16, 0, 6).await;
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

fn text(v: &Value) -> String {
    v.as_str().expect("a text/plain body").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_sigkill_every_acknowledged_event_is_provable() {
    let dir = tempfile::tempdir().unwrap();
    let acks: Vec<u64> = load_then_sigkill(dir.path(), 8, 50_000, 0)
        .await
        .into_iter()
        .map(|a| a.position)
        .collect();
    assert!(acks.len() > 20, "too little load: {} acks", acks.len());

    let server = Server::start(dir.path());
    let c = Client::new(&server.url);
    let head = c.get("/readyz").await.body["head"].as_u64().unwrap();
    let key = c.get("/v1/ledger/key").await;
    assert_eq!(key.status, 200);
    assert!(key.content_type.starts_with("text/plain"));
    let verifier = VerifierKey::parse(&text(&key.body)).unwrap();

    // On restart a checkpoint is signed as soon as the tree has caught up with the head.
    let started = Instant::now();
    let checkpoint = loop {
        let r = c.get("/v1/ledger/checkpoint").await;
        if r.status == 200 {
            let cp = verifier
                .open(&text(&r.body))
                .expect("the checkpoint verifies");
            if cp.size >= head {
                break cp;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint of the head {head} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(checkpoint.origin.starts_with("throughcare.local/"));

    // The tree head from scratch over the entries equals the signed one.
    let mut tree = Tree::new();
    let mut leaves = Vec::new();
    while tree.size() < checkpoint.size {
        let page = c
            .get(&format!(
                "/v1/ledger/entries?from={}&limit=1000",
                tree.size() + 1
            ))
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let entries = page.body["entries"].as_array().unwrap().clone();
        assert!(!entries.is_empty(), "entries end before the checkpoint");
        for e in entries {
            if tree.size() == checkpoint.size {
                break;
            }
            assert_eq!(e["position"].as_u64().unwrap(), tree.size() + 1);
            let stored = e["stored"].as_str().unwrap().as_bytes();
            assert_eq!(
                hex::encode(Sha256::digest(stored)),
                e["hash"].as_str().unwrap()
            );
            tree.append(stored);
            leaves.push(leaf_hash(stored));
        }
    }
    assert_eq!(
        tree.root(),
        checkpoint.root,
        "the signed root is not the log's"
    );

    // Every acknowledged event has an inclusion proof against the latest checkpoint.
    for &p in &acks {
        let r = c
            .get(&format!(
                "/v1/ledger/proof/inclusion?position={p}&size={}",
                checkpoint.size
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let hashes: Vec<Hash> = r.body["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| Hash::try_from(BASE64.decode(h.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        verify_inclusion(
            &leaves[p as usize - 1],
            p - 1,
            checkpoint.size,
            &hashes,
            &checkpoint.root,
        )
        .unwrap_or_else(|e| panic!("position {p}: {e}"));
    }
    eprintln!(
        "audit crash test: {} acknowledged, all proven in the checkpoint of size {}",
        acks.len(),
        checkpoint.size
    );
}
