//! Reading one HMPPS message: a domain event as HMPPS publishes it, bare or wrapped in the
//! SNS notification SQS delivers, checked field by field with every problem reported at a
//! JSON pointer. Nothing here knows any person's state; see `map.rs` for what a message
//! becomes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use throughcare_events::{Nomis, PrisonCode, Problem};

/// `eventType` of a release (or any movement out) from a prison.
pub const RELEASED: &str = "prison-offender-events.prisoner.released";
/// `eventType` of a reception (or any movement in) at a prison.
pub const RECEIVED: &str = "prison-offender-events.prisoner.received";
/// `eventType` of two prison records merged into one.
pub const MERGED: &str = "prison-offender-events.prisoner.merged";

/// NOMIS movement reason codes of a recall to custody (DESIGN.md "HMPPS domain events in").
pub const RECALL_CODES: &[&str] = &["24", "B", "L", "Y", "PD", "ELR", "ETRLR"];

/// Longest SNS `MessageId` taken as an event id (the CloudEvent `id` limit is 256).
const MAX_MESSAGE_ID: usize = 256;

/// One message, read and checked: what happened, to whom, and its idempotency id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The CloudEvent `id`: the SNS `MessageId` when there is one, else the hex SHA-256
    /// of the RFC 8785 (JCS) form of the domain event, so a redelivery gets the same id.
    pub id: String,
    pub event_type: String,
    /// `occurredAt`, in UTC (present for every movement this adapter understands).
    pub occurred_at: Option<DateTime<Utc>>,
    /// The prisoner: `additionalInformation.nomsNumber`, else the `NOMS` identifier of
    /// `personReference` (present for every movement this adapter understands).
    pub nomis: Option<Nomis>,
    pub movement: Movement,
}

/// What the domain event says happened, by `eventType` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Movement {
    /// `prisoner.released`.
    Released(Release),
    /// `prisoner.received`.
    Received(Reception),
    /// `prisoner.merged`: `removed` is a former NOMIS number of the prisoner.
    Merged { removed: Nomis },
    /// Any other `eventType`.
    Other,
}

/// The `reason` of `prisoner.released`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// RELEASED: to the community, from `prison`.
    Released {
        prison: PrisonCode,
    },
    /// RELEASED_TO_HOSPITAL: to a secure hospital, from `prison`.
    ToHospital {
        prison: PrisonCode,
    },
    Transferred,
    SentToCourt,
    TemporaryAbsence,
    Unknown,
    /// A reason this adapter does not know.
    Other,
}

/// The `reason` of `prisoner.received`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reception {
    /// ADMISSION at `prison`; `recall` when `nomisMovementReasonCode` is a recall code.
    Admission {
        prison: PrisonCode,
        recall: bool,
    },
    /// TRANSFERRED in to `prison`.
    Transferred {
        prison: PrisonCode,
    },
    ReturnFromCourt,
    TemporaryAbsenceReturn,
    /// A reason this adapter does not know.
    Other,
}

impl Notification {
    /// The NOMIS number a merge says is no longer used.
    pub fn removed_nomis(&self) -> Option<&Nomis> {
        match &self.movement {
            Movement::Merged { removed } => Some(removed),
            _ => None,
        }
    }
}

