//! Browser tests in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! provided by `scripts/browser.sh`), driven over WebDriver with `fantoccini`: the real
//! `throughcare serve --auth` binary with synthetic principals and a synthetic seed posted
//! through the write path; a person signs in by typing a token into the sign-in form as
//! WORKER, MANAGER, COMMISSIONER and AUDITOR, sees the home page for that role, and visits
//! every page the role may see. Every page is checked with the pinned axe-core against
//! WCAG 2.2 AA (`wcag2a`, `wcag2aa`, `wcag21a`, `wcag21aa`, `wcag22aa`): the assertion is
//! "no violations", and a failure lists each one (page, rule, impact, selectors, help
//! URL). Every page is also photographed to `target/browser-screenshots/<test>/<page>.png`.
//!
//! "Every page the role may see" is read from the served OpenAPI document (operations
//! tagged `pages` whose `x-roles` name the role), so pages added later are checked without
//! editing this file; a page with a path parameter this harness cannot fill is a failure
//! saying so.

mod support;

#[path = "browser/driver.rs"]
mod driver;

use std::time::Duration;

use serde_json::{json, Value};
use support::auth::{serve_with_auth, AuthFile, Caller, Spec};
use support::{event, nhs_number, nomis, Server};

use driver::{assert_no_violations, Browser, Violation};

/// The seeding partner's CloudEvents source (the harness's `event()` uses it).
const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
const WORKER: &str = "jo.worker";
const WORKER_ID: &str = "W-WCI-01";
const OTHER_WORKER_ID: &str = "W-BNI-07";
const MANAGER: &str = "wci.manager";
const COMMISSIONER: &str = "kpi.commissioner";
const AUDITOR: &str = "ig.auditor";
/// The session cookie's name (DESIGN.md "Access": web pages).
const SESSION_COOKIE: &str = "throughcare_session";

fn principals() -> Vec<Spec> {
    vec![
        Spec::new("seeder", "PARTNER")
            .sources(&[SEED_SOURCE])
            .types(&["throughcare.*"]),
        Spec::new(WORKER, "WORKER").worker_id(WORKER_ID),
        Spec::new("sam.worker", "WORKER").worker_id(OTHER_WORKER_ID),
        Spec::new(MANAGER, "MANAGER").prisons(&["WCI"]),
        Spec::new(COMMISSIONER, "COMMISSIONER"),
        Spec::new(AUDITOR, "AUDITOR"),
    ]
}

use support::{date_in_days as in_days, minutes_ago as at};

/// A person of the seed.
struct Person {
    id: String,
    nomis: String,
}

