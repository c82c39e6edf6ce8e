//! The architecture invariants of ARCHITECTURE.md that Cargo can check:
//! which crate of ours may depend on which. The planes meet only in
//! `livestack-core`; only the binary sees both.

use std::collections::BTreeSet;
use std::path::Path;

fn our_dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc: toml::Table = text.parse().expect("manifest parses");
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.keys()
                .filter(|k| k.starts_with("livestack"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn check(krate: &str, allowed: &[&str]) {
    let deps = our_dependencies(krate);
    let extra: Vec<&String> = deps
        .iter()
        .filter(|d| !allowed.contains(&d.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "{krate} must not depend on {extra:?} (see ARCHITECTURE.md)"
    );
}

#[test]
fn the_planes_meet_only_in_the_core_crate() {
    check("livestack-core", &[]);
    check("livestack-model", &[]);
    check("livestack-rtmp", &[]);
    check("livestack-formats", &[]);
    check("livestack-store", &["livestack-core"]);
    check(
        "livestack-api",
        &["livestack-core", "livestack-model", "livestack-store"],
    );
    check(
        "livestack-media",
        &["livestack-core", "livestack-rtmp", "livestack-formats"],
    );
}

#[test]
fn every_crate_of_the_workspace_is_covered_by_the_invariants() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names: Vec<String> = std::fs::read_dir(&crates_dir)
        .expect("crates/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "livestack",
            "livestack-api",
            "livestack-core",
            "livestack-formats",
            "livestack-media",
            "livestack-model",
            "livestack-rtmp",
            "livestack-store"
        ],
        "a new crate needs its line in ARCHITECTURE.md and in this test"
    );
}
