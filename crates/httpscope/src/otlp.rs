//! OpenTelemetry export: each paired final response becomes a span, and its
//! latency a sample of the `http.{server,client}.request.duration` histogram,
//! sent over OTLP/gRPC by the official `opentelemetry-otlp` exporter. A gRPC
//! call follows the RPC conventions instead: a span named `{service}/{method}`
//! with `rpc.*` attributes, and `rpc.{server,client}.call.duration`.
//!
//! The capture thread only turns a record into a small owned [`Exchange`] and
//! offers it to a bounded channel; when the channel is full the exchange is
//! dropped and counted, so a slow or absent collector never blocks capture nor
//! grows memory. A background thread owns a Tokio runtime (for tonic) and the
//! SDK: the batch span processor (bounded queue, drops when full) and the
//! periodic metric reader. Shutdown is bounded by timeouts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use httpscope_core::http::{MessageKind, Role};
use httpscope_core::record::ExchangeRecord;
use httpscope_core::sink::{RouteTemplater, Sink, SinkError};
use httpscope_core::stats::Report;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Exchanges waiting for the exporter thread; beyond this they are dropped.
const CHANNEL_CAPACITY: usize = 8192;
/// Spans queued in the SDK batch processor; beyond this the SDK drops them.
const SPAN_QUEUE: usize = 4096;
/// One export call (connect + send) gives up after this.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole shutdown (final span and metric export) gives up after this.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Semantic-conventions bucket boundaries for HTTP durations, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One finished exchange, owned, as the exporter thread needs it.
struct Exchange {
    role: Role,
    start: SystemTime,
    end: SystemTime,
    method: String,
    method_original: Option<String>,
    path: String,
    route: String,
    /// HTTP status; None only for a gRPC call reset before its response head.
    status: Option<u16>,
    rpc: Option<Rpc>,
    scheme: &'static str,
    version: &'static str,
    server_ip: String,
    server_port: u16,
    client_ip: String,
    client_port: u16,
    peer_ip: String,
    peer_port: u16,
    pid: u32,
    tid: u32,
    comm: String,
}

/// A gRPC call's RPC identity and outcome.
struct Rpc {
    service: String,
    method: String,
    /// `grpc-status`; None when the call ended without one (reset, loss).
    status: Option<u32>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// The sink feeding the exporter thread.
pub struct OtlpSink {
    endpoint: String,
    tx: Option<SyncSender<Exchange>>,
    worker: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    routes: RouteTemplater,
}

impl OtlpSink {
    /// Builds the exporters (a malformed endpoint fails here) and starts the exporter thread.
    pub fn start(endpoint: &str, routes: RouteTemplater) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-io")
            .enable_all()
            .build()
            .context("starting the OTLP runtime")?;
        // tonic's lazily connected channel spawns its worker on this runtime.
        let (tracer_provider, meter_provider) = {
            let _entered = runtime.enter();
            build_providers(endpoint)?
        };
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let worker = std::thread::Builder::new()
            .name("otlp".into())
            .spawn(move || export_loop(&rx, runtime, &tracer_provider, &meter_provider))
            .context("starting the OTLP thread")?;
        tracing::info!(%endpoint, "exporting spans and metrics over OTLP/gRPC");
        Ok(Self {
            endpoint: endpoint.to_string(),
            tx: Some(tx),
            worker: Some(worker),
            counters: Arc::default(),
            routes,
        })
    }

