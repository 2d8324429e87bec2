//! Attack 8: lists of people are logged. DESIGN.md "The access log": READ_LIST (calendars,
//! queues, searches: `people` lists who was shown), READ_CASELOAD. Issue 17 found the
//! release calendar (`/v1/releases`, `/releases`, `/`), the triage queue (`/cases`) and a
//! worker's home caseload read with no access-log entry at all. Each list request must
//! leave exactly one entry whose `request_id` is the answer's `throughcare-request-id`,
//! and whose `people` names everyone the answer showed.

use serde_json::Value;

use crate::support::auth::access_entries;
use crate::support::date_in_days;
use crate::world::*;

/// Every string inside `v` (the `people` member may list ids or objects holding them).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_list_of_people_is_logged_naming_who_was_shown() {
    let w = World::seeded().await;
    let mut problems = Vec::new();
    let releases = format!(
        "/v1/releases?from={}&to={}",
        date_in_days(-7),
        date_in_days(60)
    );
    let caseload = format!("/v1/caseload/{JO_WORKER}");
    let asks: Vec<(&str, String)> = vec![
        (WCI_MANAGER, releases),
        (WCI_MANAGER, "/releases".into()),
        (WCI_MANAGER, "/cases".into()),
        (WCI_MANAGER, "/".into()),
        (JO, "/caseload".into()),
        (JO, caseload),
        (JO, "/".into()),
    ];
    let people = [("A", &w.a), ("B", &w.b), ("C", &w.c)];
    let mut answers = Vec::new();
    for (who, path) in &asks {
        let r = w.as_(who).get(path).await;
        if r.status != 200 {
            problems.push(format!(
                "GET {path} as {who}: expected 200, got {}",
                r.brief()
            ));
            continue;
        }
        let shown: Vec<(&str, &Person)> = people
            .iter()
            .filter(|(_, p)| p.named_in(&r.text).is_some())
            .map(|(l, p)| (*l, *p))
            .collect();
        if shown.is_empty() {
            problems.push(format!(
                "GET {path} as {who} showed none of the seeded people, so its entry's `people` \
                 goes unchecked: {}",
                r.brief()
            ));
        }
        answers.push((*who, path.clone(), r.request_id(), shown));
    }
    let auditor = w.as_(AUDITOR);
    for (who, path, rid, shown) in answers {
        let Some(rid) = rid else {
            problems.push(format!("GET {path} as {who}: no request id header"));
            continue;
        };
        let entries = match access_entries(&auditor, &format!("who={who}")).await {
            Ok(e) => e,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["request_id"].as_str() == Some(rid.as_str()))
            .collect();
        match mine.as_slice() {
            [] => problems.push(format!(
                "GET {path} as {who}: no access-log entry with its request id {rid} (a list of \
                 people read unlogged; it showed {})",
                shown.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", ")
            )),
            [e] => {
                let what = e["what"].as_str().unwrap_or("");
                if !["READ_LIST", "READ_CASELOAD"].contains(&what) {
                    problems.push(format!(
                        "GET {path} as {who}: its entry is {what:?}, not READ_LIST or READ_CASELOAD: {e}"
                    ));
                }
                let mut named = Vec::new();
                strings(&e["people"], &mut named);
                let missing: Vec<&str> = shown
                    .iter()
                    .filter(|(_, p)| !named.iter().any(|n| n.contains(&p.id)))
                    .map(|(l, _)| *l)
                    .collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "GET {path} as {who}: the answer showed {} but its entry's `people` is {} \
                         (entry {} {})",
                        missing.join(", "),
                        e["people"],
                        e["what"],
                        e["outcome"]
                    ));
                }
            }
            many => problems.push(format!(
                "GET {path} as {who}: {} entries with request id {rid}, expected one",
                many.len()
            )),
        }
    }
    report("lists are logged", &problems);
}
