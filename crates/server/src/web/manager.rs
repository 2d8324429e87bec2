//! The manager's week: `GET /cases?status=&prison=` (cases by status, the triage queue
//! with the referral waiting longest first, and the people with no release date), and the
//! manager's actions on a person's page: allocate or re-allocate the case
//! (`case.allocated`), extend support (`support.extended`) and reopen a closed case
//! (`case.reopened`).
//!
//! The actions are forms like the worker's (`forms.rs`): offered only when the case state
//! allows the event now (`throughcare_projections::allowed`) and the policy lets the
//! caller submit it about this person (a MANAGER: the people of its prisons); the event
//! id is made when the form is drawn and travels in a hidden field with a CSRF token
//! bound to it and the session; `POST /people/{id}/manage/{type}` (`posts.rs`) builds the CloudEvent
//! and sends it through the partners' write path (`submit::submit`), and a refusal comes
//! back on the person's page next to the field its JSON pointer names.

use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use throughcare_events::catalogue::{ExtensionReason, WorkerRole};
use throughcare_events::{EventType, PersonId, PrisonCode, PILOT_PRISONS};
use throughcare_projections::journey::ReferralState;
use throughcare_projections::{Journey, Status};

use super::forms::{self, Built, FieldError, FormState, Values};
use super::home::label;
use super::{code, csrf, flag, page, time, words, Viewer};
use crate::access::Caller;
use crate::auth::{Principal, Role};
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

/// The manager's events, in the order offered.
pub(crate) const MANAGER_EVENTS: &[EventType] = &[
    EventType::CaseAllocated,
    EventType::SupportExtended,
    EventType::CaseReopened,
];

/// The type of a slug (`case.allocated`), if it is one of the manager's.
pub(crate) fn kind_of(slug: &str) -> Option<EventType> {
    MANAGER_EVENTS
        .iter()
        .copied()
        .find(|k| forms::slug(*k) == slug)
}

/// What a form records, as its heading (`j`: allocating an allocated case re-allocates).
pub(crate) fn title(kind: EventType, j: Option<&Journey>) -> &'static str {
    match kind {
        EventType::CaseAllocated if j.is_some_and(|j| j.worker.is_some()) => "Re-allocate the case",
        EventType::CaseAllocated => "Allocate the case",
        EventType::SupportExtended => "Extend support",
        EventType::CaseReopened => "Reopen the case",
        _ => "Event",
    }
}

/// Whether `p` may take manager action `kind` about the person of `j` from the page: a
/// manager (or open development mode) that the write path's policy lets submit it about
/// this person.
pub(crate) fn may_manage(p: &Principal, j: &Journey, kind: EventType) -> bool {
    (p.open_mode || p.role == Role::Manager) && forms::may_record(p, j, kind)
}

/// The manager's actions offered now: those the case state allows and the caller may take.
pub(crate) fn offered(p: &Principal, j: &Journey) -> Vec<EventType> {
    let allowed = throughcare_projections::allowed(j);
    MANAGER_EVENTS
        .iter()
        .copied()
        .filter(|k| allowed.contains(k) && may_manage(p, j, *k))
        .collect()
}

/// The fields of a manager form beside the date and time.
fn fields(kind: EventType) -> Vec<forms::Field> {
    let choice = |all: Vec<String>| forms::Input::Choice(all);
    let field = |name: &str, label: &str, input, hint| forms::Field {
        name: name.into(),
        label: label.into(),
        hint,
        input,
        required: true,
    };
    match kind {
        EventType::CaseAllocated => vec![
            field(
                "worker_id",
                "Worker id",
                forms::Input::Text,
                Some("The worker's id, for example W-WCI-01"),
            ),
            field(
                "worker_role",
                "Worker's role",
                choice(
                    WorkerRole::ALL
                        .iter()
                        .map(|r| r.as_str().to_string())
                        .collect(),
                ),
                None,
            ),
        ],
        EventType::SupportExtended => vec![
            field(
                "until",
                "Support until",
                forms::Input::Date,
                Some("The last day of the extended support"),
            ),
            field(
                "reason",
                "Reason",
                choice(
                    ExtensionReason::ALL
                        .iter()
                        .map(|r| r.as_str().to_string())
                        .collect(),
                ),
                None,
            ),
        ],
        _ => Vec::new(),
    }
}

