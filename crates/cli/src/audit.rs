//! `throughcare audit`: the auditor's side of DESIGN.md "Audit", written from the contract
//! alone and trusting nothing but the verifier key.
//!
//! - `verify` fetches the latest signed checkpoint, checks its signature, pages through
//!   `/v1/ledger/entries` up to its size, re-hashes every stored body, follows every
//!   person's `prev` chain, recomputes the RFC 9162 root and compares it with the signed
//!   one, and with `--since` proves the earlier checkpoint's tree is a prefix of the new
//!   one. The first problem found ends the run with one line naming its position.
//! - `replay` folds the events recorded at or before a time into fresh read models.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use throughcare_ledger::{EmbeddedLog, EventLog};
use throughcare_projector::Projector;
use throughcare_tlog::{
    leaf_hash, node_hash, root_at, verify_consistency, Checkpoint, Error as TlogError, Hash,
    NodeStore, VerifierKey,
};

/// The most entries one page may ask for (DESIGN.md: `limit` <= 1000).
const PAGE: u64 = 1000;
/// Pages fetched ahead of the one being checked.
const PREFETCH: usize = 4;
/// Runs longer than this many entries get a progress bar (on a terminal).
const PROGRESS_FROM: u64 = 10_000;

/// A failed check: the one line `audit verify` ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The first position found bad, when one can be named.
    pub position: Option<u64>,
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(p) => write!(f, "audit failed at position {p}: {}", self.what),
            None => write!(f, "audit failed: {}", self.what),
        }
    }
}

impl std::error::Error for Finding {}

fn at(position: u64, what: impl Into<String>) -> anyhow::Error {
    Finding {
        position: Some(position),
        what: what.into(),
    }
    .into()
}

/// One element of `/v1/ledger/entries`, borrowed from the page where it can be (only
/// `stored`, which is escaped JSON inside JSON, is unescaped into a string of its own).
#[derive(Deserialize)]
struct Entry<'a> {
    position: u64,
    #[serde(borrow)]
    person_id: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
    #[serde(borrow)]
    stored: Cow<'a, str>,
}

#[derive(Deserialize)]
struct EntriesPage<'a> {
    #[serde(borrow)]
    entries: Vec<Entry<'a>>,
}

/// The members of the stored body an auditor checks (the event itself is not needed).
#[derive(Deserialize)]
struct StoredBody<'a> {
    #[serde(borrow)]
    person_id: Cow<'a, str>,
    #[serde(borrow)]
    prev: Cow<'a, str>,
    #[allow(dead_code)]
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
    #[allow(dead_code)]
    event: serde::de::IgnoredAny,
}

/// One entry as checked on its own, off the walk (in its page's task): what the walk in
/// position order still needs.
struct Checked {
    position: u64,
    /// RFC 9162 leaf hash of the stored bytes.
    leaf: Hash,
    /// The person and `prev` the stored bytes name, with the SHA-256 of the bytes; or what
    /// is wrong with the entry on its own.
    chain: Result<Link, String>,
}

/// An entry's place in its person's chain.
struct Link {
    person_id: String,
    prev: Hash,
    hash: Hash,
}

#[derive(Deserialize)]
struct ConsistencyProof {
    first: u64,
    second: u64,
    hashes: Vec<String>,
}

/// The complete-subtree nodes of the auditor's own tree, dense per level (32 bytes a
/// node, about 2n nodes): roots of any prefix come from here.
#[derive(Default)]
struct Levels(Vec<Vec<Hash>>);

impl Levels {
    /// Appends a leaf hash and every complete subtree it closes (RFC 9162 interior nodes).
    fn push_leaf(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.0.len() <= level {
                self.0.resize_with(level + 1, Vec::new);
            }
            let row = &mut self.0[level];
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            hash = node_hash(&row[row.len() - 2], &hash);
            level += 1;
        }
    }

    /// Leaves appended.
    fn size(&self) -> u64 {
        self.0.first().map_or(0, |l| l.len() as u64)
    }
}

