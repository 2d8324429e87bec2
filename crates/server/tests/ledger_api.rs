//! The auditor's ledger routes driven in-process over a real embedded ledger, read models
//! and audit tree in a temp dir: checkpoints verify with the verifier key, every entry's
//! `stored` re-hashes to its `hash` and rebuilds the signed root, and inclusion and
//! consistency proofs for several sizes verify with throughcare-tlog's verifiers alone.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{header, StatusCode};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{Principal, Reply, World, AUDITOR, HEALTHCARE_PARTNER, HEALTHCARE_SOURCE};
use throughcare_projector::AuditTree;
use throughcare_server::ledger_api::sign_checkpoint;
use throughcare_server::LedgerAudit;
use throughcare_synthetic::{data, nomis};
use throughcare_tlog::{
    leaf_hash, verify_consistency, verify_inclusion, Checkpoint, Hash, SigningKey, Tree,
    VerifierKey,
};

const PARTNER_SOURCE: &str = HEALTHCARE_SOURCE;
const ORIGIN: &str = "throughcare.test/ledger-api";

const PRINCIPALS: &[Principal] = &[
    HEALTHCARE_PARTNER,
    AUDITOR,
    ("manager", "MANAGER", "prisons = [\"WCI\"]"),
];

/// The shared world with the ledger routes on, and the key that signs its checkpoints.
struct Audited {
    world: World,
    key: SigningKey,
}

impl std::ops::Deref for Audited {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

async fn world() -> Audited {
    let mut world = support::world_of(PRINCIPALS).await;
    let key = SigningKey::from_seed(ORIGIN, [7; 32]).unwrap();
    world.state = world.state.clone().with_ledger_audit(LedgerAudit {
        tree: world.tree.clone(),
        verifier: key.verifier(),
        origin: ORIGIN.to_string(),
    });
    Audited { world, key }
}

impl World {
    async fn call(&self, who: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
        self.request(Some(who), method, uri, &[], body).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("auditor", "GET", uri, None).await
    }

