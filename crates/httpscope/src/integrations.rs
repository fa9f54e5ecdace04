//! Fleet integrations: Prometheus `/metrics`, a pcapng file and OTLP export
//! (see [`crate::otlp`]).
//!
//! The metrics endpoint is a small std-only HTTP server on its own thread: it
//! answers `GET /metrics` with the registry as OpenMetrics text and anything
//! else with 404. The pcapng file gets the raw captured bytes of each
//! connection (before redaction), so it is created with mode 0600.

use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use httpscope_core::sink::{Metrics, MetricsSink, PcapSink, Sink};
use httpscope_core::stats::Report;

use crate::otlp::{OtlpProtocol, OtlpSink, OtlpTargets};

/// Prometheus metrics, pcapng output and OTLP export.
#[derive(Debug, Clone, Args)]
pub struct IntegrationArgs {
    /// Serve Prometheus/OpenMetrics metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR", env = "HTTPSCOPE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub routes: crate::cli::RouteArgs,

    /// Also write every captured connection as TCP segments to this pcapng file
    /// (truncated; mode 0600; NOT redacted: it holds credentials in clear text).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Export each exchange as an OpenTelemetry span, and duration histograms,
    /// over OTLP to this collector (e.g. http://127.0.0.1:4317 for gRPC,
    /// http://127.0.0.1:4318 for HTTP). Else OTEL_EXPORTER_OTLP_ENDPOINT, or
    /// OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT for one signal.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// OTLP protocol: grpc, or http/protobuf (POST to the endpoint's /v1/traces
    /// and /v1/metrics). Else OTEL_EXPORTER_OTLP_PROTOCOL (or the signal's
    /// own _PROTOCOL variable); unset, an endpoint on port 4318 means
    /// http/protobuf and any other grpc.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,
}

/// What the integrations need while capture runs.
pub struct Integrations {
    metrics: Option<Metrics>,
    otlp: Option<OtlpSink>,
}

impl Integrations {
    /// Binds the metrics port (before capture starts, so a bad address fails early).
    pub fn start(args: &IntegrationArgs) -> anyhow::Result<Self> {
        let metrics = match args.metrics_addr {
            Some(addr) => {
                let metrics = Metrics::new();
                let listener = TcpListener::bind(addr)
                    .with_context(|| format!("binding the metrics address {addr}"))?;
                let bound = listener.local_addr().unwrap_or(addr);
                let served = metrics.clone();
                std::thread::Builder::new()
                    .name("metrics".into())
                    .spawn(move || serve(&listener, &served))
                    .context("starting the metrics thread")?;
                tracing::info!("serving metrics on http://{bound}/metrics");
                Some(metrics)
            }
            None => None,
        };
        let targets =
            OtlpTargets::resolve(args.otlp_endpoint.as_deref(), args.otlp_protocol, |name| {
                std::env::var(name).ok()
            })
            .map_err(|err| anyhow::anyhow!("OTLP settings: {err}"))?;
        let otlp = if targets.any() {
            Some(OtlpSink::start(&targets)?)
        } else {
            None
        };
        Ok(Self { metrics, otlp })
    }

    /// The sinks these integrations add (the OTLP sink is handed over once).
    pub fn sinks(&mut self, args: &IntegrationArgs) -> anyhow::Result<Vec<Box<dyn Sink>>> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(metrics) = &self.metrics {
            let sink = MetricsSink::new(metrics.clone(), args.routes.max_routes);
            sinks.push(Box::new(sink));
        }
        if let Some(path) = &args.pcap {
            let file = crate::output::create_private(path, "pcap file")?;
            tracing::warn!(
                path = %path.display(),
                "--pcap: the capture file holds the captured bytes unredacted (credentials, cookies)"
            );
            let sink = PcapSink::new(BufWriter::new(file))
                .with_context(|| format!("writing pcap file {}", path.display()))?;
            sinks.push(Box::new(sink));
        }
        if let Some(otlp) = self.otlp.take() {
            sinks.push(Box::new(otlp));
        }
        Ok(sinks)
    }

    /// Publishes httpscope's own health (called about once a second).
    pub fn update_health(&self, report: &Report, connections: usize, ring_fill: Option<f64>) {
        if let Some(metrics) = &self.metrics {
            metrics.update_health(report, connections, ring_fill);
        }
    }
}

fn serve(listener: &TcpListener, metrics: &Metrics) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(err) = answer(stream, metrics) {
                    tracing::debug!(%err, "metrics request failed");
                }
            }
            Err(err) => {
                tracing::debug!(%err, "accepting a metrics connection");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Answers one request and closes the connection.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "try /metrics\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response)?;
    stream.flush()
}
