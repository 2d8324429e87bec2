//! CSV answers driven in-process (`app(state).oneshot(..)`) over a real embedded ledger
//! and read models in a temp dir: `/v1/kpis`, `/v1/releases` and `/v1/caseload/{w}` as
//! CSV by `Accept: text/csv` and by the `.csv` suffix, parsed back with the `csv` crate
//! and compared cell by cell with the JSON answer (suppression markers included); a
//! MANAGER's CSV holds only its prisons; refusals stay problem+json; the guard and the
//! access log see the canonical route.

mod support;

use axum::http::{header, StatusCode};
use serde_json::{json, Value};
use support::{Principal, Reply, World, AUDITOR, COMMISSIONER, JO, WCI_MANAGER};
use throughcare_ledger::AccessWhat;

const SOURCE: &str = "urn:throughcare:partner:test";
const CSV_TYPE: &str = "text/csv; charset=utf-8; header=present";
const KPI_RANGE: &str = "from=2026-11-01&to=2026-11-30";
const RELEASE_RANGE: &str = "from=2026-11-01&to=2027-03-31";

const PRINCIPALS: &[Principal] = &[
    (
        "partner",
        "PARTNER",
        "sources = [\"urn:throughcare:partner:test\"]\ntypes = [\"throughcare.*\"]",
    ),
    JO,
    WCI_MANAGER,
    COMMISSIONER,
    ("wci.commissioner", "COMMISSIONER", "prisons = [\"WCI\"]"),
    AUDITOR,
];

async fn world() -> World {
    support::world_of(PRINCIPALS).await
}

/// The header row and the rows, read with a real CSV reader.
fn table(a: &Reply) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&a.body[..]);
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

impl World {
    async fn get(&self, who: &str, uri: &str, accept: Option<&str>) -> Reply {
        let accept: Vec<_> = accept.map(|a| (header::ACCEPT, a)).into_iter().collect();
        self.request(Some(who), "GET", uri, &accept, None).await
    }

    async fn submit(&self, kind: &str, nomis: &str, id: &str, time: &str, data: Value) {
        let id = format!("{nomis}-{id}");
        let event = support::event(Some(SOURCE), &id, kind, nomis, time, data);
        self.submit_as(Some("partner"), event).await;
    }

    /// A person referred at `prison` by `referrer`, accepted and allocated to `worker`.
    async fn person(&self, nomis: &str, prison: &str, referrer: &str, worker: &str) {
        let t = "2026-11-10T09:30:00Z";
        for e in support::allocated(SOURCE, nomis, prison, referrer, worker, t) {
            self.submit_as(Some("partner"), e).await;
        }
    }
}

/// Six people at WCI (five referred by prison healthcare, one by probation, so the
/// referrals by source show both "<5" and "*"), one of them released and one with a
/// release date to come; two at BNI, one released.
async fn population() -> World {
    let w = world().await;
    for i in 0..6 {
        let referrer = if i == 5 {
            "PROBATION"
        } else {
            "PRISON_HEALTHCARE"
        };
        w.person(&format!("A100{i}AA"), "WCI", referrer, "W-WCI-01")
            .await;
    }
    for i in 0..2 {
        w.person(&format!("B200{i}BB"), "BNI", "PROBATION", "W-BNI-02")
            .await;
    }
    // Each person's fourth event.
    for (kind, nomis, time, data) in [
        (
            "prisoner.released",
            "A1000AA",
            "2026-11-20T09:30:00Z",
            json!({"prison": "WCI", "reason": "RELEASED"}),
        ),
        (
            "release_date.set",
            "A1001AA",
            "2026-11-12T09:30:00Z",
            json!({"date": "2027-01-15", "date_type": "CRD"}),
        ),
        (
            "prisoner.released",
            "B2000BB",
            "2026-11-21T09:30:00Z",
            json!({"prison": "BNI", "reason": "RELEASED"}),
        ),
    ] {
        w.submit(kind, nomis, "4", time, data).await;
    }
    w
}

/// A JSON value as the CSV shows it (the test's own reading of the contract).
fn shown(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// The CSV cell of `column` in `row`.
fn at<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    &row[i]
}

/// Asserts that the CSV answer `csv` holds exactly the rows of the JSON answer `items`,
/// each JSON member (flattened one level with `_`, lists joined with `;`) equal to its
/// CSV column; members named in `renamed` map to other columns.
fn same_rows(csv: &Reply, items: &[Value], renamed: &[(&str, &str)]) {
    let (header, rows) = table(csv);
    assert_eq!(rows.len(), items.len(), "{header:?}");
    for (row, item) in rows.iter().zip(items) {
        assert_eq!(row.len(), header.len());
        for (key, value) in item.as_object().unwrap() {
            let column = |k: &str| {
                renamed
                    .iter()
                    .find(|(from, _)| *from == k)
                    .map_or(k.to_string(), |(_, to)| to.to_string())
            };
            match value {
                Value::Object(inner) => {
                    for (k2, v2) in inner {
                        let name = column(&format!("{key}_{k2}"));
                        assert_eq!(at(&header, row, &name), shown(v2), "{name}");
                    }
                }
                v => assert_eq!(at(&header, row, &column(key)), shown(v), "{key}"),
            }
        }
    }
}

