//! A person's page (`GET /people/{id}`): the journey strip (SVG with a table beside it),
//! what the ledger knows (status, identifiers, release, worker, support window), the
//! integrity badge, signposting, the timeline with corrections, the "as of" selector,
//! and the forms the viewer may use now (`forms.rs`), with the GOV.UK / NHS error summary
//! when a form comes back refused.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use throughcare_projections::Journey;

use super::forms::{self, field_id, FormState, Reply};
use super::{code, csrf, flag, page, session_id, strip, words, Viewer};
use crate::access::{Caller, ScopedPerson};
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;
use throughcare_projector::Cut;

#[derive(Deserialize)]
pub struct PersonQuery {
    /// The date picker's day (what was known by its end, UTC) or an RFC 3339 time.
    as_of: Option<String>,
    /// Wait for the read models to reach this position (after a form was recorded).
    min_position: Option<u64>,
    /// The form just recorded (its type's short name), for the confirmation.
    recorded: Option<String>,
}

/// `GET /people/{id}[?as_of=DAY]`: a person's journey and timeline, now or as the ledger
/// knew it then (the guard checked the caller's scope on the journey now).
pub async fn person(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    person: ScopedPerson,
    Query(q): Query<PersonQuery>,
) -> Result<Response, ApiError> {
    let cut = match crate::as_of::parse_page_as_of(q.as_of.as_deref())? {
        Some(t) => crate::as_of::cut_at(&state, t).await?,
        None => None,
    };
    if let Some(min) = q.min_position {
        state
            .models
            .wait_for(min, crate::state::FRESHNESS_WAIT)
            .await;
    }
    let j: Journey = match (cut, person.checked()) {
        (Some(cut), _) => crate::as_of::journey(&state, &person, cut).await?,
        // After a wait the guard's copy may be older than the read models.
        (None, Some(j)) if q.min_position.is_none() => j.as_ref().clone(),
        (None, _) => person.journey(&state)?,
    };
    let recorded = q
        .recorded
        .as_deref()
        .and_then(|k| forms::kind_of(k).or_else(|| super::manager::kind_of(k)))
        .filter(|_| cut.is_none());
    render(&state, &caller, &headers, &person, &j, cut, None, recorded).await
}

/// The page with a refused form sent back in it (the status is the refusal's).
pub(crate) async fn render_with(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    person: &ScopedPerson,
    j: &Journey,
    reply: Option<Reply>,
) -> Result<Response, ApiError> {
    render(state, caller, headers, person, j, None, reply, None).await
}

