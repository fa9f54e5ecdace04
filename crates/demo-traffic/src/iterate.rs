//! Scripted mode: each iteration sends `GET /`, `GET /healthz`, `POST /echo` and `GET /slow`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Uri};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{millis, Client};
use crate::Target;

/// Settings of the scripted iterations.
#[derive(Debug, Clone)]
pub struct IterationConfig {
    /// Number of iterations (4 requests each).
    pub iterations: u64,
    /// Pause between iterations.
    pub delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Outcome of the scripted iterations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IterationSummary {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed to complete or got a non-2xx status.
    pub failed: u64,
}

impl fmt::Display for IterationSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { sent, ok, failed } = self;
        write!(f, "summary: sent={sent} ok={ok} failed={failed}")
    }
}

/// Runs the iterations (stopping early once `stop` is cancelled).
///
/// Request failures are counted, not returned as errors.
pub async fn run_iterations(
    target: &Target,
    config: &IterationConfig,
    stop: CancellationToken,
) -> anyhow::Result<IterationSummary> {
    let client = Client::new(1, config.timeout);
    let routes: [(Method, &str, Uri); 4] = [
        (Method::GET, "/", target.uri("/")?),
        (Method::GET, "/healthz", target.uri("/healthz")?),
        (Method::POST, "/echo", target.uri("/echo")?),
        (Method::GET, "/slow", target.uri("/slow")?),
    ];
    info!(
        "running {} iterations (4 requests each) against {}",
        config.iterations,
        target.base()
    );

    let mut summary = IterationSummary::default();
    for i in 1..=config.iterations {
        for (method, path, uri) in &routes {
            if stop.is_cancelled() {
                return Ok(summary);
            }
            let body = (method == Method::POST).then(|| {
                Bytes::from(serde_json::json!({ "message": format!("hello-{i}") }).to_string())
            });
            summary.sent += 1;
            let (latency, result) = client.send(method.clone(), uri, summary.sent, body).await;
            match result {
                Ok(status) if status.is_success() => {
                    summary.ok += 1;
                    info!(
                        "{method} {path} -> {} ({})",
                        status.as_u16(),
                        millis(latency)
                    );
                }
                Ok(status) => {
                    summary.failed += 1;
                    warn!(
                        "{method} {path} -> {} ({})",
                        status.as_u16(),
                        millis(latency)
                    );
                }
                Err(err) => {
                    summary.failed += 1;
                    warn!("{method} {path} -> error: {err:#} ({})", millis(latency));
                }
            }
        }
        if i < config.iterations {
            tokio::select! {
                () = tokio::time::sleep(config.delay) => {}
                () = stop.cancelled() => break,
            }
        }
    }
    Ok(summary)
}
