//! Browser flows of issue 13 in a real headless Chromium (the harness of `browser.rs`):
//! the real `throughcare serve --auth` binary with synthetic principals and a synthetic
//! seed, and people who sign in by typing a token and then use the pages as they would:
//!
//! - a worker records a gate contact and a GP signpost with its outcome from a person's
//!   page, and sees the journey strip, the signposts and their caseload change;
//! - a form sent twice (back, then submit again) is recorded once: the log head does not
//!   move the second time;
//! - a form the ledger refuses comes back with the reason in the error summary and next
//!   to the field its JSON pointer names, and nothing is recorded;
//! - a manager finds an unallocated case on the cases page and allocates it;
//! - a commissioner reads a prison's month of KPIs (the figures `/v1/kpis` publishes) and
//!   downloads them as CSV with the page's link.
//!
//! Every page visited is checked with axe-core (WCAG 2.2 AA, no violations) and
//! photographed under `target/browser-screenshots/<test>/`.

mod support;

#[path = "browser/driver.rs"]
mod driver;

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use fantoccini::Locator;
use serde_json::{json, Value};
use support::auth::{serve_with_auth, AuthFile, Caller, Spec};
use support::{event, nhs_number, nomis, Server};

use driver::{assert_no_violations, Browser, Violation};

const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
const WORKER: &str = "jo.worker";
const WORKER_ID: &str = "W-WCI-01";
const MANAGER: &str = "wci.manager";
const COMMISSIONER: &str = "kpi.commissioner";
const SESSION_COOKIE: &str = "throughcare_session";

fn principals() -> Vec<Spec> {
    vec![
        Spec::new("seeder", "PARTNER")
            .sources(&[SEED_SOURCE])
            .types(&["throughcare.*"]),
        Spec::new(WORKER, "WORKER").worker_id(WORKER_ID),
        Spec::new(MANAGER, "MANAGER").prisons(&["WCI"]),
        Spec::new(COMMISSIONER, "COMMISSIONER"),
    ]
}

use support::{date_in_days as in_days, minutes_ago as at};

struct Person {
    id: String,
    nomis: String,
}

/// A server with `--auth` and a synthetic seed at WCI:
/// - `mine`: allocated to jo.worker, consent to engage, a plan, released 80 hours ago and
///   not contacted since (contact overdue on the caseload);
/// - `unallocated`: accepted, no worker, release in 10 days (a gap for the manager);
/// - `referred`: referred 2 days ago, not yet triaged (the triage queue).
struct World {
    server: Server,
    auth: AuthFile,
    mine: Person,
    unallocated: Person,
    referred: Person,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (auth, server) = serve_with_auth(dir.path(), &principals());
        let person = |seed: u64| Person {
            id: String::new(),
            nomis: nomis(seed),
        };
        let mut w = World {
            server,
            auth,
            mine: person(8201),
            unallocated: person(8202),
            referred: person(8203),
            _dir: dir,
        };
        w.seed().await;
        w
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    async fn seed(&mut self) {
        let seeder = Caller::bearer(&self.server.url, &self.auth.token("seeder"));
        let mut n = 0;
        let mut post = |kind: &str, minutes_ago: i64, data: Value| {
            n += 1;
            let e = event(kind, &format!("flows-seed-{n}"), &at(minutes_ago), data);
            let seeder = seeder.clone();
            async move {
                let r = seeder.submit(&e).await;
                assert!(r.status == 201, "seeding {}: {}", e["type"], r.brief());
                r.body["person_id"].as_str().unwrap_or_default().to_string()
            }
        };
        let refer = |nomis: &str, seed: u64, release_in: i64| {
            json!({"person": {"nomis": nomis, "nhs_number": nhs_number(seed)},
                   "referral_id": format!("REF-F{seed}"), "referrer": {"kind": "PRISON_HEALTHCARE"},
                   "prison": "WCI", "expected_release_date": in_days(release_in),
                   "vulnerabilities": ["MENTAL_HEALTH"]})
        };
        let who = |nomis: &str| json!({"nomis": nomis});

        let p = self.mine.nomis.clone();
        self.mine.id = post("referral.received", 8000, refer(&p, 8201, -3)).await;
        post(
            "referral.accepted",
            7990,
            json!({"person": who(&p), "referral_id": "REF-F8201"}),
        )
        .await;
        post(
            "case.allocated",
            7980,
            json!({"person": who(&p), "worker_id": WORKER_ID, "worker_role": "PEER_SUPPORT"}),
        )
        .await;
        post(
            "consent.given",
            7970,
            json!({"person": who(&p), "scope": "ENGAGE"}),
        )
        .await;
        post(
            "plan.agreed",
            7960,
            json!({"person": who(&p), "actions": [
                {"need": "HEALTH", "service_type": "GP", "due_by": in_days(14)}],
                "next_review": in_days(7)}),
        )
        .await;
        post(
            "prisoner.released",
            80 * 60,
            json!({"person": who(&p), "prison": "WCI", "reason": "RELEASED", "local_authority": "Southampton"}),
        )
        .await;

        let p = self.unallocated.nomis.clone();
        self.unallocated.id = post("referral.received", 5000, refer(&p, 8202, 10)).await;
        post(
            "referral.accepted",
            4990,
            json!({"person": who(&p), "referral_id": "REF-F8202"}),
        )
        .await;

        let p = self.referred.nomis.clone();
        self.referred.id = post("referral.received", 2 * 24 * 60, refer(&p, 8203, 30)).await;
        self.settle().await;
    }

