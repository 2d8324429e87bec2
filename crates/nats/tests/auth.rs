//! NATS access control against a real nats-server running the shipped
//! `deploy/nats-accounts.conf` with its sample keys replaced by fresh nkeys: the ledger
//! connects with its seed file, a partner can only ask `throughcare.submit` (and gets the
//! reply), cannot touch the stream or the JetStream API, cannot make the service write to
//! the ledger through a forged reply subject, and a wrong or missing credential is refused
//! at once with [`JetStreamError::Unauthorized`]. And `tls_ca`: a server with TLS is
//! reached only when its CA is given.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use nkeys::KeyPair;
use support::*;
use tempfile::TempDir;
use throughcare_ledger::{AccessLog, EventLog, ExpectedVersion};
use throughcare_nats::testkit::NatsServer;
use throughcare_nats::{
    access_subject, serve_submissions, subject_of, JetStreamAccessLog, JetStreamConfig,
    JetStreamError, JetStreamLog, SubmitReply, SubmitRequest, STATUS_HEADER, STREAM,
    SUBMIT_SUBJECT,
};

const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nats-accounts.conf"
);
const SAMPLE_SERVICE: &str = "UASAMPLEKEYTHROUGHCARESERVICEREPLACEME77777777777777764O";
const SAMPLE_PARTNER: &str = "UASAMPLEKEYPARTNERPROBATIONSOUTHCENTRAL77777777777776ABU";
const SAMPLE_OTHER_PARTNER: &str = "UASAMPLEKEYPARTNERHOUSINGWEST77777777777777777777777656M";
/// The inbox prefix the shipped config gives the first partner.
const PARTNER_INBOX: &str = "_INBOX.probation-south-central";

/// A server on the shipped accounts config, with fresh keys whose seeds the test holds.
struct Secured {
    server: NatsServer,
    dir: TempDir,
    service: KeyPair,
    partner: KeyPair,
}

fn secured() -> Secured {
    let dir = TempDir::new().expect("temporary directory");
    let (service, partner, other) = (
        KeyPair::new_user(),
        KeyPair::new_user(),
        KeyPair::new_user(),
    );
    let shipped = std::fs::read_to_string(SHIPPED).expect("deploy/nats-accounts.conf");
    let mut config = shipped.clone();
    for (sample, fresh) in [
        (SAMPLE_SERVICE, &service),
        (SAMPLE_PARTNER, &partner),
        (SAMPLE_OTHER_PARTNER, &other),
    ] {
        assert_eq!(
            shipped.matches(sample).count(),
            1,
            "the shipped config names sample key {sample} once"
        );
        config = config.replace(sample, &fresh.public_key());
    }
    // One monitoring port per test would collide; the command line sets host and port.
    let store = dir.path().join("store");
    let store_dir = r#"store_dir: "./nats-data""#;
    assert_eq!(
        shipped.matches(store_dir).count(),
        1,
        "the shipped store_dir"
    );
    let config: String = config
        .replace(
            store_dir,
            &format!("store_dir: {:?}", store.display().to_string()),
        )
        .lines()
        .filter(|l| !l.trim_start().starts_with("http:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!config.contains("UASAMPLEKEY"), "every sample key replaced");
    let path = dir.path().join("accounts.conf");
    std::fs::write(&path, config).expect("write the config");
    let server = NatsServer::start_with_config(&store, &path);
    Secured {
        server,
        dir,
        service,
        partner,
    }
}

/// Writes `contents` to a file in `dir` (as an operator would write a seed file).
fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write a credentials file");
    path
}

fn seed_of(key: &KeyPair) -> String {
    key.seed().expect("a key pair with its seed")
}

impl Secured {
    /// The ledger's configuration: the service user's seed file.
    fn service_config(&self) -> JetStreamConfig {
        let creds = secret_file(
            self.dir.path(),
            "throughcare.nk",
            &format!("{}\n", seed_of(&self.service)),
        );
        config(&self.server).creds(creds)
    }

    async fn ledger(&self) -> JetStreamLog {
        JetStreamLog::connect_with(self.service_config())
            .await
            .unwrap_or_else(|e| panic!("the service user connects: {e}"))
    }

    /// The partner as a partner's own client would connect: its seed, its inbox prefix.
    async fn partner(&self) -> async_nats::Client {
        async_nats::ConnectOptions::new()
            .nkey(seed_of(&self.partner))
            .custom_inbox_prefix(PARTNER_INBOX)
            .request_timeout(Some(Duration::from_secs(2)))
            .connect(self.server.url())
            .await
            .expect("the partner connects")
    }
}

/// Sends a submission as the partner until the service (subscribing in the background)
/// answers; returns the reply's status and body.
async fn ask(partner: &async_nats::Client, token: &str, body: &str) -> (u16, String) {
    let mut last = String::new();
    for _ in 0..50 {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", "application/cloudevents+json");
        headers.insert("Authorization", format!("Bearer {token}").as_str());
        match partner
            .request_with_headers(SUBMIT_SUBJECT, headers, body.to_string().into())
            .await
        {
            Ok(reply) => {
                let status = reply
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(STATUS_HEADER))
                    .expect("a Throughcare-Status header")
                    .as_str()
                    .parse()
                    .expect("a numeric status");
                return (status, String::from_utf8(reply.payload.to_vec()).unwrap());
            }
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("no reply on {SUBMIT_SUBJECT}: {last}");
}

/// A stub of the binary's handler: echoes what the transport handed it.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Fn(SubmitRequest) -> std::future::Ready<SubmitReply> + Send + Sync + 'static {
    move |request: SubmitRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({
            "authorization": request.authorization,
            "content_type": request.content_type,
            "body": String::from_utf8_lossy(&request.body),
        });
        std::future::ready(SubmitReply {
            status: 202,
            content_type: "application/json",
            body: serde_json::to_vec(&body).unwrap(),
        })
    }
}

