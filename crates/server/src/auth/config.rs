//! The auth file of `serve --auth FILE` (DESIGN.md "Access"): `[[principal]]` blocks, an
//! optional `[jwt]` table and an optional `[metrics]` table. The file is checked whole and
//! every problem is reported with where it is, so an operator fixes it in one pass rather
//! than one restart per mistake.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::principal::{Principal, Role};
use super::token::{digest, Digest};

/// The checked file.
#[derive(Debug)]
pub(crate) struct AuthConfig {
    /// Static principals by the SHA-256 of their token.
    pub principals: HashMap<Digest, Principal>,
    pub jwt: Option<JwtConfig>,
    /// The `/metrics` scrape token's digest.
    pub metrics: Option<Digest>,
}

/// The `[jwt]` table.
#[derive(Debug, Clone)]
pub(crate) struct JwtConfig {
    pub jwks: JwksSource,
    pub issuer: String,
    pub audience: String,
}

/// Where the identity provider's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwksSource {
    /// A file; a relative path in the auth file is joined to the base directory given to
    /// the parser (the process's working directory for `Authenticator::load`).
    File(PathBuf),
    /// An `https://` URL, fetched at start and again on an unknown `kid`.
    Url(String),
}

impl std::fmt::Display for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::File(p) => write!(f, "{}", p.display()),
            JwksSource::Url(u) => f.write_str(u),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    name: String,
    role: String,
    token_sha256: String,
    // Options, not defaults, so that a field given to a role it does not apply to (even
    // an empty list) is reported rather than silently ignored.
    worker_id: Option<String>,
    prisons: Option<Vec<String>>,
    sources: Option<Vec<String>>,
    types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    jwks: String,
    issuer: String,
    audience: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    token_sha256: String,
}

/// The scope fields a principal's role needs but lacks (WORKER: `worker_id`, MANAGER:
/// `prisons`, PARTNER: `sources` and `types`). Shared by the file and JWT claims, so both
/// refuse the same incomplete principals. A PARTNER's `types` are required because an
/// empty list admits nothing (see `Principal::types`): a partner without them could not
/// submit anything, and the old reading ("all") let partners grant staff scope.
pub(crate) fn missing_scope(p: &Principal) -> Vec<&'static str> {
    let mut missing = Vec::new();
    match p.role {
        Role::Partner => {
            if p.sources.is_empty() {
                missing.push("sources");
            }
            if p.types.is_empty() {
                missing.push("types");
            }
        }
        Role::Worker if p.worker_id.as_deref().is_none_or(str::is_empty) => {
            missing.push("worker_id")
        }
        Role::Manager if p.prisons.is_empty() => missing.push("prisons"),
        _ => {}
    }
    missing
}

/// Whether a scope field means anything for a role; the file refuses fields that do not,
/// since they usually mean the operator expected a limit that would not be applied.
fn applies(field: &str, role: Role) -> bool {
    match field {
        "worker_id" => role == Role::Worker,
        "prisons" => matches!(role, Role::Manager | Role::Commissioner),
        "sources" | "types" => role == Role::Partner,
        _ => true,
    }
}

/// Whether a name (the file's `name`, a JWT's `sub`) is usable: it is written into the
/// access log and into `urn:throughcare:staff:<name>`, so visible ASCII only.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Prison codes are compared case-insensitively; they are kept upper case (as the
/// `Principal` documents).
pub(crate) fn normalize_prisons(prisons: Vec<String>) -> Vec<String> {
    prisons
        .into_iter()
        .map(|p| p.to_ascii_uppercase())
        .collect()
}

fn parse_hash(s: &str) -> Result<Digest, String> {
    let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(
            "token_sha256: must be 64 lower-case hex characters (the SHA-256 of the token)".into(),
        );
    }
    let mut d = [0u8; 32];
    hex::decode_to_slice(s, &mut d).map_err(|e| format!("token_sha256: {e}"))?;
    // The digest of the empty string would let an empty credential in.
    if d == digest("") {
        return Err("token_sha256: is the SHA-256 of the empty string".into());
    }
    Ok(d)
}