    /// Three monthly cohorts of 12 releases from WCI, 35, 65 and 95 days ago, so that the
    /// KPIs have rates large enough to publish: every one released with a plan, and 7, 6
    /// and 5 of them (newest first) met at the gate and registered with a GP through a
    /// signpost. Returns the number of people released in each cohort.
    async fn seed_cohorts(&self) -> usize {
        const COHORT: usize = 12;
        let seeder = Caller::bearer(self.url(), &self.auth.token("seeder"));
        let day = 24 * 60;
        let mut n = 0;
        for (k, met) in [(1i64, 7usize), (2, 6), (3, 5)] {
            let released = (30 * k + 5) * day;
            for i in 0..COHORT {
                let seed = 8300 + (k as u64) * 20 + i as u64;
                let who = json!({"nomis": nomis(seed)});
                let release_date = (Utc::now() - chrono::Duration::minutes(released))
                    .date_naive()
                    .to_string();
                let mut events = vec![
                    (
                        "referral.received",
                        released + 20 * day,
                        json!({
                        "person": {"nomis": nomis(seed), "nhs_number": nhs_number(seed)},
                        "referral_id": format!("REF-C{seed}"), "referrer": {"kind": "PROBATION"},
                        "prison": "WCI", "expected_release_date": release_date,
                        "vulnerabilities": ["TRAUMA"]}),
                    ),
                    (
                        "referral.accepted",
                        released + 19 * day,
                        json!({"person": who, "referral_id": format!("REF-C{seed}")}),
                    ),
                    (
                        "case.allocated",
                        released + 18 * day,
                        json!({"person": who, "worker_id": "W-WCI-02", "worker_role": "NAVIGATOR"}),
                    ),
                    (
                        "consent.given",
                        released + 17 * day,
                        json!({"person": who, "scope": "ENGAGE"}),
                    ),
                    (
                        "plan.agreed",
                        released + 10 * day,
                        json!({"person": who, "actions": [
                        {"need": "HEALTH", "service_type": "GP", "due_by": release_date}]}),
                    ),
                    (
                        "prisoner.released",
                        released,
                        json!({"person": who, "prison": "WCI", "reason": "RELEASED"}),
                    ),
                ];
                if i < met {
                    events.extend([
                        (
                            "contact.made",
                            released - 30,
                            json!({"person": who, "channel": "GATE", "outcome": "MET"}),
                        ),
                        (
                            "signposting.made",
                            released - 2 * day,
                            json!({"person": who,
                            "signpost_id": format!("SP-{seed}"), "service_type": "GP",
                            "org": "Synthetic Street Surgery", "mode": "ACCOMPANIED"}),
                        ),
                        (
                            "signposting.outcome",
                            released - 10 * day,
                            json!({"person": who,
                            "signpost_id": format!("SP-{seed}"), "outcome": "GP_REGISTERED"}),
                        ),
                    ]);
                }
                for (kind, minutes_ago, data) in events {
                    n += 1;
                    let e = event(kind, &format!("flows-cohort-{n}"), &at(minutes_ago), data);
                    let r = seeder.submit(&e).await;
                    assert!(r.status == 201, "seeding {kind}: {}", r.brief());
                }
            }
        }
        self.settle().await;
        COHORT
    }

