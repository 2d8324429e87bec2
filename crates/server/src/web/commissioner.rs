//! The commissioner's month (`GET /kpis?prison=&month=`): a prison's KPIs for one month
//! (numerators, denominators, pending counts, suppression as "<5" and "*"), and for the
//! six months to it a bar chart of each release-based rate (`charts.rs`) with a table of
//! the same figures beside it, and a link to the same figures as CSV.
//!
//! The figures are not computed here: the page calls the `/v1/kpis` handler itself
//! (`api::kpis`) with the range and prison of the page and draws its JSON answer, so the
//! page, the API and the CSV (`/v1/kpis.csv`, `csv.rs`) cannot disagree, and the
//! suppression a commissioner sees is the one the API applies.

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Value};
use throughcare_events::{PrisonCode, PILOT_PRISONS};

use super::charts::{self, Bar, BarValue, Chart};
use super::{page, words, Viewer};
use crate::access::Caller;
use crate::as_of::AsOf;
use crate::auth::{Principal, Role};
use crate::extract::Query;
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct KpiQuery {
    prison: Option<String>,
    /// `YYYY-MM`; this month when not given.
    month: Option<String>,
}

/// The release-based rates, as the JSON names them, with their headings.
pub(crate) const RATES: [(&str, &str); 5] = [
    ("assessed_before_release", "Assessed before release"),
    ("released_with_plan", "Released with a plan"),
    (
        "contacted_within_72h_of_release",
        "Contacted within 72 hours of release",
    ),
    ("met_at_gate", "Met at the gate"),
    (
        "gp_registered_within_28d_of_release",
        "Registered with a GP within 28 days of release",
    ),
];

/// How many months the charts show, ending with the month asked for.
const CHART_MONTHS: u32 = 6;

/// `2026-11` as the first day of that month.
pub(crate) fn parse_month(raw: &str) -> Option<NaiveDate> {
    let (y, m) = raw.trim().split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
}

/// The months `[first, last]` as `YYYY-MM`, in order.
pub(crate) fn months_between(first: NaiveDate, last: NaiveDate) -> Vec<String> {
    let mut out = Vec::new();
    let mut m = first.with_day(1).unwrap_or(first);
    while m <= last {
        out.push(m.format("%Y-%m").to_string());
        match m.checked_add_months(Months::new(1)) {
            Some(next) => m = next,
            None => break,
        }
    }
    out
}

/// The prisons the caller may choose between.
fn prisons_for(who: &Principal) -> Vec<String> {
    let mut out: Vec<String> = PILOT_PRISONS
        .iter()
        .filter(|p| who.open_mode || who.role == Role::Auditor || who.covers_prison(p))
        .map(|p| p.to_string())
        .collect();
    for p in &who.prisons {
        let p = p.to_ascii_uppercase();
        if !out.contains(&p) && PrisonCode::parse(&p).is_ok() {
            out.push(p);
        }
    }
    out
}

