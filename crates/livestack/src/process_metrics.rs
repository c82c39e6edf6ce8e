//! Metrics of the livestack process itself, read from `/proc/self` at
//! scrape time: resident memory and open file descriptors (the resource
//! an accept flood runs out of first).
//!
//! Owns: nothing but those two readings. Must not: cache them (a stale
//! number is worse than none) or fail a scrape when `/proc` is missing
//! (other systems): the metric is then left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// The collector; register it once.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector;

fn resident_bytes() -> Option<i64> {
    // statm: size resident shared … in pages.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory of the livestack process",
                resident_bytes(),
            ),
            (
                "process_open_fds",
                "Open file descriptors of the livestack process",
                open_fds(),
            ),
        ] {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}
