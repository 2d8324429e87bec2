//! Fault test: the nats-server is SIGKILLed (four times) during a burst of concurrent
//! appends and restarted on the same store and port. Every acknowledged event must be
//! present exactly once at its acknowledged position, nothing may be recorded twice, every
//! chain must verify, a subscription opened before the burst must see every position once,
//! and the same `JetStreamLog` must carry on by reconnecting by itself.

mod support;

use std::time::Duration;

use futures::StreamExt;
use support::burst::{check, Burst};
use support::*;
use throughcare_ledger::EventLog;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_burst_loses_no_acknowledged_event() {
    let mut run = server();
    let log = connect(&run.server).await;
    let mut sub = log.subscribe(1);
    let burst = Burst::start(&log, 8, 3);

    let mut acked_at_kills = Vec::new();
    let downtimes = [100, 500, 2_500, 0].map(Duration::from_millis);
    for (round, downtime) in downtimes.into_iter().enumerate() {
        burst.wait_for_more(100, "before the kill").await;
        let pid = run.server.pid().expect("running");
        run.server.kill(); // SIGKILL to this server's pid only
        acked_at_kills.push(burst.acked());
        eprintln!(
            "round {round}: SIGKILLed nats-server pid {pid} at {} acks",
            burst.acked()
        );
        tokio::time::sleep(downtime).await;
        run.server.restart();
        eprintln!(
            "round {round}: restarted on {} after {downtime:?}",
            run.server.url()
        );
    }
    // The same log, never reconnected by hand, goes on after the restarts.
    burst.wait_for_more(100, "after the restarts").await;
    let failed_attempts = burst
        .tally
        .failed_attempts
        .load(std::sync::atomic::Ordering::Relaxed);
    let acks = burst.stop().await;
    let report = check(&log, &acks).await;
    eprintln!(
        "fault test: acked {}, found {}, duplicated {}, missing {}, acks at the kills {:?}, \
         appends failed and retried by the writers {}, backend {:?}",
        report.acked,
        report.found,
        report.duplicated,
        report.missing,
        acked_at_kills,
        failed_attempts,
        log.stats(),
    );

    // The subscription opened before the burst saw every position once, in order.
    for want in 1..=report.head {
        let e = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .unwrap_or_else(|_| panic!("subscription: position {want} never came"))
            .expect("the subscription goes on")
            .expect("no error");
        assert_eq!(e.position, want, "subscription order");
    }
}
