//! Checkpoint signing at the edge: `throughcare keygen`, the signing key `serve` uses
//! (`--signing-key`, or one made under `--data` on first start), and starting the audit
//! tree follower and the checkpoint task beside the projector.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rand::RngCore as _;
use throughcare_ledger::EventLog;
use throughcare_projector::Projector;
use throughcare_server::LedgerAudit;
use throughcare_tlog::SigningKey;

/// The signing key `serve` makes under `--data` when it is given none.
const DEFAULT_KEY_FILE: &str = "checkpoint-signing-key";

/// A fresh Ed25519 seed from the operating system's RNG.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

/// Writes a secret to a new file readable by its owner only (never over an existing one).
fn write_secret(path: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `throughcare keygen --name NAME --out FILE`: writes the signing key to FILE (mode
/// 0600) and prints the verifier key.
pub fn keygen(name: &str, out: &Path) -> Result<()> {
    let (signing, verifier) = throughcare_tlog::keygen(name, seed())
        .map_err(|e| anyhow::anyhow!("cannot make a key named {name:?}: {e}"))?;
    write_secret(out, &signing)?;
    println!("{verifier}");
    Ok(())
}

fn read_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    SigningKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The audit tree and checkpoint signing of `serve`.
pub struct Signing {
    pub audit: LedgerAudit,
    pub key: SigningKey,
}

/// Opens the audit tree beside the read models, picks the origin (`--origin`, default
/// `throughcare.local/<ledger id>`) and the signing key (`--signing-key`, else the one
/// under `data`, made and announced on first start), and spawns the tree follower.
pub fn start(
    data: &Path,
    projector: &Projector,
    log: Arc<dyn EventLog>,
    signing_key: Option<&Path>,
    origin: Option<String>,
) -> Result<Signing> {
    let (tree, follower) = projector
        .audit_tree()
        .context("cannot open the audit tree beside the read models")?;
    let origin = match origin {
        Some(o) => o,
        None => {
            let id = tree.ledger_id_or(|| ulid::Ulid::new().to_string())?;
            format!("throughcare.local/{id}")
        }
    };
    let key = match signing_key {
        Some(path) => read_key(path)?,
        None => {
            let path: PathBuf = data.join(DEFAULT_KEY_FILE);
            if path.exists() {
                read_key(&path)?
            } else {
                let key = SigningKey::from_seed(&origin, seed())
                    .map_err(|e| anyhow::anyhow!("--origin {origin:?} cannot name a key: {e}"))?;
                write_secret(&path, &key.to_text())?;
                eprintln!(
                    "throughcare: made the checkpoint signing key {}; its verifier key is {}",
                    path.display(),
                    key.verifier()
                );
                key
            }
        }
    };
    tracing::info!(%origin, verifier_key = %key.verifier(), "signing checkpoints");
    tokio::spawn(async move {
        if let Err(e) = follower.run(log).await {
            tracing::error!(error = %e, "audit tree follower stopped");
        }
    });
    Ok(Signing {
        audit: LedgerAudit {
            tree,
            verifier: key.verifier(),
            origin,
        },
        key,
    })
}
