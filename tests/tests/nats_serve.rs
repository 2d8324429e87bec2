//! `serve --nats` end to end: two serve processes on one JetStream hammering the same
//! people over HTTP (no lost update, no duplicate person, chains verify, both read models
//! equal), and partner submissions by NATS request-reply with a real client.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::{event, minutes_ago as at, nhs_number, nomis, Client, Server};
use throughcare_nats::submit_request;
use throughcare_nats::testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_serve_processes_on_one_nats_lose_nothing_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let a = Server::start_with(&dir.path().join("a"), &["--nats", &nats.url()]);
    let b = Server::start_with(&dir.path().join("b"), &["--nats", &nats.url()]);
    let (ca, cb) = (Client::new(&a.url), Client::new(&b.url));
    let people: Vec<Value> = (0..6)
        .map(|i| json!({"nomis": nomis(500 + i), "nhs_number": nhs_number(500 + i)}))
        .collect();

    // Both processes receive the same referral for each new person at the same time: one
    // person each, one referral recorded, the other answer a duplicate.
    let mut tasks = Vec::new();
    for (i, who) in people.iter().enumerate() {
        let referral = event(
            "referral.received",
            &format!("ref-{i}"),
            &at(60),
            json!({"person": who,
            "referral_id": format!("R-{i}"), "referrer": {"kind": "LIAISON_DIVERSION"}, "prison": "GNI", "vulnerabilities": ["ADHD"]}),
        );
        for c in [ca.clone(), cb.clone()] {
            let referral = referral.clone();
            tasks.push(tokio::spawn(async move { c.post(&referral).await }));
        }
    }
    let mut persons = BTreeMap::new();
    for (n, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert!(r.status == 201 || r.status == 200, "{r:?}");
        let person = r.body["person_id"].as_str().unwrap().to_string();
        let previous = persons.insert(n / 2, person.clone());
        if let Some(p) = previous {
            assert_eq!(p, person, "two persons for one NOMIS");
        }
    }
    for (i, who) in people.iter().enumerate() {
        let accept = event(
            "referral.accepted",
            &format!("acc-{i}"),
            &at(59),
            json!({"person": who, "referral_id": format!("R-{i}")}),
        );
        assert_eq!(ca.post(&accept).await.status, 201);
    }

    // Many writers on both processes append to the same people at once, single events
    // and batches.
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..12u64 {
        let c = if w % 2 == 0 { ca.clone() } else { cb.clone() };
        let (people, acks) = (people.clone(), acks.clone());
        writers.push(tokio::spawn(async move {
            for k in 0..15u64 {
                let contact = |n: u64, id: String| {
                    let who = &people[((w + n) % people.len() as u64) as usize];
                    let e = event(
                        "contact.attempted",
                        &id,
                        &at(30),
                        json!({"person": who, "channel": "SMS", "outcome": "MESSAGE_LEFT"}),
                    );
                    (id, e)
                };
                // Every third append is an atomic batch about two people.
                let sent = if k % 3 == 2 {
                    vec![
                        contact(k, format!("w{w}-{k}")),
                        contact(k + 1, format!("w{w}-{k}b")),
                    ]
                } else {
                    vec![contact(k, format!("w{w}-{k}"))]
                };
                let r = if sent.len() == 1 {
                    c.post(&sent[0].1).await
                } else {
                    c.post(&Value::Array(sent.iter().map(|(_, e)| e.clone()).collect()))
                        .await
                };
                assert_eq!(r.status, 201, "{r:?}");
                let receipts = match r.body.get("items") {
                    Some(items) => items.as_array().unwrap().clone(),
                    None => vec![r.body.clone()],
                };
                assert_eq!(receipts.len(), sent.len(), "{r:?}");
                for ((id, _), receipt) in sent.iter().zip(&receipts) {
                    acks.lock().unwrap().push((
                        receipt["person_id"].as_str().unwrap().to_string(),
                        id.clone(),
                        receipt["position"].as_u64().unwrap(),
                    ));
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert_eq!(acks.len(), 12 * (15 + 5));
    let head = acks.iter().map(|a| a.2).max().unwrap();
    let positions: HashSet<u64> = acks.iter().map(|a| a.2).collect();
    assert_eq!(
        positions.len(),
        acks.len(),
        "two acknowledgements share a position"
    );

    for person in persons.values() {
        let mut journeys = Vec::new();
        for c in [&ca, &cb] {
            let events = c.get(&format!("/v1/people/{person}/events")).await.body;
            let events = events["events"].as_array().unwrap().clone();
            let ids: Vec<&str> = events
                .iter()
                .map(|e| e["event"]["id"].as_str().unwrap())
                .collect();
            let unique: HashSet<&&str> = ids.iter().collect();
            assert_eq!(
                unique.len(),
                ids.len(),
                "an event recorded twice for {person}"
            );
            // 1 referral + 1 acceptance + every acknowledged contact of this person.
            let acked = acks.iter().filter(|a| &a.0 == person).count();
            assert_eq!(events.len(), 2 + acked, "lost update for {person}");
            for a in acks.iter().filter(|a| &a.0 == person) {
                assert!(
                    events
                        .iter()
                        .any(|e| e["position"] == a.2 && e["event"]["id"] == a.1.as_str()),
                    "{a:?} missing"
                );
            }
            assert_eq!(
                c.get(&format!("/v1/people/{person}/verify")).await.body["ok"],
                true
            );
            let mut j = c
                .get(&format!("/v1/people/{person}/journey?min_position={head}"))
                .await;
            assert_eq!(j.status, 200, "{j:?}");
            j.body.as_object_mut().unwrap().remove("as_of");
            journeys.push(j.body);
        }
        assert_eq!(
            journeys[0], journeys[1],
            "the two read models differ for {person}"
        );
    }
    for (i, who) in people.iter().enumerate() {
        let id = format!("nomis:{}", who["nomis"].as_str().unwrap());
        let on_a = ca.get(&format!("/v1/people?identifier={id}")).await.body;
        let on_b = cb.get(&format!("/v1/people?identifier={id}")).await.body;
        assert_eq!(on_a["person_id"], persons[&i].as_str());
        assert_eq!(on_b["person_id"], persons[&i].as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_submit_by_nats_request_reply() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(&dir.path().join("nats"));
    let server = Server::start_with(&dir.path().join("data"), &["--nats", &nats.url()]);
    let http = Client::new(&server.url);
    let person = json!({"nomis": "N1234AB"});
    let referral = support::referral("nats-1", &at(10), person, "R-N", "PROBATION", "AYI");
    let body = serde_json::to_vec(&referral).unwrap();
    let send = |ct: &'static str, body: Vec<u8>| {
        let url = nats.url();
        async move {
            // The submit service subscribes just after the HTTP listener is up.
            for _ in 0..50 {
                match submit_request(&url, ct, body.clone(), None, Duration::from_secs(5)).await {
                    Ok((status, reply)) => {
                        return (status, serde_json::from_slice::<Value>(&reply).unwrap())
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            panic!("no reply on throughcare.submit");
        }
    };
    let (status, reply) = send("application/cloudevents+json", body.clone()).await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["position"], 1);
    assert_eq!(reply["duplicate"], false);
    let person = reply["person_id"].as_str().unwrap().to_string();

    // The same reply body as HTTP: a retry is a duplicate, over either transport.
    let (status, again) = send("application/cloudevents+json", body.clone()).await;
    assert_eq!(
        (status, &again["duplicate"], &again["position"]),
        (200, &json!(true), &json!(1))
    );
    let over_http = http.post(&referral).await;
    assert_eq!(over_http.status, 200);
    assert_eq!(over_http.body, again);

    // Bad input gets the same problem details, and nothing is recorded.
    let mut bad = referral.clone();
    bad["id"] = json!("nats-2");
    bad["data"]["prison"] = json!("XXX");
    let (status, problem) = send(
        "application/cloudevents+json",
        serde_json::to_vec(&bad).unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        problem["type"],
        "urn:throughcare:problem:invalid-submission"
    );
    assert_eq!(problem["errors"][0]["pointer"], "/data/prison");
    assert_eq!(problem, http.post(&bad).await.body);
    let (status, _) = send("text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 415);

    let j = http
        .get(&format!("/v1/people/{person}/journey?min_position=1"))
        .await;
    assert_eq!(j.body["status"], "REFERRED");
    assert_eq!(j.body["timeline"].as_array().unwrap().len(), 1);
}
