//! Fleet integrations against the real tools: a Prometheus server scrapes
//! `--metrics-addr` and is queried with PromQL; tshark dissects `--pcap` (HTTP/1 and h2c).
//!
//! Root tests. The tools come from `scripts/setup.sh --test`; without them a
//! test is skipped loudly, and under CI=true it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::h2::{curl_h2c_each, ids, nghttp, page_urls, Nghttpd};
use support::{demo_server, require_root, select, Proc, Profiler, TempDir};

/// Whether `tool` is on PATH; under CI=true a missing tool is a failure.
fn require_tool(test: &str, tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {tool} is missing (scripts/setup.sh --test installs it), and CI=true forbids skipping");
    }
    eprintln!("\n*** SKIPPING {test}: {tool} is not installed (scripts/setup.sh --test) ***\n");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request on its own connection; returns the status code.
fn get(port: u16, path: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {response:?}"))
}

/// GET over plain HTTP; returns the body (None when the server is not answering yet).
fn http_body(port: u16, target: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs a PromQL instant query; returns the summed sample value (None: no sample yet).
fn promql(port: u16, query: &str) -> Option<f64> {
    let body = http_body(port, &format!("/api/v1/query?query={}", url_encode(query)))?;
    let json: Value = serde_json::from_str(&body).ok()?;
    assert_eq!(json["status"], "success", "query {query} failed: {body}");
    let results = json["data"]["result"].as_array()?;
    if results.is_empty() {
        return None;
    }
    Some(
        results
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            .sum(),
    )
}

/// Polls `query` until it equals `want` (scrapes are every second) or 30 s pass.
fn wait_for_value(port: u16, query: &str, want: f64) -> Option<f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = promql(port, query);
        if last == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}

#[test]
fn prometheus_scrapes_metrics_and_promql_counts_the_requests() {
    const TEST: &str = "prometheus_scrapes_metrics_and_promql_counts_the_requests";
    if !require_root(TEST) || !require_tool(TEST, "prometheus") {
        return;
    }
    let (_server, port) = demo_server(&[]);
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let profiler = Profiler::start(
        &[port],
        &["--metrics-addr", &metrics_addr, "--route", "/orgs/{org}"],
    );

    let dir = TempDir::new();
    let config = dir.path.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: httpscope\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let mut prometheus = Proc::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null()),
    );
    prometheus.wait_for(
        "Server is ready to receive web requests",
        Duration::from_secs(60),
    );

    const HEALTHZ: usize = 5;
    const USERS: usize = 3;
    for _ in 0..HEALTHZ {
        assert_eq!(get(port, "/healthz"), 200);
    }
    for id in 0..USERS {
        assert_eq!(get(port, &format!("/users/{}", 1000 + id)), 404);
    }
    assert_eq!(get(port, "/orgs/acme"), 404);

    let healthz = wait_for_value(
        prom_port,
        r#"sum(http_server_request_duration_seconds_count{job="httpscope",http_request_method="GET",http_route="/healthz",http_response_status_code="200",role="server",process="demo-server"})"#,
        HEALTHZ as f64,
    );
    let users = wait_for_value(
        prom_port,
        r#"sum(http_server_request_duration_seconds_count{http_route="/users/{id}",http_response_status_code="404"})"#,
        USERS as f64,
    );
    let orgs = wait_for_value(
        prom_port,
        r#"sum(http_server_request_duration_seconds_count{http_route="/orgs/{org}"})"#,
        1.0,
    );
    let client_requests = wait_for_value(
        prom_port,
        r#"sum(httpscope_http_requests_total{role="client",http_route="/healthz"})"#,
        HEALTHZ as f64,
    );
    let events = promql(prom_port, "httpscope_events_total").unwrap_or(0.0);
    let drops = promql(prom_port, "httpscope_kernel_dropped_events_total");
    let fill = promql(prom_port, "httpscope_ring_buffer_fill_ratio");
    let tracked = promql(prom_port, "httpscope_connections_tracked");

    let (records, stderr) = profiler.stop();
    let logged = select(&records, "server", "response", Some("demo-server"))
        .into_iter()
        .filter(|r| r["url"] == "/healthz")
        .count();
    assert_eq!(logged, HEALTHZ, "records: {records:?}\n{stderr}");
    assert_eq!(healthz, Some(HEALTHZ as f64), "PromQL /healthz count");
    assert_eq!(
        users,
        Some(USERS as f64),
        "PromQL /users/{{id}} count (templated)"
    );
    assert_eq!(
        orgs,
        Some(1.0),
        "PromQL /orgs/{{org}} count (--route pattern)"
    );
    assert_eq!(
        client_requests,
        Some(HEALTHZ as f64),
        "client-side request counter"
    );
    assert!(events > 0.0, "httpscope_events_total not scraped");
    assert_eq!(drops, Some(0.0), "kernel drops metric");
    assert!(
        fill.is_some_and(|f| (0.0..=1.0).contains(&f)),
        "ring fill {fill:?}"
    );
    assert!(tracked.is_some(), "connections_tracked missing");
}

