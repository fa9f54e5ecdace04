//! Per-endpoint summary: counts, status classes and latency percentiles.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Sink, SinkError};
use crate::http::MessageKind;
use crate::record::ExchangeRecord;
use crate::stats::Report;

/// Endpoint key: role, method and path (query stripped).
type EndpointKey = (String, String, String);

struct EndpointStats {
    count: u64,
    status_classes: [u64; 5],
    latency_us: Histogram<u64>,
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSummary {
    pub role: String,
    pub method: String,
    pub path: String,
    pub count: u64,
    /// Responses per status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [u64; 5],
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

/// Aggregates paired responses; writes a table to `out` when capture ends.
pub struct SummarySink<W: Write> {
    endpoints: BTreeMap<EndpointKey, EndpointStats>,
    out: W,
}

impl<W: Write> SummarySink<W> {
    pub fn new(out: W) -> Self {
        Self {
            endpoints: BTreeMap::new(),
            out,
        }
    }

    pub fn rows(&self) -> Vec<EndpointSummary> {
        self.endpoints
            .iter()
            .map(|((role, method, path), stats)| {
                let quantile = |q: f64| stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
                EndpointSummary {
                    role: role.clone(),
                    method: method.clone(),
                    path: path.clone(),
                    count: stats.count,
                    status_classes: stats.status_classes,
                    p50_ms: quantile(0.5),
                    p90_ms: quantile(0.9),
                    p99_ms: quantile(0.99),
                }
            })
            .collect()
    }

    pub fn render(&self, report: &Report) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<7} {:<7} {:<28} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}",
            "ROLE",
            "METHOD",
            "PATH",
            "COUNT",
            "1xx",
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "p50_ms",
            "p90_ms",
            "p99_ms"
        );
        for row in self.rows() {
            let [c1, c2, c3, c4, c5] = row.status_classes;
            let _ = writeln!(
                text,
                "{:<7} {:<7} {:<28} {:>7} {c1:>6} {c2:>6} {c3:>6} {c4:>6} {c5:>6} {:>9.2} {:>9.2} {:>9.2}",
                row.role, row.method, row.path, row.count, row.p50_ms, row.p90_ms, row.p99_ms
            );
        }
        let kernel = &report.kernel;
        let pipeline = &report.pipeline;
        let parse = &report.parse;
        let _ = writeln!(
            text,
            "events={} kernel_drops={} truncated_syscalls={} decode_errors={} parse_errors={} \
             non_http_bytes={} gap_bytes={} unpaired_responses={} unanswered_requests={} \
             partial_messages={} records={} http2_conns={} tls_conns={} other_conns={}",
            pipeline.events,
            kernel.dropped_events(),
            kernel.get(crate::event::abi::KernelStat::SyscallsTruncated),
            pipeline.decode_errors,
            parse.parse_errors,
            parse.non_http_bytes,
            parse.gap_bytes,
            parse.unpaired_responses,
            parse.unanswered_requests,
            parse.partial_messages,
            pipeline.records,
            pipeline.connections_http2,
            pipeline.connections_tls,
            pipeline.connections_other,
        );
        text
    }
}

/// 1 µs to 1 hour at 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

impl<W: Write> Sink for SummarySink<W> {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        let message = record.message;
        if message.kind != MessageKind::Response || message.interim {
            return Ok(());
        }
        let (Some(status), Some(latency_ns)) = (message.status, message.latency_ns) else {
            return Ok(());
        };
        let key = (
            record.role.map_or("-", |r| r.as_str()).to_owned(),
            message.method.clone().unwrap_or_default(),
            record.path().unwrap_or_default().to_owned(),
        );
        let stats = self.endpoints.entry(key).or_insert_with(|| EndpointStats {
            count: 0,
            status_classes: [0; 5],
            latency_us: latency_histogram(),
        });
        stats.count += 1;
        if let Some(slot) = (status / 100)
            .checked_sub(1)
            .and_then(|i| stats.status_classes.get_mut(usize::from(i)))
        {
            *slot += 1;
        }
        stats
            .latency_us
            .saturating_record((latency_ns / 1000).max(1));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self, report: &Report) -> Result<(), SinkError> {
        let text = self.render(report);
        self.out.write_all(text.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}