impl NodeStore for Levels {
    fn get(&self, level: u8, index: u64) -> Result<Option<Hash>, TlogError> {
        Ok(self
            .0
            .get(usize::from(level))
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied())
    }
}

/// An HTTP client for the AUDITOR routes of one server (cheap to clone).
#[derive(Clone)]
struct Remote {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Remote {
    fn new(url: &str, token: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            // The server closes a keep-alive connection idle for 10 s: never reuse one that
            // old, or a request may be sent as the server closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn get(&self, path_and_query: &str) -> Result<reqwest::Response> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = self.http.get(&url);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(200).collect());
            let hint = match status.as_u16() {
                401 | 403 => {
                    " (the ledger routes need an AUDITOR token: --token or THROUGHCARE_TOKEN)"
                }
                _ => "",
            };
            bail!("GET {url}: {status} {}{hint}", detail.trim());
        }
        Ok(response)
    }

    async fn text(&self, path_and_query: &str) -> Result<String> {
        Ok(self.get(path_and_query).await?.text().await?)
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> Result<T> {
        let bytes = self.get(path_and_query).await?.bytes().await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("GET {path_and_query}: the reply is not the expected JSON"))
    }

    /// The reply with the page of entries from `from` (parsed where it is checked).
    async fn entries_page(&self, from: u64, limit: u64) -> Result<reqwest::Response> {
        self.get(&format!("/v1/ledger/entries?from={from}&limit={limit}"))
            .await
    }

    /// The page of entries from `from`, fetched and checked entry by entry on their own.
    async fn checked_page(&self, from: u64, limit: u64) -> Result<Vec<Checked>> {
        let bytes = self.entries_page(from, limit).await?.bytes().await?;
        let path = format!("/v1/ledger/entries?from={from}&limit={limit}");
        // Hashing and parsing a page is CPU work: off the async workers, so that the
        // next pages keep downloading meanwhile.
        tokio::task::spawn_blocking(move || check_page(&bytes, &path))
            .await
            .context("the page check stopped")?
    }
}

/// Parses a page of entries and checks each on its own (see [`check_alone`]).
fn check_page(bytes: &[u8], path: &str) -> Result<Vec<Checked>> {
    let page: EntriesPage<'_> = serde_json::from_slice(bytes)
        .with_context(|| format!("GET {path}: the reply is not the expected JSON"))?;
    Ok(page.entries.iter().map(check_alone).collect())
}

/// A verifier key given as its text or as a file holding it.
fn read_key(key: &str) -> Result<VerifierKey> {
    let text = if Path::new(key).is_file() {
        std::fs::read_to_string(key).with_context(|| format!("cannot read the key file {key}"))?
    } else {
        key.to_string()
    };
    VerifierKey::parse(&text).map_err(|e| anyhow!("--key is not a verifier key: {e}"))
}

fn decode_hash(b64: &str) -> Option<Hash> {
    BASE64.decode(b64).ok()?.try_into().ok()
}

/// What a passed `audit verify` established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The origin (log name) of the latest checkpoint.
    pub origin: String,
    /// Its size: every entry `1..=size` was checked.
    pub size: u64,
    /// Its root, which the auditor recomputed.
    pub root: Hash,
    /// Persons whose chains were followed.
    pub persons: usize,
    /// The size of the `--since` checkpoint proven a prefix, if one was given.
    pub since: Option<u64>,
    /// Wall time of the walk (after the checkpoint was fetched and opened).
    pub elapsed: Duration,
}

