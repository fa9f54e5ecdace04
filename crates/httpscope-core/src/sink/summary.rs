//! Per-endpoint summary: counts, status classes and latency percentiles.

use std::fmt::Write as _;
use std::io::Write;

use hashbrown::{Equivalent, HashMap};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{same_text, Sink, SinkError};
use crate::event::abi::KernelStat;
use crate::event::TlsLib;
use crate::http::MessageKind;
use crate::record::ExchangeRecord;
use crate::stats::Report;

/// Endpoints kept at most; later ones are summed under [`OTHER_ROUTES`], so ids in
/// paths cannot grow memory without bound.
const MAX_ENDPOINTS: usize = 1000;
const OTHER_ROUTES: &str = "(other routes)";

/// (role, method, route) → stats; looked up by [`EndpointRef`] (one probe), so a hit
/// allocates nothing.
type Endpoints = HashMap<EndpointKey, EndpointStats>;

#[derive(Hash, PartialEq, Eq)]
struct EndpointKey {
    role: &'static str,
    method: String,
    route: String,
}

/// An [`EndpointKey`] borrowed from a record; hashes the same way.
#[derive(Hash)]
struct EndpointRef<'a> {
    role: &'static str,
    method: &'a str,
    route: &'a str,
}

impl Equivalent<EndpointKey> for EndpointRef<'_> {
    fn equivalent(&self, key: &EndpointKey) -> bool {
        self.role == key.role
            && same_text(self.method, &key.method)
            && same_text(self.route, &key.route)
    }
}

impl From<&EndpointRef<'_>> for EndpointKey {
    fn from(key: &EndpointRef<'_>) -> Self {
        EndpointKey {
            role: key.role,
            method: key.method.to_owned(),
            route: key.route.to_owned(),
        }
    }
}

struct EndpointStats {
    count: u64,
    status_classes: [u64; 5],
    latency_us: Histogram<u64>,
}

impl EndpointStats {
    fn new() -> Self {
        EndpointStats {
            count: 0,
            status_classes: [0; 5],
            latency_us: latency_histogram(),
        }
    }

