//! The CloudEvents 1.0 structured-mode envelope (one event or a batch) and its
//! validation. `now` is passed in: this crate never reads the clock.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalogue::{cross_field_checks, EventData, EventType};
use crate::problems::{unknown_members, Pointer, Problem, Problems};

/// How far in the future an event's `time` may be (clock skew between partners).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// Largest accepted event: a body holding one event, or one item of a batch (its JSON as
/// serialised compactly). DESIGN.md's "body over 64 KiB" limit, applied per event.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Largest accepted request body: a batch of up to 1,000 events (the ledger's batch
/// limit) of ordinary size fits with room to spare; every item is still held to
/// [`MAX_EVENT_BYTES`]. See ARCHITECTURE.md "Deviations" for why a batch may exceed 64 KiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Longest accepted `id` or `source`.
const MAX_ATTRIBUTE: usize = 256;

/// A validated event as submitted: the partner's id and source (its idempotency key),
/// when it happened, and the typed data. The type is implied by the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub source: String,
    /// When it happened (occurred_at), as the partner said.
    pub time: DateTime<Utc>,
    pub data: EventData,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The canonical CloudEvents JSON of this event (fixed member order, UTC time).
    pub fn to_json(&self) -> Value {
        json!({
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.event_type().as_str(),
            "time": self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "datacontenttype": "application/json",
            "data": self.data,
        })
    }

    /// SHA-256 of the canonical JSON: two submissions with the same (source, id) are the
    /// same submission exactly when their digests agree, whatever their whitespace.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(serde_json::to_vec(&self.to_json()).expect("json values serialize")).into()
    }

    /// Reads an event that was validated when it was recorded (no clock checks). Serde
    /// reads it; only if that fails does the validating walker run, to say what is wrong.
    pub fn from_stored(value: &Value) -> Result<Event, Vec<Problem>> {
        match StoredEnvelope::deserialize(value) {
            Ok(stored) => stored
                .into_event()
                .or_else(|_| parse_event(value, "", None)),
            Err(_) => parse_event(value, "", None),
        }
    }

    /// This event as a correction says it should have been: `value` put at `pointer`
    /// (`/time` or into `/data`, see [`crate::catalogue::correctable_pointer`]) and the
    /// result validated like a stored event (no clock check). An error says why the value
    /// does not fit.
    pub fn amended(&self, pointer: &str, value: &Value) -> Result<Event, String> {
        if !crate::catalogue::correctable_pointer(pointer) {
            return Err(format!("{pointer} cannot be corrected"));
        }
        let mut json = self.to_json();
        match json.pointer_mut(pointer) {
            Some(slot) => *slot = value.clone(),
            None => {
                // An optional member that was absent: its parent object takes it.
                let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
                let key = key.replace("~1", "/").replace("~0", "~");
                match json.pointer_mut(parent).and_then(Value::as_object_mut) {
                    Some(obj) => {
                        obj.insert(key, value.clone());
                    }
                    None => return Err(format!("{pointer} is not in a {}", self.event_type())),
                }
            }
        }
        parse_event(&json, "", None).map_err(|problems| {
            problems
                .iter()
                .map(|p| format!("{} {}", p.pointer, p.detail))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// The envelope of a stored event, read with serde (see [`Event::from_stored`]).
#[derive(Deserialize)]
pub(crate) struct StoredEnvelope {
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: EventType,
    time: DateTime<Utc>,
    data: Value,
}

impl StoredEnvelope {
    pub(crate) fn into_event(self) -> Result<Event, serde_json::Error> {
        let data = EventData::from_value(self.kind, self.data)?;
        Ok(Event {
            id: self.id,
            source: self.source,
            time: self.time,
            data,
        })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// What a submission body held: one event or a batch.
#[derive(Debug)]
pub enum Submission {
    One(Box<Event>),
    Batch(Vec<Event>),
}

/// Validates one CloudEvent at the top of a body.
pub fn validate_event(value: &Value, now: DateTime<Utc>) -> Result<Event, Vec<Problem>> {
    parse_event(value, "", Some(now))
}

/// Validates a body: an object is one event, an array a batch. The whole batch is
/// validated before anything is appended; every problem of every item is reported.
pub fn validate_body(body: &[u8], now: DateTime<Utc>) -> Result<Submission, Vec<Problem>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(vec![Problem {
            pointer: String::new(),
            detail: format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES} bytes (4 MiB)",
                body.len()
            ),
        }]);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![Problem {
            pointer: String::new(),
            detail: format!("body is not valid JSON: {e}"),
        }]
    })?;
    match &value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(vec![Problem {
                    pointer: String::new(),
                    detail: "a batch must hold at least one event".into(),
                }]);
            }
            let mut events = Vec::with_capacity(items.len());
            let mut problems = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let size = serde_json::to_vec(item).map_or(0, |b| b.len());
                if size > MAX_EVENT_BYTES {
                    problems.push(too_big(&format!("/{i}"), size));
                    continue;
                }
                match parse_event(item, &format!("/{i}"), Some(now)) {
                    Ok(e) => events.push(e),
                    Err(p) => problems.extend(p),
                }
            }
            for (i, e) in events.iter().enumerate() {
                if events[..i]
                    .iter()
                    .any(|o| o.id == e.id && o.source == e.source)
                {
                    problems.push(Problem {
                        pointer: format!("/{i}/id"),
                        detail: "the same (source, id) appears twice in this batch".into(),
                    });
                }
            }
            if problems.is_empty() {
                Ok(Submission::Batch(events))
            } else {
                Err(problems)
            }
        }
        _ if body.len() > MAX_EVENT_BYTES => Err(vec![too_big("", body.len())]),
        _ => parse_event(&value, "", Some(now)).map(|e| Submission::One(Box::new(e))),
    }
}

