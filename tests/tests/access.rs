//! End-to-end access tests, written from DESIGN.md "Access" as an independent client: the
//! role x route matrix (checked against the served OpenAPI document), the access log and
//! its chain, reads that survive SIGKILL in the log, source spoofing over HTTP and NATS,
//! person scope, break glass, and `throughcare token`. Real binary, real sled, real
//! nats-server; every server runs with `--auth` on a file of synthetic principals.

mod support;

#[path = "access/log.rs"]
mod log;
#[path = "access/matrix.rs"]
mod matrix;
#[path = "access/scope.rs"]
mod scope;
#[path = "access/sessions.rs"]
mod sessions;
#[path = "access/spoofing.rs"]
mod spoofing;
#[path = "access/token_cli.rs"]
mod token_cli;

use std::path::Path;

use serde_json::{json, Value};
use support::auth::{head, start_with_auth, AuthFile, Caller, Spec};
use support::{event, nhs_number, nomis, Server};

/// The seeding partner's CloudEvents source (the harness's `event()` uses it).
pub const SEED_SOURCE: &str = "urn:throughcare:test:e2e";
pub const PROBATION: &str = "probation-south-central";
pub const PROBATION_SOURCE: &str = "urn:throughcare:partner:probation-south-central";
pub const HEALTHCARE: &str = "prison-healthcare-wci";
pub const HEALTHCARE_SOURCE: &str = "urn:throughcare:partner:prison-healthcare-wci";
pub const JO: &str = "jo.worker";
pub const JO_WORKER_ID: &str = "W-WCI-01";
pub const SAM: &str = "sam.worker";
pub const SAM_WORKER_ID: &str = "W-BNI-07";
pub const WCI_MANAGER: &str = "wci.manager";
pub const BNI_MANAGER: &str = "bni.manager";
pub const COMMISSIONER: &str = "kpi.commissioner";
pub const AUDITOR: &str = "ig.auditor";

/// The principals of every test's auth file.
pub fn principals() -> Vec<Spec> {
    vec![
        Spec::new("seeder", "PARTNER")
            .sources(&[SEED_SOURCE])
            .types(&["throughcare.*"]),
        Spec::new(PROBATION, "PARTNER")
            .sources(&[PROBATION_SOURCE])
            .types(&["throughcare.referral.*"]),
        Spec::new(HEALTHCARE, "PARTNER")
            .sources(&[HEALTHCARE_SOURCE])
            .types(&["throughcare.referral.*"]),
        Spec::new(JO, "WORKER").worker_id(JO_WORKER_ID),
        Spec::new(SAM, "WORKER").worker_id(SAM_WORKER_ID),
        Spec::new(WCI_MANAGER, "MANAGER").prisons(&["WCI"]),
        Spec::new(BNI_MANAGER, "MANAGER").prisons(&["BNI"]),
        Spec::new(COMMISSIONER, "COMMISSIONER"),
        Spec::new(AUDITOR, "AUDITOR"),
    ]
}

pub use support::auth::settle;
/// `at(m)`: `m` minutes before now; `in_days(n)`: the date `n` days from today.
pub use support::{date_in_days as in_days, minutes_ago as at};

/// A person of the seed.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub nomis: String,
    pub nhs: String,
}

/// A server with `--auth` and the seed:
/// - A: referred at WCI, accepted, allocated to W-WCI-01 (jo.worker);
/// - B: referred at BNI, accepted, allocated to W-BNI-07 (sam.worker);
/// - E: referred at WCI, accepted, allocated to W-BNI-07;
/// - C: referred at BNI, accepted, then transferred to WCI (not allocated);
/// - six more referrals at BNI only (so BNI counts are visible past suppression).
pub struct World {
    pub dir: tempfile::TempDir,
    pub auth: AuthFile,
    pub server: Server,
    pub extra: Vec<String>,
    pub a: Person,
    pub b: Person,
    pub c: Person,
    pub e: Person,
}

impl World {
    pub fn start() -> World {
        Self::start_with(&[])
    }

