//! Both modes against an in-process demo server, and against nothing at all.

use std::net::{Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use clap::Parser as _;
use demo_server::RunningServer;
use demo_traffic::{
    run, run_iterations, run_load, Cli, IterationConfig, IterationSummary, LoadConfig, Target,
};
use tokio_util::sync::CancellationToken;

const BIN: &str = env!("CARGO_BIN_EXE_demo-traffic");

async fn start_server(ip: impl Into<std::net::IpAddr>) -> std::io::Result<RunningServer> {
    let config = demo_server::Config {
        slow_delay: Duration::from_millis(10),
        ..demo_server::Config::default()
    };
    demo_server::spawn(SocketAddr::new(ip.into(), 0), config).await
}

/// A local port with nothing listening on it.
fn closed_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn iterations(n: u64) -> IterationConfig {
    IterationConfig {
        iterations: n,
        delay: Duration::from_millis(5),
        timeout: Duration::from_secs(5),
    }
}

fn load(path: &str) -> LoadConfig {
    LoadConfig {
        concurrency: 4,
        duration: Duration::from_millis(300),
        rate: None,
        path: path.to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn cli(args: &[&str]) -> anyhow::Result<Cli> {
    Ok(Cli::try_parse_from(
        ["demo-traffic"].iter().chain(args.iter()),
    )?)
}

#[tokio::test]
async fn iterations_succeed_against_the_demo_server() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let target = Target::new("127.0.0.1", server.local_addr().port())?;
    let summary = run_iterations(&target, &iterations(3), CancellationToken::new()).await?;
    assert_eq!(
        summary,
        IterationSummary {
            sent: 12,
            ok: 12,
            failed: 0
        }
    );
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn ipv6_targets_work() -> anyhow::Result<()> {
    let Ok(server) = start_server(Ipv6Addr::LOCALHOST).await else {
        eprintln!("skipping: no IPv6 loopback");
        return Ok(());
    };
    let port = server.local_addr().port();
    for host in ["::1", "[::1]"] {
        let target = Target::new(host, port)?;
        assert_eq!(target.base(), format!("http://[::1]:{port}"));
        let summary = run_iterations(&target, &iterations(1), CancellationToken::new()).await?;
        assert_eq!(summary.ok, 4);
    }
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn cancelled_iterations_stop_early() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let target = Target::new("localhost", server.local_addr().port())?;
    let stop = CancellationToken::new();
    stop.cancel();
    let summary = run_iterations(&target, &iterations(1000), stop).await?;
    assert_eq!(summary.sent, 0);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn connection_refused_counts_as_failure() -> anyhow::Result<()> {
    let target = Target::new("127.0.0.1", closed_port()?)?;
    let summary = run_iterations(&target, &iterations(2), CancellationToken::new()).await?;
    assert_eq!(
        summary,
        IterationSummary {
            sent: 8,
            ok: 0,
            failed: 8
        }
    );

    let port = closed_port()?.to_string();
    let err = run(cli(&["--port", &port, "--requests", "1"])?).await;
    assert!(err.is_err());
    let err = run(cli(&["--port", &port, "--duration", "0.1"])?).await;
    assert!(err.is_err());
    Ok(())
}

#[tokio::test]
async fn load_reports_throughput_and_latency() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let target = Target::new("127.0.0.1", server.local_addr().port())?;
    let summary = run_load(&target, &load("/healthz"), CancellationToken::new()).await?;
    assert!(summary.requests > 0);
    assert_eq!(summary.errors, 0);
    assert!(summary.duration_s >= 0.3);
    assert!(summary.rps > 0.0);
    assert!(summary.p50_ms > 0.0);
    assert!(summary.p50_ms <= summary.p90_ms && summary.p90_ms <= summary.p99_ms);
    assert!(summary.p99_ms <= summary.max_ms);

    let errors = run_load(&target, &load("/status/503"), CancellationToken::new()).await?;
    assert!(errors.requests > 0);
    assert_eq!(errors.errors, errors.requests);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn load_respects_the_rate_limit() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let target = Target::new("127.0.0.1", server.local_addr().port())?;
    let config = LoadConfig {
        rate: Some(40.0),
        duration: Duration::from_millis(500),
        ..load("/")
    };
    let summary = run_load(&target, &config, CancellationToken::new()).await?;
    // 40 req/s for 0.5 s is 20 requests; allow for timer granularity.
    assert!((10..=25).contains(&summary.requests), "{summary:?}");
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn cli_runs_both_modes() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let port = server.local_addr().port().to_string();
    run(cli(&[
        "--port",
        &port,
        "--requests",
        "2",
        "--delay-ms",
        "0",
    ])?)
    .await?;
    run(cli(&[
        "--port",
        &port,
        "--concurrency",
        "2",
        "--duration",
        "0.2",
    ])?)
    .await?;
    let failing = cli(&["--port", &port, "--duration", "0.1", "--path", "/nope"])?;
    assert!(run(failing).await.is_err());
    server.shutdown().await?;
    Ok(())
}

#[test]
fn cli_validation() -> anyhow::Result<()> {
    let parsed = cli(&["--duration", "1.5", "--rate", "10", "--json"])?;
    let load = parsed
        .load_config()
        .ok_or_else(|| anyhow::anyhow!("no load mode"))?;
    assert_eq!(
        (load.concurrency, load.duration),
        (10, Duration::from_millis(1500))
    );
    assert!(cli(&["--requests", "3"])?.load_config().is_none());
    for bad in [
        &["--rate", "5"][..],
        &["--json"],
        &["--duration", "0"],
        &["--duration", "-1"],
        &["--concurrency", "0"],
        &["--duration", "1", "--rate", "0"],
        &["--duration", "1", "--path", "nope"],
    ] {
        assert!(cli(bad).is_err(), "{bad:?}");
    }
    assert!(Target::new("", 80).is_err());
    assert!(Target::new("a b", 80).is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_prints_json_and_sets_exit_codes() -> anyhow::Result<()> {
    let server = start_server([127, 0, 0, 1]).await?;
    let port = server.local_addr().port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args([
                "--port",
                &port,
                "--concurrency",
                "2",
                "--duration",
                "0.2",
                "--json",
            ])
            .output()
    })
    .await??;
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    for field in [
        "requests",
        "errors",
        "duration_s",
        "rps",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
    ] {
        assert!(json[field].is_number(), "{field} in {json}");
    }
    server.shutdown().await?;

    let port = closed_port()?.to_string();
    let output = Command::new(BIN)
        .args(["--port", &port, "--requests", "1"])
        .output()?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("failed=4"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Connection refused"));
    Ok(())
}