    fn add(&mut self, status: u16, latency_ns: u64) {
        self.count += 1;
        if let Some(slot) = (status / 100)
            .checked_sub(1)
            .and_then(|i| self.status_classes.get_mut(usize::from(i)))
        {
            *slot += 1;
        }
        self.latency_us
            .saturating_record((latency_ns / 1000).max(1));
    }
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSummary {
    pub role: String,
    pub method: String,
    pub route: String,
    pub count: u64,
    /// Responses per status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [u64; 5],
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

/// Aggregates paired responses; writes a table to `out` when capture ends.
pub struct SummarySink<W: Write> {
    endpoints: Endpoints,
    endpoint_count: usize,
    /// Records per TLS library, in [`TlsLib::ALL`] order.
    tls_records: [u64; TlsLib::ALL.len()],
    out: W,
}

impl<W: Write> SummarySink<W> {
    pub fn new(out: W) -> Self {
        Self {
            endpoints: HashMap::new(),
            endpoint_count: 0,
            tls_records: [0; TlsLib::ALL.len()],
            out,
        }
    }

    pub fn rows(&self) -> Vec<EndpointSummary> {
        let mut rows: Vec<EndpointSummary> = self
            .endpoints
            .iter()
            .map(|(key, stats)| {
                let quantile = |q: f64| stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
                EndpointSummary {
                    role: key.role.to_owned(),
                    method: key.method.clone(),
                    route: key.route.clone(),
                    count: stats.count,
                    status_classes: stats.status_classes,
                    p50_ms: quantile(0.5),
                    p90_ms: quantile(0.9),
                    p99_ms: quantile(0.99),
                }
            })
            .collect();
        rows.sort_by(|a, b| (&a.role, &a.method, &a.route).cmp(&(&b.role, &b.method, &b.route)));
        rows
    }

    pub fn render(&self, report: &Report) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "{:<7} {:<7} {:<28} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}",
            "ROLE",
            "METHOD",
            "ROUTE",
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
                row.role, row.method, row.route, row.count, row.p50_ms, row.p90_ms, row.p99_ms
            );
        }
        if self.tls_records.iter().any(|&n| n > 0) {
            text.push_str("tls_records");
            for (lib, n) in TlsLib::ALL.iter().zip(self.tls_records) {
                let _ = write!(text, " {}={n}", lib.as_str());
            }
            text.push('\n');
        }
        let kernel = &report.kernel;
        let pipeline = &report.pipeline;
        let parse = &report.parse;
        let _ = writeln!(
            text,
            "events={} kernel_drops={} truncated_syscalls={} decode_errors={} parse_errors={} \
             non_http_bytes={} gap_bytes={} unpaired_responses={} unanswered_requests={} \
             partial_messages={} records={} http2_conns={} tls_conns={} other_conns={} \
             h1_invalid_fields={} h2_unknown_headers={} h2_hpack_errors={} h2_rst_streams={} h2_push_promises={} \
             elided_bytes={} budget_fallbacks={} conns_watched={} conns_reported={} \
             conns_filtered={} conns_not_http={} conns_silent={} conns_no_slot={} conns_open={} \
             nested_tls_calls={}",
            pipeline.events,
            kernel.dropped_events(),
            kernel.get(KernelStat::SyscallsTruncated),
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
            parse.h1_invalid_fields,
            parse.h2_unknown_headers,
            parse.h2_hpack_errors,
            parse.h2_rst_streams,
            parse.h2_push_promises,
            parse.elided_bytes,
            kernel.get(KernelStat::BudgetFallbacks),
            kernel.get(KernelStat::ConnsWatched),
            kernel.get(KernelStat::ConnsOpened),
            kernel.get(KernelStat::ConnsFiltered),
            kernel.get(KernelStat::ConnsNotHttp),
            kernel.get(KernelStat::ConnsSilent),
            kernel.get(KernelStat::ConnTableFull),
            kernel.conns_open(),
            kernel.get(KernelStat::NestedTlsCalls),
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
        if let Some(lib) = record.conn.tls_lib {
            if let Some(i) = TlsLib::ALL.iter().position(|&l| l == lib) {
                self.tls_records[i] += 1;
            }
        }
        if message.kind != MessageKind::Response || message.interim {
            return Ok(());
        }
        let (Some(status), Some(latency_ns)) = (message.status, message.latency_ns) else {
            return Ok(());
        };
        let role = record.role.map_or("-", |r| r.as_str());
        let method = message.method.as_deref().unwrap_or_default();
        let route = record.route.unwrap_or_default();
        let mut key = EndpointRef {
            role,
            method,
            route,
        };
        if let Some(stats) = self.endpoints.get_mut(&key) {
            stats.add(status, latency_ns);
            return Ok(());
        }
        if self.endpoint_count >= MAX_ENDPOINTS {
            key.route = OTHER_ROUTES;
        }
        let stats = match self.endpoints.get_mut(&key) {
            Some(stats) => stats,
            None => {
                self.endpoint_count += 1;
                self.endpoints
                    .entry(EndpointKey::from(&key))
                    .or_insert_with(EndpointStats::new)
            }
        };
        stats.add(status, latency_ns);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::conn::ConnInfo;
    use crate::direction::Direction;
    use crate::http::{HttpMessage, HttpVersion, Role};

    fn response(url: &str, status: u16, latency_ms: u64) -> HttpMessage {
        HttpMessage {
            method: Some("GET".into()),
            url: Some(url.into()),
            status: Some(status),
            latency_ns: Some(latency_ms * 1_000_000),
            exchange: Some(1),
            ..HttpMessage::new(
                MessageKind::Response,
                Direction::Send,
                HttpVersion::Http11,
                0,
            )
        }
    }

    fn feed(sink: &mut SummarySink<Vec<u8>>, message: &HttpMessage) {
        let conn = ConnInfo::unknown(1, 1);
        let record = ExchangeRecord {
            unix_ns: 0,
            tid: 1,
            conn: &conn,
            role: Some(Role::Server),
            message,
            // The pipeline's route; here the path is route enough.
            route: message.url.as_deref().and_then(|url| url.split('?').next()),
        };
        sink.record(&record).unwrap();
    }

    #[test]
    fn counts_classes_and_percentiles_per_endpoint() {
        let mut sink = SummarySink::new(Vec::new());
        for i in 1..=100 {
            feed(
                &mut sink,
                &response("/a?x=1", if i % 10 == 0 { 503 } else { 200 }, i),
            );
        }
        feed(&mut sink, &response("/b", 404, 7));
        let rows = sink.rows();
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!(
            (
                a.role.as_str(),
                a.method.as_str(),
                a.route.as_str(),
                a.count
            ),
            ("server", "GET", "/a", 100)
        );
        assert_eq!(a.status_classes, [0, 90, 0, 0, 10]);
        assert!(
            (a.p50_ms - 50.0).abs() < 0.5 && (a.p99_ms - 99.0).abs() < 0.5,
            "{a:?}"
        );
        assert_eq!(rows[1].status_classes, [0, 0, 0, 1, 0]);
        let text = sink.render(&Report::default());
        assert!(text.contains("/a") && text.contains("kernel_drops=0"));
    }

    #[test]
    fn endpoint_count_is_bounded() {
        let mut sink = SummarySink::new(Vec::new());
        for i in 0..(MAX_ENDPOINTS + 50) {
            feed(&mut sink, &response(&format!("/users/{i}"), 200, 1));
        }
        let rows = sink.rows();
        assert_eq!(rows.len(), MAX_ENDPOINTS + 1);
        let other = rows.iter().find(|r| r.route == OTHER_ROUTES).unwrap();
        assert_eq!(other.count, 50);
    }
}
