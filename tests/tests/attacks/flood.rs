//! Attack 7: the access log cannot be flooded. DESIGN.md logs every refusal, and issue 17
//! found that 300 unauthenticated GETs wrote 300 durable DENIED entries against a person
//! (and so into that person's subject-access export, which had no cap): anyone who knows
//! an id can bury the real reads. Unauthenticated refusals are to be counted and sampled,
//! not written per request against the person.

use futures::StreamExt;

use crate::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_refusals_do_not_flood_a_persons_log() {
    let w = World::seeded().await;
    let mut problems = Vec::new();
    let before = match w.person_access(&w.a.id).await {
        Ok(l) => l.len(),
        Err(e) => {
            report("access-log flood", &[e]);
            return;
        }
    };
    let path = format!("/v1/people/{}/journey", w.a.id);
    let statuses: Vec<u16> = futures::stream::iter(0..300)
        .map(|_| {
            let c = w.anonymous();
            let path = path.clone();
            async move { c.get(&path).await.status }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let not_401 = statuses.iter().filter(|s| **s != 401).count();
    if not_401 > 0 {
        problems.push(format!(
            "{not_401} of 300 unauthenticated GET {path} were not 401"
        ));
    }
    let after = match w.person_access(&w.a.id).await {
        Ok(l) => l.len(),
        Err(e) => {
            report("access-log flood", &[e]);
            return;
        }
    };
    let added = after - before.min(after);
    eprintln!("flood: A's access log {before} -> {after} entries after 300 unauthenticated GETs");
    if added > 10 {
        problems.push(format!(
            "300 unauthenticated GET {path} added {added} entries to A's access log \
             ({before} -> {after}); expected at most 10 (count and sample them)"
        ));
    }
    report("access-log flood", &problems);
}