    /// Waits until the read models have caught up with the log head.
    async fn settle(&self) {
        for _ in 0..400 {
            let r = Caller::anonymous(self.url()).get("/readyz").await;
            if r.body["head"].is_u64() && r.body["checkpoint"].as_u64() >= r.body["head"].as_u64() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("read models never caught up at {}", self.url());
    }

    /// The log head: how many events the ledger holds.
    async fn head(&self) -> u64 {
        let r = Caller::anonymous(self.url()).get("/readyz").await;
        r.body["head"]
            .as_u64()
            .unwrap_or_else(|| panic!("no head in /readyz: {}", r.brief()))
    }
}

/// Signs `name` in through the form; the browser lands on the home page naming them.
/// Returns the session cookie as a `Cookie` header value.
async fn sign_in(w: &World, b: &Browser, name: &str) -> String {
    b.submit_sign_in(&w.auth.token(name)).await;
    b.wait_for_path("/").await;
    let text = b.text().await;
    assert!(
        text.contains(name),
        "the home page after {name} signed in does not name them:\n{text}"
    );
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    cookies
        .iter()
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| format!("{}={}", c.name(), c.value()))
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie after {name} signed in"))
}

/// Runs `script` in the page with `args`.
async fn js(b: &Browser, script: &str, args: Vec<Value>) -> Value {
    b.client
        .execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("running {script}: {e}"))
}

/// Sets a field's value (an input, date, time or select), as typing or choosing would.
async fn fill(b: &Browser, id: &str, value: &str) {
    let found = js(
        b,
        "const e = document.getElementById(arguments[0]); if (!e) return false; \
         e.value = arguments[1]; e.dispatchEvent(new Event('change', {bubbles: true})); \
         return e.value === arguments[1];",
        vec![json!(id), json!(value)],
    )
    .await;
    assert_eq!(
        found,
        json!(true),
        "no field #{id} on the page that takes {value:?}"
    );
}

/// A field's current value.
async fn value_of(b: &Browser, id: &str) -> String {
    b.client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id} on the page: {e}"))
        .prop("value")
        .await
        .expect("a value")
        .unwrap_or_default()
}

/// Opens a form's `details` by clicking its summary (when it is not open already).
async fn open_form(b: &Browser, details_id: &str) {
    let open = js(
        b,
        "const d = document.getElementById(arguments[0]); return d ? d.open : null;",
        vec![json!(details_id)],
    )
    .await;
    assert!(
        open.is_boolean(),
        "no form #{details_id} on the page:\n{}",
        b.text().await
    );
    if open == json!(false) {
        b.client
            .find(Locator::Css(&format!("#{details_id} > summary")))
            .await
            .expect("the form's summary")
            .click()
            .await
            .expect("opening the form");
    }
}

/// Presses the submit button of the form in `details_id`.
async fn press_submit(b: &Browser, details_id: &str) {
    b.client
        .find(Locator::Css(&format!(
            "#{details_id} button[type=\"submit\"]"
        )))
        .await
        .unwrap_or_else(|e| panic!("no submit button in #{details_id}: {e}"))
        .click()
        .await
        .expect("pressing submit");
}

