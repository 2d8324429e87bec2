//! CSV for the people who live in spreadsheets: `/v1/kpis`, `/v1/releases` and
//! `/v1/caseload/{worker_id}` as RFC 4180 CSV, asked for with `Accept: text/csv` or a
//! `.csv` suffix on the path (DESIGN.md "Interoperability" -> "CSV").
//!
//! A conversion layer, not a second set of handlers. [`negotiate`] wraps the whole router
//! (see `crate::app`), so it runs before routing:
//!
//! 1. it rewrites `/v1/kpis.csv` to `/v1/kpis` (and so on), so routing, the access guard
//!    (its `MatchedPath`, scope checks and access log) and the handler all see the
//!    canonical route;
//! 2. when the handler answers 200 JSON and CSV was asked for, it flattens the JSON body
//!    with one function per route ([`kpis`], [`releases`], [`caseload`]): the same rows,
//!    and every cell as the JSON published it, so the suppression markers (`"<5"`, `"*"`)
//!    stay and a withheld rate stays an empty cell beside `..._suppressed` = `true`.
//!    Errors (and everything else) pass through untouched: problem+json stays.
//!
//! Negotiation: the `.csv` suffix always gives CSV. Otherwise CSV is given when `Accept`
//! prefers `text/csv` to `application/json` (by q-value; at equal q, when `text/csv` is
//! named by a more specific range than JSON is). Any other `Accept` (none, `*/*`, or a
//! type neither JSON nor CSV such as `application/xml`) gets the JSON: the server then
//! disregards `Accept` as RFC 9110 §12.5.1 allows, rather than answering 406. The three
//! canonical routes add `Vary: Accept`.
//!
//! A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//! leading `'` so that no spreadsheet runs it as a formula (CSV injection); numbers are
//! never changed. Lists (identifiers, flags) are joined with `;`.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Uri};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use throughcare_events::catalogue::{CloseReason, ReferrerKind, ServiceType};

use crate::problem::ApiError;

/// The `Content-Type` of a CSV answer (RFC 4180 §3, RFC 7111's `header` parameter).
pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8; header=present";

/// The canonical paths (route patterns) that also answer in CSV.
pub const ROUTES: [&str; 3] = ["/v1/kpis", "/v1/releases", "/v1/caseload/{worker_id}"];

/// Which view a canonical path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Kpis,
    Releases,
    Caseload,
}

impl View {
    /// The view of a canonical path, if it is one of the CSV routes.
    fn of(path: &str) -> Option<View> {
        match path {
            "/v1/kpis" => Some(View::Kpis),
            "/v1/releases" => Some(View::Releases),
            _ => {
                let worker = path.strip_prefix("/v1/caseload/")?;
                (!worker.is_empty() && !worker.contains('/')).then_some(View::Caseload)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            View::Kpis => "kpis",
            View::Releases => "releases",
            View::Caseload => "caseload",
        }
    }
}

/// The canonical path of a `.csv` path of one of the CSV routes.
fn strip_suffix(path: &str) -> Option<&str> {
    let canonical = path.strip_suffix(".csv")?;
    View::of(canonical).map(|_| canonical)
}

/// `uri` with its path replaced (the query kept).
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// The middleware (`axum::middleware::from_fn`), applied outside the router.
pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let rewritten = strip_suffix(request.uri().path()).and_then(|p| with_path(request.uri(), p));
    let suffix = rewritten.is_some();
    if let Some(uri) = rewritten {
        *request.uri_mut() = uri;
    }
    let Some(view) = View::of(request.uri().path()) else {
        return next.run(request).await;
    };
    let wanted = suffix || wants_csv(request.headers());
    let head = request.method() == Method::HEAD;
    let mut response = next.run(request).await;
    if !suffix {
        // The canonical URL answers JSON or CSV by Accept.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept"));
    }
    if !wanted || response.status() != StatusCode::OK || !is_json(response.headers()) {
        return response;
    }
    to_csv(view, response, head).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::extract::parse_media)
        .is_some_and(|m| m == "application/json")
}