    /// Starts the server with `--auth` plus `extra` arguments (e.g. `--nats URL`), seeds.
    pub fn start_with(extra: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthFile::write(&dir.path().join("auth"), &principals());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let server = start_server(&dir.path().join("data"), &auth, &extra);
        let blank = |n: u64| Person {
            id: String::new(),
            nomis: nomis(n),
            nhs: nhs_number(n),
        };
        World {
            auth,
            server,
            extra,
            a: blank(7001),
            b: blank(7002),
            c: blank(7004),
            e: blank(7003),
            dir,
        }
    }

    pub async fn seeded(extra: &[&str]) -> World {
        let mut w = Self::start_with(extra);
        w.seed().await;
        w
    }

    pub fn url(&self) -> String {
        self.server.url.clone()
    }

    /// A caller with principal `name`'s bearer token.
    pub fn as_(&self, name: &str) -> Caller {
        Caller::bearer(&self.server.url, &self.auth.token(name))
    }

    pub fn anonymous(&self) -> Caller {
        Caller::anonymous(&self.server.url)
    }

    /// SIGKILL and start again on the same data dir and auth file.
    pub fn restart(&mut self) {
        self.server.kill();
        self.server = start_server(&self.dir.path().join("data"), &self.auth, &self.extra);
    }

    async fn seed(&mut self) {
        let seeder = self.as_("seeder");
        let post = |e: Value| {
            let seeder = seeder.clone();
            async move {
                let r = seeder.submit(&e).await;
                assert!(
                    r.status == 201,
                    "seeding {}: {}\n(the seeding PARTNER has source {SEED_SOURCE} and types throughcare.*)",
                    e["type"],
                    r.brief()
                );
                r.body["person_id"].as_str().unwrap().to_string()
            }
        };
        let refer = |p: &Person, id: &str, prison: &str, release_in: i64| {
            event(
                "referral.received",
                &format!("seed-ref-{id}"),
                &at(120),
                json!({"person": {"nomis": p.nomis, "nhs_number": p.nhs}, "referral_id": format!("REF-{id}"),
                       "referrer": {"kind": "PRISON_HEALTHCARE"}, "prison": prison,
                       "expected_release_date": in_days(release_in), "vulnerabilities": ["MENTAL_HEALTH"]}),
            )
        };
        let accept = |p: &Person, id: &str| {
            event(
                "referral.accepted",
                &format!("seed-acc-{id}"),
                &at(110),
                json!({"person": {"nomis": p.nomis}, "referral_id": format!("REF-{id}")}),
            )
        };
        let allocate = |p: &Person, id: &str, worker: &str| {
            event(
                "case.allocated",
                &format!("seed-alloc-{id}"),
                &at(100),
                json!({"person": {"nomis": p.nomis}, "worker_id": worker, "worker_role": "PEER_SUPPORT"}),
            )
        };
        self.a.id = post(refer(&self.a, "A", "WCI", 30)).await;
        post(accept(&self.a, "A")).await;
        post(allocate(&self.a, "A", JO_WORKER_ID)).await;
        self.b.id = post(refer(&self.b, "B", "BNI", 40)).await;
        post(accept(&self.b, "B")).await;
        post(allocate(&self.b, "B", SAM_WORKER_ID)).await;
        self.e.id = post(refer(&self.e, "E", "WCI", 50)).await;
        post(accept(&self.e, "E")).await;
        post(allocate(&self.e, "E", SAM_WORKER_ID)).await;
        self.c.id = post(refer(&self.c, "C", "BNI", 60)).await;
        post(accept(&self.c, "C")).await;
        post(event(
            "prisoner.transferred",
            "seed-transfer-C",
            &at(90),
            json!({"person": {"nomis": self.c.nomis}, "from_prison": "BNI", "to_prison": "WCI"}),
        ))
        .await;
        for i in 0..6u64 {
            let p = Person {
                id: String::new(),
                nomis: nomis(7100 + i),
                nhs: nhs_number(7100 + i),
            };
            post(refer(&p, &format!("X{i}"), "BNI", 20 + i as i64)).await;
        }
        settle(&self.server.url).await;
    }
}

pub fn start_server(data: &Path, auth: &AuthFile, extra: &[String]) -> Server {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    start_with_auth(data, auth, &extra)
}

/// Fails with every collected problem, one per line.
pub fn report(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!(
            "{what}: {} problem(s):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
    }
}

/// `head` now, for "nothing recorded" checks.
pub async fn ledger_head(w: &World) -> u64 {
    head(&w.server.url).await
}
