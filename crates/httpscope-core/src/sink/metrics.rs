//! Prometheus/OpenMetrics metrics: per-route request durations and httpscope's own health.
//!
//! [`Metrics`] is a cheap, cloneable handle on a `prometheus-client` registry;
//! [`MetricsSink`] feeds it from records. Serving `/metrics` over HTTP is the
//! binary's job (the core has no network code): it calls [`Metrics::encode`].
//!
//! Names follow the OpenTelemetry HTTP semantic conventions as Prometheus
//! spells them: `http_server_request_duration_seconds` and
//! `http_client_request_duration_seconds`, labelled `http_request_method`,
//! `http_route`, `http_response_status_code`, `network_protocol_version`
//! (`1.0`, `1.1`, `2`), `role`, `process` and `container_id` (empty outside
//! containers). Every HTTP/1 and HTTP/2 exchange
//! is there, gRPC calls included. gRPC calls are also in the RPC conventions'
//! `rpc_server_call_duration_seconds` and `rpc_client_call_duration_seconds`,
//! labelled `rpc_system="grpc"`, `rpc_service`, `rpc_method`,
//! `rpc_grpc_status_code` (`_UNKNOWN` when the call ended without one), `role`
//! and `process`. Cardinality is bounded: unknown methods become `_OTHER`,
//! `http_route` is the record's route ([`crate::route`]: templated and capped,
//! overflowing to `{other}`; `{unknown}` without a target); gRPC service/method
//! pairs are capped likewise.

mod cache;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{Sink, SinkError};
use crate::conn::ConnInfo;
use crate::event::abi::KernelStat;
use crate::http::{GrpcCall, HttpVersion, MessageKind, Role};
use crate::record::ExchangeRecord;
use crate::stats::Report;
use cache::{HandleCache, SeriesKey};

/// Bucket bounds in seconds: the semantic conventions' advice, plus finer ones
/// below 5 ms (loopback and in-cluster calls are often sub-millisecond).
const DURATION_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0,
];

/// Series whose handles [`MetricsSink`] keeps, per kind (request counts, durations).
const MAX_CACHED_SERIES: usize = 8192;

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    http_request_method: String,
    http_route: String,
    http_response_status_code: String,
    network_protocol_version: &'static str,
    role: String,
    process: String,
    /// The container's id; empty (so absent in Prometheus) outside containers.
    container_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc_system: &'static str,
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: String,
    role: String,
    process: String,
    /// The container's id; empty (so absent in Prometheus) outside containers.
    container_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    http_request_method: String,
    http_route: String,
    role: String,
    process: String,
    /// The container's id; empty (so absent in Prometheus) outside containers.
    container_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.iter().copied())
}

type DurationFamily = Family<DurationLabels, Histogram, fn() -> Histogram>;
type RpcFamily = Family<RpcLabels, Histogram, fn() -> Histogram>;

