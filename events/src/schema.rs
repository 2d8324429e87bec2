//! The JSON Schema of the catalogue, generated from the Rust types. A checked-in copy
//! lives at `events/schema/events.schema.json`; a test fails when it is stale.

use schemars::gen::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::catalogue::EventData;

/// The whole catalogue as one JSON Schema (draft 2020-12 vocabulary subset): a CloudEvent
/// whose `data` schema is chosen by its `type`.
pub fn catalogue_schema() -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.definitions_path = "#/$defs/".into();
    let mut gen = settings.into_generator();
    let per_type = EventData::schemas(&mut gen);
    let defs: Map<String, Value> = gen
        .take_definitions()
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(v).expect("schema serializes")))
        .collect();
    let types: Vec<Value> = per_type.iter().map(|(t, _)| json!(t.as_str())).collect();
    let branches: Vec<Value> = per_type
        .into_iter()
        .map(|(t, s)| {
            json!({
                "if": { "properties": { "type": { "const": t.as_str() } } },
                "then": { "properties": { "data": serde_json::to_value(s).expect("schema serializes") } }
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:throughcare:schema:events",
        "title": "throughcare event (CloudEvents 1.0, structured JSON mode)",
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": { "const": "1.0" },
            "id": { "type": "string", "minLength": 1, "maxLength": 256 },
            "source": { "type": "string", "minLength": 1, "maxLength": 256 },
            "type": { "enum": types },
            "time": { "type": "string", "format": "date-time",
                      "description": "when it happened; at most 5 minutes in the future" },
            "datacontenttype": { "const": "application/json" },
            "data": { "type": "object" }
        },
        "additionalProperties": false,
        "allOf": branches,
        "$defs": defs,
    })
}

/// The schema as the pretty JSON text that is checked in.
pub fn catalogue_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&catalogue_schema()).expect("schema serializes");
    s.push('\n');
    s
}