/// The problem for an event over [`MAX_EVENT_BYTES`].
fn too_big(pointer: &str, size: usize) -> Problem {
    Problem {
        pointer: pointer.to_string(),
        detail: format!("the event is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes (64 KiB)"),
    }
}

const ENVELOPE_MEMBERS: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "subject",
    "data",
];

fn parse_event(
    value: &Value,
    base: &str,
    now: Option<DateTime<Utc>>,
) -> Result<Event, Vec<Problem>> {
    let mut p = Problems::default();
    let Some(obj) = value.as_object() else {
        return Err(vec![Problem {
            pointer: base.to_string(),
            detail: "must be a CloudEvent object".into(),
        }]);
    };
    let root = Pointer::Text(base);
    let ptr = |name: &'static str| root.key(name);

    match obj.get("specversion").and_then(Value::as_str) {
        Some("1.0") => {}
        Some(_) => p.push(ptr("specversion"), "must be \"1.0\""),
        None => p.push(ptr("specversion"), "is required and must be \"1.0\""),
    }
    let attribute = |name: &'static str, p: &mut Problems| -> Option<String> {
        match obj.get(name) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ATTRIBUTE => Some(s.clone()),
            Some(Value::String(_)) => {
                p.push(
                    ptr(name),
                    format!("must be 1 to {MAX_ATTRIBUTE} characters"),
                );
                None
            }
            Some(_) => {
                p.push(ptr(name), "must be a string");
                None
            }
            None => {
                p.push(ptr(name), "is required");
                None
            }
        }
    };
    let id = attribute("id", &mut p);
    let source = attribute("source", &mut p);
    let kind = match obj.get("type") {
        Some(Value::String(s)) => {
            let k = EventType::parse(s);
            if k.is_none() {
                p.push(
                    ptr("type"),
                    format!("unknown event type {s:?}; see GET /v1/schema/events"),
                );
            }
            k
        }
        Some(_) => {
            p.push(ptr("type"), "must be a string");
            None
        }
        None => {
            p.push(ptr("type"), "is required");
            None
        }
    };
    let time = match obj.get("time") {
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if let Some(now) = now {
                    if t > now + MAX_FUTURE_SKEW {
                        p.push(ptr("time"), "is more than 5 minutes in the future");
                    }
                }
                Some(t)
            }
            Err(_) => {
                p.push(
                    ptr("time"),
                    "must be an RFC 3339 timestamp like 2026-11-20T09:30:00Z",
                );
                None
            }
        },
        Some(_) => {
            p.push(ptr("time"), "must be an RFC 3339 timestamp string");
            None
        }
        None => {
            p.push(ptr("time"), "is required: when the event happened");
            None
        }
    };
    match obj.get("datacontenttype") {
        None => {}
        Some(Value::String(s)) if s == "application/json" => {}
        Some(_) => p.push(
            ptr("datacontenttype"),
            "must be \"application/json\" when given",
        ),
    }
    unknown_members(obj, ENVELOPE_MEMBERS, &root, &mut p);
    let data = match (kind, obj.get("data")) {
        (_, None) => {
            p.push(ptr("data"), "is required");
            None
        }
        (None, Some(_)) => None,
        (Some(kind), Some(d)) => {
            let before = p.0.len();
            let data = EventData::from_json(kind, d, &ptr("data"), &mut p);
            if let Some(data) = &data {
                let mut cross = Problems::default();
                cross_field_checks(data, &mut cross);
                for mut problem in cross.0 {
                    problem.pointer = format!("{base}{}", problem.pointer);
                    p.0.push(problem);
                }
            }
            debug_assert!(data.is_some() || p.0.len() > before);
            data
        }
    };
    match (id, source, time, data) {
        (Some(id), Some(source), Some(time), Some(data)) if p.is_empty() => Ok(Event {
            id,
            source,
            time,
            data,
        }),
        _ => Err(p.0),
    }
}
