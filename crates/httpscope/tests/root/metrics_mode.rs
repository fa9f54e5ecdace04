//! Metrics mode: `--output none` with `--metrics-addr` writes no log, copies heads and
//! not bodies in the kernel, and still counts every exchange as the full pipeline does.
//! Two captures watch the same traffic at once, one of each kind, and their
//! Prometheus counters are compared.
//!
//! Root test; run it with the socket or the syscall backend (HTTPSCOPE_TEST_BACKEND).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::support::matrix::free_port;
use crate::support::tools::get;
use crate::support::{
    attach_timeout, backend_args, bin, demo_server, root_test, Proc, Profiler, TempDir,
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

/// Exchanges counted on `side` ("server" or "client"), all routes together.
fn exchanges(text: &str, side: &str) -> f64 {
    samples(
        text,
        &[&format!("http_{side}_request_duration_seconds_count")],
    )
    .values()
    .sum()
}

/// Waits until the scrape at `port` has counted `want` exchanges on both sides.
fn wait_for_exchanges(port: u16, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(port);
        let done = ["server", "client"]
            .iter()
            .all(|side| exchanges(&text, side) >= want);
        if done || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[apply(root_test!)]
fn metrics_mode_counts_what_the_full_pipeline_counts() {
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
    // Said before the programs load, then the attach.
    lean.wait_for("metrics mode: no log", attach_timeout());
    lean.wait_for("attached", attach_timeout());

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
    // demo-traffic's 40 rounds are 4 requests each.
    let want = (4 * 40 + LARGE) as f64;
    let full_text = wait_for_exchanges(full_metrics, want);
    let lean_text = wait_for_exchanges(lean_metrics, want);

    let full_counts = samples(&full_text, COUNTED);
    let lean_counts = samples(&lean_text, COUNTED);
    assert!(!full_counts.is_empty(), "{full_text}");
    assert_eq!(lean_counts, full_counts, "metrics mode counted differently");
    for side in ["server", "client"] {
        assert_eq!(exchanges(&lean_text, side), want, "{side}: {lean_text}");
    }
    for text in [&full_text, &lean_text] {
        assert_eq!(sample(text, "httpscope_kernel_dropped_events_total"), 0.0);
        assert_eq!(
            sample(text, "httpscope_partial_messages_total"),
            0.0,
            "{text}"
        );
    }
    // The kernel left the large bodies uncopied in metrics mode, past the 1 KiB it
    // keeps for a log. (Health counters are refreshed once a second: polled.)
    let elided = |port: u16| sample(&scrape(port), "httpscope_elided_bytes_total");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut lean_elided, mut full_elided) = (0.0, 0.0);
    while Instant::now() < deadline {
        (lean_elided, full_elided) = (elided(lean_metrics), elided(full_metrics));
        // The 1 KiB a log keeps of each large body, on the server's side at least (the
        // client reads in calls small enough to be copied whole).
        if full_elided > 0.0 && lean_elided >= full_elided + (LARGE * 1000) as f64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        full_elided > 0.0 && lean_elided >= full_elided + (LARGE * 1000) as f64,
        "elided: metrics mode {lean_elided}, full {full_elided}"
    );

    let (code, stderr) = lean.interrupt();
    assert_eq!(code, 0, "{stderr}");
    let (records, _) = full.stop();
    assert_eq!(
        records.len() as f64,
        2.0 * 2.0 * want,
        "records of the full pipeline"
    );
    // `none` is no log at all, not a file of that name.
    let left: Vec<_> = std::fs::read_dir(&dir.path).unwrap().collect();
    assert!(left.is_empty(), "metrics mode wrote files: {left:?}");
}
