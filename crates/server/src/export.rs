//! `GET /v1/people/{id}/export[?format=html]`: the subject access export (DESIGN.md
//! "Audit"): the person's identifiers, the journey now, every recorded event with its
//! exact stored bytes, hash, position and RFC 9162 inclusion proof against the latest
//! signed checkpoint, that checkpoint and the verifier key, and the access-log entries
//! about the person. `?format=html` is the same content as a printable page (no scripts,
//! print CSS, every text escaped).
//!
//! - **Events after the checkpoint.** Only events inside the latest signed checkpoint can
//!   have a proof against it. Later ones (at most 1,000 events or 60 s of growth) carry
//!   `proof: null` and `pending_checkpoint: true`: their bytes and hashes are in the bundle
//!   and their chain links to the proven ones, and once a checkpoint covers them
//!   `GET /v1/ledger/proof/inclusion?position=P&size=N` proves them against it. The
//!   server does not sign a checkpoint on demand: the signing key stays with the
//!   checkpoint task, and every proof in the bundle is against a checkpoint that any
//!   witness could already have.
//! - **This export's own access-log entry** is appended by the guard after the bundle is
//!   built and before it is sent, so it is not in the bundle: `access_log.this_export`
//!   gives its `request_id` (also the response's `Throughcare-Request-Id`), under which
//!   `GET /v1/people/{id}/access` shows it.

use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use throughcare_projections::Journey;
use throughcare_tlog::Checkpoint;

use crate::access::{Caller, ScopedPerson};
use crate::escape::esc;
use crate::extract::Query;
use crate::ledger_api::{self, b64};
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ExportQuery {
    format: Option<String>,
    /// Page the access-log entries: those after this seq (`access_log.next_after` of the
    /// page before).
    access_after: Option<u64>,
}

/// Most access-log entries one export holds; the rest by `?access_after=` (or
/// `GET /v1/people/{id}/access?after=`), so that a person's record cannot be made too big
/// to export by reading it often.
const ACCESS_PAGE: usize = 1000;

/// The checkpoint the proofs are against.
struct Signed {
    note: String,
    checkpoint: Checkpoint,
}

/// `GET /v1/people/{id}/export[?format=html]`
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    scoped: ScopedPerson,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let person = scoped.id();
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or html, not {other:?}"
            )))
        }
    };
    let events = scoped.history(&state).await?;
    if events.is_empty() {
        return Err(ApiError::unknown_person(person));
    }
    let now = state.ledger.now();
    // The journey of exactly the events in the bundle (the read models may lag them).
    let journey = Journey::fold(person, events.iter());
    let view = journey.view(now);

    let audit = state.ledger_audit.as_deref();
    let signed = match audit {
        None => None,
        Some(audit) => match ledger_api::latest_opened(audit)? {
            None => None,
            Some((note, Ok(checkpoint))) => Some(Signed { note, checkpoint }),
            Some((_, Err(e))) => {
                return Err(crate::problem::corrupt(
                    &format!("the latest checkpoint does not open with the verifier key: {e}"),
                    None,
                ))
            }
        },
    };
    let mut rows = Vec::with_capacity(events.len());
    for e in &events {
        let proof = match (audit, &signed) {
            (Some(audit), Some(s)) if e.position <= s.checkpoint.size => {
                let leaf_index = e.position - 1;
                let hashes = audit
                    .tree
                    .inclusion_proof(leaf_index, s.checkpoint.size)
                    .map_err(ledger_api::tree_error)?;
                Some(json!({
                    "leaf_index": leaf_index,
                    "tree_size": s.checkpoint.size,
                    "hashes": b64(&hashes),
                }))
            }
            _ => None,
        };
        rows.push(json!({
            "position": e.position,
            "recorded_at": e.recorded_at,
            "hash": e.hash,
            "prev": e.prev,
            "stored": &*e.stored,
            "event": e.event,
            "pending_checkpoint": proof.is_none(),
            "proof": proof,
        }));
    }
    let access = scoped
        .access_entries(&state, q.access_after.unwrap_or(0), ACCESS_PAGE)
        .await?;
    let next_after = (access.len() == ACCESS_PAGE)
        .then(|| access.last().map(|e| e.seq))
        .flatten();
    let bundle = json!({
        "person_id": person,
        "generated_at": now,
        "purpose": caller.purpose.as_str(),
        "identifiers": journey.identifiers,
        "journey": view,
        "events": rows,
        "checkpoint": signed.as_ref().map(|s| json!({
            "origin": s.checkpoint.origin,
            "size": s.checkpoint.size,
            "note": s.note,
        })),
        "verifier_key": audit.map(|a| a.verifier.to_string()),
        "access_log": {
            "entries": access,
            "next_after": next_after,
            "this_export": {
                "request_id": caller.request_id,
                "included": false,
                "note": "this export's own entry (what EXPORT) is appended before the response is sent; it is GET /v1/people/{id}/access's entry with this request_id",
            },
        },
        "how_to_check": HOW_TO_CHECK,
    });
    if html {
        // The printable page keeps its style inline (it must stand alone when saved), so
        // its CSP names that style's hash.
        return Ok((
            [(
                axum::http::header::CONTENT_SECURITY_POLICY,
                crate::headers::page_csp(&[PRINT_CSS]),
            )],
            Html(render_html(&bundle, &journey)),
        )
            .into_response());
    }
    Ok(Json(bundle).into_response())
}

