//! The engine of the subject-spelling matrix, generated from the served
//! `/v1/openapi.json` so that a new route is attacked without a new line: every GET
//! operation that names a subject (a `{id}` or `{worker_id}` path parameter, or an
//! `identifier`, `prn` or `person` query parameter) x every spelling of the subject an
//! attacker would try x every role's in-scope and out-of-scope caller (and no token).
//! `subject_matrix` judges the answers; `access_truth` holds the access log to them.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::Value;

use crate::raw::{request, RawResp};
use crate::support::auth::enc;
use crate::world::*;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    /// The principal (None: no credentials).
    pub name: Option<&'static str>,
    pub role: &'static str,
}

impl Who {
    pub fn label(&self) -> String {
        match self.name {
            Some(n) => format!("{n} ({})", self.role),
            None => "no token".into(),
        }
    }
}

/// The callers of the matrix: each role's in-scope and out-of-scope principal.
pub fn callers() -> Vec<Who> {
    vec![
        Who {
            name: Some(JO),
            role: "WORKER",
        },
        Who {
            name: Some(WCI_MANAGER),
            role: "MANAGER",
        },
        Who {
            name: Some(BNI_MANAGER),
            role: "MANAGER",
        },
        Who {
            name: Some(COMMISSIONER),
            role: "COMMISSIONER",
        },
        Who {
            name: Some(PROBATION),
            role: "PARTNER",
        },
        Who {
            name: Some(AUDITOR),
            role: "AUDITOR",
        },
        Who {
            name: None,
            role: "NONE",
        },
    ]
}

/// Where an operation names its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A path parameter (`id` or `worker_id`).
    Path(String),
    /// A query parameter (`identifier`, `prn`, `person`).
    Query(String),
}

/// One GET operation of the OpenAPI document that names a subject.
#[derive(Debug, Clone)]
pub struct Op {
    pub path: String,
    pub slot: Slot,
    /// `x-roles` (`open` for anyone).
    pub roles: Vec<String>,
    /// A page (tag `pages`) rather than an API.
    pub page: bool,
    /// The purpose to pass when the operation restricts purposes (an enum).
    pub purpose: Option<String>,
}

impl Op {
    pub fn allows(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role || r == "open")
    }
    /// Whether the subject is a worker id.
    pub fn worker(&self) -> bool {
        self.slot == Slot::Path("worker_id".into())
    }
}

/// The operations of the served document that name a subject.
pub async fn subject_ops(url: &str) -> Vec<Op> {
    let r = request(url, "GET", "/v1/openapi.json", &[], None)
        .await
        .expect("GET /v1/openapi.json");
    assert_eq!(r.status, 200, "GET /v1/openapi.json: {}", r.brief());
    let doc: Value = serde_json::from_str(&r.text).expect("the OpenAPI document is JSON");
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(op) = item.get("get") else { continue };
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let slot = if path.contains("{id}") {
            Some(Slot::Path("id".into()))
        } else if path.contains("{worker_id}") {
            Some(Slot::Path("worker_id".into()))
        } else {
            params
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .find(|n| ["identifier", "prn", "person"].contains(n))
                .map(|n| Slot::Query(n.to_string()))
        };
        let Some(slot) = slot else { continue };
        let purpose = params
            .iter()
            .find(|p| p["name"] == "purpose" && p["in"] == "query")
            .and_then(|p| p["schema"]["enum"].as_array())
            .and_then(|e| e.first())
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(Op {
            path: path.clone(),
            slot,
            roles: op["x-roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            page: op["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "pages")),
            purpose,
        });
    }
    out
}

/// The ways an attacker spells a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Spelling {
    Canonical,
    PctFirst,
    PctLast,
    PctAll,
    DoubleFirst,
    Lower,
    TrailingSlash,
    Semicolon,
    DotDot,
    /// `?purpose=AUDIT&purpose=DIRECT_CARE` on a path subject; on a query subject the
    /// parameter twice, the caller's own subject first.
    DupParam,
    /// On a query subject: the parameter twice, the target first.
    DupParamTargetFirst,
}