/// Shared handle on the metrics; clones update and encode the same registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    server_duration: DurationFamily,
    client_duration: DurationFamily,
    rpc_server_duration: RpcFamily,
    rpc_client_duration: RpcFamily,
    requests: Family<RequestLabels, Counter>,
    events: Counter,
    kernel_dropped_events: Counter,
    kernel_dropped_bytes: Counter,
    truncated_syscalls: Counter,
    decode_errors: Counter,
    parse_errors: Counter,
    partial_messages: Counter,
    gap_bytes: Counter,
    elided_bytes: Counter,
    budget_fallbacks: Counter,
    records: Counter,
    connections_watched: Counter,
    connections_reported: Counter,
    connections_skipped: Family<SkipLabels, Counter>,
    connections_tracked: Gauge,
    ring_fill: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let server_duration = DurationFamily::new_with_constructor(duration_histogram);
        let client_duration = DurationFamily::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests, from the request's first byte to the response's last byte as the server process saw them",
            Unit::Seconds,
            server_duration.clone(),
        );
        registry.register_with_unit(
            "http_client_request_duration",
            "Duration of HTTP client requests, from the request's first byte to the response's last byte as the client process saw them",
            Unit::Seconds,
            client_duration.clone(),
        );
        let rpc_server_duration = RpcFamily::new_with_constructor(duration_histogram);
        let rpc_client_duration = RpcFamily::new_with_constructor(duration_histogram);
        registry.register_with_unit(
            "rpc_server_call_duration",
            "Duration of gRPC calls served, from the request's first byte to the response's last byte (trailers) as the server process saw them; a streaming call is one observation",
            Unit::Seconds,
            rpc_server_duration.clone(),
        );
        registry.register_with_unit(
            "rpc_client_call_duration",
            "Duration of gRPC calls made, from the request's first byte to the response's last byte (trailers) as the client process saw them; a streaming call is one observation",
            Unit::Seconds,
            rpc_client_duration.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "httpscope_http_requests",
            "HTTP requests seen, answered or not",
            requests.clone(),
        );
        let this = Self {
            server_duration,
            client_duration,
            rpc_server_duration,
            rpc_client_duration,
            requests,
            events: Counter::default(),
            kernel_dropped_events: Counter::default(),
            kernel_dropped_bytes: Counter::default(),
            truncated_syscalls: Counter::default(),
            decode_errors: Counter::default(),
            parse_errors: Counter::default(),
            partial_messages: Counter::default(),
            gap_bytes: Counter::default(),
            elided_bytes: Counter::default(),
            budget_fallbacks: Counter::default(),
            records: Counter::default(),
            connections_watched: Counter::default(),
            connections_reported: Counter::default(),
            connections_skipped: Family::default(),
            connections_tracked: Gauge::default(),
            ring_fill: Gauge::default(),
            registry: Arc::new(Registry::default()),
        };
        let counters: [(&str, &str, &Counter); 13] = [
            ("httpscope_events", "Kernel events processed", &this.events),
            (
                "httpscope_kernel_dropped_events",
                "Events the kernel could not queue (ring buffer full)",
                &this.kernel_dropped_events,
            ),
            (
                "httpscope_kernel_dropped_bytes",
                "Data bytes in events the kernel could not queue",
                &this.kernel_dropped_bytes,
            ),
            (
                "httpscope_truncated_syscalls",
                "Syscalls that moved more bytes than --capture-bytes copies",
                &this.truncated_syscalls,
            ),
            (
                "httpscope_decode_errors",
                "Kernel records that could not be decoded",
                &this.decode_errors,
            ),
            (
                "httpscope_parse_errors",
                "Unparseable HTTP heads or chunk framing",
                &this.parse_errors,
            ),
            (
                "httpscope_partial_messages",
                "HTTP messages cut short by lost bytes or an early close",
                &this.partial_messages,
            ),
            (
                "httpscope_gap_bytes",
                "Stream bytes lost (dropped events, uncaptured syscall tails)",
                &this.gap_bytes,
            ),
            (
                "httpscope_elided_bytes",
                "Body bytes past --body-limit the kernel counted without copying (capture budget), found inside a body as expected",
                &this.elided_bytes,
            ),
            (
                "httpscope_budget_fallbacks",
                "Syscalls the kernel could not frame, copied whole instead of budgeted",
                &this.budget_fallbacks,
            ),
            ("httpscope_records", "HTTP messages emitted", &this.records),
            (
                "httpscope_connections_watched",
                "Connections on watched ports the kernel kept state for",
                &this.connections_watched,
            ),
            (
                "httpscope_connections_reported",
                "Watched connections whose open record the kernel sent",
                &this.connections_reported,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register(
            "httpscope_connections_skipped",
            "Watched connections the kernel stopped looking at, by reason (filtered: process not selected; not_http: --all-ports verdict; silent: ended before anything was reported; no_slot: no state slot, per attempt)",
            this.connections_skipped.clone(),
        );
        registry.register(
            "httpscope_connections_tracked",
            "Connections currently in httpscope's table",
            this.connections_tracked.clone(),
        );
        registry.register(
            "httpscope_ring_buffer_fill_ratio",
            "Estimated fill of the kernel ring buffer: the largest share of it drained by one read in the last interval (bytes read / ring size)",
            this.ring_fill.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..this
        }
    }

    /// The registry as OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Copies httpscope's own counters; `ring_fill` is an estimate in 0..=1 when known.
    pub fn update_health(&self, report: &Report, connections: usize, ring_fill: Option<f64>) {
        let set = |counter: &Counter, value: u64| counter.inner().store(value, Ordering::Relaxed);
        set(&self.events, report.pipeline.events);
        set(&self.kernel_dropped_events, report.kernel.dropped_events());
        set(
            &self.kernel_dropped_bytes,
            report.kernel.get(KernelStat::DataBytesDropped),
        );
        set(
            &self.truncated_syscalls,
            report.kernel.get(KernelStat::SyscallsTruncated),
        );
        set(&self.decode_errors, report.pipeline.decode_errors);
        set(&self.parse_errors, report.parse.parse_errors);
        set(&self.partial_messages, report.parse.partial_messages);
        set(&self.gap_bytes, report.parse.gap_bytes);
        set(&self.elided_bytes, report.parse.elided_bytes);
        set(
            &self.budget_fallbacks,
            report.kernel.get(KernelStat::BudgetFallbacks),
        );
        set(&self.records, report.pipeline.records);
        set(
            &self.connections_watched,
            report.kernel.get(KernelStat::ConnsWatched),
        );
        set(
            &self.connections_reported,
            report.kernel.get(KernelStat::ConnsOpened),
        );
        for (reason, value) in report.kernel.conns_skipped() {
            set(
                &self
                    .connections_skipped
                    .get_or_create(&SkipLabels { reason }),
                value,
            );
        }
        self.connections_tracked
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        if let Some(fill) = ring_fill {
            self.ring_fill.set(fill.clamp(0.0, 1.0));
        }
    }
}

