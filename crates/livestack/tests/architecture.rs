//! The architecture invariants of ARCHITECTURE.md that Cargo can check:
//! which crate of ours may depend on which. The planes meet only in
//! `livestack-core`; only the binary sees both.

use std::collections::BTreeSet;
use std::path::Path;

/// Our crates that `krate` depends on, in any dependency table (normal,
/// dev, build, and target-specific ones), by the package name: a
/// dependency renamed with `package = "livestack-…"` counts as what it is.
fn our_dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    dependencies_in(&manifest)
}

/// Our crates that the manifest at `manifest` depends on.
fn dependencies_in(manifest: &Path) -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc: toml::Table = text.parse().expect("manifest parses");
    let mut tables: Vec<&toml::Table> = Vec::new();
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    for kind in kinds {
        tables.extend(doc.get(kind).and_then(|d| d.as_table()));
    }
    if let Some(targets) = doc.get("target").and_then(|t| t.as_table()) {
        for target in targets.values().filter_map(|t| t.as_table()) {
            for kind in kinds {
                tables.extend(target.get(kind).and_then(|d| d.as_table()));
            }
        }
    }
    tables
        .into_iter()
        .flat_map(|deps| deps.iter())
        .map(|(key, spec)| {
            spec.get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(key)
                .to_owned()
        })
        .filter(|name| name.starts_with("livestack"))
        .collect()
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
    check("livestack-net", &["livestack-core"]);
    check(
        "livestack-api",
        &[
            "livestack-core",
            "livestack-model",
            "livestack-store",
            "livestack-net",
        ],
    );
    check(
        "livestack-media",
        &[
            "livestack-core",
            "livestack-rtmp",
            "livestack-formats",
            "livestack-net",
        ],
    );
}

#[test]
fn renamed_and_dev_dependencies_are_seen_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let manifest = dir.path().join("probe").join("Cargo.toml");
    std::fs::create_dir_all(manifest.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &manifest,
        "[dependencies]\nmedia = { package = \"livestack-media\", path = \"x\" }\n\
         [dev-dependencies]\nlivestack-store = { path = \"y\" }\n\
         [target.'cfg(unix)'.dependencies]\nlivestack-rtmp = { path = \"z\" }\n",
    )
    .expect("write");
    let deps = dependencies_in(&manifest);
    assert_eq!(
        deps.into_iter().collect::<Vec<_>>(),
        ["livestack-media", "livestack-rtmp", "livestack-store"]
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
            "livestack-net",
            "livestack-rtmp",
            "livestack-store"
        ],
        "a new crate needs its line in ARCHITECTURE.md and in this test"
    );
}