impl Spelling {
    pub const ALL: &'static [Spelling] = &[
        Spelling::Canonical,
        Spelling::PctFirst,
        Spelling::PctLast,
        Spelling::PctAll,
        Spelling::DoubleFirst,
        Spelling::Lower,
        Spelling::TrailingSlash,
        Spelling::Semicolon,
        Spelling::DotDot,
        Spelling::DupParam,
        Spelling::DupParamTargetFirst,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Spelling::Canonical => "canonical",
            Spelling::PctFirst => "first char %-encoded",
            Spelling::PctLast => "last char %-encoded",
            Spelling::PctAll => "all chars %-encoded",
            Spelling::DoubleFirst => "first char double-encoded",
            Spelling::Lower => "lower case",
            Spelling::TrailingSlash => "trailing slash",
            Spelling::Semicolon => "`;x` appended",
            Spelling::DotDot => "`..` segment",
            Spelling::DupParam => "duplicate parameter",
            Spelling::DupParamTargetFirst => "duplicate parameter, target first",
        }
    }

    /// Whether a person id so spelt decodes to that very id (a ULID is case-insensitive).
    pub fn decodes_to_person(self) -> bool {
        matches!(
            self,
            Spelling::Canonical
                | Spelling::PctFirst
                | Spelling::PctLast
                | Spelling::PctAll
                | Spelling::Lower
                | Spelling::DupParam
        )
    }

    fn applies(self, slot: &Slot) -> bool {
        match slot {
            Slot::Path(_) => self != Spelling::DupParamTargetFirst,
            Slot::Query(_) => !matches!(
                self,
                Spelling::TrailingSlash | Spelling::Semicolon | Spelling::DotDot
            ),
        }
    }
}

fn pct(c: char) -> String {
    let mut b = [0u8; 4];
    c.encode_utf8(&mut b)
        .bytes()
        .map(|x| format!("%{x:02X}"))
        .collect()
}

/// `value` spelt for a path segment or a query value (`other`: for `..` and duplicates).
pub fn spell(value: &str, spelling: Spelling, other: &str, prefix: &str) -> String {
    let n = value.chars().count();
    let body: String = match spelling {
        Spelling::PctFirst => value
            .chars()
            .enumerate()
            .map(|(i, c)| if i == 0 { pct(c) } else { c.to_string() })
            .collect(),
        Spelling::PctLast => value
            .chars()
            .enumerate()
            .map(|(i, c)| if i + 1 == n { pct(c) } else { c.to_string() })
            .collect(),
        Spelling::PctAll => value.chars().map(pct).collect(),
        Spelling::DoubleFirst => value
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    pct(c).replace('%', "%25")
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Spelling::Lower => value.to_lowercase(),
        Spelling::Semicolon => format!("{value};x"),
        Spelling::DotDot => format!("{other}/../{value}"),
        _ => value.to_string(),
    };
    format!("{prefix}{body}")
}

/// A subject of the matrix.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `A`, `B`, `W-WCI-01`...
    pub label: String,
    /// A person (its id) or a worker id.
    pub value: String,
    /// The persons whose identifiers an answer about this subject shows.
    pub shows: Vec<Person>,
    /// For a person subject, its NOMIS (the value of `identifier`/`prn` queries).
    pub nomis: Option<String>,
}

/// What the contract lets a caller see of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// In scope: may be 200.
    In,
    /// Out of scope: never 200 (APIs), never the subject's identifiers in the body.
    Out,
    /// A manager reading a caseload of a worker outside its prisons: may be 200, but the
    /// people it shows must be of the manager's prisons.
    Filtered,
}

/// One request of the matrix and its answer.
#[derive(Debug, Clone)]
pub struct Obs {
    pub op: Op,
    pub who: Who,
    pub subject: Subject,
    pub spelling: Spelling,
    pub expect: Expect,
    pub method: String,
    pub target: String,
    pub resp: Result<RawResp, String>,
    /// The same request about a person nobody holds (out-of-scope person cells only):
    /// that person's id, the target and the answer.
    pub unknown: Option<(String, String, Result<RawResp, String>)>,
}

