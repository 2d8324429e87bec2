//! Attack 4: unbounded input. DESIGN.md "Rules at the edge": 64 KiB for forms and sign-in,
//! 64 KiB per event and 4 MiB per batch, over the limit is 413 before parsing; header-read
//! and idle timeouts on every listener. Issue 17 found a 300 MiB POST to `/sign-in` taking
//! the server to 780 MiB before its 401, a body over 4 MiB on `/v1/events` answered 422,
//! and 200 slow connections held open for 45 s and more. Here: oversize bodies (declared
//! and chunked, with and without a token) must be 413 (problem+json on the API), the
//! server's RSS must stay flat across them, and 200 connections that never finish their
//! request line must be closed within 30 s.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw::{addr, request_with};
use crate::world::*;

const MIB: usize = 1024 * 1024;

/// The server's resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversize_bodies_are_413_and_memory_stays_flat() {
    let w = World::seeded().await;
    let mut problems = Vec::new();
    let token = format!("Bearer {}", w.auth.token(PROBATION));
    // A sign-in form whose one field is 2 MiB; an event whose personal text is 5 MiB.
    let sign_in_body = format!("token={}", "A".repeat(2 * MIB)).into_bytes();
    let event = cloudevent(
        Some(PROBATION_SOURCE),
        &new_id(),
        "referral.received",
        serde_json::json!({
            "person": {"nomis": crate::support::nomis(81_700)},
            "referral_id": "REF-ATTACK-BIG", "referrer": {"kind": "PROBATION"},
            "prison": "WCI", "vulnerabilities": ["OTHER"],
            "personal": {"text": "x".repeat(5 * MIB)},
        }),
    );
    let event_body = serde_json::to_vec(&event).unwrap();
    struct Case<'a> {
        what: &'static str,
        path: &'static str,
        auth: Option<&'a str>,
        ct: &'static str,
        body: &'a [u8],
        chunked: bool,
        /// Statuses that count as refusing the body (no token: 401 before reading it is
        /// as good as 413).
        ok: &'static [u16],
        problem_json: bool,
    }
    let form = "application/x-www-form-urlencoded";
    let ce = "application/cloudevents+json";
    let cases = [
        Case {
            what: "2 MiB sign-in",
            path: "/sign-in",
            auth: None,
            ct: form,
            body: &sign_in_body,
            chunked: false,
            ok: &[413],
            problem_json: false,
        },
        Case {
            what: "2 MiB sign-in, chunked",
            path: "/sign-in",
            auth: None,
            ct: form,
            body: &sign_in_body,
            chunked: true,
            ok: &[413],
            problem_json: false,
        },
        Case {
            what: "2 MiB sign-out",
            path: "/sign-out",
            auth: None,
            ct: form,
            body: &sign_in_body,
            chunked: false,
            ok: &[413],
            problem_json: false,
        },
        Case {
            what: "5 MiB event without a token",
            path: "/v1/events",
            auth: None,
            ct: ce,
            body: &event_body,
            chunked: false,
            ok: &[413, 401],
            problem_json: true,
        },
        Case {
            what: "5 MiB event with a partner's token",
            path: "/v1/events",
            auth: Some(&token),
            ct: ce,
            body: &event_body,
            chunked: false,
            ok: &[413],
            problem_json: true,
        },
        Case {
            what: "5 MiB event with a partner's token, chunked",
            path: "/v1/events",
            auth: Some(&token),
            ct: ce,
            body: &event_body,
            chunked: true,
            ok: &[413],
            problem_json: true,
        },
    ];
    let pid = w.server.pid();
    let before = w.head().await;
    let rss_before = rss_kib(pid);
    for round in 0..5 {
        for c in &cases {
            let headers: Vec<(&str, &str)> = c
                .auth
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            let r = request_with(
                w.url(),
                "POST",
                c.path,
                &headers,
                Some((c.ct, c.body)),
                c.chunked,
            )
            .await;
            if round > 0 {
                continue; // the answers are judged once; the rounds are for memory
            }
            match r {
                Err(e) => problems.push(format!(
                    "POST {} ({}): no answer ({e}); expected {:?}",
                    c.path, c.what, c.ok
                )),
                Ok(r) => {
                    if !c.ok.contains(&r.status) {
                        problems.push(format!(
                            "POST {} ({}): expected {:?}, got {}",
                            c.path,
                            c.what,
                            c.ok,
                            r.brief()
                        ));
                    } else if c.problem_json
                        && r.status == 413
                        && !r
                            .header("content-type")
                            .unwrap_or("")
                            .starts_with("application/problem+json")
                    {
                        problems.push(format!(
                            "POST {} ({}): 413 is not problem+json: {}",
                            c.path,
                            c.what,
                            r.brief()
                        ));
                    }
                }
            }
        }
    }
    let rss_after = rss_kib(pid);
    let grew = rss_after.saturating_sub(rss_before);
    eprintln!("limits: RSS {rss_before} KiB -> {rss_after} KiB over 5 rounds of oversize bodies");
    if grew > 64 * 1024 {
        problems.push(format!(
            "the server's RSS grew by {} MiB ({rss_before} -> {rss_after} KiB) over 5 rounds of \
             oversize bodies: they are read into memory",
            grew / 1024
        ));
    }
    let after = w.head().await;
    if after != before {
        problems.push(format!(
            "oversize bodies recorded {} event(s)",
            after - before
        ));
    }
    report("body limits", &problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_are_cut_off() {
    let w = World::seeded().await;
    let host = addr(w.url());
    const CONNECTIONS: usize = 200;
    const DEADLINE: Duration = Duration::from_secs(30);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = match TcpStream::connect(&host).await {
                // A refused connection is a cap doing its job.
                Err(_) => return Some(Duration::ZERO),
                Ok(s) => s,
            };
            if s.write_all(b"GET /v1/people/").await.is_err() {
                return Some(Duration::ZERO);
            }
            let opened = Instant::now();
            let mut buf = [0u8; 1024];
            // Closed by the server: read returns 0 (or a 408/400 then 0) or an error.
            let closed = tokio::time::timeout(DEADLINE + Duration::from_secs(2), async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => continue,
                    }
                }
            })
            .await;
            closed.ok().map(|()| opened.elapsed())
        }));
    }
    let mut open = 0;
    let mut slowest = Duration::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Some(d) => slowest = slowest.max(d),
            None => open += 1,
        }
    }
    eprintln!(
        "slow headers: {open} of {CONNECTIONS} still open after {:?}; the slowest closed after {slowest:?}",
        started.elapsed()
    );
    let mut problems = Vec::new();
    if open > 0 {
        problems.push(format!(
            "{open} of {CONNECTIONS} connections that sent only a partial request line were still \
             open after {:?} (no header-read timeout)",
            DEADLINE + Duration::from_secs(2)
        ));
    }
    if slowest > DEADLINE {
        problems.push(format!(
            "a slow-header connection was closed only after {slowest:?} (over {DEADLINE:?})"
        ));
    }
    // The server still answers afterwards.
    let r = crate::raw::request(w.url(), "GET", "/healthz", &[], None).await;
    if !matches!(&r, Ok(r) if r.status == 200) {
        problems.push(format!("GET /healthz after the slow connections: {r:?}"));
    }
    report("slow headers", &problems);
}

/// A body trickled (a declared 1 KiB, 10 bytes sent, then silence, the connection kept
/// open): the header timeout has ended, so only the body's own deadline (30 s) frees the
/// handler. Expect a 408 problem within 35 s, nothing recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off() {
    let w = World::seeded().await;
    let before = crate::support::auth::head(w.url()).await;
    let mut s = TcpStream::connect(addr(w.url())).await.expect("connect");
    let token = w.auth.token(PROBATION);
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/cloudevents+json\r\nContent-Length: 1024\r\n\r\n{{\"specver",
        addr(w.url())
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(40), async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&reply).to_string();
    assert!(read.is_ok(), "no answer to a trickled body after 40 s");
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "a trickled body after {:?}: {text}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(35));
    assert_eq!(crate::support::auth::head(w.url()).await, before);
}
