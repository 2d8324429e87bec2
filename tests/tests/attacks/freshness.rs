//! Attack 9: a staff write's scope is decided at the write path's own freshness. Issue 17
//! found a manager's `referral.accepted`, posted right after a partner's referral of a new
//! person, refused 422 ("no person known ... held at your prisons") in 27 of 200 tries,
//! and the allocation after it 409: the scope check read read models that had not folded
//! the referral yet. DESIGN.md: an append returns its position and the write path decides
//! on fresh state. Here referral, accept and allocate go back to back 200 times; every
//! one of the 600 must be 201.

use std::collections::BTreeMap;

use serde_json::json;

use crate::world::*;

const TRIES: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn referral_accept_allocate_back_to_back() {
    let w = World::seeded().await;
    let probation = w.as_(PROBATION);
    let manager = w.as_(WCI_MANAGER);
    let mut failures: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let started = std::time::Instant::now();
    for i in 0..TRIES {
        let referral_id = format!("REF-ATTACK-FRESH-{i}");
        let r = probation
            .submit(&cloudevent(
                Some(PROBATION_SOURCE),
                &new_id(),
                "referral.received",
                referral_data(
                    json!({"nomis": crate::support::nomis(82_000 + i)}),
                    &referral_id,
                    "WCI",
                    30,
                ),
            ))
            .await;
        let Some(person) = r.body["person_id"].as_str().filter(|_| r.status == 201) else {
            failures
                .entry("referral.received (partner)")
                .or_default()
                .push(format!("#{i}: {}", r.brief()));
            continue;
        };
        let accept = cloudevent(
            None,
            &new_id(),
            "referral.accepted",
            json!({"person": {"person_id": person}, "referral_id": referral_id}),
        );
        let r = manager.submit(&accept).await;
        if r.status != 201 {
            failures
                .entry("referral.accepted (manager)")
                .or_default()
                .push(format!("#{i}: {}", r.brief()));
        }
        let allocate = cloudevent(
            None,
            &new_id(),
            "case.allocated",
            json!({"person": {"person_id": person}, "worker_id": JO_WORKER,
                   "worker_role": "PEER_SUPPORT"}),
        );
        let r = manager.submit(&allocate).await;
        if r.status != 201 {
            failures
                .entry("case.allocated (manager)")
                .or_default()
                .push(format!("#{i}: {}", r.brief()));
        }
    }
    eprintln!(
        "freshness: {TRIES} referral/accept/allocate triples in {:?}",
        started.elapsed()
    );
    let problems: Vec<String> = failures
        .iter()
        .map(|(step, f)| {
            format!(
                "{step}: {} of {TRIES} not 201; first: {}",
                f.len(),
                f.iter().take(2).cloned().collect::<Vec<_>>().join(" | ")
            )
        })
        .collect();
    report("write scope freshness", &problems);
}
