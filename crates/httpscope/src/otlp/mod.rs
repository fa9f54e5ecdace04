//! OpenTelemetry export: each paired final response becomes a span, and its
//! latency a sample of the `http.{server,client}.request.duration` histogram,
//! sent over OTLP (gRPC or HTTP/protobuf, see [`target`]) by the official
//! `opentelemetry-otlp` exporters. A gRPC call follows the RPC conventions
//! instead: a span named `{service}/{method}` with `rpc.*` attributes, and
//! `rpc.{server,client}.call.duration`.
//!
//! The capture thread only turns a record into a small owned [`Exchange`] and
//! offers it to a bounded channel; when the channel is full the exchange is
//! dropped and counted, so a slow or absent collector never blocks capture nor
//! grows memory. A background thread owns a Tokio runtime (for tonic and hyper) and the
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
use httpscope_core::sink::{Sink, SinkError};
use httpscope_core::stats::Report;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

mod http_client;
mod providers;
mod target;
mod telemetry;

pub use target::OtlpTargets;
use telemetry::{method_label, Exchange, Rpc, Telemetry};

/// Exchanges waiting for the exporter thread; beyond this they are dropped.
const CHANNEL_CAPACITY: usize = 8192;
/// The whole shutdown (final span and metric export) gives up after this.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Semantic-conventions bucket boundaries for HTTP durations, in seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

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
}

impl OtlpSink {
    /// Builds the exporters (a malformed endpoint fails here) and starts the exporter thread.
    pub fn start(targets: &OtlpTargets) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-io")
            .enable_all()
            .build()
            .context("starting the OTLP runtime")?;
        // tonic's lazily connected channel spawns its worker on this runtime,
        // and the HTTP client sends its requests on it.
        let (tracer_provider, meter_provider) = {
            let _entered = runtime.enter();
            providers::build(targets, runtime.handle())?
        };
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        let worker = std::thread::Builder::new()
            .name("otlp".into())
            .spawn(move || export_loop(&rx, runtime, &tracer_provider, &meter_provider))
            .context("starting the OTLP thread")?;
        let endpoint = targets.describe();
        tracing::info!(%endpoint, "exporting spans and metrics over OTLP");
        Ok(Self {
            endpoint,
            tx: Some(tx),
            worker: Some(worker),
            counters: Arc::default(),
        })
    }

    fn exchange(&self, record: &ExchangeRecord<'_>) -> Option<Exchange> {
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
        let route = record.route.unwrap_or("{unknown}").to_string();
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
            container_id: conn.cgroup.as_ref().and_then(|c| c.container_id.clone()),
            pod_uid: conn.cgroup.as_ref().and_then(|c| c.pod_uid.clone()),
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

fn unix_time(ns: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_nanos(u64::try_from(ns).ok()?))
}