/// Every occurrence of `field` in the frames tshark shows for `filter`, decoding `port` as
/// `dissector` (`http`, `http2`); a frame can carry several (pipelined requests, h2 frames).
fn tshark_fields(
    file: &Path,
    port: u16,
    dissector: &str,
    filter: &str,
    field: &str,
) -> Vec<String> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .arg("-d")
        .arg(format!("tcp.port=={port},{dissector}"))
        .arg("-Y")
        .arg(filter)
        .arg("-T")
        .arg("fields")
        .arg("-E")
        .arg("occurrence=a")
        .arg("-E")
        .arg("aggregator=|")
        .arg("-e")
        .arg(field)
        .output()
        .expect("running tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| l.split('|').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// How many times `field` occurs in the frames tshark shows for `filter`, `port` as HTTP/1.
fn tshark_count(file: &Path, port: u16, filter: &str, field: &str) -> usize {
    tshark_fields(file, port, "http", filter, field).len()
}

#[test]
fn tshark_decodes_the_pcap_requests_httpscope_logged() {
    const TEST: &str = "tshark_decodes_the_pcap_requests_httpscope_logged";
    if !require_root(TEST) || !require_tool(TEST, "tshark") {
        return;
    }
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let pcap = dir.path.join("capture.pcapng");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let profiler = Profiler::start(&[port], &["--pcap", &pcap_arg]);
    const REQUESTS: usize = 6;
    for i in 0..REQUESTS {
        let path = if i % 2 == 0 { "/healthz" } else { "/" };
        assert_eq!(get(port, path), 200);
    }
    // A keep-alive connection carrying two requests, and a POST with a body.
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 16\r\nConnection: close\r\n\r\n{{\"message\":\"hi\"}}"
        )
        .unwrap();
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).unwrap();
    }
    let (records, stderr) = profiler.stop();
    let logged_server = select(&records, "server", "request", Some("demo-server")).len();
    let logged_client = select(&records, "client", "request", None).len();
    assert_eq!(
        logged_server,
        REQUESTS + 2,
        "server requests logged\n{stderr}"
    );
    assert_eq!(
        logged_client, logged_server,
        "client requests logged\n{stderr}"
    );

    let requests = tshark_count(&pcap, port, "http.request", "http.request.method");
    let responses = tshark_count(&pcap, port, "http.response", "http.response.code");
    let posts = tshark_count(
        &pcap,
        port,
        "http.request.method == \"POST\" && http.file_data",
        "frame.number",
    );
    assert_eq!(
        requests, logged_server,
        "tshark http.request vs httpscope's log"
    );
    assert_eq!(responses, logged_server, "tshark http.response");
    assert_eq!(posts, 1, "the POST and its body");
    let bad = tshark_count(
        &pcap,
        port,
        "_ws.malformed || _ws.expert.severity >= error",
        "frame.number",
    );
    assert_eq!(bad, 0, "tshark reports malformed packets or errors");
}