/// Turns a 200 JSON answer of `view` into CSV, keeping its other headers.
async fn to_csv(view: View, response: Response, head: bool) -> Response {
    let (mut parts, body) = response.into_parts();
    let (text, filename) = if head {
        // A HEAD answer has no body to flatten: the headers of the GET, less the details.
        (Vec::new(), format!("{}.csv", view.name()))
    } else {
        let converted = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            .and_then(|v| {
                let table = match view {
                    View::Kpis => kpis(&v),
                    View::Releases => releases(&v),
                    View::Caseload => caseload(&v),
                };
                Ok((
                    table.to_csv().map_err(|e| e.to_string())?,
                    filename(view, &v),
                ))
            });
        match converted {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, view = view.name(), "CSV conversion failed");
                return ApiError::internal().into_response();
            }
        }
    };
    let h = &mut parts.headers;
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    h.remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Response::from_parts(parts, Body::from(text))
}

/// `kpis-<prison|all>-<from>-<to>.csv`, `releases-...` alike, and
/// `caseload-<worker>-<as_of date>.csv`; only `[A-Za-z0-9._-]` in a part.
fn filename(view: View, body: &Value) -> String {
    let part = |v: &Value, default: &str| -> String {
        let s = v.as_str().unwrap_or(default);
        let s: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        s.trim_start_matches('.').to_string()
    };
    match view {
        View::Kpis | View::Releases => format!(
            "{}-{}-{}-{}.csv",
            view.name(),
            part(&body["prison"], "all"),
            part(&body["from"], "from"),
            part(&body["to"], "to"),
        ),
        View::Caseload => {
            let as_of = body["as_of"].as_str().unwrap_or("").get(..10).unwrap_or("");
            format!(
                "caseload-{}-{}.csv",
                part(&body["worker_id"], "worker"),
                part(&json!(as_of), "now"),
            )
        }
    }
}

// -- content negotiation --

/// The q-value and specificity (2 exact, 1 `type/*`, 0 `*/*`) of the most specific range
/// of `accept` matching `media`; `None` when no range matches.
fn preference(accept: &str, media: &str) -> Option<(u8, f32)> {
    let (kind, sub) = media.split_once('/')?;
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut params = range.split(';');
        let Some((k, s)) = params.next().and_then(|r| r.trim().split_once('/')) else {
            continue;
        };
        let (k, s) = (k.trim(), s.trim());
        let specificity = match (k, s) {
            ("*", "*") => 0,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
            _ => continue,
        };
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if best.is_none_or(|(b, _)| specificity > b) {
            best = Some((specificity, q));
        }
    }
    best
}

/// Whether the `Accept` header(s) prefer `text/csv` to `application/json`.
pub fn wants_csv(headers: &HeaderMap) -> bool {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    accept_prefers_csv(&accept.join(","))
}

fn accept_prefers_csv(accept: &str) -> bool {
    let Some((csv_spec, csv_q)) = preference(accept, "text/csv").filter(|(_, q)| *q > 0.0) else {
        return false;
    };
    match preference(accept, "application/json") {
        None => true,
        Some((json_spec, json_q)) => csv_q > json_q || (csv_q == json_q && csv_spec > json_spec),
    }
}

// -- flattening --

/// A header row and the rows under it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// RFC 4180: CRLF line ends, a field quoted when it holds a comma, a quote, CR or LF,
    /// quotes doubled.
    pub fn to_csv(&self) -> Result<Vec<u8>, ::csv::Error> {
        let mut w = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .quote_style(::csv::QuoteStyle::Necessary)
            .from_writer(Vec::new());
        w.write_record(&self.header)?;
        for row in &self.rows {
            w.write_record(row)?;
        }
        w.into_inner().map_err(|e| e.into_error().into())
    }
}

/// One JSON value as a cell: null empty, text as published (formula-guarded), numbers and
/// booleans as written in the JSON, lists joined with `;`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => guard_formula(s),
        Value::Array(items) => guard_formula(
            &items
                .iter()
                .map(|i| match i {
                    Value::String(s) => s.clone(),
                    other => cell(other),
                })
                .collect::<Vec<_>>()
                .join(";"),
        ),
        Value::Object(_) => guard_formula(&v.to_string()),
    }
}