/// Parses and checks the whole file; `Err` holds every problem found, each prefixed with
/// where it is. `base_dir` is what a relative `jwks` path is joined to.
pub(crate) fn parse(text: &str, base_dir: &Path) -> Result<AuthConfig, Vec<String>> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| vec![format!("not valid TOML: {e}")])?;
    let mut problems = Vec::new();
    let mut principals = HashMap::new();
    let mut jwt = None;
    let mut metrics = None;
    // Where each token digest was first seen, to name both places of a duplicate.
    let mut hash_at: HashMap<Digest, String> = HashMap::new();
    let mut names: HashSet<String> = HashSet::new();

    for (key, value) in table {
        match key.as_str() {
            "principal" => {
                let toml::Value::Array(items) = value else {
                    problems.push(
                        "principal: must be an array of tables, written [[principal]]".into(),
                    );
                    continue;
                };
                let mut lines = principal_lines(text);
                if lines.len() != items.len() {
                    // Not every principal is a `[[principal]]` block (an inline array):
                    // numbering would point at the wrong lines, so leave lines out.
                    lines.clear();
                }
                for (i, item) in items.into_iter().enumerate() {
                    let at = where_principal(i, &item, lines.get(i).copied());
                    if let Some((d, p)) = check_principal(item, &at, &mut problems) {
                        if !names.insert(p.name.clone()) {
                            problems.push(format!("{at}: name: duplicate name {:?}", p.name));
                        }
                        if let Some(first) = hash_at.get(&d) {
                            problems.push(format!("{at}: token_sha256: duplicate of {first}'s"));
                        } else {
                            hash_at.insert(d, at);
                        }
                        principals.insert(d, p);
                    }
                }
            }
            "jwt" => match value.try_into::<RawJwt>() {
                Ok(raw) => jwt = check_jwt(raw, base_dir, &mut problems),
                Err(e) => problems.push(format!("[jwt]: {}", serde_message(&e))),
            },
            "metrics" => match value.try_into::<RawMetrics>() {
                Ok(raw) => match parse_hash(&raw.token_sha256) {
                    Ok(d) => metrics = Some(d),
                    Err(e) => problems.push(format!("[metrics]: {e}")),
                },
                Err(e) => problems.push(format!("[metrics]: {}", serde_message(&e))),
            },
            other => problems.push(format!(
                "{other}: unknown key or table (expected [[principal]], [jwt] or [metrics])"
            )),
        }
    }

    if let Some(d) = metrics {
        // The scrape token must not also sign someone in (nor the other way round).
        if let Some(at) = hash_at.get(&d) {
            problems.push(format!("[metrics]: token_sha256: same as {at}'s token"));
        }
    }
    if principals.is_empty() && jwt.is_none() && problems.is_empty() {
        problems.push("no [[principal]] and no [jwt]: nobody could sign in".into());
    }

    if problems.is_empty() {
        Ok(AuthConfig {
            principals,
            jwt,
            metrics,
        })
    } else {
        Err(problems)
    }
}

/// "principal #2 (\"jo.worker\", line 7)": 1-based, with the name when there is one to
/// show and the line of its `[[principal]]` header when known.
fn where_principal(i: usize, item: &toml::Value, line: Option<usize>) -> String {
    let name = item.get("name").and_then(toml::Value::as_str);
    match (name, line) {
        (Some(name), Some(line)) => format!("principal #{} ({name:?}, line {line})", i + 1),
        (Some(name), None) => format!("principal #{} ({name:?})", i + 1),
        (None, Some(line)) => format!("principal #{} (line {line})", i + 1),
        (None, None) => format!("principal #{}", i + 1),
    }
}