/// The printable export's stylesheet, in its one `<style>` element (the page must stand
/// alone when saved); the Content Security Policy allows it by its hash (`headers.rs`).
pub const PRINT_CSS: &str = r#"body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#212b32;font-size:.95rem}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:2px solid #005eb8}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #d8dde0;padding:.3rem .45rem;text-align:left;vertical-align:top}
pre,.mono{font-family:ui-monospace,monospace;font-size:.72rem;white-space:pre-wrap;word-break:break-all;margin:.2rem 0}
.muted{color:#4c6272} .pending{background:#fff4c2;padding:0 .3rem} tr.detail td{border-bottom:2px solid #aeb7bd}
@media print{
  @page{margin:15mm}
  body{margin:0;max-width:none;font-size:9.5pt;color:#000}
  h2{break-after:avoid} tr{break-inside:avoid} pre{font-size:7pt}
  a{color:#000;text-decoration:none}
}
"#;

/// What an auditor does with the bundle, in its own words (also on the printed page).
const HOW_TO_CHECK: [&str; 5] = [
    "hash = SHA-256 of the UTF-8 bytes of stored; each event's prev is the hash of the person's previous event (64 zeros for the first)",
    "checkpoint.note is a C2SP signed note: its signature line verifies with verifier_key (Ed25519), and its text is origin, tree size and base64 root",
    "for an event with a proof: the RFC 9162 inclusion proof of leaf SHA-256(0x00 || stored) at leaf_index in a tree of tree_size leaves leads to the checkpoint's root",
    "an event with pending_checkpoint true was recorded after that checkpoint: ask GET /v1/ledger/proof/inclusion?position=P once a later checkpoint covers it",
    "access_log.entries are hash-chained too: GET /v1/access/verify recomputes that chain",
];

/// A value as text for the page: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The printable page: the same bundle, laid out for a person to read and to print.
fn render_html(b: &Value, journey: &Journey) -> String {
    let person = text(&b["person_id"]);
    let view = &b["journey"];
    let ids: String = ["nomis", "nhs_number", "crn"]
        .iter()
        .map(|k| {
            let values: Vec<String> = b["identifiers"][k]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            format!(
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(&if values.is_empty() {
                    "—".to_string()
                } else {
                    values.join(", ")
                })
            )
        })
        .collect();
    let summary_of = |position: u64| {
        journey
            .timeline
            .iter()
            .find(|t| t.position == position)
            .map(|t| t.summary.clone())
            .unwrap_or_default()
    };
    let mut events = String::new();
    for e in b["events"].as_array().into_iter().flatten() {
        let position = e["position"].as_u64().unwrap_or(0);
        let proof = if e["pending_checkpoint"] == true {
            "<span class=pending>not yet in a checkpoint</span>".to_string()
        } else {
            format!(
                "leaf {} of {}: {}",
                e["proof"]["leaf_index"],
                e["proof"]["tree_size"],
                esc(&e["proof"]["hashes"]
                    .as_array()
                    .map(|h| h.iter().map(text).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default())
            )
        };
        events.push_str(&format!(
            "<tr><td>{position}</td><td>{occurred}</td><td>{recorded}</td><td>{kind}<br>{summary}</td><td class=muted>{source}</td></tr>\
             <tr class=detail><td></td><td colspan=4><div class=mono>hash {hash}<br>prev {prev}<br>proof {proof}</div><pre>{stored}</pre></td></tr>",
            occurred = esc(&text(&e["event"]["time"])),
            recorded = esc(&text(&e["recorded_at"])),
            kind = esc(&text(&e["event"]["type"])),
            summary = esc(&summary_of(position)),
            source = esc(&text(&e["event"]["source"])),
            hash = esc(&text(&e["hash"])),
            prev = esc(&text(&e["prev"])),
            stored = esc(&text(&e["stored"])),
        ));
    }
    let mut access = String::new();
    for a in b["access_log"]["entries"].as_array().into_iter().flatten() {
        access.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            esc(&text(&a["seq"])),
            esc(&text(&a["at"])),
            esc(&text(&a["who"])),
            esc(&text(&a["role"])),
            esc(&text(&a["what"])),
            esc(&text(&a["purpose"])),
            esc(&text(&a["outcome"])),
            esc(&text(&a["status"])),
            esc(&text(&a["route"])),
        ));
    }
    let checkpoint = match b["checkpoint"].as_object() {
        Some(c) => format!(
            "<p>Signed checkpoint of {size} entries, origin {origin}:</p><pre>{note}</pre>",
            size = esc(&text(&c["size"])),
            origin = esc(&text(&c["origin"])),
            note = esc(&text(&c["note"])),
        ),
        None => {
            "<p>No checkpoint has been signed yet: no event has an inclusion proof.</p>".to_string()
        }
    };
    let how: String = HOW_TO_CHECK
        .iter()
        .map(|line| format!("<li>{}</li>", esc(line)))
        .collect();
    let row = |label: &str, value: String| {
        format!("<tr><th>{}</th><td>{}</td></tr>", esc(label), esc(&value))
    };
    let journey_rows = [
        row("Status", text(&view["status"])),
        row("Prison", text(&view["prison"])),
        row(
            "In custody",
            if view["in_custody"] == true {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        row("Release date", text(&view["release_date"]["date"])),
        row("Released at", text(&view["released_at"])),
        row("Worker", text(&view["worker"]["worker_id"])),
        row(
            "Support window",
            format!(
                "{} to {}",
                text(&view["support_start"]),
                text(&view["support_end"])
            ),
        ),
        row(
            "Active flags",
            view["active_flags"]
                .as_array()
                .map(|f| f.iter().map(text).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
        ),
        row(
            "Episodes",
            view["episodes"].as_array().map_or(0, Vec::len).to_string(),
        ),
    ]
    .concat();
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Subject access export {person} · throughcare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style></head><body>
<h1>Subject access export</h1>
<p>Person <strong>{person}</strong>. Generated {generated} for the purpose {purpose}. Synthetic data only.</p>
<h2>Identifiers</h2><table><tbody>{ids}</tbody></table>
<h2>The journey now</h2><table><tbody>{journey_rows}</tbody></table>
<h2>Recorded events ({n})</h2>
<p class=muted>Each event as the ledger stored it: its exact stored bytes, their SHA-256 hash, the previous event's hash, and its inclusion proof in the signed checkpoint.</p>
<table><thead><tr><th>#</th><th>Occurred</th><th>Recorded</th><th>What</th><th>Source</th></tr></thead><tbody>{events}</tbody></table>
<h2>Checkpoint and key</h2>{checkpoint}
<p>Verifier key: <span class=mono>{key}</span></p>
<h2>Who accessed this record ({m} entries)</h2>
<p class=muted>This export's own entry (request {request_id}) is added as the export is sent, so it is not listed here.</p>
<table><thead><tr><th>Seq</th><th>When</th><th>Who</th><th>What</th><th>Purpose</th><th>Outcome</th><th>Route</th></tr></thead><tbody>{access}</tbody></table>
<h2>How to check this record</h2><ol>{how}</ol>
</body></html>"#,
        person = esc(&person),
        generated = esc(&text(&b["generated_at"])),
        purpose = esc(&text(&b["purpose"])),
        n = b["events"].as_array().map_or(0, Vec::len),
        key = esc(&text(&b["verifier_key"])),
        m = b["access_log"]["entries"].as_array().map_or(0, Vec::len),
        request_id = esc(&text(&b["access_log"]["this_export"]["request_id"])),
        css = PRINT_CSS,
    )
}
