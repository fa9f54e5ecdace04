//! Each capture backend by name: forced with `--capture-backend`, it attaches its own
//! programs and none of the other's, and captures an exchange on both sides. The
//! connection-table tests run on the backend under test (scripts/test.sh runs this
//! suite, like the other capture suites, once per backend).

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
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

/// ab against demo-server (started with `server_env`) without -k: `n` connections, each
/// closed by the server first (once closed, its socket reads local port 0, so the close
/// must not depend on the port). Every connection must leave the profiler's connection
/// table, and every exchange must be paired on both sides, with no response unpaired.
fn connections_leave_the_table(server_env: &[(&str, &str)], n: usize, concurrency: usize) {
    let (_server, port) = demo_server(server_env);
    let metrics_addr = format!("127.0.0.1:{}", matrix::free_port());
    let profiler = Profiler::start(
        &[port],
        &["--metrics-addr", &metrics_addr, "--ring-mb", "64"],
    );
    assert_eq!(matrix::ab_healthz(port, n, concurrency), n);
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
    assert_eq!((paired("server"), paired("client")), (n, n), "{stderr}");
    assert_eq!(
        summary_counter(&stderr, "unpaired_responses"),
        0,
        "{stderr}"
    );
    // Negative when a connection was counted twice.
    assert!(stderr.contains(" conns_open=0 "), "{stderr}");
}

#[apply(root_test!)]
fn closed_connections_leave_the_connection_table() {
    connections_leave_the_table(&[], 200, 5);
}

/// Threads that write to /dev/null until dropped, as `yes` does: they take the CPUs from
/// the traced server's threads at any point, between a syscall and the probe that
/// reports it too.
struct Busy {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Busy {
    fn start(threads: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut null = std::fs::File::create("/dev/null").expect("/dev/null");
                    let line = [b'y'; 8192];
                    while !stop.load(Ordering::Relaxed) {
                        let _ = null.write_all(&line);
                    }
                })
            })
            .collect();
        Busy { threads, stop }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A server with many threads on few CPUs: one thread closes a connection while another
/// accepts the next, which often gets the same fd before the close is reported. Each
/// connection must still start and end once, and keep its own exchanges.
#[apply(root_test!)]
fn connections_end_once_when_another_thread_reuses_their_fd_at_once() {
    // One writer per CPU: the interleavings that matter come most often so (with more,
    // the server's threads seldom run at once; with fewer, seldom stop between a close
    // and its probe).
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _busy = Busy::start(cpus);
    connections_leave_the_table(&[("TOKIO_WORKER_THREADS", "16")], 40_000, 100);
}