/// Waits until the browser is back on the person's page after recording `slug`.
async fn wait_recorded(b: &Browser, person: &str, slug: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let want = format!("recorded={slug}");
    loop {
        let path = b.path().await;
        let ready = js(b, "return document.readyState;", vec![]).await;
        if path.starts_with(&format!("/people/{person}?"))
            && path.contains(&want)
            && ready == json!("complete")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited 15 s for the person's page after {slug}; the browser is at {path}:\n{}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The text of the first element matching `css`.
async fn text_of(b: &Browser, css: &str) -> String {
    match b.client.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.expect("its text"),
        Err(e) => panic!("no {css} on the page: {e}\n{}", b.html().await),
    }
}

/// The attribute `name` of the element `at` (`None` when the element has none).
async fn attr_of(b: &Browser, at: Locator<'_>, name: &str) -> Option<String> {
    match b.client.find(at).await {
        Ok(e) => e.attr(name).await.expect("its attribute"),
        Err(e) => panic!("no {at:?} on the page: {e}\n{}", b.html().await),
    }
}

/// The caseload table's row of `person`, as text.
async fn caseload_row(b: &Browser, person: &str) -> String {
    let row = js(
        b,
        "const a = document.querySelector('main a[href=\"/people/' + arguments[0] + '\"]'); \
         return a ? a.closest('tr').innerText : null;",
        vec![json!(person)],
    )
    .await;
    match row.as_str() {
        Some(r) => r.to_string(),
        None => panic!("the caseload has no row for {person}:\n{}", b.text().await),
    }
}

/// The events of `type_` recorded about `person`, read over the API with the browser's
/// session cookie.
async fn recorded(w: &World, cookie: &str, person: &str, type_: &str) -> Vec<Value> {
    let r = Caller::browser(w.url(), Some(cookie.to_string()))
        .get(&format!("/v1/people/{person}/events"))
        .await;
    assert_eq!(r.status, 200, "the person's events: {}", r.brief());
    r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"]["type"] == format!("throughcare.{type_}.v1"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_records_a_gate_contact_and_a_gp_signpost() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "worker_flow").await;
    let mut violations: Vec<Violation> = Vec::new();
    let cookie = sign_in(&w, &b, WORKER).await;
    let person = w.mine.id.clone();

    b.goto("/caseload").await;
    b.wait_for_path("/caseload").await;
    violations.extend(b.check_page("caseload-before").await);
    let before = caseload_row(&b, &person).await;
    assert!(
        before.contains("contact overdue"),
        "released 80 hours ago without contact, yet the caseload row says: {before}"
    );

    // To the person's page from the caseload, as a worker would.
    b.client
        .find(Locator::Css(&format!("main a[href=\"/people/{person}\"]")))
        .await
        .expect("the caseload's link to the person")
        .click()
        .await
        .expect("following the link");
    b.wait_for_path(&format!("/people/{person}")).await;
    violations.extend(b.check_page("person-before").await);
    let html = b.html().await;
    assert!(
        !html.contains("manage-case-allocated"),
        "a worker is offered the manager's allocation form"
    );
    let strip_before = text_of(&b, "#strip-desc").await;
    assert!(!strip_before.contains("first contact"), "{strip_before}");

    // The gate contact, two minutes before the time the form offers.
    open_form(&b, "form-contact-made").await;
    let offered = format!(
        "{}T{}",
        value_of(&b, "contact-made-date").await,
        value_of(&b, "contact-made-time").await
    );
    let when = NaiveDateTime::parse_from_str(&offered, "%Y-%m-%dT%H:%M")
        .unwrap_or_else(|e| panic!("the form offers {offered:?}: {e}"))
        - chrono::Duration::minutes(2);
    fill(&b, "contact-made-channel", "GATE").await;
    fill(&b, "contact-made-outcome", "MET").await;
    fill(
        &b,
        "contact-made-date",
        &when.format("%Y-%m-%d").to_string(),
    )
    .await;
    fill(&b, "contact-made-time", &when.format("%H:%M").to_string()).await;
    press_submit(&b, "form-contact-made").await;
    wait_recorded(&b, &person, "contact.made").await;
    violations.extend(b.check_page("person-after-contact").await);
    assert!(
        text_of(&b, ".notice-ok")
            .await
            .contains("Contact made recorded"),
        "no confirmation after recording the contact"
    );
    let strip = text_of(&b, "#strip-desc").await;
    assert!(
        strip.contains("first contact") && strip != strip_before,
        "the journey strip does not show the first contact: {strip}"
    );
    let contacts = recorded(&w, &cookie, &person, "contact.made").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let data = &contacts[0]["event"]["data"];
    assert_eq!(
        (data["channel"].as_str(), data["outcome"].as_str()),
        (Some("GATE"), Some("MET"))
    );
    assert_eq!(
        contacts[0]["event"]["source"],
        format!("urn:throughcare:staff:{WORKER}"),
        "the server fills the source"
    );

    // A GP signpost, then its outcome.
    open_form(&b, "form-signposting-made").await;
    let signpost = value_of(&b, "signposting-made-signpost-id").await;
    assert!(
        !signpost.is_empty(),
        "the signpost form offers no reference"
    );
    fill(&b, "signposting-made-service-type", "GP").await;
    fill(&b, "signposting-made-org", "Synthetic Street Surgery").await;
    fill(&b, "signposting-made-mode", "ACCOMPANIED").await;
    press_submit(&b, "form-signposting-made").await;
    wait_recorded(&b, &person, "signposting.made").await;
    violations.extend(b.check_page("person-after-signpost").await);
    let text = b.text().await;
    assert!(
        text.contains(&format!(
            "{signpost}: accompanied to Synthetic Street Surgery"
        )) && text.contains("awaiting outcome"),
        "the signpost is not listed as awaiting its outcome:\n{text}"
    );

    open_form(&b, "form-signposting-outcome").await;
    fill(&b, "signposting-outcome-signpost-id", &signpost).await;
    fill(&b, "signposting-outcome-outcome", "GP_REGISTERED").await;
    press_submit(&b, "form-signposting-outcome").await;
    wait_recorded(&b, &person, "signposting.outcome").await;
    violations.extend(b.check_page("person-after-outcome").await);
    let text = b.text().await;
    assert!(
        text.contains(&format!(
            "{signpost}: accompanied to Synthetic Street Surgery (gp) — gp registered"
        )),
        "the signpost's outcome is not shown:\n{text}"
    );
    let strip = text_of(&b, "#strip-desc").await;
    assert!(
        strip.contains("GP registered"),
        "the journey strip does not show the GP registration: {strip}"
    );

    // The caseload has moved on: contact is no longer overdue.
    b.goto("/caseload").await;
    b.wait_for_path("/caseload").await;
    violations.extend(b.check_page("caseload-after").await);
    let after = caseload_row(&b, &person).await;
    assert!(
        !after.contains("contact overdue") && after != before,
        "after the gate contact the caseload row still says: {after}"
    );
    // The day ends: signing out lands on the sign-in page.
    b.submit_sign_out().await;
    b.wait_for_path("/sign-in").await;
    eprintln!(
        "worker_flow: screenshots in {}",
        b.screenshot_dir().display()
    );
    b.finish().await;
    assert_no_violations("the worker's flow", &violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_sent_twice_is_recorded_once() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "double_submit").await;
    let cookie = sign_in(&w, &b, WORKER).await;
    let person = w.mine.id.clone();
    let page = format!("/people/{person}");
    b.goto(&page).await;
    b.wait_for_path(&page).await;
    let mut violations = b.check_page("person").await;

    open_form(&b, "form-contact-attempted").await;
    let form_id = js(
        &b,
        "return document.querySelector('#form-contact-attempted input[name=event_id]').value;",
        vec![],
    )
    .await;
    fill(&b, "contact-attempted-channel", "PHONE").await;
    fill(&b, "contact-attempted-outcome", "NO_ANSWER").await;
    press_submit(&b, "form-contact-attempted").await;
    wait_recorded(&b, &person, "contact.attempted").await;
    let head = w.head().await;

    // Back to the page the form was on, and send the same form again.
    b.client.back().await.expect("going back");
    b.wait_for_path(&page).await;
    let again = js(
        &b,
        "return document.querySelector('#form-contact-attempted input[name=event_id]').value;",
        vec![],
    )
    .await;
    assert_eq!(
        again, form_id,
        "going back did not bring the same form back (a new event id), so this would not be a resubmission"
    );
    open_form(&b, "form-contact-attempted").await;
    fill(&b, "contact-attempted-channel", "PHONE").await;
    fill(&b, "contact-attempted-outcome", "NO_ANSWER").await;
    press_submit(&b, "form-contact-attempted").await;
    wait_recorded(&b, &person, "contact.attempted").await;
    violations.extend(b.check_page("person-after-resubmit").await);
    assert_eq!(
        w.head().await,
        head,
        "the form sent a second time moved the log head"
    );
    let attempts = recorded(&w, &cookie, &person, "contact.attempted").await;
    assert_eq!(attempts.len(), 1, "recorded more than once: {attempts:?}");
    assert_eq!(attempts[0]["event"]["id"], form_id);
    b.finish().await;
    assert_no_violations("the resubmitted form", &violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_form_shows_the_reason_by_the_field() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "refused_form").await;
    let cookie = sign_in(&w, &b, WORKER).await;
    let person = w.mine.id.clone();
    b.goto(&format!("/people/{person}")).await;
    b.wait_for_path(&format!("/people/{person}")).await;
    let head = w.head().await;

    // A contact two days from now: the write path refuses a time in the future, naming
    // `/time`, which the form's date field holds.
    open_form(&b, "form-contact-made").await;
    fill(&b, "contact-made-channel", "PHONE").await;
    fill(&b, "contact-made-date", &in_days(2)).await;
    press_submit(&b, "form-contact-made").await;
    b.wait_for_path(&format!("/people/{person}/events/contact.made"))
        .await;
    let violations = b.check_page("person-refused").await;
    let summary = text_of(&b, ".error-summary").await;
    assert!(
        summary.contains("There is a problem") && summary.contains("future"),
        "the error summary does not give the reason: {summary}"
    );
    let link = attr_of(&b, Locator::Css(".error-summary a"), "href").await;
    assert_eq!(link.as_deref(), Some("#contact-made-date"));
    let by_field = text_of(&b, "#contact-made-date-error").await;
    assert!(
        by_field.contains("future"),
        "the reason is not next to the date: {by_field}"
    );
    let described = attr_of(&b, Locator::Id("contact-made-date"), "aria-describedby").await;
    assert_eq!(described.as_deref(), Some("contact-made-date-error"));
    // What was typed is kept, and the form is open.
    assert_eq!(value_of(&b, "contact-made-channel").await, "PHONE");
    assert_eq!(value_of(&b, "contact-made-date").await, in_days(2));
    assert_eq!(w.head().await, head, "a refused form moved the log head");
    assert!(recorded(&w, &cookie, &person, "contact.made")
        .await
        .is_empty());
    b.finish().await;
    assert_no_violations("the refused form", &violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_allocates_a_case() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "manager_flow").await;
    let cookie = sign_in(&w, &b, MANAGER).await;
    let mut violations = b.check_page("calendar").await;
    let person = w.unallocated.id.clone();

    b.goto("/cases").await;
    b.wait_for_path("/cases").await;
    violations.extend(b.check_page("cases").await);
    // The triage queue lists the referral waiting for a decision.
    let triage = js(
        &b,
        "const h = document.getElementById('triage'); \
         const t = h && h.nextElementSibling; return t ? t.innerText : null;",
        vec![],
    )
    .await;
    assert!(
        triage
            .as_str()
            .is_some_and(|t| t.contains(&w.referred.nomis) && t.contains("2 days")),
        "the triage queue does not list the referral waiting 2 days: {triage}"
    );
    b.goto("/cases?status=REFERRED").await;
    b.wait_for_path("/cases?status=REFERRED").await;
    violations.extend(b.check_page("cases-referred").await);

    b.goto("/cases").await;
    b.wait_for_path("/cases").await;
    b.client
        .find(Locator::Css(&format!(
            "a[href=\"/people/{person}#manage\"]"
        )))
        .await
        .expect("a Manage link for the unallocated case")
        .click()
        .await
        .expect("following it");
    b.wait_for_path(&format!("/people/{person}")).await;
    violations.extend(b.check_page("person-unallocated").await);

    open_form(&b, "manage-case-allocated").await;
    assert!(
        text_of(&b, "#manage-case-allocated > summary")
            .await
            .contains("Allocate the case"),
        "the form of an unallocated case is not 'Allocate'"
    );
    fill(&b, "case-allocated-worker-id", WORKER_ID).await;
    fill(&b, "case-allocated-worker-role", "NAVIGATOR").await;
    press_submit(&b, "manage-case-allocated").await;
    wait_recorded(&b, &person, "case.allocated").await;
    violations.extend(b.check_page("person-allocated").await);
    let text = b.text().await;
    assert!(
        text.contains("Allocate the case recorded") && text.contains(WORKER_ID),
        "the page does not show the allocation:\n{text}"
    );
    assert!(
        text_of(&b, "#manage-case-allocated > summary")
            .await
            .contains("Re-allocate the case"),
        "an allocated case is not offered re-allocation"
    );
    let allocations = recorded(&w, &cookie, &person, "case.allocated").await;
    assert_eq!(allocations.len(), 1, "{allocations:?}");
    assert_eq!(allocations[0]["event"]["data"]["worker_id"], WORKER_ID);
    assert_eq!(allocations[0]["event"]["data"]["worker_role"], "NAVIGATOR");
    assert_eq!(
        allocations[0]["event"]["source"],
        format!("urn:throughcare:staff:{MANAGER}")
    );
    // The worker's caseload now has the person.
    let r = Caller::browser(w.url(), Some(cookie))
        .get(&format!("/v1/caseload/{WORKER_ID}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.brief());
    assert!(
        r.text.contains(&person),
        "the allocated person is not on {WORKER_ID}'s caseload: {}",
        r.brief()
    );
    b.finish().await;
    assert_no_violations("the manager's flow", &violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commissioner_reads_the_kpis_and_downloads_the_csv() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "commissioner_flow").await;
    let cohort = w.seed_cohorts().await;
    let cookie = sign_in(&w, &b, COMMISSIONER).await;
    let mut violations = b.check_page("home").await;

    // The month the seed's release fell in (its release-based KPIs count there).
    let month = (Utc::now() - chrono::Duration::hours(80))
        .format("%Y-%m")
        .to_string();
    let kpis = format!("/kpis?prison=WCI&month={month}");
    b.goto(&kpis).await;
    b.wait_for_path(&kpis).await;
    violations.extend(b.check_page("kpis-small-numbers").await);
    let html = b.html().await;
    for p in [&w.mine, &w.unallocated, &w.referred] {
        assert!(
            !html.contains(&p.nomis) && !html.contains(&p.id),
            "the KPI page shows a person"
        );
    }
    // Five charts, each an image with a title and a description, and a table beside it.
    let charts = b
        .client
        .find_all(Locator::Css("svg[role=\"img\"]"))
        .await
        .expect("charts");
    assert_eq!(charts.len(), 5, "one chart per release-based rate");
    for i in 1..=5 {
        let desc = text_of(&b, &format!("#kpi-chart-{i}-desc")).await;
        assert!(desc.contains("by month, as a percentage"), "{desc}");
    }

    // The page's figures are the ones /v1/kpis publishes for the same range.
    let json_href = attr_of(&b, Locator::LinkText("The same as JSON"), "href")
        .await
        .expect("an href");
    let fetcher = Caller::browser(w.url(), Some(cookie));
    let api = fetcher.get(&json_href).await;
    assert_eq!(api.status, 200, "{}", api.brief());
    let row = api.body["months"]
        .as_array()
        .and_then(|m| m.iter().find(|r| r["month"] == month.as_str()))
        .unwrap_or_else(|| panic!("no WCI row for {month}: {}", api.brief()));
    let shown = |v: &Value| match v {
        Value::String(s) => s.replace('<', "&lt;"),
        other => other.to_string(),
    };
    for (key, heading) in [
        ("released_with_plan", "Released with a plan"),
        ("assessed_before_release", "Assessed before release"),
    ] {
        let r = &row[key];
        let want = format!(
            "{heading}</th><td>{}</td><td>{}</td>",
            shown(&r["numerator"]),
            shown(&r["denominator"])
        );
        assert!(
            html.contains(&want),
            "the page's {key} differs from /v1/kpis ({r}); wanted {want}"
        );
    }
    assert!(
        html.contains(&format!("<dd>{}</dd>", shown(&row["referrals_total"]))),
        "the page's referrals total differs from /v1/kpis: {}",
        row["referrals_total"]
    );

    // A month of the cohorts: rates large enough to publish, drawn as bars.
    let cohort_month = (Utc::now() - chrono::Duration::days(35))
        .format("%Y-%m")
        .to_string();
    let page = format!("/kpis?prison=WCI&month={cohort_month}");
    b.goto(&page).await;
    b.wait_for_path(&page).await;
    violations.extend(b.check_page("kpis").await);
    let html = b.html().await;
    assert!(
        html.contains(&format!(
            "Released with a plan</th><td>{cohort}</td><td>{cohort}</td><td>100%</td>"
        )),
        "the cohort month does not show every release with a plan"
    );
    let plan = text_of(&b, "#kpi-chart-2-desc").await;
    assert!(
        plan.contains(&format!("{cohort_month}: 100%")),
        "the plan chart does not draw the cohort's 100%: {plan}"
    );
    let gate = text_of(&b, "#kpi-chart-4-desc").await;
    let want = format!("{}%", (700.0 / cohort as f64).round());
    assert!(
        gate.contains(&format!("{cohort_month}: {want}")),
        "the met-at-gate chart does not draw 7 of {cohort} as {want}: {gate}"
    );
    assert!(
        html.matches("url(#kpi-chart-").count() >= 3,
        "the published rates are not drawn as hatched bars"
    );
    let href = attr_of(&b, Locator::Id("kpi-csv"), "href")
        .await
        .expect("an href");
    let csv = fetcher.get(&href).await;
    assert_eq!(csv.status, 200, "{}", csv.brief());
    assert!(
        csv.text.contains(&format!("WCI,{cohort_month},")),
        "the cohort month's CSV has no row for it:\n{}",
        csv.text
    );
    b.goto(&kpis).await;
    b.wait_for_path(&kpis).await;

    // The CSV link, fetched with the browser's session as the browser would download it.
    let href = attr_of(&b, Locator::Id("kpi-csv"), "href")
        .await
        .expect("an href");
    assert!(href.starts_with("/v1/kpis.csv?prison=WCI&"), "{href}");
    let csv = fetcher.get(&href).await;
    assert_eq!(csv.status, 200, "{}", csv.brief());
    assert!(
        csv.content_type().starts_with("text/csv"),
        "{}",
        csv.brief()
    );
    let mut lines = csv.text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("prison,month,referrals_total,")
            && header.contains("released_with_plan_numerator"),
        "the CSV's header row: {header}"
    );
    let months = api.body["months"].as_array().map_or(0, Vec::len);
    assert_eq!(lines.count(), months, "one CSV row per month of /v1/kpis");
    b.finish().await;
    assert_no_violations("the commissioner's flow", &violations);
}
