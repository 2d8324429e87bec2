//! The worker's forms on a person's page: one per service event a worker records (contact
//! attempted/made, consent given/withdrawn, assessment completed, plan agreed/reviewed,
//! signposting made and its outcome, engagement changed, safeguarding raised, case
//! closed). A form is offered only when the case state allows its event now
//! (`throughcare_projections::allowed`) and the policy lets the caller submit it about
//! this person. It posts to `POST /people/{id}/events/{type}` (`posts.rs`), which builds the
//! CloudEvent (the server fills `source`; the `id` was made when the form was rendered
//! and travels in a hidden field, so a double click or a resent form is recorded once by
//! the ledger's idempotency) and sends it through the same write path as partners
//! (`submit::submit`). A refusal is shown next to the field its JSON pointer names.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use throughcare_events::catalogue::{
    AssessmentKind, CloseReason, ConsentScope, ContactChannel, ContactOutcome, EngagementStatus,
    NeedDomain, NeedLevel, SafeguardingCategory, ServiceType, SignpostMode, SignpostOutcome,
};
use throughcare_events::{EventType, PersonId};
use throughcare_projections::Journey;

use super::{time, words};
use crate::access::policy::{can_read, check_submission, is_staff};
use crate::auth::Principal;
use crate::problem::ApiError;

/// The event types a worker records from a person's page, in the order offered.
pub(crate) const WORKER_EVENTS: &[EventType] = &[
    EventType::ContactAttempted,
    EventType::ContactMade,
    EventType::ConsentGiven,
    EventType::ConsentWithdrawn,
    EventType::AssessmentCompleted,
    EventType::PlanAgreed,
    EventType::PlanReviewed,
    EventType::SignpostingMade,
    EventType::SignpostingOutcome,
    EventType::EngagementChanged,
    EventType::SafeguardingRaised,
    EventType::CaseClosed,
];

/// Plan actions a form can hold (rows left blank are not sent).
pub(crate) const PLAN_ROWS: usize = 3;

/// The short name of a type in URLs and element ids: `contact.made`.
pub(crate) fn slug(kind: EventType) -> &'static str {
    let s = kind.as_str();
    let s = s.strip_prefix("throughcare.").unwrap_or(s);
    s.strip_suffix(".v1").unwrap_or(s)
}

/// The type of a slug, if it is one of the worker's.
pub(crate) fn kind_of(slug_: &str) -> Option<EventType> {
    WORKER_EVENTS.iter().copied().find(|k| slug(*k) == slug_)
}

/// What a form says it records, as its heading.
pub(crate) fn title(kind: EventType) -> &'static str {
    use EventType::*;
    match kind {
        ContactAttempted => "Contact attempted",
        ContactMade => "Contact made",
        ConsentGiven => "Consent given",
        ConsentWithdrawn => "Consent withdrawn",
        AssessmentCompleted => "Assessment completed",
        PlanAgreed => "Plan agreed",
        PlanReviewed => "Plan reviewed",
        SignpostingMade => "Signposting made",
        SignpostingOutcome => "Signposting outcome",
        EngagementChanged => "Engagement changed",
        SafeguardingRaised => "Safeguarding concern raised",
        CaseClosed => "Case closed",
        _ => "Event",
    }
}

/// How a field is entered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// One code of a list (a `select`).
    Choice(Vec<String>),
    Text,
    Date,
    /// Several values separated by commas.
    List,
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// The form field's name (also the last part of its element id).
    pub name: String,
    pub label: String,
    pub hint: Option<&'static str>,
    pub input: Input,
    pub required: bool,
}

fn codes<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> Input {
    Input::Choice(all.iter().map(|c| f(*c).to_string()).collect())
}

fn field(name: &str, label: &str, input: Input, required: bool) -> Field {
    Field {
        name: name.into(),
        label: label.into(),
        hint: None,
        input,
        required,
    }
}