/// A server with `--auth` and a synthetic seed:
/// - `released`: WCI, allocated to jo.worker, consent to engage, a plan, released an hour
///   ago and met at the gate;
/// - `expected`: WCI, accepted, unallocated, release in 10 days (the calendar's gaps);
/// - `elsewhere`: BNI, allocated to sam.worker (nobody here but the auditor may read it).
struct World {
    server: Server,
    auth: AuthFile,
    released: Person,
    expected: Person,
    elsewhere: Person,
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
            released: person(8101),
            expected: person(8102),
            elsewhere: person(8103),
            _dir: dir,
        };
        w.seed().await;
        w
    }

    fn url(&self) -> &str {
        &self.server.url
    }

    fn token(&self, name: &str) -> String {
        self.auth.token(name)
    }

    async fn seed(&mut self) {
        let seeder = Caller::bearer(&self.server.url, &self.auth.token("seeder"));
        let mut n = 0;
        let mut post = |kind: &str, minutes_ago: i64, data: Value| {
            n += 1;
            let e = event(kind, &format!("browser-seed-{n}"), &at(minutes_ago), data);
            let seeder = seeder.clone();
            async move {
                let r = seeder.submit(&e).await;
                assert!(r.status == 201, "seeding {}: {}", e["type"], r.brief());
                r.body["person_id"].as_str().unwrap_or_default().to_string()
            }
        };
        let refer = |nomis: &str, seed: u64, prison: &str, release_in: i64| {
            json!({"person": {"nomis": nomis, "nhs_number": nhs_number(seed)},
                   "referral_id": format!("REF-B{seed}"), "referrer": {"kind": "PRISON_HEALTHCARE"},
                   "prison": prison, "expected_release_date": in_days(release_in),
                   "vulnerabilities": ["MENTAL_HEALTH"]})
        };
        let who = |nomis: &str| json!({"nomis": nomis});

        let p = self.released.nomis.clone();
        self.released.id = post("referral.received", 600, refer(&p, 8101, "WCI", 0)).await;
        post(
            "referral.accepted",
            590,
            json!({"person": who(&p), "referral_id": "REF-B8101"}),
        )
        .await;
        post(
            "case.allocated",
            580,
            json!({"person": who(&p), "worker_id": WORKER_ID, "worker_role": "PEER_SUPPORT"}),
        )
        .await;
        post(
            "consent.given",
            570,
            json!({"person": who(&p), "scope": "ENGAGE"}),
        )
        .await;
        post(
            "plan.agreed",
            560,
            json!({"person": who(&p), "actions": [
            {"need": "ACCOMMODATION", "service_type": "HOUSING", "due_by": in_days(14)},
            {"need": "HEALTH", "service_type": "GP", "due_by": in_days(28)}],
            "next_review": in_days(7)}),
        )
        .await;
        post("prisoner.released", 60, json!({"person": who(&p), "prison": "WCI", "reason": "RELEASED", "local_authority": "Southampton"})).await;
        post(
            "contact.made",
            50,
            json!({"person": who(&p), "channel": "GATE", "outcome": "MET"}),
        )
        .await;

        let p = self.expected.nomis.clone();
        self.expected.id = post("referral.received", 500, refer(&p, 8102, "WCI", 10)).await;
        post(
            "referral.accepted",
            490,
            json!({"person": who(&p), "referral_id": "REF-B8102"}),
        )
        .await;

        let p = self.elsewhere.nomis.clone();
        self.elsewhere.id = post("referral.received", 400, refer(&p, 8103, "BNI", 20)).await;
        post(
            "referral.accepted",
            390,
            json!({"person": who(&p), "referral_id": "REF-B8103"}),
        )
        .await;
        post(
            "case.allocated",
            380,
            json!({"person": who(&p), "worker_id": OTHER_WORKER_ID, "worker_role": "PEER_SUPPORT"}),
        )
        .await;
        self.settle().await;
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

    /// Every page (`GET`, tagged `pages` in the served OpenAPI document) that `role` may
    /// see, as its path template.
    async fn pages_for(&self, role: &str) -> Vec<String> {
        let r = Caller::anonymous(self.url()).get("/v1/openapi.json").await;
        assert_eq!(r.status, 200, "GET /v1/openapi.json: {}", r.brief());
        let mut pages: Vec<String> = r.body["paths"]
            .as_object()
            .expect("paths in the OpenAPI document")
            .iter()
            .filter_map(|(path, item)| {
                let op = item.get("get")?;
                let tagged = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "pages"));
                let allowed = op["x-roles"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r == role || r == "open"));
                (tagged && allowed).then(|| path.clone())
            })
            .collect();
        pages.sort();
        // The pages every role has today: a harness that found fewer is broken.
        for must in ["/", "/sign-in"] {
            assert!(
                pages.iter().any(|p| p == must),
                "the OpenAPI document lists no page {must} for {role}: {pages:?}"
            );
        }
        pages
    }
}

/// `template` with its path parameters filled for a caller who may read `person`.
fn fill(template: &str, person: Option<&Person>) -> String {
    let mut out = template.to_string();
    if out.contains("{id}") {
        let p = person.unwrap_or_else(|| {
            panic!("page {template} needs a person, and this role has none to show")
        });
        out = out.replace("{id}", &p.id);
    }
    assert!(
        !out.contains('{'),
        "page {template} has a path parameter the browser tests cannot fill yet: \
         teach tests/tests/browser.rs `fill` what to put there"
    );
    out
}

/// A screenshot name for a page template: `/` -> `home`, `/people/{id}` -> `people-id`.
fn page_name(template: &str) -> String {
    let name: String = template
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if name.is_empty() {
        "home".into()
    } else {
        name
    }
}

/// The browser's session cookie as a `Cookie` header value (`name=value`).
async fn session_cookie(b: &Browser) -> Option<String> {
    let cookies = b
        .client
        .get_all_cookies()
        .await
        .expect("the browser's cookies");
    cookies
        .iter()
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| format!("{}={}", c.name(), c.value()))
}

/// Signs `name` in through the form and checks the browser lands on the home page.
async fn sign_in(w: &World, b: &Browser, name: &str) {
    b.submit_sign_in(&w.token(name)).await;
    b.wait_for_path("/").await;
    let text = b.text().await;
    assert!(
        text.contains(name),
        "the home page after {name} signed in does not name them:\n{text}"
    );
}