/// The 1-based lines of the file's `[[principal]]` headers, in order. The parsed table
/// keeps no positions, and an operator fixing a long file wants the line, not a count.
fn principal_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            line.trim_start()
                .strip_prefix("[[")
                .and_then(|rest| rest.split_once("]]"))
                .is_some_and(|(key, after)| {
                    let after = after.trim_start();
                    key.trim() == "principal" && (after.is_empty() || after.starts_with('#'))
                })
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The serde message without toml's source excerpt (the values were parsed from a
/// `Value`, so there is no position to show; `where` is given by the caller).
fn serde_message(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

fn check_principal(
    item: toml::Value,
    at: &str,
    problems: &mut Vec<String>,
) -> Option<(Digest, Principal)> {
    let raw: RawPrincipal = match item.try_into() {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(format!("{at}: {}", serde_message(&e)));
            return None;
        }
    };
    let before = problems.len();
    if !valid_name(&raw.name) {
        problems.push(format!(
            "{at}: name: must be 1 to 200 visible ASCII characters (no spaces)"
        ));
    }
    let role = Role::parse(&raw.role);
    if role.is_none() {
        problems.push(format!(
            "{at}: role: unknown role {:?} (expected one of PARTNER, WORKER, MANAGER, COMMISSIONER, AUDITOR)",
            raw.role
        ));
    }
    let hash = parse_hash(&raw.token_sha256)
        .map_err(|e| problems.push(format!("{at}: {e}")))
        .ok();

    if let Some(role) = role {
        let given = [
            ("worker_id", raw.worker_id.is_some()),
            ("prisons", raw.prisons.is_some()),
            ("sources", raw.sources.is_some()),
            ("types", raw.types.is_some()),
        ];
        for (field, present) in given {
            if present && !applies(field, role) {
                problems.push(format!("{at}: {field}: does not apply to a {role}"));
            }
        }
    }
    if raw.worker_id.as_deref() == Some("") {
        problems.push(format!("{at}: worker_id: must not be empty"));
    }
    for p in raw.prisons.iter().flatten() {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
            problems.push(format!(
                "{at}: prisons: {p:?} is not a prison code (letters and digits)"
            ));
        }
    }
    for s in raw.sources.iter().flatten() {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            problems.push(format!("{at}: sources: {s:?} is not a CloudEvents source"));
        }
    }
    for t in raw.types.iter().flatten() {
        let star_inside = t.trim_end_matches('*').contains('*') || t.matches('*').count() > 1;
        if t.is_empty() || t.chars().any(char::is_whitespace) || star_inside {
            problems.push(format!(
                "{at}: types: {t:?} is not an event type or a pattern with one trailing *"
            ));
        }
    }

    let principal = Principal {
        name: raw.name,
        role: role?,
        worker_id: raw.worker_id,
        prisons: normalize_prisons(raw.prisons.unwrap_or_default()),
        sources: raw.sources.unwrap_or_default(),
        types: raw.types.unwrap_or_default(),
        open_mode: false,
    };
    for field in missing_scope(&principal) {
        match field {
            // An empty worker_id was reported above already.
            "worker_id" if principal.worker_id.as_deref() == Some("") => {}
            "types" => problems.push(format!(
                "{at}: types: a PARTNER needs types, the event types it may submit \
                 (e.g. [\"throughcare.referral.*\"]); none are implied"
            )),
            _ => problems.push(format!("{at}: {field}: a {} needs {field}", principal.role)),
        }
    }
    if problems.len() > before {
        return None;
    }
    Some((hash?, principal))
}