/// `throughcare audit verify`: [`verify_log`], then its report on stdout.
pub async fn verify(
    url: &str,
    key: &str,
    since: Option<&Path>,
    token: Option<String>,
) -> Result<()> {
    let v = verify_log(url, key, since, token).await?;
    let since_line = match v.since {
        Some(size) => format!(
            "\nconsistent with the earlier checkpoint of size {size} (history only appended to)"
        ),
        None => String::new(),
    };
    println!(
        "verified {} entries of {}\nsize {}\nroot {}\npersons {}\n{:.0} events/s{since_line}",
        v.size,
        v.origin,
        v.size,
        BASE64.encode(v.root),
        v.persons,
        v.size as f64 / v.elapsed.as_secs_f64().max(1e-9),
    );
    Ok(())
}

/// Verifies the server at `url` against the verifier key `key` (its text or a file
/// holding it), and with `since` (a file holding an earlier signed checkpoint) that the
/// log only grew since. The first problem found is the error, a [`Finding`] naming its
/// position when one can be named. Prints nothing (a progress bar on a terminal's stderr
/// for long runs), so the bench can call it too.
pub async fn verify_log(
    url: &str,
    key: &str,
    since: Option<&Path>,
    token: Option<String>,
) -> Result<Verified> {
    let key = read_key(key)?;
    // The earlier checkpoint is read first: a bad file should not cost a full run.
    let earlier = match since {
        Some(file) => {
            let note = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let c = key.open(&note).map_err(|e| Finding {
                position: None,
                what: format!(
                    "the --since checkpoint {} does not verify: {e}",
                    file.display()
                ),
            })?;
            Some(c)
        }
        None => None,
    };
    let remote = Remote::new(url, token)?;
    let note = remote.text("/v1/ledger/checkpoint").await?;
    let checkpoint = match key.open(&note) {
        Ok(c) => c,
        Err(e) => {
            // Say which key the server signs with, if it says: a wrong --key is a common
            // mistake, and saying so costs nothing (it is not trusted for anything).
            let served = remote
                .text("/v1/ledger/key")
                .await
                .map(|k| format!(" (the server names its key {})", k.trim()))
                .unwrap_or_default();
            return Err(Finding {
                position: None,
                what: format!("the latest checkpoint does not verify with the key: {e}{served}"),
            }
            .into());
        }
    };
    let size = checkpoint.size;
    if let Some(old) = &earlier {
        if old.origin != checkpoint.origin {
            return Err(Finding {
                position: None,
                what: format!(
                    "the --since checkpoint is of log {:?}, the server's of log {:?}",
                    old.origin, checkpoint.origin
                ),
            }
            .into());
        }
        if old.size > size {
            return Err(at(
                size + 1,
                format!(
                    "the log shrank: the --since checkpoint has {} entries, the latest only {size} (positions {}..={} are gone)",
                    old.size,
                    size + 1,
                    old.size
                ),
            ));
        }
    }

    let started = Instant::now();
    let progress = progress_bar(size);
    let mut nodes = Levels::default();
    // person id -> the hash of their last event so far.
    let mut heads: HashMap<String, Hash> = HashMap::new();
    // The first problem found in the entries themselves (the walk goes on to the end so the
    // tree can place a root mismatch, which may lie earlier).
    let mut first_bad: Option<Finding> = None;
    let mut expected = 1u64;
    // Each page is fetched, parsed and hashed in a task of its own, PREFETCH ahead of the
    // walk, which only keeps the order: positions, chains and the tree's interior nodes.
    let pages = (0..size.div_ceil(PAGE)).map(|i| {
        let from = 1 + i * PAGE;
        let limit = PAGE.min(size + 1 - from);
        let remote = remote.clone();
        tokio::spawn(async move { (from, limit, remote.checked_page(from, limit).await) })
    });
    let mut pages = futures::stream::iter(pages).buffered(PREFETCH);
    'pages: while let Some(page) = pages.next().await {
        let (from, limit, entries) = page.context("a page fetch stopped")?;
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                // A server that cannot read its own log (e.g. it finds a stored entry
                // altered) fails the whole page: find the entry it cannot serve.
                first_bad.get_or_insert(unservable(&remote, from, size, e).await?);
                break 'pages;
            }
        };
        if entries.is_empty() {
            let what = format!(
                "missing: the checkpoint has {size} entries but the server's entries end at {}",
                from - 1
            );
            first_bad.get_or_insert(Finding {
                position: Some(from),
                what,
            });
            break 'pages;
        }
        if entries.len() as u64 > limit {
            bail!(
                "GET /v1/ledger/entries?from={from}&limit={limit} answered {} entries",
                entries.len()
            );
        }
        for entry in entries {
            if entry.position != expected {
                // Out of order, repeated or skipped: the leaves of the tree are positions
                // 1, 2, 3...; nothing after this can be placed.
                let what = format!(
                    "the server's entries are out of order: got position {} where {expected} belongs",
                    entry.position
                );
                first_bad.get_or_insert(Finding {
                    position: Some(expected),
                    what,
                });
                break 'pages;
            }
            nodes.push_leaf(entry.leaf);
            if first_bad.is_none() {
                if let Err(what) = entry.chain.and_then(|link| follow(link, &mut heads)) {
                    first_bad = Some(Finding {
                        position: Some(entry.position),
                        what,
                    });
                }
            }
            expected += 1;
        }
        if let Some(bar) = &progress {
            bar.set_position(expected - 1);
        }
        // A short page that is not the last one is a server answering less than asked: the
        // next page's first position would not follow on, which the check above reports.
    }
    drop(pages);
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if expected <= size && first_bad.is_none() {
        first_bad = Some(Finding {
            position: Some(expected),
            what: format!(
                "missing: the checkpoint has {size} entries but the server's entries end at {}",
                expected - 1
            ),
        });
    }

    // The root the auditor computed against the signed one.
    let walked = nodes.size();
    let root_ok = walked == size
        && root_at(&nodes, size).map_err(|e| anyhow!("the auditor's tree: {e}"))?
            == checkpoint.root;
    if !root_ok {
        // The first leaf the signed tree disagrees with: the largest prefix whose root the
        // server can prove consistent with the signed root (a lying proof can only move
        // the blame earlier, never hide a bad leaf). Only leaves the walk reached count:
        // a walk that stopped early has its finding already.
        let reached = walked.min(size);
        let good = agreeing_prefix(&remote, &nodes, reached, &checkpoint).await;
        let earlier = first_bad
            .as_ref()
            .and_then(|f| f.position)
            .is_none_or(|p| good + 1 < p);
        if good < reached && earlier {
            first_bad = Some(Finding {
                position: Some(good + 1),
                what: format!(
                    "the entries differ from what the signed checkpoint of size {size} commits to (the first {good} agree)"
                ),
            });
        }
        if first_bad.is_none() {
            // Cannot happen (a full walk whose root differs has a disagreeing prefix),
            // but a root mismatch is never let through.
            first_bad = Some(Finding {
                position: None,
                what: format!(
                    "the entries' root differs from the signed checkpoint of size {size}"
                ),
            });
        }
    }
    if let Some(f) = first_bad {
        return Err(f.into());
    }

    if let Some(old) = &earlier {
        check_since(&remote, old, &checkpoint, &nodes).await?;
    }

    Ok(Verified {
        elapsed: started.elapsed(),
        since: earlier.map(|old| old.size),
        persons: heads.len(),
        size,
        root: checkpoint.root,
        origin: checkpoint.origin,
    })
}