    fn exchange(&mut self, record: &ExchangeRecord<'_>) -> Option<Exchange> {
        let message = record.message;
        let role = record.role?;
        let (MessageKind::Response, Some(latency_ns), false) =
            (message.kind, message.latency_ns, message.interim)
        else {
            return None;
        };
        let rpc = message.grpc.as_deref().map(|grpc| Rpc {
            service: grpc.service.to_string(),
            method: grpc.method.to_string(),
            status: grpc.status,
        });
        if message.status.is_none() && rpc.is_none() {
            return None;
        }
        // `unix_ns` is the wall-clock time of the response's first byte
        // (`first_ts_ns` on the capture clock): the same offset converts the
        // response's last byte, and the request started `latency` before it.
        let offset = record.unix_ns.wrapping_sub(message.first_ts_ns as i64);
        let end_ns = offset.wrapping_add(message.last_ts_ns as i64);
        let start_ns = end_ns.saturating_sub(i64::try_from(latency_ns).unwrap_or(i64::MAX));
        let (start, end) = (unix_time(start_ns)?, unix_time(end_ns)?);

        let (method, method_original) = method_label(message.method.as_deref());
        let path = record.path().unwrap_or("").to_string();
        let route = self.routes.route(record.path());
        let conn = record.conn;
        let (server, client) = match role {
            Role::Server => (conn.local, conn.remote),
            Role::Client => (conn.remote, conn.local),
        };
        Some(Exchange {
            role,
            start,
            end,
            method,
            method_original,
            path,
            route,
            status: message.status,
            rpc,
            scheme: if conn.tls { "https" } else { "http" },
            version: message.proto.version(),
            server_ip: server.ip().to_string(),
            server_port: server.port(),
            client_ip: client.ip().to_string(),
            client_port: client.port(),
            peer_ip: conn.remote.ip().to_string(),
            peer_port: conn.remote.port(),
            pid: conn.tgid,
            tid: record.tid,
            comm: conn.comm.clone(),
        })
    }
}

impl Sink for OtlpSink {
    fn record(&mut self, record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        if self.tx.is_none() {
            return Ok(());
        }
        let Some(exchange) = self.exchange(record) else {
            return Ok(());
        };
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        match tx.try_send(exchange) {
            Ok(()) => self.counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self, _report: &Report) -> Result<(), SinkError> {
        // Closing the channel ends the export loop, which shuts the SDK down.
        self.tx = None;
        if let Some(worker) = self.worker.take() {
            let (done_tx, done_rx) = mpsc::channel();
            let joiner = std::thread::spawn(move || {
                let _ = worker.join();
                let _ = done_tx.send(());
            });
            // The SDK bounds its own shutdown; this is the belt to its braces.
            if done_rx.recv_timeout(SHUTDOWN_TIMEOUT * 2).is_ok() {
                let _ = joiner.join();
            } else {
                tracing::warn!("OTLP: the exporter did not shut down in time; leaving it");
            }
        }
        tracing::info!(
            endpoint = %self.endpoint,
            spans = self.counters.sent.load(Ordering::Relaxed),
            dropped = self.counters.dropped.load(Ordering::Relaxed),
            "OTLP export finished (spans handed to the exporter; dropped = exporter queue full)"
        );
        Ok(())
    }
}

fn build_providers(endpoint: &str) -> anyhow::Result<(SdkTracerProvider, SdkMeterProvider)> {
    let resource = Resource::builder().with_service_name("httpscope").build();
    let span_exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("building the OTLP span exporter for {endpoint}"))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(SPAN_QUEUE)
        .with_scheduled_delay(Duration::from_secs(1))
        .build();
    let processor = BatchSpanProcessor::builder(span_exporter)
        .with_batch_config(batch)
        .build();
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.clone())
        .build();

    let metric_exporter = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .with_context(|| format!("building the OTLP metric exporter for {endpoint}"))?;
    let reader = PeriodicReader::builder(metric_exporter)
        .with_interval(Duration::from_secs(10))
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    Ok((tracer_provider, meter_provider))
}

