//! The OpenAPI 3.1 document of the HTTP API, generated from the route table
//! (`crate::routes`, which serves it), so it cannot drift from the router: every route, who may call it,
//! what a call is logged as, its parameters, bodies and statuses. Served at
//! `GET /v1/openapi.json`; schemathesis checks the running server against it.
//!
//! What the table does not hold lives here in small tables keyed by path: the query
//! parameters of each route and the request bodies.

use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::access::rules::{Allow, Kind, Route};

/// The whole document of `routes`.
pub fn document(routes: &[Route]) -> Value {
    let mut paths = Map::new();
    for route in routes {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        item.insert(route.method.as_str().to_ascii_lowercase(), operation(route));
    }
    let mut schemas = catalogue_schemas();
    for (name, schema) in own_schemas() {
        let clash = schemas.insert(name.to_string(), schema);
        assert!(clash.is_none(), "schema {name} is also in the catalogue");
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "throughcare",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Event-sourced continuity-of-care ledger for people leaving prison",
            "description": "Every error is RFC 9457 application/problem+json. `x-roles` names \
                the roles that may call an operation (`open`: anyone; `metrics-token`: the \
                Prometheus scrape token); `x-access-log` what a call is recorded as in the \
                access log. Without `--auth` the server runs in open development mode and \
                every operation is open.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of the auth file, or a JWT of the configured identity provider",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": crate::auth::session::COOKIE,
                    "description": "The session cookie POST /sign-in sets (web pages)",
                },
            },
        },
    })
}

/// The answer of `GET /v1/openapi.json`: the rendered document.
pub fn json(text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `get_v1_people_id_journey` for `GET /v1/people/{id}/journey`; `get_root` for `GET /`.
fn operation_id(route: &Route) -> String {
    let words: Vec<String> = route
        .path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let method = route.method.as_str().to_ascii_lowercase();
    if words.is_empty() {
        format!("{method}_root")
    } else {
        format!("{method}_{}", words.join("_"))
    }
}

fn operation(route: &Route) -> Value {
    let roles: Vec<&str> = match route.allow {
        Allow::Open => vec!["open"],
        Allow::Metrics => vec!["metrics-token"],
        Allow::Roles(roles) => roles.iter().map(|r| r.as_str()).collect(),
    };
    let mut op = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [match route.kind { Kind::Api => "api", Kind::Page => "pages" }],
        "x-roles": roles,
        "parameters": parameters(route),
        "responses": responses(route),
    });
    if let Some(what) = route.what {
        op["x-access-log"] = json!(what.as_str());
    }
    op["security"] = match (route.allow, route.kind) {
        (Allow::Open, _) => json!([]),
        (_, Kind::Page) => json!([{ "bearer": [] }, { "session": [] }]),
        _ => json!([{ "bearer": [] }]),
    };
    if let Some(body) = request_body(route) {
        op["requestBody"] = body;
    }
    op
}

