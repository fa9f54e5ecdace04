//! Latency histograms as fixed, human-sized buckets (for text bars and JSON).

use serde::Serialize;

use super::table::EndpointStats;

/// Upper bounds of the buckets, in µs; the last bucket is open-ended.
const BOUNDS_US: [u64; 15] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Responses whose latency was at most `le_ms` (and above the previous bucket's).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyBucket {
    /// Upper bound in ms; None for the last, open-ended bucket.
    pub le_ms: Option<f64>,
    pub count: u64,
}

/// The endpoint's latency histogram in fixed buckets, empty leading and trailing ones cut.
pub fn latency_buckets(stats: &EndpointStats) -> Vec<LatencyBucket> {
    let mut buckets = all_latency_buckets(stats);
    let first = buckets.iter().position(|b| b.count > 0).unwrap_or(0);
    let last = buckets.iter().rposition(|b| b.count > 0).unwrap_or(0);
    buckets.truncate(last + 1);
    buckets.drain(..first);
    buckets
}

/// Every bucket, from ≤ 0.1 ms to over 10 s: one axis for every endpoint.
pub fn all_latency_buckets(stats: &EndpointStats) -> Vec<LatencyBucket> {
    let mut counts = [0u64; BOUNDS_US.len() + 1];
    for value in stats.latency_us.iter_recorded() {
        let us = stats
            .latency_us
            .lowest_equivalent(value.value_iterated_to());
        let slot = BOUNDS_US.partition_point(|bound| *bound < us);
        if let Some(count) = counts.get_mut(slot) {
            *count += value.count_at_value();
        }
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, count)| LatencyBucket {
            le_ms: BOUNDS_US.get(i).map(|us| *us as f64 / 1000.0),
            count: *count,
        })
        .collect()
}
