//! Container identity against a real container runtime: demo-server in a
//! podman container and another on the host, traffic to both.
//!
//! Root test. podman and runc come from `scripts/setup.sh --test`; without
//! them the test is skipped loudly, and under CI=true it fails instead.

use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::support::collector::{rotel_binary, spans, Collector};
use crate::support::container::PodmanDemoServer;
use crate::support::matrix::free_port;
use crate::support::tools::{fetch, get, require_tool};
use crate::support::{demo_server, root_test, served_on, Profiler, TempDir};

const REQUESTS: usize = 3;

/// Sends REQUESTS GETs to each port.
fn traffic(ports: &[u16]) {
    for port in ports {
        for _ in 0..REQUESTS {
            assert_eq!(get(*port, "/healthz"), 200);
        }
    }
}

#[apply(root_test!)]
fn records_carry_the_container_id_and_container_filters() {
    const TEST: &str = "records_carry_the_container_id_and_container_filters";
    if !require_tool(TEST, "podman") || !require_tool(TEST, "runc") {
        return;
    }
    let Some(rotel) = rotel_binary(TEST) else {
        return;
    };
    let dir = TempDir::new();
    let collector = Collector::start(&rotel, &dir.path);
    let container = PodmanDemoServer::start();
    assert_eq!(
        container.id.len(),
        64,
        "podman inspect id: {}",
        container.id
    );
    let (_host, host_port) = demo_server(&[]);
    let ports = [container.port, host_port];

    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let otlp = format!("http://127.0.0.1:{}", collector.port);
    let profiler = Profiler::start(
        &ports,
        &["--metrics-addr", &metrics_addr, "--otlp-endpoint", &otlp],
    );
    traffic(&ports);
    let series = format!("container_id=\"{}\"", container.id);
    // The container's server exchanges reach the duration histogram once paired (a request
    // counter can show the series earlier, while its response is still on its way).
    let served_in_container = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .any(|l| l.contains(&series))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = fetch(metrics_port, "/metrics");
    while !served_in_container(&metrics) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        metrics = fetch(metrics_port, "/metrics");
    }
    let (records, stderr) = profiler.stop();
    let in_container = served_on(&records, container.port);
    let on_host = served_on(&records, host_port);
    assert_eq!(in_container.len(), 2 * REQUESTS, "{stderr}\n{records:#?}");
    assert_eq!(on_host.len(), 2 * REQUESTS, "{records:#?}");
    for record in &in_container {
        assert_eq!(record["container_id"], container.id.as_str(), "{record}");
        let cgroup = record["cgroup"].as_str().unwrap();
        assert!(cgroup.contains(&container.id), "{record}");
    }
    for record in &on_host {
        assert!(record.get("container_id").is_none(), "{record}");
        assert!(
            record["cgroup"].is_string(),
            "host records carry their cgroup: {record}"
        );
    }
    // The clients (this test) run on the host.
    let clients = records.iter().filter(|r| r["role"] == "client");
    assert!(clients.clone().count() >= 4 * REQUESTS, "{records:#?}");
    assert!(clients.clone().all(|r| r.get("container_id").is_none()));

    // Prometheus: the container's server series carry its id.
    let labelled = metrics
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .filter(|l| l.contains(&series))
        .count();
    assert_eq!(labelled, 1, "{metrics}");
    // OTLP: the container's SERVER spans carry container.id, no other span does.
    let needle = format!("container.id: Str({})", container.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = collector.output();
    while spans(&log).len() < 4 * REQUESTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        log = collector.output();
    }
    let with_id: Vec<&str> = spans(&log)
        .into_iter()
        .filter(|s| s.contains(&needle))
        .collect();
    assert_eq!(with_id.len(), REQUESTS, "collector output:\n{log}");
    assert!(with_id.iter().all(|s| s.contains("SPAN_KIND_SERVER")
        && s.contains(&format!("server.port: Int({})", container.port))));

    let prefix = &container.id[..12];
    let profiler = Profiler::start(&ports, &["--container", prefix]);
    traffic(&ports);
    let (records, stderr) = profiler.stop();
    assert_eq!(records.len(), 2 * REQUESTS, "{stderr}\n{records:#?}");
    for record in &records {
        assert_eq!(record["container_id"], container.id.as_str(), "{record}");
        assert_eq!(record["role"], "server", "{record}");
    }
}
