//! The `EventLog` conformance suite, unchanged, against the JetStream backend: one test per
//! check (from `conformance_tests!`), each on a fresh nats-server (free loopback port,
//! temporary store, killed on drop) provided by `scripts/nats-server.sh` (or
//! `NATS_SERVER_BIN`).

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use throughcare_nats::testkit::NatsServer;
use throughcare_nats::{JetStreamConfig, JetStreamLog};
use throughcare_tests::conformance::Log;

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

// Every conformance check, one test each, each on its own server.
throughcare_tests::conformance_tests!(open);