/// Builds the CloudEvent a manager form describes (a required field left empty is the
/// form's own error; values are passed as typed and checked by the write path).
pub(crate) fn build(
    kind: EventType,
    values: &Values,
    person: PersonId,
    id: &str,
    source: &str,
) -> Result<Built, Vec<FieldError>> {
    let mut errors = Vec::new();
    let occurred = match time::parse_local(values.get("date"), values.get("time")) {
        Ok(t) => Some(t),
        Err((f, message)) => {
            errors.push(FieldError {
                field: Some(f.into()),
                message,
            });
            None
        }
    };
    if !MANAGER_EVENTS.contains(&kind) {
        errors.push(FieldError {
            field: None,
            message: format!("{} is not a manager's action", kind.as_str()),
        });
    }
    let mut data = Map::new();
    data.insert("person".into(), json!({ "person_id": person }));
    let mut pointers = vec![
        ("/time".to_string(), "date".to_string()),
        ("/data/person".to_string(), String::new()),
    ];
    for f in fields(kind) {
        let v = values.get(&f.name);
        if v.is_empty() {
            let verb = if matches!(f.input, forms::Input::Choice(_)) {
                "Select"
            } else {
                "Enter"
            };
            errors.push(FieldError {
                field: Some(f.name.clone()),
                message: format!("{verb} {}", f.label.to_lowercase()),
            });
        } else {
            data.insert(f.name.clone(), Value::String(v.into()));
        }
        pointers.push((format!("/data/{}", f.name), f.name.clone()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Built::envelope(kind, id, source, occurred, data, pointers))
}

fn error_of<'a>(form: &'a FormState, field: &str) -> Option<&'a str> {
    form.errors
        .iter()
        .find(|e| e.field.as_deref() == Some(field))
        .map(|e| e.message.as_str())
}

/// The element id of a manager form's field: `case-allocated-worker-id`.
pub(crate) fn field_id(kind: EventType, name: &str) -> String {
    forms::field_id(kind, name)
}

/// The element id of a manager form's `details`: `manage-case-allocated`.
pub(crate) fn form_id(kind: EventType) -> String {
    format!("manage-{}", forms::slug(kind).replace('.', "-"))
}

/// The manager's section of a person's page: every action offered now, and a refused one
/// sent back (`sent_back`) even when the state no longer offers it, so its reason shows.
pub(crate) fn section(
    state: &AppState,
    who: &Principal,
    j: &Journey,
    session: &str,
    now: DateTime<Utc>,
    sent_back: Option<&FormState>,
) -> Markup {
    let mut kinds = offered(who, j);
    if let Some(f) = sent_back {
        if !kinds.contains(&f.kind) {
            kinds.insert(0, f.kind);
        }
    }
    if kinds.is_empty() {
        return html! {};
    }
    let forms: Vec<FormState> = kinds
        .iter()
        .map(|k| match sent_back {
            Some(f) if f.kind == *k => FormState {
                kind: f.kind,
                id: f.id.clone(),
                values: f.values.clone(),
                errors: f.errors.clone(),
            },
            _ => FormState::fresh(*k, now),
        })
        .collect();
    html! {
        h2 #manage { "Manage the case" }
        p.muted { "Actions for the case's manager; each is recorded in the ledger once, however many times it is sent." }
        @for f in &forms {
            @let token = csrf::token(state.sessions.csrf_secret(), session, &f.id);
            (render(f, j, &token, now))
        }
    }
}

