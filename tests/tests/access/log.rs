//! The access log: reads by each role appear with who, role, what, purpose, outcome and
//! review; refusals appear as DENIED; the chain links and `/v1/access/verify` agrees; the
//! person, who, review and time filters hold; and reads answered just before a SIGKILL
//! are all in the log after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

use crate::support::auth::{
    access_entries, enc, entry_shape_problems, expect_status, Caller, Resp,
};
use crate::{report, World, AUDITOR, COMMISSIONER, JO, JO_WORKER_ID, PROBATION, SAM, WCI_MANAGER};

fn now_z() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rid(r: &Resp, what: &str, problems: &mut Vec<String>) -> String {
    r.request_id().unwrap_or_else(|| {
        problems.push(format!(
            "{what}: no Throughcare-Request-Id header ({})",
            r.brief()
        ));
        format!("missing-{what}")
    })
}

/// Members of an access-log entry and the values they should have.
type Fields = Vec<(&'static str, Value)>;

/// Checks `expected` fields of the entry with `request_id` among `entries`.
fn expect_entry(
    entries: &BTreeMap<String, Value>,
    what: &str,
    request_id: &str,
    expected: &[(&str, Value)],
    problems: &mut Vec<String>,
) {
    let Some(e) = entries.get(request_id) else {
        problems.push(format!(
            "{what}: no access-log entry with request_id {request_id}"
        ));
        return;
    };
    for (k, v) in expected {
        if &e[*k] != v {
            problems.push(format!("{what}: entry {k} is {} (want {v}) in {e}", e[*k]));
        }
    }
}

/// One request of a scenario: (caller, path, extra headers, what, expected status).
type Step<'a> = (
    &'a Caller,
    String,
    &'static [(&'static str, &'static str)],
    &'static str,
    u16,
);

/// Sends each step's `GET` in turn, noting a problem for each unexpected status; the
/// request ids, in order.
async fn steps(list: Vec<Step<'_>>, problems: &mut Vec<String>) -> Vec<String> {
    let mut ids = Vec::new();
    for (caller, path, headers, what, status) in list {
        let r = caller.get_with(&path, headers).await;
        expect_status(&r, status, what, problems);
        ids.push(rid(&r, what, problems));
    }
    ids
}

