//! Demo HTTP/1.1 service that httpscope profiles in demos and tests.

mod routes;
mod server;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use routes::{router, MAX_BODY_BYTES, MAX_GENERATED_BYTES};
pub use server::{serve, spawn, RunningServer};

/// Demo HTTP/1.1 service for httpscope.
#[derive(Debug, Clone, clap::Parser)]
#[command(version)]
pub struct Cli {
    /// TCP port to listen on.
    #[arg(long, env = "HTTP_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to bind (`0.0.0.0` for all IPv4 interfaces, `::` for IPv6).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Delay of `GET /slow`, in milliseconds.
    #[arg(long, env = "SLOW_DELAY_MS", default_value_t = 400)]
    pub slow_delay_ms: u64,
    /// Coalesce the responses to pipelined requests into fewer writes.
    ///
    /// Caveat (hyper 1.x): with this on, the automatic 400 for an unparsable
    /// request head is not sent; the connection is just closed.
    #[arg(long)]
    pub pipeline_flush: bool,
    /// Connections that do not send a complete request head within this many
    /// milliseconds are closed (slowloris protection).
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
}

/// Behaviour knobs of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long `GET /slow` sleeps before answering.
    pub slow_delay: Duration,
    /// Enables hyper's `pipeline_flush` (see [`Cli::pipeline_flush`]).
    pub pipeline_flush: bool,
    /// How long a connection may take to send a complete request head.
    pub header_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            slow_delay: Duration::from_millis(400),
            pipeline_flush: false,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Binds the configured address and serves until SIGINT or SIGTERM.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let addr = SocketAddr::new(cli.bind, cli.port);
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let config = Config {
        slow_delay: Duration::from_millis(cli.slow_delay_ms),
        pipeline_flush: cli.pipeline_flush,
        header_timeout: Duration::from_millis(cli.header_timeout_ms.max(1)),
    };
    serve(listener, config, shutdown)
        .await
        .context("server failed")
}

/// Resolves on the first SIGINT or SIGTERM.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT, shutting down"),
            _ = terminate.recv() => tracing::info!("received SIGTERM, shutting down"),
        }
    })
}

/// Resolves on the first Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C, shutting down"),
            Err(err) => {
                tracing::warn!("cannot wait for Ctrl-C: {err}");
                std::future::pending().await
            }
        }
    })
}
