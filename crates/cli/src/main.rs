//! The `throughcare` binary: `serve` the ledger and its HTTP API, `submit` CloudEvents to
//! a running server, `rebuild` read models from the log.
//!
//! Errors end the process with a non-zero exit and one readable line on stderr.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod demo;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use throughcare_ledger::{EmbeddedLog, EventLog, Ledger};
use throughcare_nats::{
    serve_submissions, JetStreamConfig, JetStreamError, JetStreamLog, SubmitReply,
};
use throughcare_projector::Projector;
use throughcare_server::AppState;

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
        /// Keep the event log in NATS JetStream at this URL (comma-separated for a
        /// cluster); sled under --data then holds only read models.
        #[arg(long, env = "THROUGHCARE_NATS")]
        nats: Option<String>,
        /// Stream and KV replicas when --nats creates them (3 on a 3-node cluster).
        #[arg(long, default_value_t = 1, requires = "nats")]
        replicas: usize,
        /// Seed a synthetic population (through the write path; idempotent).
        #[arg(long)]
        demo: bool,
        /// How many synthetic people `--demo` seeds.
        #[arg(long, default_value_t = 500, requires = "demo")]
        people: u64,
    },
    /// Post CloudEvents (one object or an array) from FILE or - (stdin) to a server.
    Submit {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "THROUGHCARE_URL")]
        url: String,
        file: PathBuf,
    },
    /// Rebuild the read models from the log (the server must be stopped).
    Rebuild {
        #[arg(long, default_value = "./throughcare-data", env = "THROUGHCARE_DATA")]
        data: PathBuf,
        /// The JetStream the log is in, if the server runs with --nats.
        #[arg(long, env = "THROUGHCARE_NATS")]
        nats: Option<String>,
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
                nats,
                replicas,
                demo,
                people,
            } => {
                let backend = nats.map(|url| (url, replicas));
                serve(&data, listen, backend, demo.then_some(people)).await
            }
            Command::Submit { url, file } => submit(&url, &file).await,
            Command::Rebuild { data, nats } => rebuild(&data, nats.map(|u| (u, 1))).await,
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
async fn open(
    data: &Path,
    nats: Option<&(String, usize)>,
) -> Result<(Arc<dyn EventLog>, Projector)> {
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    let log: Arc<dyn EventLog> = match nats {
        None => Arc::new(EmbeddedLog::open(&data.join("ledger")).with_context(|| {
            format!(
                "cannot open the ledger in {} (is another throughcare using it?)",
                data.display()
            )
        })?),
        Some((url, replicas)) => {
            let config = JetStreamConfig::new(url.clone()).replicas(*replicas);
            let started = Instant::now();
            loop {
                match JetStreamLog::connect_with(config.clone()).await {
                    Ok(log) => {
                        tracing::info!(%url, server = %log.server_version(), replicas, "event log on NATS JetStream");
                        break Arc::new(log);
                    }
                    // A server that is too old or unsafe will not become right by waiting.
                    Err(
                        e @ (JetStreamError::TooOld { .. }
                        | JetStreamError::UnknownVersion { .. }
                        | JetStreamError::UnsafeStream { .. }
                        | JetStreamError::NoJetStream { .. }),
                    ) => return Err(e.into()),
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
    Ok((log, projector))
}

async fn serve(
    data: &Path,
    listen: SocketAddr,
    nats: Option<(String, usize)>,
    demo: Option<u64>,
) -> Result<()> {
    if !listen.ip().is_loopback() {
        bail!(
            "open development mode (no --auth) may only listen on a loopback address, not {listen}"
        );
    }
    let (log, projector) = open(data, nats.as_ref()).await?;
    let ledger = Ledger::with_system_clock(log.clone());
    let models = projector.read_models();
    let projector_log = log.clone();
    let projector_task = tokio::spawn(async move {
        if let Err(e) = projector.run(projector_log).await {
            tracing::error!(error = %e, "projector stopped");
        }
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let head = log.head().await?;
    tracing::warn!("open development mode: no authentication; listening on loopback only");
    let backend = if nats.is_some() {
        "NATS JetStream"
    } else {
        "the embedded sled ledger"
    };
    tracing::info!(%listen, data = %data.display(), head, checkpoint = models.checkpoint(), "throughcare serving on {backend}");
    println!("throughcare listening on http://{}", listener.local_addr()?);
    let state = AppState::new(ledger.clone(), models.clone());
    if let Some((url, _)) = &nats {
        // Partners may also submit by NATS request-reply, answered exactly as over HTTP.
        let (url, state) = (url.clone(), state.clone());
        tokio::spawn(async move {
            let served = serve_submissions(&url, move |content_type, body| {
                let state = state.clone();
                async move {
                    let (status, content_type, body) = throughcare_server::handle_submission(
                        &state,
                        content_type.as_deref(),
                        &body,
                    )
                    .await;
                    SubmitReply {
                        status,
                        content_type,
                        body,
                    }
                }
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the NATS submit service stopped");
            }
        });
    }
    if let Some(people) = demo {
        // Seed in the background so the page answers while the population grows.
        let ledger = ledger.clone();
        tokio::spawn(async move {
            if let Err(e) = demo::seed(&ledger, people).await {
                tracing::error!(error = %e, "demo seeding failed");
            }
        });
    }
    throughcare_server::serve(listener, state, shutdown())
        .await
        .context("server failed")?;
    projector_task.abort();
    tracing::info!("stopped");
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

async fn submit(url: &str, file: &Path) -> Result<()> {
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
    let response = reqwest::Client::new()
        .post(&endpoint)
        .header("content-type", content_type)
        .body(body)
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

async fn rebuild(data: &Path, nats: Option<(String, usize)>) -> Result<()> {
    if nats.is_none() && !data.join("ledger").exists() {
        bail!("no ledger in {}", data.display());
    }
    let (log, projector) = open(data, nats.as_ref()).await?;
    let started = Instant::now();
    let n = projector.rebuild(log.as_ref()).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rebuilt read models from {n} events in {secs:.2}s ({:.0} events/s)",
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
