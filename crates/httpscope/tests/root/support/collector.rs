//! A real OpenTelemetry collector for the OTLP tests: rotel, logging what it receives.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::matrix::free_port;

/// rotel's collector binary, shipped inside the `rotel` PyPI package
/// (`scripts/setup.sh --test`); None (skip) or a panic under CI=true when missing.
pub fn rotel_binary(test: &str) -> Option<std::path::PathBuf> {
    let found = Command::new("python3")
        .args([
            "-c",
            "import rotel,os;print(os.path.dirname(rotel.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("rotel-agent"))
        .filter(|p| p.exists());
    if found.is_none() {
        super::skip_unless_ci(
            test,
            "rotel is missing (scripts/setup.sh --test installs it)",
        );
    }
    found
}

/// A running rotel collector logging every span and metric it receives to `log`.
pub struct Collector {
    child: std::process::Child,
    log: std::path::PathBuf,
    /// OTLP/gRPC port.
    pub port: u16,
    /// OTLP/HTTP port.
    pub http_port: u16,
}

impl Collector {
    pub fn start(binary: &Path, dir: &Path) -> Collector {
        let log = dir.join("rotel.out");
        let out = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let http_port = free_port();
        let child = Command::new(binary)
            .arg("start")
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log", "metrics"])
            .args(["--debug-log-verbosity", "detailed"])
            .arg(format!("--otlp-grpc-endpoint=127.0.0.1:{port}"))
            .arg(format!("--otlp-http-endpoint=127.0.0.1:{http_port}"))
            .arg(format!("--pid-file={}", dir.join("rotel.pid").display()))
            .arg(format!("--log-file={}", dir.join("rotel.log").display()))
            .env("NO_COLOR", "1")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        for listening in [port, http_port] {
            while TcpStream::connect(("127.0.0.1", listening)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rotel never listened on {listening}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Collector {
            child,
            log,
            port,
            http_port,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spans in rotel's detailed debug log, as the text blocks that describe them.
pub fn spans(log: &str) -> Vec<&str> {
    log.split("\nSpan #")
        .skip(1)
        .map(|block| {
            let end = ["\nResource", "\nScope", "\n20"]
                .iter()
                .filter_map(|marker| block.find(marker))
                .min()
                .unwrap_or(block.len());
            &block[..end]
        })
        .collect()
}
