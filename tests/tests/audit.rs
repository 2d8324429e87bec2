//! `throughcare audit verify` and `audit replay` through the real binary.
//!
//! The verifier is checked against a fake ledger server written here from DESIGN.md
//! "Audit" alone (entries, signed checkpoints, consistency proofs, signed with
//! `throughcare-tlog`), which can serve altered histories that a real store would never
//! produce on its own: a flipped byte with and without a recomputed hash, a dropped last
//! event, two events swapped, and a rewritten history whose new tree is internally
//! consistent and signed with the same key. Then against the real server: seeded through
//! the write path, verified, tampered in its sled files, and replayed as of a time.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::tamper::{copy_dir, flip_marker, flip_stored, key_log, swap, tamper};
use support::{binary, event, keygen, nhs_number, nomis, stderr, Client, Server};
use throughcare_tlog::{
    canonical_json, consistency_proof, Checkpoint, MemoryStore, SigningKey, Tree,
};

const ORIGIN: &str = "throughcare.test/audit";

fn signing_key() -> SigningKey {
    SigningKey::from_seed("audit-test", [7; 32]).unwrap()
}

/// One served entry: its position, person and stored bytes; `hash` as served.
#[derive(Clone, Debug)]
struct Served {
    position: u64,
    person_id: String,
    stored: String,
    hash: String,
}

/// A well-formed history: `people` persons with `per_person` events each, interleaved,
/// every chain linked, stored as JCS. Event `k` of person `p` carries the unique
/// referral id `R-AUDIT-<p>-<k>`.
fn history(people: usize, per_person: usize, variant: &str) -> Vec<Served> {
    let persons: Vec<String> = (0..people)
        .map(|p| ulid::Ulid::from_parts(1_700_000_000_000 + p as u64, p as u128).to_string())
        .collect();
    let mut heads: HashMap<usize, String> = HashMap::new();
    let mut out = Vec::new();
    for k in 0..per_person {
        for (p, person) in persons.iter().enumerate() {
            let position = out.len() as u64 + 1;
            let prev = heads.get(&p).cloned().unwrap_or_else(|| "0".repeat(64));
            let body = json!({
                "person_id": person,
                "recorded_at": format!("2025-01-01T00:{:02}:{:02}.000000Z", position / 60 % 60, position % 60),
                "prev": prev,
                "event": {
                    "id": format!("e-{variant}-{p}-{k}"),
                    "type": "throughcare.referral.received.v1",
                    "data": {"referral_id": format!("R-AUDIT-{p}-{k}"), "note": variant},
                },
            });
            let stored = String::from_utf8(canonical_json(&body)).unwrap();
            let hash = hex::encode(Sha256::digest(stored.as_bytes()));
            heads.insert(p, hash.clone());
            out.push(Served {
                position,
                person_id: person.clone(),
                stored,
                hash,
            });
        }
    }
    out
}

/// The tree (nodes for proofs) and signed checkpoint of the first `size` entries.
fn signed(entries: &[Served], size: u64) -> (MemoryStore, String) {
    let mut tree = Tree::new();
    let mut store = MemoryStore::new();
    for e in &entries[..size as usize] {
        store.insert(&tree.append(e.stored.as_bytes()));
    }
    let note = signing_key()
        .sign(&Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: tree.root(),
        })
        .unwrap();
    (store, note)
}

/// What the fake server answers: the entries as served, the signed checkpoint, and the
/// node store its consistency proofs come from (the honest tree, or a rewritten one).
struct Fake {
    entries: Vec<Served>,
    checkpoint: String,
    nodes: MemoryStore,
}

async fn checkpoint(State(f): State<Arc<Fake>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        f.checkpoint.clone(),
    )
        .into_response()
}

async fn key(State(_): State<Arc<Fake>>) -> String {
    format!("{}\n", signing_key().verifier())
}

