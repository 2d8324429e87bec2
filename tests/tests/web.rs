//! The worker's day in the web pages, against the real binary with `--auth`: a worker
//! signs in with the form, opens a person's page, and records a contact with the page's
//! own form (its hidden event id and CSRF token); the timeline and the caseload show it;
//! the same form sent again is recorded once; a bad value comes back beside its field;
//! a form without its token is refused (403); and nobody records about a person outside
//! their scope (404, as unknown). HTTP without a browser: the pages work without scripts.

mod support;

use serde_json::json;
use support::auth::{head, AuthFile, Caller, Resp, Spec};
use support::{event, nhs_number, nomis, Server};

const JO: &str = "jo.worker";
const SAM: &str = "sam.worker";
const BNI_MANAGER: &str = "bni.manager";

use support::auth::settle;
use support::minutes_ago as at;

/// The value of the first `name="{name}" value="..."` after `from` in `html`.
fn value_after(html: &str, from: usize, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html[from..]
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} field after byte {from}"))
        + from
        + needle.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// A form on a page: its action, hidden event id, CSRF token and the date and time it
/// was drawn with.
#[derive(Debug, Clone)]
struct PageForm {
    action: String,
    event_id: String,
    csrf: String,
    date: String,
    time: String,
}

fn form_on(html: &str, action: &str) -> PageForm {
    let at = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action} on the page:\n{html}"));
    PageForm {
        action: action.to_string(),
        event_id: value_after(html, at, "event_id"),
        csrf: value_after(html, at, "csrf"),
        date: value_after(html, at, "date"),
        time: value_after(html, at, "time"),
    }
}

impl PageForm {
    async fn post(&self, who: &Caller, fields: &[(&str, &str)]) -> Resp {
        let mut all = vec![
            ("event_id", self.event_id.as_str()),
            ("csrf", self.csrf.as_str()),
            ("date", self.date.as_str()),
            ("time", self.time.as_str()),
        ];
        all.extend_from_slice(fields);
        who.post_form(&self.action, &all).await
    }
}

