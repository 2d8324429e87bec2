//! `?as_of=` and `?at_position=` driven in-process (`app(state).oneshot(..)`) over a real
//! embedded ledger and read models in a temp dir, with the ledger's clock in the test's
//! hands: late-reported facts are absent before they were recorded, a closed month's KPIs
//! are byte-identical however much is recorded about it later, a position and the matching
//! time give the same answer, and reading the past never widens the caller's scope.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use support::{Principal, Setup, World};
use throughcare_synthetic::data;

const SOURCE: &str = "urn:throughcare:partner:prison-healthcare";

/// An open-mode world whose ledger clock the test sets.
async fn world() -> World {
    world_with(&[]).await
}

/// With `principals`, the app requires their bearer tokens.
async fn world_with(principals: &'static [Principal]) -> World {
    World::new(Setup {
        principals,
        clock: Some("2026-10-01T08:00:00Z"),
    })
    .await
}

impl World {
    /// GET as `who` (open mode when `None`): status, body bytes.
    async fn get_as(&self, who: Option<&str>, uri: &str) -> (StatusCode, Vec<u8>) {
        let r = self.request(who, "GET", uri, &[], None).await;
        (r.status, r.body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let r = self.request(None, "GET", uri, &[], None).await;
        (r.status, r.json())
    }

    /// GET that must answer 200, as JSON.
    async fn ok(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body
    }

    /// Records an event at the clock's time (as the partner when there are principals)
    /// and waits until the read models have it; returns the receipt.
    async fn submit(&self, event: Value) -> Value {
        let who = self.tokens.contains_key("partner").then_some("partner");
        self.submit_as(who, event).await
    }

    /// Refers `nomis` at `time` (the clock already set); returns the person id.
    async fn refer(&self, nomis: &str, time: &str) -> String {
        let receipt = self.submit(referral(nomis, time)).await;
        receipt["person_id"].as_str().unwrap().to_string()
    }
}

/// A CloudEvent about the person with NOMIS number `nomis`, which happened at `time`.
fn event(id: &str, kind: &str, nomis: &str, time: &str, data: Value) -> Value {
    support::event(Some(SOURCE), id, kind, nomis, time, data)
}

fn referral(nomis: &str, time: &str) -> Value {
    let rid = format!("R-{nomis}");
    let data = data::referral_received(&rid, "PRISON_HEALTHCARE", "WCI");
    event(
        &format!("{nomis}-referral"),
        "referral.received",
        nomis,
        time,
        data,
    )
}

fn accepted(nomis: &str, time: &str) -> Value {
    let data = data::referral_accepted(&format!("R-{nomis}"));
    event(
        &format!("{nomis}-accepted"),
        "referral.accepted",
        nomis,
        time,
        data,
    )
}

fn allocated(nomis: &str, time: &str, worker: &str) -> Value {
    let id = format!("{nomis}-allocated-{worker}");
    event(
        &id,
        "case.allocated",
        nomis,
        time,
        data::case_allocated(worker),
    )
}

fn released(nomis: &str, time: &str) -> Value {
    let data = data::prisoner_released("WCI", "RELEASED");
    event(
        &format!("{nomis}-released"),
        "prisoner.released",
        nomis,
        time,
        data,
    )
}

fn contacted(nomis: &str, time: &str) -> Value {
    let data = data::contact_made("PHONE", "SPOKE");
    event(
        &format!("{nomis}-contact"),
        "contact.made",
        nomis,
        time,
        data,
    )
}

/// The release rows of a calendar answer, as (person, kind).
fn calendar(body: &Value) -> Vec<(String, String)> {
    body["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["person_id"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_late_reported_release_is_absent_as_of_yesterday_and_present_as_of_now() {
    // Given a person referred and accepted at the start of November,
    let w = world().await;
    w.set_clock("2026-11-02T09:00:00Z");
    let person = w.refer("A1234BC", "2026-11-02T08:00:00Z").await;
    w.submit(accepted("A1234BC", "2026-11-02T08:30:00Z")).await;
    // when their release last week (the 13th) is reported only today (the 20th),
    w.set_clock("2026-11-20T12:00:00Z");
    w.submit(released("A1234BC", "2026-11-13T10:00:00Z")).await;

    // then as of yesterday the ledger did not know it,
    let journey = |q: &str| format!("/v1/people/{person}/journey{q}");
    let yesterday = w.ok(&journey("?as_of=2026-11-19T12:00:00Z")).await;
    assert_eq!(yesterday["in_custody"], true, "{yesterday}");
    assert_eq!(yesterday["released_at"], Value::Null);
    assert_eq!(yesterday["as_of"], "2026-11-19T12:00:00Z");
    assert_eq!(yesterday["version"], 2);
    let releases = "/v1/releases?from=2026-11-10&to=2026-11-20";
    let then = w
        .ok(&format!("{releases}&as_of=2026-11-19T12:00:00Z"))
        .await;
    assert_eq!(calendar(&then), [], "{then}");
    assert_eq!(then["at_position"], 2);

    // and as of now (or any later time: not in the past, so answered as now) it does.
    for q in [
        "",
        "?as_of=2026-11-20T12:00:00Z",
        "?as_of=2030-01-01T00:00:00+01:00",
    ] {
        let now = w.ok(&journey(q)).await;
        assert_eq!(now["in_custody"], false, "{q}: {now}");
        assert_eq!(now["released_at"], "2026-11-13T10:00:00Z", "{q}");
        assert_eq!(now["as_of"], "2026-11-20T12:00:00Z", "{q}");
    }
    let sep = |q: &str| {
        if q.is_empty() {
            String::new()
        } else {
            format!("&{}", &q[1..])
        }
    };
    for q in ["", "?as_of=2026-11-20T12:00:00Z", "?at_position=3"] {
        let now = w.ok(&format!("{releases}{}", sep(q))).await;
        assert_eq!(
            calendar(&now),
            [(person.clone(), "RELEASED".to_string())],
            "{q}"
        );
    }
    // The web page's date picker asks for the end of a day.
    let (status, page) = w
        .get_as(None, &format!("/people/{person}?as_of=2026-11-19"))
        .await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(r#"<input type="date" name="as_of" value="2026-11-19">"#));
    assert!(page.contains("(in custody)"), "{page}");
    assert!(page.contains("events up to position 2"), "{page}");
    let (_, page) = w.get_as(None, &format!("/people/{person}")).await;
    assert!(String::from_utf8(page)
        .unwrap()
        .contains("(in the community)"));
}

#[tokio::test]
async fn the_kpis_of_a_closed_month_are_byte_identical_after_later_events_about_it() {
    // Given ten people referred, accepted and released in October, none yet contacted,
    let w = world().await;
    let people: Vec<String> = (0..10).map(|i| format!("A{i:04}BC")).collect();
    for nomis in &people {
        w.set_clock("2026-10-02T09:00:00Z");
        w.submit(referral(nomis, "2026-10-01T09:00:00Z")).await;
        w.submit(accepted(nomis, "2026-10-02T09:00:00Z")).await;
        w.set_clock("2026-10-10T18:00:00Z");
        w.submit(released(nomis, "2026-10-10T10:00:00Z")).await;
    }
    // and October's KPIs published on 5 November,
    let published = "2026-11-05T09:00:00Z";
    let uri = format!("/v1/kpis?prison=WCI&from=2026-10-01&to=2026-10-31&as_of={published}");
    w.set_clock("2026-11-05T10:00:00Z");
    let (status, before) = w.get_as(None, &uri).await;
    assert_eq!(status, StatusCode::OK);
    let live_then = w
        .ok("/v1/kpis?prison=WCI&from=2026-10-01&to=2026-10-31")
        .await;

    // when contacts within 72 hours of those releases and more October referrals are
    // reported late, in November,
    w.set_clock("2026-11-20T12:00:00Z");
    for nomis in &people[..5] {
        w.submit(contacted(nomis, "2026-10-11T10:00:00Z")).await;
    }
    for i in 10..16 {
        w.submit(referral(&format!("A{i:04}BC"), "2026-10-20T09:00:00Z"))
            .await;
    }

    // then the figures as published are reproduced byte for byte,
    let (status, after) = w.get_as(None, &uri).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(before.clone()).unwrap(),
        String::from_utf8(after).unwrap()
    );
    let before: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(before["as_of"], published);
    assert_eq!(before["at_position"], 30);
    let october = &before["months"][0];
    assert_eq!(october["month"], "2026-10", "{before}");
    assert_eq!(
        october["contacted_within_72h_of_release"]["numerator"], 0,
        "{before}"
    );
    assert_eq!(
        october["contacted_within_72h_of_release"]["denominator"],
        10
    );
    // the same as the live answer of that day but for its time,
    let mut live_then = live_then;
    live_then["as_of"] = json!(published);
    live_then["at_position"] = json!(30);
    assert_eq!(live_then, before);
    // while today's figures for October have changed.
    let live = w
        .ok("/v1/kpis?prison=WCI&from=2026-10-01&to=2026-10-31")
        .await;
    assert_eq!(
        live["months"][0]["contacted_within_72h_of_release"]["numerator"], 5,
        "{live}"
    );
    assert_ne!(live["months"], before["months"]);
}

#[tokio::test]
async fn at_position_answers_as_as_of_at_the_time_that_position_was_recorded() {
    // Given a person referred, accepted, allocated and released, each recorded a day apart,
    let w = world().await;
    let steps = [
        (
            "2026-10-01T09:00:00Z",
            referral("A1234BC", "2026-10-01T08:00:00Z"),
        ),
        (
            "2026-10-02T09:00:00Z",
            accepted("A1234BC", "2026-10-02T08:00:00Z"),
        ),
        (
            "2026-10-03T09:00:00Z",
            allocated("A1234BC", "2026-10-03T08:00:00Z", "W-1"),
        ),
        (
            "2026-10-04T09:00:00Z",
            released("A1234BC", "2026-10-04T08:00:00Z"),
        ),
        (
            "2026-10-05T09:00:00Z",
            contacted("A1234BC", "2026-10-05T08:00:00Z"),
        ),
    ];
    let mut person = String::new();
    for (clock, e) in steps.iter().cloned() {
        w.set_clock(clock);
        person = w.submit(e).await["person_id"].as_str().unwrap().to_string();
    }
    w.set_clock("2026-11-20T12:00:00Z");
    // when each position is asked for, and the time it was recorded,
    for (position, (recorded, _)) in (1..).zip(steps.iter()) {
        for path in [
            format!("/v1/people/{person}/journey"),
            "/v1/caseload/W-1".to_string(),
            "/v1/releases?from=2026-09-01&to=2026-12-31".to_string(),
            "/v1/kpis?from=2026-09-01&to=2026-10-31".to_string(),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let (s1, by_position) = w
                .get_as(None, &format!("{path}{sep}at_position={position}"))
                .await;
            let (s2, by_time) = w
                .get_as(None, &format!("{path}{sep}as_of={recorded}"))
                .await;
            // then the answers are the same, byte for byte.
            assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{path}");
            assert_eq!(
                String::from_utf8(by_position).unwrap(),
                String::from_utf8(by_time).unwrap(),
                "{path} at {position}"
            );
        }
    }
    let j = w
        .ok(&format!("/v1/people/{person}/journey?at_position=3"))
        .await;
    assert_eq!(j["worker"]["worker_id"], "W-1");
    assert_eq!(j["as_of"], "2026-10-03T09:00:00Z");
    assert_eq!(j["in_custody"], true);
}

#[tokio::test]
async fn a_caseload_as_of_before_an_allocation_does_not_list_the_person() {
    // Given a person accepted on 1 October and allocated to W-1 on 3 October,
    let w = world().await;
    w.set_clock("2026-10-01T09:00:00Z");
    let person = w.refer("A1234BC", "2026-10-01T08:00:00Z").await;
    w.submit(accepted("A1234BC", "2026-10-01T08:30:00Z")).await;
    w.set_clock("2026-10-03T09:00:00Z");
    w.submit(allocated("A1234BC", "2026-10-03T08:00:00Z", "W-1"))
        .await;
    w.set_clock("2026-11-20T12:00:00Z");
    let listed = |body: &Value| -> Vec<String> {
        body["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["person_id"].as_str().unwrap().to_string())
            .collect()
    };
    // when W-1's caseload is read as of 2 October, then the person is not on it;
    let before = w.ok("/v1/caseload/W-1?as_of=2026-10-02T12:00:00Z").await;
    assert_eq!(listed(&before), Vec::<String>::new(), "{before}");
    assert_eq!(before["as_of"], "2026-10-02T12:00:00Z");
    assert_eq!(before["at_position"], 2);
    // as of 4 October and now, they are.
    let after = w.ok("/v1/caseload/W-1?as_of=2026-10-04T12:00:00Z").await;
    assert_eq!(listed(&after), [person.as_str()]);
    assert_eq!(listed(&w.ok("/v1/caseload/W-1").await), [person.as_str()]);
    // Before the first event the ledger knew no one.
    let (status, _) = w
        .get(&format!(
            "/v1/people/{person}/journey?as_of=2026-09-30T00:00:00Z"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_as_of_values_are_400_naming_the_parameter() {
    let w = world().await;
    w.set_clock("2026-10-01T09:00:00Z");
    let person = w.refer("A1234BC", "2026-10-01T08:00:00Z").await;
    let cases = [
        ("as_of=yesterday", "as_of"),
        ("as_of=2026-10-01", "as_of"),
        ("as_of=", "as_of"),
        ("at_position=0", "at_position"),
        ("at_position=2", "at_position"),
        ("at_position=-1", "at_position"),
        ("at_position=x", "at_position"),
        (
            "as_of=2026-10-01T09:00:00Z&at_position=1",
            "as_of or at_position",
        ),
    ];
    for path in [
        format!("/v1/people/{person}/journey"),
        "/v1/caseload/W-1".to_string(),
        "/v1/releases".to_string(),
        "/v1/kpis".to_string(),
    ] {
        for (query, names) in cases {
            let (status, body) = w.get(&format!("{path}?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{query}: {body}");
            let detail = body["detail"].as_str().unwrap();
            assert!(
                detail.starts_with(names) || detail.contains(names),
                "{detail}"
            );
        }
    }
    // An offset's `+` sent unescaped arrives as a space and is read as `+`.
    w.set_clock("2026-10-01T12:00:00Z");
    let j = w
        .ok(&format!(
            "/v1/people/{person}/journey?as_of=2026-10-01T10:30:00+01:00"
        ))
        .await;
    assert_eq!(j["as_of"], "2026-10-01T09:30:00Z");
}

#[tokio::test]
async fn reading_the_past_never_widens_scope() {
    // Given a person allocated to jo on 2 October and re-allocated to sam on 5 October,
    let w = world_with(&[
        (
            "partner",
            "PARTNER",
            "sources = [\"urn:throughcare:partner:prison-healthcare\"]\ntypes = [\"throughcare.*\"]",
        ),
        ("jo", "WORKER", "worker_id = \"W-1\""),
        ("sam", "WORKER", "worker_id = \"W-2\""),
    ])
    .await;
    w.set_clock("2026-10-01T09:00:00Z");
    let person = w.refer("A1234BC", "2026-10-01T08:00:00Z").await;
    w.submit(accepted("A1234BC", "2026-10-01T08:30:00Z")).await;
    w.set_clock("2026-10-02T09:00:00Z");
    w.submit(allocated("A1234BC", "2026-10-02T08:00:00Z", "W-1"))
        .await;
    w.set_clock("2026-10-05T09:00:00Z");
    w.submit(allocated("A1234BC", "2026-10-05T08:00:00Z", "W-2"))
        .await;
    w.set_clock("2026-11-20T12:00:00Z");
    let then = "as_of=2026-10-03T12:00:00Z";
    // when jo asks for the journey and the caseload as of a day it was jo's case,
    let (status, _) = w
        .get_as(Some("jo"), &format!("/v1/people/{person}/journey?{then}"))
        .await;
    // then jo is answered as for anyone outside jo's scope today,
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, caseload) = w
        .get_as(Some("jo"), &format!("/v1/caseload/W-1?{then}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let caseload: Value = serde_json::from_slice(&caseload).unwrap();
    assert_eq!(caseload["cases"], json!([]), "{caseload}");
    // while sam, whose case it is now, may read what was known then.
    let (status, j) = w
        .get_as(Some("sam"), &format!("/v1/people/{person}/journey?{then}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let j: Value = serde_json::from_slice(&j).unwrap();
    assert_eq!(j["worker"]["worker_id"], "W-1");
}