/// The entry the server cannot serve, after it failed the page from `from` with
/// `page_error`: asked one by one, the first position it fails whose next one it serves
/// (a server that reads ahead fails every request that reaches the bad entry, so the
/// failures end at it; a server that does not fails only there). The page error itself
/// if every entry is served one by one: a transient failure, nothing to name.
async fn unservable(
    remote: &Remote,
    from: u64,
    size: u64,
    page_error: anyhow::Error,
) -> Result<Finding> {
    let mut failing: Option<(u64, anyhow::Error)> = None;
    for position in from..=size {
        let served = match remote.entries_page(position, 1).await {
            Ok(reply) => reply
                .bytes()
                .await
                .map_err(anyhow::Error::from)
                .and_then(|b| {
                    serde_json::from_slice::<EntriesPage<'_>>(&b)
                        .map(drop)
                        .context("the reply is not the expected JSON")
                }),
            Err(e) => Err(e),
        };
        match served {
            Err(e) => failing = Some((position, e)),
            Ok(_) if failing.is_some() => break,
            Ok(_) => {}
        }
    }
    match failing {
        Some((position, e)) => Ok(Finding {
            position: Some(position),
            what: format!("the server cannot serve this entry: {e:#}"),
        }),
        None => Err(page_error),
    }
}