/// Compares a KPI CSV with the JSON months: every published figure in its column.
fn same_kpis(csv: &Reply, months: &[Value]) {
    let (header, rows) = table(csv);
    assert_eq!(rows.len(), months.len());
    let lower = |s: &str| s.to_ascii_lowercase();
    for (row, m) in rows.iter().zip(months) {
        let cell = |c: &str| at(&header, row, c).to_string();
        for k in ["prison", "month", "referrals_total"] {
            assert_eq!(cell(k), shown(&m[k]), "{k}");
        }
        for (source, n) in m["referrals_by_source"].as_object().unwrap() {
            assert_eq!(cell(&format!("referrals_{}", lower(source))), shown(n));
        }
        let triage = &m["median_hours_referral_to_triage"];
        assert_eq!(
            cell("median_hours_referral_to_triage"),
            shown(&triage["value"])
        );
        assert_eq!(
            cell("referrals_triaged"),
            shown(&triage["referrals_triaged"])
        );
        let mut rates: Vec<(String, &Value)> = [
            "assessed_before_release",
            "released_with_plan",
            "contacted_within_72h_of_release",
            "met_at_gate",
            "gp_registered_within_28d_of_release",
        ]
        .into_iter()
        .map(|r| (r.to_string(), &m[r]))
        .collect();
        for (service, r) in m["signposting_conversion"].as_object().unwrap() {
            rates.push((format!("signposting_{}", lower(service)), r));
        }
        for (name, r) in rates {
            assert!(r.is_object(), "{name}");
            for part in ["numerator", "denominator", "rate", "suppressed", "pending"] {
                assert_eq!(
                    cell(&format!("{name}_{part}")),
                    shown(&r[part]),
                    "{name}_{part}"
                );
            }
        }
        for (reason, n) in m["closure_reasons"].as_object().unwrap() {
            assert_eq!(cell(&format!("closures_{}", lower(reason))), shown(n));
        }
    }
}

fn assert_csv(a: &Reply, filename: &str) {
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.header(header::CONTENT_TYPE), CSV_TYPE);
    assert_eq!(
        a.header(header::CONTENT_DISPOSITION),
        format!("attachment; filename=\"{filename}\"")
    );
    assert!(a.headers.contains_key("throughcare-request-id"));
    // RFC 4180 line ends.
    let text = std::str::from_utf8(&a.body).unwrap();
    assert!(text.ends_with("\r\n"));
    assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
}

fn assert_problem(a: &Reply, status: StatusCode) {
    assert_eq!(a.status, status, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header(header::CONTENT_TYPE), "application/problem+json");
    assert_eq!(a.json()["status"], json!(status.as_u16()));
}

#[tokio::test]
async fn kpis_as_csv_match_the_json_with_the_suppression_kept() {
    let w = population().await;
    let json = w
        .get("commissioner", &format!("/v1/kpis?{KPI_RANGE}"), None)
        .await;
    assert_eq!(json.status, StatusCode::OK);
    assert!(json
        .header(header::CONTENT_TYPE)
        .starts_with("application/json"));
    assert_eq!(json.header(header::VARY), "accept");
    let months = json.json()["months"].as_array().unwrap().clone();
    assert_eq!(months.len(), 2, "{months:?}");

    let by_accept = w
        .get(
            "commissioner",
            &format!("/v1/kpis?{KPI_RANGE}"),
            Some("text/csv"),
        )
        .await;
    let by_suffix = w
        .get("commissioner", &format!("/v1/kpis.csv?{KPI_RANGE}"), None)
        .await;
    for a in [&by_accept, &by_suffix] {
        assert_csv(a, "kpis-all-2026-11-01-2026-11-30.csv");
        same_kpis(a, &months);
    }
    assert_eq!(by_accept.body, by_suffix.body);
    assert_eq!(by_accept.header(header::VARY), "accept");
    assert!(!by_suffix.headers.contains_key(header::VARY));

    // The markers of the JSON are in the CSV: WCI's six referrals are five and one.
    let (header, rows) = table(&by_suffix);
    let wci = rows.iter().find(|r| r[0] == "WCI").unwrap();
    let cell = |c| at(&header, wci, c);
    assert_eq!(cell("month"), "2026-11");
    assert_eq!(cell("referrals_total"), "6");
    assert_eq!(cell("referrals_probation"), "<5");
    assert_eq!(cell("referrals_prison_healthcare"), "*");
    assert_eq!(cell("referrals_self"), "0");
    // One release: the rate is withheld (an empty cell), its denominator "<5".
    assert_eq!(cell("assessed_before_release_denominator"), "<5");
    assert_eq!(cell("assessed_before_release_rate"), "");
    assert_eq!(cell("assessed_before_release_suppressed"), "true");
    // No figure is in the CSV that the JSON did not publish.
    for row in &rows {
        for c in row {
            assert!(
                !matches!(c.as_str(), "1" | "2" | "3" | "4"),
                "{header:?} {row:?}"
            );
        }
    }

    // One prison asked for: the prison in the file name.
    let wci_only = w
        .get(
            "commissioner",
            &format!("/v1/kpis.csv?prison=WCI&{KPI_RANGE}"),
            None,
        )
        .await;
    assert_csv(&wci_only, "kpis-WCI-2026-11-01-2026-11-30.csv");
    assert_eq!(table(&wci_only).1.len(), 1);
}