fn check_jwt(raw: RawJwt, base_dir: &Path, problems: &mut Vec<String>) -> Option<JwtConfig> {
    let before = problems.len();
    let jwks = if raw.jwks.starts_with("https://") {
        match reqwest::Url::parse(&raw.jwks) {
            Ok(url) if url.host_str().is_some() => Some(JwksSource::Url(raw.jwks.clone())),
            _ => {
                problems.push(format!("[jwt]: jwks: {:?} is not a valid URL", raw.jwks));
                None
            }
        }
    } else if raw.jwks.contains("://") {
        // Keys fetched over plain HTTP could be swapped on the way: refuse.
        problems.push("[jwt]: jwks: must be an https:// URL or a file path".into());
        None
    } else if raw.jwks.is_empty() {
        problems.push("[jwt]: jwks: must not be empty".into());
        None
    } else {
        Some(JwksSource::File(base_dir.join(&raw.jwks)))
    };
    if raw.issuer.is_empty() {
        problems.push("[jwt]: issuer: must not be empty".into());
    }
    if raw.audience.is_empty() {
        problems.push("[jwt]: audience: must not be empty".into());
    }
    if problems.len() > before {
        return None;
    }
    Some(JwtConfig {
        jwks: jwks?,
        issuer: raw.issuer,
        audience: raw.audience,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/base")) {
            Ok(_) => Vec::new(),
            Err(p) => p,
        }
    }

    #[test]
    fn good_file() {
        let text = format!(
            r#"
[[principal]]
name = "probation-south-central"
role = "PARTNER"
token_sha256 = "{H1}"
sources = ["urn:throughcare:partner:probation-south-central"]
types = ["throughcare.referral.*"]

[[principal]]
name = "wci.manager"
role = "MANAGER"
prisons = ["wci", "BNI"]
token_sha256 = "{H2}"

[jwt]
jwks = "deploy/jwks.json"
issuer = "https://auth.example.nhs.uk"
audience = "throughcare"

[metrics]
token_sha256 = "3333333333333333333333333333333333333333333333333333333333333333"
"#
        );
        let cfg = parse(&text, Path::new("/base")).unwrap();
        assert_eq!(cfg.principals.len(), 2);
        let mut d = [0u8; 32];
        hex::decode_to_slice(H2, &mut d).unwrap();
        let m = &cfg.principals[&d];
        assert_eq!(m.role, Role::Manager);
        assert_eq!(m.prisons, ["WCI", "BNI"]);
        let jwt = cfg.jwt.unwrap();
        assert_eq!(
            jwt.jwks,
            JwksSource::File(PathBuf::from("/base/deploy/jwks.json"))
        );
        assert!(cfg.metrics.is_some());
    }

    #[test]
    fn every_problem_is_reported_with_where_it_is() {
        // (file, expected substring of one reported problem)
        let cases: Vec<(String, &str)> = vec![
            (
                format!("[[principal]]\nname = \"a\"\nrole = \"ADMIN\"\ntoken_sha256 = \"{H1}\""),
                "principal #1 (\"a\", line 1): role: unknown role \"ADMIN\"",
            ),
            (
                "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"xyz\"".into(),
                "principal #1 (\"a\", line 1): token_sha256: must be 64 lower-case hex",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{}\"",
                    H1.replace('1', "A")
                ),
                "token_sha256: must be 64 lower-case hex",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\"\n\
                     [[principal]]\nname = \"b\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\""
                ),
                "principal #2 (\"b\", line 5): token_sha256: duplicate of principal #1 (\"a\", line 1)'s",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\"\n\
                     [[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H2}\""
                ),
                "principal #2 (\"a\", line 5): name: duplicate name \"a\"",
            ),
            (
                format!("[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\ntypes = [\"t\"]\ntoken_sha256 = \"{H1}\""),
                "principal #1 (\"p\", line 1): sources: a PARTNER needs sources",
            ),
            (
                format!(
                    "[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\nsources = []\ntoken_sha256 = \"{H1}\""
                ),
                "sources: a PARTNER needs sources",
            ),
            (
                format!(
                    "[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\nsources = [\"urn:x\"]\ntoken_sha256 = \"{H1}\""
                ),
                "principal #1 (\"p\", line 1): types: a PARTNER needs types",
            ),
            (
                format!(
                    "[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\nsources = [\"urn:x\"]\ntypes = []\ntoken_sha256 = \"{H1}\""
                ),
                "principal #1 (\"p\", line 1): types: a PARTNER needs types",
            ),
            (
                format!("[[principal]]\nname = \"w\"\nrole = \"WORKER\"\ntoken_sha256 = \"{H1}\""),
                "principal #1 (\"w\", line 1): worker_id: a WORKER needs worker_id",
            ),
            (
                format!(
                    "[[principal]]\nname = \"w\"\nrole = \"WORKER\"\nworker_id = \"\"\ntoken_sha256 = \"{H1}\""
                ),
                "worker_id: must not be empty",
            ),
            (
                format!("[[principal]]\nname = \"m\"\nrole = \"MANAGER\"\ntoken_sha256 = \"{H1}\""),
                "principal #1 (\"m\", line 1): prisons: a MANAGER needs prisons",
            ),
            (
                format!(
                    "[[principal]]\nname = \"m\"\nrole = \"MANAGER\"\nprisons = [\"W CI\"]\ntoken_sha256 = \"{H1}\""
                ),
                "prisons: \"W CI\" is not a prison code",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\"\ncolour = \"red\""
                ),
                "principal #1 (\"a\", line 1): unknown field `colour`",
            ),
            (
                "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"".into(),
                "principal #1 (\"a\", line 1): missing field `token_sha256`",
            ),
            (
                format!(
                    "[[principal]]\nname = \"w\"\nrole = \"WORKER\"\nworker_id = \"W1\"\nsources = [\"urn:x\"]\ntoken_sha256 = \"{H1}\""
                ),
                "principal #1 (\"w\", line 1): sources: does not apply to a WORKER",
            ),
            (
                format!(
                    "[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\nsources = [\"urn:x\"]\ntypes = [\"a.*.b\"]\ntoken_sha256 = \"{H1}\""
                ),
                "types: \"a.*.b\" is not an event type",
            ),
            (
                format!("[[principal]]\nname = \"two words\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\""),
                "name: must be 1 to 200 visible ASCII",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{}\"",
                    hex::encode(digest(""))
                ),
                "SHA-256 of the empty string",
            ),
            (
                format!("[principal]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\""),
                "principal: must be an array of tables",
            ),
            (
                "[users]\nx = 1".into(),
                "users: unknown key or table",
            ),
            (
                "[jwt]\njwks = \"http://idp/jwks\"\nissuer = \"i\"\naudience = \"a\"".into(),
                "[jwt]: jwks: must be an https:// URL or a file path",
            ),
            (
                "[jwt]\njwks = \"k.json\"\nissuer = \"\"\naudience = \"a\"".into(),
                "[jwt]: issuer: must not be empty",
            ),
            (
                "[jwt]\njwks = \"k.json\"\nissuer = \"i\"".into(),
                "[jwt]: missing field `audience`",
            ),
            (
                "[jwt]\njwks = \"k.json\"\nissuer = \"i\"\naudience = \"a\"\nalg = \"HS256\"".into(),
                "[jwt]: unknown field `alg`",
            ),
            (
                format!("[metrics]\ntoken_sha256 = \"{}\"", &H1[..10]),
                "[metrics]: token_sha256: must be 64 lower-case hex",
            ),
            (
                format!(
                    "[[principal]]\nname = \"a\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H1}\"\n[metrics]\ntoken_sha256 = \"{H1}\""
                ),
                "[metrics]: token_sha256: same as principal #1 (\"a\", line 1)'s token",
            ),
            ("".into(), "nobody could sign in"),
            ("[[principal]\n".into(), "not valid TOML"),
        ];
        for (text, expected) in cases {
            let found = problems(&text);
            assert!(
                found.iter().any(|p| p.contains(expected)),
                "expected a problem containing {expected:?} for\n{text}\ngot {found:#?}"
            );
        }
    }

    #[test]
    fn problems_in_several_principals_are_all_reported() {
        let text = format!(
            "[[principal]]\nname = \"a\"\nrole = \"ADMIN\"\ntoken_sha256 = \"{H1}\"\n\
             [[principal]]\nname = \"w\"\nrole = \"WORKER\"\ntoken_sha256 = \"bad\"\n\
             [[principal]]\nname = \"x\"\nrole = \"AUDITOR\"\ntoken_sha256 = \"{H2}\"\nextra = 1\n"
        );
        let found = problems(&text);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("principal #1 (\"a\", line 1): role"));
        assert!(found[1].starts_with("principal #2 (\"w\", line 5): token_sha256"));
        assert!(found[2].starts_with("principal #2 (\"w\", line 5): worker_id"));
        assert!(found[3].starts_with("principal #3 (\"x\", line 9): unknown field `extra`"));
    }
}