fn export_loop(
    rx: &Receiver<Exchange>,
    runtime: tokio::runtime::Runtime,
    tracer_provider: &SdkTracerProvider,
    meter_provider: &SdkMeterProvider,
) {
    let tracer = tracer_provider.tracer("httpscope");
    let meter = meter_provider.meter("httpscope");
    let histogram = |name: &'static str, what: &'static str| -> Histogram<f64> {
        meter
            .f64_histogram(name)
            .with_unit("s")
            .with_description(what)
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build()
    };
    let http_server = histogram(
        "http.server.request.duration",
        "Duration of HTTP server requests.",
    );
    let http_client = histogram(
        "http.client.request.duration",
        "Duration of HTTP client requests.",
    );
    let rpc_server = histogram(
        "rpc.server.call.duration",
        "Measures the duration of an incoming Remote Procedure Call (RPC).",
    );
    let rpc_client = histogram(
        "rpc.client.call.duration",
        "Measures the duration of an outgoing Remote Procedure Call (RPC).",
    );

    while let Ok(exchange) = rx.recv() {
        let (start, end) = (exchange.start, exchange.end);
        let telemetry = Telemetry::of(exchange);
        let kind = match telemetry.role {
            Role::Server => SpanKind::Server,
            Role::Client => SpanKind::Client,
        };
        let mut span = tracer
            .span_builder(telemetry.name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(telemetry.span_attrs)
            .start(&tracer);
        if telemetry.error {
            span.set_status(Status::error(""));
        }
        span.end_with_timestamp(end);
        let seconds = end.duration_since(start).unwrap_or_default().as_secs_f64();
        let histogram = match (telemetry.rpc, telemetry.role) {
            (false, Role::Server) => &http_server,
            (false, Role::Client) => &http_client,
            (true, Role::Server) => &rpc_server,
            (true, Role::Client) => &rpc_client,
        };
        histogram.record(seconds, &telemetry.metric_attrs);
    }

    if let Err(err) = tracer_provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
        tracing::warn!(%err, "OTLP: final span export failed");
    }
    if let Err(err) = meter_provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
        tracing::warn!(%err, "OTLP: final metric export failed");
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// What one exchange becomes: its span and the attributes of its duration sample.
struct Telemetry {
    name: String,
    role: Role,
    /// A gRPC call (RPC conventions), else HTTP.
    rpc: bool,
    error: bool,
    span_attrs: Vec<KeyValue>,
    metric_attrs: Vec<KeyValue>,
}

impl Telemetry {
    fn of(exchange: Exchange) -> Telemetry {
        let mut telemetry = match &exchange.rpc {
            Some(rpc) => Self::rpc(exchange.role, rpc, &exchange.comm),
            None => Self::http(&exchange),
        };
        let mut attrs = telemetry.metric_attrs.clone();
        if telemetry.rpc {
            // The HTTP/2 request underneath, for those who look.
            attrs.push(KeyValue::new("url.path", exchange.path));
            if let Some(status) = exchange.status {
                attrs.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
            }
        } else {
            attrs.push(KeyValue::new("url.path", exchange.path));
            if let Some(original) = exchange.method_original {
                attrs.push(KeyValue::new("http.request.method_original", original));
            }
        }
        attrs.extend([
            KeyValue::new("network.protocol.name", "http"),
            KeyValue::new("network.transport", "tcp"),
            KeyValue::new("server.address", exchange.server_ip),
            KeyValue::new("server.port", i64::from(exchange.server_port)),
            KeyValue::new("client.address", exchange.client_ip),
            KeyValue::new("client.port", i64::from(exchange.client_port)),
            KeyValue::new("network.peer.address", exchange.peer_ip),
            KeyValue::new("network.peer.port", i64::from(exchange.peer_port)),
            KeyValue::new("process.pid", i64::from(exchange.pid)),
            KeyValue::new("thread.id", i64::from(exchange.tid)),
        ]);
        telemetry.span_attrs = attrs;
        telemetry
    }

    fn http(exchange: &Exchange) -> Telemetry {
        let status = exchange.status.unwrap_or_default();
        let error = match exchange.role {
            Role::Server => status >= 500,
            Role::Client => status >= 400,
        };
        let mut metric_attrs = vec![
            KeyValue::new("http.request.method", exchange.method.clone()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("http.route", exchange.route.clone()),
            KeyValue::new("url.scheme", exchange.scheme),
            KeyValue::new("network.protocol.version", exchange.version),
            KeyValue::new("process.executable.name", exchange.comm.clone()),
        ];
        if error {
            metric_attrs.push(KeyValue::new("error.type", status.to_string()));
        }
        Telemetry {
            name: format!("{} {}", exchange.method, exchange.route),
            role: exchange.role,
            rpc: false,
            error,
            span_attrs: Vec::new(),
            metric_attrs,
        }
    }

    /// RPC conventions for gRPC: a server span is an error only for the codes that mean a
    /// server fault; a client span for every code but OK; a call without a status for both.
    fn rpc(role: Role, rpc: &Rpc, comm: &str) -> Telemetry {
        const SERVER_FAULTS: [u32; 6] = [2, 4, 12, 13, 14, 15];
        let error = match (rpc.status, role) {
            (None, _) => true,
            (Some(code), Role::Server) => SERVER_FAULTS.contains(&code),
            (Some(code), Role::Client) => code != 0,
        };
        let mut metric_attrs = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", rpc.service.clone()),
            KeyValue::new("rpc.method", rpc.method.clone()),
            KeyValue::new("network.protocol.version", "2"),
            KeyValue::new("process.executable.name", comm.to_string()),
        ];
        match rpc.status {
            Some(code) => {
                metric_attrs.push(KeyValue::new("rpc.grpc.status_code", i64::from(code)));
                if error {
                    metric_attrs.push(KeyValue::new("error.type", code.to_string()));
                }
            }
            None => metric_attrs.push(KeyValue::new("error.type", "_OTHER")),
        }
        Telemetry {
            name: format!("{}/{}", rpc.service, rpc.method),
            role,
            rpc: true,
            error,
            span_attrs: Vec::new(),
            metric_attrs,
        }
    }
}

fn unix_time(ns: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_nanos(u64::try_from(ns).ok()?))
}

