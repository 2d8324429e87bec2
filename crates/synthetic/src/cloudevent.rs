//! The CloudEvents envelope of a submission and the `person` reference inside its data:
//! the JSON every test, bench and the demo post to `/v1/events` or hand to
//! `validate_event`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::ids::{nhs_number, nomis};

/// A `source` for events whose test does not care which partner sent them.
pub const SOURCE: &str = "urn:throughcare:test:synthetic";

/// A CloudEvent of catalogue type `kind` (e.g. `referral.received`, which becomes
/// `throughcare.referral.received.v1`) with `data` as given; `time` is RFC 3339.
pub fn cloudevent(source: &str, id: &str, kind: &str, time: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": format!("throughcare.{kind}.v1"),
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// `at` as the envelope writes times: RFC 3339 in UTC, whole seconds, `Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The `person` reference of synthetic person `seed`: NOMIS and NHS number.
pub fn person(seed: u64) -> Value {
    json!({ "nomis": nomis(seed), "nhs_number": nhs_number(seed) })
}

/// `data` naming `person` (any reference: `person(seed)`, `{"nomis": ..}`, `{"person_id": ..}`).
pub fn with_person(mut data: Value, person: Value) -> Value {
    data["person"] = person;
    data
}
