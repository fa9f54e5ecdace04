//! Each capture backend by name: forced with `--capture-backend`, it attaches its own
//! programs and none of the other's, and captures an exchange on both sides. The
//! connection-table test runs on the backend under test (scripts/test.sh runs this
//! suite, like the other capture suites, once per backend).

use std::process::Command;
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::hardening::*;
use crate::support::*;

/// The names of the BPF programs process `pid` holds.
fn program_names(pid: u32) -> Vec<String> {
    let ids = bpf_ids(pid, "prog_id:");
    bpftool_list("prog")
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

fn forced_backend_captures(backend: &str, own: &[&str], other: &[&str]) {
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let output = dir.path.join("records.jsonl");
    let proc = record(
        &["--port", &port.to_string(), "--capture-backend", backend],
        &output,
    );
    let names = program_names(proc.child.id());
    for program in own {
        assert!(
            names.iter().any(|n| n == program),
            "{backend}: {program} not loaded: {names:?}"
        );
    }
    for program in other {
        assert!(
            !names.iter().any(|n| n == program),
            "{backend}: the other backend's {program} is loaded: {names:?}"
        );
    }
    let tag = format!("{backend}-backend");
    good_request(port, &tag);
    let (code, stderr) = stop_with(proc, libc::SIGINT, Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("backend=\"{backend}\"")),
        "{stderr}"
    );
    assert_good_requests(&read_records(&output), &[tag]);
    assert_eq!(summary_counter(&stderr, "kernel_drops"), 0, "{stderr}");
}

#[apply(root_test!)]
fn socket_backend_attaches_no_syscall_tracepoint() {
    forced_backend_captures(
        "socket",
        &["sock_send", "sock_recv", "sock_state", "sock_destroy"],
        &["syscall_exit"],
    );
}

#[apply(root_test!)]
fn syscall_backend_attaches_only_sys_exit() {
    forced_backend_captures(
        "syscall",
        &["syscall_exit"],
        &["sock_send", "sock_recv", "sock_state", "sock_destroy"],
    );
}

/// The `httpscope_connections_tracked` gauge of a profiler's /metrics.
fn connections_tracked(metrics_addr: &str) -> Option<u64> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .arg(format!("http://{metrics_addr}/metrics"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("httpscope_connections_tracked "))
        .and_then(|v| v.trim().parse().ok())
}

#[apply(root_test!)]
fn closed_connections_leave_the_connection_table() {
    let (_server, port) = demo_server(&[]);
    let metrics_addr = format!("127.0.0.1:{}", matrix::free_port());
    let profiler = Profiler::start(&[port], &["--metrics-addr", &metrics_addr]);
    // ab without -k: a connection per request, closed by the server first (once closed,
    // its socket reads local port 0, so the close must not depend on the port).
    let ab = Command::new("ab")
        .args(["-q", "-c", "5", "-n", "200"])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .expect("ab is installed");
    assert!(ab.status.success(), "{ab:?}");
    // The gauge is refreshed once a second: let it see the load first, or a value from
    // before the load would read as an empty table.
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tracked = connections_tracked(&metrics_addr);
    while tracked != Some(0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        tracked = connections_tracked(&metrics_addr);
    }
    let (records, stderr) = profiler.stop();
    assert_eq!(
        tracked,
        Some(0),
        "connections still tracked after their sockets closed; {stderr}"
    );
    let paired = |role: &str| {
        records
            .iter()
            .filter(|r| r["role"] == role && r["kind"] == "response" && r["exchange"].is_u64())
            .count()
    };
    assert_eq!((paired("server"), paired("client")), (200, 200), "{stderr}");
}