/// The fields of a form beside the date and time it happened (every form has those).
/// `j` gives the choices that depend on the person (the signposts awaiting an outcome).
pub(crate) fn fields(kind: EventType, j: &Journey) -> Vec<Field> {
    use EventType::*;
    match kind {
        ContactAttempted | ContactMade => vec![
            field(
                "channel",
                "Channel",
                codes(ContactChannel::ALL, ContactChannel::as_str),
                true,
            ),
            field(
                "outcome",
                "Outcome",
                codes(ContactOutcome::ALL, ContactOutcome::as_str),
                false,
            ),
        ],
        ConsentGiven | ConsentWithdrawn => vec![
            field(
                "scope",
                "Scope",
                codes(ConsentScope::ALL, ConsentScope::as_str),
                true,
            ),
            Field {
                hint: Some("For SHARE_WITH: the organisations, separated by commas"),
                ..field("orgs", "Organisations", Input::List, false)
            },
        ],
        AssessmentCompleted => {
            let mut out = vec![field(
                "kind",
                "Kind of assessment",
                codes(AssessmentKind::ALL, AssessmentKind::as_str),
                true,
            )];
            for d in NeedDomain::ALL {
                out.push(field(
                    &format!("need.{}", d.as_str()),
                    &format!("Need: {}", words(d.as_str())),
                    codes(NeedLevel::ALL, NeedLevel::as_str),
                    false,
                ));
            }
            out
        }
        PlanAgreed | PlanReviewed => {
            let mut out = Vec::new();
            for row in 1..=PLAN_ROWS {
                out.push(field(
                    &format!("action{row}.need"),
                    &format!("Action {row}: need"),
                    codes(NeedDomain::ALL, NeedDomain::as_str),
                    false,
                ));
                out.push(field(
                    &format!("action{row}.service_type"),
                    &format!("Action {row}: service"),
                    codes(ServiceType::ALL, ServiceType::as_str),
                    false,
                ));
                out.push(field(
                    &format!("action{row}.due_by"),
                    &format!("Action {row}: due by"),
                    Input::Date,
                    false,
                ));
            }
            out.push(field("next_review", "Next review", Input::Date, false));
            out
        }
        SignpostingMade => vec![
            Field {
                hint: Some(
                    "A reference of your own for this signpost; its outcome is recorded against it",
                ),
                ..field("signpost_id", "Signpost reference", Input::Text, true)
            },
            field(
                "service_type",
                "Service",
                codes(ServiceType::ALL, ServiceType::as_str),
                true,
            ),
            field("org", "Organisation", Input::Text, true),
            field(
                "mode",
                "How",
                codes(SignpostMode::ALL, SignpostMode::as_str),
                true,
            ),
        ],
        SignpostingOutcome => vec![
            field(
                "signpost_id",
                "Signpost",
                Input::Choice(
                    j.signposts
                        .iter()
                        .filter(|s| s.outcome.is_none())
                        .map(|s| s.signpost_id.clone())
                        .collect(),
                ),
                true,
            ),
            field(
                "outcome",
                "Outcome",
                codes(SignpostOutcome::ALL, SignpostOutcome::as_str),
                true,
            ),
        ],
        EngagementChanged => vec![field(
            "status",
            "Engagement",
            codes(EngagementStatus::ALL, EngagementStatus::as_str),
            true,
        )],
        SafeguardingRaised => vec![
            field(
                "category",
                "Category",
                codes(SafeguardingCategory::ALL, SafeguardingCategory::as_str),
                true,
            ),
            field("referred_to", "Referred to", Input::Text, true),
        ],
        CaseClosed => vec![field(
            "reason",
            "Reason",
            codes(CloseReason::ALL, CloseReason::as_str),
            true,
        )],
        _ => Vec::new(),
    }
}

/// What was typed into a form, by field name (a form field sent twice keeps the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Values(pub BTreeMap<String, String>);

impl Values {
    pub fn parse(body: &[u8]) -> Values {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Values(map)
    }
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|s| s.trim()).unwrap_or("")
    }
}

/// A problem to show: the field it belongs to (`None`: the form as a whole) and what to
/// do about it, in plain words.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub field: Option<String>,
    pub message: String,
}

/// A built CloudEvent, and which form field each of its JSON pointers came from.
#[derive(Debug)]
pub(crate) struct Built {
    pub event: Value,
    /// (JSON pointer prefix, field name), longest prefixes first when looked up.
    pub pointers: Vec<(String, String)>,
}

impl Built {
    /// The CloudEvent a form makes: the staff `source`, the `id` drawn with the form, the
    /// time the form gave (whole seconds, UTC), and the fields read from it.
    pub(crate) fn envelope(
        kind: EventType,
        id: &str,
        source: &str,
        occurred: Option<DateTime<Utc>>,
        data: Map<String, Value>,
        pointers: Vec<(String, String)>,
    ) -> Built {
        let time = occurred.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        Built {
            event: json!({
                "specversion": "1.0",
                "id": id,
                "source": source,
                "type": kind.as_str(),
                "time": time,
                "datacontenttype": "application/json",
                "data": Value::Object(data),
            }),
            pointers,
        }
    }
}