/// Checks one entry on its own: its hash is the SHA-256 of its stored bytes, which are a
/// stored event of the person the entry names, with a well-formed `prev`.
fn check_alone(entry: &Entry<'_>) -> Checked {
    let bytes = entry.stored.as_bytes();
    Checked {
        position: entry.position,
        leaf: leaf_hash(bytes),
        chain: link(entry, bytes),
    }
}

fn link(entry: &Entry<'_>, bytes: &[u8]) -> Result<Link, String> {
    let hash: Hash = Sha256::digest(bytes).into();
    let mut claimed = [0u8; 32];
    if hex::decode_to_slice(&*entry.hash, &mut claimed).is_err() || claimed != hash {
        return Err(format!(
            "hash {} is not the SHA-256 of the stored bytes ({})",
            entry.hash,
            hex::encode(hash)
        ));
    }
    let body: StoredBody<'_> = serde_json::from_slice(bytes)
        .map_err(|e| format!("the stored bytes are not a stored event: {e}"))?;
    if body.person_id != entry.person_id {
        return Err(format!(
            "the entry says person {} but the stored bytes say {}",
            entry.person_id, body.person_id
        ));
    }
    let mut prev = [0u8; 32];
    if body.prev.len() != 64 || hex::decode_to_slice(&*body.prev, &mut prev).is_err() {
        return Err(format!("prev {:?} is not 64 hex digits", body.prev));
    }
    Ok(Link {
        person_id: body.person_id.into_owned(),
        prev,
        hash,
    })
}

/// Checks an entry against its person's chain so far and moves the chain on.
fn follow(link: Link, heads: &mut HashMap<String, Hash>) -> Result<(), String> {
    let expected = heads.get(&link.person_id).copied().unwrap_or([0; 32]);
    if link.prev != expected {
        return Err(if expected == [0; 32] {
            format!(
                "person {}'s chain: this is their first event but its prev is {} (not 64 zeros)",
                link.person_id,
                hex::encode(link.prev)
            )
        } else {
            format!(
                "person {}'s chain is broken: prev is {}, their previous event's hash is {}",
                link.person_id,
                hex::encode(link.prev),
                hex::encode(expected)
            )
        });
    }
    heads.insert(link.person_id, link.hash);
    Ok(())
}