fn parameters(route: &Route) -> Vec<Value> {
    let mut out: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "id" => json!({ "$ref": "#/components/schemas/PersonId" }),
                _ => json!({ "type": "string", "minLength": 1 }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    out.extend(
        query_parameters(route)
            .into_iter()
            .map(|(name, required, description, schema)| {
                json!({ "name": name, "in": "query", "required": required,
                        "description": description, "schema": schema })
            }),
    );
    // Every read the access log records carries a purpose (DESIGN.md "Access").
    if route.what.is_some() {
        out.push(json!({
            "name": "Throughcare-Purpose", "in": "header", "required": false,
            "description": "The purpose of the read, when not given as ?purpose=",
            "schema": { "$ref": "#/components/schemas/Purpose" },
        }));
    }
    out
}

/// (name, required, description, schema) of one query parameter.
type QueryParam = (&'static str, bool, &'static str, Value);

/// The query parameters of a route: the table the route table does not hold.
fn query_parameters(route: &Route) -> Vec<QueryParam> {
    let date = || json!({ "type": "string", "format": "date" });
    let instant = || {
        json!({ "type": "string",
                "anyOf": [{ "format": "date-time" }, { "format": "date" }] })
    };
    let prison = || json!({ "$ref": "#/components/schemas/PrisonCode" });
    let access_filter = || -> Vec<QueryParam> {
        vec![
            (
                "who",
                false,
                "Entries by this principal",
                json!({ "type": "string" }),
            ),
            (
                "from",
                false,
                "Entries at or after (a date: its start)",
                instant(),
            ),
            (
                "to",
                false,
                "Entries at or before (a date: its end)",
                instant(),
            ),
            (
                "review",
                false,
                "Only break-glass entries (true) or only others (false)",
                json!({ "type": "boolean" }),
            ),
            (
                "after",
                false,
                "Entries after this seq (paging: the previous next_after)",
                json!({ "type": "integer", "minimum": 0 }),
            ),
            (
                "limit",
                false,
                "Most entries in one answer",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
            ),
        ]
    };
    let mut params: Vec<QueryParam> = match (route.method.clone(), route.path) {
        (Method::GET, "/v1/people") => vec![(
            "identifier",
            true,
            "nomis:A1234BC, nhs:9434765919, crn:X123456 or person:<ULID>",
            json!({ "type": "string", "pattern": "^(nomis|nhs|crn|person):.+$",
                    "examples": ["nomis:A1234BC", "nhs:9434765919", "crn:X123456"] }),
        )],
        (Method::GET, "/v1/people/{id}/journey" | "/v1/people/{id}/fhir") => vec![(
            "min_position",
            false,
            "Answer at least this fresh (an append's position), or 503 with Retry-After",
            json!({ "type": "integer", "minimum": 0 }),
        )],
        (Method::GET, "/v1/releases" | "/v1/kpis") => vec![
            ("from", false, "First day of the range", date()),
            (
                "to",
                false,
                "Last day of the range (at most three years after from)",
                date(),
            ),
            ("prison", false, "Only this prison", prison()),
        ],
        (Method::GET, "/v1/access") => {
            let mut p = vec![(
                "person",
                false,
                "Entries about this person",
                json!({ "$ref": "#/components/schemas/PersonId" }),
            )];
            p.extend(access_filter());
            p
        }
        (Method::GET, "/v1/people/{id}/access") => access_filter(),
        // The ledger routes (ledger_api.rs).
        (Method::GET, "/v1/ledger/checkpoint") => vec![(
            "size",
            false,
            "The kept checkpoint of this tree size (default: the latest)",
            json!({ "type": "integer", "minimum": 0 }),
        )],
        (Method::GET, "/v1/ledger/entries") => vec![
            (
                "from",
                false,
                "First position (default 1)",
                json!({ "type": "integer", "minimum": 1 }),
            ),
            (
                "limit",
                false,
                "Most entries in one answer",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
            ),
        ],
        (Method::GET, "/v1/ledger/proof/inclusion") => vec![
            (
                "position",
                true,
                "The log position (leaf index + 1)",
                json!({ "type": "integer", "minimum": 1 }),
            ),
            (
                "size",
                false,
                "The tree size (default: the latest checkpoint's)",
                json!({ "type": "integer", "minimum": 1 }),
            ),
        ],
        (Method::GET, "/v1/ledger/proof/consistency") => vec![
            (
                "from",
                true,
                "The earlier tree size",
                json!({ "type": "integer", "minimum": 0 }),
            ),
            (
                "to",
                false,
                "The later tree size (default: the latest checkpoint's)",
                json!({ "type": "integer", "minimum": 0 }),
            ),
        ],
        (Method::GET, "/v1/people/{id}/export") => vec![(
            "format",
            false,
            "json (default) or html: a printable page of the same bundle",
            json!({ "type": "string", "enum": ["json", "html"] }),
        )],
        // The HMPPS SAR convention (sar.rs).
        (Method::GET, "/subject-access-request") => vec![
            (
                "prn",
                false,
                "NOMIS prison reference number (at least one of prn and crn; both may be sent)",
                json!({ "type": "string" }),
            ),
            (
                "crn",
                false,
                "nDelius case reference number",
                json!({ "type": "string" }),
            ),
            (
                "fromDate",
                false,
                "Only events that occurred on or after this day",
                date(),
            ),
            (
                "toDate",
                false,
                "Only events that occurred on or before this day",
                date(),
            ),
        ],
        (Method::GET, "/") => vec![
            (
                "identifier",
                false,
                "Find a person (as for /v1/people)",
                json!({ "type": "string" }),
            ),
            ("prison", false, "Release calendar of this prison", prison()),
        ],
        _ => Vec::new(),
    };
    // What the ledger knew then (DESIGN.md "Audit" -> "As of"; as_of.rs).
    if route.method == Method::GET
        && matches!(
            route.path,
            "/v1/people/{id}/journey" | "/v1/caseload/{worker_id}" | "/v1/releases" | "/v1/kpis"
        )
    {
        params.push((
            "as_of",
            false,
            "Answer as the ledger knew it then: events recorded at or before this time, time-based rules read at it; a time not in the past answers as now; not with at_position",
            json!({ "type": "string", "format": "date-time" }),
        ));
        params.push((
            "at_position",
            false,
            "Answer as of this position of the log (1 to the head), read at its recorded_at; not with as_of",
            json!({ "type": "integer", "minimum": 1 }),
        ));
    }
    if route.method == Method::GET && route.path == "/people/{id}" {
        params.push((
            "as_of",
            false,
            "The journey as the ledger knew it by the end of this day (UTC), or at an RFC 3339 time",
            json!({ "type": "string" }),
        ));
    }
    if route.what.is_some() && !route.purposes.is_empty() {
        params.push((
            "purpose",
            false,
            "Why the record is read: only these purposes; defaults to the first",
            json!({ "type": "string",
                    "enum": route.purposes.iter().map(|p| p.as_str()).collect::<Vec<_>>() }),
        ));
    } else if route.what.is_some() {
        params.push((
            "purpose",
            false,
            "Why the record is read; defaults to DIRECT_CARE (WORKER, MANAGER) or AUDIT (AUDITOR)",
            json!({ "$ref": "#/components/schemas/Purpose" }),
        ));
        params.push((
            "reason",
            false,
            "Why, in words: required with purpose=EMERGENCY (break glass)",
            json!({ "type": "string", "maxLength": 500 }),
        ));
    }
    params
}

fn request_body(route: &Route) -> Option<Value> {
    match (route.method.clone(), route.path) {
        (Method::POST, "/v1/events") => Some(json!({
            "required": true,
            "description": "One CloudEvent, or a batch of at most 1,000 recorded all or nothing (DESIGN.md \"Events\"); each event at most 64 KiB, the body at most 4 MiB",
            "content": {
                "application/cloudevents+json": {
                    "schema": { "$ref": "#/components/schemas/CloudEvent" } },
                "application/cloudevents-batch+json": {
                    "schema": { "$ref": "#/components/schemas/CloudEventBatch" } },
            },
        })),
        (Method::POST, "/sign-in") => Some(json!({
            "required": true,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["token"],
                        "properties": { "token": {
                            "type": "string",
                            "description": "A bearer token of the auth file, or a JWT",
                        } },
                    },
                },
            },
        })),
        _ => None,
    }
}

