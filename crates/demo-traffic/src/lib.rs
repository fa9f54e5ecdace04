//! Traffic generator for the httpscope demo service: scripted iterations or a load test.

mod client;
mod iterate;
mod load;

use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use hyper::Uri;
use tokio_util::sync::CancellationToken;

pub use iterate::{run_iterations, IterationConfig, IterationSummary};
pub use load::{run_load, LoadConfig, LoadSummary};

/// Traffic generator for the httpscope demo service.
///
/// Without `--concurrency`/`--duration` it runs scripted iterations of
/// `GET /`, `GET /healthz`, `POST /echo` and `GET /slow`; with either of them
/// it runs a load test of `GET <path>`.
#[derive(Debug, Clone, clap::Parser)]
#[command(version)]
#[command(group(clap::ArgGroup::new("load").multiple(true)))]
pub struct Cli {
    /// Host name or IP address of the demo service (IPv6 with or without brackets).
    #[arg(long, env = "TARGET_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// TCP port of the demo service.
    #[arg(long, env = "HTTP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Iterations to run (each sends 4 requests).
    #[arg(long, env = "TOTAL_REQUESTS", default_value_t = 50)]
    pub requests: u64,
    /// Pause between iterations, in milliseconds.
    #[arg(long, env = "REQUEST_DELAY_MS", default_value_t = 500)]
    pub delay_ms: u64,
    /// Per-request timeout, in milliseconds.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Load test: number of concurrent keep-alive workers [default: 10].
    #[arg(long, group = "load", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: Option<u32>,
    /// Load test: how long to run, in seconds (fractions allowed) [default: 10].
    #[arg(long, group = "load", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
    /// Load test: limit on the total request rate, in requests per second.
    #[arg(long, requires = "load", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Load test: path to request with GET.
    #[arg(long, requires = "load", default_value = "/", value_parser = parse_path)]
    pub path: String,
    /// Load test: print the summary as one JSON object.
    #[arg(long, requires = "load")]
    pub json: bool,
}

impl Cli {
    /// The load-test settings, if a load test was requested.
    pub fn load_config(&self) -> Option<LoadConfig> {
        if self.concurrency.is_none() && self.duration.is_none() {
            return None;
        }
        Some(LoadConfig {
            concurrency: self.concurrency.unwrap_or(10),
            duration: self.duration.unwrap_or(Duration::from_secs(10)),
            rate: self.rate,
            path: self.path.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
        })
    }

    /// The settings of the scripted iterations.
    pub fn iteration_config(&self) -> IterationConfig {
        IterationConfig {
            iterations: self.requests,
            delay: Duration::from_millis(self.delay_ms),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

fn parse_seconds(raw: &str) -> Result<Duration, String> {
    match raw.parse::<f64>() {
        Ok(secs) if secs > 0.0 => Duration::try_from_secs_f64(secs).map_err(|err| err.to_string()),
        Ok(_) => Err("must be a positive number of seconds".into()),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(rate),
        Ok(_) => Err("must be a positive number".into()),
        Err(err) => Err(err.to_string()),
    }
}

fn parse_path(raw: &str) -> Result<String, String> {
    match raw.parse::<hyper::http::uri::PathAndQuery>() {
        Ok(_) if raw.starts_with('/') => Ok(raw.to_owned()),
        Ok(_) => Err("must start with `/`".into()),
        Err(err) => Err(err.to_string()),
    }
}

/// Where requests go: `http://host:port`.
#[derive(Debug, Clone)]
pub struct Target {
    base: String,
}

impl Target {
    /// Builds the target, bracketing IPv6 literals such as `::1`.
    pub fn new(host: &str, port: u16) -> anyhow::Result<Self> {
        let host = host.trim();
        ensure!(!host.is_empty(), "the target host is empty");
        let base = if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        };
        let uri: Uri = base
            .parse()
            .with_context(|| format!("invalid target host `{host}`"))?;
        if uri.port_u16() != Some(port) {
            bail!("invalid target host `{host}`");
        }
        Ok(Self { base })
    }

    /// Base URL without a trailing slash, e.g. `http://[::1]:8080`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Absolute URI of `path` (which starts with `/`).
    pub fn uri(&self, path: &str) -> anyhow::Result<Uri> {
        let url = format!("{}{path}", self.base);
        url.parse().with_context(|| format!("invalid URL `{url}`"))
    }
}

/// Runs the mode selected by `cli`; Ctrl-C stops early but still reports.
///
/// Fails when any request failed.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = Target::new(&cli.host, cli.port)?;
    let stop = CancellationToken::new();
    tokio::spawn(cancel_on_ctrl_c(stop.clone()));

    if let Some(config) = cli.load_config() {
        let summary = run_load(&target, &config, stop).await?;
        if cli.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!("{summary}");
        }
        ensure!(
            summary.errors == 0,
            "{} of {} requests failed",
            summary.errors,
            summary.requests
        );
    } else {
        let summary = run_iterations(&target, &cli.iteration_config(), stop).await?;
        println!("{summary}");
        ensure!(
            summary.failed == 0,
            "{} of {} requests failed",
            summary.failed,
            summary.sent
        );
    }
    Ok(())
}

async fn cancel_on_ctrl_c(stop: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_ok() {
        tracing::info!("interrupted, stopping");
        stop.cancel();
    }
}
