//! Attack 2: the access log tells the whole truth. DESIGN.md "The access log": every read
//! of person-level data and every refusal is appended before the response is sent. Issue
//! 17 found percent-encoded reads logged as ALLOWED with `person_id: null`, so missing from
//! the person's own `/v1/people/{id}/access` (and so from a subject-access export). Here the
//! subject matrix is run about person B alone, then B's access log is held to every answer:
//! each refusal of a spelling that decodes to B is a DENIED entry naming B (matched by the
//! `throughcare-request-id` header), no out-of-scope caller has an ALLOWED entry, and each
//! 200 read of B has an ALLOWED entry in B's log.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::matrix::*;
use crate::support::auth::access_by_request;
use crate::world::*;

/// The members of an entry that matter here.
fn brief(e: &Value) -> String {
    format!(
        "{{who: {}, what: {}, outcome: {}, person_id: {}, status: {}, route: {}}}",
        e["who"], e["what"], e["outcome"], e["person_id"], e["status"], e["route"]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_refusal_and_read_of_a_person_is_in_its_access_log() {
    let w = World::seeded().await;
    let (people, workers) = subjects(&w, true);
    // Worker subjects are lists, held to the log by `lists`; here only person routes.
    let observed: Vec<Obs> = run_gets(&w, &people, &workers, false)
        .await
        .into_iter()
        .filter(|o| !o.op.worker())
        .collect();
    let mut problems = Vec::new();
    let b_log = match w.person_access(&w.b.id).await {
        Ok(l) => l,
        Err(e) => {
            report("access log truth", &[e]);
            return;
        }
    };
    let b_by_request: BTreeMap<String, &Value> = b_log
        .iter()
        .filter_map(|e| Some((e["request_id"].as_str()?.to_string(), e)))
        .collect();
    let auditor = w.as_(AUDITOR);
    let all_by_request = access_by_request(&auditor).await.unwrap_or_else(|e| {
        problems.push(format!("reading the whole access log: {e}"));
        BTreeMap::new()
    });
    let mut refusals = 0;
    let mut reads = 0;
    for o in &observed {
        let Ok(r) = &o.resp else { continue };
        let Some(rid) = r.request_id() else {
            if o.who.name.is_some() {
                problems.push(format!(
                    "{}: the answer has no {} header",
                    o.what(),
                    crate::support::auth::REQUEST_ID
                ));
            }
            continue;
        };
        let entry = b_by_request.get(&rid).copied();
        let anywhere = all_by_request.get(&rid);
        let outcome = |e: &Value| e["outcome"].as_str().unwrap_or("").to_string();
        let elsewhere = || match anywhere {
            Some(e) => format!(" (the log has it as {})", brief(e)),
            None => " (nor anywhere in the log)".into(),
        };
        let path_subject = matches!(o.op.slot, Slot::Path(_));
        // An access decision against a caller who said who it is (a 400 for a malformed
        // request is not one; a page's redirect to the sign-in form is).
        let refused = [401, 403, 404].contains(&r.status)
            || ([302, 303].contains(&r.status)
                && r.header("location").is_some_and(|l| l.contains("/sign-in")));
        if refused && o.who.name.is_some() && o.spelling.decodes_to_person() {
            refusals += 1;
            match (path_subject, entry, anywhere) {
                (_, Some(e), _) if outcome(e) == "DENIED" => {}
                // A subject named by NOMIS: the refusal is logged, wherever it is filed.
                (false, None, Some(e)) if outcome(e) == "DENIED" => {}
                (_, Some(e), _) => problems.push(format!(
                    "{}: B's access log has the refusal as {}",
                    o.what(),
                    brief(e)
                )),
                (true, None, _) => problems.push(format!(
                    "{}: the refusal is not in B's access log{}",
                    o.what(),
                    elsewhere()
                )),
                (false, None, _) => problems.push(format!(
                    "{}: the refusal is not in the access log as DENIED{}",
                    o.what(),
                    elsewhere()
                )),
            }
        }
        // An entry names B when it is about B or is a list that showed B (`people`).
        let names_b = |e: &Value| {
            e["person_id"] == w.b.id.as_str()
                || e["people"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x == w.b.id.as_str()))
        };
        if o.expect == Expect::Out {
            if let Some(e) = [entry, anywhere]
                .into_iter()
                .flatten()
                .find(|e| outcome(e) == "ALLOWED" && names_b(e))
            {
                problems.push(format!(
                    "{}: an ALLOWED entry for a caller out of scope: {}",
                    o.what(),
                    brief(e)
                ));
            }
        }
        // A read of B: a 200 of a route naming B in its path, or any 200 that shows B's
        // ledger id or NHS number (a NOMIS search may answer 200 with nothing found).
        // Reads of the access log itself are the auditor's view of the log (DESIGN.md has
        // no `what` for them), so they are not held to this.
        let log_view = o.op.path.starts_with("/v1/access") || o.op.path.ends_with("/access");
        let read = r.status == 200
            && !log_view
            && (path_subject || r.text.contains(&w.b.id) || r.text.contains(&w.b.nhs));
        if read {
            reads += 1;
            match entry {
                Some(e) if outcome(e) == "ALLOWED" && names_b(e) => {}
                Some(e) => problems.push(format!(
                    "{}: a 200 read of B is in B's log as {}",
                    o.what(),
                    brief(e)
                )),
                None => problems.push(format!(
                    "{}: a 200 read of B is not in B's access log{}",
                    o.what(),
                    elsewhere()
                )),
            }
        }
    }
    // Whatever the spelling: nobody out of B's scope has an ALLOWED entry about B.
    for e in &b_log {
        let who = e["who"].as_str().unwrap_or("");
        if e["outcome"] == "ALLOWED" && [JO, WCI_MANAGER, COMMISSIONER, PROBATION].contains(&who) {
            problems.push(format!(
                "B's access log allows {who}, who is out of B's scope: {e}"
            ));
        }
    }
    eprintln!(
        "access truth: {} cells about B, {refusals} refusals to named callers, {reads} reads; B's log has {} entries",
        observed.len(),
        b_log.len()
    );
    report("access log truth", &problems);
}
