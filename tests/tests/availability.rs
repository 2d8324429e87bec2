//! Availability as an operator would try it, against the real binary over HTTP: a 3-node
//! JetStream cluster with `sync_interval: always`, `throughcare serve --nats n0,n1,n2
//! --replicas 3`, 8 partners posting CloudEvents, and the stream leader SIGKILLed and
//! restarted every 7 s, six times; then two nodes down at once for 26 s (no quorum), and
//! back. Nothing acknowledged is lost, nothing is recorded twice, no 5xx but 503 with
//! `Retry-After` and those only once quorum was lost, and while two of three nodes are up
//! no gap longer than 5 s without an acknowledgement beyond the time the stream had no
//! leader: nats-server's Raft waits at least 4 s without heartbeats before electing a new
//! one (measured 3.4-7 s here), which no client can shorten, so the gap is reported raw and
//! checked net of that.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{event, minutes_ago, nhs_number, nomis, referral, Server};
use throughcare_nats::leadership::{node_index, stream_leader, LeaderWatch};
use throughcare_nats::testkit::NatsCluster;
use throughcare_nats::STREAM;

/// What a partner saw for one event: the position of its acknowledgement and when.
#[derive(Clone, Copy)]
struct Ack {
    position: u64,
    at: Instant,
}

/// The non-201 answers the partners saw (each retried as a partner would).
#[derive(Default)]
struct Answers {
    /// When each 503 was answered.
    unavailable: Mutex<Vec<Instant>>,
    duplicate_after_retry: AtomicU64,
}

/// A serve process gives up retrying a write after this long without quorum (longer than
/// any election measured, so elections are never surfaced as 503).
const RETRY_FOR_SECS: u64 = 20;

/// Posts `body` until it is recorded: 201 (or 200 for a retry whose earlier attempt was
/// recorded after all); a 503 must carry `Retry-After` and is retried after it; any other
/// answer fails the test.
async fn post_until_recorded(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    body: &Value,
    answers: &Answers,
) -> u64 {
    let mut retried = false;
    loop {
        let sent = http
            .post(format!("{url}/v1/events"))
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            // The serve process is never killed here; a transport error is a failure.
            Err(e) => panic!("{id}: POST failed: {e}"),
        };
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply: Value = r.json().await.unwrap_or(Value::Null);
        match status {
            201 => return reply["position"].as_u64().expect("a position"),
            200 if retried => {
                answers
                    .duplicate_after_retry
                    .fetch_add(1, Ordering::Relaxed);
                return reply["position"].as_u64().expect("a position");
            }
            503 => {
                let seconds: u64 = retry_after
                    .unwrap_or_else(|| panic!("{id}: 503 without Retry-After: {reply}"))
                    .parse()
                    .expect("Retry-After in seconds");
                answers.unavailable.lock().unwrap().push(Instant::now());
                eprintln!("{id}: 503 (Retry-After {seconds}): {}", reply["detail"]);
                // A partner waits as told; capped so the test keeps its pace.
                tokio::time::sleep(Duration::from_millis((seconds * 1000).min(1000))).await;
                retried = true;
            }
            other => panic!("{id}: answered {other}, not 201 or 503: {reply}"),
        }
    }
}

