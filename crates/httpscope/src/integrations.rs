//! Fleet integrations: Prometheus `/metrics`, a pcapng file and OTLP export
//! (see [`crate::otlp`]).
//!
//! The metrics endpoint is a small std-only HTTP server on its own thread: it
//! answers `GET /metrics` with the registry as OpenMetrics text, `/healthz` and
//! `/readyz` with whether capture is alive and draining (see [`Health`]), and
//! anything else with 404. The pcapng file gets the raw captured bytes of each
//! connection (before redaction), so it is created with mode 0600.

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use httpscope_core::sink::{Metrics, MetricsSink, PcapSink, Sink};
use httpscope_core::stats::Report;

use crate::cli::IntegrationArgs;
use crate::health::Health;
use crate::otlp::{OtlpSink, OtlpTargets};

/// What the integrations need while capture runs.
pub struct Integrations {
    metrics: Option<Metrics>,
    otlp: Option<OtlpSink>,
    health: Arc<Health>,
}

impl Integrations {
    /// Binds the metrics port (before capture starts, so a bad address fails early).
    pub fn start(args: &IntegrationArgs) -> anyhow::Result<Self> {
        let health = Arc::new(Health::new());
        let metrics = match args.metrics_addr {
            Some(addr) => {
                let metrics = Metrics::new();
                let listener = TcpListener::bind(addr)
                    .with_context(|| format!("binding the metrics address {addr}"))?;
                let bound = listener.local_addr().unwrap_or(addr);
                let served = metrics.clone();
                let health = Arc::clone(&health);
                std::thread::Builder::new()
                    .name("metrics".into())
                    .spawn(move || serve(&listener, &served, &health))
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
        Ok(Self {
            metrics,
            otlp,
            health,
        })
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

    /// Publishes httpscope's own health (called about once a second, after a drain).
    pub fn update_health(&self, report: &Report, connections: usize, ring_fill: Option<f64>) {
        self.health.drained();
        if let Some(metrics) = &self.metrics {
            metrics.update_health(report, connections, ring_fill);
        }
    }
}

impl Drop for Integrations {
    /// Capture ends with the integrations: from now on the agent is not ready.
    fn drop(&mut self) {
        self.health.detached();
    }
}

fn serve(listener: &TcpListener, metrics: &Metrics, health: &Health) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(err) = answer(stream, metrics, health) {
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
fn answer(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
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
    let text = "text/plain; charset=utf-8";
    let probe = |state: Result<String, String>| match state {
        Ok(state) => ("200 OK", text, format!("{state}\n")),
        Err(state) => ("503 Service Unavailable", text, format!("{state}\n")),
    };
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        ("GET" | "HEAD", "/healthz") => probe(health.liveness(Instant::now())),
        ("GET" | "HEAD", "/readyz") => probe(health.readiness(Instant::now())),
        _ => (
            "404 Not Found",
            text,
            "try /metrics, /healthz or /readyz\n".to_string(),
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