/// An h2c capture (nghttpd and nghttp, several streams on one connection, plus curl with prior
/// knowledge) decodes in tshark as HTTP/2: every request and response HEADERS frame that
/// httpscope logged is there, with the same paths, and nothing is malformed.
#[test]
fn tshark_decodes_h2c_in_the_pcap() {
    const TEST: &str = "tshark_decodes_h2c_in_the_pcap";
    if !require_root(TEST) || !require_tool(TEST, "tshark") {
        return;
    }
    let server = Nghttpd::start(None);
    let port = server.port;
    let dir = TempDir::new();
    let pcap = dir.path.join("capture.pcapng");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let profiler = Profiler::start(&[port], &["--pcap", &pcap_arg]);
    let base = format!("http://127.0.0.1:{port}");
    let sent = ids("pc", 12);
    let urls = page_urls(&base, &sent);
    assert_eq!(nghttp(&urls[..8], None), 8);
    assert_eq!(curl_h2c_each(&urls[8..]), 4);

    let (records, stderr) = profiler.stop();

    let mut paths = tshark_fields(
        &pcap,
        port,
        "http2",
        "http2.type == 1",
        "http2.headers.path",
    );
    paths.sort();
    let mut want: Vec<String> = page_urls("", &sent);
    want.sort();
    assert_eq!(paths, want, "tshark's request paths");
    let statuses = tshark_fields(
        &pcap,
        port,
        "http2",
        "http2.type == 1",
        "http2.headers.status",
    );
    assert_eq!(statuses, vec!["200"; sent.len()], "tshark's responses");
    let bad = tshark_fields(
        &pcap,
        port,
        "http2",
        "_ws.malformed || _ws.expert.severity >= error",
        "frame.number",
    );
    assert!(
        bad.is_empty(),
        "tshark reports malformed packets or errors: {bad:?}"
    );

    let logged = select(&records, "server", "request", Some("nghttpd"));
    assert_eq!(logged.len(), sent.len(), "requests logged\n{stderr}");
    let mut logged_paths: Vec<String> = logged
        .iter()
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    logged_paths.sort();
    assert_eq!(logged_paths, want, "httpscope's request paths");
}

/// rotel's collector binary, shipped inside the `rotel` PyPI package
/// (`scripts/setup.sh --test`); None (skip) or a panic under CI=true when missing.
fn rotel_binary(test: &str) -> Option<std::path::PathBuf> {
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
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: rotel is missing (scripts/setup.sh --test installs it), and CI=true forbids skipping");
        }
        eprintln!("\n*** SKIPPING {test}: rotel is not installed (scripts/setup.sh --test) ***\n");
    }
    found
}

/// A running rotel collector logging every span and metric it receives to `log`.
struct Collector {
    child: std::process::Child,
    log: std::path::PathBuf,
    port: u16,
}

impl Collector {
    fn start(binary: &Path, dir: &Path) -> Collector {
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
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rotel never listened on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Collector { child, log, port }
    }

