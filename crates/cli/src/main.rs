//! The `throughcare` binary: `serve` the ledger and its HTTP API, `submit` CloudEvents to
//! a running server, `rebuild` read models from the log, make a bearer `token`, `audit`
//! the log from outside.
//!
//! Errors end the process with a non-zero exit and one readable line on stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod audit;
mod checkpoints;
mod demo;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use throughcare_ledger::{AccessLog, EmbeddedLog, EventLog, Ledger};
use throughcare_nats::{
    consume_hmpps, serve_submissions_reporting, Disposition, JetStreamConfig, JetStreamLog,
    SubmitReply, SubmitRequest,
};
use throughcare_projector::{Backoff, Projector};
use throughcare_server::{AppState, Authenticator, Role};

#[derive(Parser)]
#[command(
    name = "throughcare",
    version,
    about = "Continuity-of-care ledger for people leaving prison"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ledger, the projector and the HTTP API.
    Serve {
        /// Directory of the embedded ledger and the read models.
        #[arg(long, default_value = "./throughcare-data", env = "THROUGHCARE_DATA")]
        data: PathBuf,
        /// Address to listen on (open development mode allows loopback only).
        #[arg(long, default_value = "127.0.0.1:8080", env = "THROUGHCARE_LISTEN")]
        listen: SocketAddr,
        /// Principals (TOML: [[principal]] blocks, optional [jwt] and [metrics]). Without
        /// it the server runs in open development mode, on loopback only.
        #[arg(long, env = "THROUGHCARE_AUTH")]
        auth: Option<PathBuf>,
        /// TLS certificate chain (PEM); with --tls-key the server speaks HTTPS.
        #[arg(long, requires = "tls_key", env = "THROUGHCARE_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, requires = "tls_cert", env = "THROUGHCARE_TLS_KEY")]
        tls_key: Option<PathBuf>,
        /// A proxy in front terminates TLS: allow plain HTTP on a non-loopback address.
        #[arg(long, conflicts_with = "tls_cert")]
        behind_tls_proxy: bool,
        /// NATS credentials of the ledger's own connection: a .creds file or an nkey seed.
        #[arg(long, requires = "nats", env = "THROUGHCARE_NATS_CREDS")]
        nats_creds: Option<PathBuf>,
        /// CA certificate (PEM) to verify the NATS server's TLS certificate.
        #[arg(long, requires = "nats", env = "THROUGHCARE_NATS_TLS_CA")]
        nats_tls_ca: Option<PathBuf>,
        /// Keep the event log in NATS JetStream at this URL (comma-separated for a
        /// cluster); sled under --data then holds only read models.
        #[arg(long, env = "THROUGHCARE_NATS")]
        nats: Option<String>,
        /// Stream replicas (event log and access log) when --nats creates them (3 on a
        /// 3-node cluster).
        #[arg(long, default_value_t = 1, requires = "nats")]
        replicas: usize,
        /// How long one NATS request (a batch's ack, a message get) may take before it is
        /// retried; a stream leader killed mid-request costs this much.
        #[arg(long, requires = "nats", env = "THROUGHCARE_NATS_REQUEST_TIMEOUT_MS", default_value_t = JetStreamConfig::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64)]
        nats_request_timeout_ms: u64,
        /// How long a write keeps being retried through NATS failures (no quorum, no
        /// server) before it is answered 503 with Retry-After.
        #[arg(long, requires = "nats", env = "THROUGHCARE_NATS_RETRY_FOR_SECS", default_value_t = JetStreamConfig::DEFAULT_RETRY_FOR.as_secs())]
        nats_retry_for_secs: u64,
        /// Consume HMPPS domain events (SNS notifications delivered from SQS, as JSON
        /// messages) from this existing JetStream stream, through a durable consumer.
        #[arg(long, requires = "nats", env = "THROUGHCARE_HMPPS_STREAM")]
        hmpps_stream: Option<String>,
        /// Seed a synthetic population (through the write path; idempotent).
        #[arg(long)]
        demo: bool,
        /// How many synthetic people `--demo` seeds.
        #[arg(long, default_value_t = 500, requires = "demo")]
        people: u64,
        /// The checkpoint signing key (a `throughcare keygen` file). Without it the server
        /// uses (and on first start makes) `checkpoint-signing-key` under --data.
        #[arg(long, env = "THROUGHCARE_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
        /// The checkpoint origin (default `throughcare.local/<ledger id>`); on JetStream give
        /// every `serve` the same --origin and --signing-key so their checkpoints agree.
        #[arg(long, env = "THROUGHCARE_ORIGIN")]
        origin: Option<String>,
    },
    /// Make a checkpoint signing key: writes it to FILE (mode 0600, never over an existing
    /// file) and prints its verifier key.
    Keygen {
        /// The key name (conventionally the log's origin).
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Post CloudEvents (one object or an array) from FILE or - (stdin) to a server.
    Submit {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "THROUGHCARE_URL")]
        url: String,
        /// Bearer token (when the server runs with --auth).
        #[arg(long, env = "THROUGHCARE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        file: PathBuf,
    },
    /// Make a new bearer token: prints the token once, then the [[principal]] block to
    /// paste into the --auth file (which keeps only the token's SHA-256).
    Token {
        /// Who, as the access log names it.
        #[arg(long)]
        name: String,
        /// PARTNER, WORKER, MANAGER, COMMISSIONER or AUDITOR.
        #[arg(long)]
        role: String,
        /// WORKER: the worker id of its caseload.
        #[arg(long)]
        worker_id: Option<String>,
        /// MANAGER / COMMISSIONER: a prison code (repeat for several).
        #[arg(long = "prison")]
        prisons: Vec<String>,
        /// PARTNER: a CloudEvents source it may use (repeat for several).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// PARTNER: an event type it may submit, e.g. throughcare.referral.* (repeat; at
        /// least one: none are implied).
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// Rebuild the read models from the log (the server must be stopped).
    Rebuild {
        #[arg(long, default_value = "./throughcare-data", env = "THROUGHCARE_DATA")]
        data: PathBuf,
        /// The JetStream the log is in, if the server runs with --nats.
        #[arg(long, env = "THROUGHCARE_NATS")]
        nats: Option<String>,
    },
    /// Check the ledger from outside, trusting only its verifier key; replay the past.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify a server's log: the signed checkpoint, every entry's hash, every person's
    /// chain, the Merkle root, and with --since that history was only appended to. Exits 0,
    /// or non-zero with one line naming the first bad position.
    Verify {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "THROUGHCARE_URL")]
        url: String,
        /// The verifier key (`<name>+<hash>+<key>`), or a file holding it.
        #[arg(long)]
        key: String,
        /// An earlier signed checkpoint (a file) the latest must be consistent with.
        #[arg(long)]
        since: Option<PathBuf>,
        /// An AUDITOR bearer token (when the server runs with --auth).
        #[arg(long, env = "THROUGHCARE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Rebuild the read models as of a time (events recorded at or before it) into a new
    /// directory, from the embedded ledger under --data (the server must be stopped).
    Replay {
        /// RFC 3339, e.g. 2025-03-31T23:59:59Z.
        #[arg(long)]
        as_of: String,
        #[arg(long, default_value = "./throughcare-data", env = "THROUGHCARE_DATA")]
        data: PathBuf,
        /// An empty or new directory for the replayed read models.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sled=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("throughcare: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                data,
                listen,
                auth,
                tls_cert,
                tls_key,
                behind_tls_proxy,
                nats,
                nats_creds,
                nats_tls_ca,
                replicas,
                nats_request_timeout_ms,
                nats_retry_for_secs,
                hmpps_stream,
                demo,
                people,
                signing_key,
                origin,
            } => {
                let backend = nats.map(|url| {
                    let mut config = JetStreamConfig::new(url)
                        .replicas(replicas)
                        .request_timeout(Duration::from_millis(nats_request_timeout_ms.max(1)))
                        .retry_for(Duration::from_secs(nats_retry_for_secs));
                    if let Some(c) = nats_creds {
                        config = config.creds(c);
                    }
                    if let Some(ca) = nats_tls_ca {
                        config = config.tls_ca(ca);
                    }
                    config
                });
                let tls = tls_cert.zip(tls_key);
                let options = ServeOptions {
                    listen,
                    auth,
                    tls,
                    behind_tls_proxy,
                    hmpps_stream,
                    demo: demo.then_some(people),
                    signing_key,
                    origin,
                };
                serve(&data, backend, options).await
            }
            Command::Submit { url, token, file } => submit(&url, token.as_deref(), &file).await,
            Command::Token {
                name,
                role,
                worker_id,
                prisons,
                sources,
                types,
            } => token(
                &name,
                &role,
                worker_id.as_deref(),
                &prisons,
                &sources,
                &types,
            ),
            Command::Keygen { name, out } => checkpoints::keygen(&name, &out),
            Command::Rebuild { data, nats } => rebuild(&data, nats.map(JetStreamConfig::new)).await,
            Command::Audit { command } => match command {
                AuditCommand::Verify {
                    url,
                    key,
                    since,
                    token,
                } => audit::verify(&url, &key, since.as_deref(), token).await,
                AuditCommand::Replay { as_of, data, out } => {
                    audit::replay(&as_of, &data, &out).await
                }
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throughcare: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long `serve --nats` keeps trying to reach NATS at start.
const NATS_CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Opens the event log (embedded under `data`, or JetStream) and the read models.
/// The event log and the access log, on the same backend.
struct Logs {
    events: Arc<dyn EventLog>,
    access: Arc<dyn AccessLog>,
}

async fn open(data: &Path, nats: Option<&JetStreamConfig>) -> Result<(Logs, Projector)> {
    private_files(data)?;
    let logs = match nats {
        None => {
            let log = EmbeddedLog::open(&data.join("ledger")).with_context(|| {
                format!(
                    "cannot open the ledger in {} (is another throughcare using it?)",
                    data.display()
                )
            })?;
            let access = log.access_log();
            Logs {
                access: Arc::new(access),
                events: Arc::new(log),
            }
        }
        Some(config) => {
            let (url, replicas) = (&config.url, config.replicas);
            let started = Instant::now();
            loop {
                match JetStreamLog::connect_with(config.clone()).await {
                    Ok(log) => {
                        tracing::info!(%url, server = %log.server_version(), replicas, "event log on NATS JetStream");
                        let access = log
                            .access_log()
                            .await
                            .context("cannot open the access log stream THROUGHCARE_ACCESS")?;
                        break Logs {
                            access: Arc::new(access),
                            events: Arc::new(log),
                        };
                    }
                    // A server that is too old or unsafe, or credentials it refuses, will not
                    // become right by waiting.
                    Err(e) if e.is_permanent() => return Err(e.into()),
                    Err(e) if started.elapsed() < NATS_CONNECT_PATIENCE => {
                        tracing::warn!(error = %e, "NATS not reachable yet; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };
    let projector = Projector::open(&data.join("readmodels"))
        .with_context(|| format!("cannot open the read models in {}", data.display()))?;
    Ok((logs, projector))
}

/// What `serve` was asked to do, beyond where the data lives.
struct ServeOptions {
    listen: SocketAddr,
    auth: Option<PathBuf>,
    tls: Option<(PathBuf, PathBuf)>,
    behind_tls_proxy: bool,
    /// The JetStream stream of HMPPS domain events to consume (needs --nats).
    hmpps_stream: Option<String>,
    demo: Option<u64>,
    /// The checkpoint signing key file and origin (checkpoints.rs).
    signing_key: Option<PathBuf>,
    origin: Option<String>,
}

/// Refuses an exposed listener without access control or transport security.
fn check_binding(o: &ServeOptions) -> Result<()> {
    let listen = o.listen;
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if o.auth.is_none() {
        bail!("listening on {listen} needs --auth FILE: open development mode (no --auth) may only listen on a loopback address");
    }
    if o.tls.is_none() && !o.behind_tls_proxy {
        bail!("listening on {listen} needs TLS: give --tls-cert FILE --tls-key FILE, or --behind-tls-proxy when a proxy in front terminates TLS");
    }
    Ok(())
}

async fn serve(data: &Path, nats: Option<JetStreamConfig>, o: ServeOptions) -> Result<()> {
    check_binding(&o)?;
    // Check what can be checked before opening anything.
    let auth = match &o.auth {
        Some(path) => Some(
            Authenticator::load(path)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let tls = match &o.tls {
        Some((cert, key)) => Some(throughcare_server::tls::load(cert, key)?),
        None => None,
    };
    let (logs, projector) = open(data, nats.as_ref()).await?;
    let log = logs.events.clone();
    let ledger = Ledger::with_system_clock(log.clone());
    let models = projector.read_models();
    let signing = checkpoints::start(
        data,
        &projector,
        log.clone(),
        o.signing_key.as_deref(),
        o.origin.clone(),
    )?;
    let projector_log = log.clone();
    // A failed projector is restarted with backoff; meanwhile /readyz answers 503 with
    // the reason, rather than the server serving stale read models as if current.
    let projector_task = tokio::spawn(async move {
        projector
            .run_supervised(projector_log, Backoff::default())
            .await
    });
    let listener = tokio::net::TcpListener::bind(o.listen)
        .await
        .with_context(|| format!("cannot listen on {}", o.listen))?;
    let head = log.head().await?;
    let mut state = AppState::new(ledger.clone(), models.clone(), logs.access.clone())
        .with_secure_cookies(tls.is_some() || o.behind_tls_proxy)
        .with_ledger_audit(signing.audit.clone())
        // As-of replays of the aggregates are folded into scratch stores beside the data.
        .with_replay_scratch(data.join("replays"));
    let publisher = match &nats {
        Some(config) => match throughcare_nats::CheckpointPublisher::connect(config).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoints will not be published on NATS");
                None
            }
        },
        None => None,
    };
    tokio::spawn(throughcare_server::ledger_api::run_checkpoints(
        signing.audit.tree.clone(),
        signing.key,
        signing.audit.origin.clone(),
        head,
        move |_, note| {
            if let Some(p) = publisher.clone() {
                let note = note.to_string();
                tokio::spawn(async move { p.publish(note).await });
            }
        },
    ));
    match auth {
        Some(auth) => {
            tracing::info!(principals = auth.principals(), "access control on: every request needs a principal");
            state = state.with_auth(auth);
        }
        None => tracing::warn!(
            "OPEN DEVELOPMENT MODE: no --auth, so every caller may read and write everything; listening on loopback only. Never use this with real data."
        ),
    }
    let backend = if nats.is_some() {
        "NATS JetStream"
    } else {
        "the embedded sled ledger"
    };
    tracing::info!(listen = %o.listen, data = %data.display(), head, checkpoint = models.checkpoint(), "throughcare serving on {backend}");
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "throughcare listening on {scheme}://{}",
        listener.local_addr()?
    );
    if let Some(config) = &nats {
        // Partners may also submit by NATS request-reply, answered exactly as over HTTP.
        // Supervised: restarted after a failure, and /readyz is 503 while it is not
        // subscribed (partners would get "no responders").
        let (config, state) = (config.clone(), state.clone());
        state.services.set(SUBMIT_SERVICE, false);
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(200);
            loop {
                let handler_state = state.clone();
                let services = state.services.clone();
                let served = serve_submissions_reporting(
                    &config,
                    move |request: SubmitRequest| {
                        let state = handler_state.clone();
                        async move {
                            let (status, content_type, body) =
                                throughcare_server::handle_submission(
                                    &state,
                                    request.authorization.as_deref(),
                                    request.content_type.as_deref(),
                                    &request.body,
                                )
                                .await;
                            SubmitReply {
                                status,
                                content_type,
                                body,
                            }
                        }
                    },
                    move |up| services.set(SUBMIT_SERVICE, up),
                )
                .await;
                state.services.set(SUBMIT_SERVICE, false);
                match served {
                    Err(e) => {
                        tracing::error!(error = %e, "the NATS submit service stopped; restarting")
                    }
                    Ok(()) => {
                        tracing::warn!("the NATS submit service's connection closed; restarting")
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
    }
    if let (Some(config), Some(stream)) = (&nats, &o.hmpps_stream) {
        spawn_hmpps_consumer(config.clone(), stream.clone(), state.clone());
    }
    if let Some(people) = o.demo {
        // Seed in the background so the page answers while the population grows.
        let ledger = ledger.clone();
        tokio::spawn(async move {
            if let Err(e) = demo::seed(&ledger, people).await {
                tracing::error!(error = %e, "demo seeding failed");
            }
        });
    }
    throughcare_server::serve(listener, state, tls, shutdown())
        .await
        .context("server failed")?;
    projector_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Makes everything this process creates readable by its user only (umask 077: files
/// 0600, directories 0700), creates `data`, and takes away what an older version left
/// open to others in it: it holds the ledger, the keys and the read models.
fn private_files(data: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let mut stack = vec![data.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The names `/readyz` gives the services beside the HTTP server.
const SUBMIT_SERVICE: &str = "nats-submit";
const HMPPS_SERVICE: &str = "hmpps-consumer";

/// Consumes HMPPS domain events from `stream`, each handled exactly as
/// `POST /v1/hmpps/domain-events` would handle it for the HMPPS partner: settled (acked)
/// when recorded, a duplicate or ignored; dead-lettered when it can never be recorded;
/// delivered again when the ledger is unavailable.
fn spawn_hmpps_consumer(config: JetStreamConfig, stream: String, state: AppState) {
    state.services.set(HMPPS_SERVICE, false);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(200);
        loop {
            let (counter, handler_state) = (state.clone(), state.clone());
            state.services.set(HMPPS_SERVICE, true);
            let consumed = consume_hmpps(
                &config,
                &stream,
                move |body: Vec<u8>| {
                    let state = handler_state.clone();
                    async move {
                        let (status, _, reply) =
                            throughcare_server::handle_hmpps_message(&state, &body).await;
                        match status {
                            200..=299 => Disposition::Settled,
                            500..=599 => Disposition::Retry,
                            _ => Disposition::DeadLetter(
                                String::from_utf8_lossy(&reply).into_owned(),
                            ),
                        }
                    }
                },
                move || throughcare_server::note_hmpps_dead_letter(&counter),
            )
            .await;
            // A consumer that stopped must be seen (no silent backlog on the HMPPS
            // stream): /readyz says so until it runs again.
            state.services.set(HMPPS_SERVICE, false);
            match consumed {
                Err(e) => {
                    tracing::error!(error = %e, "the HMPPS domain-events consumer stopped; restarting")
                }
                Ok(()) => tracing::warn!(
                    "the HMPPS domain-events consumer's connection closed; restarting"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    });
}

/// Prints a fresh token once and the block that lets it in.
fn token(
    name: &str,
    role: &str,
    worker_id: Option<&str>,
    prisons: &[String],
    sources: &[String],
    types: &[String],
) -> Result<()> {
    let role = Role::parse(&role.to_ascii_uppercase()).ok_or_else(|| {
        anyhow::anyhow!(
            "--role must be PARTNER, WORKER, MANAGER, COMMISSIONER or AUDITOR, not {role:?}"
        )
    })?;
    match role {
        Role::Partner if sources.is_empty() => bail!("a PARTNER needs at least one --source"),
        // The auth file refuses a PARTNER without types; say so before printing a block
        // that would stop the server.
        Role::Partner if types.is_empty() => bail!(
            "a PARTNER needs at least one --type, e.g. --type 'throughcare.referral.*' (none are implied)"
        ),
        Role::Worker if worker_id.is_none() => bail!("a WORKER needs --worker-id"),
        Role::Manager if prisons.is_empty() => bail!("a MANAGER needs at least one --prison"),
        _ => {}
    }
    let prisons: Vec<String> = prisons.iter().map(|p| p.to_ascii_uppercase()).collect();
    let (token, sha256) = throughcare_server::auth::new_token();
    let block = throughcare_server::auth::principal_block(
        name, role, &sha256, worker_id, &prisons, sources, types,
    );
    println!("{token}\n\n{block}");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn submit(url: &str, token: Option<&str>, file: &Path) -> Result<()> {
    let body = if file == Path::new("-") {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut s).context("cannot read stdin")?;
        s
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let content_type = if batch {
        "application/cloudevents-batch+json"
    } else {
        "application/cloudevents+json"
    };
    let endpoint = format!("{}/v1/events", url.trim_end_matches('/'));
    let mut request = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let reply: serde_json::Value = response
        .json()
        .await
        .context("the server's reply is not JSON")?;
    if !status.is_success() {
        let mut line = format!(
            "{} {}",
            status.as_u16(),
            reply["detail"].as_str().unwrap_or("")
        );
        for e in reply["errors"].as_array().into_iter().flatten() {
            line.push_str(&format!(
                "; {} {}",
                e["pointer"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            ));
        }
        bail!(line);
    }
    let items = if batch {
        reply["items"].as_array().cloned().unwrap_or_default()
    } else {
        vec![reply]
    };
    for i in items {
        println!(
            "{}\tperson {}\tposition {}{}",
            i["id"].as_str().unwrap_or("?"),
            i["person_id"].as_str().unwrap_or("?"),
            i["position"],
            if i["duplicate"] == true {
                "\t(duplicate: recorded before)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

async fn rebuild(data: &Path, nats: Option<JetStreamConfig>) -> Result<()> {
    if nats.is_none() && !data.join("ledger").exists() {
        bail!("no ledger in {}", data.display());
    }
    let (logs, projector) = open(data, nats.as_ref()).await?;
    let started = Instant::now();
    let n = projector.rebuild(logs.events.as_ref()).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rebuilt read models from {n} events in {secs:.2}s ({:.0} events/s)",
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