    /// `GET /v1/ledger/proof/<query>`, which must answer 200: the proof and its hashes.
    async fn proof(&self, query: &str) -> (Value, Vec<Hash>) {
        let r = self.get(&format!("/v1/ledger/proof/{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}");
        let proof = r.json();
        let hashes = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(unb64)
            .collect();
        (proof, hashes)
    }

    /// Refers `n` new people; returns the log head after them, once the tree has it.
    async fn refer(&self, first: usize, n: usize) -> u64 {
        let mut head = 0;
        for i in first..first + n {
            let nomis = nomis(i as u64);
            let rid = format!("R-{i}");
            let referral = data::referral_received(&rid, "PRISON_HEALTHCARE", "WCI");
            let event = support::event(
                Some(PARTNER_SOURCE),
                &format!("ref-{i}"),
                "referral.received",
                &nomis,
                "2026-11-20T09:30:00Z",
                referral,
            );
            let r = self
                .call("partner", "POST", "/v1/events", Some(event))
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
            head = r.json()["position"].as_u64().unwrap();
        }
        assert!(self.tree.wait_for(head, Duration::from_secs(10)).await);
        head
    }
}

fn unb64(v: &Value) -> Hash {
    Hash::try_from(BASE64.decode(v.as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn checkpoints_entries_and_proofs_verify_from_outside() {
    let w = world().await;
    // Checkpoints at several sizes (powers of two and not).
    let mut kept: Vec<u64> = Vec::new();
    let mut next = 0;
    for n in [1, 4, 11, 16, 5] {
        let size = w.refer(next, n).await;
        next += n;
        let (signed, _) = sign_checkpoint(&w.tree, &w.key, ORIGIN).await.unwrap();
        assert_eq!(signed, size);
        kept.push(size);
    }
    assert_eq!(kept, [1, 5, 16, 32, 37]);

    // The verifier key, as served, opens the latest checkpoint.
    let r = w.get("/v1/ledger/key").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.header(header::CONTENT_TYPE).starts_with("text/plain"),
        "{}",
        r.header(header::CONTENT_TYPE)
    );
    let verifier = VerifierKey::parse(&r.text()).unwrap();
    assert_eq!(verifier, w.key.verifier());
    let r = w.get("/v1/ledger/checkpoint").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header(header::CONTENT_TYPE).starts_with("text/plain"));
    let latest = verifier.open(&r.text()).unwrap();
    assert_eq!((latest.origin.as_str(), latest.size), (ORIGIN, 37));
    // A tampered note does not open.
    let forged = r.text().replacen("\n37\n", "\n36\n", 1);
    assert!(verifier.open(&forged).is_err());

    // Every kept checkpoint by size; the others are 404 problems.
    let mut roots: HashMap<u64, Hash> = HashMap::new();
    for &size in &kept {
        let r = w.get(&format!("/v1/ledger/checkpoint?size={size}")).await;
        assert_eq!(r.status, StatusCode::OK, "size {size}");
        let c: Checkpoint = verifier.open(&r.text()).unwrap();
        assert_eq!(c.size, size);
        roots.insert(size, c.root);
    }
    let r = w.get("/v1/ledger/checkpoint?size=17").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r
        .header(header::CONTENT_TYPE)
        .starts_with("application/problem+json"));
    assert_eq!(
        w.get("/v1/ledger/checkpoint?size=x").await.status,
        StatusCode::BAD_REQUEST
    );

    // Entries: stored re-hashes to hash, and the leaves rebuild every signed root.
    let r = w.get("/v1/ledger/entries?from=1&limit=1000").await;
    assert_eq!(r.status, StatusCode::OK);
    let entries = r.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 37);
    let mut tree = Tree::new();
    let mut leaves = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["position"].as_u64().unwrap(), i as u64 + 1);
        let stored = e["stored"].as_str().unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(stored.as_bytes())),
            e["hash"].as_str().unwrap()
        );
        // The stored bytes are RFC 8785 canonical JSON of the four members.
        let body: Value = serde_json::from_str(stored).unwrap();
        assert_eq!(
            throughcare_tlog::canonical_json(&body),
            stored.as_bytes(),
            "position {} is not JCS",
            i + 1
        );
        assert_eq!(body["person_id"], e["person_id"]);
        tree.append(stored.as_bytes());
        leaves.push(leaf_hash(stored.as_bytes()));
        if let Some(root) = roots.get(&tree.size()) {
            assert_eq!(tree.root(), *root, "root at size {}", tree.size());
        }
    }
    let page = w.get("/v1/ledger/entries?from=30&limit=5").await.json();
    let positions: Vec<u64> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [30, 31, 32, 33, 34]);
    for bad in ["from=0", "limit=0", "limit=1001", "from=x"] {
        let r = w.get(&format!("/v1/ledger/entries?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Inclusion proofs of every position in every kept size, and in the default (latest).
    for &size in &kept {
        for p in 1..=size {
            let (proof, hashes) = w
                .proof(&format!("inclusion?position={p}&size={size}"))
                .await;
            assert_eq!(proof["leaf_index"], p - 1);
            assert_eq!(proof["tree_size"], size);
            verify_inclusion(&leaves[p as usize - 1], p - 1, size, &hashes, &roots[&size])
                .unwrap_or_else(|e| panic!("position {p} in size {size}: {e}"));
        }
    }
    let proof = w.get("/v1/ledger/proof/inclusion?position=3").await.json();
    assert_eq!(proof["tree_size"], 37);
    for (query, status) in [
        ("position=0&size=5", StatusCode::BAD_REQUEST),
        ("position=6&size=5", StatusCode::BAD_REQUEST),
        ("position=1&size=38", StatusCode::NOT_FOUND),
        ("size=5", StatusCode::BAD_REQUEST),
    ] {
        let r = w.get(&format!("/v1/ledger/proof/inclusion?{query}")).await;
        assert_eq!(r.status, status, "{query}");
        assert!(r
            .header(header::CONTENT_TYPE)
            .starts_with("application/problem+json"));
    }

    // Consistency proofs between every pair of kept sizes (and from the empty tree).
    for &first in &kept {
        for &second in kept.iter().filter(|&&s| s >= first) {
            let (proof, hashes) = w
                .proof(&format!("consistency?from={first}&to={second}"))
                .await;
            assert_eq!(
                (proof["first"].as_u64(), proof["second"].as_u64()),
                (Some(first), Some(second))
            );
            verify_consistency(first, second, &roots[&first], &roots[&second], &hashes)
                .unwrap_or_else(|e| panic!("{first} -> {second}: {e}"));
        }
    }
    let proof = w
        .get("/v1/ledger/proof/consistency?from=0&to=16")
        .await
        .json();
    assert_eq!(proof["hashes"], json!([]));
    let proof = w.get("/v1/ledger/proof/consistency?from=5").await.json();
    assert_eq!(proof["second"], 37);
    for (query, status) in [
        ("from=16&to=5", StatusCode::BAD_REQUEST),
        ("from=5&to=38", StatusCode::NOT_FOUND),
        ("to=5", StatusCode::BAD_REQUEST),
    ] {
        let r = w
            .get(&format!("/v1/ledger/proof/consistency?{query}"))
            .await;
        assert_eq!(r.status, status, "{query}");
    }

    // The person's events carry the same stored bytes.
    let person = entries[3]["person_id"].as_str().unwrap();
    let r = w.get(&format!("/v1/people/{person}/events")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let events = r.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["stored"], entries[3]["stored"]);
    assert_eq!(events[0]["hash"], entries[3]["hash"]);
}

#[tokio::test]
async fn only_auditors_reach_the_ledger_routes() {
    let w = world().await;
    w.refer(0, 2).await;
    sign_checkpoint(&w.tree, &w.key, ORIGIN).await.unwrap();
    for uri in [
        "/v1/ledger/checkpoint",
        "/v1/ledger/key",
        "/v1/ledger/entries",
        "/v1/ledger/proof/inclusion?position=1&size=2",
        "/v1/ledger/proof/consistency?from=1&to=2",
    ] {
        for who in ["partner", "manager"] {
            let r = w.call(who, "GET", uri, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} {uri}");
        }
        assert_eq!(w.get(uri).await.status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn the_tree_resumes_from_its_stored_nodes() {
    use futures::StreamExt as _;
    let w = world().await;
    let head = w.refer(0, 13).await;
    let events: Vec<_> = w
        .state
        .ledger
        .log()
        .read_all(1)
        .map(|e| e.unwrap())
        .collect()
        .await;
    let dir = tempfile::tempdir().unwrap();
    {
        let (tree, mut follower) = AuditTree::open_dir(dir.path()).unwrap();
        assert_eq!(tree.root_at(0).unwrap(), throughcare_tlog::empty_root());
        follower.apply(&events[..6]).unwrap();
        // Already-appended events are skipped; a gap is refused.
        follower.apply(&events[..6]).unwrap();
        assert!(follower.apply(&events[7..]).is_err());
        assert_eq!(tree.size(), 6);
    }
    let (tree, mut follower) = AuditTree::open_dir(dir.path()).unwrap();
    assert_eq!(tree.size(), 6);
    assert_eq!(tree.root_at(6).unwrap(), w.tree.root_at(6).unwrap());
    follower.apply(&events[4..]).unwrap();
    assert_eq!(tree.size(), head);
    assert_eq!(tree.root_at(head).unwrap(), w.tree.root_at(head).unwrap());
    assert!(tree.root_at(head + 1).is_err());
}
