//! OTLP export against a real collector (rotel), over gRPC and over HTTP/protobuf,
//! and with the collector down; gRPC calls as RPC spans.
//!
//! Root tests. rotel comes from `scripts/setup.sh --test`; without it a test is
//! skipped loudly, and under CI=true it fails instead.

use std::process::Command;
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::support::collector::{rotel_binary, spans, Collector};
use crate::support::h2::{grpc_client, grpc_server, GRPC_SERVICE};
use crate::support::matrix::free_port;
use crate::support::tools::{get, require_tool};
use crate::support::{demo_server, root_test, Profiler, TempDir};

#[apply(root_test!)]
fn otlp_grpc_spans_reach_a_real_collector() {
    spans_and_metrics_reach_a_real_collector("otlp_grpc_spans_reach_a_real_collector", |c| {
        vec![format!("--otlp-endpoint=http://127.0.0.1:{}", c.port)]
    });
}

#[apply(root_test!)]
fn otlp_http_spans_reach_a_real_collector() {
    spans_and_metrics_reach_a_real_collector("otlp_http_spans_reach_a_real_collector", |c| {
        vec![
            format!("--otlp-endpoint=http://127.0.0.1:{}", c.http_port),
            "--otlp-protocol=http/protobuf".to_string(),
        ]
    });
}

/// Five curl requests under a profiler exporting with `otlp_args`: rotel must
/// log a SERVER and a CLIENT span for each, with their attributes, and both
/// duration histograms.
fn spans_and_metrics_reach_a_real_collector(
    test: &str,
    otlp_args: impl Fn(&Collector) -> Vec<String>,
) {
    if !require_tool(test, "curl") {
        return;
    }
    let Some(rotel) = rotel_binary(test) else {
        return;
    };
    let dir = TempDir::new();
    let collector = Collector::start(&rotel, &dir.path);
    let (_server, port) = demo_server(&[]);
    let args = otlp_args(&collector);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let profiler = Profiler::start(&[port], &args);

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

/// gRPC calls (grpcio client and server) become spans named `service/method` with the RPC
/// conventions' attributes, and samples of the `rpc.*.call.duration` histograms.
#[apply(root_test!)]
fn otlp_grpc_spans_follow_the_rpc_conventions() {
    const TEST: &str = "otlp_grpc_spans_follow_the_rpc_conventions";
    let Some(rotel) = rotel_binary(TEST) else {
        return;
    };
    let dir = TempDir::new();
    let collector = Collector::start(&rotel, &dir.path);
    let (_server, port) = grpc_server();
    let endpoint = format!("http://127.0.0.1:{}", collector.port);
    let profiler = Profiler::start(&[port], &["--otlp-endpoint", &endpoint]);
    let calls = grpc_client(port, "ot", 5, 1);
    let (_, stderr) = profiler.stop();
    assert!(
        stderr.contains(&format!("spans={}", 2 * calls.len())) && stderr.contains("dropped=0"),
        "final OTLP line missing or wrong:\n{stderr}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = collector.output();
    while spans(&log).len() < 2 * calls.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        log = collector.output();
    }
    let spans = spans(&log);
    assert_eq!(spans.len(), 2 * calls.len(), "collector output:\n{log}");
    for call in &calls {
        let name = format!("{GRPC_SERVICE}/{}", call.method);
        let status = format!("rpc.grpc.status_code: Int({})", call.status);
        let matching = spans
            .iter()
            .filter(|s| s.contains(&name) && s.contains(&status))
            .count();
        assert!(matching >= 2, "{call:?}: no client and server span:\n{log}");
    }
    for span in &spans {
        for needle in [
            "rpc.system: Str(grpc)",
            &format!("rpc.service: Str({GRPC_SERVICE})"),
            "rpc.method: Str(",
            "network.protocol.version: Str(2)",
        ] {
            assert!(span.contains(needle), "{needle} missing from span:\n{span}");
        }
        assert!(
            !span.contains("http.route"),
            "an HTTP span for a call:\n{span}"
        );
    }
    assert!(
        log.contains("rpc.server.call.duration") && log.contains("rpc.client.call.duration"),
        "RPC duration histograms did not reach the collector:\n{log}"
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

#[apply(root_test!)]
fn otlp_with_the_collector_down_stays_bounded_and_exits() {
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
