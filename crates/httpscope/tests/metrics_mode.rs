//! Metrics mode: `--output none` with `--metrics-addr` writes no log, copies heads and
//! not bodies in the kernel, and still counts every exchange as the full pipeline does.
//! Two captures watch the same traffic at once, one of each kind, and their
//! Prometheus counters are compared.
//!
//! Root test; run it with the socket or the syscall backend (HTTPSCOPE_TEST_BACKEND).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::matrix::free_port;
use support::tools::get;
use support::{
    attach_timeout, backend_args, bin, demo_server, require_root, Proc, Profiler, TempDir,
};

/// The text of `/metrics` at `port`.
fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The samples of the metric families named `prefix…`, by series (name and labels).
fn samples(text: &str, prefixes: &[&str]) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn sample(text: &str, series: &str) -> f64 {
    samples(text, &[series])
        .into_iter()
        .filter(|(name, _)| name == series)
        .map(|(_, v)| v)
        .sum()
}

/// What the two captures must agree on: exchanges per method, route, status, role and
/// process. (Not latency buckets: each capture stamps its own events, so an exchange
/// at a bucket's edge may fall either side.)
const COUNTED: &[&str] = &[
    "httpscope_http_requests_total",
    "http_server_request_duration_seconds_count",
    "http_client_request_duration_seconds_count",
];

/// Waits until the scrape at `port` has counted `want` server-side requests.
fn wait_for_requests(port: u16, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(port);
        let served: f64 = samples(&text, &["http_server_request_duration_seconds_count"])
            .values()
            .sum();
        if served >= want || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn metrics_mode_counts_what_the_full_pipeline_counts() {
    if !require_root("metrics_mode_counts_what_the_full_pipeline_counts") {
        return;
    }
    let (_server, port) = demo_server(&[]);
    let full_metrics = free_port();
    let full = Profiler::start(
        &[port],
        &["--metrics-addr", &format!("127.0.0.1:{full_metrics}")],
    );
    let dir = TempDir::new();
    let lean_metrics = free_port();
    let mut lean = Proc::spawn(
        Command::new(bin("httpscope"))
            .current_dir(&dir.path)
            .args(["record", "--port", &port.to_string(), "--output", "none"])
            .args(["--metrics-addr", &format!("127.0.0.1:{lean_metrics}")])
            .args(backend_args(&[]))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null()),
    );
    let attached = lean.wait_for("attached", attach_timeout());
    assert!(attached.contains("metrics mode"), "{attached}");

    // The demo's mix (small bodies, a POST, a slow route), then bodies past the body limit.
    let status = Command::new(bin("demo-traffic"))
        .env("HTTP_PORT", port.to_string())
        .env("TOTAL_REQUESTS", "40")
        .env("REQUEST_DELAY_MS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "demo-traffic failed");
    const LARGE: usize = 6;
    for i in 0..LARGE {
        assert_eq!(get(port, &format!("/bytes/{}", 16384 + i)), 200);
    }
    let want = (40 + LARGE) as f64;
    let full_text = wait_for_requests(full_metrics, want);
    let lean_text = wait_for_requests(lean_metrics, want);

    let full_counts = samples(&full_text, COUNTED);
    let lean_counts = samples(&lean_text, COUNTED);
    assert!(!full_counts.is_empty(), "{full_text}");
    assert_eq!(lean_counts, full_counts, "metrics mode counted differently");
    let served: f64 = samples(&lean_text, &["http_server_request_duration_seconds_count"])
        .values()
        .sum();
    assert_eq!(served, want, "{lean_text}");
    for text in [&full_text, &lean_text] {
        assert_eq!(sample(text, "httpscope_kernel_dropped_events_total"), 0.0);
        assert_eq!(
            sample(text, "httpscope_partial_messages_total"),
            0.0,
            "{text}"
        );
    }
    // The kernel left the large bodies uncopied in metrics mode, past the 1 KiB it
    // keeps for a log.
    let elided = |text: &str| sample(text, "httpscope_elided_bytes_total");
    assert!(
        elided(&lean_text) >= elided(&full_text) + (LARGE * 1024) as f64,
        "elided: metrics mode {}, full {}",
        elided(&lean_text),
        elided(&full_text)
    );

    let (code, stderr) = lean.interrupt();
    assert_eq!(code, 0, "{stderr}");
    let (records, _) = full.stop();
    assert!(records.len() >= 2 * 2 * 40, "{}", records.len());
    // `none` is no log at all, not a file of that name.
    let left: Vec<_> = std::fs::read_dir(&dir.path).unwrap().collect();
    assert!(left.is_empty(), "metrics mode wrote files: {left:?}");
}