fn ids(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|e| e["request_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_log_records_reads_and_refusals_and_verifies() {
    let w = World::seeded(&[]).await;
    let (a, b) = (w.a.id.clone(), w.b.id.clone());
    let mut problems = Vec::new();
    let jo = w.as_(JO);
    let manager = w.as_(WCI_MANAGER);
    let auditor = w.as_(AUDITOR);
    let t0 = now_z();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Reads and refusals; their request ids name the entries checked below.
    let first = steps(
        vec![
            (
                &jo,
                format!("/v1/people/{a}/journey"),
                &[],
                "worker journey",
                200,
            ),
            (
                &manager,
                format!("/v1/people/{a}/events"),
                &[("Throughcare-Purpose", "SERVICE_MANAGEMENT")],
                "manager events",
                200,
            ),
            (
                &auditor,
                format!("/v1/people/{a}/verify"),
                &[],
                "auditor verify",
                200,
            ),
            (
                &auditor,
                format!("/v1/people/{a}/journey?purpose=SUBJECT_ACCESS"),
                &[],
                "auditor journey for subject access",
                200,
            ),
        ],
        &mut problems,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t_mid = now_z();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let reason = "Called by A&E: unconscious, needs medication history";
    let (commissioner, partner, anonymous) = (w.as_(COMMISSIONER), w.as_(PROBATION), w.anonymous());
    let second = steps(
        vec![
            (
                &jo,
                format!("/v1/caseload/{JO_WORKER_ID}"),
                &[],
                "worker caseload",
                200,
            ),
            (
                &manager,
                format!("/v1/people?identifier=nomis:{}", w.a.nomis),
                &[],
                "manager identity lookup",
                200,
            ),
            // Refusals.
            (
                &commissioner,
                format!("/v1/people/{a}/journey"),
                &[],
                "commissioner journey",
                403,
            ),
            (
                &partner,
                format!("/v1/people/{a}/journey"),
                &[],
                "partner journey",
                403,
            ),
            (
                &anonymous,
                format!("/v1/people/{a}/journey"),
                &[],
                "anonymous journey",
                401,
            ),
            (
                &jo,
                format!("/v1/people/{b}/journey"),
                &[],
                "worker journey out of scope",
                404,
            ),
            // Break glass.
            (
                &jo,
                format!(
                    "/v1/people/{b}/journey?purpose=EMERGENCY&reason={}",
                    enc(reason)
                ),
                &[],
                "worker break glass",
                200,
            ),
            (
                &jo,
                "/v1/access".to_string(),
                &[],
                "worker reads the access log",
                403,
            ),
        ],
        &mut problems,
    )
    .await;
    let [r1, r2, r3, r4]: [String; 4] = first.try_into().expect("four reads");
    let [r5, r6, r7, r8, r9, r10, r11, r12]: [String; 8] =
        second.try_into().expect("eight requests");
    let t_end = now_z();

    let all = match access_entries(&auditor, "").await {
        Ok(all) => all,
        Err(e) => {
            problems.push(format!("reading the whole access log: {e}"));
            report("access log", &problems);
            return;
        }
    };
    // Shape and chain.
    for e in &all {
        problems.extend(entry_shape_problems(e));
    }
    for pair in all.windows(2) {
        let (x, y) = (&pair[0], &pair[1]);
        match (x["seq"].as_u64(), y["seq"].as_u64()) {
            (Some(sx), Some(sy)) if sy == sx + 1 => {
                if y["prev"] != x["hash"] {
                    problems.push(format!(
                        "entry {sy}: prev {} is not the hash of entry {sx} ({})",
                        y["prev"], x["hash"]
                    ));
                }
            }
            (sx, sy) => problems.push(format!(
                "entries out of order or with gaps: seq {sx:?} then {sy:?}"
            )),
        }
    }
    if let Some(first) = all.first() {
        if first["seq"].as_u64() == Some(1) && first["prev"] != "0".repeat(64) {
            problems.push(format!("the first entry's prev is not 64 zeros: {first}"));
        }
    }
    let verify = auditor.get("/v1/access/verify").await;
    if verify.status != 200 || verify.body["ok"] != true {
        problems.push(format!("GET /v1/access/verify: {}", verify.brief()));
    } else {
        if verify.body["entries"].as_u64() != Some(all.len() as u64) {
            problems.push(format!(
                "verify counts {} entries, the log lists {}",
                verify.body["entries"],
                all.len()
            ));
        }
        if let Some(last) = all.last() {
            if verify.body["head"] != last["hash"] {
                problems.push(format!(
                    "verify head {} is not the last entry's hash {}",
                    verify.body["head"], last["hash"]
                ));
            }
        }
    }

    let by_id: BTreeMap<String, Value> = all
        .iter()
        .filter_map(|e| Some((e["request_id"].as_str()?.to_string(), e.clone())))
        .collect();
    use serde_json::json;
    let allowed = |who: &str, role: &str, what: &str, purpose: &str, person: Value| {
        vec![
            ("who", json!(who)),
            ("role", json!(role)),
            ("what", json!(what)),
            ("purpose", json!(purpose)),
            ("outcome", json!("ALLOWED")),
            ("review", json!(false)),
            ("status", json!(200)),
            ("person_id", person),
        ]
    };
    // What each request's entry holds.
    let expected: Vec<(&str, &String, Fields)> = vec![
        ("worker journey", &r1, {
            let mut v = allowed(JO, "WORKER", "READ_JOURNEY", "DIRECT_CARE", json!(a));
            v.push(("route", json!("GET /v1/people/{id}/journey")));
            v
        }),
        (
            "manager events",
            &r2,
            allowed(
                WCI_MANAGER,
                "MANAGER",
                "READ_EVENTS",
                "SERVICE_MANAGEMENT",
                json!(a),
            ),
        ),
        (
            "auditor verify",
            &r3,
            allowed(AUDITOR, "AUDITOR", "VERIFY", "AUDIT", json!(a)),
        ),
        (
            "auditor subject access",
            &r4,
            allowed(
                AUDITOR,
                "AUDITOR",
                "READ_JOURNEY",
                "SUBJECT_ACCESS",
                json!(a),
            ),
        ),
        (
            "worker caseload",
            &r5,
            vec![
                ("who", json!(JO)),
                ("role", json!("WORKER")),
                ("what", json!("READ_CASELOAD")),
                ("outcome", json!("ALLOWED")),
                ("status", json!(200)),
                ("route", json!("GET /v1/caseload/{worker_id}")),
            ],
        ),
        (
            "manager identity lookup",
            &r6,
            allowed(
                WCI_MANAGER,
                "MANAGER",
                "READ_IDENTITY",
                "DIRECT_CARE",
                json!(a),
            ),
        ),
        (
            "commissioner refused",
            &r7,
            vec![
                ("who", json!(COMMISSIONER)),
                ("role", json!("COMMISSIONER")),
                ("outcome", json!("DENIED")),
                ("status", json!(403)),
                ("route", json!("GET /v1/people/{id}/journey")),
                ("person_id", json!(a)),
            ],
        ),
        (
            "partner refused",
            &r8,
            vec![
                ("who", json!(PROBATION)),
                ("role", json!("PARTNER")),
                ("outcome", json!("DENIED")),
                ("status", json!(403)),
                ("person_id", json!(a)),
            ],
        ),
        (
            "anonymous refused",
            &r9,
            vec![("outcome", json!("DENIED")), ("status", json!(401))],
        ),
        (
            "worker out of scope",
            &r10,
            vec![
                ("who", json!(JO)),
                ("outcome", json!("DENIED")),
                ("status", json!(404)),
                ("person_id", json!(b)),
                ("review", json!(false)),
            ],
        ),
        (
            "worker break glass",
            &r11,
            vec![
                ("who", json!(JO)),
                ("role", json!("WORKER")),
                ("what", json!("READ_JOURNEY")),
                ("purpose", json!("EMERGENCY")),
                ("outcome", json!("ALLOWED")),
                ("review", json!(true)),
                ("status", json!(200)),
                ("person_id", json!(b)),
                ("reason", json!(reason)),
            ],
        ),
        (
            "worker reads the access log",
            &r12,
            vec![
                ("who", json!(JO)),
                ("outcome", json!("DENIED")),
                ("status", json!(403)),
            ],
        ),
    ];
    for (what, request_id, fields) in &expected {
        expect_entry(&by_id, what, request_id, fields, &mut problems);
    }

    // Filters.
    let a2 = a.clone();
    problems.extend(
        filtered(
            &auditor,
            format!("person={a}"),
            // About A: A's own reads, and the lists that showed A (DESIGN: `people`).
            move |e| {
                e["person_id"] == a2.as_str()
                    || e["people"]
                        .as_array()
                        .is_some_and(|p| p.iter().any(|x| x == a2.as_str()))
            },
            &[&r1, &r2, &r3, &r4, &r7, &r8],
            &[&r10, &r11],
        )
        .await,
    );
    problems.extend(
        filtered(
            &auditor,
            format!("who={JO}"),
            |e| e["who"] == JO,
            &[&r1, &r5, &r10, &r11, &r12],
            &[&r2, &r3, &r7],
        )
        .await,
    );
    problems.extend(
        filtered(
            &auditor,
            "review=true".into(),
            |e| e["review"] == true,
            &[&r11],
            &[&r1, &r10],
        )
        .await,
    );
    let mid = t_mid.clone();
    problems.extend(
        filtered(
            &auditor,
            format!("from={}", enc(&t_mid)),
            move |e| e["at"].as_str().is_some_and(|at| at >= mid.as_str()),
            &[&r5, &r11],
            &[&r1, &r4],
        )
        .await,
    );
    let mid = t_mid.clone();
    problems.extend(
        filtered(
            &auditor,
            format!("from={}&to={}", enc(&t0), enc(&t_mid)),
            move |e| e["at"].as_str().is_some_and(|at| at <= mid.as_str()),
            &[&r1, &r4],
            &[&r5, &r11],
        )
        .await,
    );
    problems.extend(
        filtered(
            &auditor,
            format!("who={JO}&review=true&to={}", enc(&t_end)),
            |e| e["who"] == JO && e["review"] == true,
            &[&r11],
            &[&r10],
        )
        .await,
    );

    // The person's own access view.
    let pa = auditor.get(&format!("/v1/people/{a}/access")).await;
    if pa.status != 200 || pa.body["person_id"] != a.as_str() || !pa.body["entries"].is_array() {
        problems.push(format!("GET /v1/people/{{a}}/access: {}", pa.brief()));
    } else {
        let got = ids(pa.body["entries"].as_array().unwrap());
        for m in [&r1, &r2, &r3, &r4, &r7, &r8] {
            if !got.contains(m.as_str()) {
                problems.push(format!("/v1/people/{{a}}/access lacks request {m}"));
            }
        }
        if got.contains(&r11) {
            problems.push("/v1/people/{a}/access lists a read of another person".into());
        }
    }
    let pb = auditor.get(&format!("/v1/people/{b}/access")).await;
    let got = ids(pb.body["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]));
    if !got.contains(&r11) || !got.contains(&r10) {
        problems.push(format!(
            "/v1/people/{{b}}/access lacks the break-glass read or the out-of-scope refusal: {}",
            pb.brief()
        ));
    }
    // Other roles cannot read the log.
    for who in [JO, WCI_MANAGER, COMMISSIONER, PROBATION] {
        let r = w.as_(who).get(&format!("/v1/people/{a}/access")).await;
        expect_status(
            &r,
            403,
            &format!("{who} GET /v1/people/{{a}}/access"),
            &mut problems,
        );
    }
    report("access log", &problems);
}

/// Entries of `?query`: all must satisfy `keep`, include `must` and exclude `must_not`.
async fn filtered(
    auditor: &Caller,
    query: String,
    keep: impl Fn(&Value) -> bool,
    must: &[&String],
    must_not: &[&String],
) -> Vec<String> {
    let mut out = Vec::new();
    match access_entries(auditor, &query).await {
        Err(e) => out.push(format!("?{query}: {e}")),
        Ok(entries) => {
            for e in &entries {
                if !keep(e) {
                    out.push(format!("?{query} returned a non-matching entry {e}"));
                }
            }
            let got = ids(&entries);
            for m in must {
                if !got.contains(*m) {
                    out.push(format!("?{query} lacks request {m}"));
                }
            }
            for m in must_not {
                if got.contains(*m) {
                    out.push(format!("?{query} has request {m}, which it should not"));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_answered_before_sigkill_are_in_the_access_log() {
    reads_survive_sigkill(&[]).await;
}

/// The same with `--nats`: the access log is the JetStream stream THROUGHCARE_ACCESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_answered_before_sigkill_are_in_the_access_log_on_nats() {
    let dir = tempfile::tempdir().unwrap();
    let nats = throughcare_nats::testkit::NatsServer::start(&dir.path().join("nats"));
    reads_survive_sigkill(&["--nats", &nats.url()]).await;
}

async fn reads_survive_sigkill(extra: &[&str]) {
    let mut w = World::seeded(extra).await;
    let url = w.url();
    let readers: Vec<(Caller, String)> = vec![
        (w.as_(JO), format!("/v1/people/{}/journey", w.a.id)),
        (w.as_(JO), format!("/v1/people/{}/events", w.a.id)),
        (w.as_(SAM), format!("/v1/people/{}/journey", w.b.id)),
        (w.as_(WCI_MANAGER), format!("/v1/people/{}/journey", w.e.id)),
        (w.as_(AUDITOR), format!("/v1/people/{}/verify", w.c.id)),
        (w.as_(JO), format!("/v1/caseload/{JO_WORKER_ID}")),
    ];
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let missing_header = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (caller, path) in readers {
        let (answered, missing_header) = (answered.clone(), missing_header.clone());
        tasks.push(tokio::spawn(async move {
            // Bounded: stops when the server is gone, or after 5 s.
            while start.elapsed() < Duration::from_secs(5) {
                // The id counts once the response head arrived: the entry is appended
                // before the response is sent.
                match caller.try_get_head(&path).await {
                    Some((200, id)) => match id {
                        Some(id) => answered.lock().unwrap().push(id),
                        None => *missing_header.lock().unwrap() += 1,
                    },
                    Some(_) => {}
                    None => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.server.kill(); // SIGKILL
    for t in tasks {
        t.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    let mut problems = Vec::new();
    if *missing_header.lock().unwrap() > 0 {
        problems.push(format!(
            "{} answers had no Throughcare-Request-Id",
            missing_header.lock().unwrap()
        ));
    }
    assert!(
        !answered.is_empty() || !problems.is_empty(),
        "no read was answered in 1.5 s at {url}"
    );
    eprintln!("{} reads answered before SIGKILL", answered.len());

    w.restart();
    let auditor = w.as_(AUDITOR);
    match access_entries(&auditor, "").await {
        Err(e) => problems.push(format!("reading the access log after restart: {e}")),
        Ok(entries) => {
            let logged = ids(&entries);
            let lost: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
            if !lost.is_empty() {
                problems.push(format!(
                    "{} of {} answered reads are not in the access log after SIGKILL + restart (first: {:?})",
                    lost.len(),
                    answered.len(),
                    &lost[..lost.len().min(5)]
                ));
            }
            let verify = auditor.get("/v1/access/verify").await;
            if verify.status != 200 || verify.body["ok"] != true {
                problems.push(format!(
                    "GET /v1/access/verify after restart: {}",
                    verify.brief()
                ));
            } else if verify.body["entries"].as_u64() != Some(entries.len() as u64) {
                problems.push(format!(
                    "verify counts {} entries, the log lists {}",
                    verify.body["entries"],
                    entries.len()
                ));
            }
        }
    }
    // The restarted server goes on appending to the same chain.
    let r = w
        .as_(JO)
        .get(&format!("/v1/people/{}/journey", w.a.id))
        .await;
    expect_status(&r, 200, "a read after restart", &mut problems);
    let verify = auditor.get("/v1/access/verify").await;
    if verify.body["ok"] != true {
        problems.push(format!("verify after a new read: {}", verify.brief()));
    }
    report(&format!("access log across SIGKILL {extra:?}"), &problems);
}