/// Partner `w`'s `i`th event: a referral for a new person every fourth event, release
/// dates for that person in between.
fn partner_event(w: u64, i: u64) -> (String, Value) {
    let n = 10_000 + w * 1_000 + i / 4;
    let id = format!("av-{w}-{i}");
    let body = if i.is_multiple_of(4) {
        let who = json!({ "nomis": nomis(n), "nhs_number": nhs_number(n) });
        referral(
            &id,
            &minutes_ago(90),
            who,
            &format!("REF-{n}"),
            "PRISON_HEALTHCARE",
            "GNI",
        )
    } else {
        event(
            "release_date.set",
            &id,
            &minutes_ago(60),
            json!({ "person": { "nomis": nomis(n) }, "date": format!("2027-02-{:02}", 1 + i % 4 + w), "date_type": "CRD" }),
        )
    };
    (id, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_keeps_acknowledging_while_the_leader_is_killed_every_seven_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = NatsCluster::start_sync_always(&dir.path().join("nats"), 3);
    let urls = cluster.urls();
    let server = Server::start_with(
        &dir.path().join("serve"),
        &[
            "--nats",
            &urls,
            "--replicas",
            "3",
            "--nats-retry-for-secs",
            &RETRY_FOR_SECS.to_string(),
        ],
    );
    let addrs: Vec<async_nats::ServerAddr> = urls
        .split(',')
        .map(|u| u.parse().expect("a node's URL"))
        .collect();
    let nats = async_nats::connect(addrs).await.expect("connect");
    let js = async_nats::jetstream::new(nats);

    let stop = Arc::new(AtomicBool::new(false));
    let watch = LeaderWatch::start(&js, STREAM);
    let acks: Arc<Mutex<HashMap<String, Ack>>> = Arc::default();
    let answers = Arc::new(Answers::default());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        // The server closes a keep-alive connection idle for 10 s: never reuse one that
        // old, or a request may be sent as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let partners: Vec<_> = (0..8u64)
        .map(|w| {
            let (http, url, stop, acks, answers) = (
                http.clone(),
                server.url.clone(),
                stop.clone(),
                acks.clone(),
                answers.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (id, body) = partner_event(w, i);
                    let position = post_until_recorded(&http, &url, &id, &body, &answers).await;
                    let ack = Ack {
                        position,
                        at: Instant::now(),
                    };
                    let prior = acks.lock().unwrap().insert(id.clone(), ack);
                    assert!(prior.is_none(), "{id} acknowledged twice");
                    i += 1;
                }
            })
        })
        .collect();

    let began = Instant::now();
    let kills = cluster
        .kill_the_leader_every(
            &js,
            STREAM,
            began,
            (6, Duration::from_secs(7), Duration::from_millis(3_500)),
            || acks.lock().unwrap().len(),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    // No quorum: the leader and one more node down for 26 s, then both back.
    let leader = stream_leader(&js, STREAM)
        .await
        .expect("a leader before quorum is lost");
    let index = node_index(&leader);
    let other = (index + 1) % 3;
    let two_of_three_until = Instant::now();
    cluster.nodes[index].kill();
    cluster.nodes[other].kill();
    let acks_at_loss = acks.lock().unwrap().len();
    eprintln!("quorum lost: SIGKILLed n{index} and n{other} at {acks_at_loss} acks");
    tokio::time::sleep(Duration::from_secs(26)).await;
    cluster.nodes[index].restart();
    cluster.nodes[other].restart();
    let quorum_back = Instant::now();
    eprintln!("quorum back: n{index} and n{other} restarted");
    // Writes resume once the stream has a leader again.
    let resumed = loop {
        let n = acks.lock().unwrap().len();
        if n >= acks_at_loss + 200 {
            break Some(quorum_back.elapsed());
        }
        if quorum_back.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let resumed = resumed.expect("writes resume within 60 s of quorum coming back");
    stop.store(true, Ordering::Relaxed);
    for p in partners {
        p.await.expect("partner");
    }
    let leadership = watch.stop().await;
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() > 100, "too few acknowledgements: {}", acks.len());

    // Nothing acknowledged lost, nothing twice, nothing unacknowledged: the ledger's own
    // entries, read back over HTTP, hold each acknowledged id once, where it was acked.
    let mut found: HashMap<String, Vec<u64>> = HashMap::new();
    let mut after = 0u64;
    loop {
        let page: Value = http
            .get(format!(
                "{}/v1/ledger/entries?from={}&limit=1000",
                server.url,
                after + 1
            ))
            .send()
            .await
            .expect("GET /v1/ledger/entries")
            .json()
            .await
            .expect("entries as JSON");
        let entries = page["entries"].as_array().expect("entries").clone();
        if entries.is_empty() {
            break;
        }
        for e in &entries {
            let position = e["position"].as_u64().expect("position");
            assert_eq!(position, after + 1, "dense positions");
            after = position;
            let stored: Value =
                serde_json::from_str(e["stored"].as_str().expect("stored")).expect("JSON");
            let id = stored["event"]["id"].as_str().expect("id").to_string();
            found.entry(id).or_default().push(position);
        }
    }
    for (id, ack) in &acks {
        assert_eq!(
            found.get(id.as_str()),
            Some(&vec![ack.position]),
            "{id} once, where it was acknowledged"
        );
    }
    assert_eq!(found.len(), acks.len(), "nothing recorded unacknowledged");

    // Gaps between acknowledgements while two of three nodes were up, less the time the
    // stream had no leader.
    let mut times: Vec<Instant> = acks.values().map(|a| a.at).collect();
    times.sort();
    let before_loss: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t < two_of_three_until)
        .collect();
    let (worst, worst_led) = leadership.worst_gaps(&before_loss);
    let unavailable = answers.unavailable.lock().unwrap().clone();
    // Acknowledgements per second, and each kill's second, for the log.
    let mut per_second = vec![0u32; began.elapsed().as_secs() as usize + 1];
    for t in &times {
        per_second[t.saturating_duration_since(began).as_secs() as usize] += 1;
    }
    let kill_seconds: Vec<u64> = kills.iter().map(|k| (*k - began).as_secs()).collect();
    eprintln!("acks per second {per_second:?}; kills at seconds {kill_seconds:?}");
    let elections = leadership.after_each(&kills, Duration::from_secs(7));
    eprintln!(
        "availability over HTTP: {} acks in {:.1} s; two of three up: longest gap between \
         acks {:.2} s raw, {:.2} s net of the time without a stream leader, leaderless \
         seconds after each kill [{}]; no quorum for 26 s: {} answered 503 with Retry-After \
         (retried), {} retries found already recorded, writes resumed {:.1} s after the \
         nodes restarted",
        acks.len(),
        began.elapsed().as_secs_f64(),
        worst.as_secs_f64(),
        worst_led.as_secs_f64(),
        elections.join(", "),
        unavailable.len(),
        answers.duplicate_after_retry.load(Ordering::Relaxed),
        resumed.as_secs_f64(),
    );
    // 503s only once quorum was lost (and while jobs from then were still failing).
    assert!(
        !unavailable.is_empty(),
        "without quorum a write is answered 503 after {RETRY_FOR_SECS} s of retrying"
    );
    let early: Vec<_> = unavailable
        .iter()
        .filter(|t| **t < two_of_three_until)
        .collect();
    assert!(
        early.is_empty(),
        "{} writes answered 503 while two of three nodes were up",
        early.len()
    );
    let late = quorum_back + Duration::from_secs(RETRY_FOR_SECS + 30);
    assert!(
        unavailable.iter().all(|t| *t < late),
        "503s long after quorum came back"
    );

    assert!(
        worst_led <= Duration::from_secs(5),
        "no gap over 5 s without an acknowledgement beyond the elections while two of three \
         nodes were up (worst {worst_led:?}, raw {worst:?})"
    );
}
