//! Embeds the web console (`console/dist`, built by `npm run build` in
//! `console/`) into the binary: one `include_bytes!` per file, listed in
//! `$OUT_DIR/console.rs`. Without a build there, the list is empty and
//! `/console/` says how to build it; the rest of livestack is unaffected.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        if path.is_dir() {
            files(&path, base, out);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((rel, path));
        }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("map") => "application/json",
        _ => "application/octet-stream",
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let dist = manifest.join("../../console/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    if dist.join("index.html").is_file() {
        files(&dist, &dist, &mut found);
    }
    let mut src = String::from(
        "/// The console's files: (path under /console/, bytes, content type).\n\
         pub(crate) static FILES: &[(&str, &[u8], &str)] = &[\n",
    );
    for (rel, path) in &found {
        let abs = path.canonicalize().unwrap_or_else(|_| path.clone());
        let _ = writeln!(
            src,
            "    ({rel:?}, include_bytes!({:?}), {:?}),",
            abs.display().to_string(),
            content_type(rel)
        );
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("console.rs");
    std::fs::write(out, src).expect("write console.rs");
}
