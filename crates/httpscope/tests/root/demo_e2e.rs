//! Root integration test: the three programs end to end, as the README demo runs them.

use std::process::Command;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::*;

const ITERATIONS: usize = 20;

fn by_url<'a>(records: &[&'a Value], url: &str) -> Vec<&'a Value> {
    records
        .iter()
        .copied()
        .filter(|r| r["url"] == url)
        .collect()
}

fn check_side(records: &[Value], role: &str, comm: &str) {
    let requests = select(records, role, "request", Some(comm));
    let responses: Vec<&Value> = select(records, role, "response", Some(comm));
    assert_eq!(requests.len(), 4 * ITERATIONS, "{role} requests");
    assert_eq!(responses.len(), 4 * ITERATIONS, "{role} responses");
    let dir_req = if role == "client" { "send" } else { "recv" };
    assert!(requests.iter().all(|r| r["dir"] == dir_req));
    for (url, method) in [
        ("/", "GET"),
        ("/healthz", "GET"),
        ("/echo", "POST"),
        ("/slow", "GET"),
    ] {
        let answered = by_url(&responses, url);
        assert_eq!(answered.len(), ITERATIONS, "{role} responses for {url}");
        for response in &answered {
            assert_eq!(response["method"], method, "{response}");
            assert_eq!(response["status"], 200, "{response}");
            assert!(
                response["exchange"].as_u64().is_some(),
                "unpaired: {response}"
            );
            let latency = response["latency_ms"].as_f64().expect("latency_ms");
            assert!(latency > 0.0, "{response}");
            if url == "/slow" {
                assert!(
                    latency >= 400.0,
                    "/slow took {latency} ms on the {role} side: {response}"
                );
            }
            assert_eq!(response["partial"], false, "{response}");
        }
    }
    let mut echoed: Vec<String> = by_url(&requests, "/echo")
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_owned())
        .collect();
    echoed.sort();
    let mut expected: Vec<String> = (1..=ITERATIONS)
        .map(|i| format!("{{\"message\":\"hello-{i}\"}}"))
        .collect();
    expected.sort();
    assert_eq!(echoed, expected, "{role} /echo request bodies");
    for response in by_url(&responses, "/echo") {
        assert!(
            response["body"].as_str().unwrap().contains("hello-"),
            "{response}"
        );
    }
    let healthz = by_url(&responses, "/healthz");
    assert!(healthz[0]["body"]
        .as_str()
        .unwrap()
        .contains("\"status\":\"ok\""));
    assert_eq!(healthz[0]["headers"]["content-type"], "application/json");
}

#[apply(root_test!)]
fn demo_traffic_is_captured_on_both_sides() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let status = Command::new(bin("demo-traffic"))
        .env("HTTP_PORT", port.to_string())
        .env("TOTAL_REQUESTS", ITERATIONS.to_string())
        .env("REQUEST_DELAY_MS", "0")
        .status()
        .unwrap();
    assert!(status.success(), "demo-traffic failed");
    let saved = crate::support::TempDir::new();
    let saved_events = saved.path.join("copy.events");
    let (records, stderr) = profiler.stop_keeping_events(&saved_events);
    check_side(&records, "server", "demo-server");
    check_side(&records, "client", "demo-traffic");
    assert!(
        stderr.contains("kernel_drops=0"),
        "summary missing or drops: {stderr}"
    );
    assert!(
        stderr.contains("/slow"),
        "summary has no endpoints: {stderr}"
    );

    // Replaying the saved events gives the very same records.
    let replayed = Command::new(bin("httpscope"))
        .args([
            "replay",
            "--format",
            "json",
            "--no-summary",
            "--output",
            "-",
        ])
        .arg(&saved_events)
        .output()
        .unwrap();
    assert!(replayed.status.success());
    let replayed: Vec<Value> = String::from_utf8(replayed.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // ... but for the cgroup names: event files keep the kernel's cgroup ids, which
    // only the live machine can name.
    let live_without_cgroups: Vec<Value> = records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            let fields = record.as_object_mut().unwrap();
            assert!(
                fields.remove("cgroup").is_some(),
                "live records carry their cgroup"
            );
            fields.remove("container_id");
            fields.remove("k8s_pod_uid");
            record
        })
        .collect();
    assert_eq!(
        replayed, live_without_cgroups,
        "replay differs from live capture"
    );
}

fn run_client_against_demo(client: &mut dyn FnMut(u16) -> Command, comm: &str, expected: usize) {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let status = client(port).status().unwrap();
    assert!(status.success(), "{comm} failed");
    let (records, _) = profiler.stop();
    let client_side = select(&records, "client", "response", Some(comm));
    assert_eq!(
        client_side.len(),
        expected,
        "{comm} responses: {records:#?}"
    );
    let server_side = select(&records, "server", "response", Some("demo-server"));
    assert_eq!(server_side.len(), expected, "server responses");
    for response in client_side.iter().chain(&server_side) {
        assert_eq!(response["status"], 200);
        assert!(response["latency_ms"].as_f64().is_some());
        assert!(response["method"].is_string());
    }
}

#[apply(root_test!)]
fn curl_is_captured() {
    run_client_against_demo(
        &mut |port| {
            let mut cmd = Command::new("curl");
            let base = format!("http://127.0.0.1:{port}");
            cmd.args([
                "-sS",
                "-o",
                "/dev/null",
                &format!("{base}/healthz"),
                "--next",
                "-sS",
                "-o",
                "/dev/null",
            ])
            .args([
                "-H",
                "Content-Type: application/json",
                "--data",
                "{\"message\":\"from-curl\"}",
            ])
            .arg(format!("{base}/echo"));
            cmd
        },
        "curl",
        2,
    );
}

#[apply(root_test!)]
fn python_urllib_is_captured() {
    run_client_against_demo(
        &mut |port| {
            let mut cmd = Command::new("python3");
            cmd.arg("-c").arg(format!(
                "import urllib.request as u\n\
                 for p in ['/', '/healthz', '/slow']:\n    u.urlopen('http://127.0.0.1:{port}' + p).read()\n\
                 r = u.Request('http://127.0.0.1:{port}/echo', data=b'{{\"message\":\"py\"}}', headers={{'Content-Type': 'application/json'}})\n\
                 u.urlopen(r).read()\n"
            ));
            cmd
        },
        "python3",
        4,
    );
}

#[apply(root_test!)]
fn comm_and_pid_filters_run_in_the_kernel() {
    let (server, port) = demo_server(&[]);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let python = format!("import urllib.request as u; u.urlopen('{url}').read()");

    let profiler = Profiler::start(&[port], &["--comm", "curl"]);
    assert!(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", &url])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("python3")
        .args(["-c", &python])
        .status()
        .unwrap()
        .success());
    let (records, _) = profiler.stop();
    assert_eq!(
        records.len(),
        2,
        "only curl's request and response: {records:#?}"
    );
    assert!(records.iter().all(|r| r["comm"] == "curl"));

    let server_pid = server.child.id();
    let profiler = Profiler::start(&[port], &["--pid", &server_pid.to_string()]);
    assert!(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", &url])
        .status()
        .unwrap()
        .success());
    let (records, _) = profiler.stop();
    assert_eq!(records.len(), 2, "only the server's side: {records:#?}");
    assert!(records
        .iter()
        .all(|r| r["pid"] == server_pid && r["role"] == "server"));
}
