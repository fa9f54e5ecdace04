//! Each capture backend by name: forced with `--capture-backend`, it attaches its own
//! programs and none of the other's, and captures an exchange on both sides.
//! (scripts/test.sh also runs the capture suites once per backend.)

mod hardening;
mod support;

use std::time::Duration;

use hardening::*;
use support::*;

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
    let (code, stderr) = stop_with(proc, 2, Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("backend=\"{backend}\"")),
        "{stderr}"
    );
    assert_good_requests(&read_records(&output), &[tag]);
    assert_eq!(summary_counter(&stderr, "kernel_drops"), 0, "{stderr}");
}

#[test]
fn socket_backend_attaches_no_syscall_tracepoint() {
    if !require_root("socket_backend_attaches_no_syscall_tracepoint") {
        return;
    }
    forced_backend_captures(
        "socket",
        &["sock_send", "sock_recv", "sock_state", "sock_destroy"],
        &["syscall_exit"],
    );
}

#[test]
fn syscall_backend_attaches_only_sys_exit() {
    if !require_root("syscall_backend_attaches_only_sys_exit") {
        return;
    }
    forced_backend_captures(
        "syscall",
        &["syscall_exit"],
        &["sock_send", "sock_recv", "sock_state", "sock_destroy"],
    );
}