#[tokio::test]
async fn releases_as_csv_match_the_json() {
    let w = population().await;
    let uri = format!("/v1/releases?{RELEASE_RANGE}");
    let json = w.get("auditor", &uri, Some("application/json")).await;
    assert_eq!(json.status, StatusCode::OK);
    let items = json.json()["releases"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{items:?}");
    let by_accept = w.get("auditor", &uri, Some("text/csv")).await;
    let by_suffix = w
        .get(
            "auditor",
            &format!("/v1/releases.csv?{RELEASE_RANGE}"),
            None,
        )
        .await;
    for a in [&by_accept, &by_suffix] {
        assert_csv(a, "releases-all-2026-11-01-2027-03-31.csv");
        same_rows(
            a,
            &items,
            &[
                ("identifiers_nomis", "nomis"),
                ("identifiers_nhs_number", "nhs_number"),
                ("identifiers_crn", "crn"),
            ],
        );
    }
    assert_eq!(by_accept.body, by_suffix.body);
    let (header, rows) = table(&by_suffix);
    let kinds: Vec<&str> = rows.iter().map(|r| at(&header, r, "kind")).collect();
    assert!(kinds.contains(&"RELEASED") && kinds.contains(&"EXPECTED"));
}

#[tokio::test]
async fn a_caseload_as_csv_matches_the_json_and_is_logged_on_the_canonical_route() {
    let w = population().await;
    let json = w.get("jo", "/v1/caseload/W-WCI-01", None).await;
    assert_eq!(json.status, StatusCode::OK);
    let cases = json.json()["cases"].as_array().unwrap().clone();
    assert_eq!(cases.len(), 6);
    let by_accept = w.get("jo", "/v1/caseload/W-WCI-01", Some("text/csv")).await;
    let by_suffix = w.get("jo", "/v1/caseload/W-WCI-01.csv", None).await;
    let today = w.state.ledger.now().date_naive();
    for a in [&by_accept, &by_suffix] {
        assert_csv(a, &format!("caseload-W-WCI-01-{today}.csv"));
        same_rows(
            a,
            &cases,
            &[
                ("identifiers_nomis", "nomis"),
                ("identifiers_nhs_number", "nhs_number"),
                ("identifiers_crn", "crn"),
            ],
        );
    }
    // The released person's open flags, joined with ';'.
    let (header, rows) = table(&by_suffix);
    let released = rows
        .iter()
        .find(|r| at(&header, r, "nomis") == "A1000AA")
        .unwrap();
    let flags = at(&header, released, "flags");
    assert!(flags.contains("NO_CONTACT_72H"), "{flags}");

    // Every read is in the access log under the canonical route, as a caseload read.
    let entries = w.access_by("jo").await;
    let reads: Vec<_> = entries
        .iter()
        .filter(|e| e.record.what == AccessWhat::ReadCaseload)
        .collect();
    assert_eq!(reads.len(), 3);
    for e in reads {
        assert_eq!(e.record.route, "GET /v1/caseload/{worker_id}");
        assert_eq!(e.record.status, 200);
    }

    // Someone else's caseload: refused by the guard (which saw the canonical path and
    // the worker id without the suffix), as problem+json.
    for accept in [None, Some("text/csv")] {
        let a = w.get("jo", "/v1/caseload/W-BNI-02.csv", accept).await;
        assert_problem(&a, StatusCode::FORBIDDEN);
    }
    let denied = w.access_by("jo").await;
    assert_eq!(
        denied
            .iter()
            .filter(|e| e.record.what == AccessWhat::Denied
                && e.record.route == "GET /v1/caseload/{worker_id}")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_manager_gets_only_its_prisons_in_csv_too() {
    let w = population().await;
    for who in ["wci.manager", "wci.commissioner"] {
        let json = w.get(who, &format!("/v1/kpis?{KPI_RANGE}"), None).await;
        let months = json.json()["months"].as_array().unwrap().clone();
        assert_eq!(months.len(), 1);
        let csv = w.get(who, &format!("/v1/kpis.csv?{KPI_RANGE}"), None).await;
        same_kpis(&csv, &months);
        let (_, rows) = table(&csv);
        assert!(rows.iter().all(|r| r[0] == "WCI"), "{rows:?}");
    }
    let json = w
        .get(
            "wci.manager",
            &format!("/v1/releases?{RELEASE_RANGE}"),
            None,
        )
        .await;
    let items = json.json()["releases"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    let csv = w
        .get(
            "wci.manager",
            &format!("/v1/releases?{RELEASE_RANGE}"),
            Some("text/csv"),
        )
        .await;
    let (header, rows) = table(&csv);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| at(&header, r, "prison") == "WCI"));
    // Another prison asked for by name: 403 problem+json, by suffix or by Accept.
    let a = w
        .get(
            "wci.manager",
            &format!("/v1/kpis.csv?prison=BNI&{KPI_RANGE}"),
            None,
        )
        .await;
    assert_problem(&a, StatusCode::FORBIDDEN);
    assert_eq!(
        a.json()["type"],
        "urn:throughcare:problem:prison-not-allowed"
    );
    let a = w
        .get("wci.manager", "/v1/releases?prison=BNI", Some("text/csv"))
        .await;
    assert_problem(&a, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn errors_stay_problem_json_and_other_accepts_get_json() {
    let w = world().await;
    // A role not allowed on the route.
    let a = w.get("commissioner", "/v1/releases.csv", None).await;
    assert_problem(&a, StatusCode::FORBIDDEN);
    let a = w.get("jo", "/v1/kpis", Some("text/csv")).await;
    assert_problem(&a, StatusCode::FORBIDDEN);
    // No credentials.
    let a = w.request(None, "GET", "/v1/kpis.csv", &[], None).await;
    assert_problem(&a, StatusCode::UNAUTHORIZED);
    // A bad query.
    let a = w
        .get("auditor", "/v1/kpis.csv?from=yesterday", Some("text/csv"))
        .await;
    assert_problem(&a, StatusCode::BAD_REQUEST);
    // No other route answers to .csv.
    let a = w
        .get("auditor", "/v1/people.csv?identifier=nomis:A1234BC", None)
        .await;
    assert_problem(&a, StatusCode::NOT_FOUND);
    let a = w.get("auditor", "/v1/caseload/a/b.csv", None).await;
    assert_problem(&a, StatusCode::NOT_FOUND);
    // Only GET (and HEAD) are routes; the method check sees the canonical path.
    let a = w
        .request(Some("auditor"), "POST", "/v1/kpis.csv", &[], None)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);

    // An Accept that is neither JSON nor CSV, a browser's, a wildcard, or CSV liked
    // less than JSON: the JSON (Accept is disregarded rather than answered with 406).
    for accept in [
        "application/xml",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "*/*",
        "text/csv;q=0.5, application/json",
        "text/csv;q=0",
    ] {
        let a = w.get("auditor", "/v1/kpis", Some(accept)).await;
        assert_eq!(a.status, StatusCode::OK, "{accept}");
        assert_eq!(
            a.header(header::CONTENT_TYPE),
            "application/json",
            "{accept}"
        );
        assert!(a.json()["months"].is_array());
    }
    // CSV preferred over JSON, or only CSV's family named: CSV, with a header row even
    // when there are no rows.
    for accept in ["text/csv, application/json;q=0.9", "text/*"] {
        let a = w.get("auditor", "/v1/releases", Some(accept)).await;
        assert_eq!(a.header(header::CONTENT_TYPE), CSV_TYPE, "{accept}");
        let (header, rows) = table(&a);
        assert_eq!(header[0], "date");
        assert!(rows.is_empty());
    }
    // Accept on a route without CSV changes nothing.
    let a = w.get("auditor", "/healthz", Some("text/csv")).await;
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    // HEAD gives the headers of the CSV.
    let a = w
        .request(Some("auditor"), "HEAD", "/v1/kpis.csv", &[], None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header(header::CONTENT_TYPE), CSV_TYPE);
}

#[tokio::test]
async fn the_openapi_document_offers_csv_on_the_three_routes() {
    let w = world().await;
    let a = w.get("auditor", "/v1/openapi.json", None).await;
    let doc = a.json();
    for path in ["/v1/kpis", "/v1/releases", "/v1/caseload/{worker_id}"] {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert!(content["application/json"].is_object(), "{path}");
        assert!(content["text/csv"].is_object(), "{path}");
    }
    let content = &doc["paths"]["/v1/people/{id}/journey"]["get"]["responses"]["200"]["content"];
    assert!(content["text/csv"].is_null());
}
