//! Tidy checks: every Rust file starts with a `//!` doc line, and crate dependencies point
//! one way ({tlog, events} -> projections -> ledger -> {nats, projector} -> server -> cli).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir()
            && !name.starts_with('.')
            && name != "target"
            && !name.starts_with("target")
        {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_doc_line() {
    let mut files = Vec::new();
    for dir in ["events", "projections", "crates", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 10);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc line: {missing:?}"
    );
}

/// The `[dependencies]` names of a crate's Cargo.toml (not dev-dependencies).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn dependencies_point_one_way() {
    let order = [
        // tlog beside events: depends on nothing of ours.
        ("crates/tlog", "throughcare-tlog"),
        ("events", "throughcare-events"),
        // Synthetic identifiers and event builders (tests, bench, demo): pure, on events only.
        ("crates/synthetic", "throughcare-synthetic"),
        ("projections", "throughcare-projections"),
        // The HMPPS mapping: pure, beside projections (depends on events only).
        ("crates/hmpps", "throughcare-hmpps"),
        ("crates/ledger", "throughcare-ledger"),
        ("crates/nats", "throughcare-nats"),
        ("crates/projector", "throughcare-projector"),
        ("crates/server", "throughcare-server"),
        ("crates/cli", "throughcare-cli"),
        ("crates/bench", "throughcare-bench"),
    ];
    for (i, (dir, name)) in order.iter().enumerate() {
        let manifest = root().join(dir).join("Cargo.toml");
        if !manifest.exists() {
            continue;
        }
        let deps = dependencies(&manifest);
        // No crate may depend on one later in the order (nats and projector are peers).
        for (later_dir, later) in &order[i + 1..] {
            let peers = (*dir == "crates/nats" && *later_dir == "crates/projector")
                || (*dir == "crates/projector" && *later_dir == "crates/nats");
            assert!(
                peers || !deps.contains(&later.to_string()),
                "{name} depends on {later}"
            );
        }
        let pure = matches!(
            *dir,
            "events" | "projections" | "crates/tlog" | "crates/hmpps" | "crates/synthetic"
        );
        for io in ["sled", "tokio", "async-nats", "axum", "reqwest", "rand"] {
            assert!(
                !(pure && deps.contains(&io.to_string())),
                "{name} must do no IO but depends on {io}"
            );
        }
        // The bench uses bare sled for its raw baselines only (see ARCHITECTURE.md).
        if deps.contains(&"sled".to_string()) {
            assert!(
                matches!(*dir, "crates/ledger" | "crates/projector" | "crates/bench"),
                "{name} depends on sled"
            );
        }
        if deps.contains(&"async-nats".to_string()) {
            assert_eq!(*dir, "crates/nats", "{name} imports async-nats");
        }
    }
}

#[test]
fn pure_crates_never_read_the_clock() {
    let mut files = Vec::new();
    rust_files(&root().join("events/src"), &mut files);
    rust_files(&root().join("projections/src"), &mut files);
    rust_files(&root().join("crates/tlog/src"), &mut files);
    rust_files(&root().join("crates/hmpps/src"), &mut files);
    rust_files(&root().join("crates/synthetic/src"), &mut files);
    rust_files(&root().join("crates/demo/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for banned in [
            "Utc::now",
            "SystemTime::now",
            "Instant::now",
            "Ulid::new()",
            "std::fs::",
            "std::net::",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", f.display());
        }
    }
}