/// Signs in as `name` (role `role`), checks the home page with `home`, then visits every
/// page the role may see (path parameters filled with `person`), runs axe-core on each and
/// photographs it; fails listing every violation on every page.
async fn role_pages<F>(
    test: &str,
    name: &str,
    role: &str,
    person: fn(&World) -> Option<&Person>,
    home: F,
) where
    F: FnOnce(&World, &str),
{
    let w = World::start().await;
    let pages = w.pages_for(role).await;
    let b = Browser::open(w.url(), test).await;
    sign_in(&w, &b, name).await;
    home(&w, &b.html().await);
    let cookie = session_cookie(&b)
        .await
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie after {name} signed in"));
    let fetcher = Caller::browser(w.url(), Some(cookie));
    let mut violations: Vec<Violation> = Vec::new();
    for template in &pages {
        let path = fill(template, person(&w));
        // The page must really be served to this role (WebDriver cannot see statuses).
        let r = fetcher.get(&path).await;
        assert!(
            r.status == 200 && r.content_type().starts_with("text/html"),
            "{name} ({role}) may see {template} by the OpenAPI document, but GET {path} gave {}",
            r.brief()
        );
        b.goto(&path).await;
        b.wait_for_path(&path).await;
        violations.extend(b.check_page(&page_name(template)).await);
    }
    eprintln!(
        "{test}: {} page(s) checked {pages:?}; screenshots in {}",
        pages.len(),
        b.screenshot_dir().display()
    );
    b.finish().await;
    assert_no_violations(&format!("{name} ({role})"), &violations);
}

