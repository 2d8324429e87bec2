//! The server crate reads in one direction (ARCHITECTURE.md "The server's layers"): HTTP
//! plumbing at the bottom, then identity, state, access control, the one submit path,
//! the handlers per area, the web pages, and the route table at the top. This test reads
//! the crate's source, finds every module's references to other modules (`crate::a::b`,
//! `super::c`, `use crate::{a, b}`), and fails on any reference from a lower layer to a
//! higher one and on any circle inside a layer. It also checks the rule behind the
//! guard's capabilities: person-level data is read from the read models or the ledger
//! only in `access/` (which hands out `ScopedPerson`), the submit path and the HMPPS
//! adapter (which decide on writes, not reads).
//!
//! A parent module declaring and re-exporting its children (`mod x; pub use x::f;`) is
//! structure, not a dependency, and `#[cfg(test)]` code is not looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module is in the layer of its longest listed prefix.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "plumbing",
        &[
            "problem", "error", "extract", "escape", "tls", "listen", "headers", "metrics", "csv",
            "body",
        ],
    ),
    ("identity", &["auth"]),
    ("state", &["state", "checkpoints"]),
    ("access", &["access"]),
    ("submit", &["submit"]),
    (
        "handlers",
        &[
            "as_of",
            "api",
            "access_api",
            "ledger_api",
            "export",
            "fhir",
            "sar",
            "hmpps",
        ],
    ),
    ("pages", &["web"]),
    ("top", &["routes", "openapi", ""]),
];

/// Files that may read person-level data straight from the read models or the ledger.
const RAW_READERS: &[&str] = &["access/", "submit.rs", "hmpps.rs"];

/// Person-level reads that must go through the guard's capabilities elsewhere.
const RAW_READS: &[&str] = &[
    ".models.journey(",
    ".models.journeys(",
    ".models.caseload(",
    ".models.releases(",
    ".ledger.history(",
    ".ledger.verify(",
    "lookup_identifier(",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `web/forms/mod.rs` -> `web::forms`; `lib.rs` -> "".
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The code a module runs in production: everything before its `#[cfg(test)]` module,
/// without comments (a doc comment naming a module is not a dependency).
fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is rare here; such a line is kept whole.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn layer_of(module: &str) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, prefixes)) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            let matches = module == *p
                || (!p.is_empty() && module.starts_with(&format!("{p}::")))
                || p.is_empty() && module.is_empty();
            if matches && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), i));
            }
        }
    }
    best.unwrap_or_else(|| panic!("module {module:?} is in no layer: add it to LAYERS"))
        .1
}

/// Resolves a path (`a::b::Item`) to the longest prefix that is a module.
fn resolve(path: &[&str], modules: &BTreeSet<String>) -> String {
    for k in (1..=path.len()).rev() {
        let candidate = path[..k].join("::");
        if modules.contains(&candidate) {
            return candidate;
        }
    }
    String::new()
}

/// The module paths a file refers to: `crate::x::y`, `crate::{x, y::z}`, `super::x`.
fn references(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut add = |base: &str, rest: &str| {
        let full = if base.is_empty() {
            rest.to_string()
        } else {
            format!("{base}::{rest}")
        };
        let path: Vec<&str> = full.split("::").filter(|s| !s.is_empty()).collect();
        out.insert(resolve(&path, modules));
    };
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            // Not part of a longer word (e.g. `throughcare_server::crate::`).
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                    if !item.is_empty() && item != "self" {
                        add(base, &item);
                    } else if item == "self" {
                        add(base, "");
                    }
                }
            } else {
                let item: String = rest.chars().take_while(|c| ident(*c)).collect();
                add(base, item.trim_end_matches(':'));
            }
        }
    }
    out.remove(module);
    // A parent naming its own children declares them; that is not a dependency.
    out.retain(|m| {
        !(m.starts_with(&format!("{module}::"))
            || module.is_empty() && !m.is_empty() && declared_at_root(text, m))
    });
    out
}

/// Whether the crate root only declares or re-exports `m` (`mod m;`, `pub use m::..`).
fn declared_at_root(text: &str, m: &str) -> bool {
    let top = m.split("::").next().unwrap_or(m);
    text.contains(&format!("mod {top};"))
}

struct Crate {
    modules: BTreeSet<String>,
    files: BTreeMap<String, (PathBuf, String)>,
}

fn read_crate() -> Crate {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    let mut files = BTreeMap::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap();
        files.insert(module_of(&p), (p, text));
    }
    Crate {
        modules: files.keys().cloned().collect(),
        files,
    }
}

fn graph(c: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    c.files
        .iter()
        .filter(|(m, _)| !m.ends_with("tests"))
        .map(|(m, (_, text))| (m.clone(), references(m, &production_code(text), &c.modules)))
        .collect()
}

#[test]
fn no_module_refers_to_a_higher_layer() {
    let c = read_crate();
    let mut upward = Vec::new();
    for (from, tos) in graph(&c) {
        for to in tos {
            if layer_of(&to) > layer_of(&from) {
                upward.push(format!(
                    "{from} ({}) -> {to} ({})",
                    LAYERS[layer_of(&from)].0,
                    LAYERS[layer_of(&to)].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "references from a lower layer to a higher one:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_circles_between_modules() {
    let c = read_crate();
    let g = graph(&c);
    // Tarjan-free: a circle exists iff some module reaches itself.
    let mut circles = BTreeSet::new();
    for start in g.keys() {
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in g.get(&at).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(start.clone());
                    let mut key = path.clone();
                    key.sort();
                    if circles.insert(key) {
                        eprintln!("circle: {}", circle.join(" -> "));
                    }
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "{} circle(s) between modules (printed above)",
        circles.len()
    );
}

#[test]
fn person_level_data_is_read_only_through_the_guards_capabilities() {
    let c = read_crate();
    let mut found = Vec::new();
    for (path, text) in c.files.values() {
        let rel = path
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if RAW_READERS.iter().any(|allowed| rel.starts_with(allowed)) {
            continue;
        }
        for (n, line) in production_code(text).lines().enumerate() {
            let compact: String = line.split_whitespace().collect();
            for read in RAW_READS {
                if compact.contains(read) || line.contains(read) {
                    found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "person-level reads outside access/ (use the ScopedPerson the guard hands over):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // The reference finder on known shapes, so the tests above cannot pass by seeing
    // nothing.
    let modules: BTreeSet<String> = ["a", "a::b", "c", "d"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let refs = references(
        "c",
        "use crate::a::b::X;\nuse crate::{d, a::Y};\nlet x = crate::c::z();",
        &modules,
    );
    assert_eq!(
        refs,
        ["a", "a::b", "d"].iter().map(|s| s.to_string()).collect()
    );
    let refs = references("a::b", "use super::Thing;", &modules);
    assert_eq!(refs, ["a"].iter().map(|s| s.to_string()).collect());
    let c = read_crate();
    assert!(graph(&c).values().map(BTreeSet::len).sum::<usize>() > 50);
}