fn responses(route: &Route) -> Value {
    let mut out = Map::new();
    for status in route.answers() {
        out.insert(status.to_string(), response(route, status));
    }
    Value::Object(out)
}

fn response(route: &Route, status: u16) -> Value {
    let description = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response");
    if status >= 400 {
        let mut r = json!({
            "description": description,
            "content": { "application/problem+json": {
                "schema": { "$ref": "#/components/schemas/Problem" } } },
        });
        // A page may answer a person with HTML instead (the sign-in form, saying why).
        if route.kind == Kind::Page {
            r["content"]["text/html"] = json!({ "schema": { "type": "string" } });
        }
        let header = match status {
            401 => Some((
                "WWW-Authenticate",
                "The scheme to authenticate with (Bearer)",
            )),
            503 => Some(("Retry-After", "Seconds to wait before trying again")),
            _ => None,
        };
        if let Some((name, what)) = header {
            r["headers"] = json!({ name: {
                "description": what, "required": true, "schema": { "type": "string" } } });
        }
        return r;
    }
    // The HMPPS SAR convention's answers without a body.
    if matches!(status, 204 | 209) {
        return json!({ "description": match status {
            204 => "Nothing is held about the person in the date range",
            _ => "The subject identifier is not recognised by this service",
        } });
    }
    if (300..400).contains(&status) {
        return json!({
            "description": description,
            "headers": { "Location": {
                "description": "Where the browser goes next", "required": true,
                "schema": { "type": "string" } } },
        });
    }
    let (media, schema) = match (route.kind, route.path) {
        (Kind::Page, _) => ("text/html", json!({ "type": "string" })),
        (Kind::Api, "/v1/people/{id}/fhir") => {
            ("application/fhir+json", json!({ "type": "object" }))
        }
        (Kind::Api, "/metrics" | "/v1/ledger/checkpoint" | "/v1/ledger/key") => {
            ("text/plain", json!({ "type": "string" }))
        }
        (Kind::Api, crate::headers::STYLESHEET) => ("text/css", json!({ "type": "string" })),
        (Kind::Api, "/v1/schema/events") => {
            ("application/schema+json", json!({ "type": "object" }))
        }
        (Kind::Api, _) => ("application/json", json!({ "type": "object" })),
    };
    let mut r = json!({
        "description": description,
        "content": { media: { "schema": schema } },
    });
    // These also answer RFC 4180 CSV, by Accept or a `.csv` suffix (csv.rs).
    if status == 200 && crate::csv::ROUTES.contains(&route.path) {
        r["content"]["text/csv"] = json!({ "schema": { "type": "string" } });
    }
    // The export's printable page (`?format=html`).
    if status == 200 && route.path == "/v1/people/{id}/export" {
        r["content"]["text/html"] = json!({ "schema": { "type": "string" } });
    }
    r
}