/// Feeds [`Metrics`] from records.
pub struct MetricsSink {
    metrics: Metrics,
    rpc_methods: RpcMethods,
    requests: HandleCache<Counter>,
    durations: HandleCache<Histogram>,
}

impl MetricsSink {
    /// `max_rpc_methods`: distinct gRPC (service, method) label pairs kept (as routes are).
    pub fn new(metrics: Metrics, max_rpc_methods: usize) -> Self {
        Self::with_cached_series(metrics, max_rpc_methods, MAX_CACHED_SERIES)
    }

    fn with_cached_series(metrics: Metrics, max_rpc_methods: usize, max_series: usize) -> Self {
        Self {
            metrics,
            rpc_methods: RpcMethods::new(max_rpc_methods),
            requests: HandleCache::new(max_series),
            durations: HandleCache::new(max_series),
        }
    }

    fn count_request(&mut self, key: &SeriesKey<&str>) {
        let family = &self.metrics.requests;
        self.requests
            .get(key, || family.get_or_create(&request_labels(key)).clone())
            .inc();
    }

    /// `key.response` is the status and version.
    fn observe_duration(&mut self, key: &SeriesKey<&str>, seconds: f64) {
        let Some((status, version)) = key.response else {
            return;
        };
        let family = match key.role {
            Role::Server => &self.metrics.server_duration,
            Role::Client => &self.metrics.client_duration,
        };
        let labels = || duration_labels(key, status, version);
        self.durations
            .get(key, || family.get_or_create(&labels()).clone())
            .observe(seconds);
    }

    fn observe_rpc(
        &mut self,
        role: Role,
        (process, container_id): (&str, &str),
        grpc: &GrpcCall,
        seconds: f64,
    ) {
        let (rpc_service, rpc_method) = self.rpc_methods.labels(grpc);
        let family = match role {
            Role::Server => &self.metrics.rpc_server_duration,
            Role::Client => &self.metrics.rpc_client_duration,
        };
        family
            .get_or_create(&RpcLabels {
                rpc_system: "grpc",
                rpc_service,
                rpc_method,
                rpc_grpc_status_code: grpc
                    .status
                    .map_or_else(|| "_UNKNOWN".to_string(), |s| s.to_string()),
                role: role.as_str().to_string(),
                process: process.to_string(),
                container_id: container_id.to_string(),
            })
            .observe(seconds);
    }
}