impl Built {
    /// The form field a refusal's pointer names, if any.
    pub fn field_of(&self, pointer: &str) -> Option<String> {
        self.pointers
            .iter()
            .filter(|(p, _)| pointer == p || pointer.starts_with(&format!("{p}/")))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, f)| f.clone())
    }
}

/// Builds the CloudEvent a form describes. Fields left empty are left out, and a
/// required one left empty is the form's own error (nothing is sent). Values are passed
/// through as typed: checking them is the write path's job, and its 422 names them.
pub(crate) fn build(
    kind: EventType,
    values: &Values,
    fields: &[Field],
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
    for f in fields.iter().filter(|f| f.required) {
        if values.get(&f.name).is_empty() {
            let verb = if matches!(f.input, Input::Choice(_)) {
                "Select"
            } else {
                "Enter"
            };
            errors.push(FieldError {
                field: Some(f.name.clone()),
                message: format!("{verb} {}", f.label.to_lowercase()),
            });
        }
    }
    let mut data = Map::new();
    data.insert("person".into(), json!({ "person_id": person }));
    let mut pointers = vec![
        ("/time".to_string(), "date".to_string()),
        ("/data/person".to_string(), String::new()),
    ];
    fn put(
        data: &mut Map<String, Value>,
        pointers: &mut Vec<(String, String)>,
        values: &Values,
        key: &str,
        name: &str,
    ) {
        let v = values.get(name);
        if !v.is_empty() {
            data.insert(key.into(), Value::String(v.into()));
        }
        pointers.push((format!("/data/{key}"), name.into()));
    }
    use EventType::*;
    match kind {
        ContactAttempted | ContactMade => {
            put(&mut data, &mut pointers, values, "channel", "channel");
            put(&mut data, &mut pointers, values, "outcome", "outcome");
        }
        ConsentGiven | ConsentWithdrawn => {
            put(&mut data, &mut pointers, values, "scope", "scope");
            let orgs: Vec<&str> = values
                .get("orgs")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if !orgs.is_empty() {
                data.insert("orgs".into(), json!(orgs));
            }
            pointers.push(("/data/orgs".into(), "orgs".into()));
        }
        AssessmentCompleted => {
            put(&mut data, &mut pointers, values, "kind", "kind");
            let mut needs = Vec::new();
            for d in NeedDomain::ALL {
                let name = format!("need.{}", d.as_str());
                let level = values.get(&name);
                if !level.is_empty() {
                    pointers.push((format!("/data/needs/{}", needs.len()), name.clone()));
                    needs.push(json!({ "domain": d.as_str(), "level": level }));
                }
            }
            data.insert("needs".into(), Value::Array(needs));
        }
        PlanAgreed | PlanReviewed => {
            let mut actions = Vec::new();
            for row in 1..=PLAN_ROWS {
                let name = |part: &str| format!("action{row}.{part}");
                let parts = ["need", "service_type", "due_by"].map(|p| values.get(&name(p)));
                if parts.iter().all(|p| p.is_empty()) {
                    continue;
                }
                let index = actions.len();
                let mut action = Map::new();
                for (part, value) in ["need", "service_type", "due_by"].iter().zip(parts) {
                    pointers.push((format!("/data/actions/{index}/{part}"), name(part)));
                    if !value.is_empty() {
                        action.insert((*part).into(), Value::String(value.into()));
                    }
                }
                pointers.push((format!("/data/actions/{index}"), name("need")));
                actions.push(Value::Object(action));
            }
            if actions.is_empty() {
                errors.push(FieldError {
                    field: Some("action1.need".into()),
                    message: "Enter at least one action of the plan".into(),
                });
            }
            data.insert("actions".into(), Value::Array(actions));
            put(
                &mut data,
                &mut pointers,
                values,
                "next_review",
                "next_review",
            );
        }
        SignpostingMade => {
            for key in ["signpost_id", "service_type", "org", "mode"] {
                put(&mut data, &mut pointers, values, key, key);
            }
        }
        SignpostingOutcome => {
            put(
                &mut data,
                &mut pointers,
                values,
                "signpost_id",
                "signpost_id",
            );
            put(&mut data, &mut pointers, values, "outcome", "outcome");
        }
        EngagementChanged => put(&mut data, &mut pointers, values, "status", "status"),
        SafeguardingRaised => {
            put(&mut data, &mut pointers, values, "category", "category");
            put(
                &mut data,
                &mut pointers,
                values,
                "referred_to",
                "referred_to",
            );
        }
        CaseClosed => put(&mut data, &mut pointers, values, "reason", "reason"),
        _ => errors.push(FieldError {
            field: None,
            message: format!("{} is not recorded from this page", kind.as_str()),
        }),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Built::envelope(kind, id, source, occurred, data, pointers))
}

