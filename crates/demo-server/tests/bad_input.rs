//! demo-server under bad input (issue #5): malformed requests get 400, oversized bodies 413,
//! slow clients time out, and no input makes the process panic or stop answering.
//!
//! Runs the real binary with a short `--header-timeout-ms`, so a panic anywhere (even in a
//! connection task) shows in its stderr, and its exit status is checked at the end.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_demo-server");
const HEADER_TIMEOUT_MS: u64 = 600;

/// The demo-server binary on an ephemeral port; SIGTERMed and checked when `finish`ed.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> anyhow::Result<Server> {
        let mut child = Command::new(BIN)
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--header-timeout-ms", &HEADER_TIMEOUT_MS.to_string()])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|line| line.contains("listening on 127.0.0.1:"))
            .context("no startup line")?;
        let port = listening
            .rsplit(':')
            .next()
            .map(|p| p.trim_matches(|c: char| !c.is_ascii_digit()))
            .context("no port")?
            .parse::<u16>()?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut seen) = sink.lock() {
                    seen.push(line);
                }
            }
        });
        Ok(Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            stderr,
        })
    }

    /// Checks the server still answers, stops it with SIGTERM and checks it never panicked.
    async fn finish(mut self) -> anyhow::Result<()> {
        let reply = exchange(self.addr, b"GET /healthz HTTP/1.0\r\n\r\n").await?;
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply:?}");
        assert!(
            self.child.try_wait()?.is_none(),
            "demo-server exited on its own"
        );
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        assert!(killed.success());
        let status = self.child.wait()?;
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().map(|s| s.join("\n")).unwrap_or_default();
        assert!(status.success(), "{status}; stderr:\n{stderr}");
        assert!(
            !stderr.contains("panicked"),
            "demo-server panicked:\n{stderr}"
        );
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `raw` and reads until the server closes the connection (or resets it).
async fn exchange(addr: SocketAddr, raw: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(raw).await;
    let mut out = Vec::new();
    let read = timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.context("server did not close the connection")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn status_of(reply: &str) -> Option<u16> {
    reply.split(' ').nth(1).and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn malformed_requests_get_400() -> anyhow::Result<()> {
    let server = Server::start()?;
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nBad\0Name: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ];
    for raw in cases {
        let reply = exchange(server.addr, raw).await?;
        assert_eq!(
            status_of(&reply),
            Some(400),
            "{:?} got {reply:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // A 1 MiB header line and 10,000 headers are refused too (431 is hyper's word for it).
    let mut huge = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    huge.resize(huge.len() + (1 << 20), b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    for (what, raw) in [("1 MiB header line", huge), ("10,000 headers", many)] {
        let reply = exchange(server.addr, &raw).await?;
        assert!(
            matches!(status_of(&reply), Some(400 | 431)),
            "{what} got {reply:?}"
        );
    }
    server.finish().await
}

#[tokio::test]
async fn oversized_bodies_get_413() -> anyhow::Result<()> {
    let server = Server::start()?;
    let too_big = demo_server::MAX_BODY_BYTES + 1;
    // Declared up front.
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {too_big}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    raw.resize(raw.len() + too_big, b'a');
    let reply = exchange(server.addr, &raw).await?;
    assert_eq!(status_of(&reply), Some(413), "{reply:.200}");
    // Chunked, so only counting the body finds out.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..too_big / chunk.len() + 1 {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let reply = exchange(server.addr, &raw).await?;
    assert_eq!(status_of(&reply), Some(413), "{reply:.200}");
    // Just below the limit is still fine.
    let body = format!("{{\"message\":\"{}\"}}", "a".repeat(1000));
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = exchange(server.addr, raw.as_bytes()).await?;
    assert_eq!(status_of(&reply), Some(200), "{reply:.200}");
    server.finish().await
}

#[tokio::test]
async fn slow_clients_time_out() -> anyhow::Result<()> {
    let server = Server::start()?;
    let limit = Duration::from_millis(HEADER_TIMEOUT_MS);
    // Half a head, then silence.
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost:").await?;
    let mut buf = Vec::new();
    timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .context("half a head was not timed out")?
        .ok();
    let waited = started.elapsed();
    assert!(waited >= limit / 2, "closed after only {waited:?}");
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "), "{buf:?}");

    // Slowloris: a byte every 100 ms keeps the connection busy but not alive forever.
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await?;
    let head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        // A timeout means the server still waits; 0 bytes or an error means it hung up.
        if let Ok(Ok(0) | Err(_)) =
            timeout(Duration::from_millis(100), stream.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    let waited = started.elapsed();
    assert!(closed, "a slowloris client was served for {waited:?}");
    assert!(waited < limit * 4, "slowloris closed only after {waited:?}");
    server.finish().await
}

/// xorshift64*: reproducible garbage without a dependency.
fn garbage(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn garbage_never_crashes_it() -> anyhow::Result<()> {
    let server = Server::start()?;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut inputs: Vec<Vec<u8>> = (0..150)
        .map(|i| garbage(&mut seed, 1 + (i * 97) % 20_000))
        .collect();
    // Garbage behind a plausible start, and truncated requests.
    for i in 0..50 {
        let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\n".to_vec();
        raw.extend(garbage(&mut seed, 1 + i * 31));
        inputs.push(raw);
        let full =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{\"message\":\"x\"}";
        inputs.push(full[..(i * 7) % full.len()].to_vec());
    }
    let mut tasks = Vec::new();
    for raw in inputs {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = stream.write_all(&raw).await;
            // Half-close: the server sees EOF mid-request.
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ = timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
        }));
    }
    for task in tasks {
        task.await?;
    }
    // Connections reset (RST) in the middle of a body.
    for _ in 0..20 {
        let stream = std::net::TcpStream::connect(server.addr)?;
        let mut stream = TcpStream::from_std({
            stream.set_nonblocking(true)?;
            stream
        })?;
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"mess")
            .await?;
        // A zero linger never blocks: close() sends RST at once.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO))?;
        drop(stream);
    }
    server.finish().await
}
