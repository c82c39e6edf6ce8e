//! The web console's files at `/console/` on the API listener.
//!
//! Owns: serving the console built into the binary (`console/dist`,
//! embedded by `build.rs`), its `config.json` (where this server plays
//! HLS, for the live preview) and the headers that keep the page to
//! itself (no framing, no referrer, a content security policy). Must not:
//! hold any key or answer anything but files: the console signs its own
//! calls to the API with the key the user typed, in the browser.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};

mod files {
    include!(concat!(env!("OUT_DIR"), "/console.rs"));
}

/// What the console's scripts may load: its own files, the API on the
/// same origin, and HLS from the playback port (another origin; blob:
/// for hls.js's media source and worker).
const CSP: &str = "default-src 'self'; connect-src 'self' http: https:; \
    media-src 'self' blob: http: https:; worker-src 'self' blob:; img-src 'self' data:; \
    style-src 'self'; script-src 'self'; frame-ancestors 'none'";

fn with_headers(mut resp: Response<Body>, content_type: &'static str) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Whether this binary has the console in it.
pub fn built() -> bool {
    !files::FILES.is_empty()
}

/// `/console/<path>` (`""` for the page itself), or the console's
/// `config.json` naming `play_port`.
pub(crate) fn serve(path: &str, play_port: Option<u16>) -> Response<Body> {
    if path == "config.json" {
        let body = serde_json::json!({ "playPort": play_port }).to_string();
        return with_headers(Response::new(Body::from(body)), "application/json");
    }
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some((_, bytes, content_type)) = files::FILES.iter().find(|(p, _, _)| *p == path) {
        return with_headers(Response::new(Body::from(*bytes)), content_type);
    }
    let body = if built() {
        "not found\n"
    } else {
        "The web console is not built into this livestack binary: run `npm ci && npm run build` \
         in console/ and build livestack again (scripts/test does both).\n"
    };
    let mut resp = with_headers(Response::new(Body::from(body)), "text/plain; charset=utf-8");
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}
