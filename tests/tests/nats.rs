//! The `EventLog` conformance suite, unchanged, against the JetStream backend: one test per
//! check, each on a fresh nats-server (free loopback port, temporary store, killed on
//! drop) provided by `scripts/nats-server.sh` (or `NATS_SERVER_BIN`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use throughcare_nats::testkit::NatsServer;
use throughcare_nats::{JetStreamConfig, JetStreamLog};
use throughcare_tests::conformance::{self, Log};

/// A fresh server and the directory holding its store; both live as long as the test.
struct Fresh {
    _server: NatsServer,
    _dir: TempDir,
}

/// A fresh, empty JetStream log on its own server.
async fn open() -> (Fresh, Log) {
    let dir = TempDir::new().expect("temporary directory");
    let server = NatsServer::start(&dir.path().join("store"));
    let config = JetStreamConfig::new(server.url())
        .request_timeout(Duration::from_secs(5))
        .retry_for(Duration::from_secs(60));
    let log = JetStreamLog::connect_with(config)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.url()));
    (
        Fresh {
            _server: server,
            _dir: dir,
        },
        Arc::new(log),
    )
}

/// One `#[tokio::test]` per conformance check, named after it.
macro_rules! checks {
    ($flavor:literal => $($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = $flavor)]
        async fn $check() {
            let (_fresh, log) = open().await;
            conformance::$check(log).await;
        }
    )*};
}

checks!("current_thread" =>
    positions_are_contiguous_and_ordered,
    read_all_stops_at_head_when_called,
    read_all_streams_a_long_log,
    head_tracks_last_position,
    expected_version_conflicts_append_nothing,
    idempotent_retry_returns_original_position,
    same_key_different_body_is_idempotency_conflict,
    same_key_twice_in_one_append_is_recorded_once,
    identity_claims_are_create_only,
    hash_chain_links_each_persons_events,
    ledger_referral_creates_person_and_resolves_by_any_identifier,
    ledger_refuses_identifiers_of_two_persons,
);

checks!("multi_thread" =>
    identity_claim_race_has_one_winner,
    subscribe_has_no_gap_or_duplicate_at_the_seam,
    subscribe_on_empty_log_delivers_live_events,
    concurrent_appends_lose_no_update,
    ledger_concurrent_submits_create_one_person,
);

// Not part of `run_all`: it holds for backends that claim atomically with the events.
// JetStream claims before it publishes, but reads every claim first, so an append refused
// before anything is written (a taken identifier, a stale version, an idempotency
// conflict, which is all this check exercises) claims nothing either.
checks!("current_thread" => failed_append_leaves_no_claims);

/// `run_all`, as the suite's entry point, on JetStream (one server per check).
#[tokio::test(flavor = "multi_thread")]
async fn run_all_on_jetstream() {
    let keep = Arc::new(Mutex::new(Vec::new()));
    conformance::run_all(|| {
        let keep = keep.clone();
        async move {
            let (fresh, log) = open().await;
            keep.lock().expect("keep").push(fresh);
            log
        }
    })
    .await;
}
