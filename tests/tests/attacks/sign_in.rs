//! Attack 6: sign-in. DESIGN.md "Rules at the edge": sign-in checks `Origin`. Issue 17
//! found `POST /sign-in` accepting a cross-site Origin (login CSRF: a page of another site
//! signs the victim's browser in as the attacker) and a second sign-in leaving the old
//! session alive. Here a cross-site sign-in with a valid token must set no session, and a
//! browser that signs in again (sending its old cookie) must lose the old session.

use crate::support::auth::{enc, Caller};
use crate::world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cross_site_sign_in_and_a_new_sign_in_ends_the_old_session() {
    let w = World::seeded().await;
    let mut problems = Vec::new();
    let token = w.auth.token(WCI_MANAGER);
    let form = format!("token={}", enc(&token)).into_bytes();
    let ct = "application/x-www-form-urlencoded";

    // Cross-site: Origin of another site, and the browser's own word for it.
    for (what, headers) in [
        (
            "Origin: https://evil.example",
            vec![("Origin", "https://evil.example")],
        ),
        (
            "Origin: https://evil.example, Sec-Fetch-Site: cross-site",
            vec![
                ("Origin", "https://evil.example"),
                ("Sec-Fetch-Site", "cross-site"),
            ],
        ),
        (
            "Sec-Fetch-Site: cross-site",
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
        ("Origin: null", vec![("Origin", "null")]),
    ] {
        let r = Caller::anonymous(w.url())
            .send("POST", "/sign-in", &headers, Some((ct, form.clone())))
            .await;
        if let Some(c) = r.session_cookie() {
            problems.push(format!(
                "POST /sign-in with a valid token and {what}: a session cookie was set ({}): {}",
                c.split('=').next().unwrap_or(""),
                r.brief()
            ));
        }
        if r.status == 303 || r.status == 302 || r.status == 200 {
            let to = r.header("location").unwrap_or_default();
            if !to.contains("sign-in") {
                problems.push(format!(
                    "POST /sign-in with a valid token and {what}: not refused ({} to {to:?})",
                    r.status
                ));
            }
        }
    }
    // Control: the same sign-in from the site itself works.
    let own_origin = w.url().trim_end_matches('/').to_string();
    let r = Caller::anonymous(w.url())
        .send(
            "POST",
            "/sign-in",
            &[
                ("Origin", own_origin.as_str()),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some((ct, form.clone())),
        )
        .await;
    let first = r.session_cookie();
    if first.is_none() || !(r.status == 303 || r.status == 302) {
        problems.push(format!(
            "control: a same-origin sign-in with a valid token: expected 303 with a session, got {}",
            r.brief()
        ));
    }

    // A second sign-in from the same browser (it sends its old cookie) ends the old session.
    if let Some(old) = first {
        let r = Caller::browser(w.url(), Some(old.clone()))
            .send(
                "POST",
                "/sign-in",
                &[
                    ("Origin", own_origin.as_str()),
                    ("Sec-Fetch-Site", "same-origin"),
                ],
                Some((ct, form.clone())),
            )
            .await;
        let new = r.session_cookie();
        match &new {
            None => problems.push(format!("the second sign-in set no session: {}", r.brief())),
            Some(n) if *n == old => problems
                .push("the second sign-in kept the same session cookie (session fixation)".into()),
            Some(_) => {}
        }
        let with_old = Caller::browser(w.url(), Some(old)).get("/").await;
        let to = with_old.header("location").unwrap_or_default();
        if !((with_old.status == 303 || with_old.status == 302) && to.contains("/sign-in")) {
            problems.push(format!(
                "GET / with the session cookie of before the second sign-in: expected a redirect \
                 to /sign-in, got {} (Location {to:?})",
                with_old.brief()
            ));
        }
        if let Some(n) = new {
            let with_new = Caller::browser(w.url(), Some(n)).get("/").await;
            if with_new.status != 200 {
                problems.push(format!(
                    "GET / with the new session cookie: expected 200, got {}",
                    with_new.brief()
                ));
            }
        }
    }
    report("sign-in", &problems);
}