/// Text a spreadsheet would take for a formula gets a leading `'`.
fn guard_formula(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// Columns of a row-per-item table: a name and how to get its cell from the item.
type Column = (String, Box<dyn Fn(&Value) -> String>);

/// Builds the table of `items` from `columns`, then one more column for each member of
/// an item that no column reads (`known`), so a field added to the JSON later is never
/// silently dropped from the CSV.
fn table(items: &[Value], mut columns: Vec<Column>, known: &[&str]) -> Table {
    let extra: BTreeSet<&String> = items
        .iter()
        .filter_map(Value::as_object)
        .flat_map(Map::keys)
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    for key in extra {
        let k = key.clone();
        columns.push((key.clone(), Box::new(move |item| cell(&item[&k]))));
    }
    Table {
        header: columns.iter().map(|(name, _)| name.clone()).collect(),
        rows: items
            .iter()
            .map(|item| columns.iter().map(|(_, f)| f(item)).collect())
            .collect(),
    }
}

/// A column reading one member.
fn member(name: &str, key: &'static str) -> Column {
    (name.to_string(), Box::new(move |item| cell(&item[key])))
}

/// A column reading one member of a member (`identifiers.nomis`).
fn nested(name: &str, outer: &'static str, inner: &'static str) -> Column {
    (
        name.to_string(),
        Box::new(move |item| cell(&item[outer][inner])),
    )
}

/// The columns of a published rate: numerator, denominator, rate (empty when withheld),
/// suppressed, pending. `at` finds the rate's object in a row; a rate the JSON does not
/// list (nothing counted) is 0 of 0.
fn ratio_columns(
    prefix: &str,
    at: impl Fn(&Value) -> Option<&Value> + Clone + 'static,
) -> Vec<Column> {
    let defaults =
        json!({"numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": 0});
    ["numerator", "denominator", "rate", "suppressed", "pending"]
        .into_iter()
        .map(|part| {
            let at = at.clone();
            let default = defaults[part].clone();
            let f: Box<dyn Fn(&Value) -> String> =
                Box::new(move |row| cell(at(row).and_then(|r| r.get(part)).unwrap_or(&default)));
            (format!("{prefix}_{part}"), f)
        })
        .collect()
}

/// The keys of `field` in any row, the catalogue's first in its order, then any other.
fn keys(known: &[&str], rows: &[Value], field: &str) -> Vec<String> {
    let seen: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r[field].as_object())
        .flat_map(|o| o.keys().map(String::as_str))
        .filter(|k| !known.contains(k))
        .collect();
    known
        .iter()
        .copied()
        .chain(seen)
        .map(str::to_string)
        .collect()
}

/// The release-based rates of a KPI row, in the JSON's order.
const KPI_RATES: [&str; 5] = [
    "assessed_before_release",
    "released_with_plan",
    "contacted_within_72h_of_release",
    "met_at_gate",
    "gp_registered_within_28d_of_release",
];

/// `/v1/kpis`: one row per prison and month. Counts per referral source
/// (`referrals_<source>`), the median triage time, each rate as five columns
/// (`<rate>_numerator`, `_denominator`, `_rate`, `_suppressed`, `_pending`), each
/// service type's signposting conversion likewise (`signposting_<service>_...`), and
/// closures per reason (`closures_<reason>`). A source, service or reason the month has
/// none of is 0 (the JSON leaves it out).
pub fn kpis(body: &Value) -> Table {
    let months = body["months"].as_array().map_or(&[][..], Vec::as_slice);
    let count_or_zero = |v: Option<&Value>| v.map_or_else(|| "0".to_string(), cell);
    let mut columns = vec![
        member("prison", "prison"),
        member("month", "month"),
        member("referrals_total", "referrals_total"),
    ];
    let sources: Vec<&str> = ReferrerKind::ALL.iter().map(|k| k.as_str()).collect();
    for source in keys(&sources, months, "referrals_by_source") {
        let name = format!("referrals_{}", lower_key(&source));
        let f: Box<dyn Fn(&Value) -> String> =
            Box::new(move |m| count_or_zero(m["referrals_by_source"].get(&source)));
        columns.push((name, f));
    }
    columns.push(nested(
        "median_hours_referral_to_triage",
        "median_hours_referral_to_triage",
        "value",
    ));
    columns.push(nested(
        "referrals_triaged",
        "median_hours_referral_to_triage",
        "referrals_triaged",
    ));
    for rate in KPI_RATES {
        columns.extend(ratio_columns(rate, move |m| m.get(rate)));
    }
    let services: Vec<&str> = ServiceType::ALL.iter().map(|k| k.as_str()).collect();
    for service in keys(&services, months, "signposting_conversion") {
        let prefix = format!("signposting_{}", lower_key(&service));
        columns.extend(ratio_columns(&prefix, move |m| {
            m["signposting_conversion"].get(&service)
        }));
    }
    let mut reasons: Vec<&str> = CloseReason::ALL.iter().map(|k| k.as_str()).collect();
    reasons.push("NOT_ACCEPTED");
    for reason in keys(&reasons, months, "closure_reasons") {
        let name = format!("closures_{}", lower_key(&reason));
        let f: Box<dyn Fn(&Value) -> String> =
            Box::new(move |m| count_or_zero(m["closure_reasons"].get(&reason)));
        columns.push((name, f));
    }
    let mut known = vec![
        "prison",
        "month",
        "referrals_total",
        "referrals_by_source",
        "median_hours_referral_to_triage",
        "signposting_conversion",
        "closure_reasons",
    ];
    known.extend(KPI_RATES);
    table(months, columns, &known)
}

