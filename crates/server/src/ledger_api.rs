//! The auditor's ledger routes (DESIGN.md "Audit"): signed checkpoints of the RFC 9162
//! tree over the whole log, the verifier key, the log's entries with their exact stored
//! bytes, and inclusion and consistency proofs (the task that signs checkpoints is
//! `checkpoints.rs`).
//!
//! Proofs are served for sizes the audit tree follower has reached (like `min_position`
//! freshness): a size beyond it is 404, as is a checkpoint size never signed. A stored
//! entry the server cannot read back intact is a 500 `ledger-corrupt` problem naming the
//! first bad position, so that an auditor is told where, not only that, the log is bad.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use throughcare_ledger::{Error as LedgerError, EventLog};
use throughcare_tlog::{Checkpoint, Hash};

pub use crate::checkpoints::{
    run_checkpoints, sign_checkpoint, LedgerAudit, CHECKPOINT_EVERY, CHECKPOINT_EVERY_EVENTS,
};
use crate::extract::Query;
use crate::problem::{corrupt, ApiError};
use crate::state::AppState;

/// Most entries one answer holds.
pub const MAX_ENTRIES: usize = 1000;

pub(crate) fn audit(state: &AppState) -> Result<&LedgerAudit, ApiError> {
    state
        .ledger_audit
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("the audit tree is not kept by this server"))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub(crate) fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| BASE64.encode(h)).collect()
}

pub(crate) fn tree_error(e: throughcare_tlog::Error) -> ApiError {
    match e {
        throughcare_tlog::Error::InvalidRange(detail) => ApiError::bad_request(detail),
        other => {
            tracing::error!(error = %other, "audit tree unreadable");
            ApiError::unavailable("the audit tree is unavailable; retry shortly")
        }
    }
}

pub(crate) fn store_error(e: throughcare_projector::Error) -> ApiError {
    tracing::error!(error = %e, "checkpoint store unreadable");
    ApiError::unavailable("the checkpoint store is unavailable; retry shortly")
}

/// A signed checkpoint's note and what opening it with the verifier key gave.
pub(crate) type Opened = (String, Result<Checkpoint, throughcare_tlog::Error>);

/// The latest signed checkpoint: its note, and the checkpoint it states, opened with the
/// verifier key (its signature checked). `None` before the first.
pub(crate) fn latest_opened(audit: &LedgerAudit) -> Result<Option<Opened>, ApiError> {
    let Some((_, note)) = audit.tree.latest_checkpoint().map_err(store_error)? else {
        return Ok(None);
    };
    let opened = audit.verifier.open(&note);
    Ok(Some((note, opened)))
}

/// A size the caller asks about must be one the audit tree has reached.
fn reached(audit: &LedgerAudit, name: &str, size: u64) -> Result<(), ApiError> {
    let have = audit.tree.size();
    if size > have {
        return Err(ApiError::not_found(format!(
            "{name} {size} is beyond the audit tree, which has {have} entries"
        )));
    }
    Ok(())
}

/// The latest checkpoint's size (what `size`/`to` default to).
fn latest_size(audit: &LedgerAudit) -> Result<u64, ApiError> {
    match audit.tree.latest_checkpoint().map_err(store_error)? {
        Some((size, _)) => Ok(size),
        None => Err(ApiError::not_found("no checkpoint has been signed yet")),
    }
}

#[derive(Deserialize)]
pub struct CheckpointQuery {
    size: Option<u64>,
}

/// `GET /v1/ledger/checkpoint[?size=N]`: the latest signed checkpoint, or the kept one of
/// size N (text/plain, a C2SP signed note).
pub async fn checkpoint(
    State(state): State<AppState>,
    Query(q): Query<CheckpointQuery>,
) -> Result<Response, ApiError> {
    let audit = audit(&state)?;
    let note = match q.size {
        Some(size) => audit
            .tree
            .checkpoint(size)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("no checkpoint of size {size} is kept")))?,
        None => {
            audit
                .tree
                .latest_checkpoint()
                .map_err(store_error)?
                .ok_or_else(|| ApiError::not_found("no checkpoint has been signed yet"))?
                .1
        }
    };
    Ok(text(note))
}

/// `GET /v1/ledger/key`: the verifier key of the checkpoints (`<name>+<hash>+<key>`).
pub async fn key(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(text(format!("{}\n", audit(&state)?.verifier)))
}

#[derive(Deserialize)]
pub struct EntriesQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// One element of the entries page, serialised from the event as it was read: nothing
/// is copied into an intermediate JSON value (members in the order they always had).
#[derive(Serialize)]
struct EntryOut<'a> {
    hash: HexHash<'a>,
    person_id: &'a throughcare_events::PersonId,
    position: u64,
    /// The exact stored bytes, as a JSON string.
    stored: &'a str,
}

/// A hash as lower-case hex, written from the stack.
struct HexHash<'a>(&'a [u8; 32]);