async fn entries(State(f): State<Arc<Fake>>, Query(q): Query<HashMap<String, u64>>) -> Response {
    let (from, limit) = (
        q.get("from").copied().unwrap_or(1),
        q.get("limit").copied().unwrap_or(100),
    );
    if limit > 1000 || from == 0 {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let page: Vec<Value> = f
        .entries
        .iter()
        .skip(from as usize - 1)
        .take(limit as usize)
        .map(|e| json!({"position": e.position, "person_id": e.person_id, "hash": e.hash, "stored": e.stored}))
        .collect();
    Json(json!({ "entries": page })).into_response()
}

async fn consistency(
    State(f): State<Arc<Fake>>,
    Query(q): Query<HashMap<String, u64>>,
) -> Response {
    let (Some(&from), Some(&to)) = (q.get("from"), q.get("to")) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match consistency_proof(&f.nodes, from, to) {
        Ok(p) => Json(json!({
            "first": from,
            "second": to,
            "hashes": p.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Serves `fake` on a loopback port; returns its base URL.
async fn serve(fake: Fake) -> String {
    let app = Router::new()
        .route("/v1/ledger/checkpoint", get(checkpoint))
        .route("/v1/ledger/key", get(key))
        .route("/v1/ledger/entries", get(entries))
        .route("/v1/ledger/proof/consistency", get(consistency))
        .with_state(Arc::new(fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// An honest server over `entries` (its latest checkpoint covers all of them).
async fn honest(entries: Vec<Served>) -> String {
    let (nodes, checkpoint) = signed(&entries, entries.len() as u64);
    serve(Fake {
        entries,
        checkpoint,
        nodes,
    })
    .await
}

async fn audit(args: &[&str]) -> Output {
    let bin = binary().to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::process::Command::new(bin)
        .arg("audit")
        .args(&args)
        .env("RUST_LOG", "warn")
        .env_remove("THROUGHCARE_TOKEN")
        .output()
        .await
        .expect("run throughcare audit")
}

async fn verify(url: &str, extra: &[&str]) -> Output {
    let vkey = signing_key().verifier().to_string();
    let mut args = vec!["verify", "--url", url, "--key", &vkey];
    args.extend_from_slice(extra);
    audit(&args).await
}

/// Asserts a failed run whose one error line names `position`.
fn assert_fails_at(o: &Output, position: u64) -> String {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "verify passed; stdout {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected on stderr: {err}");
    assert!(
        lines[0].contains(&format!("position {position}:")),
        "expected position {position} in: {err}"
    );
    err
}

/// Flips one byte inside the referral id of the stored bytes, keeping JSON valid.
fn flip(stored: &str) -> String {
    let at = stored.find("R-AUDIT-").unwrap();
    let mut bytes = stored.as_bytes().to_vec();
    bytes[at] ^= 0x20; // 'R' -> 'r'
    String::from_utf8(bytes).unwrap()
}

/// [`flip`] with the served hash recomputed, as a careful forger would.
fn reforge(e: &mut Served) {
    e.stored = flip(&e.stored);
    e.hash = hex::encode(Sha256::digest(e.stored.as_bytes()));
}

/// `good` with the entries at indexes `i` and `j` swapped but each position kept.
fn swapped_in_place(good: &[Served], i: usize, j: usize) -> Vec<Served> {
    let mut bad = good.to_vec();
    bad.swap(i, j);
    (bad[i].position, bad[j].position) = (good[i].position, good[j].position);
    bad
}

/// Serves `entries` in place of the honest log `good`, whose signed checkpoint and tree
/// still stand; runs `audit verify`, expects it to name `position`; its error line.
async fn verify_forged(good: &[Served], entries: Vec<Served>, position: u64) -> String {
    let (nodes, checkpoint) = signed(good, good.len() as u64);
    let url = serve(Fake {
        entries,
        checkpoint,
        nodes,
    })
    .await;
    assert_fails_at(&verify(&url, &[]).await, position)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_honest_log_verifies() {
    // 7 people x 300 events: 2,100 entries, three pages.
    let url = honest(history(7, 300, "a")).await;
    let o = verify(&url, &[]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{out}", stderr(&o));
    assert!(out.contains("size 2100"), "{out}");
    assert!(out.contains("persons 7"), "{out}");
    assert!(out.contains("events/s"), "{out}");

    // The key may also be given as a file.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("ledger.vkey");
    std::fs::write(&key_file, format!("{}\n", signing_key().verifier())).unwrap();
    let o = audit(&["verify", "--url", &url, "--key", key_file.to_str().unwrap()]).await;
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_signed_by_another_key_is_refused() {
    let url = honest(history(2, 3, "a")).await;
    let other = SigningKey::from_seed("audit-test", [8; 32])
        .unwrap()
        .verifier()
        .to_string();
    let o = audit(&["verify", "--url", &url, "--key", &other]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_byte_is_named() {
    let good = history(3, 5, "a");

    // The stored bytes changed, the served hash is the old one.
    let mut bad = good.clone();
    bad[6].stored = flip(&bad[6].stored);
    let err = verify_forged(&good, bad, 7).await;
    assert!(err.contains("SHA-256"), "{err}");

    // The hash recomputed too (a careful forger): the chain and the tree still name it.
    let mut bad = good.clone();
    reforge(&mut bad[6]);
    let err = verify_forged(&good, bad, 7).await;
    assert!(err.contains("signed checkpoint"), "{err}");

    // The last event of a person (no later link names it): only the tree catches it.
    let last = good.len() - 1;
    let mut bad = good.clone();
    reforge(&mut bad[last]);
    verify_forged(&good, bad, good.len() as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_last_event_is_named() {
    let good = history(3, 5, "a");
    let mut bad = good.clone();
    bad.pop();
    let err = verify_forged(&good, bad, good.len() as u64).await;
    assert!(err.contains("missing"), "{err}");

    // A server that also signs the shorter log: only an earlier checkpoint shows it.
    let dir = tempfile::tempdir().unwrap();
    let earlier = dir.path().join("checkpoint");
    std::fs::write(&earlier, signed(&good, good.len() as u64).1).unwrap();
    let mut short = good.clone();
    short.pop();
    let url = honest(short).await;
    let o = verify(&url, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let err = assert_fails_at(
        &verify(&url, &["--since", earlier.to_str().unwrap()]).await,
        good.len() as u64,
    );
    assert!(err.contains("shrank"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_swapped_events_are_named() {
    let good = history(3, 5, "a");

    // Two events of different people swapped, positions kept: chains still link.
    let bad = swapped_in_place(&good, 3, 4);
    let err = verify_forged(&good, bad, 4).await;
    assert!(err.contains("signed checkpoint"), "{err}");

    // Two events of one person swapped: the chain breaks there.
    let bad = swapped_in_place(&good, 0, 3);
    verify_forged(&good, bad, 1).await;

    // Entries served out of order (positions swapped with them).
    let mut bad = good.clone();
    bad.swap(8, 9);
    let err = verify_forged(&good, bad, 9).await;
    assert!(err.contains("out of order"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn since_detects_a_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = dir.path().join("checkpoint-12");
    let original = history(3, 8, "a");
    std::fs::write(&earlier, signed(&original, 12).1).unwrap();

    // The same history grown: consistent.
    let url = honest(original.clone()).await;
    let o = verify(&url, &["--since", earlier.to_str().unwrap()]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("consistent with the earlier checkpoint of size 12"),
        "{out}"
    );

    // A different history (every event's content differs), internally consistent and
    // signed with the same key: it verifies on its own, and --since refuses it.
    let rewritten = history(3, 8, "b");
    let url = honest(rewritten).await;
    let o = verify(&url, &[]).await;
    assert!(
        o.status.success(),
        "the rewritten log is consistent in itself: {}",
        stderr(&o)
    );
    let o = verify(&url, &["--since", earlier.to_str().unwrap()]).await;
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("history was rewritten"), "{err}");
    assert!(err.contains("position 12"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // One event rewritten at position 5 only, the rest kept.
    let mut one = original.clone();
    one[4].stored = flip(&one[4].stored);
    one[4].hash = hex::encode(Sha256::digest(one[4].stored.as_bytes()));
    // Re-link that person's later events so every chain still holds.
    let person = one[4].person_id.clone();
    let mut head = one[4].hash.clone();
    for e in one.iter_mut().skip(5).filter(|e| e.person_id == person) {
        let mut body: Value = serde_json::from_str(&e.stored).unwrap();
        body["prev"] = json!(head);
        e.stored = String::from_utf8(canonical_json(&body)).unwrap();
        e.hash = hex::encode(Sha256::digest(e.stored.as_bytes()));
        head = e.hash.clone();
    }
    let url = honest(one).await;
    assert!(verify(&url, &[]).await.status.success());
    let o = verify(&url, &["--since", earlier.to_str().unwrap()]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("history was rewritten"),
        "{}",
        stderr(&o)
    );

    // A --since file that is not signed by the key is refused before anything else.
    let forged = dir.path().join("forged");
    std::fs::write(
        &forged,
        SigningKey::from_seed("audit-test", [9; 32])
            .unwrap()
            .sign(
                &Checkpoint::parse(&format!("{ORIGIN}\n3\n{}\n", BASE64.encode([0u8; 32])))
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let o = verify(&url, &["--since", forged.to_str().unwrap()]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--since checkpoint"), "{}", stderr(&o));
}

// ---- the real server ----

/// Posts `n` referrals for new people `seed..seed + n`, each carrying the unique referral
/// id `R-MARK-<seed>`, and its acceptance; returns (referral id, referral position).
async fn seed(c: &Client, from: u64, n: u64) -> Vec<(String, u64)> {
    let time = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let mut out = Vec::new();
    for s in from..from + n {
        let who = json!({"nomis": nomis(s), "nhs_number": nhs_number(s)});
        let referral = format!("R-MARK-{s:06}");
        let r = c
            .post(&event(
                "referral.received",
                &format!("audit-{s}-ref"),
                &time,
                json!({"person": who, "referral_id": referral, "referrer": {"kind": "PRISON_STAFF"},
                       "prison": "SPI", "vulnerabilities": []}),
            ))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        out.push((referral.clone(), r.body["position"].as_u64().unwrap()));
        let r = c
            .post(&event(
                "referral.accepted",
                &format!("audit-{s}-acc"),
                &time,
                json!({"person": who, "referral_id": referral}),
            ))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    out
}

/// Restarts the server (a checkpoint covering everything acknowledged before a restart
/// is signed once the tree catches up) and waits for a checkpoint of size `head`.
fn restart(server: &mut Server, key: &Path) -> Server {
    server.kill();
    Server::start_with(&server.data, &["--signing-key", key.to_str().unwrap()])
}

async fn latest_checkpoint(c: &Client, head: u64) -> String {
    for _ in 0..400 {
        let r = c.get("/v1/ledger/checkpoint").await;
        if r.status == 200 {
            let note = r.body.as_str().unwrap_or("").to_string();
            if note.lines().nth(1) == Some(&head.to_string()) {
                return note;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of size {head} was signed");
}

/// Offsets of `needle` in every file under `dir`.
fn find_in_files(dir: &Path, needle: &[u8]) -> Vec<(PathBuf, usize)> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                hits.extend(
                    bytes
                        .windows(needle.len())
                        .enumerate()
                        .filter(|(_, w)| *w == needle)
                        .map(|(i, _)| (p.clone(), i)),
                );
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_real_server_verifies_replays_and_is_caught_when_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (key, vkey) = keygen(dir.path(), "audit-e2e");
    let mut server = Server::start_with(&data, &["--signing-key", key.to_str().unwrap()]);
    let c = Client::new(&server.url);
    let first = seed(&c, 1, 20).await;
    // What the ledger knew between the two batches.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let mut server = restart(&mut server, &key);
    let c = Client::new(&server.url);
    let note = latest_checkpoint(&c, 40).await;
    let o = audit(&["verify", "--url", &server.url, "--key", &vkey]).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{out}", stderr(&o));
    assert!(
        out.contains("size 40") && out.contains("persons 20"),
        "{out}"
    );
    let earlier = dir.path().join("checkpoint-40");
    std::fs::write(&earlier, &note).unwrap();

    // The log grows; the earlier checkpoint is a prefix of the new one.
    seed(&c, 21, 10).await;
    let mut server = restart(&mut server, &key);
    let c = Client::new(&server.url);
    latest_checkpoint(&c, 60).await;
    let since = [
        "verify",
        "--url",
        &server.url,
        "--key",
        &vkey,
        "--since",
        earlier.to_str().unwrap(),
    ];
    let o = audit(&since).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("size 60"));

    // Replay as of the time between the batches: the first 40 events only.
    server.kill();
    let replayed = dir.path().join("replayed");
    let o = audit(&[
        "replay",
        "--as-of",
        &between.to_rfc3339(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        replayed.to_str().unwrap(),
    ])
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let models = throughcare_projector::Projector::open(&replayed.join("readmodels")).unwrap();
    assert_eq!(models.checkpoint(), 40);
    assert_eq!(models.read_models().journeys().count(), 20);
    drop(models);

    // A byte flipped in the sled files: sled's own checksums refuse the file before any
    // auditor could look (so the tampering below goes through sled, as an insider with
    // the files and the format would do it).
    let (marker, position) = first[6].clone();
    let copy = dir.path().join("flipped");
    copy_dir(&data, &copy);
    let hits = find_in_files(&copy.join("ledger"), marker.as_bytes());
    assert!(!hits.is_empty(), "{marker} not found in the sled files");
    for (file, offset) in &hits {
        let mut bytes = std::fs::read(file).unwrap();
        bytes[offset + 2] ^= 0x01; // "R-MARK" -> "R,MARK"
        std::fs::write(file, bytes).unwrap();
    }
    let o = std::process::Command::new(binary())
        .args(["rebuild", "--data"])
        .arg(&copy)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!o.status.success(), "sled opened a log with a flipped byte");
    assert!(stderr(&o).contains("corrupt"), "{}", stderr(&o));

    // One byte of one stored event changed, its stored hash left as it was: the server
    // cannot read it back, and the auditor names the entry it cannot get.
    let original = tamper(&data, |db| flip_stored(db, position, &marker, false));
    let err = verify_real(&data, &key, &vkey, position).await;
    assert!(err.contains("cannot serve"), "{err}");

    // The same byte, with the hash in front of it recomputed: the server serves it, the
    // signed checkpoint does not cover it.
    tamper(&data, |db| {
        let new = flip_marker(&original, &marker, true);
        db.insert(key_log(position), new).unwrap();
    });
    let err = verify_real(&data, &key, &vkey, position).await;
    assert!(err.contains("signed checkpoint"), "{err}");
    tamper(&data, |db| {
        db.insert(key_log(position), original.clone()).unwrap();
    });

    // Two events swapped (positions 3 and 5: referrals of two people).
    let (a, b) = (first[1].1, first[2].1);
    tamper(&data, |db| swap(db, a, b));
    verify_real(&data, &key, &vkey, a).await;
    tamper(&data, |db| swap(db, a, b));
    let server = Server::start_with(&data, &["--signing-key", key.to_str().unwrap()]);
    let o = audit(&since_args(&server.url, &vkey, &earlier)).await;
    assert!(o.status.success(), "restored: {}", stderr(&o));
    drop(server);

    // The last event dropped.
    tamper(&data, |db| {
        db.remove(key_log(60)).unwrap();
    });
    let err = verify_real(&data, &key, &vkey, 60).await;
    eprintln!("dropped the last event: {err}");
}

fn since_args<'a>(url: &'a str, vkey: &'a str, earlier: &'a Path) -> Vec<&'a str> {
    vec![
        "verify",
        "--url",
        url,
        "--key",
        vkey,
        "--since",
        earlier.to_str().unwrap(),
    ]
}

/// Starts the server on the tampered `data`, runs `audit verify`, expects it to name
/// `position`; returns its error line.
async fn verify_real(data: &Path, key: &Path, vkey: &str, position: u64) -> String {
    let server = Server::start_with(data, &["--signing-key", key.to_str().unwrap()]);
    let o = audit(&["verify", "--url", &server.url, "--key", vkey]).await;
    eprintln!("tampered at position {position}: {}", stderr(&o).trim());
    assert_fails_at(&o, position)
}
