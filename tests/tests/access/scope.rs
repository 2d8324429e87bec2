//! Person scope: a person outside the caller's scope is answered exactly as a person who
//! does not exist (404, same body), a WORKER reads the people allocated to it, a MANAGER
//! the people referred to or held at its prisons; break glass with
//! `purpose=EMERGENCY&reason=` opens it (logged `review: true`); caseload, releases and
//! KPIs are limited to the caller's worker id or prisons.

use serde_json::Value;

use crate::support::auth::{enc, expect_status, Caller, Resp};
use crate::{
    report, World, AUDITOR, BNI_MANAGER, COMMISSIONER, JO, JO_WORKER_ID, SAM, SAM_WORKER_ID,
    WCI_MANAGER,
};

/// The body with `ids` replaced and request-specific members removed.
fn normalized(r: &Resp, ids: &[&str]) -> String {
    let mut body = r.body.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("instance");
        m.remove("request_id");
    }
    let mut text = match &body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for id in ids {
        if !id.is_empty() {
            text = text.replace(id, "<ID>");
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_scope_is_unknown_and_break_glass_is_logged() {
    let w = World::seeded(&[]).await;
    let url = w.url();
    let mut problems = Vec::new();
    let nobody = ulid::Ulid::new().to_string();
    let (a, b, c, e) = (&w.a.id, &w.b.id, &w.c.id, &w.e.id);

    // Who may read whom (journey): WORKER by allocation, MANAGER by referral or current prison.
    let cases: &[(&str, &str, &String, u16)] = &[
        (JO, "A (allocated to it)", a, 200),
        (JO, "B (allocated to sam)", b, 404),
        (JO, "E (at WCI, allocated to sam)", e, 404),
        (JO, "C (unallocated)", c, 404),
        (SAM, "B", b, 200),
        (SAM, "E", e, 200),
        (SAM, "A", a, 404),
        (WCI_MANAGER, "A (referred at WCI)", a, 200),
        (WCI_MANAGER, "E (referred at WCI)", e, 200),
        (WCI_MANAGER, "C (referred at BNI, now held at WCI)", c, 200),
        (WCI_MANAGER, "B (BNI only)", b, 404),
        (BNI_MANAGER, "C (referred at BNI)", c, 200),
        (BNI_MANAGER, "B", b, 200),
        (BNI_MANAGER, "A (WCI only)", a, 404),
        (AUDITOR, "B", b, 200),
    ];
    for (who, what, id, want) in cases {
        let r = w.as_(who).get(&format!("/v1/people/{id}/journey")).await;
        if r.status != *want {
            problems.push(format!(
                "{who} reads {what}: expected {want}, got {}",
                r.brief()
            ));
        }
    }

    // Out of scope answers exactly as unknown, on every person route.
    for (who, hidden) in [(JO, b), (WCI_MANAGER, b), (BNI_MANAGER, a)] {
        let caller = w.as_(who);
        for route in ["journey", "events", "verify"] {
            let h = caller.get(&format!("/v1/people/{hidden}/{route}")).await;
            let u = caller.get(&format!("/v1/people/{nobody}/{route}")).await;
            if h.status != 404 || u.status != 404 {
                problems.push(format!(
                    "{who} {route}: out of scope {} / unknown {} (both should be 404)",
                    h.status, u.status
                ));
            }
            if normalized(&h, &[hidden]) != normalized(&u, &[&nobody])
                || h.content_type() != u.content_type()
            {
                problems.push(format!(
                    "{who} {route}: the out-of-scope 404 differs from the unknown-person 404:\n    out of scope: {}\n    unknown:      {}",
                    h.brief(),
                    u.brief()
                ));
            }
        }
        // The identity lookup too.
        let hidden_nomis = if hidden == b { &w.b.nomis } else { &w.a.nomis };
        let unknown_nomis = crate::support::nomis(9999);
        let h = caller
            .get(&format!("/v1/people?identifier=nomis:{hidden_nomis}"))
            .await;
        let u = caller
            .get(&format!("/v1/people?identifier=nomis:{unknown_nomis}"))
            .await;
        if h.status != 404
            || h.status != u.status
            || normalized(&h, &[hidden_nomis]) != normalized(&u, &[&unknown_nomis])
        {
            problems.push(format!(
                "{who} identifier lookup: out of scope and unknown differ:\n    out of scope: {}\n    unknown:      {}",
                h.brief(),
                u.brief()
            ));
        }
        // The person page.
        let cookie = Caller::sign_in(&url, &w.auth.token(who)).await.1;
        if cookie.is_none() {
            problems.push(format!("{who} could not sign in to the web pages"));
        } else {
            let browser = Caller::browser(&url, cookie);
            let h = browser.get(&format!("/people/{hidden}")).await;
            let u = browser.get(&format!("/people/{nobody}")).await;
            if h.status != 404
                || u.status != 404
                || normalized(&h, &[hidden]) != normalized(&u, &[&nobody])
            {
                problems.push(format!(
                    "{who} person page: out of scope {} vs unknown {} (both 404, same page)",
                    h.brief(),
                    u.brief()
                ));
            }
        }
    }

    // Break glass.
    let reason = "Ambulance crew on scene; needs care plan";
    let jo = w.as_(JO);
    let glass = jo
        .get(&format!(
            "/v1/people/{b}/journey?purpose=EMERGENCY&reason={}",
            enc(reason)
        ))
        .await;
    if glass.status != 200 || glass.body["person_id"] != b.as_str() {
        problems.push(format!(
            "worker break glass: expected 200 with B's journey, got {}",
            glass.brief()
        ));
    }
    let no_reason = jo
        .get(&format!("/v1/people/{b}/journey?purpose=EMERGENCY"))
        .await;
    expect_status(&no_reason, 400, "EMERGENCY without a reason", &mut problems);
    let empty_reason = jo
        .get(&format!("/v1/people/{b}/journey?purpose=EMERGENCY&reason="))
        .await;
    expect_status(
        &empty_reason,
        400,
        "EMERGENCY with an empty reason",
        &mut problems,
    );
    let bad_purpose = jo
        .get(&format!("/v1/people/{a}/journey?purpose=CURIOSITY"))
        .await;
    expect_status(&bad_purpose, 400, "an unknown purpose", &mut problems);
    let manager_glass = w
        .as_(WCI_MANAGER)
        .get(&format!(
            "/v1/people/{b}/events?purpose=EMERGENCY&reason={}",
            enc(reason)
        ))
        .await;
    expect_status(&manager_glass, 200, "manager break glass", &mut problems);
    // Break glass does not open a person that does not exist.
    let ghost = jo
        .get(&format!(
            "/v1/people/{nobody}/journey?purpose=EMERGENCY&reason={}",
            enc(reason)
        ))
        .await;
    expect_status(
        &ghost,
        404,
        "break glass on an unknown person",
        &mut problems,
    );
    let auditor = w.as_(AUDITOR);
    let entries = crate::support::auth::access_entries(&auditor, "review=true").await;
    match entries {
        Err(e) => problems.push(e),
        Ok(entries) => {
            for (what, r, who) in [
                ("worker", &glass, JO),
                ("manager", &manager_glass, WCI_MANAGER),
            ] {
                let id = r.request_id().unwrap_or_default();
                match entries.iter().find(|e| e["request_id"] == id.as_str()) {
                    None => problems.push(format!(
                        "{what} break glass is not among review=true entries"
                    )),
                    Some(e) => {
                        if e["who"] != who
                            || e["purpose"] != "EMERGENCY"
                            || e["review"] != true
                            || e["reason"] != reason
                            || e["outcome"] != "ALLOWED"
                            || e["person_id"] != b.as_str()
                        {
                            problems.push(format!("{what} break-glass entry: {e}"));
                        }
                    }
                }
            }
            if let Some(e) = entries.iter().find(|e| e["review"] != true) {
                problems.push(format!("review=true returned {e}"));
            }
        }
    }

    // Caseload: a WORKER only its own; a MANAGER that worker's cases at its prisons.
    let r = jo.get(&format!("/v1/caseload/{SAM_WORKER_ID}")).await;
    expect_status(
        &r,
        403,
        "worker reads another worker's caseload",
        &mut problems,
    );
    let own = jo.get(&format!("/v1/caseload/{JO_WORKER_ID}")).await;
    let own_ids = person_ids(&own.body["cases"]);
    if own.status != 200 || own_ids != vec![a.clone()] {
        problems.push(format!(
            "worker's own caseload: expected [A], got {}",
            own.brief()
        ));
    }
    let m = w
        .as_(WCI_MANAGER)
        .get(&format!("/v1/caseload/{SAM_WORKER_ID}"))
        .await;
    let m_ids = person_ids(&m.body["cases"]);
    if m.status != 200 || m_ids != vec![e.clone()] {
        problems.push(format!(
            "WCI manager reads W-BNI-07's caseload: expected only E (at WCI), got {}",
            m.brief()
        ));
    }
    let full = auditor.get(&format!("/v1/caseload/{SAM_WORKER_ID}")).await;
    let mut full_ids = person_ids(&full.body["cases"]);
    full_ids.sort();
    let mut want = vec![b.clone(), e.clone()];
    want.sort();
    if full.status != 200 || full_ids != want {
        problems.push(format!(
            "auditor reads W-BNI-07's caseload: expected B and E, got {}",
            full.brief()
        ));
    }

    // Releases: a MANAGER only its prisons.
    let manager = w.as_(WCI_MANAGER);
    let r = manager.get("/v1/releases?prison=BNI").await;
    expect_status(&r, 403, "WCI manager releases?prison=BNI", &mut problems);
    let r = manager.get("/v1/releases?prison=WCI").await;
    expect_status(&r, 200, "WCI manager releases?prison=WCI", &mut problems);
    let mine = manager.get("/v1/releases").await;
    let rows = releases_rows(&mine.body);
    let mine_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r["person_id"].as_str().map(str::to_string))
        .collect();
    if mine.status != 200
        || rows.iter().any(|r| r["prison"] != "WCI")
        || mine_ids.contains(b)
        || !mine_ids.contains(a)
    {
        problems.push(format!(
            "WCI manager releases without prison: expected WCI rows only (A, not B), got {}",
            mine.brief()
        ));
    }
    let everyone = auditor.get("/v1/releases").await;
    let all_ids: Vec<String> = releases_rows(&everyone.body)
        .iter()
        .filter_map(|r| r["person_id"].as_str().map(str::to_string))
        .collect();
    if !all_ids.contains(b) || !all_ids.contains(a) {
        problems.push(format!(
            "auditor releases: expected A and B, got {}",
            everyone.brief()
        ));
    }

    // KPIs: a MANAGER only its prisons; without `prison` the answer is its prisons'.
    let r = manager.get("/v1/kpis?prison=BNI").await;
    expect_status(&r, 403, "WCI manager kpis?prison=BNI", &mut problems);
    let mine = manager.get("/v1/kpis").await;
    let wci = auditor.get("/v1/kpis?prison=WCI").await;
    let all = auditor.get("/v1/kpis").await;
    let months = |r: &Resp| -> Vec<Value> {
        r.body["months"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let mut m = m.clone();
                m.as_object_mut().map(|o| o.remove("prison"));
                m
            })
            .collect()
    };
    if mine.status != 200 || months(&mine) != months(&wci) {
        problems.push(format!(
            "WCI manager kpis without prison should equal kpis?prison=WCI:\n    manager: {}\n    WCI:     {}\n    all:     {}",
            mine.brief(),
            wci.brief(),
            all.brief()
        ));
    }
    if months(&wci) == months(&all) {
        problems
            .push("test bug: the seed does not make WCI's KPIs differ from all prisons'".into());
    }
    let commissioner = w.as_(COMMISSIONER);
    let r = commissioner.get("/v1/kpis").await;
    if r.status != 200 || months(&r) != months(&all) {
        problems.push(format!(
            "commissioner with no prisons listed: expected all prisons' KPIs, got {}",
            r.brief()
        ));
    }
    for path in [
        "/v1/releases".to_string(),
        format!("/v1/caseload/{JO_WORKER_ID}"),
        format!("/v1/people/{a}/journey"),
    ] {
        let r = commissioner.get(&path).await;
        expect_status(&r, 403, &format!("commissioner {path}"), &mut problems);
    }

    // Scope follows the current allocation: A reallocated to W-BNI-07 leaves jo's scope.
    let mut realloc = crate::support::event(
        "case.allocated",
        "scope-realloc-A",
        &crate::at(1),
        serde_json::json!({"person": {"nomis": w.a.nomis}, "worker_id": SAM_WORKER_ID, "worker_role": "NAVIGATOR"}),
    );
    realloc["source"] = serde_json::json!(crate::SEED_SOURCE);
    let r = w.as_("seeder").submit(&realloc).await;
    if r.status != 201 {
        problems.push(format!("reallocating A: {}", r.brief()));
    } else {
        crate::settle(&url).await;
        let r = jo.get(&format!("/v1/people/{a}/journey")).await;
        expect_status(
            &r,
            404,
            "jo reads A after A was reallocated to sam",
            &mut problems,
        );
        let r = w.as_(SAM).get(&format!("/v1/people/{a}/journey")).await;
        expect_status(&r, 200, "sam reads A after the reallocation", &mut problems);
    }
    report("person scope and break glass", &problems);
}

fn person_ids(cases: &Value) -> Vec<String> {
    cases
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["person_id"].as_str().map(str::to_string))
        .collect()
}

/// The rows of a releases answer (`releases`, `rows` or `days[].releases`).
fn releases_rows(body: &Value) -> Vec<Value> {
    for key in ["releases", "rows", "entries"] {
        if let Some(a) = body[key].as_array() {
            return a.clone();
        }
    }
    body["days"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["releases"].as_array().cloned().unwrap_or_default())
        .collect()
}
