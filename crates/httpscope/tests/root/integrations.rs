//! Fleet integrations against the real tools: a Prometheus server scrapes
//! `--metrics-addr` and is queried with PromQL; tshark dissects `--pcap` (HTTP/1 and h2c).
//!
//! Root tests. The tools come from `scripts/setup.sh --test`; without them a
//! test is skipped loudly, and under CI=true it fails instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::h2::{curl_h2c_each, ids, nghttp, page_urls, Nghttpd};
use crate::support::matrix::free_port;
use crate::support::tools::{exchange_raw, get, require_tool};
use crate::support::{demo_server, root_test, select, Proc, Profiler, TempDir};

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

#[apply(root_test!)]
fn prometheus_scrapes_metrics_and_promql_counts_the_requests() {
    const TEST: &str = "prometheus_scrapes_metrics_and_promql_counts_the_requests";
    if !require_tool(TEST, "prometheus") {
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

#[apply(root_test!)]
fn tshark_decodes_the_pcap_requests_httpscope_logged() {
    const TEST: &str = "tshark_decodes_the_pcap_requests_httpscope_logged";
    if !require_tool(TEST, "tshark") {
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
    exchange_raw(
        port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 16\r\nConnection: close\r\n\r\n{\"message\":\"hi\"}",
    );
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
#[apply(root_test!)]
fn tshark_decodes_h2c_in_the_pcap() {
    const TEST: &str = "tshark_decodes_h2c_in_the_pcap";
    if !require_tool(TEST, "tshark") {
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
