//! The subject access export, the HMPPS SAR route, the person page's "verified" badge
//! and the `ledger-corrupt` problem, through the real binary with `--auth` and a signing
//! key made by `throughcare keygen`. The export is checked as an auditor holding only the
//! verifier key would: every `stored` re-hashed, the chain followed, the checkpoint's
//! signature verified and every inclusion proof recomputed with throughcare-tlog. Then the
//! stopped server's sled files are tampered with (one event's bytes changed with its hash
//! recomputed, another's changed without), and the badge, the export and
//! `/v1/ledger/entries` must say so.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::auth::{AuthFile, Caller, Resp, Spec};
use support::tamper::{flip_stored, tamper};
use support::{date_in_days as day, days_from_now, event, keygen, nhs_number, nomis, Server};
use throughcare_tlog::{leaf_hash, verify_inclusion, Hash, VerifierKey};

const SEEDER: &str = "seeder";
const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
const AUDITOR: &str = "ig.auditor";
const WORKER: &str = "jo.worker";
const WORKER_ID: &str = "W-EXP-01";
/// Synthetic probation case reference numbers of persons A and B.
const CRN_A: &str = "E900101";
const CRN_B: &str = "E900102";
/// The referral id of person B's only event: found in the sled files to tamper with it.
const MARK_B: &str = "R-EXPB-000001";
/// The referral id of person A's referral and its acceptance.
const MARK_A: &str = "R-EXPA-000001";

struct World {
    auth: AuthFile,
    key: PathBuf,
    vkey: String,
    data: PathBuf,
    nomis_a: String,
    nomis_b: String,
}

impl World {
    fn start(&self) -> Server {
        Server::start_with(
            &self.data,
            &[
                "--auth",
                self.auth.path_str(),
                "--signing-key",
                self.key.to_str().unwrap(),
            ],
        )
    }
    fn as_(&self, server: &Server, who: &str) -> Caller {
        Caller::bearer(&server.url, &self.auth.token(who))
    }
}