/// Reads one message body: a bare domain event, or an SNS notification whose `Message`
/// is the domain event as a JSON string. Pointers into the embedded domain event start
/// with `/Message` (e.g. `/Message/additionalInformation/prisonId`).
pub fn parse(body: &[u8]) -> Result<Notification, Vec<Problem>> {
    let mut problems = Problems::default();
    let outer: Value = serde_json::from_slice(body).map_err(|e| {
        vec![Problem {
            pointer: String::new(),
            detail: format!("body is not valid JSON: {e}"),
        }]
    })?;
    let Some(object) = outer.as_object() else {
        return Err(vec![problem(
            "",
            "must be a JSON object: an HMPPS domain event or an SNS notification",
        )]);
    };
    let (event, base, message_id, attribute_type) = if object.contains_key("Type") {
        let envelope = read_envelope(object, &mut problems);
        match envelope {
            Some(e) => (e.event, "/Message", e.message_id, e.event_type),
            None => return Err(problems.0),
        }
    } else {
        (outer.clone(), "", None, None)
    };
    let Some(fields) = event.as_object() else {
        return Err(vec![problem(
            base,
            "the domain event must be a JSON object",
        )]);
    };
    let at = |p: &str| format!("{base}{p}");
    let event_type = match fields.get("eventType") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            problems.push(at("/eventType"), "is required: a non-empty string");
            return Err(problems.0);
        }
    };
    if let Some(attr) = attribute_type {
        if attr != event_type {
            problems.push(
                "/MessageAttributes/eventType/Value",
                format!("says {attr:?} but the message's eventType is {event_type:?}"),
            );
        }
    }
    let id = match message_id {
        Some(id) => id,
        None => jcs_sha256(&event),
    };
    let understood = [RELEASED, RECEIVED, MERGED].contains(&event_type.as_str());
    if !understood {
        return problems.finish(Notification {
            id,
            event_type,
            occurred_at: None,
            nomis: None,
            movement: Movement::Other,
        });
    }
    let occurred_at = match fields.get("occurredAt") {
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                problems.push(
                    at("/occurredAt"),
                    "must be an RFC 3339 date-time with an offset, e.g. 2026-11-20T09:30:00+00:00",
                );
                None
            }
        },
        _ => {
            problems.push(at("/occurredAt"), "is required: an RFC 3339 date-time");
            None
        }
    };
    let empty = Map::new();
    let info = match fields.get("additionalInformation") {
        Some(Value::Object(o)) => o,
        _ => {
            problems.push(at("/additionalInformation"), "is required: an object");
            &empty
        }
    };
    let nomis = read_nomis(fields, info, base, &mut problems);
    let text = |name: &str| info.get(name).and_then(Value::as_str);
    let reason = || match info.get("reason") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let prison = |problems: &mut Problems| {
        let pointer = at("/additionalInformation/prisonId");
        match info.get("prisonId") {
            Some(Value::String(s)) => match PrisonCode::parse(s) {
                Ok(p) => Some(p),
                Err(e) => {
                    problems.push(pointer, e);
                    None
                }
            },
            _ => {
                problems.push(pointer, "is required for this reason: a prison code");
                None
            }
        }
    };
    let movement = match event_type.as_str() {
        MERGED => {
            let pointer = at("/additionalInformation/removedNomsNumber");
            match text("removedNomsNumber").map(Nomis::parse) {
                Some(Ok(removed)) if Some(&removed) == nomis.as_ref() => {
                    problems.push(pointer, "must differ from nomsNumber");
                    None
                }
                Some(Ok(removed)) => Some(Movement::Merged { removed }),
                Some(Err(e)) => {
                    problems.push(pointer, e);
                    None
                }
                None => {
                    problems.push(pointer, "is required: the NOMIS number merged away");
                    None
                }
            }
        }
        _ if reason().is_none() => {
            problems.push(
                at("/additionalInformation/reason"),
                "is required: a string (e.g. RELEASED, ADMISSION)",
            );
            None
        }
        RELEASED => {
            let release = match reason().unwrap_or_default() {
                "RELEASED" => prison(&mut problems).map(|prison| Release::Released { prison }),
                "RELEASED_TO_HOSPITAL" => {
                    prison(&mut problems).map(|prison| Release::ToHospital { prison })
                }
                "TRANSFERRED" => Some(Release::Transferred),
                "SENT_TO_COURT" => Some(Release::SentToCourt),
                "TEMPORARY_ABSENCE_RELEASE" => Some(Release::TemporaryAbsence),
                "UNKNOWN" => Some(Release::Unknown),
                _ => Some(Release::Other),
            };
            release.map(Movement::Released)
        }
        _ => {
            let reception = match reason().unwrap_or_default() {
                "ADMISSION" => {
                    let code = match info.get("nomisMovementReasonCode") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(s)) => Some(s.as_str()),
                        Some(_) => {
                            problems.push(
                                at("/additionalInformation/nomisMovementReasonCode"),
                                "must be a string",
                            );
                            None
                        }
                    };
                    let recall = code.is_some_and(|c| RECALL_CODES.contains(&c));
                    prison(&mut problems).map(|prison| Reception::Admission { prison, recall })
                }
                "TRANSFERRED" => {
                    prison(&mut problems).map(|prison| Reception::Transferred { prison })
                }
                "RETURN_FROM_COURT" => Some(Reception::ReturnFromCourt),
                "TEMPORARY_ABSENCE_RETURN" => Some(Reception::TemporaryAbsenceReturn),
                _ => Some(Reception::Other),
            };
            reception.map(Movement::Received)
        }
    };
    match (movement, problems.0.is_empty()) {
        (Some(movement), true) => Ok(Notification {
            id,
            event_type,
            occurred_at,
            nomis,
            movement,
        }),
        _ => Err(problems.0),
    }
}