/// Whether `p` may record `kind` about the person of `j` from the page (the same rules
/// the write path applies: staff, about people it can read, service events only).
pub(crate) fn may_record(p: &Principal, j: &Journey, kind: EventType) -> bool {
    (p.open_mode || (is_staff(p) && can_read(p, j)))
        && check_submission(p, &p.staff_source(), kind).is_ok()
}

/// The forms offered now: the worker's events the case state allows and the caller may
/// record.
pub(crate) fn offered(p: &Principal, j: &Journey) -> Vec<EventType> {
    let allowed = throughcare_projections::allowed(j);
    WORKER_EVENTS
        .iter()
        .copied()
        .filter(|k| allowed.contains(k) && may_record(p, j, *k))
        // An outcome needs a signpost waiting for one.
        .filter(|k| {
            *k != EventType::SignpostingOutcome || j.signposts.iter().any(|s| s.outcome.is_none())
        })
        .collect()
}

/// A form as it is drawn: fresh (values defaulted, a new id) or sent back with errors.
pub(crate) struct FormState {
    pub kind: EventType,
    pub id: String,
    pub values: Values,
    pub errors: Vec<FieldError>,
}

impl FormState {
    /// A new form: a new event id, the date and time now on the UK clock.
    pub fn fresh(kind: EventType, now: DateTime<Utc>) -> FormState {
        let id = ulid::Ulid::new().to_string();
        let local = time::to_local(now);
        let mut values = BTreeMap::new();
        values.insert("date".into(), local.format("%Y-%m-%d").to_string());
        values.insert("time".into(), local.format("%H:%M").to_string());
        if kind == EventType::SignpostingMade {
            values.insert("signpost_id".into(), format!("SP-{}", &id[id.len() - 8..]));
        }
        FormState {
            kind,
            id,
            values: Values(values),
            errors: Vec::new(),
        }
    }

    fn error_of(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field.as_deref() == Some(field))
            .map(|e| e.message.as_str())
    }
}

/// The element id of a form's field: `contact-made-channel`.
pub(crate) fn field_id(kind: EventType, name: &str) -> String {
    format!(
        "{}-{}",
        slug(kind).replace(['.', '_'], "-"),
        name.replace(['.', '_'], "-")
    )
}