/// Waits until the latest signed checkpoint has `size` entries; returns its note.
async fn checkpoint_of(auditor: &Caller, size: u64) -> String {
    for _ in 0..400 {
        let r = auditor.get("/v1/ledger/checkpoint").await;
        if r.status == 200 && r.text.lines().nth(1) == Some(size.to_string().as_str()) {
            return r.text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no checkpoint of size {size} was signed");
}

fn submitted(r: &Resp) -> (String, u64) {
    assert_eq!(r.status, 201, "{}", r.brief());
    (
        r.body["person_id"].as_str().unwrap().to_string(),
        r.body["position"].as_u64().unwrap(),
    )
}

/// Submits a `kind` event `id` from `days` days from now (negative: ago) as `caller`:
/// (person id, position).
async fn seed(caller: &Caller, kind: &str, id: &str, days: i64, data: Value) -> (String, u64) {
    submitted(
        &caller
            .submit(&event(kind, id, &days_from_now(days), data))
            .await,
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks an export bundle as an outside auditor with only `vkey`; returns the checkpoint
/// size and the positions that are pending.
fn check_bundle(bundle: &Value, person: &str, vkey: &str) -> (u64, Vec<u64>) {
    assert_eq!(bundle["person_id"], person);
    assert_eq!(bundle["verifier_key"], vkey, "the bundle's verifier key");
    let key = VerifierKey::parse(vkey).unwrap();
    let note = bundle["checkpoint"]["note"].as_str().expect("a checkpoint");
    let checkpoint = key
        .open(note)
        .expect("the checkpoint verifies with the key");
    assert_eq!(bundle["checkpoint"]["size"], checkpoint.size);
    assert_eq!(bundle["checkpoint"]["origin"], checkpoint.origin.as_str());
    let events = bundle["events"].as_array().expect("events");
    assert!(!events.is_empty());
    let mut prev = "0".repeat(64);
    let mut last = 0;
    let mut pending = Vec::new();
    for e in events {
        let position = e["position"].as_u64().unwrap();
        assert!(position > last, "positions increase: {e}");
        last = position;
        let stored = e["stored"].as_str().expect("stored");
        assert_eq!(
            e["hash"],
            sha256_hex(stored.as_bytes()),
            "hash of {position}"
        );
        assert_eq!(e["prev"], prev.as_str(), "prev of {position}");
        let body: Value = serde_json::from_str(stored).unwrap();
        assert_eq!(body["person_id"], person);
        assert_eq!(body["prev"], prev.as_str());
        prev = e["hash"].as_str().unwrap().to_string();
        if position <= checkpoint.size {
            assert_eq!(e["pending_checkpoint"], false, "{e}");
            let proof = &e["proof"];
            assert_eq!(proof["leaf_index"], position - 1);
            assert_eq!(proof["tree_size"], checkpoint.size);
            let hashes: Vec<Hash> = proof["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    BASE64
                        .decode(h.as_str().unwrap())
                        .unwrap()
                        .try_into()
                        .unwrap()
                })
                .collect();
            verify_inclusion(
                &leaf_hash(stored.as_bytes()),
                position - 1,
                checkpoint.size,
                &hashes,
                &checkpoint.root,
            )
            .unwrap_or_else(|err| panic!("inclusion of {position}: {err}"));
        } else {
            assert_eq!(e["pending_checkpoint"], true, "{e}");
            assert!(e["proof"].is_null(), "{e}");
            pending.push(position);
        }
    }
    (checkpoint.size, pending)
}

/// An access-log entry with this request id among `entries`.
fn entry<'a>(entries: &'a Value, request_id: &str) -> Option<&'a Value> {
    entries
        .as_array()?
        .iter()
        .find(|e| e["request_id"] == request_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_sar_badge_and_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthFile::write(
        &dir.path().join("auth"),
        &[
            Spec::new(SEEDER, "PARTNER")
                .sources(&[SEED_SOURCE])
                .types(&["throughcare.*"]),
            Spec::new(AUDITOR, "AUDITOR"),
            Spec::new(WORKER, "WORKER").worker_id(WORKER_ID),
        ],
    );
    let (key, vkey) = keygen(dir.path(), "export-e2e");
    let w = World {
        auth,
        key,
        vkey,
        data: dir.path().join("data"),
        nomis_a: nomis(9101),
        nomis_b: nomis(9102),
    };
    let mut server = w.start();
    let seeder = w.as_(&server, SEEDER);
    let a = json!({"nomis": w.nomis_a, "nhs_number": nhs_number(9101), "crn": CRN_A});
    let b = json!({"nomis": w.nomis_b, "nhs_number": nhs_number(9102), "crn": CRN_B});
    // Person A: referred, accepted, allocated to the worker, 30, 20 and 10 days ago.
    let (person_a, first_a) = seed(
        &seeder,
        "referral.received",
        "exp-a-1",
        -30,
        json!({"person": a, "referral_id": MARK_A, "referrer": {"kind": "PRISON_STAFF"},
                       "prison": "WCI", "vulnerabilities": []}),
    )
    .await;
    let (_, accepted_a) = seed(
        &seeder,
        "referral.accepted",
        "exp-a-2",
        -20,
        json!({"person": a, "referral_id": MARK_A}),
    )
    .await;
    seed(
        &seeder,
        "case.allocated",
        "exp-a-3",
        -10,
        json!({"person": a, "worker_id": WORKER_ID, "worker_role": "PEER_SUPPORT"}),
    )
    .await;
    // Person B: one referral, 5 days ago; the last event of the log before the restart.
    let (person_b, position_b) = seed(
        &seeder,
        "referral.received",
        "exp-b-1",
        -5,
        json!({"person": b, "referral_id": MARK_B, "referrer": {"kind": "PRISON_STAFF"},
                       "prison": "BNI", "vulnerabilities": []}),
    )
    .await;
    assert_eq!(first_a, 1);

    // A restart signs a checkpoint of everything acknowledged before it.
    server.kill();
    let mut server = w.start();
    let seeder = w.as_(&server, SEEDER);
    let auditor = w.as_(&server, AUDITOR);
    let worker = w.as_(&server, WORKER);
    checkpoint_of(&auditor, position_b).await;
    // A's next event is later than that checkpoint (the next one is 60 s or 1,000 events
    // away).
    let (_, pending_a) = seed(
        &seeder,
        "contact.attempted",
        "exp-a-4",
        -1,
        json!({"person": a, "channel": "PHONE", "outcome": "NO_ANSWER"}),
    )
    .await;
    // Reads and refusals about A that the export must list.
    let read = worker
        .get(&format!(
            "/v1/people/{person_a}/journey?min_position={pending_a}"
        ))
        .await;
    assert_eq!(read.status, 200, "{}", read.brief());
    let refused = worker.get(&format!("/v1/people/{person_a}/export")).await;
    assert_eq!(
        refused.status,
        403,
        "a worker may not export: {}",
        refused.brief()
    );
    assert!(refused.is_problem());

    // ---- the export, as JSON ----
    let r = auditor.get(&format!("/v1/people/{person_a}/export")).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(r.content_type().starts_with("application/json"));
    let bundle = &r.body;
    let (size, pending) = check_bundle(bundle, &person_a, &w.vkey);
    assert_eq!(
        size, position_b,
        "the proofs are against the latest checkpoint"
    );
    assert_eq!(
        pending,
        vec![pending_a],
        "only A's event after the checkpoint is pending"
    );
    assert_eq!(bundle["events"].as_array().unwrap().len(), 4);
    assert_eq!(bundle["purpose"], "AUDIT");
    assert_eq!(bundle["identifiers"]["nomis"], json!([w.nomis_a]));
    assert_eq!(bundle["identifiers"]["crn"], json!([CRN_A]));
    assert_eq!(bundle["journey"]["person_id"], person_a.as_str());
    assert_eq!(bundle["journey"]["worker"]["worker_id"], WORKER_ID);
    // The same events, hashes and bytes as the auditor's events route serves.
    let served = auditor.get(&format!("/v1/people/{person_a}/events")).await;
    assert_eq!(served.status, 200);
    for (x, y) in bundle["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip(served.body["events"].as_array().unwrap())
    {
        assert_eq!(x["position"], y["position"]);
        assert_eq!(x["stored"], y["stored"]);
    }
    // The access log about A, up to this export; this export's own entry is appended as
    // it is sent, so it is named but not listed.
    let entries = &bundle["access_log"]["entries"];
    let journey_read = entry(entries, &read.request_id().unwrap())
        .unwrap_or_else(|| panic!("the worker's read is not in the bundle: {entries}"));
    assert_eq!(journey_read["what"], "READ_JOURNEY");
    assert_eq!(journey_read["who"], WORKER);
    let denied = entry(entries, &refused.request_id().unwrap()).expect("the refusal is listed");
    assert_eq!(denied["outcome"], "DENIED");
    let this = r.request_id().unwrap();
    assert_eq!(
        bundle["access_log"]["this_export"]["request_id"],
        this.as_str()
    );
    assert_eq!(bundle["access_log"]["this_export"]["included"], false);
    assert!(entry(entries, &this).is_none());
    let log = auditor.get(&format!("/v1/people/{person_a}/access")).await;
    let own = entry(&log.body["entries"], &this).expect("the export is in the access log");
    assert_eq!(own["what"], "EXPORT");
    assert_eq!(own["purpose"], "AUDIT");
    assert_eq!(own["status"], 200);
    assert_eq!(own["person_id"], person_a.as_str());

    // Purposes: SUBJECT_ACCESS is allowed and logged as such; others are a bad request.
    let r = auditor
        .get(&format!(
            "/v1/people/{person_a}/export?purpose=SUBJECT_ACCESS"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert_eq!(r.body["purpose"], "SUBJECT_ACCESS");
    let log = auditor.get(&format!("/v1/people/{person_a}/access")).await;
    let own = entry(&log.body["entries"], &r.request_id().unwrap()).unwrap();
    assert_eq!(own["purpose"], "SUBJECT_ACCESS");
    for bad in [
        "purpose=DIRECT_CARE",
        "purpose=EMERGENCY&reason=x",
        "format=pdf",
    ] {
        let r = auditor
            .get(&format!("/v1/people/{person_a}/export?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.brief());
        assert!(r.is_problem(), "{bad}");
    }
    // Unknown person: the same 404 problem as every person route.
    let nobody = ulid::Ulid::new().to_string();
    let r = auditor.get(&format!("/v1/people/{nobody}/export")).await;
    let j = auditor.get(&format!("/v1/people/{nobody}/journey")).await;
    assert_eq!(r.status, 404, "{}", r.brief());
    assert!(r.is_problem());
    assert_eq!(r.body["detail"], j.body["detail"]);

    // ---- the printable page ----
    let r = auditor
        .get(&format!("/v1/people/{person_a}/export?format=html"))
        .await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(r.content_type().starts_with("text/html"), "{}", r.brief());
    let html = &r.text;
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("@media print"), "print CSS");
    assert!(!html.to_ascii_lowercase().contains("<script"), "no scripts");
    assert!(html.contains(&w.nomis_a) && html.contains(CRN_A));
    assert!(html.contains("not yet in a checkpoint"));
    // The stored bytes are shown escaped: quotes never reach the page raw.
    assert!(html.contains("&quot;person_id&quot;:&quot;"));
    assert!(!html.contains("\"person_id\""));
    assert!(html.contains(&w.vkey));
    assert!(html.contains(MARK_A));

    // ---- the HMPPS SAR route ----
    let sar = |q: &str| {
        let path = format!("/subject-access-request?{q}");
        let auditor = &auditor;
        async move { auditor.get(&path).await }
    };
    let r = sar(&format!("prn={}", w.nomis_a)).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    let content = &r.body["content"];
    assert_eq!(content["person_id"], person_a.as_str());
    assert_eq!(content["events"].as_array().unwrap().len(), 4);
    assert_eq!(
        content["events"][0]["type"],
        "throughcare.referral.received.v1"
    );
    let log = auditor.get(&format!("/v1/people/{person_a}/access")).await;
    let own = entry(&log.body["entries"], &r.request_id().unwrap()).expect("SAR logged");
    assert_eq!(own["what"], "EXPORT");
    assert_eq!(own["purpose"], "SUBJECT_ACCESS");
    assert_eq!(own["route"], "GET /subject-access-request");
    let r = sar(&format!("crn={CRN_A}")).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert_eq!(r.body["content"]["person_id"], person_a.as_str());
    let r = sar(&format!("prn={}&crn={CRN_A}", w.nomis_a)).await;
    assert_eq!(
        r.status,
        200,
        "both identifiers of one person: {}",
        r.brief()
    );
    // Only the events that occurred in the range: A's acceptance, 20 days ago.
    let r = sar(&format!(
        "prn={}&fromDate={}&toDate={}",
        w.nomis_a,
        day(-25),
        day(-15)
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.brief());
    let held = r.body["content"]["events"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{}", r.brief());
    assert_eq!(held[0]["type"], "throughcare.referral.accepted.v1");
    // Nothing held in the range: 204, no body.
    let r = sar(&format!("prn={}&fromDate={}", w.nomis_a, day(1))).await;
    assert_eq!(r.status, 204, "{}", r.brief());
    assert!(r.text.is_empty());
    // Identifiers the ledger does not know: 209, no body, logged about no one.
    for unknown in [
        format!("prn={}", nomis(9199)),
        "crn=E999999".into(),
        "prn=x".into(),
    ] {
        let r = sar(&unknown).await;
        assert_eq!(r.status, 209, "{unknown}: {}", r.brief());
        assert!(r.text.is_empty());
        let found = support::auth::access_entries(&auditor, "who=ig.auditor")
            .await
            .unwrap();
        let own = found
            .iter()
            .find(|e| Some(e["request_id"].as_str().unwrap_or("")) == r.request_id().as_deref())
            .expect("the 209 is logged");
        assert_eq!(own["status"], 209);
        assert!(own["person_id"].is_null());
    }
    // Bad requests: problem+json.
    for bad in [
        String::new(),
        "fromDate=2025-01-01".to_string(),
        format!("prn={}&fromDate=01/02/2025", w.nomis_a),
        format!("prn={}&fromDate={}&toDate={}", w.nomis_a, day(-1), day(-2)),
        format!("prn={}&crn={CRN_B}", w.nomis_a),
    ] {
        let r = sar(&bad).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.brief());
        assert!(r.is_problem(), "{bad:?}");
    }
    let r = worker
        .get(&format!("/subject-access-request?prn={}", w.nomis_a))
        .await;
    assert_eq!(r.status, 403, "{}", r.brief());

    // ---- the badge ----
    let page = |person: &str| {
        let path = format!("/people/{person}");
        let auditor = &auditor;
        async move { auditor.get(&path).await }
    };
    let r = page(&person_b).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(
        r.text.contains("badge-verified") && r.text.contains(">verified<"),
        "B's only event is in the checkpoint: {}",
        r.text
    );
    let r = page(&person_a).await;
    assert!(
        r.text.contains("badge-pending") && r.text.contains("not yet in a checkpoint"),
        "A's last event is after the checkpoint"
    );

    // ---- tampering, as an insider with the sled files ----
    server.kill();
    tamper(&w.data, |db| {
        // B's event: one byte changed and its hash recomputed, so the server serves it and
        // its chain checks; only the signed checkpoint can tell.
        flip_stored(db, position_b, MARK_B, true);
        // A's acceptance: one byte changed, its hash left: it no longer reads back.
        flip_stored(db, accepted_a, MARK_A, false);
    });
    let server = w.start();
    let auditor = w.as_(&server, AUDITOR);
    let r = auditor.get(&format!("/people/{person_b}")).await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(
        r.text.contains("badge-failed") && r.text.contains("verification failed"),
        "B's altered event is not in the signed tree: {}",
        r.text
    );
    let r = auditor.get(&format!("/people/{person_a}")).await;
    assert!(
        r.text.contains("badge-failed"),
        "A's acceptance does not read back: {}",
        r.text
    );
    // The ledger's entries: a page holding the bad entry is a problem naming it, even
    // when the store's page read fails on it before the entries asked for run out.
    for q in [
        format!("from={first_a}"),
        format!("from={first_a}&limit=100"),
        format!("from={accepted_a}&limit=1"),
    ] {
        let r = auditor.get(&format!("/v1/ledger/entries?{q}")).await;
        assert_eq!(r.status, 500, "{q}: {}", r.brief());
        assert!(r.is_problem(), "{q}: {}", r.brief());
        assert!(
            r.problem_type().ends_with("ledger-corrupt"),
            "{}",
            r.brief()
        );
        assert_eq!(r.body["position"], accepted_a, "{q}: {}", r.brief());
    }
    // The entries around it are served: those before it (which the page read reaches
    // past), and those after it.
    let r = auditor
        .get(&format!("/v1/ledger/entries?from={first_a}&limit=1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert_eq!(r.body["entries"][0]["position"], first_a);
    let r = auditor
        .get(&format!("/v1/ledger/entries?from={}", accepted_a + 1))
        .await;
    assert_eq!(r.status, 200, "entries after the bad one: {}", r.brief());
    let r = auditor.get(&format!("/v1/people/{person_a}/export")).await;
    assert_eq!(r.status, 500, "{}", r.brief());
    assert!(
        r.problem_type().ends_with("ledger-corrupt"),
        "{}",
        r.brief()
    );
}
