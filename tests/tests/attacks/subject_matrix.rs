//! Attack 1: no read outside scope, however the subject is spelt. DESIGN.md "Rules at the
//! edge": a route that names a subject is decided on the decoded value the handler will
//! read, an id that does not parse is refused by the guard, and a person outside the
//! caller's scope is answered exactly as an unknown person. Issue 17 found the guard
//! parsing the raw path (`%30...` read any journey), so every GET operation of the served
//! OpenAPI document that names a subject is tried with every spelling by every role, and
//! the page forms that write about a person are tried the same way (nothing may be
//! recorded).

use crate::matrix::*;
use crate::raw::{request, RawResp};
use crate::support::auth::enc;
use crate::world::*;

/// `text` with the subject's id (as given and lower case), the request target and the
/// request id replaced, so that two answers can be compared.
fn normalised(r: &RawResp, id: &str, target: &str) -> String {
    let mut t = shown(r).replace(target, "<TARGET>");
    if let Some(rid) = r.request_id() {
        t = t.replace(&rid, "<RID>");
    }
    t.replace(id, "<ID>").replace(&id.to_lowercase(), "<ID>")
}

/// What an answer shows: its body and its `Location` (a redirect can name a person too).
fn shown(r: &RawResp) -> String {
    format!(
        "{}\nLocation: {}",
        r.text,
        r.header("location").unwrap_or("")
    )
}

/// The problems of one GET cell, as one line.
fn judge(o: &Obs, problems: &mut Vec<String>) {
    let r = match &o.resp {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("{}: no answer: {e}", o.what()));
            return;
        }
    };
    let text = shown(r);
    let query_subject = matches!(o.op.slot, Slot::Query(_));
    let mut wrong: Vec<String> = Vec::new();
    match o.expect {
        Expect::In => {
            if o.spelling == Spelling::Canonical && ![200, 303].contains(&r.status) {
                wrong.push(
                    "an in-scope canonical read is refused, so this cell proves nothing".into(),
                );
            }
        }
        Expect::Out => {
            if r.status == 200 && (!o.op.page || !query_subject) {
                wrong.push("200 to a caller out of scope".into());
            }
            for p in &o.subject.shows {
                // A query subject's NOMIS is in the request: only the id and NHS number
                // are news to the caller there.
                let leaked: Vec<&str> = [&p.nomis, &p.nhs]
                    .into_iter()
                    .filter(|s| !(query_subject && **s == p.nomis))
                    .filter(|s| text.contains(s.as_str()))
                    .map(String::as_str)
                    .collect();
                if !leaked.is_empty() {
                    wrong.push(format!(
                        "names {} of {}",
                        leaked.join(", "),
                        o.subject.label
                    ));
                }
                if text.contains(&p.id) || text.contains(&p.id.to_lowercase()) {
                    // Echoing the id asked for, word for word as for a person nobody holds,
                    // tells the caller nothing it did not send.
                    let echo = match &o.unknown {
                        Some((uid, ut, Ok(u))) => {
                            r.status != 200
                                && u.status == r.status
                                && normalised(r, &p.id, &o.target) == normalised(u, uid, ut)
                        }
                        _ => false,
                    };
                    if !echo {
                        wrong.push(format!("names ledger id {} of {}", p.id, o.subject.label));
                    }
                }
            }
            if let Some((_, _, Ok(u))) = &o.unknown {
                if u.status != r.status {
                    wrong.push(format!(
                        "a person nobody holds gets {} (out of scope must look unknown)",
                        u.status
                    ));
                }
            }
        }
        Expect::Filtered => {
            for p in &o.subject.shows {
                if let Some(s) = p.named_in(&text) {
                    wrong.push(format!(
                        "a caseload outside the manager's prisons shows {s} of {}",
                        o.subject.label
                    ));
                }
            }
        }
    }
    if !wrong.is_empty() {
        problems.push(format!("{}: {}: {}", o.what(), wrong.join("; "), r.brief()));
    }
}

/// The person page of `who`'s own in-scope person, if it has one.
fn own_person(w: &World, who: &Who) -> Option<String> {
    match who.name {
        Some(JO) | Some(WCI_MANAGER) => Some(w.a.id.clone()),
        Some(BNI_MANAGER) => Some(w.b.id.clone()),
        _ => None,
    }
}