fn render(form: &FormState, j: &Journey, csrf_token: &str, now: DateTime<Utc>) -> Markup {
    let kind = form.kind;
    let person = j.person_id;
    let fid = |name: &str| field_id(kind, name);
    let general: Vec<&FieldError> = form.errors.iter().filter(|e| e.field.is_none()).collect();
    let described = |name: &str, hint: bool| -> Option<String> {
        let id = fid(name);
        let parts: Vec<String> = [
            hint.then(|| format!("{id}-hint")),
            error_of(form, name).map(|_| format!("{id}-error")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    let cls = |name: &str| error_of(form, name).map(|_| "error");
    let wrap = |name: &str, label: &str, hint: Option<&str>, input: Markup| {
        let id = fid(name);
        html! {
            div class=[error_of(form, name).map(|_| "field-error")] {
                label for=(id) { (label) }
                @if let Some(h) = hint { span.hint id={ (id) "-hint" } { (h) } }
                @if let Some(e) = error_of(form, name) {
                    span.error-message id={ (id) "-error" } { span.visually-hidden { "Error: " } (e) }
                }
                (input)
            }
        }
    };
    let heading = title(kind, Some(j));
    html! {
        details id=(form_id(kind)) open[!form.errors.is_empty()] {
            summary { "Manage: " (heading) }
            form method="post" action={ "/people/" (person) "/manage/" (forms::slug(kind)) } novalidate {
                input type="hidden" name="event_id" value=(form.id);
                input type="hidden" name="csrf" value=(csrf_token);
                @for e in &general { p.error-message { span.visually-hidden { "Error: " } (e.message) } }
                @if kind == EventType::CaseAllocated {
                    p { "Now: " (j.worker.as_ref().map(|w| format!("{} ({})", w.worker_id, words(w.role.as_str()))).unwrap_or_else(|| "unallocated".into())) }
                }
                @if kind == EventType::SupportExtended {
                    p { "Support now ends: " (j.view(now).support_end.map(|d| d.to_string()).unwrap_or_else(|| "not set".into())) }
                }
                fieldset {
                    legend { "When (UK time, " (time::zone(now)) " now)" }
                    div.inline {
                        (wrap("date", "Date", None, html! {
                            input type="date" id=(fid("date")) name="date" value=(form.values.get("date"))
                                aria-describedby=[described("date", false)] class=[cls("date")];
                        }))
                        (wrap("time", "Time", None, html! {
                            input type="time" id=(fid("time")) name="time" value=(form.values.get("time"))
                                aria-describedby=[described("time", false)] class=[cls("time")];
                        }))
                    }
                }
                @for f in fields(kind) {
                    @let id = fid(&f.name);
                    @let typed = form.values.get(&f.name);
                    (wrap(&f.name, &f.label, f.hint, html! {
                        @match &f.input {
                            forms::Input::Choice(options) => {
                                select id=(id) name=(f.name) aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)] {
                                    option value="" selected[typed.is_empty()] { "Select" }
                                    @for o in options { option value=(o) selected[typed == o] { (words(o)) } }
                                    @if !typed.is_empty() && !options.iter().any(|o| o == typed) {
                                        option value=(typed) selected { (typed) }
                                    }
                                }
                            }
                            forms::Input::Date => {
                                input type="date" id=(id) name=(f.name) value=(typed)
                                    aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)];
                            }
                            forms::Input::Text | forms::Input::List => {
                                input type="text" id=(id) name=(f.name) value=(typed) size="30"
                                    aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)];
                            }
                        }
                    }))
                }
                p { button type="submit" { (heading) } }
            }
        }
    }
}

/// Every status, in the order a case moves through them.
const STATUSES: [Status; 10] = [
    Status::Referred,
    Status::Accepted,
    Status::PreRelease,
    Status::SeekingContact,
    Status::Engaged,
    Status::Disengaged,
    Status::InCustody,
    Status::InHospital,
    Status::Closed,
    Status::NotReferred,
];

#[derive(Deserialize)]
pub struct CasesQuery {
    /// A status code (`REFERRED`), or empty for every open case.
    status: Option<String>,
    prison: Option<String>,
}

/// When the case's oldest referral still waiting for a decision was received.
pub(crate) fn waiting_since(j: &Journey) -> Option<DateTime<Utc>> {
    j.episode()?
        .referrals
        .iter()
        .filter(|r| r.state == ReferralState::Pending)
        .map(|r| r.received_at)
        .min()
}

/// The triage queue: referred cases, the one waiting longest first.
pub(crate) fn triage_queue(cases: &[Journey]) -> Vec<(&Journey, Option<DateTime<Utc>>)> {
    let mut out: Vec<_> = cases
        .iter()
        .filter(|j| j.status == Status::Referred)
        .map(|j| (j, waiting_since(j)))
        .collect();
    // Unknown waits (none pending) last; ties by person id for a stable page.
    out.sort_by_key(|(j, since)| (since.is_none(), *since, j.person_id));
    out
}

/// Open cases with no release date that have not been released to the community.
pub(crate) fn no_release_date(j: &Journey) -> bool {
    j.status.is_open() && j.release_date.is_none() && (j.in_custody || j.released_at.is_none())
}

