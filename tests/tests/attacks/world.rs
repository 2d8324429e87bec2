//! The attack suite's own seed: a small population on a real `throughcare serve --auth`,
//! written from DESIGN.md "Access" alone (not shared with the access tests), so that each
//! attack has someone in scope and someone out of scope for every role.
//!
//! - A: referred at WCI, accepted, allocated to W-WCI-01 (`jo.worker`), release in 10 days;
//! - B: referred at BNI, accepted, allocated to W-BNI-07 (no principal), release in 12 days;
//! - C: referred at WCI and left waiting for triage (the manager's queue shows it).

use serde_json::{json, Value};

use crate::support::auth::{head, settle, AuthFile, Caller, Resp, Spec};
use crate::support::{date_in_days, minutes_ago, nhs_number, nomis, Server};

/// The seeding partner's CloudEvents source.
pub const SEED_SOURCE: &str = "urn:throughcare:partner:attack-seeder";
pub const SEEDER: &str = "attack-seeder";
pub const PROBATION: &str = "probation-attacks";
pub const PROBATION_SOURCE: &str = "urn:throughcare:partner:probation-attacks";
pub const JO: &str = "jo.worker";
pub const JO_WORKER: &str = "W-WCI-01";
pub const B_WORKER: &str = "W-BNI-07";
pub const WCI_MANAGER: &str = "wci.manager";
pub const BNI_MANAGER: &str = "bni.manager";
pub const COMMISSIONER: &str = "kpi.commissioner";
pub const AUDITOR: &str = "ig.auditor";

/// Every principal of the auth file. Each PARTNER lists its `types`.
pub fn principals() -> Vec<Spec> {
    vec![
        Spec::new(SEEDER, "PARTNER")
            .sources(&[SEED_SOURCE])
            .types(&["throughcare.*"]),
        Spec::new(PROBATION, "PARTNER")
            .sources(&[PROBATION_SOURCE])
            .types(&["throughcare.referral.*"]),
        Spec::new(JO, "WORKER").worker_id(JO_WORKER),
        Spec::new(WCI_MANAGER, "MANAGER").prisons(&["WCI"]),
        Spec::new(BNI_MANAGER, "MANAGER").prisons(&["BNI"]),
        Spec::new(COMMISSIONER, "COMMISSIONER"),
        Spec::new(AUDITOR, "AUDITOR"),
    ]
}

/// A seeded person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub nomis: String,
    pub nhs: String,
}

impl Person {
    fn blank(seed: u64) -> Person {
        Person {
            id: String::new(),
            nomis: nomis(seed),
            nhs: nhs_number(seed),
        }
    }

    /// The first of its identifiers that `text` contains, if any.
    pub fn named_in(&self, text: &str) -> Option<&str> {
        [&self.id, &self.nomis, &self.nhs]
            .into_iter()
            .find(|s| !s.is_empty() && text.contains(s.as_str()))
            .map(String::as_str)
    }
}

/// A running server with the seed.
pub struct World {
    /// Holds the data directory and auth file for the server's lifetime.
    _dir: tempfile::TempDir,
    pub auth: AuthFile,
    pub server: Server,
    pub a: Person,
    pub b: Person,
    pub c: Person,
}

