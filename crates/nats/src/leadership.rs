//! Test support for availability tests on a [`NatsCluster`]: which node leads a stream,
//! a watch that samples it (so a gap between acknowledgements can be judged net of the
//! time the stream had no leader, which nats-server's Raft election takes and no client
//! can shorten), and the operator's scenario of SIGKILLing the stream leader every few
//! seconds. Used by crates/nats/tests/cluster.rs (in process, through the ledger) and
//! tests/tests/availability.rs (the real binary over HTTP).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::testkit::NatsCluster;

/// The name of `stream`'s leader (`n0`, `n1`, ...), if it has one now (asked with a short
/// timeout: an unanswered question counts as "no leader known").
pub async fn stream_leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let ask = async {
        let mut stream = js.get_stream(stream).await.ok()?;
        let info = stream.info().await.ok()?;
        info.cluster.as_ref().and_then(|c| c.leader.clone())
    };
    tokio::time::timeout(Duration::from_millis(800), ask)
        .await
        .ok()
        .flatten()
}

/// The index in a [`NatsCluster`] of the node named `name` (`n0`, `n1`, ...).
pub fn node_index(name: &str) -> usize {
    name.strip_prefix('n')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected node name {name}"))
}

/// Samples every 200 ms whether `stream` has a known leader, until stopped.
pub struct LeaderWatch {
    samples: Arc<Mutex<Vec<(Instant, bool)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderWatch {
    pub fn start(js: &jetstream::Context, stream: &str) -> LeaderWatch {
        let samples: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (js, stream, samples, stop) = (
                js.clone(),
                stream.to_string(),
                samples.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let known = stream_leader(&js, &stream).await.is_some();
                    samples.lock().unwrap().push((Instant::now(), known));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        LeaderWatch {
            samples,
            stop,
            task,
        }
    }

    /// Stops sampling and returns what was seen.
    pub async fn stop(self) -> Leadership {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the leader watch");
        let samples = self.samples.lock().unwrap().clone();
        Leadership(samples)
    }
}

/// When a stream leader was (or was not) known.
pub struct Leadership(Vec<(Instant, bool)>);

impl Leadership {
    /// How much of `from..to` the stream had no known leader.
    pub fn leaderless(&self, from: Instant, to: Instant) -> Duration {
        self.0
            .windows(2)
            .filter(|w| !w[0].1 && w[1].0 > from && w[0].0 < to)
            .map(|w| w[1].0.min(to).saturating_duration_since(w[0].0.max(from)))
            .sum()
    }

    /// The longest gap between consecutive `times` (sorted), raw and net of the time the
    /// stream had no leader within it.
    pub fn worst_gaps(&self, times: &[Instant]) -> (Duration, Duration) {
        let (mut raw, mut net) = (Duration::ZERO, Duration::ZERO);
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            raw = raw.max(gap);
            net = net.max(gap.saturating_sub(self.leaderless(w[0], w[1])));
        }
        (raw, net)
    }

    /// Seconds without a leader in the `window` after each of `kills`, one decimal.
    pub fn after_each(&self, kills: &[Instant], window: Duration) -> Vec<String> {
        kills
            .iter()
            .map(|k| format!("{:.1}", self.leaderless(*k, *k + window).as_secs_f64()))
            .collect()
    }
}

impl NatsCluster {
    /// The operator's scenario: `rounds` times, `every` apart from `began`, SIGKILL
    /// `stream`'s current leader and restart it `down` later. `acked` tells the log how far
    /// the load had got. Returns when each kill happened.
    pub async fn kill_the_leader_every(
        &mut self,
        js: &jetstream::Context,
        stream: &str,
        began: Instant,
        (rounds, every, down): (u32, Duration, Duration),
        acked: impl Fn() -> usize,
    ) -> Vec<Instant> {
        let mut kills = Vec::new();
        for round in 0..rounds {
            tokio::time::sleep_until((began + every * (round + 1)).into()).await;
            let mut leader = None;
            let asked = Instant::now();
            while leader.is_none() && asked.elapsed() < Duration::from_secs(30) {
                leader = stream_leader(js, stream).await;
                if leader.is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            let leader = leader.expect("the stream elects a leader");
            let index = node_index(&leader);
            self.nodes[index].kill();
            kills.push(Instant::now());
            eprintln!(
                "round {round}: SIGKILLed the stream leader {leader} at {} acks",
                acked()
            );
            tokio::time::sleep(down).await;
            self.nodes[index].restart();
            eprintln!("round {round}: {leader} restarted");
        }
        kills
    }
}
