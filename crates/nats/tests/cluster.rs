//! A 3-node JetStream cluster on loopback with stream replicas 3: the stream leader is
//! SIGKILLed mid-load, writes continue on the other two, and after the node rejoins
//! nothing acknowledged is missing and every replica catches up. And availability as an
//! operator would try it: `sync_interval: always`, 8 submitters through the ledger, the
//! stream leader SIGKILLed and restarted every 7 s, six times.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::json;
use support::burst::{assert_contiguous, check, positions_by_id, Burst};
use support::{nhs, nomis, referral, release_date, stream_info};
use throughcare_ledger::{Error, EventLog, Ledger};
use throughcare_nats::leadership::{node_index, LeaderWatch};
use throughcare_nats::STREAM;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_leader_of_three_loses_nothing() {
    let mut cluster =
        support::cluster(false, Duration::from_secs(2), Duration::from_secs(60)).await;
    let (log, js) = (cluster.log.clone(), cluster.js.clone());
    let info = stream_info(&js, STREAM).await;
    assert_eq!(info.config.num_replicas, 3, "replicas 3");

    let burst = Burst::start(&log, 6, 3);
    burst.wait_for_more(100, "before the kill").await;
    let mut stream = js.get_stream(STREAM).await.expect("stream");
    let leader = stream
        .info()
        .await
        .expect("info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("a leader");
    let index = node_index(&leader);
    cluster.servers.nodes[index].kill();
    eprintln!(
        "SIGKILLed the stream leader {leader} at {} acks",
        burst.acked()
    );
    burst.wait_for_more(100, "with a node down").await;
    cluster.servers.nodes[index].restart();
    eprintln!("{leader} restarted at {} acks", burst.acked());
    burst.wait_for_more(100, "after the rejoin").await;
    let acks = burst.stop().await;
    let report = check(&log, &acks).await;

    // Every replica, the rejoined one too, catches up with everything.
    let start = Instant::now();
    loop {
        let mut s = js.get_stream(STREAM).await.expect("stream");
        let info = s.info().await.expect("info").clone();
        let c = info.cluster.expect("cluster info");
        let caught_up = c.replicas.len() == 2
            && c.replicas
                .iter()
                .all(|r| r.current && r.lag.unwrap_or(0) == 0)
            // Each burst event is a submission record and the event (no claims).
            && info.state.last_sequence == 2 * report.head;
        if caught_up {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replicas did not catch up: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "cluster test: acked {}, found {}, duplicated {}, missing {}, backend {:?}",
        report.acked,
        report.found,
        report.duplicated,
        report.missing,
        log.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_while_the_leader_is_killed_every_seven_seconds() {
    let mut cluster = support::cluster(true, Duration::from_secs(1), Duration::from_secs(20)).await;
    let (log, js) = (cluster.log.clone(), cluster.js.clone());
    let ledger = Arc::new(Ledger::with_system_clock(Arc::new(log.clone())));

    let stop = Arc::new(AtomicBool::new(false));
    let watch = LeaderWatch::start(&js, STREAM);
    // id -> (position, acknowledged at)
    let acks: Arc<Mutex<HashMap<String, (u64, Instant)>>> = Arc::default();
    let unavailable = Arc::new(AtomicU64::new(0));
    let submitters: Vec<_> = (0..8u32)
        .map(|w| {
            let (ledger, stop, acks, unavailable) = (
                ledger.clone(),
                stop.clone(),
                acks.clone(),
                unavailable.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let n = w * 1000 + i / 4;
                    let id = format!("av-{w}-{i}");
                    let event = if i.is_multiple_of(4) {
                        let who = json!({ "nomis": nomis(n), "nhs_number": nhs(n) });
                        referral(&id, who, &format!("REF-{n}"))
                    } else {
                        release_date(&id, &nomis(n), i)
                    };
                    loop {
                        match ledger.submit(event.clone()).await {
                            Ok(r) => {
                                let prior = acks
                                    .lock()
                                    .unwrap()
                                    .insert(id.clone(), (r.position, Instant::now()));
                                assert!(prior.is_none(), "{id} acknowledged twice");
                                break;
                            }
                            // A partner retries a 503 (with Retry-After) as it is.
                            Err(Error::Unavailable(why)) => {
                                unavailable.fetch_add(1, Ordering::Relaxed);
                                eprintln!("{id}: unavailable: {why}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => panic!("{id}: an error other than unavailable: {e}"),
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();

    let began = Instant::now();
    let kills = cluster
        .servers
        .kill_the_leader_every(
            &js,
            STREAM,
            began,
            (6, Duration::from_secs(7), Duration::from_millis(3_500)),
            || acks.lock().unwrap().len(),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for s in submitters {
        s.await.expect("submitter");
    }
    let leadership = watch.stop().await;

    // Nothing acknowledged lost, nothing twice, nothing unacknowledged.
    let acks = acks.lock().unwrap().clone();
    let all: Vec<_> = log.read_all(1).try_collect().await.expect("read_all");
    assert_contiguous(&all, "dense positions");
    let found = positions_by_id(&all);
    for (id, (position, _)) in &acks {
        assert_eq!(
            found.get(id.as_str()),
            Some(&vec![*position]),
            "{id} once, where it was acknowledged"
        );
    }
    assert_eq!(found.len(), acks.len(), "nothing recorded unacknowledged");

    // Gaps between acknowledgements, less the time no stream leader was known.
    let mut times: Vec<Instant> = acks.values().map(|(_, t)| *t).collect();
    times.sort();
    let (worst_raw, worst_led) = leadership.worst_gaps(&times);
    let elections = leadership.after_each(&kills, Duration::from_secs(7));
    eprintln!(
        "availability: {} acks in {:.1} s, {} unavailable answers (retried), longest gap \
         between acks {:.2} s, longest gap while a stream leader was known {:.2} s, \
         leaderless seconds after each kill [{}], backend {:?}",
        acks.len(),
        began.elapsed().as_secs_f64(),
        unavailable.load(Ordering::Relaxed),
        worst_raw.as_secs_f64(),
        worst_led.as_secs_f64(),
        elections.join(", "),
        log.stats()
    );
    assert!(
        worst_led <= Duration::from_secs(5),
        "no gap over 5 s without an ack while the stream had a leader (worst {worst_led:?})"
    );
}