#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    person: &ScopedPerson,
    j: &Journey,
    cut: Option<Cut>,
    reply: Option<Reply>,
    recorded: Option<throughcare_events::EventType>,
) -> Result<Response, ApiError> {
    let now = state.ledger.now();
    let at = cut.map_or(now, |c| c.at);
    let v = j.view(at);
    let p = j.person_id;
    let who = caller.principal.as_ref();
    let viewer = Viewer::of(state, who, headers);
    let session = session_id(headers).unwrap_or_default();
    let status = reply.as_ref().map_or(StatusCode::OK, |r| r.status);
    let sent_back = reply.map(|r| r.form);
    // A manager's form sent back goes to the manager's section (`manager.rs`).
    let (sent_back, manager_back) = match sent_back {
        Some(f) if super::manager::MANAGER_EVENTS.contains(&f.kind) => (None, Some(f)),
        other => (other, None),
    };
    // Forms are for now, never for a look into the past.
    let offered = if cut.is_none() {
        forms::offered(who, j)
    } else {
        Vec::new()
    };
    let forms: Vec<FormState> = offered
        .iter()
        .map(|k| match &sent_back {
            Some(f) if f.kind == *k => FormState {
                kind: f.kind,
                id: f.id.clone(),
                values: f.values.clone(),
                errors: f.errors.clone(),
            },
            _ => FormState::fresh(*k, now),
        })
        .collect();
    // A refused form whose event the state no longer offers still comes back, so its
    // reason is shown.
    let mut forms = forms;
    if let Some(f) = sent_back.filter(|f| !offered.contains(&f.kind)) {
        forms.insert(0, f);
    }
    let errors: Vec<(String, &str)> = forms
        .iter()
        .flat_map(|f| {
            f.errors.iter().map(move |e| {
                let target = match &e.field {
                    Some(name) => field_id(f.kind, name),
                    None => format!("form-{}", forms::slug(f.kind).replace('.', "-")),
                };
                (target, e.message.as_str())
            })
        })
        .chain(manager_back.iter().flat_map(|f| {
            f.errors.iter().map(move |e| {
                let target = match &e.field {
                    Some(name) => super::manager::field_id(f.kind, name),
                    None => super::manager::form_id(f.kind),
                };
                (target, e.message.as_str())
            })
        }))
        .collect();
    let badge = verified_badge(state, person).await;
    let journey_strip = strip::Strip::of(j, at);
    let glass = caller.reason.as_ref();
    let body = html! {
        @if !errors.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 #error-summary-title { "There is a problem" }
                ul { @for (target, message) in &errors { li { a href={ "#" (target) } { (message) } } } }
            }
        }
        @if let Some(k) = recorded {
            @let what = if super::manager::MANAGER_EVENTS.contains(&k) { super::manager::title(k, None) } else { forms::title(k) };
            div.notice.notice-ok role="status" { p { strong { (what) } " recorded. It is at the top of the timeline." } }
        }
        @if caller.review {
            p.notice role="alert" { "Emergency access: this read is recorded for review." }
        }
        (badge)
        form method="get" action={ "/people/" (p) } .as-of {
            // A break-glass read keeps its purpose and reason when it looks back.
            @if let Some(r) = glass {
                input type="hidden" name="purpose" value=(caller.purpose.as_str());
                input type="hidden" name="reason" value=(r);
            }
            div.inline {
                div {
                    // The field inside its label (no id needed, so the markup stays
                    // `<input type="date" name="as_of" value=...>` as clients look for it).
                    label { "As of the end of (UTC) "
                        input type="date" name="as_of" value=(cut.map(|c| c.at.date_naive().to_string()).unwrap_or_default());
                    }
                }
                button.secondary type="submit" { "Show" }
                a href={ "/people/" (p) } { "Now" }
            }
        }
        @if let Some(c) = cut {
            p.notice role="status" { "As the ledger knew it at " (c.at.format("%Y-%m-%d %H:%M:%S UTC"))
                " (events up to position " (c.position) "); later events are not shown." }
        }
        p { span.tag.tag-status { (words(&code(&j.status))) }
            @for f in v.flags.iter().filter(|f| f.cleared_by.is_none()) { (flag(f.code)) } }
        dl.facts {
            dt { "Identifiers" } dd { (j.identifiers.all().join(", ")) }
            dt { "Prison" } dd { (j.prison.as_deref().unwrap_or("none")) " "
                (if j.in_custody { "(in custody)" } else { "(in the community)" }) }
            dt { "Release date" } dd { (j.release_date.as_ref().map(|r| format!("{} ({})", r.date, r.date_type)).unwrap_or_else(|| "none".into())) }
            dt { "Worker" } dd { (j.worker.as_ref().map(|w| format!("{} ({})", w.worker_id, w.role)).unwrap_or_else(|| "unallocated".into())) }
            dt { "Support window" } dd {
                (v.support_start.map(|d| d.to_string()).unwrap_or_else(|| "not started".into())) " to "
                (v.support_end.map(|d| d.to_string()).unwrap_or_else(|| "open".into())) }
            dt { "Episodes" } dd { (j.episodes.len()) }
        }
        h2 #journey { "Journey" }
        (strip::render(&journey_strip))
        @if !forms.is_empty() {
            h2 #record { "Record what happened" }
            p.muted { "Only what the case allows now is offered. Each form is recorded once, however many times it is sent." }
            @for f in &forms {
                @let token = csrf::token(state.sessions.csrf_secret(), &session, &f.id);
                (forms::render(f, p, j, &token, now))
            }
        }
        @if cut.is_none() {
            (super::manager::section(state, who, j, &session, now, manager_back.as_ref()))
        }
        h2 { "Signposting" }
        @if j.signposts.is_empty() { p.muted { "None yet." } }
        ul {
            @for s in &j.signposts {
                li { (s.signpost_id) ": " (words(s.mode.as_str())) " to " (s.org) " (" (words(s.service_type.as_str())) ") — "
                    (s.outcome.map(|o| words(o.as_str())).unwrap_or_else(|| "awaiting outcome".into())) }
            }
        }
        h2 #timeline { "Timeline" }
        (timeline(j))
        p.muted {
            a href={ "/v1/people/" (p) "/journey" } { "Journey (JSON)" } " · "
            a href={ "/v1/people/" (p) "/events" } { "Recorded events" } " · "
            a href={ "/v1/people/" (p) "/verify" } { "Verify the chain" }
        }
    };
    let title = format!("Journey of {}", super::home::label(j));
    let title = if errors.is_empty() {
        title
    } else {
        format!("Error: {title}")
    };
    Ok((status, page(&viewer, &title, body)).into_response())
}

fn timeline(j: &Journey) -> Markup {
    html! {
        table {
            caption { "Newest first. Occurred is when it happened; recorded is when the ledger learnt it (UTC)." }
            thead { tr { th scope="col" { "Position" } th scope="col" { "Occurred" } th scope="col" { "Recorded" }
                th scope="col" { "What" } th scope="col" { "Source" } } }
            tbody {
                @for t in j.timeline.iter().rev() {
                    tr {
                        td { (t.position) }
                        td { (t.occurred_at.format("%Y-%m-%d %H:%M")) }
                        td { (t.recorded_at.format("%Y-%m-%d %H:%M")) }
                        td {
                            @if let Some(by) = t.corrected_by {
                                span.corrected { (t.summary) } " " span.tag.tag-warn { "corrected by position " (by) }
                            } @else { (t.summary) }
                        }
                        td.muted { (t.source) }
                    }
                }
            }
        }
    }
}