/// Whether a case belongs to `prison` (where the person is, or a referral named).
fn at_prison(j: &Journey, prison: &str) -> bool {
    j.prison.as_deref() == Some(prison)
        || j.episodes
            .iter()
            .flat_map(|e| &e.referrals)
            .any(|r| r.prison == prison)
}

/// `GET /cases?status=REFERRED&prison=WCI`: the cases the caller may read, by status, with
/// the triage queue and the people with no release date.
pub async fn cases(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<CasesQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.as_ref();
    let viewer = Viewer::of(&state, who, &headers);
    let now = state.ledger.now();
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(
            STATUSES
                .iter()
                .copied()
                .find(|s| code(s) == raw.to_ascii_uppercase())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "status: {raw:?} is not one of {}",
                        STATUSES.iter().map(code).collect::<Vec<_>>().join(", ")
                    ))
                })?,
        ),
    };
    let prison = match q.prison.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(p) => Some(
            PrisonCode::parse(p)
                .map_err(|e| ApiError::bad_request(format!("prison: {e}")))?
                .to_string(),
        ),
    };
    let mut all = crate::access::scoped::cases(&state, &caller)?;
    all.retain(|j| prison.as_deref().is_none_or(|p| at_prison(j, p)));
    let queue = triage_queue(&all);
    let mut undated: Vec<&Journey> = all.iter().filter(|j| no_release_date(j)).collect();
    undated.sort_by_key(|j| (waiting_since(j).is_none(), j.episode().map(|e| e.opened_at)));
    let mut listed: Vec<&Journey> = all
        .iter()
        .filter(|j| match status {
            Some(s) => j.status == s,
            None => j.status.is_open(),
        })
        .collect();
    listed.sort_by_key(|j| {
        (
            STATUSES.iter().position(|s| *s == j.status),
            j.release_date.as_ref().map(|r| r.date).is_none(),
            j.release_date.as_ref().map(|r| r.date),
            j.person_id,
        )
    });
    let prisons: Vec<&str> = PILOT_PRISONS
        .iter()
        .copied()
        .filter(|p| who.open_mode || who.role == Role::Auditor || who.covers_prison(p))
        .collect();
    let today = now.date_naive();
    let row = |j: &Journey| {
        let v = j.view(now);
        html! {
            tr {
                td { a href={ "/people/" (j.person_id) } { (label(j)) } }
                td { span.tag.tag-status { (words(&code(&j.status))) } }
                td { (j.prison.as_deref().unwrap_or("")) }
                td { (j.release_date.as_ref().map(|r| r.date.to_string()).unwrap_or_else(|| "none".into())) }
                td { (j.worker.as_ref().map(|w| w.worker_id.as_str()).unwrap_or("unallocated")) }
                td {
                    @if j.status.is_open() && j.worker.is_none() { span.tag.tag-warn { "unallocated" } }
                    @if j.status.is_open() && j.plan.is_none() { span.tag.tag-warn { "no plan" } }
                    @for f in &v.active_flags { (flag(*f)) }
                }
                td {
                    @if offered(who, j).is_empty() { span.muted { "none now" } }
                    @else { a href={ "/people/" (j.person_id) "#manage" } { "Manage" span.visually-hidden { " " (label(j)) } } }
                }
            }
        }
    };
    let head = html! {
        thead { tr { th scope="col" { "Person" } th scope="col" { "Status" } th scope="col" { "Prison" }
            th scope="col" { "Release date" } th scope="col" { "Worker" } th scope="col" { "Gaps and flags" }
            th scope="col" { "Actions" } } }
    };
    let body = html! {
        form method="get" action="/cases" {
            div.inline {
                div {
                    label for="cases-status" { "Status" }
                    select #cases-status name="status" {
                        option value="" selected[status.is_none()] { "Any open status" }
                        @for s in STATUSES {
                            option value=(code(&s)) selected[status == Some(s)] { (words(&code(&s))) }
                        }
                    }
                }
                div {
                    label for="cases-prison" { "Prison" }
                    select #cases-prison name="prison" {
                        option value="" selected[prison.is_none()] { "All my prisons" }
                        @for p in &prisons {
                            option value=(p) selected[prison.as_deref() == Some(*p)] {
                                (p) " " (PrisonCode::parse(p).map(|c| c.name()).unwrap_or(""))
                            }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
        }
        h2 #triage { "Triage queue: referred, waiting longest first (" (queue.len()) ")" }
        @if queue.is_empty() { p.muted { "No referral is waiting for a decision." } }
        @else {
            table {
                caption.visually-hidden { "Referred cases waiting for a decision, longest first" }
                thead { tr { th scope="col" { "Person" } th scope="col" { "Referred" } th scope="col" { "Waiting" }
                    th scope="col" { "Prison" } th scope="col" { "Release date" } } }
                tbody {
                    @for (j, since) in &queue {
                        tr {
                            td { a href={ "/people/" (j.person_id) } { (label(j)) } }
                            td { (since.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_else(|| "unknown".into())) }
                            td { (since.map(|t| format!("{} days", (today - t.date_naive()).num_days())).unwrap_or_default()) }
                            td { (j.prison.as_deref().unwrap_or("")) }
                            td { (j.release_date.as_ref().map(|r| r.date.to_string()).unwrap_or_else(|| "none".into())) }
                        }
                    }
                }
            }
        }
        h2 #no-release-date { "Open cases with no release date (" (undated.len()) ")" }
        @if undated.is_empty() { p.muted { "Every open case in custody has a release date." } }
        @else {
            table {
                caption.visually-hidden { "Open cases with no release date" }
                (head)
                tbody { @for j in &undated { (row(j)) } }
            }
        }
        h2 #by-status {
            @match status { Some(s) => { "Cases " (words(&code(&s))) }, None => { "Open cases" } }
            " (" (listed.len()) ")"
        }
        @if listed.is_empty() { p.muted { "None." } }
        @else {
            table {
                caption.visually-hidden { "Cases by status" }
                (head)
                tbody { @for j in &listed { (row(j)) } }
            }
        }
    };
    // Every case shown (the queue, the undated and the list) is on the record.
    let mut shown: Vec<throughcare_events::PersonId> = queue
        .iter()
        .map(|(j, _)| j.person_id)
        .chain(undated.iter().map(|j| j.person_id))
        .chain(listed.iter().map(|j| j.person_id))
        .collect();
    shown.sort_unstable();
    shown.dedup();
    Ok(crate::api::listed(
        page(&viewer, "Cases by status", body).into_response(),
        throughcare_ledger::AccessWhat::ReadList,
        shown,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_forms_build_their_events_and_name_their_fields() {
        let person: PersonId = "01JD3Z8Q6V2X9S7W4K5M1N0P3R".parse().unwrap();
        let values = Values::parse(
            b"date=2026-11-02&time=09:30&worker_id=W-WCI-01&worker_role=PEER_SUPPORT",
        );
        let built = build(
            EventType::CaseAllocated,
            &values,
            person,
            "01JD3Z8Q6V2X9S7W4K5M1N0P3S",
            "urn:throughcare:staff:m",
        )
        .unwrap();
        assert_eq!(built.event["type"], "throughcare.case.allocated.v1");
        assert_eq!(built.event["data"]["worker_id"], "W-WCI-01");
        assert_eq!(built.event["data"]["worker_role"], "PEER_SUPPORT");
        assert_eq!(built.event["time"], "2026-11-02T09:30:00Z");
        assert_eq!(
            built.field_of("/data/worker_role"),
            Some("worker_role".into())
        );

        let values = Values::parse(b"date=2026-11-02&time=09:30&reason=ONGOING_NEEDS");
        let errors = build(
            EventType::SupportExtended,
            &values,
            person,
            "id",
            "urn:throughcare:staff:m",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError {
                field: Some("until".into()),
                message: "Enter support until".into()
            }]
        );
        let reopened = build(
            EventType::CaseReopened,
            &Values::parse(b"date=2026-11-02&time=09:30"),
            person,
            "id",
            "urn:throughcare:staff:m",
        )
        .unwrap();
        assert_eq!(
            reopened.event["data"],
            json!({"person": {"person_id": person}})
        );
        assert!(build(EventType::ContactMade, &values, person, "id", "s").is_err());
        assert_eq!(kind_of("case.allocated"), Some(EventType::CaseAllocated));
        assert_eq!(kind_of("contact.made"), None);
        assert_eq!(
            field_id(EventType::SupportExtended, "until"),
            "support-extended-until"
        );
    }
}