/// Draws one form inside a `details` element (open when it comes back with errors), so
/// that a page of twelve forms stays short without any script.
pub(crate) fn render(
    form: &FormState,
    person: PersonId,
    j: &Journey,
    csrf_token: &str,
    now: DateTime<Utc>,
) -> Markup {
    let kind = form.kind;
    let fid = |name: &str| field_id(kind, name);
    let general: Vec<&FieldError> = form.errors.iter().filter(|e| e.field.is_none()).collect();
    let with_error = |name: &str, input: Markup, label: &str, hint: Option<&str>| {
        let err = form.error_of(name);
        let id = fid(name);
        html! {
            div class=@if err.is_some() { "field-error" } {
                label for=(id) { (label) }
                @if let Some(h) = hint { span.hint id={ (id) "-hint" } { (h) } }
                @if let Some(e) = err { span.error-message id={ (id) "-error" } { span.visually-hidden { "Error: " } (e) } }
                (input)
            }
        }
    };
    let described = |name: &str, hint: bool| -> Option<String> {
        let id = fid(name);
        let parts: Vec<String> = [
            hint.then(|| format!("{id}-hint")),
            form.error_of(name).map(|_| format!("{id}-error")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    let cls = |name: &str| form.error_of(name).map(|_| "error");
    html! {
        details #{ "form-" (slug(kind).replace('.', "-")) } open[!form.errors.is_empty()] {
            summary { "Record: " (title(kind)) }
            form method="post" action={ "/people/" (person) "/events/" (slug(kind)) } novalidate {
                input type="hidden" name="event_id" value=(form.id);
                input type="hidden" name="csrf" value=(csrf_token);
                @for e in &general { p.error-message { span.visually-hidden { "Error: " } (e.message) } }
                fieldset {
                    legend { "When it happened (UK time, " (time::zone(now)) " now)" }
                    div.inline {
                        (with_error("date", html! {
                            input type="date" id=(fid("date")) name="date" value=(form.values.get("date"))
                                aria-describedby=[described("date", false)] class=[cls("date")];
                        }, "Date", None))
                        (with_error("time", html! {
                            input type="time" id=(fid("time")) name="time" value=(form.values.get("time"))
                                aria-describedby=[described("time", false)] class=[cls("time")];
                        }, "Time", None))
                    }
                }
                @for f in fields(kind, j) {
                    @let id = fid(&f.name);
                    @let typed = form.values.get(&f.name);
                    @let label = if f.required { f.label.clone() } else { format!("{} (optional)", f.label) };
                    (with_error(&f.name, html! {
                        @match &f.input {
                            Input::Choice(options) => {
                                select id=(id) name=(f.name) aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)] {
                                    option value="" selected[typed.is_empty()] { "Select" }
                                    @for o in options {
                                        option value=(o) selected[typed == o] { (words(o)) }
                                    }
                                    // A value typed that is not on the list is kept, so the refusal
                                    // beside it names what was sent.
                                    @if !typed.is_empty() && !options.iter().any(|o| o == typed) {
                                        option value=(typed) selected { (typed) }
                                    }
                                }
                            }
                            Input::Date => {
                                input type="date" id=(id) name=(f.name) value=(typed)
                                    aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)];
                            }
                            Input::Text | Input::List => {
                                input type="text" id=(id) name=(f.name) value=(typed) size="40"
                                    aria-describedby=[described(&f.name, f.hint.is_some())] class=[cls(&f.name)];
                            }
                        }
                    }, &label, f.hint))
                }
                p { button type="submit" { "Record " (title(kind).to_lowercase()) } }
            }
        }
    }
}

/// Why a form was refused, from the write path's problem: each JSON pointer's problem
/// next to its field, the rest (a state conflict, a policy refusal) for the whole form.
pub(crate) fn refusal_errors(error: &ApiError, built: &Built) -> Vec<FieldError> {
    let mut out = Vec::new();
    if let Some(problems) = error.extra.get("errors").and_then(Value::as_array) {
        for p in problems {
            let pointer = p["pointer"].as_str().unwrap_or("");
            let detail = p["detail"].as_str().unwrap_or("is not valid");
            let field = built.field_of(pointer).filter(|f| !f.is_empty());
            out.push(FieldError {
                message: match &field {
                    Some(_) => upper_first(detail),
                    None if pointer.is_empty() => upper_first(detail),
                    None => format!("{pointer}: {detail}"),
                },
                field,
            });
        }
    }
    if out.is_empty() {
        let mut message = match error.status {
            StatusCode::CONFLICT if error.extra.get("current_state").is_some() => format!(
                "This cannot be recorded now: {}. The case is {}.",
                error.detail,
                words(error.extra["current_state"].as_str().unwrap_or("in another state"))
            ),
            StatusCode::CONFLICT => format!(
                "This form was already recorded with different answers ({}). Reload the page to record something new.",
                error.detail
            ),
            _ => upper_first(&error.detail),
        };
        if let Some(allowed) = error.extra.get("allowed_events").and_then(Value::as_array) {
            let names: Vec<&str> = allowed
                .iter()
                .filter_map(Value::as_str)
                .filter_map(EventType::parse)
                .filter(|k| WORKER_EVENTS.contains(k))
                .map(title)
                .collect();
            if !names.is_empty() {
                message.push_str(&format!(
                    " What can be recorded now: {}.",
                    names.join(", ").to_lowercase()
                ));
            }
        }
        out.push(FieldError {
            field: None,
            message,
        });
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A form sent back to the person's page with its errors and the status to answer with.
pub(crate) struct Reply {
    pub form: FormState,
    pub status: StatusCode,
}

impl FormState {
    pub(crate) fn into_reply(self, status: StatusCode) -> Reply {
        Reply { form: self, status }
    }
}

#[cfg(test)]
mod tests;