/// What the page can say about the integrity of a person's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// The chain checks from the stored bytes and the last event (`position`) is proven
    /// in the signed checkpoint of `size` entries.
    Yes { position: u64, size: u64 },
    /// The chain checks, but the last event is later than the latest signed checkpoint
    /// (`None`: no checkpoint yet).
    NotYetInCheckpoint { position: u64, size: Option<u64> },
    /// Something does not check: what.
    Failed(String),
    /// It cannot be checked now (no audit tree kept, a store not answering): why.
    Unchecked(String),
}

/// Checks a person's record as an outside client would, from what the ledger routes
/// serve: every event's stored bytes hash to its `hash` and the `prev` links form the
/// chain; the latest checkpoint's signature verifies with the verifier key and names this
/// ledger's origin; and the RFC 9162 inclusion proof of the last event's leaf
/// (SHA-256(0x00 || stored)) leads to the checkpoint's signed root
/// (`throughcare_tlog::verify_inclusion`). No stored flag is trusted.
pub(crate) async fn verify_record(state: &AppState, scoped: &ScopedPerson) -> Verified {
    let person = scoped.id();
    let events = match scoped.history_raw(state).await {
        Ok(events) => events,
        Err(throughcare_ledger::Error::Corrupt(why)) => {
            tracing::error!(%why, %person, "a person's record cannot be read back");
            return Verified::Failed("the record cannot be read back intact".into());
        }
        Err(e) => return Verified::Unchecked(format!("the log is not answering ({e})")),
    };
    let Some(last) = events.last() else {
        return Verified::Failed("no recorded events".into());
    };
    if let Some(bad) = events
        .iter()
        .find(|e| throughcare_events::Hash::of(e.stored.as_bytes()) != e.hash)
    {
        return Verified::Failed(format!(
            "the stored bytes of position {} do not hash to its hash",
            bad.position
        ));
    }
    if let Err(b) = throughcare_events::verify_chain(person, &events) {
        return Verified::Failed(format!(
            "the chain breaks at position {}: {}",
            b.position, b.detail
        ));
    }
    let Some(audit) = state.ledger_audit.as_deref() else {
        return Verified::Unchecked("this server keeps no audit tree".into());
    };
    let checkpoint = match crate::ledger_api::latest_opened(audit) {
        Err(e) => return Verified::Unchecked(e.detail),
        Ok(None) => {
            return Verified::NotYetInCheckpoint {
                position: last.position,
                size: None,
            }
        }
        Ok(Some((_, Err(e)))) => {
            return Verified::Failed(format!(
                "the latest checkpoint does not verify with the verifier key: {e}"
            ))
        }
        Ok(Some((_, Ok(c)))) => c,
    };
    if checkpoint.origin != audit.origin {
        return Verified::Failed(format!(
            "the latest checkpoint is of another log ({})",
            checkpoint.origin
        ));
    }
    if last.position > checkpoint.size {
        return Verified::NotYetInCheckpoint {
            position: last.position,
            size: Some(checkpoint.size),
        };
    }
    let leaf_index = last.position - 1;
    let proof = match audit.tree.inclusion_proof(leaf_index, checkpoint.size) {
        Ok(p) => p,
        Err(e) => return Verified::Unchecked(format!("no inclusion proof now ({e})")),
    };
    let leaf = throughcare_tlog::leaf_hash(last.stored.as_bytes());
    match throughcare_tlog::verify_inclusion(
        &leaf,
        leaf_index,
        checkpoint.size,
        &proof,
        &checkpoint.root,
    ) {
        Ok(()) => Verified::Yes {
            position: last.position,
            size: checkpoint.size,
        },
        Err(e) => Verified::Failed(format!(
            "position {} is not proven in the signed checkpoint of size {}: {e}",
            last.position, checkpoint.size
        )),
    }
}

/// The badge of [`verify_record`]: a word in a box (never colour alone) and why.
async fn verified_badge(state: &AppState, person: &ScopedPerson) -> Markup {
    let (class, label, detail) = match verify_record(state, person).await {
        Verified::Yes { position, size } => (
            "verified",
            "verified",
            format!("the hash chain checks from the stored bytes, and the last event (position {position}) is proven in the signed checkpoint of {size} entries"),
        ),
        Verified::NotYetInCheckpoint { position, size } => (
            "pending",
            "not yet in a checkpoint",
            match size {
                Some(size) => format!("the hash chain checks; the last event (position {position}) is later than the latest signed checkpoint ({size} entries), which is signed at least every 1,000 events or 60 seconds"),
                None => format!("the hash chain checks; no checkpoint has been signed yet to prove the last event (position {position})"),
            },
        ),
        Verified::Failed(why) => ("failed", "verification failed", why),
        Verified::Unchecked(why) => ("unchecked", "not checked", why),
    };
    html! {
        p class={ "badge badge-" (class) } role="status" { span class={ "tag tag-" (class) } { (label) } " " span.muted { (detail) } }
    }
}