async fn sign_in(url: &str, auth: &AuthFile, name: &str) -> Caller {
    let (r, cookie) = Caller::sign_in(url, &auth.token(name)).await;
    assert_eq!(r.status, 303, "sign in {name}: {}", r.brief());
    Caller::browser(url, Some(cookie.expect("a session cookie")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_records_a_contact_from_the_person_page() {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthFile::write(
        &dir.path().join("auth"),
        &[
            Spec::new("seeder", "PARTNER")
                .sources(&["urn:throughcare:test:e2e"])
                .types(&["throughcare.*"]),
            Spec::new(JO, "WORKER").worker_id("W-WEB-01"),
            Spec::new(SAM, "WORKER").worker_id("W-WEB-02"),
            Spec::new(BNI_MANAGER, "MANAGER").prisons(&["BNI"]),
        ],
    );
    let server = Server::start_with(&dir.path().join("data"), &["--auth", auth.path_str()]);
    let url = server.url.clone();
    let seeder = Caller::bearer(&url, &auth.token("seeder"));
    // A released at WCI and allocated to jo; B at WCI allocated to sam.
    let mut people = Vec::new();
    for (n, worker, released) in [(9101u64, "W-WEB-01", true), (9102, "W-WEB-02", false)] {
        let person = json!({"nomis": nomis(n), "nhs_number": nhs_number(n)});
        let mut steps = vec![
            event(
                "referral.received",
                &format!("web-{n}-1"),
                &at(300),
                json!({"person": person, "referral_id": format!("REF-WEB-{n}"),
                       "referrer": {"kind": "PRISON_HEALTHCARE"}, "prison": "WCI",
                       "vulnerabilities": []}),
            ),
            event(
                "referral.accepted",
                &format!("web-{n}-2"),
                &at(290),
                json!({"person": person, "referral_id": format!("REF-WEB-{n}")}),
            ),
            event(
                "case.allocated",
                &format!("web-{n}-3"),
                &at(280),
                json!({"person": person, "worker_id": worker, "worker_role": "PEER_SUPPORT"}),
            ),
        ];
        if released {
            steps.push(event(
                "prisoner.released",
                &format!("web-{n}-4"),
                &at(240),
                json!({"person": person, "prison": "WCI", "reason": "RELEASED"}),
            ));
        }
        let mut id = String::new();
        for e in steps {
            let r = seeder.submit(&e).await;
            assert_eq!(r.status, 201, "seeding {}: {}", e["type"], r.brief());
            id = r.body["person_id"].as_str().unwrap().to_string();
        }
        people.push(id);
    }
    let (a, b) = (people[0].clone(), people[1].clone());
    settle(&url).await;

    let jo = sign_in(&url, &auth, JO).await;
    let page = jo.get(&format!("/people/{a}")).await;
    assert_eq!(page.status, 200, "{}", page.brief());
    assert!(
        page.text.contains("role=\"img\""),
        "the journey strip is drawn"
    );
    // Only what the state allows: released and not contacted, a contact can be made;
    // there is no signpost yet, so no outcome form.
    assert!(!page.text.contains("/events/signposting.outcome\""));
    let form = form_on(&page.text, &format!("/people/{a}/events/contact.made"));

    // Recorded: 303 back to the person's page, which shows it.
    let before = head(&url).await;
    let r = form
        .post(&jo, &[("channel", "GATE"), ("outcome", "MET")])
        .await;
    assert_eq!(r.status, 303, "{}", r.brief());
    let location = r.header("location").unwrap();
    assert!(location.starts_with(&format!("/people/{a}?")), "{location}");
    assert_eq!(head(&url).await, before + 1);
    let shown = jo.get(location.split('#').next().unwrap()).await;
    assert_eq!(shown.status, 200, "{}", shown.brief());
    assert!(
        shown.text.contains("Contact made</strong> recorded"),
        "{}",
        shown.brief()
    );
    assert!(
        shown.text.contains("urn:throughcare:staff:jo.worker"),
        "the timeline names the worker as source"
    );
    let caseload = jo.get("/caseload").await;
    assert_eq!(caseload.status, 200, "{}", caseload.brief());
    assert!(
        caseload.text.contains(&nomis(9101)) && caseload.text.contains("engaged"),
        "{}",
        caseload.text
    );
    assert!(
        !caseload.text.contains(&nomis(9102)),
        "another worker's case is not in jo's caseload"
    );

    // The same form again (a double click, a resent page): recorded once.
    let again = form
        .post(&jo, &[("channel", "GATE"), ("outcome", "MET")])
        .await;
    assert_eq!(again.status, 303, "{}", again.brief());
    assert_eq!(
        head(&url).await,
        before + 1,
        "a resent form records nothing new"
    );

    // A bad value: the page again, the message by the field, what was typed kept.
    let page = jo.get(&format!("/people/{a}")).await;
    let fresh = form_on(&page.text, &format!("/people/{a}/events/contact.made"));
    assert_ne!(
        fresh.event_id, form.event_id,
        "every drawing of a form has its own id"
    );
    let bad = fresh.post(&jo, &[("channel", "CARRIER_PIGEON")]).await;
    assert_eq!(bad.status, 422, "{}", bad.brief());
    assert!(
        bad.content_type().starts_with("text/html"),
        "{}",
        bad.brief()
    );
    let err_at = bad
        .text
        .find("id=\"contact-made-channel-error\"")
        .expect("an error beside the channel field");
    let field_at = bad
        .text
        .find("id=\"contact-made-channel\"")
        .expect("the channel field");
    assert!(err_at < field_at, "the message comes before its field");
    assert!(
        bad.text.contains("href=\"#contact-made-channel\""),
        "the error summary links to the field"
    );
    assert!(
        bad.text.contains("value=\"CARRIER_PIGEON\" selected"),
        "what was typed is kept"
    );
    assert!(
        bad.text.contains(&format!("value=\"{}\"", fresh.event_id)),
        "the form keeps its id"
    );
    assert_eq!(head(&url).await, before + 1);

    // No token, or a token of another form: 403 and nothing recorded.
    let naked = jo
        .post_form(
            &fresh.action,
            &[
                ("event_id", &fresh.event_id),
                ("date", &fresh.date),
                ("time", &fresh.time),
                ("channel", "PHONE"),
            ],
        )
        .await;
    assert_eq!(naked.status, 403, "{}", naked.brief());
    assert!(naked.content_type().starts_with("text/html"));
    let swapped = PageForm {
        csrf: form.csrf.clone(),
        ..fresh.clone()
    }
    .post(&jo, &[("channel", "PHONE")])
    .await;
    assert_eq!(swapped.status, 403, "{}", swapped.brief());
    // Another session's token is no good either.
    let jo2 = sign_in(&url, &auth, JO).await;
    assert_eq!(fresh.post(&jo2, &[("channel", "PHONE")]).await.status, 403);
    assert_eq!(head(&url).await, before + 1);

    // Out of scope: jo about sam's person, a BNI manager about a WCI person: 404 as if
    // unknown, even with a good token, and nothing recorded.
    let other = PageForm {
        action: format!("/people/{b}/events/contact.made"),
        ..fresh.clone()
    };
    let r = other.post(&jo, &[("channel", "PHONE")]).await;
    assert_eq!(r.status, 404, "{}", r.brief());
    let manager = sign_in(&url, &auth, BNI_MANAGER).await;
    let r = manager
        .post_form(
            &fresh.action,
            &[
                ("event_id", &fresh.event_id),
                ("csrf", &fresh.csrf),
                ("date", &fresh.date),
                ("time", &fresh.time),
                ("channel", "PHONE"),
            ],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.brief());
    assert_eq!(head(&url).await, before + 1);

    // Sign-out needs its own token too.
    let r = jo.post_form("/sign-out", &[]).await;
    assert_eq!(r.status, 403, "{}", r.brief());
    let home = jo.get("/").await;
    assert_eq!(
        home.status, 200,
        "the session survives a sign-out without its token"
    );
    let token = value_after(
        &home.text,
        home.text.find("action=\"/sign-out\"").unwrap(),
        "csrf",
    );
    let r = jo.post_form("/sign-out", &[("csrf", &token)]).await;
    assert_eq!(r.status, 303, "{}", r.brief());
    assert_eq!(jo.get("/").await.status, 303, "signed out");
}
