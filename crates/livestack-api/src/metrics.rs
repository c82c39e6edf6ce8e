//! The API's Prometheus metrics and the `/metrics` exposition.
//!
//! Owns: requests by action and response code, their latency, and the
//! text encoding of the whole registry for `GET /metrics`. Must not: use a
//! label a client controls (the action label is the model's name of an
//! action that exists, or `-` when the request never named one; the code
//! is one of ours).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
}

type HistogramFamily = Family<ActionLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// The API's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl ApiMetrics {
    /// Registers them in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "api_requests",
            "API requests by action and response code (Ok, or the error code)",
            self.requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Time from a request's arrival to its answer, by action",
            self.duration.clone(),
        );
    }

    /// Counts one answered request.
    pub(crate) fn observe(&self, action: Option<&'static str>, code: &'static str, seconds: f64) {
        let action = action.unwrap_or("-");
        self.requests
            .get_or_create(&RequestLabels { action, code })
            .inc();
        self.duration
            .get_or_create(&ActionLabels { action })
            .observe(seconds);
    }
}

/// The text exposition of `registry` (OpenMetrics text, which Prometheus
/// scrapes), or an error line if encoding failed.
pub(crate) fn expose(registry: Option<&Arc<Registry>>) -> String {
    let mut out = String::new();
    match registry {
        Some(r) => {
            if let Err(e) = prometheus_client::encoding::text::encode(&mut out, r) {
                tracing::error!("metrics encoding failed: {e}");
            }
        }
        None => out.push_str("# EOF\n"),
    }
    out
}