/// A CloudEvent; `source: None` leaves it out (staff: the server fills it in).
pub fn cloudevent(source: Option<&str>, id: &str, kind: &str, data: Value) -> Value {
    let mut e = json!({
        "specversion": "1.0",
        "id": id,
        "type": format!("throughcare.{kind}.v1"),
        "time": minutes_ago(1),
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(s) = source {
        e["source"] = json!(s);
    }
    e
}

/// A fresh event id.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// `referral.received` data for `person` at `prison`.
pub fn referral_data(person: Value, referral_id: &str, prison: &str, release_in: i64) -> Value {
    json!({
        "person": person,
        "referral_id": referral_id,
        "referrer": {"kind": "PROBATION"},
        "prison": prison,
        "expected_release_date": date_in_days(release_in),
        "vulnerabilities": ["MENTAL_HEALTH"],
    })
}

impl World {
    /// Starts a server on a fresh directory and seeds A, B and C.
    pub async fn seeded() -> World {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthFile::write(&dir.path().join("auth"), &principals());
        let server = crate::support::auth::start_with_auth(&dir.path().join("data"), &auth, &[]);
        let mut w = World {
            _dir: dir,
            auth,
            server,
            a: Person::blank(81_001),
            b: Person::blank(81_002),
            c: Person::blank(81_003),
        };
        w.seed().await;
        w
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A caller with principal `name`'s bearer token.
    pub fn as_(&self, name: &str) -> Caller {
        Caller::bearer(&self.server.url, &self.auth.token(name))
    }

    pub fn anonymous(&self) -> Caller {
        Caller::anonymous(&self.server.url)
    }

    /// The ledger head, for "nothing recorded".
    pub async fn head(&self) -> u64 {
        head(&self.server.url).await
    }

    /// Posts one seeding event; panics unless it is recorded.
    pub async fn seed_post(&self, kind: &str, data: Value) -> Resp {
        let e = cloudevent(Some(SEED_SOURCE), &new_id(), kind, data);
        let r = self.as_(SEEDER).submit(&e).await;
        assert_eq!(
            r.status,
            201,
            "seeding {kind}: {} (the seeding PARTNER has all types)",
            r.brief()
        );
        r
    }

    async fn seed(&mut self) {
        for (p, tag, prison, release_in, worker) in [
            (self.a.clone(), "A", "WCI", 10, Some(JO_WORKER)),
            (self.b.clone(), "B", "BNI", 12, Some(B_WORKER)),
            (self.c.clone(), "C", "WCI", 20, None),
        ] {
            let r = self
                .seed_post(
                    "referral.received",
                    referral_data(
                        json!({"nomis": p.nomis, "nhs_number": p.nhs}),
                        &format!("REF-ATTACK-{tag}"),
                        prison,
                        release_in,
                    ),
                )
                .await;
            let id = r.body["person_id"].as_str().unwrap().to_string();
            if let Some(worker) = worker {
                self.seed_post(
                    "referral.accepted",
                    json!({"person": {"person_id": id}, "referral_id": format!("REF-ATTACK-{tag}")}),
                )
                .await;
                self.seed_post(
                    "case.allocated",
                    json!({"person": {"person_id": id}, "worker_id": worker,
                           "worker_role": "PEER_SUPPORT"}),
                )
                .await;
            }
            match tag {
                "A" => self.a.id = id,
                "B" => self.b.id = id,
                _ => self.c.id = id,
            }
        }
        settle(&self.server.url).await;
    }

    /// Every access-log entry about `person`, from `GET /v1/people/{id}/access` (paged).
    pub async fn person_access(&self, person: &str) -> Result<Vec<Value>, String> {
        let auditor = self.as_(AUDITOR);
        let mut out = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let mut path = format!("/v1/people/{person}/access?limit=1000");
            if let Some(a) = after {
                path += &format!("&after={a}");
            }
            let r = auditor.get(&path).await;
            if r.status != 200 {
                return Err(format!("GET {path} as {AUDITOR}: {}", r.brief()));
            }
            let page = r.body["entries"]
                .as_array()
                .ok_or_else(|| format!("GET {path}: no entries: {}", r.brief()))?;
            out.extend(page.iter().cloned());
            match r.body["next_after"].as_u64() {
                Some(n) if !page.is_empty() && after.is_none_or(|a| n > a) => after = Some(n),
                _ => break,
            }
        }
        Ok(out)
    }
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

/// Every `<form>` of a page: its `action` and its fields by name (inputs with their
/// `value`, selects with their first non-empty option).
pub fn forms(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<form") {
        let form = &rest[i..];
        let end = form.find("</form>").unwrap_or(form.len());
        let tag_end = form.find('>').unwrap_or(0);
        let action = attr(&form[..tag_end], "action").unwrap_or_default();
        let body = &form[..end];
        let mut fields = Vec::new();
        for (open, is_select) in [("<input", false), ("<select", true)] {
            let mut scan = body;
            while let Some(j) = scan.find(open) {
                let tag = &scan[j..];
                let close = tag.find('>').unwrap_or(tag.len());
                let tag_text = &tag[..close];
                if let Some(name) = attr(tag_text, "name") {
                    let value = if is_select {
                        let options = &tag[close..tag.find("</select>").unwrap_or(tag.len())];
                        options
                            .split("<option")
                            .skip(1)
                            .filter_map(|o| attr(&format!(" {o}"), "value"))
                            .find(|v| !v.is_empty())
                            .unwrap_or_default()
                    } else {
                        attr(tag_text, "value").unwrap_or_default()
                    };
                    fields.push((name, value));
                }
                scan = &tag[close..];
            }
        }
        out.push((action, fields));
        rest = &form[end..];
    }
    out
}

/// The value of attribute `name` in a tag's text (double-quoted; `&amp;` unescaped).
pub fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let j = tag[i..].find('"')? + i;
    Some(tag[i..j].replace("&amp;", "&"))
}
