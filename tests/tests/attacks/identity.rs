//! Attack 3: no identity oracle and no takeover of identifiers. DESIGN.md "Rules at the
//! edge": staff service events about an existing person name it by `person_id`, and any
//! identifier in them must already belong to that person; a staff referral may carry
//! identifiers nobody holds yet, but one that belongs to someone else is a 409 that does
//! not name them; no answer names another person's ledger id except to AUDITOR or
//! GOVERNANCE. Issue 17 found a worker's event naming its own person plus another's NOMIS
//! answered "already belongs to person 01M9..." (an oracle), and an unused NHS number
//! silently attached to the worker's person (a takeover of a later referral).

use serde_json::{json, Value};

use crate::support::auth::{Caller, Resp};
use crate::support::nhs_number;
use crate::world::*;

/// A staff event (no `source`: the server fills in `urn:throughcare:staff:<name>`).
fn staff(kind: &str, data: Value) -> Value {
    cloudevent(None, &new_id(), kind, data)
}

fn contact(person: Value) -> Value {
    staff(
        "contact.made",
        json!({"person": person, "channel": "PHONE", "outcome": "SPOKE"}),
    )
}

/// Posts `event` as `caller` and checks: the status is one of `allowed`, the answer names
/// none of `hidden`'s identifiers (ledger id, and NOMIS/NHS when `all_ids`), and nothing
/// was recorded. Returns the answer.
#[allow(clippy::too_many_arguments)]
async fn refused(
    w: &World,
    what: &str,
    caller: &Caller,
    event: &Value,
    allowed: &[u16],
    hidden: &[&Person],
    problems: &mut Vec<String>,
) -> Resp {
    let before = w.head().await;
    let r = caller.submit(event).await;
    let after = w.head().await;
    if !allowed.contains(&r.status) {
        problems.push(format!("{what}: expected {allowed:?}, got {}", r.brief()));
    }
    for p in hidden {
        if r.text.contains(&p.id) || r.text.contains(&p.id.to_lowercase()) {
            problems.push(format!(
                "{what}: the answer names the other person's ledger id {}: {}",
                p.id,
                r.brief()
            ));
        }
    }
    if after != before {
        problems.push(format!(
            "{what}: recorded {} event(s) (head {before} -> {after}): {}",
            after - before,
            r.brief()
        ));
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_identity_oracle_and_no_takeover() {
    let w = World::seeded().await;
    let jo = w.as_(JO);
    let wci = w.as_(WCI_MANAGER);
    let probation = w.as_(PROBATION);
    let mut problems = Vec::new();
    let (a, b) = (w.a.clone(), w.b.clone());

    // 1. A worker names its own person with another person's NOMIS or NHS number, names
    // the other person by identifier alone (staff name people by person_id), or by its
    // ledger id (known from elsewhere): refused, naming nobody.
    let cases: [(&str, Value, &[u16], &[&Person]); 4] = [
        (
            "WORKER (allocated A) posts contact.made with person_id A and B's NOMIS",
            json!({"person_id": a.id, "nomis": b.nomis}),
            &[409, 422],
            &[&b],
        ),
        (
            "WORKER (allocated A) posts contact.made with person_id A and B's NHS number",
            json!({"person_id": a.id, "nhs_number": b.nhs}),
            &[409, 422],
            &[&b],
        ),
        (
            "WORKER (allocated A) posts contact.made naming B by NOMIS alone",
            json!({"nomis": b.nomis}),
            &[403, 404, 409, 422],
            &[&b],
        ),
        (
            "WORKER (allocated A) posts contact.made about B by person_id",
            json!({"person_id": b.id}),
            &[403, 404, 409, 422],
            &[],
        ),
    ];
    for (what, person, statuses, hidden) in cases {
        refused(
            &w,
            what,
            &jo,
            &contact(person),
            statuses,
            hidden,
            &mut problems,
        )
        .await;
    }

    // 2. Takeover: an NHS number nobody holds yet, attached to the worker's own person.
    let unused = nhs_number(81_500);
    refused(
        &w,
        "WORKER (allocated A) posts contact.made with person_id A and an unused NHS number",
        &jo,
        &contact(json!({"person_id": a.id, "nhs_number": unused})),
        &[422],
        &[],
        &mut problems,
    )
    .await;
    // A partner's later referral with that number must not be filed under A.
    let r = probation
        .submit(&cloudevent(
            Some(PROBATION_SOURCE),
            &new_id(),
            "referral.received",
            referral_data(json!({"nhs_number": unused}), "REF-ATTACK-TAKE", "WCI", 30),
        ))
        .await;
    match (r.status, r.body["person_id"].as_str()) {
        (201, Some(p)) if p == a.id => problems.push(format!(
            "a partner's referral with the NHS number the worker posted was filed under A ({p}): \
             the worker took the number over and can now read the referral"
        )),
        (201, Some(_)) => {}
        _ => problems.push(format!(
            "a partner's referral with an NHS number nobody else holds: expected 201, got {}",
            r.brief()
        )),
    }

    // 3. A partner's referral joining two different people: a 409 that names neither.
    refused(
        &w,
        "PARTNER referral with A's NOMIS and B's NHS number",
        &probation,
        &cloudevent(
            Some(PROBATION_SOURCE),
            &new_id(),
            "referral.received",
            referral_data(
                json!({"nomis": a.nomis, "nhs_number": b.nhs}),
                "REF-ATTACK-TWO",
                "WCI",
                30,
            ),
        ),
        &[409],
        &[&a, &b],
        &mut problems,
    )
    .await;

    // 4. A manager's staff referral carrying another person's NOMIS (B is at BNI).
    refused(
        &w,
        "MANAGER (WCI) staff referral carrying B's NOMIS",
        &wci,
        &staff(
            "referral.received",
            referral_data(json!({"nomis": b.nomis}), "REF-ATTACK-MGR", "WCI", 30),
        ),
        &[409],
        &[&b],
        &mut problems,
    )
    .await;
    let r = refused(
        &w,
        "MANAGER (WCI) staff referral carrying a new NOMIS and B's NHS number",
        &wci,
        &staff(
            "referral.received",
            referral_data(
                json!({"nomis": crate::support::nomis(81_600), "nhs_number": b.nhs}),
                "REF-ATTACK-MGR2",
                "WCI",
                30,
            ),
        ),
        &[409],
        &[&b],
        &mut problems,
    )
    .await;
    // The conflict names the identifier that is someone's, not the new one.
    let held = format!("nhs:{}", b.nhs);
    if r.body["identifier"] != held.as_str() {
        problems.push(format!(
            "the conflict names {} instead of {held}: {}",
            r.body["identifier"],
            r.brief()
        ));
    }

    // 5. Identifier lookup of a person out of scope: 404, no id.
    for (caller, name) in [(&jo, JO), (&wci, WCI_MANAGER)] {
        for ident in [format!("nomis:{}", b.nomis), format!("nhs:{}", b.nhs)] {
            let path = format!("/v1/people?identifier={ident}");
            let r = caller.get(&path).await;
            if r.status != 404 || b.named_in(&r.text).is_some_and(|s| s == b.id) {
                problems.push(format!(
                    "GET {path} as {name} (B is out of scope): expected 404 without B's id, got {}",
                    r.brief()
                ));
            }
        }
    }

    // Control: the worker's own person's own identifiers are accepted, so the refusals
    // above are about the identifiers and not about the event.
    let r = jo
        .submit(&contact(json!({"person_id": a.id, "nomis": a.nomis})))
        .await;
    if r.status != 201 {
        problems.push(format!(
            "control: WORKER posts contact.made with person_id A and A's own NOMIS: expected 201, got {}",
            r.brief()
        ));
    }
    report("identity oracle and takeover", &problems);
}