/// Semconv method: one of the standard methods, else `_OTHER` plus the original.
fn method_label(method: Option<&str>) -> (String, Option<String>) {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    match method {
        Some(m) if KNOWN.contains(&m) => (m.to_string(), None),
        Some(m) => ("_OTHER".to_string(), Some(m.to_string())),
        None => ("_OTHER".to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(role: Role, status: Option<u16>, rpc: Option<Rpc>) -> Exchange {
        Exchange {
            role,
            start: UNIX_EPOCH,
            end: UNIX_EPOCH + Duration::from_millis(3),
            method: "POST".into(),
            method_original: None,
            path: "/pkg.Echo/Say".into(),
            route: "/pkg.Echo/Say".into(),
            status,
            rpc,
            scheme: "http",
            version: "2",
            server_ip: "127.0.0.1".into(),
            server_port: 50051,
            client_ip: "127.0.0.1".into(),
            client_port: 40000,
            peer_ip: "127.0.0.1".into(),
            peer_port: 40000,
            pid: 1,
            tid: 1,
            comm: "srv".into(),
        }
    }

    fn rpc(status: Option<u32>) -> Option<Rpc> {
        Some(Rpc {
            service: "pkg.Echo".into(),
            method: "Say".into(),
            status,
        })
    }

    fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn grpc_spans_follow_the_rpc_conventions() {
        let t = Telemetry::of(exchange(Role::Server, Some(200), rpc(Some(5))));
        assert_eq!(t.name, "pkg.Echo/Say");
        assert!(t.rpc);
        assert!(!t.error, "NOT_FOUND is not a server fault");
        for (key, value) in [
            ("rpc.system", "grpc"),
            ("rpc.service", "pkg.Echo"),
            ("rpc.method", "Say"),
            ("rpc.grpc.status_code", "5"),
        ] {
            assert_eq!(attr(&t.metric_attrs, key).as_deref(), Some(value), "{key}");
            assert_eq!(attr(&t.span_attrs, key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(attr(&t.metric_attrs, "http.route"), None);
        assert!(Telemetry::of(exchange(Role::Client, Some(200), rpc(Some(5)))).error);
        assert!(Telemetry::of(exchange(Role::Server, Some(200), rpc(Some(14)))).error);
        let reset = Telemetry::of(exchange(Role::Server, None, rpc(None)));
        assert!(reset.error);
        assert_eq!(attr(&reset.metric_attrs, "rpc.grpc.status_code"), None);
        assert_eq!(
            attr(&reset.metric_attrs, "error.type").as_deref(),
            Some("_OTHER")
        );
    }

    #[test]
    fn http_spans_are_named_by_method_and_route() {
        let t = Telemetry::of(exchange(Role::Client, Some(404), None));
        assert_eq!(t.name, "POST /pkg.Echo/Say");
        assert!(!t.rpc && t.error);
        assert_eq!(
            attr(&t.metric_attrs, "network.protocol.version").as_deref(),
            Some("2")
        );
        assert_eq!(attr(&t.span_attrs, "rpc.system"), None);
    }

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(Some("GET")), ("GET".to_string(), None));
        assert_eq!(
            method_label(Some("BREW")),
            ("_OTHER".to_string(), Some("BREW".to_string()))
        );
    }
}