fn request_labels(key: &SeriesKey<&str>) -> RequestLabels {
    RequestLabels {
        http_request_method: key.method.to_string(),
        http_route: key.route.to_string(),
        role: key.role.as_str().to_string(),
        process: key.process.to_string(),
        container_id: key.container_id.to_string(),
    }
}

fn duration_labels(key: &SeriesKey<&str>, status: u16, version: HttpVersion) -> DurationLabels {
    DurationLabels {
        http_request_method: key.method.to_string(),
        http_route: key.route.to_string(),
        http_response_status_code: status.to_string(),
        network_protocol_version: version.version(),
        role: key.role.as_str().to_string(),
        process: key.process.to_string(),
        container_id: key.container_id.to_string(),
    }
}

/// gRPC (service, method) label pairs, capped like routes: the path is the peer's to choose.
struct RpcMethods {
    seen: HashSet<(String, String)>,
    max: usize,
}

impl RpcMethods {
    fn new(max: usize) -> Self {
        Self {
            seen: HashSet::new(),
            max,
        }
    }

    fn labels(&mut self, grpc: &GrpcCall) -> (String, String) {
        let pair = (grpc.service.to_string(), grpc.method.to_string());
        if self.seen.contains(&pair) {
            return pair;
        }
        if self.seen.len() >= self.max {
            return ("{other}".to_string(), "{other}".to_string());
        }
        self.seen.insert(pair.clone());
        pair
    }
}

fn method_label(method: Option<&str>) -> &'static str {
    match method {
        Some(m) => KNOWN_METHODS
            .into_iter()
            .find(|&known| known == m)
            .unwrap_or("_OTHER"),
        None => "_UNKNOWN",
    }
}

fn container_id(conn: &ConnInfo) -> &str {
    conn.cgroup
        .as_ref()
        .and_then(|c| c.container_id.as_deref())
        .unwrap_or_default()
}