/// Appends the first event of person `n` (a release date about NOMIS `nomis(seed)`),
/// with event id `id`; panics with `what` if it is refused.
async fn first_event(log: &JetStreamLog, n: u64, id: &str, seed: u32, what: &str) {
    let event = release_date(id, &nomis(seed), seed);
    log.append(request(person(n), ExpectedVersion::NoStream, &[event]))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Publishes "forged" to `subject` as a JetStream publish; whether it was acknowledged.
async fn try_publish(js: &async_nats::jetstream::Context, subject: String) -> Result<(), String> {
    match js.publish(subject, "forged".into()).await {
        Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Awaits `attempt`, which must fail with [`JetStreamError::Unauthorized`] within
/// `limit` (at once, not after waiting out `retry_for`); the error.
async fn refused_within<T>(
    limit: Duration,
    what: &str,
    attempt: impl std::future::Future<Output = Result<T, JetStreamError>>,
) -> JetStreamError {
    let started = Instant::now();
    let e = match attempt.await {
        Err(e @ JetStreamError::Unauthorized { .. }) => e,
        Err(e) => panic!("{what}: not Unauthorized: {e:?}"),
        Ok(_) => panic!("{what}: let in"),
    };
    assert!(
        started.elapsed() < limit,
        "{what}: refused only after {:?}",
        started.elapsed()
    );
    e
}

#[tokio::test]
async fn the_ledger_connects_with_its_seed_file_and_appends() {
    let run = secured();
    let log = run.ledger().await;
    let p = person(1);
    let appended = log
        .append(request(
            p,
            ExpectedVersion::NoStream,
            &[release_date("auth-1", &nomis(1), 1)],
        ))
        .await
        .expect("the service user may append");
    assert_eq!((appended[0].position, appended[0].duplicate), (1, false));
    assert_eq!(log.read_person(p, 0).await.unwrap().len(), 1);
    assert_eq!(log.head().await.unwrap(), 1);
    // The access log's stream, on the same connection, is within the user's rights too.
    let access = log
        .access_log()
        .await
        .unwrap_or_else(|e| panic!("the service user opens the access log: {e}"));
    assert_eq!(AccessLog::head(&access).await.unwrap(), 0);
    // So is an access log on a connection of its own, which uses the same credentials.
    let own = JetStreamAccessLog::connect_with(run.service_config())
        .await
        .unwrap_or_else(|e| panic!("the access log connects with the seed file too: {e}"));
    assert_eq!(AccessLog::head(&own).await.unwrap(), 0);
}

#[tokio::test]
async fn a_partner_cannot_write_to_the_stream_or_call_the_jetstream_api() {
    let run = secured();
    let log = run.ledger().await;
    first_event(&log, 1, "auth-2", 2, "append").await;
    let before = log.head().await.unwrap();

    let partner = run.partner().await;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(partner.clone());
    // Straight into a person's subject, as a JetStream publish.
    let published = try_publish(&js, subject_of(person(2))).await;
    assert!(
        published.is_err(),
        "a partner's publish to {} was acknowledged",
        subject_of(person(2))
    );
    // Nor into the access log's stream.
    let forged = try_publish(&js, access_subject(None)).await;
    assert!(
        forged.is_err(),
        "a partner wrote to the access log's subjects"
    );
    // The JetStream API.
    let info = js.get_stream(STREAM).await;
    assert!(info.is_err(), "a partner read the stream's info");
    let info = partner
        .request(format!("$JS.API.STREAM.INFO.{STREAM}"), "".into())
        .await;
    assert!(info.is_err(), "a partner called $JS.API.STREAM.INFO");
    // Another tenant's replies and the service's own inboxes are not visible either.
    let mut snoop = partner.subscribe("_INBOX.>").await.unwrap();

    first_event(&log, 3, "auth-3", 3, "append").await;
    assert_eq!(
        log.head().await.unwrap(),
        before + 1,
        "only the service's own append moved the stream"
    );
    let stored = log.read_person(person(2), 0).await.unwrap();
    assert!(
        stored.is_empty(),
        "nothing was stored for the forged subject"
    );
    let seen = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut snoop),
    )
    .await;
    assert!(seen.is_err(), "a partner saw traffic on _INBOX.>: {seen:?}");
}

#[tokio::test]
async fn a_partner_submits_by_request_reply_with_its_bearer_token() {
    let run = secured();
    let log = run.ledger().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let config = run.service_config();
    let service = tokio::spawn({
        let calls = calls.clone();
        async move { serve_submissions(&config, echo(calls)).await }
    });
    let partner = run.partner().await;
    let (status, body) = ask(&partner, "partner-token-1", r#"{"specversion":"1.0"}"#).await;
    assert_eq!(status, 202, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["authorization"], "Bearer partner-token-1");
    assert_eq!(body["content_type"], "application/cloudevents+json");
    assert_eq!(body["body"], r#"{"specversion":"1.0"}"#);

    // A reply subject naming a ledger subject or the JetStream API is not answered: the
    // service may publish there, so answering would write into the ledger for the partner.
    let head = log.head().await.unwrap();
    let answered = calls.load(Ordering::SeqCst);
    for forged in [
        subject_of(person(9)),
        format!("$JS.API.STREAM.DELETE.{STREAM}"),
    ] {
        partner
            .publish_with_reply(SUBMIT_SUBJECT, forged, "{}".into())
            .await
            .unwrap();
    }
    // Requests are taken in order: once this one is answered the forged ones were seen.
    let (status, _) = ask(&partner, "partner-token-2", "{}").await;
    assert_eq!(status, 202);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        answered + 1,
        "the forged requests reached the handler"
    );
    assert_eq!(log.head().await.unwrap(), head, "the stream did not move");
    assert!(log.read_person(person(9), 0).await.unwrap().is_empty());
    service.abort();
}

#[tokio::test]
async fn a_wrong_or_missing_credential_is_refused_at_once() {
    let run = secured();
    let stranger = secret_file(
        run.dir.path(),
        "stranger.nk",
        &seed_of(&KeyPair::new_user()),
    );
    for (what, config) in [
        ("an unknown seed", config(&run.server).creds(&stranger)),
        ("no credentials", config(&run.server)),
    ] {
        let connecting =
            JetStreamLog::connect_with(config.clone().retry_for(Duration::from_secs(60)));
        let e = refused_within(Duration::from_secs(5), what, connecting).await;
        assert!(e.is_permanent());
        let text = e.to_string();
        assert!(text.contains("authorization violation"), "{what}: {text}");
        assert!(text.contains("--nats-creds"), "{what}: {text}");
        // The access log's own connection and the submit service connect the same way.
        let access = JetStreamAccessLog::connect_with(config.clone()).await;
        assert!(
            matches!(access, Err(JetStreamError::Unauthorized { .. })),
            "{what}: the access log: {:?}",
            access.err()
        );
        let served = serve_submissions(&config, echo(Arc::new(AtomicUsize::new(0)))).await;
        assert!(
            matches!(served, Err(JetStreamError::Unauthorized { .. })),
            "{what}: {served:?}"
        );
    }
    // The partner's own seed is a real user, but not one that may run the ledger: let in,
    // then named for the permission it lacks, without waiting out `retry_for`.
    let partner = secret_file(run.dir.path(), "partner.nk", &seed_of(&run.partner));
    let as_partner = config(&run.server).creds(&partner);
    let opening = JetStreamLog::connect_with(as_partner.clone());
    let text = refused_within(
        Duration::from_secs(2),
        "a partner opening the ledger",
        opening,
    )
    .await
    .to_string();
    // The first thing refused: its reply inbox or the stream info request.
    assert!(
        text.contains("lacks a permission throughcare needs"),
        "{text}"
    );
    assert!(text.contains("Permissions Violation"), "{text}");
    let serving = serve_submissions(&as_partner, echo(Arc::new(AtomicUsize::new(0))));
    let text = refused_within(
        Duration::from_secs(2),
        "a partner serving submissions",
        serving,
    )
    .await
    .to_string();
    assert!(
        text.contains("Subscription to \"throughcare.submit\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_credentials_file_that_is_neither_creds_nor_seed_is_refused_before_connecting() {
    let run = secured();
    let dir = run.dir.path();
    let account_seed = seed_of(&KeyPair::new_account());
    let public = run.service.public_key();
    for (name, contents, says) in [
        ("garbage", "hello\nworld\n", "neither a NATS .creds file"),
        ("empty", "\n", "empty"),
        ("public", public.as_str(), "public user nkey"),
        ("account", account_seed.as_str(), "not a user seed"),
        (
            "broken",
            "SUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLX",
            "not a valid one",
        ),
    ] {
        let path = secret_file(dir, name, contents);
        match JetStreamLog::connect_with(config(&run.server).creds(&path)).await {
            Err(e @ JetStreamError::Credentials { .. }) => {
                assert!(e.is_permanent());
                let text = e.to_string();
                assert!(text.contains(says), "{name}: {text}");
                if contents.starts_with('S') {
                    assert!(
                        !text.contains(contents),
                        "{name}: the error repeats the seed"
                    );
                }
            }
            Err(e) => panic!("{name}: not a Credentials error: {e:?}"),
            Ok(_) => panic!("{name}: connected"),
        }
    }
    let missing = dir.join("missing.nk");
    let err = JetStreamLog::connect_with(config(&run.server).creds(&missing))
        .await
        .err()
        .expect("a missing file is refused");
    assert!(matches!(err, JetStreamError::Credentials { .. }), "{err:?}");
}

/// Runs the openssl command line in `dir` with whitespace-separated `args` (certificates
/// for the TLS test); a missing openssl is a loud failure, never a skip.
fn openssl(dir: &Path, args: &str) {
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the TLS test needs the openssl command line: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn tls_is_required_and_the_given_ca_is_trusted() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        d,
        &format!(
            "req -x509 {EC} -keyout ca.key -out ca.pem -days 2 -subj /CN=throughcare-test-ca \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
    openssl(
        d,
        &format!("req {EC} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext",
    );
    let store = d.join("store");
    let config_file = d.join("tls.conf");
    std::fs::write(
        &config_file,
        format!(
            "jetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n\
             tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
            store.display().to_string(),
            d.join("server.pem").display().to_string(),
            d.join("server.key").display().to_string(),
        ),
    )
    .unwrap();
    let server = NatsServer::start_with_config(&store, &config_file);

    let log = JetStreamLog::connect_with(config(&server).tls_ca(d.join("ca.pem")))
        .await
        .unwrap_or_else(|e| panic!("TLS with the test CA: {e}\n{}", server.log_text()));
    first_event(&log, 1, "tls-1", 1, "append over TLS").await;

    // Without the CA the server's certificate is not trusted: a connect error, not a
    // credentials problem.
    match JetStreamLog::connect_with(config(&server).retry_for(Duration::from_secs(1))).await {
        Err(e @ JetStreamError::Connect { .. }) => assert!(!e.is_permanent()),
        Err(e) => panic!("expected a connect error: {e:?}"),
        Ok(_) => panic!("connected to a TLS server with an untrusted certificate"),
    }
}
