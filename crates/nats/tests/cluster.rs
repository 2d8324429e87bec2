//! A 3-node JetStream cluster on loopback with stream replicas 3: the stream leader is
//! SIGKILLed mid-load, writes continue on the other two, and after the node rejoins
//! nothing acknowledged is missing and every replica catches up.

mod support;

use std::time::{Duration, Instant};

use support::burst::{check, Burst};
use tempfile::TempDir;
use throughcare_nats::testkit::NatsCluster;
use throughcare_nats::{JetStreamConfig, JetStreamLog, STREAM};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_leader_of_three_loses_nothing() {
    let dir = TempDir::new().expect("temporary directory");
    let mut cluster = NatsCluster::start(dir.path(), 3);
    let config = JetStreamConfig::new(cluster.urls())
        .replicas(3)
        .request_timeout(Duration::from_secs(2))
        .retry_for(Duration::from_secs(60));
    let log = JetStreamLog::connect_with(config)
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster: {e}"));

    let client = async_nats::connect(cluster.urls().split(',').collect::<Vec<_>>())
        .await
        .expect("raw connect");
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream(STREAM)
        .await
        .expect("stream")
        .cached_info()
        .clone();
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
    let index: usize = leader
        .strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected leader name {leader}"));
    cluster.nodes[index].kill();
    eprintln!(
        "SIGKILLed the stream leader {leader} at {} acks",
        burst.acked()
    );
    burst.wait_for_more(100, "with a node down").await;
    cluster.nodes[index].restart();
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
            && info.state.last_sequence == report.head;
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