impl Obs {
    pub fn what(&self) -> String {
        let status = match &self.resp {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error {e}"),
        };
        format!(
            "{} {} [{} of {}, {}] as {} -> {status}",
            self.method,
            self.target,
            self.spelling.label(),
            self.subject.label,
            self.op.path,
            self.who.label()
        )
    }
}

/// The persons `who` may read.
fn reads(w: &World, who: &Who) -> Vec<String> {
    match who.name {
        Some(JO) => vec![w.a.id.clone()],
        Some(WCI_MANAGER) => vec![w.a.id.clone(), w.c.id.clone()],
        Some(BNI_MANAGER) => vec![w.b.id.clone()],
        Some(AUDITOR) => vec![w.a.id.clone(), w.b.id.clone(), w.c.id.clone()],
        _ => vec![],
    }
}

pub fn expectation(w: &World, op: &Op, who: &Who, subject: &Subject) -> Expect {
    if who.name.is_none() || !op.allows(who.role) {
        return Expect::Out;
    }
    if who.role == "AUDITOR" {
        return Expect::In;
    }
    let readable = reads(w, who);
    if op.worker() {
        return match who.role {
            "WORKER" if who.name == Some(JO) && subject.value == JO_WORKER => Expect::In,
            "MANAGER" if subject.shows.iter().all(|p| readable.contains(&p.id)) => Expect::In,
            "MANAGER" => Expect::Filtered,
            _ => Expect::Out,
        };
    }
    if subject.shows.iter().all(|p| readable.contains(&p.id)) {
        Expect::In
    } else {
        Expect::Out
    }
}

/// The person subjects (A, B) and worker subjects (A's and B's workers).
pub fn subjects(w: &World, only_b: bool) -> (Vec<Subject>, Vec<Subject>) {
    let person = |label: &str, p: &Person| Subject {
        label: label.into(),
        value: p.id.clone(),
        shows: vec![p.clone()],
        nomis: Some(p.nomis.clone()),
    };
    let worker = |id: &str, p: &Person| Subject {
        label: id.into(),
        value: id.into(),
        shows: vec![p.clone()],
        nomis: None,
    };
    let mut people = vec![person("B", &w.b)];
    let mut workers = vec![worker(B_WORKER, &w.b)];
    if !only_b {
        people.insert(0, person("A", &w.a));
        workers.insert(0, worker(JO_WORKER, &w.a));
    }
    (people, workers)
}

/// The request target of `op` about `subject` spelt `spelling` by `who`; None when the
/// spelling does not apply to the operation.
pub fn target_of(
    w: &World,
    op: &Op,
    who: &Who,
    subject: &Subject,
    value: &str,
    spelling: Spelling,
) -> Option<String> {
    if !spelling.applies(&op.slot) {
        return None;
    }
    // The caller's own subject of the same kind, else the other seeded one.
    let other = if op.worker() {
        if who.name == Some(JO) || subject.value != JO_WORKER {
            JO_WORKER.to_string()
        } else {
            B_WORKER.to_string()
        }
    } else {
        let own = reads(w, who);
        own.into_iter()
            .find(|p| *p != subject.value)
            .unwrap_or_else(|| {
                if subject.value == w.a.id {
                    w.b.id.clone()
                } else {
                    w.a.id.clone()
                }
            })
    };
    let mut query: Vec<String> = Vec::new();
    let mut path = op.path.clone();
    match &op.slot {
        Slot::Path(name) => {
            path = path.replace(&format!("{{{name}}}"), &spell(value, spelling, &other, ""));
            if spelling == Spelling::TrailingSlash {
                path.push('/');
            }
            if spelling == Spelling::DupParam {
                query.push("purpose=AUDIT&purpose=DIRECT_CARE".into());
            }
        }
        Slot::Query(name) => {
            // identifier=nomis:<NOMIS>; prn=<NOMIS>; person=<id>.
            let (val, other_val, prefix) = match name.as_str() {
                "identifier" => (
                    subject.nomis.clone()?,
                    nomis_of(w, &other)?,
                    "nomis:".to_string(),
                ),
                "prn" => (subject.nomis.clone()?, nomis_of(w, &other)?, String::new()),
                _ => (value.to_string(), other.clone(), String::new()),
            };
            let me = spell(&val, spelling, &other_val, &enc(&prefix));
            let them = format!("{}{}", enc(&prefix), other_val);
            match spelling {
                Spelling::DupParam => query.push(format!("{name}={them}&{name}={me}")),
                Spelling::DupParamTargetFirst => query.push(format!("{name}={me}&{name}={them}")),
                _ => query.push(format!("{name}={me}")),
            }
        }
    }
    // Any other path parameter of a future route gets a plain value.
    while let (Some(i), Some(j)) = (path.find('{'), path.find('}')) {
        if j < i {
            break;
        }
        path.replace_range(i..=j, "x");
    }
    if spelling != Spelling::DupParam || matches!(op.slot, Slot::Query(_)) {
        if let Some(p) = &op.purpose {
            query.push(format!("purpose={p}"));
        }
    }
    Some(if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    })
}