/// The largest `m <= upto` such that the auditor's first `m` leaves are the signed tree's
/// first `m`, found by binary search with the server's consistency proofs (O(log n)
/// requests). A proof that does not verify counts as disagreement.
async fn agreeing_prefix(
    remote: &Remote,
    nodes: &Levels,
    upto: u64,
    checkpoint: &Checkpoint,
) -> u64 {
    let agrees = |m: u64| async move {
        let Ok(ours) = root_at(nodes, m) else {
            return false;
        };
        if m == checkpoint.size {
            return ours == checkpoint.root;
        }
        let Ok(proof) = remote
            .json::<ConsistencyProof>(&format!(
                "/v1/ledger/proof/consistency?from={m}&to={}",
                checkpoint.size
            ))
            .await
        else {
            return false;
        };
        let Some(hashes) = proof
            .hashes
            .iter()
            .map(|h| decode_hash(h))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        proof.first == m
            && proof.second == checkpoint.size
            && verify_consistency(m, checkpoint.size, &ours, &checkpoint.root, &hashes).is_ok()
    };
    // Invariant: prefix `lo` agrees (the empty one always does), `hi + 1` does not.
    let (mut lo, mut hi) = (0u64, upto);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if agrees(mid).await {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// `--since`: the earlier signed tree must be a prefix of the new one. Checked twice: with
/// the server's consistency proof (RFC 9162 2.1.4), and against the auditor's own tree
/// (which matched the new root), so neither a bad proof nor a good-looking one is taken
/// on trust.
async fn check_since(
    remote: &Remote,
    old: &Checkpoint,
    new: &Checkpoint,
    nodes: &Levels,
) -> Result<()> {
    let rewritten = |why: String| -> anyhow::Error {
        Finding {
            position: None,
            what: format!(
                "history was rewritten: the log of size {} in the --since checkpoint is not a prefix of the latest of size {} ({why}); an entry at or before position {} was changed, removed or reordered",
                old.size, new.size, old.size
            ),
        }
        .into()
    };
    let ours = root_at(nodes, old.size).map_err(|e| anyhow!("the auditor's tree: {e}"))?;
    if ours != old.root {
        return Err(rewritten(format!(
            "the entries give root {} at size {}, the earlier checkpoint says {}",
            BASE64.encode(ours),
            old.size,
            BASE64.encode(old.root)
        )));
    }
    if old.size == 0 || old.size == new.size {
        return Ok(());
    }
    let proof: ConsistencyProof = remote
        .json(&format!(
            "/v1/ledger/proof/consistency?from={}&to={}",
            old.size, new.size
        ))
        .await?;
    if proof.first != old.size || proof.second != new.size {
        return Err(rewritten(format!(
            "the server answered a proof from {} to {}",
            proof.first, proof.second
        )));
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| rewritten("the proof's hashes are not base64 of 32 bytes".into()))?;
    verify_consistency(old.size, new.size, &old.root, &new.root, &hashes)
        .map_err(|e| rewritten(format!("consistency proof: {e}")))
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if total < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(bar)
}

/// `throughcare audit replay`: the read models as of `as_of` (events recorded at or
/// before it) rebuilt into `out` from the embedded ledger under `data`.
pub async fn replay(as_of: &str, data: &Path, out: &Path) -> Result<()> {
    let t: DateTime<Utc> = DateTime::parse_from_rfc3339(as_of)
        .with_context(|| format!("--as-of {as_of:?} is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    let ledger = data.join("ledger");
    if !ledger.exists() {
        bail!("no ledger in {}", data.display());
    }
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: audit replay writes fresh read models only",
            out.display()
        );
    }
    let log = EmbeddedLog::open(&ledger).with_context(|| {
        format!(
            "cannot open the ledger in {} (is a server using it? stop it first)",
            data.display()
        )
    })?;
    let head = log.head().await?;
    let cut = throughcare_projector::as_of::position_at(&log, t, head).await?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let projector = Projector::open(&out.join("readmodels"))
        .with_context(|| format!("cannot open read models in {}", out.display()))?;
    let started = Instant::now();
    let progress = progress_bar(cut);
    let mut events = log
        .read_all(1)
        .take(usize::try_from(cut).unwrap_or(usize::MAX))
        .chunks(PAGE as usize);
    while let Some(chunk) = events.next().await {
        let chunk = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
        projector.apply(&chunk)?;
        if let Some(bar) = &progress {
            bar.set_position(projector.checkpoint());
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if projector.checkpoint() != cut {
        bail!(
            "the ledger ended at position {} before the cut at {cut}",
            projector.checkpoint()
        );
    }
    // Dropping the last handle on the store flushes it to disk.
    drop(projector);
    println!(
        "replayed {cut} of {head} events (recorded at or before {}) into {} in {:.2}s",
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