/// The schemas this module adds to the catalogue's.
fn own_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Problem",
            json!({
                "type": "object",
                "description": "RFC 9457 problem details; extension members vary by type",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": { "type": "string" },
                    "title": { "type": "string" },
                    "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                    "detail": { "type": "string" },
                },
                "additionalProperties": true,
            }),
        ),
        (
            "Purpose",
            json!({
                "type": "string",
                "enum": ["DIRECT_CARE", "SERVICE_MANAGEMENT", "AUDIT", "SUBJECT_ACCESS", "EMERGENCY"],
            }),
        ),
        (
            "CloudEventBatch",
            json!({
                "type": "array",
                "minItems": 1,
                "items": { "$ref": "#/components/schemas/CloudEvent" },
            }),
        ),
    ]
}

/// The event catalogue's JSON Schema as `CloudEvent`, its `$defs` beside it under
/// components/schemas (refs rewritten to point there).
///
/// The catalogue picks the `data` schema by `type` with `allOf` of `if`/`then` branches;
/// here each branch becomes one whole event schema (`type` a `const`, its own `data`)
/// under `oneOf`. The two say the same (the types are distinct constants), and test
/// generators such as schemathesis can build events from the second, not the first.
fn catalogue_schemas() -> Map<String, Value> {
    let mut event = throughcare_events::catalogue_schema();
    let root = event
        .as_object_mut()
        .expect("the catalogue schema is an object");
    // `$id` would make every `$ref` inside resolve against the catalogue's own URI.
    root.remove("$id");
    root.remove("$schema");
    let defs = match root.remove("$defs") {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    let mut out = Map::new();
    out.insert("CloudEvent".into(), one_of_per_type(event));
    out.extend(defs);
    for schema in out.values_mut() {
        rewrite_refs(schema);
    }
    out
}

/// `{..., properties: {type: {enum}, data: {}}, allOf: [{if: type T, then: data D}]}`
/// becomes `{oneOf: [{..., properties: {type: {const: T}, data: D}}]}`. A schema of
/// another shape is returned as it is.
fn one_of_per_type(mut event: Value) -> Value {
    let Some(Value::Array(branches)) = event.as_object_mut().and_then(|o| o.remove("allOf")) else {
        return event;
    };
    let mut variants = Vec::new();
    for branch in &branches {
        let event_type = &branch["if"]["properties"]["type"]["const"];
        let data = &branch["then"]["properties"]["data"];
        if !event_type.is_string() || data.is_null() {
            event["allOf"] = Value::Array(branches);
            return event;
        }
        let mut variant = event.clone();
        variant["title"] = event_type.clone();
        variant["properties"]["type"] = json!({ "const": event_type });
        variant["properties"]["data"] = data.clone();
        variants.push(variant);
    }
    json!({
        "title": event["title"],
        "description": "One CloudEvent 1.0 (structured JSON mode) of the catalogue: the schema of `data` follows from `type`",
        "oneOf": variants,
    })
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/$defs/") {
                            *r = format!("#/components/schemas/{name}");
                        }
                    }
                    (_, v) => rewrite_refs(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::routes::routes;

    fn document() -> Value {
        super::document(&routes())
    }

    fn all_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => all_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| all_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_of_the_table_is_in_the_document() {
        let doc = document();
        for route in routes() {
            let method = route.method.as_str().to_ascii_lowercase();
            let op = &doc["paths"][route.path][&method];
            assert!(
                op.is_object(),
                "{} is missing from the document",
                route.name()
            );
            assert_eq!(op["summary"], route.summary, "{}", route.name());
            let documented: BTreeSet<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let table = route.answers();
            assert!(route.statuses.iter().all(|s| table.contains(s)));
            assert_eq!(documented, table, "{} statuses", route.name());
            assert!(op["x-roles"].as_array().is_some_and(|r| !r.is_empty()));
            assert_eq!(
                op["x-access-log"].as_str(),
                route.what.map(|w| w.as_str()),
                "{}",
                route.name()
            );
        }
        let operations: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, routes().len(), "operations that are not routes");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_ref_resolves() {
        let text = serde_json::to_string(&document()).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        assert!(refs.len() > 20, "expected refs, found {refs:?}");
        for r in refs {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{r} is not a local ref"));
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        assert!(!text.contains("$defs"), "a catalogue ref was not rewritten");
    }

    #[test]
    fn operation_ids_are_unique_and_readable() {
        let ids: Vec<String> = routes().iter().map(operation_id).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for want in [
            "get_v1_people_id_journey",
            "get_root",
            "post_sign_in",
            "get_v1_openapi_json",
        ] {
            assert!(ids.iter().any(|i| i == want), "{want} missing from {ids:?}");
        }
    }

    #[test]
    fn access_rules_and_parameters_are_documented() {
        let doc = document();
        let op = |method: &str, path: &str| doc["paths"][path][method].clone();
        let journey = op("get", "/v1/people/{id}/journey");
        assert_eq!(journey["x-roles"], json!(["WORKER", "MANAGER", "AUDITOR"]));
        assert_eq!(journey["x-access-log"], "READ_JOURNEY");
        assert_eq!(journey["security"], json!([{ "bearer": [] }]));
        let names: Vec<&str> = journey["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for want in [
            "id",
            "min_position",
            "as_of",
            "at_position",
            "purpose",
            "reason",
            "Throughcare-Purpose",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert_eq!(op("get", "/healthz")["x-roles"], json!(["open"]));
        assert_eq!(op("get", "/healthz")["security"], json!([]));
        assert_eq!(op("get", "/metrics")["x-roles"], json!(["metrics-token"]));
        let unauthorized = &op("get", "/v1/kpis")["responses"]["401"];
        assert!(unauthorized["headers"]["WWW-Authenticate"].is_object());
        assert!(unauthorized["content"]["application/problem+json"].is_object());
        let events = op("post", "/v1/events");
        let content = &events["requestBody"]["content"];
        assert!(content["application/cloudevents+json"].is_object());
        assert!(content["application/cloudevents-batch+json"].is_object());
        assert!(op("post", "/sign-in")["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]
            .is_object());
        assert!(op("get", "/")["responses"]["200"]["content"]["text/html"].is_object());
        let catalogue = &doc["components"]["schemas"]["CloudEvent"];
        let variants = catalogue["oneOf"]
            .as_array()
            .expect("one schema per event type");
        assert_eq!(variants.len(), throughcare_events::EventType::ALL.len());
        for v in variants {
            assert_eq!(v["required"][0], "specversion");
            assert!(v["properties"]["type"]["const"].is_string(), "{v}");
            assert!(v["properties"]["data"].get("$ref").is_some(), "{v}");
            assert!(v.get("allOf").is_none());
        }
        assert!(catalogue.get("$id").is_none());
    }

    #[test]
    fn export_and_sar_are_documented() {
        let doc = document();
        let export = &doc["paths"]["/v1/people/{id}/export"]["get"];
        assert_eq!(export["x-roles"], json!(["AUDITOR"]));
        assert_eq!(export["x-access-log"], "EXPORT");
        let ok = &export["responses"]["200"]["content"];
        assert!(ok["application/json"].is_object() && ok["text/html"].is_object());
        let params = export["parameters"].as_array().unwrap();
        let purpose = params.iter().find(|p| p["name"] == "purpose").unwrap();
        assert_eq!(
            purpose["schema"]["enum"],
            json!(["AUDIT", "SUBJECT_ACCESS"])
        );
        assert!(params.iter().any(|p| p["name"] == "format"));
        let sar = &doc["paths"]["/subject-access-request"]["get"];
        assert_eq!(sar["x-roles"], json!(["AUDITOR"]));
        for status in ["204", "209"] {
            let r = &sar["responses"][status];
            assert!(r["description"].is_string(), "{status}");
            assert!(r.get("content").is_none(), "{status} has no body");
        }
        let names: Vec<&str> = sar["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for want in ["prn", "crn", "fromDate", "toDate", "purpose"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }

    #[tokio::test]
    async fn serve_answers_the_document_as_json() {
        use http_body_util::BodyExt;
        let text: &'static str = Box::leak(document().to_string().into_boxed_str());
        let res = json(text);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let served: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(served, document());
    }
}