impl Serialize for HexHash<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 hex digits for 32 bytes");
        s.serialize_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

/// The page `{"entries":[...]}`, written as the entries are read.
struct Page(Vec<u8>);

impl Page {
    fn new(limit: usize) -> Self {
        // About 1.5 KB an entry once `stored` is escaped: one allocation for most pages.
        let mut buf = Vec::with_capacity(64 + limit.min(MAX_ENTRIES) * 1536);
        buf.extend_from_slice(b"{\"entries\":[");
        Page(buf)
    }

    fn push(&mut self, e: &throughcare_events::RecordedEvent) -> Result<(), ApiError> {
        if self.0.last() != Some(&b'[') {
            self.0.push(b',');
        }
        let entry = EntryOut {
            hash: HexHash(&e.hash.0),
            person_id: &e.person_id,
            position: e.position,
            stored: &e.stored,
        };
        serde_json::to_writer(&mut self.0, &entry).map_err(|err| {
            tracing::error!(error = %err, position = e.position, "cannot write a ledger entry");
            ApiError::unavailable("cannot write the entries; retry shortly")
        })
    }

    fn finish(mut self) -> Response {
        self.0.extend_from_slice(b"]}");
        (
            [(header::CONTENT_TYPE, "application/json")],
            bytes::Bytes::from(self.0),
        )
            .into_response()
    }
}

/// `GET /v1/ledger/entries?from=P&limit=N`: positions P.. (at most N <= 1000) with
/// `position`, `person_id`, `hash` (hex SHA-256 of `stored`) and `stored`, the exact
/// stored bytes: leaf `position - 1` of the tree.
pub async fn entries(
    State(state): State<AppState>,
    Query(q): Query<EntriesQuery>,
) -> Result<Response, ApiError> {
    let from = q.from.unwrap_or(1);
    if from == 0 {
        return Err(ApiError::bad_request("from is a position: 1 or more"));
    }
    let limit = q.limit.unwrap_or(MAX_ENTRIES);
    if limit == 0 || limit > MAX_ENTRIES {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_ENTRIES}"
        )));
    }
    let log: &Arc<dyn EventLog> = state.ledger.log();
    let mut events = log.read_all(from).take(limit);
    let mut page = Page::new(limit);
    let mut count = 0u64;
    while let Some(e) = events.next().await {
        match e {
            Ok(e) => {
                page.push(&e)?;
                count += 1;
            }
            Err(LedgerError::Corrupt(why)) => {
                // A page read fails on any entry it reads ahead to, requested or not: read
                // the rest of the request one entry at a time, so that the answer is the
                // entries asked for, or a problem naming the first of them that is bad.
                let next = from + count;
                let last = from.saturating_add(limit as u64 - 1).min(log.head().await?);
                for position in next..=last {
                    match log.read_at(position).await {
                        Ok(Some(e)) => page.push(&e)?,
                        Ok(None) => break,
                        Err(LedgerError::Corrupt(_)) => return Err(corrupt(&why, Some(position))),
                        Err(other) => return Err(other.into()),
                    }
                }
                break;
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(page.finish())
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    position: u64,
    size: Option<u64>,
}

/// `GET /v1/ledger/proof/inclusion?position=P&size=N`: the RFC 9162 inclusion proof of
/// position P (leaf P - 1) in the tree of N leaves (default: the latest checkpoint's).
pub async fn inclusion(
    State(state): State<AppState>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<Value>, ApiError> {
    let audit = audit(&state)?;
    let size = match q.size {
        Some(size) => size,
        None => latest_size(audit)?,
    };
    if q.position == 0 || q.position > size {
        return Err(ApiError::bad_request(format!(
            "position must be from 1 to the tree size {size}"
        )));
    }
    reached(audit, "size", size)?;
    let leaf_index = q.position - 1;
    let proof = audit
        .tree
        .inclusion_proof(leaf_index, size)
        .map_err(tree_error)?;
    Ok(Json(json!({
        "leaf_index": leaf_index,
        "tree_size": size,
        "hashes": b64(&proof),
    })))
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `GET /v1/ledger/proof/consistency?from=M&to=N`: the RFC 9162 consistency proof from
/// the tree of M leaves to the tree of N (default: the latest checkpoint's size).
pub async fn consistency(
    State(state): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<Value>, ApiError> {
    let audit = audit(&state)?;
    let to = match q.to {
        Some(to) => to,
        None => latest_size(audit)?,
    };
    if q.from > to {
        return Err(ApiError::bad_request(format!(
            "from ({}) must not be larger than to ({to})",
            q.from
        )));
    }
    reached(audit, "to", to)?;
    let proof = audit
        .tree
        .consistency_proof(q.from, to)
        .map_err(tree_error)?;
    Ok(Json(json!({
        "first": q.from,
        "second": to,
        "hashes": b64(&proof),
    })))
}