    fn output(&self) -> String {
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
fn spans(log: &str) -> Vec<&str> {
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

#[test]
fn otlp_spans_reach_a_real_collector() {
    const TEST: &str = "otlp_spans_reach_a_real_collector";
    if !require_root(TEST) || !require_tool(TEST, "curl") {
        return;
    }
    let Some(rotel) = rotel_binary(TEST) else {
        return;
    };
    let dir = TempDir::new();
    let collector = Collector::start(&rotel, &dir.path);
    let (_server, port) = demo_server(&[]);
    let endpoint = format!("http://127.0.0.1:{}", collector.port);
    let profiler = Profiler::start(&[port], &["--otlp-endpoint", &endpoint]);

    const N: usize = 5;
    for i in 0..N {
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/users/{}?q=1", 100 + i))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&status.stdout), "404");
    }
    let (records, stderr) = profiler.stop();
    let responses = records.iter().filter(|r| r["kind"] == "response").count();
    assert_eq!(responses, 2 * N, "records: {records:#?}");
    assert!(
        stderr.contains(&format!("spans={}", 2 * N)) && stderr.contains("dropped=0"),
        "final OTLP line missing or wrong:\n{stderr}"
    );

    // httpscope flushed on exit; give rotel a moment to log what it got.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = collector.output();
    while spans(&log).len() < 2 * N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        log = collector.output();
    }
    let spans = spans(&log);
    let kind = |k: &str| {
        spans
            .iter()
            .filter(|s| s.contains(k) && s.contains(&format!("server.port: Int({port})")))
            .count()
    };
    let (server, client) = (kind("SPAN_KIND_SERVER"), kind("SPAN_KIND_CLIENT"));
    assert_eq!((server, client), (N, N), "collector output:\n{log}");
    for span in &spans {
        for needle in [
            "http.request.method: Str(GET)",
            "http.response.status_code: Int(404)",
            "url.path: Str(/users/1",
            "network.peer.address: Str(127.0.0.1)",
            "server.address: Str(127.0.0.1)",
            "process.pid: Int(",
        ] {
            assert!(span.contains(needle), "{needle} missing from span:\n{span}");
        }
        assert!(
            span.contains("GET /users/{id}"),
            "span name should be the route:\n{span}"
        );
    }
    assert!(
        spans
            .iter()
            .any(|s| s.contains("process.executable.name: Str(curl)")),
        "no curl client span:\n{log}"
    );
    assert!(
        log.contains("http.server.request.duration")
            && log.contains("http.client.request.duration"),
        "duration histograms did not reach the collector:\n{log}"
    );
}

/// Peak resident memory of `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Runs `warmup` then `more` requests under a profiler started with `extra`;
/// returns VmHWM (KiB) after each batch, how long SIGINT took, and stderr.
fn load_under_profiler(
    port: u16,
    extra: &[&str],
    warmup: usize,
    more: usize,
) -> (u64, u64, Duration, String) {
    let profiler = Profiler::start(&[port], extra);
    let pid = profiler.proc.child.id();
    for i in 0..warmup {
        assert_eq!(get(port, &format!("/users/{i}")), 404);
    }
    std::thread::sleep(Duration::from_secs(1));
    let warm = vm_hwm_kib(pid);
    for i in 0..more {
        assert_eq!(get(port, &format!("/users/{i}")), 404);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = vm_hwm_kib(pid);
    let started = Instant::now();
    let (records, stderr) = profiler.stop();
    let took = started.elapsed();
    assert!(
        records.len() >= 4 * (warmup + more),
        "only {} records",
        records.len()
    );
    (warm, after, took, stderr)
}

#[test]
fn otlp_with_the_collector_down_stays_bounded_and_exits() {
    const TEST: &str = "otlp_with_the_collector_down_stays_bounded_and_exits";
    if !require_root(TEST) {
        return;
    }
    let (_server, port) = demo_server(&[]);
    // The same load without OTLP, for httpscope's own footprint on this machine.
    let (_, baseline, baseline_took, _) = load_under_profiler(port, &[], 2000, 0);

    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}");
    // Each request is a server and a client span: 4000 spans to warm up, then
    // 10000 more, well over the exporter's queues (8192 exchanges, 4096 spans).
    let (warm, after, took, stderr) =
        load_under_profiler(port, &["--otlp-endpoint", &endpoint], 2000, 5000);
    eprintln!(
        "without OTLP: VmHWM {baseline} KiB, exit {baseline_took:?}; \
         collector down: VmHWM {warm} KiB after 2000 requests, {after} KiB after 7000, exit {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "httpscope took {took:?} to exit with the collector down:\n{stderr}"
    );
    assert!(
        after < baseline + 64 * 1024,
        "VmHWM {after} KiB with the collector down, {baseline} KiB without OTLP"
    );
    assert!(
        after < warm + 8 * 1024,
        "VmHWM grew from {warm} to {after} KiB over 5000 requests with the collector down"
    );
    assert!(stderr.contains("OTLP export finished"), "{stderr}");
}