/// Links to a person's page in `html`.
fn links_to(html: &str, p: &Person) -> bool {
    html.contains(&format!("/people/{}\"", p.id)) || html.contains(&format!("/people/{}'", p.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_pages_have_no_axe_violations() {
    role_pages(
        "worker_pages",
        WORKER,
        "WORKER",
        |w| Some(&w.released),
        |w, html| {
            assert!(
                links_to(html, &w.released),
                "the worker's home does not list their allocated person:\n{html}"
            );
            assert!(
                !links_to(html, &w.elsewhere) && !html.contains(&w.elsewhere.nomis),
                "the worker's home shows a person allocated to someone else:\n{html}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_pages_have_no_axe_violations() {
    role_pages(
        "manager_pages",
        MANAGER,
        "MANAGER",
        |w| Some(&w.expected),
        |w, html| {
            assert!(
                links_to(html, &w.expected),
                "the WCI manager's home does not list the unallocated WCI release:\n{html}"
            );
            assert!(
                !links_to(html, &w.elsewhere) && !html.contains(&w.elsewhere.nomis),
                "the WCI manager's home shows a BNI person:\n{html}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commissioner_pages_have_no_axe_violations() {
    role_pages(
        "commissioner_pages",
        COMMISSIONER,
        "COMMISSIONER",
        |_| None,
        |w, html| {
            // Aggregates only: no person, no identifier.
            for p in [&w.released, &w.expected, &w.elsewhere] {
                assert!(
                    !links_to(html, p) && !html.contains(&p.nomis),
                    "the commissioner's home shows a person ({}):\n{html}",
                    p.nomis
                );
            }
            assert!(
                html.contains("WCI"),
                "the commissioner's home shows no figures for WCI:\n{html}"
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_pages_have_no_axe_violations() {
    role_pages(
        "auditor_pages",
        AUDITOR,
        "AUDITOR",
        |w| Some(&w.elsewhere),
        |w, html| {
            assert!(
                links_to(html, &w.expected) && links_to(html, &w.elsewhere),
                "the auditor's home does not list releases at every prison:\n{html}"
            );
        },
    )
    .await;
}

/// The sign-in page as a stranger sees it, and after a refused token (its error summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_page_has_no_axe_violations() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "sign_in_page").await;
    let mut violations = Vec::new();
    b.goto("/sign-in").await;
    violations.extend(b.check_page("sign-in").await);
    b.submit_sign_in("tct_not_a_token_of_this_server").await;
    // The refusal answers on /sign-in itself, so wait for what it says, not for the path.
    b.wait_for_text("not accepted").await;
    b.wait_for_path("/sign-in").await;
    assert!(
        session_cookie(&b).await.is_none(),
        "a refused token set a session cookie"
    );
    violations.extend(b.check_page("sign-in-refused").await);
    b.finish().await;
    assert_no_violations("the sign-in page", &violations);
}

/// Sign in through the form: an HttpOnly, SameSite=Strict session cookie the page's own
/// scripts cannot read, the role's home page; sign out: the cookie is gone and the home
/// page sends the browser back to sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_sign_out_in_the_browser() {
    let w = World::start().await;
    let b = Browser::open(w.url(), "sign_in_and_out").await;

    // Before signing in, the home page sends the browser to the sign-in form.
    b.goto("/").await;
    b.wait_for_path("/sign-in").await;

    sign_in(&w, &b, WORKER).await;
    let html = b.html().await;
    assert!(
        links_to(&html, &w.released),
        "the worker's home after sign-in does not list their person:\n{html}"
    );
    b.screenshot("home-signed-in").await;
    let cookies = b.client.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name() == SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie after sign-in: {cookies:?}"));
    assert_eq!(
        session.http_only(),
        Some(true),
        "the session cookie is not HttpOnly: {session:?}"
    );
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict"),
        "the session cookie is not SameSite=Strict: {session:?}"
    );
    assert_eq!(
        session.path(),
        Some("/"),
        "session cookie path: {session:?}"
    );
    assert!(!session.value().is_empty(), "empty session cookie");
    let visible = b
        .client
        .execute("return document.cookie;", vec![])
        .await
        .expect("document.cookie");
    assert!(
        !visible.as_str().unwrap_or("").contains(SESSION_COOKIE),
        "the page's scripts can read the session cookie: {visible}"
    );
    // The cookie is what the server knows the browser by.
    let cookie = format!("{}={}", session.name(), session.value());
    let r = Caller::browser(w.url(), Some(cookie.clone()))
        .get("/")
        .await;
    assert_eq!(
        r.status,
        200,
        "GET / with the browser's cookie: {}",
        r.brief()
    );

    b.submit_sign_out().await;
    b.wait_for_path("/sign-in").await;
    b.screenshot("signed-out").await;
    assert!(
        session_cookie(&b).await.is_none(),
        "the session cookie outlived sign-out"
    );
    b.goto("/").await;
    b.wait_for_path("/sign-in").await;
    // And the old cookie is dead on the server, not only forgotten by the browser.
    let r = Caller::browser(w.url(), Some(cookie)).get("/").await;
    assert!(
        r.status == 303 || r.status == 302 || r.status == 401,
        "the signed-out session still opens the home page: {}",
        r.brief()
    );
    b.finish().await;
}

/// The harness itself: on a page built to break WCAG, axe-core finds each breach and the
/// failure lists rule, impact, selector and help URL, so a clean result above means clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_reports_a_page_built_to_fail() {
    // No server: the page is written into about:blank.
    let b = Browser::open("http://127.0.0.1:9", "axe_self_test").await;
    b.client.goto("about:blank").await.expect("about:blank");
    let page = r#"<html><head></head><body>
<img id="no-alt" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<p id="faint" style="color:#c8c8c8;background:#fff">faint text</p>
<input id="unlabelled" type="text">
</body></html>"#;
    b.client
        .execute(
            "document.open(); document.write(arguments[0]); document.close(); return true;",
            vec![json!(page)],
        )
        .await
        .expect("writing the page");
    let violations = b.check_page("built-to-fail").await;
    b.finish().await;
    let rules: Vec<&str> = violations.iter().map(|v| v.rule.as_str()).collect();
    for (rule, target) in [
        ("image-alt", "#no-alt"),
        ("color-contrast", "#faint"),
        ("label", "#unlabelled"),
        ("html-has-lang", "html"),
        ("document-title", "html"),
    ] {
        let v = violations
            .iter()
            .find(|v| v.rule == rule)
            .unwrap_or_else(|| panic!("axe-core missed {rule}; it found {rules:?}"));
        assert!(
            v.targets.iter().any(|t| t == target),
            "{rule} points at {:?}, not {target}",
            v.targets
        );
        assert!(
            v.help_url
                .starts_with("https://dequeuniversity.com/rules/axe/")
                && !v.impact.is_empty()
                && v.impact != "?",
            "{rule} lacks its help URL or impact: {v:?}"
        );
    }
    // What assert_no_violations panics with.
    let message = driver::violations_report("built to fail", &violations)
        .expect("violations make a failure report");
    for part in [
        "image-alt (critical)",
        "#no-alt",
        "https://dequeuniversity.com/rules/axe/",
    ] {
        assert!(
            message.contains(part),
            "the failure message lacks {part:?}:\n{message}"
        );
    }
}