impl Sink for MetricsSink {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        let message = record.message;
        let Some(role) = record.role else {
            return Ok(());
        };
        let key = SeriesKey {
            role,
            method: method_label(message.method.as_deref()),
            route: record.route.unwrap_or("{unknown}"),
            process: &record.conn.comm,
            container_id: container_id(record.conn),
            response: None,
        };
        match message.kind {
            MessageKind::Request => self.count_request(&key),
            MessageKind::Response => {
                let (Some(latency_ns), false) = (message.latency_ns, message.interim) else {
                    return Ok(());
                };
                let seconds = latency_ns as f64 / 1e9;
                // A gRPC call reset before its response head still counts, as `_UNKNOWN`.
                if let Some(grpc) = message.grpc.as_deref() {
                    self.observe_rpc(role, (key.process, key.container_id), grpc, seconds);
                }
                let response = message.status.map(|status| (status, message.proto));
                self.observe_duration(&SeriesKey { response, ..key }, seconds);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self, report: &Report) -> Result<(), SinkError> {
        self.metrics.update_health(report, 0, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnInfo;
    use crate::direction::Direction;
    use crate::http::{HttpMessage, HttpVersion};

    #[test]
    fn encodes_openmetrics() {
        let metrics = Metrics::new();
        metrics.update_health(&Report::default(), 3, Some(0.5));
        let text = metrics.encode();
        assert!(text.contains("httpscope_connections_tracked 3"), "{text}");
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn connection_accounting_is_exported_by_reason() {
        let mut report = Report::default();
        for (stat, value) in [
            (KernelStat::ConnsWatched, 10),
            (KernelStat::ConnsOpened, 6),
            (KernelStat::ConnsFiltered, 1),
            (KernelStat::ConnsNotHttp, 2),
            (KernelStat::ConnsSilent, 1),
        ] {
            report.kernel.values[stat as usize] = value;
        }
        assert_eq!(report.kernel.conns_open(), 0);
        let metrics = Metrics::new();
        metrics.update_health(&report, 0, None);
        let text = metrics.encode();
        for line in [
            "httpscope_connections_watched_total 10",
            "httpscope_connections_reported_total 6",
            "httpscope_connections_skipped_total{reason=\"filtered\"} 1",
            "httpscope_connections_skipped_total{reason=\"not_http\"} 2",
            "httpscope_connections_skipped_total{reason=\"silent\"} 1",
            "httpscope_connections_skipped_total{reason=\"no_slot\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    fn h2_response(grpc: Option<GrpcCall>, status: Option<u16>) -> HttpMessage {
        HttpMessage {
            method: Some("POST".into()),
            url: Some("/pkg.Echo/Say".into()),
            status,
            latency_ns: Some(3_000_000),
            grpc: grpc.map(Box::new),
            ..HttpMessage::new(MessageKind::Response, Direction::Send, HttpVersion::H2, 0)
        }
    }

    fn grpc_call(method: &str, status: Option<u32>) -> GrpcCall {
        GrpcCall {
            service: "pkg.Echo".into(),
            method: method.into(),
            status,
            message: None,
            messages: 1,
        }
    }

    fn feed(sink: &mut MetricsSink, message: &HttpMessage) {
        let conn = ConnInfo {
            comm: "srv".into(),
            ..ConnInfo::unknown(1, 2)
        };
        let record = ExchangeRecord {
            unix_ns: 0,
            tid: 2,
            conn: &conn,
            role: Some(Role::Server),
            message,
            route: message.url.as_deref(),
        };
        assert!(sink.record(&record).is_ok());
    }

    #[test]
    fn grpc_calls_follow_the_rpc_conventions_and_h2_joins_http() {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone(), crate::route::DEFAULT_MAX_ROUTES);
        feed(
            &mut sink,
            &h2_response(Some(grpc_call("Say", Some(5))), Some(200)),
        );
        // Reset before its response head: no HTTP status, still an RPC observation.
        feed(&mut sink, &h2_response(Some(grpc_call("Say", None)), None));
        feed(&mut sink, &h2_response(None, Some(404)));
        let text = metrics.encode();
        let rpc = "rpc_server_call_duration_seconds_count{rpc_system=\"grpc\",\
                   rpc_service=\"pkg.Echo\",rpc_method=\"Say\"";
        assert!(
            text.contains(&format!(
                "{rpc},rpc_grpc_status_code=\"5\",role=\"server\",process=\"srv\",container_id=\"\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "{rpc},rpc_grpc_status_code=\"_UNKNOWN\",role=\"server\",process=\"srv\",container_id=\"\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "http_server_request_duration_seconds_count{http_request_method=\"POST\",\
                 http_route=\"/pkg.Echo/Say\",http_response_status_code=\"404\",\
                 network_protocol_version=\"2\",role=\"server\",process=\"srv\",container_id=\"\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("# UNIT rpc_client_call_duration_seconds seconds"),
            "{text}"
        );
    }

    #[test]
    fn grpc_methods_are_capped() {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::new(metrics.clone(), 1);
        feed(
            &mut sink,
            &h2_response(Some(grpc_call("A", Some(0))), Some(200)),
        );
        feed(
            &mut sink,
            &h2_response(Some(grpc_call("B", Some(0))), Some(200)),
        );
        let text = metrics.encode();
        assert!(text.contains("rpc_method=\"A\""), "{text}");
        assert!(!text.contains("rpc_method=\"B\""), "{text}");
        assert!(text.contains("rpc_method=\"{other}\""), "{text}");
    }

    /// Records naming many series (roles, methods, routes, statuses, versions, processes,
    /// containers; gRPC; interim and unpaired responses), each sent twice.
    fn series_mix() -> Vec<(ConnInfo, Role, HttpMessage)> {
        let container = Arc::new(crate::cgroup::CgroupInfo {
            path: "/kubepods/pod1/abc".into(),
            container_id: Some("ab".repeat(32).into()),
            pod_uid: None,
        });
        let conns =
            [("srv", None), ("", None), ("srv", Some(container))].map(|(comm, cgroup)| ConnInfo {
                comm: comm.into(),
                cgroup,
                ..ConnInfo::unknown(1, 2)
            });
        let mut mix = Vec::new();
        let versions = [HttpVersion::Http10, HttpVersion::Http11, HttpVersion::H2];
        for (i, conn) in conns.iter().enumerate() {
            for (j, method) in [Some("GET"), Some("POST"), Some("BREW"), None]
                .into_iter()
                .enumerate()
            {
                for (k, url) in [Some("/a"), Some("/b/{id}"), None].into_iter().enumerate() {
                    let kind = [MessageKind::Request, MessageKind::Response][(i + j + k) % 2];
                    let message = HttpMessage {
                        method: method.map(|m| m.to_string().into()),
                        url: url.map(Into::into),
                        status: [Some(200), Some(404), None][(j + k) % 3],
                        latency_ns: [Some(200_000), None, Some(3_000_000_000)][(i + k) % 3],
                        interim: (i, j, k) == (0, 1, 1),
                        ..HttpMessage::new(kind, Direction::Send, versions[(i + j) % 3], 0)
                    };
                    for role in [Role::Server, Role::Client] {
                        mix.push((conn.clone(), role, message.clone()));
                    }
                }
            }
        }
        mix.push((
            conns[0].clone(),
            Role::Client,
            h2_response(Some(grpc_call("Say", Some(0))), Some(200)),
        ));
        let twice = mix.clone();
        mix.extend(twice);
        mix
    }

    fn feed_all(sink: &mut MetricsSink, mix: &[(ConnInfo, Role, HttpMessage)]) {
        for (conn, role, message) in mix {
            let record = ExchangeRecord {
                unix_ns: 0,
                tid: 2,
                conn,
                role: Some(*role),
                message,
                route: message.url.as_deref(),
            };
            assert!(sink.record(&record).is_ok());
        }
    }

    /// The exposition's lines, sorted: a family lists its series in hash order, which
    /// differs between registries.
    fn sorted_lines(metrics: &Metrics) -> Vec<String> {
        let mut lines: Vec<String> = metrics.encode().lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    /// Metrics fed `mix` through a sink caching at most `max_series` series per kind.
    fn exposition(
        mix: &[(ConnInfo, Role, HttpMessage)],
        max_series: usize,
    ) -> (Vec<String>, [usize; 2]) {
        let metrics = Metrics::new();
        let mut sink = MetricsSink::with_cached_series(metrics.clone(), 10, max_series);
        feed_all(&mut sink, mix);
        (
            sorted_lines(&metrics),
            [sink.requests.len(), sink.durations.len()],
        )
    }

    #[test]
    fn cached_series_expose_what_the_families_alone_do() {
        let mix = series_mix();
        let (uncached, [0, 0]) = exposition(&mix, 0) else {
            panic!("a cache of 0 series kept some");
        };
        let (cached, [requests, durations]) = exposition(&mix, MAX_CACHED_SERIES);
        assert!(requests > 10 && durations > 10, "{requests} {durations}");
        assert_eq!(cached, uncached);
        let server_series = uncached
            .iter()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
            .count();
        assert!(server_series > 5, "{uncached:#?}");
    }

    #[test]
    fn series_cache_is_capped() {
        let mix = series_mix();
        let (capped, [requests, durations]) = exposition(&mix, 3);
        assert_eq!((requests, durations), (3, 3));
        assert_eq!(capped, exposition(&mix, 0).0);
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(Some("GET")), "GET");
        assert_eq!(method_label(Some("BREW")), "_OTHER");
    }
}
