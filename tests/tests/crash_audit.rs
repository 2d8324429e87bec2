//! Crash test of the audit tree: the real binary appending under load is killed with
//! SIGKILL; after a restart the signed tree head equals a from-scratch computation over
//! `/v1/ledger/entries`, and every acknowledged event has an inclusion proof that verifies
//! against the latest checkpoint with the verifier key alone.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{event, nhs_number, nomis, Client, Server};
use throughcare_tlog::{leaf_hash, verify_inclusion, Hash, Tree, VerifierKey};

/// Refers new people until the server stops answering; returns the acknowledged positions.
async fn writer(c: Client, task: u64, acks: Arc<Mutex<Vec<u64>>>) {
    let time = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    for n in 0.. {
        let seed = 50_000 + task * 1000 + n;
        let who = json!({"nomis": nomis(seed), "nhs_number": nhs_number(seed)});
        let e = event(
            "referral.received",
            &format!("audit-t{task}-p{n}"),
            &time,
            json!({"person": who, "referral_id": format!("R-{seed}"),
                   "referrer": {"kind": "PRISON_STAFF"}, "prison": "SPI",
                   "vulnerabilities": ["COMMUNICATION"]}),
        );
        let r = match tokio::time::timeout(Duration::from_secs(5), c.try_post(&e)).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        assert_eq!(r.0, 201, "unexpected reply under load: {}", r.1);
        acks.lock().unwrap().push(r.1["position"].as_u64().unwrap());
    }
}

fn text(v: &Value) -> String {
    v.as_str().expect("a text/plain body").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_sigkill_every_acknowledged_event_is_provable() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let c = Client::new(&server.url);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|t| tokio::spawn(writer(c.clone(), t, acks.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
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
