//! Connection-level behaviour: pipelining, protocol errors, shutdown, CLI exit codes.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use demo_server::{spawn, Config, RunningServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_demo-server");

async fn start(slow_delay: Duration) -> anyhow::Result<RunningServer> {
    start_with(Config {
        slow_delay,
        ..Config::default()
    })
    .await
}

async fn start_with(config: Config) -> anyhow::Result<RunningServer> {
    Ok(spawn(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

/// Writes `raw` in one go and reads until the server closes the connection.
async fn exchange(server: &RunningServer, raw: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(server.local_addr()).await?;
    stream.write_all(raw.as_bytes()).await?;
    let mut out = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
        .await
        .context("server did not close the connection")??;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() -> anyhow::Result<()> {
    for pipeline_flush in [false, true] {
        let server = start_with(Config {
            slow_delay: Duration::from_millis(20),
            pipeline_flush,
            ..Config::default()
        })
        .await?;
        check_pipelining(&server).await?;
        server.shutdown().await?;
    }
    Ok(())
}

async fn check_pipelining(server: &RunningServer) -> anyhow::Result<()> {
    let raw = "GET /slow HTTP/1.1\r\nHost: t\r\nX-Request-Id: 1\r\n\r\n\
               POST /echo HTTP/1.1\r\nHost: t\r\nX-Request-Id: 2\r\nContent-Length: 15\r\n\r\n{\"message\":\"p\"}\
               GET /bytes/5 HTTP/1.1\r\nHost: t\r\nX-Request-Id: 3\r\nConnection: close\r\n\r\n";
    let reply = exchange(server, raw).await?;
    assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{reply}");
    let ids: Vec<&str> = reply
        .lines()
        .filter_map(|line| line.strip_prefix("x-request-id: "))
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert!(reply.contains("delayed 20ms"));
    assert!(reply.contains(r#"{"message":"p"}"#));
    assert!(reply.ends_with("\r\n\r\n01234"));
    Ok(())
}

#[tokio::test]
async fn http10_and_chunked_wire_format() -> anyhow::Result<()> {
    let server = start(Duration::ZERO).await?;
    let reply = exchange(&server, "GET / HTTP/1.0\r\n\r\n").await?;
    assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");

    let raw = "GET /chunked/10 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let reply = exchange(&server, raw).await?;
    let (_, body) = reply.split_once("\r\n\r\n").context("no header end")?;
    assert_eq!(
        body,
        "3\r\n012\r\n3\r\n345\r\n3\r\n678\r\n1\r\n9\r\n0\r\n\r\n"
    );
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn malformed_and_h2c_requests_are_rejected() -> anyhow::Result<()> {
    let server = start(Duration::ZERO).await?;
    let reply = exchange(&server, "GARBAGE\r\n\r\n").await?;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");

    let reply = exchange(&server, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
    assert!(!reply.contains(" 200 "), "{reply:?}");

    // The server keeps working afterwards.
    let reply = exchange(&server, "GET /healthz HTTP/1.0\r\n\r\n").await?;
    assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply:?}");
    server.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests() -> anyhow::Result<()> {
    let server = start(Duration::from_millis(300)).await?;
    let addr = server.local_addr();
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    timeout(Duration::from_secs(5), server.shutdown()).await??;

    let mut out = Vec::new();
    timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await??;
    let reply = String::from_utf8_lossy(&out);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("delayed 300ms"), "{reply}");
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    Ok(())
}

#[test]
fn port_in_use_fails_with_a_clear_message() -> anyhow::Result<()> {
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let output = Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[test]
fn sigterm_exits_cleanly() -> anyhow::Result<()> {
    let mut child = Command::new(BIN)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("listening on 127.0.0.1:"));
    assert!(listening.is_some(), "no startup line");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    let status = child.wait()?;
    assert!(status.success(), "{status}");
    Ok(())
}