#[cfg(test)]
mod partner_types_and_lines {
    use super::*;

    const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn a_partner_without_types_is_refused_naming_its_line() {
        // A comment and a blank line first, so the line is not simply the block's index.
        let text = format!(
            "# partners\n\n[[principal]]\nname = \"ok\"\nrole = \"PARTNER\"\nsources = [\"urn:a\"]\n\
             types = [\"throughcare.referral.*\"]\ntoken_sha256 = \"{H1}\"\n\n\
             [[principal]]  # no types\nname = \"bare\"\nrole = \"PARTNER\"\nsources = [\"urn:b\"]\n\
             token_sha256 = \"{H2}\"\n"
        );
        let found = parse(&text, Path::new("")).unwrap_err();
        assert_eq!(
            found,
            [
                "principal #2 (\"bare\", line 10): types: a PARTNER needs types, the event types \
              it may submit (e.g. [\"throughcare.referral.*\"]); none are implied"
            ]
        );
    }

    #[test]
    fn both_missing_partner_fields_are_reported() {
        let text =
            format!("[[principal]]\nname = \"p\"\nrole = \"PARTNER\"\ntoken_sha256 = \"{H1}\"");
        let found = parse(&text, Path::new("")).unwrap_err();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("sources: a PARTNER needs sources"));
        assert!(found[1].contains("types: a PARTNER needs types"));
    }

    #[test]
    fn lines_are_left_out_when_they_cannot_be_counted() {
        // An inline array has no [[principal]] headers to count.
        let text =
            format!("principal = [{{ name = \"a\", role = \"ADMIN\", token_sha256 = \"{H1}\" }}]");
        let found = parse(&text, Path::new("")).unwrap_err();
        assert!(
            found[0].starts_with("principal #1 (\"a\"): role"),
            "{found:#?}"
        );
        assert_eq!(
            principal_lines("[[principal]]\nx = 1\n  [[ principal ]] # c\n[[principals]]\n"),
            [1, 3]
        );
    }
}