/// A fresh form of `who` for the POST operation `op_path` (`/people/{id}/events/{type}`):
/// its slug and fields, drawn on the caller's own person's page; or made-up fields (with a
/// wrong CSRF token) for a caller that has no such form.
async fn fresh_form(w: &World, who: &Who, op_path: &str) -> (bool, String, Vec<(String, String)>) {
    let fake = || {
        let slug = if op_path.contains("/manage/") {
            "case.allocated"
        } else {
            "contact.made"
        };
        (
            false,
            slug.to_string(),
            vec![
                ("event_id".to_string(), new_id()),
                ("csrf".to_string(), "0".repeat(64)),
                ("channel".to_string(), "PHONE".to_string()),
                ("worker_id".to_string(), JO_WORKER.to_string()),
                ("worker_role".to_string(), "PEER_SUPPORT".to_string()),
            ],
        )
    };
    let (Some(name), Some(own)) = (who.name, own_person(w, who)) else {
        return fake();
    };
    let page = w.as_(name).get(&format!("/people/{own}")).await;
    let prefix = op_path
        .replace("{id}", &own)
        .split("{type}")
        .next()
        .unwrap_or_default()
        .to_string();
    for (action, mut fields) in forms(&page.text) {
        if let Some(slug) = action.strip_prefix(&prefix) {
            for (k, v) in fields.iter_mut() {
                match k.as_str() {
                    "worker_id" => *v = JO_WORKER.into(),
                    "worker_role" => *v = "PEER_SUPPORT".into(),
                    "channel" => *v = "PHONE".into(),
                    _ => {}
                }
            }
            return (true, slug.to_string(), fields);
        }
    }
    fake()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_read_or_write_outside_scope_in_any_spelling() {
    let started = std::time::Instant::now();
    let w = World::seeded().await;
    let seeded = started.elapsed();
    let (people, workers) = subjects(&w, false);
    let observed = run_gets(&w, &people, &workers, true).await;
    let got = started.elapsed();
    let mut problems = Vec::new();
    for o in &observed {
        judge(o, &mut problems);
    }
    let gets = observed.len();

    // Writes through the page forms: every POST operation that names `{id}`.
    let doc = request(w.url(), "GET", "/v1/openapi.json", &[], None)
        .await
        .expect("openapi");
    let doc: serde_json::Value = serde_json::from_str(&doc.text).unwrap();
    let post_ops: Vec<(String, Vec<String>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, item)| p.contains("{id}") && item.get("post").is_some())
        .map(|(p, item)| {
            let roles = item["post"]["x-roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (p.clone(), roles)
        })
        .collect();
    assert!(
        !post_ops.is_empty(),
        "the OpenAPI document lists no POST route naming {{id}}"
    );
    let mut posts = 0;
    let mut real_forms = 0;
    for (op_path, roles) in &post_ops {
        let op = Op {
            path: op_path.clone(),
            slot: Slot::Path("id".into()),
            roles: roles.clone(),
            page: true,
            purpose: None,
        };
        for subject in &people {
            for who in callers() {
                if expectation(&w, &op, &who, subject) != Expect::Out {
                    continue;
                }
                for &spelling in Spelling::ALL {
                    if spelling == Spelling::DupParamTargetFirst {
                        continue;
                    }
                    let (real, slug, fields) = fresh_form(&w, &who, op_path).await;
                    real_forms += usize::from(real);
                    let own = own_person(&w, &who).unwrap_or_else(|| w.a.id.clone());
                    let other = if own == subject.value {
                        w.b.id.clone()
                    } else {
                        own
                    };
                    let seg = spell(&subject.value, spelling, &other, "");
                    let mut target = op_path.replace("{id}", &seg).replace("{type}", &slug);
                    if spelling == Spelling::TrailingSlash {
                        target.push('/');
                    }
                    if spelling == Spelling::DupParam {
                        target += "?purpose=AUDIT&purpose=DIRECT_CARE";
                    }
                    let body = fields
                        .iter()
                        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                        .collect::<Vec<_>>()
                        .join("&");
                    let auth = authorization(&w, &who);
                    let headers: Vec<(&str, &str)> = auth
                        .as_deref()
                        .map(|a| vec![("Authorization", a)])
                        .unwrap_or_default();
                    let before = w.head().await;
                    let r = request(
                        w.url(),
                        "POST",
                        &target,
                        &headers,
                        Some(("application/x-www-form-urlencoded", body.as_bytes())),
                    )
                    .await;
                    let after = w.head().await;
                    posts += 1;
                    let status = match &r {
                        Ok(r) => r.brief(),
                        Err(e) => format!("error {e}"),
                    };
                    if after != before {
                        problems.push(format!(
                            "POST {target} [{} of {}, {op_path}] as {}: recorded {} event(s) about a person out of scope: {status}",
                            spelling.label(),
                            subject.label,
                            who.label(),
                            after - before
                        ));
                    }
                    if let Ok(r) = &r {
                        for p in &subject.shows {
                            if let Some(s) = [&p.nomis, &p.nhs]
                                .into_iter()
                                .find(|s| r.text.contains(s.as_str()))
                            {
                                problems.push(format!(
                                    "POST {target} [{} of {}] as {}: the answer names {s}: {status}",
                                    spelling.label(),
                                    subject.label,
                                    who.label()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "subject matrix: {gets} GET cells over {} operations, {posts} form POSTs \
         ({real_forms} with a form and CSRF token drawn for the caller's own person); \
         seeded {seeded:?}, GETs done {got:?}, all done {:?}",
        subject_ops(w.url()).await.len(),
        started.elapsed()
    );
    report("subject spelling matrix", &problems);
}