/// A published figure as text: a count, "<5", "*", or "" when absent.
fn figure(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A published rate object as a bar.
fn bar_value(ratio: Option<&Value>) -> BarValue {
    let Some(r) = ratio else {
        return BarValue::None;
    };
    match r["rate"].as_f64() {
        Some(rate) => BarValue::Rate(rate),
        None if r["suppressed"].as_bool() == Some(true) => BarValue::Withheld,
        None => BarValue::None,
    }
}

/// A published rate in words for a table cell: "75% (12 of 16)", "withheld", "none".
fn rate_text(ratio: Option<&Value>) -> String {
    match bar_value(ratio) {
        BarValue::Rate(r) => format!("{}%", charts::percent(r)),
        other => other.text(),
    }
}

/// `GET /kpis?prison=WCI&month=2026-11`
pub async fn kpis_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Query(q): Query<KpiQuery>,
) -> Result<Response, ApiError> {
    let who = caller.principal.clone();
    let viewer = Viewer::of(&state, &who, &headers);
    let today = state.ledger.now().date_naive();
    let this_month = today.with_day(1).unwrap_or(today);
    let prisons = prisons_for(&who);
    let mut problems: Vec<(&str, String)> = Vec::new();
    let month = match q.month.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        None => this_month,
        Some(raw) => parse_month(raw).unwrap_or_else(|| {
            problems.push((
                "month",
                format!("Enter the month as a year and month, like 2026-11, not {raw:?}"),
            ));
            this_month
        }),
    };
    let prison = match q.prison.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => match PrisonCode::parse(p) {
            Ok(code) => Some(code.to_string()),
            Err(e) => {
                problems.push(("prison", format!("Select a prison ({e})")));
                prisons.first().cloned()
            }
        },
        None => prisons.first().cloned(),
    };
    let Some(prison) = prison else {
        return Ok(super::plain(
            StatusCode::FORBIDDEN,
            "No prisons",
            "No prison's figures are open to you.",
        ));
    };
    let first = month
        .checked_sub_months(Months::new(CHART_MONTHS - 1))
        .unwrap_or(month);
    let last = month
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(month);
    // The API's own handler, so that the page shows exactly what `/v1/kpis` publishes.
    let range: crate::api::RangeQuery = serde_json::from_value(json!({
        "from": first.to_string(), "to": last.to_string(), "prison": prison,
    }))
    .map_err(|_| ApiError::internal())?;
    let answer = crate::api::kpis(
        State(state.clone()),
        Extension(caller.clone()),
        Query(range),
        AsOf(None),
    )
    .await?
    .0;
    let rows: Vec<&Value> = answer["months"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["prison"] == prison.as_str())
                .collect()
        })
        .unwrap_or_default();
    let ym = month.format("%Y-%m").to_string();
    let months = months_between(first, last);
    let row_of = |m: &str| rows.iter().copied().find(|r| r["month"] == m);
    let selected = row_of(&ym);
    let csv_href = format!("/v1/kpis.csv?prison={prison}&from={first}&to={last}");
    let json_href = format!("/v1/kpis?prison={prison}&from={first}&to={last}");
    let prison_name = PrisonCode::parse(&prison)
        .map(|c| c.name())
        .unwrap_or_default();
    let error_of = |field: &str| {
        problems
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.clone())
    };
    let body = html! {
        @if !problems.is_empty() {
            div.error-summary role="alert" aria-labelledby="error-summary-title" tabindex="-1" {
                h2 #error-summary-title { "There is a problem" }
                ul { @for (f, m) in &problems { li { a href={ "#kpi-" (f) } { (m) } } } }
            }
        }
        form method="get" action="/kpis" {
            div.inline {
                div class=[error_of("prison").map(|_| "field-error")] {
                    label for="kpi-prison" { "Prison" }
                    @if let Some(e) = error_of("prison") {
                        span.error-message #kpi-prison-error { span.visually-hidden { "Error: " } (e) }
                    }
                    select #kpi-prison name="prison"
                        aria-describedby=[error_of("prison").map(|_| "kpi-prison-error")] {
                        @for p in &prisons {
                            option value=(p) selected[*p == prison] {
                                (p) " " (PrisonCode::parse(p).map(|c| c.name()).unwrap_or(""))
                            }
                        }
                    }
                }
                div class=[error_of("month").map(|_| "field-error")] {
                    label for="kpi-month" { "Month" }
                    span.hint #kpi-month-hint { "Year and month, like 2026-11" }
                    @if let Some(e) = error_of("month") {
                        span.error-message #kpi-month-error { span.visually-hidden { "Error: " } (e) }
                    }
                    input #kpi-month type="month" name="month" value=(ym)
                        class=[error_of("month").map(|_| "error")]
                        aria-describedby=(if error_of("month").is_some() { "kpi-month-hint kpi-month-error" } else { "kpi-month-hint" });
                }
                button type="submit" { "Show" }
            }
        }
        p.muted { "Suppression: " (answer["suppression"].as_str().unwrap_or("")) ". "
            "Pending: releases whose window is still open, not yet counted either way." }
        p {
            a #kpi-csv href=(csv_href) download { "Download these figures as CSV (" (months.len()) " months to " (ym) ")" }
            " · " a href=(json_href) { "The same as JSON" }
        }
        h2 #month { (prison) " " (prison_name) " in " (ym) }
        (month_table(selected, &ym))
        h2 #charts { "Rates by month, " (months.first().map(String::as_str).unwrap_or("")) " to " (ym) }
        p.muted { "Each chart has a table beside it with the same figures. A hatched bar is a published rate; a dashed box is a rate withheld because it rests on fewer than 5 people; \"none\" is a month with no one to count." }
        @for (i, (key, heading)) in RATES.iter().enumerate() {
            @let chart = Chart {
                id: format!("kpi-chart-{}", i + 1),
                title: format!("{heading}, {prison}"),
                bars: months.iter().map(|m| Bar {
                    label: m.clone(),
                    value: bar_value(row_of(m).and_then(|r| r.get(*key))),
                }).collect(),
            };
            h3 { (heading) }
            div.chart-row {
                div.chart-figure { (charts::bar_chart(&chart)) }
                div.chart-table {
                    table {
                        caption { (heading) " by month" }
                        thead { tr { th scope="col" { "Month" } th scope="col" { "Numerator" } th scope="col" { "Denominator" }
                            th scope="col" { "Rate" } th scope="col" { "Pending" } } }
                        tbody {
                            @for m in &months {
                                @let r = row_of(m).and_then(|r| r.get(*key));
                                tr {
                                    th scope="row" { (m) }
                                    td { (r.map(|r| figure(&r["numerator"])).unwrap_or_else(|| "0".into())) }
                                    td { (r.map(|r| figure(&r["denominator"])).unwrap_or_else(|| "0".into())) }
                                    td { (rate_text(r)) }
                                    td { (r.map(|r| figure(&r["pending"])).unwrap_or_else(|| "0".into())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let title = if problems.is_empty() {
        "Service KPIs".to_string()
    } else {
        "Error: Service KPIs".to_string()
    };
    Ok((status, page(&viewer, &title, body)).into_response())
}

/// The month's figures as published: referrals, triage time, each rate with its parts,
/// signposting conversion per service and closures per reason.
fn month_table(row: Option<&Value>, ym: &str) -> Markup {
    let Some(m) = row else {
        return html! { p { "Nothing was recorded for this prison in " (ym) ": no referrals, releases, signposts or closures." } };
    };
    let referrals = figure(&m["referrals_total"]);
    let triage = &m["median_hours_referral_to_triage"];
    let services: Vec<(&String, &Value)> = m["signposting_conversion"]
        .as_object()
        .map(|o| o.iter().collect())
        .unwrap_or_default();
    let closures: Vec<(&String, &Value)> = m["closure_reasons"]
        .as_object()
        .map(|o| o.iter().collect())
        .unwrap_or_default();
    html! {
        dl.facts {
            dt { "Referrals" } dd { (referrals) }
            dt { "Referrals by source" } dd {
                @if let Some(o) = m["referrals_by_source"].as_object() {
                    @for (k, v) in o { (words(k)) ": " (figure(v)) br; }
                }
            }
            dt { "Median hours from referral to triage" } dd {
                (triage["value"].as_f64().map(|h| format!("{h}")).unwrap_or_else(|| "withheld (fewer than 5 triaged)".into()))
                " (" (figure(&triage["referrals_triaged"])) " triaged)"
            }
        }
        table {
            caption { "Release-based rates in " (ym) }
            thead { tr { th scope="col" { "Measure" } th scope="col" { "Numerator" } th scope="col" { "Denominator" }
                th scope="col" { "Rate" } th scope="col" { "Pending" } th scope="col" { "Suppressed" } } }
            tbody {
                @for (key, heading) in RATES {
                    @let r = &m[key];
                    tr {
                        th scope="row" { (heading) }
                        td { (figure(&r["numerator"])) }
                        td { (figure(&r["denominator"])) }
                        td { (rate_text(Some(r))) }
                        td { (figure(&r["pending"])) }
                        td { @if r["suppressed"].as_bool() == Some(true) { "yes" } @else { "no" } }
                    }
                }
            }
        }
        @if !services.is_empty() {
            table {
                caption { "Signposts converted into a service, by service, in " (ym) }
                thead { tr { th scope="col" { "Service" } th scope="col" { "Converted" } th scope="col" { "Signposted" }
                    th scope="col" { "Rate" } th scope="col" { "Awaiting outcome" } } }
                tbody {
                    @for (service, r) in &services {
                        tr {
                            th scope="row" { (words(service)) }
                            td { (figure(&r["numerator"])) }
                            td { (figure(&r["denominator"])) }
                            td { (rate_text(Some(r))) }
                            td { (figure(&r["pending"])) }
                        }
                    }
                }
            }
        }
        @if !closures.is_empty() {
            table {
                caption { "Cases closed in " (ym) ", by reason" }
                thead { tr { th scope="col" { "Reason" } th scope="col" { "Cases" } } }
                tbody { @for (reason, n) in &closures { tr { th scope="row" { (words(reason)) } td { (figure(n)) } } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_run_in_order() {
        let nov = parse_month("2026-11").unwrap();
        assert_eq!(nov, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(parse_month("2026-13"), None);
        assert_eq!(parse_month("2026-1"), None);
        assert_eq!(parse_month("November"), None);
        let first = nov.checked_sub_months(Months::new(5)).unwrap();
        let last = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(
            months_between(first, last),
            ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
        );
        // Across a year's end.
        assert_eq!(
            months_between(
                NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
                NaiveDate::from_ymd_opt(2027, 1, 31).unwrap()
            ),
            ["2026-12", "2027-01"]
        );
    }

    #[test]
    fn published_rates_become_bars_and_words() {
        let shown = json!({"numerator": 12, "denominator": 16, "rate": 0.75, "suppressed": false, "pending": "<5"});
        let withheld = json!({"numerator": "<5", "denominator": 7, "rate": null, "suppressed": true, "pending": 0});
        let empty = json!({"numerator": 0, "denominator": 0, "rate": null, "suppressed": false, "pending": 0});
        assert_eq!(bar_value(Some(&shown)), BarValue::Rate(0.75));
        assert_eq!(bar_value(Some(&withheld)), BarValue::Withheld);
        assert_eq!(bar_value(Some(&empty)), BarValue::None);
        assert_eq!(bar_value(None), BarValue::None);
        assert_eq!(rate_text(Some(&shown)), "75%");
        assert_eq!(rate_text(Some(&withheld)), "withheld");
        assert_eq!(figure(&withheld["numerator"]), "<5");
        assert_eq!(figure(&json!("*")), "*");
        assert_eq!(figure(&shown["denominator"]), "16");
        let html = month_table(
            Some(&json!({
                "prison": "WCI", "month": "2026-11", "referrals_total": 6,
                "referrals_by_source": {"PRISON_HEALTHCARE": "*", "PROBATION": "<5"},
                "median_hours_referral_to_triage": {"value": null, "referrals_triaged": "<5"},
                "assessed_before_release": withheld, "released_with_plan": shown,
                "contacted_within_72h_of_release": empty, "met_at_gate": empty,
                "gp_registered_within_28d_of_release": empty,
                "signposting_conversion": {}, "closure_reasons": {"NEEDS_MET": "<5"},
            })),
            "2026-11",
        )
        .into_string();
        for text in [
            "prison healthcare: *",
            "probation: &lt;5",
            "<td>75%</td>",
            "<td>withheld</td>",
            "needs met",
        ] {
            assert!(html.contains(text), "{text} missing from {html}");
        }
    }
}