/// The parts of an SNS notification the adapter uses.
struct Envelope {
    event: Value,
    message_id: Option<String>,
    event_type: Option<String>,
}

fn read_envelope(o: &Map<String, Value>, problems: &mut Problems) -> Option<Envelope> {
    if o.get("Type").and_then(Value::as_str) != Some("Notification") {
        problems.push("/Type", "an SNS message must have Type \"Notification\"");
    }
    let message_id = match o.get("MessageId") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_MESSAGE_ID => Some(s.clone()),
        Some(_) => {
            problems.push(
                "/MessageId",
                format!("must be a non-empty string of at most {MAX_MESSAGE_ID} characters"),
            );
            None
        }
    };
    let event_type = match o.get("MessageAttributes").map(|a| &a["eventType"]) {
        None | Some(Value::Null) => None,
        Some(attr) => match attr.get("Value") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => {
                problems.push(
                    "/MessageAttributes/eventType/Value",
                    "must be a string (the eventType of the message)",
                );
                None
            }
        },
    };
    let event = match o.get("Message") {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => Some(v),
            Err(e) => {
                problems.push(
                    "/Message",
                    format!("must be the domain event as a JSON string; it is not JSON: {e}"),
                );
                None
            }
        },
        _ => {
            problems.push("/Message", "is required: the domain event as a JSON string");
            None
        }
    };
    match event {
        Some(event) if problems.0.is_empty() => Some(Envelope {
            event,
            message_id,
            event_type,
        }),
        _ => None,
    }
}

/// The prisoner's NOMIS number, from `additionalInformation.nomsNumber` or the `NOMS`
/// identifier of `personReference` (which must agree when both are given).
fn read_nomis(
    fields: &Map<String, Value>,
    info: &Map<String, Value>,
    base: &str,
    problems: &mut Problems,
) -> Option<Nomis> {
    let before = problems.0.len();
    let from_info = info
        .get("nomsNumber")
        .map(|v| (format!("{base}/additionalInformation/nomsNumber"), v));
    let from_reference = fields.get("personReference").unwrap_or(&Value::Null)["identifiers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, i)| i["type"] == "NOMS")
        .map(|(k, i)| {
            (
                format!("{base}/personReference/identifiers/{k}/value"),
                &i["value"],
            )
        });
    let mut read = |(pointer, v): (String, &Value)| match v.as_str().map(Nomis::parse) {
        Some(Ok(n)) => Some((pointer, n)),
        Some(Err(e)) => {
            problems.push(pointer, e);
            None
        }
        None => {
            problems.push(pointer, "must be a NOMIS number, e.g. A1234BC");
            None
        }
    };
    let a = from_info.and_then(&mut read);
    let b = from_reference.and_then(&mut read);
    match (a, b) {
        (Some((_, a)), Some((pointer, b))) if a != b => {
            problems.push(
                pointer,
                format!("names {b} but additionalInformation.nomsNumber is {a}"),
            );
            None
        }
        (Some((_, n)), _) | (None, Some((_, n))) => Some(n),
        (None, None) => {
            if problems.0.len() == before {
                problems.push(
                    format!("{base}/additionalInformation/nomsNumber"),
                    "is required (or a NOMS identifier in personReference.identifiers)",
                );
            }
            None
        }
    }
}

/// Hex SHA-256 of the RFC 8785 canonical form of `value`.
pub fn jcs_sha256(value: &Value) -> String {
    // A `Value` holds only finite numbers and string keys, so canonicalising cannot fail.
    let bytes = serde_json_canonicalizer::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

fn problem(pointer: &str, detail: &str) -> Problem {
    Problem {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Problem {
            pointer: pointer.into(),
            detail: detail.into(),
        });
    }

    fn finish(self, n: Notification) -> Result<Notification, Vec<Problem>> {
        if self.0.is_empty() {
            Ok(n)
        } else {
            Err(self.0)
        }
    }
}