/// A code as part of a column name: lower case, anything but letters and digits `_`.
fn lower_key(code: &str) -> String {
    code.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `/v1/releases`: one row per release (expected or made), identifiers and flags as
/// `;`-joined lists.
pub fn releases(body: &Value) -> Table {
    let rows = body["releases"].as_array().map_or(&[][..], Vec::as_slice);
    let columns = vec![
        member("date", "date"),
        member("kind", "kind"),
        member("date_type", "date_type"),
        member("person_id", "person_id"),
        nested("nomis", "identifiers", "nomis"),
        nested("nhs_number", "identifiers", "nhs_number"),
        nested("crn", "identifiers", "crn"),
        member("prison", "prison"),
        member("state", "state"),
        member("worker", "worker"),
        member("unallocated", "unallocated"),
        member("no_plan", "no_plan"),
        member("no_consent", "no_consent"),
        member("flags", "flags"),
    ];
    let known = [
        "date",
        "kind",
        "date_type",
        "person_id",
        "identifiers",
        "prison",
        "state",
        "worker",
        "unallocated",
        "no_plan",
        "no_consent",
        "flags",
    ];
    table(rows, columns, &known)
}

/// `/v1/caseload/{worker_id}`: one row per case, most urgent first as in the JSON.
pub fn caseload(body: &Value) -> Table {
    let rows = body["cases"].as_array().map_or(&[][..], Vec::as_slice);
    let columns = vec![
        member("person_id", "person_id"),
        nested("nomis", "identifiers", "nomis"),
        nested("nhs_number", "identifiers", "nhs_number"),
        nested("crn", "identifiers", "crn"),
        member("state", "state"),
        member("prison", "prison"),
        member("in_custody", "in_custody"),
        member("release_date", "release_date"),
        member("days_to_release", "days_to_release"),
        member("released_at", "released_at"),
        nested("consent_engage", "consent", "engage"),
        nested("consent_share_with", "consent", "share_with"),
        member("next_action", "next_action"),
        member("overdue_contact", "overdue_contact"),
        member("last_contact_at", "last_contact_at"),
        member("support_end", "support_end"),
        member("flags", "flags"),
    ];
    let known = [
        "person_id",
        "identifiers",
        "state",
        "prison",
        "in_custody",
        "release_date",
        "days_to_release",
        "released_at",
        "consent",
        "next_action",
        "overdue_contact",
        "last_contact_at",
        "support_end",
        "flags",
    ];
    table(rows, columns, &known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<Vec<String>> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn quotes_commas_quotes_and_newlines_per_rfc_4180() {
        let t = Table {
            header: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            rows: vec![vec![
                "x,y".into(),
                "say \"hi\"".into(),
                "two\nlines".into(),
                "plain".into(),
            ]],
        };
        let bytes = t.to_csv().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "a,b,c,d\r\n\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\",plain\r\n"
        );
        assert_eq!(parse(&bytes)[1], t.rows[0]);
    }

    #[test]
    fn cells_keep_the_published_values() {
        assert_eq!(cell(&json!("<5")), "<5");
        assert_eq!(cell(&json!("*")), "*");
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!(0.833)), "0.833");
        assert_eq!(cell(&json!(-3)), "-3");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(
            cell(&json!(["NO_CONTACT_72H", "NO_PLAN_AT_RELEASE"])),
            "NO_CONTACT_72H;NO_PLAN_AT_RELEASE"
        );
        assert_eq!(cell(&json!([])), "");
    }

    #[test]
    fn text_a_spreadsheet_would_run_is_defused() {
        for s in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx"] {
            assert_eq!(cell(&json!(s)), format!("'{s}"));
        }
        assert_eq!(cell(&json!(["=cmd", "x"])), "'=cmd;x");
        assert_eq!(cell(&json!("2026-11")), "2026-11");
    }

    fn month() -> Value {
        json!({
            "prison": "WCI", "month": "2026-11",
            "referrals_total": 6,
            "referrals_by_source": {"PRISON_HEALTHCARE": "*", "PROBATION": "<5"},
            "median_hours_referral_to_triage": {"value": null, "referrals_triaged": "<5"},
            "assessed_before_release": {"numerator": 0, "denominator": "<5", "rate": null, "suppressed": true, "pending": 0},
            "released_with_plan": {"numerator": 12, "denominator": 16, "rate": 0.75, "suppressed": false, "pending": "<5"},
            "contacted_within_72h_of_release": {"numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": 0},
            "met_at_gate": {"numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": 0},
            "gp_registered_within_28d_of_release": {"numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": 0},
            "signposting_conversion": {"GP": {"numerator": "<5", "denominator": 7, "rate": null, "suppressed": true, "pending": 0}},
            "closure_reasons": {"NEEDS_MET": "<5"},
        })
    }

    fn column<'a>(t: &'a Table, row: usize, name: &str) -> &'a str {
        let i = t
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        &t.rows[row][i]
    }

    #[test]
    fn kpis_flatten_with_the_markers_kept() {
        let t = kpis(&json!({"months": [month()]}));
        assert_eq!(t.rows.len(), 1);
        assert!(t.rows.iter().all(|r| r.len() == t.header.len()));
        let c = |name| column(&t, 0, name);
        assert_eq!(c("referrals_total"), "6");
        assert_eq!(c("referrals_prison_healthcare"), "*");
        assert_eq!(c("referrals_probation"), "<5");
        assert_eq!(c("referrals_self"), "0");
        assert_eq!(c("median_hours_referral_to_triage"), "");
        assert_eq!(c("referrals_triaged"), "<5");
        assert_eq!(c("assessed_before_release_denominator"), "<5");
        assert_eq!(c("assessed_before_release_rate"), "");
        assert_eq!(c("assessed_before_release_suppressed"), "true");
        assert_eq!(c("released_with_plan_rate"), "0.75");
        assert_eq!(c("released_with_plan_pending"), "<5");
        assert_eq!(c("signposting_gp_numerator"), "<5");
        assert_eq!(c("signposting_gp_denominator"), "7");
        assert_eq!(c("signposting_gp_rate"), "");
        assert_eq!(c("signposting_gp_suppressed"), "true");
        assert_eq!(c("signposting_housing_denominator"), "0");
        assert_eq!(c("signposting_housing_suppressed"), "false");
        assert_eq!(c("closures_needs_met"), "<5");
        assert_eq!(c("closures_not_accepted"), "0");
        // Every marker of the JSON is in the CSV, and no figure the JSON withheld.
        let bytes = t.to_csv().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("\"<5\""), "markers need no quoting: {text}");
        assert_eq!(text.matches("<5").count(), 6);
        assert_eq!(text.matches(",*").count(), 1);
    }

    #[test]
    fn an_empty_answer_still_has_its_header() {
        let t = kpis(&json!({"months": []}));
        assert!(t.rows.is_empty());
        assert!(t.header.contains(&"closures_died".to_string()));
        let text = String::from_utf8(t.to_csv().unwrap()).unwrap();
        assert_eq!(text.matches("\r\n").count(), 1);
        let t = releases(&json!({"releases": []}));
        assert_eq!(t.header[0], "date");
        let t = caseload(&json!({"cases": []}));
        assert_eq!(t.header[0], "person_id");
    }

    #[test]
    fn members_no_column_reads_are_kept_as_columns() {
        let mut m = month();
        m["new_measure"] = json!("<5");
        m["referrals_by_source"]["A_NEW_SOURCE"] = json!(9);
        let t = kpis(&json!({"months": [m]}));
        assert_eq!(column(&t, 0, "new_measure"), "<5");
        assert_eq!(column(&t, 0, "referrals_a_new_source"), "9");
        let t = releases(&json!({"releases": [{"date": "2026-12-01", "later": "x"}]}));
        assert_eq!(column(&t, 0, "later"), "x");
    }

    #[test]
    fn releases_and_caseload_one_row_per_item() {
        let r = json!({
            "date": "2026-12-01", "kind": "EXPECTED", "date_type": "CRD",
            "person_id": "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            "identifiers": {"nomis": ["A1234BC"], "nhs_number": ["9434765919"], "crn": []},
            "prison": "WCI", "state": "PRE_RELEASE", "worker": null,
            "unallocated": true, "no_plan": true, "no_consent": false,
            "flags": ["UNALLOCATED_NEAR_RELEASE", "NO_PLAN_AT_RELEASE"],
        });
        let t = releases(&json!({"releases": [r.clone(), r]}));
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.header.len(), 14);
        assert_eq!(column(&t, 0, "nomis"), "A1234BC");
        assert_eq!(column(&t, 0, "crn"), "");
        assert_eq!(column(&t, 0, "worker"), "");
        assert_eq!(
            column(&t, 1, "flags"),
            "UNALLOCATED_NEAR_RELEASE;NO_PLAN_AT_RELEASE"
        );
        let case = json!({
            "person_id": "01JD3Z8Q6V2X9S7W4K5M1N0P3R",
            "identifiers": {"nomis": ["A1234BC", "B2345CD"], "nhs_number": [], "crn": []},
            "state": "SEEKING_CONTACT", "prison": "WCI", "in_custody": false,
            "release_date": null, "days_to_release": -3, "released_at": "2026-11-20T09:30:00Z",
            "consent": {"engage": true, "share_with": ["GP", "Housing, Southampton"]},
            "next_action": "MAKE_CONTACT", "overdue_contact": true, "last_contact_at": null,
            "support_end": "2027-05-20", "flags": ["NO_CONTACT_72H"],
        });
        let t = caseload(&json!({"cases": [case]}));
        assert_eq!(t.header.len(), 17);
        assert_eq!(column(&t, 0, "nomis"), "A1234BC;B2345CD");
        assert_eq!(column(&t, 0, "days_to_release"), "-3");
        assert_eq!(
            column(&t, 0, "consent_share_with"),
            "GP;Housing, Southampton"
        );
        let rows = parse(&t.to_csv().unwrap());
        assert_eq!(rows[1], t.rows[0]);
    }

    #[test]
    fn negotiation() {
        let csv = accept_prefers_csv;
        assert!(csv("text/csv"));
        assert!(csv("text/csv; charset=utf-8; header=present"));
        assert!(csv("TEXT/CSV"));
        assert!(csv("text/*"));
        assert!(csv("text/csv, */*;q=0.1"));
        assert!(csv("text/csv, application/*"));
        assert!(csv("application/json;q=0.5, text/csv"));
        assert!(!csv(""));
        assert!(!csv("*/*"));
        assert!(!csv("application/json"));
        assert!(!csv("application/xml"));
        assert!(!csv("text/csv;q=0"));
        assert!(!csv("text/csv;q=0.5, application/json"));
        assert!(!csv("text/csv, application/json"));
        // A browser's Accept gets the JSON.
        assert!(!csv(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
    }

    #[test]
    fn suffixes() {
        assert_eq!(strip_suffix("/v1/kpis.csv"), Some("/v1/kpis"));
        assert_eq!(strip_suffix("/v1/releases.csv"), Some("/v1/releases"));
        assert_eq!(
            strip_suffix("/v1/caseload/W-WCI-01.csv"),
            Some("/v1/caseload/W-WCI-01")
        );
        assert_eq!(strip_suffix("/v1/caseload/.csv"), None);
        assert_eq!(strip_suffix("/v1/caseload/a/b.csv"), None);
        assert_eq!(strip_suffix("/v1/people.csv"), None);
        assert_eq!(strip_suffix("/v1/kpis"), None);
        let uri: Uri = "/v1/kpis.csv?prison=WCI&from=2026-11-01".parse().unwrap();
        assert_eq!(
            with_path(&uri, "/v1/kpis").unwrap().to_string(),
            "/v1/kpis?prison=WCI&from=2026-11-01"
        );
    }

    #[test]
    fn filenames() {
        let body = json!({"prison": null, "from": "2026-11-01", "to": "2026-11-30"});
        assert_eq!(
            filename(View::Kpis, &body),
            "kpis-all-2026-11-01-2026-11-30.csv"
        );
        let body = json!({"prison": "WCI", "from": "2026-11-01", "to": "2027-02-28"});
        assert_eq!(
            filename(View::Releases, &body),
            "releases-WCI-2026-11-01-2027-02-28.csv"
        );
        let body = json!({"worker_id": "../W \"1\"", "as_of": "2026-11-29T09:30:00Z"});
        assert_eq!(
            filename(View::Caseload, &body),
            "caseload-_W__1_-2026-11-29.csv"
        );
    }
}