fn nomis_of(w: &World, id: &str) -> Option<String> {
    [&w.a, &w.b, &w.c]
        .into_iter()
        .find(|p| p.id == id || p.nomis == id)
        .map(|p| p.nomis.clone())
        .or_else(|| Some(id.to_string()))
}

/// The `Authorization` header of `who`.
pub fn authorization(w: &World, who: &Who) -> Option<String> {
    who.name.map(|n| format!("Bearer {}", w.auth.token(n)))
}

/// Runs every GET cell of the matrix (eight at a time) about `people` and `workers`.
///
/// With `unknown`, each out-of-scope person cell is also asked about a person nobody holds.
pub async fn run_gets(
    w: &World,
    people: &[Subject],
    workers: &[Subject],
    unknown: bool,
) -> Vec<Obs> {
    let ops = subject_ops(w.url()).await;
    assert!(
        ops.iter().any(|o| o.path == "/v1/people/{id}/journey"),
        "the OpenAPI document lists no GET /v1/people/{{id}}/journey: {ops:?}"
    );
    // A person nobody holds, for "answered exactly as an unknown person".
    let with_unknown = unknown;
    let unknown = Subject {
        label: "unknown".into(),
        value: ulid::Ulid::new().to_string(),
        shows: vec![],
        nomis: Some(crate::support::nomis(81_999)),
    };
    let mut cells = Vec::new();
    for op in &ops {
        let subjects = if op.worker() { workers } else { people };
        for subject in subjects {
            for who in callers() {
                let expect = expectation(w, op, &who, subject);
                for &spelling in Spelling::ALL {
                    let Some(target) = target_of(w, op, &who, subject, &subject.value, spelling)
                    else {
                        continue;
                    };
                    let unknown_target = (with_unknown && expect == Expect::Out && !op.worker())
                        .then(|| target_of(w, op, &who, &unknown, &unknown.value, spelling))
                        .flatten();
                    cells.push((
                        op.clone(),
                        who,
                        subject.clone(),
                        spelling,
                        expect,
                        target,
                        unknown_target,
                    ));
                }
            }
        }
    }
    let url = w.url().to_string();
    let auths: BTreeMap<&str, String> = callers()
        .iter()
        .filter_map(|c| Some((c.name?, authorization(w, c)?)))
        .collect();
    futures::stream::iter(cells)
        .map(
            |(op, who, subject, spelling, expect, target, unknown_target)| {
                let url = url.clone();
                let auth = who.name.and_then(|n| auths.get(n).cloned());
                let unknown_id = unknown.value.clone();
                async move {
                    let headers: Vec<(&str, &str)> = auth
                        .as_deref()
                        .map(|a| vec![("Authorization", a)])
                        .unwrap_or_default();
                    let resp = request(&url, "GET", &target, &headers, None).await;
                    let unknown = match unknown_target {
                        Some(t) => {
                            let r = request(&url, "GET", &t, &headers, None).await;
                            Some((unknown_id, t, r))
                        }
                        None => None,
                    };
                    Obs {
                        op,
                        who,
                        subject,
                        spelling,
                        expect,
                        method: "GET".into(),
                        target,
                        resp,
                        unknown,
                    }
                }
            },
        )
        .buffer_unordered(8)
        .collect()
        .await
}
