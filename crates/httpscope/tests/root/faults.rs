//! Faults: SIGINT/SIGTERM drain and exit 0 with every record written whole;
//! `kill -9` leaves nothing attached; a full disk or a removed output file is handled;
//! two profilers run side by side. Root integration tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::hardening::*;
use crate::support::*;

/// Names of httpscope's BPF programs as the kernel shows them (truncated to 15 bytes).
const OUR_PROGRAMS: &[&str] = &[
    "syscall_exit",
    "sock_send",
    "sock_recv",
    "sock_state",
    "sock_destroy",
    "process_exit",
    "ssl_write_enter",
    "ssl_read_enter",
    "ssl_write_ex_enter",
    "ssl_read_ex_enter",
    "ssl_handshake_enter",
    "ssl_set_fd_enter",
    "ssl_ret",
    "ssl_ret_sock",
    "gnutls_send_enter",
    "gnutls_recv_enter",
    "go_tls_write_enter",
    "go_tls_read_enter",
    "go_tls_handshake_enter",
    "go_tls_read_ret",
    "node_stream_alloc",
    "node_stream_read",
    "node_stream_read_ret",
    "node_clear",
    "rustls_is_full",
    "rustls_read_tls",
    "rustls_io_state",
    "rustls_write_tls",
    "rustls_write",
    "rustls_write_vectored",
    "rustls_write_ret",
    "rustls_read",
    "rustls_first_chunk",
    "rustls_first_chunk_ret",
    "rustls_consume",
    "rustls_consume_ret",
    "rustls_sink_w",
    "rustls_sink_wv",
    "rustls_used_buf",
    "process_exec",
    "libraries_changed",
];
/// The programs of each backend that load whether or not a libssl is found.
const SYSCALL_BACKEND_PROGRAMS: &[&str] = &["syscall_exit", "process_exit"];
const SOCKET_BACKEND_PROGRAMS: &[&str] = &[
    "sock_send",
    "sock_recv",
    "sock_state",
    "sock_destroy",
    "process_exit",
];

/// demo-traffic running in the background: the load during which the signal lands.
fn background_traffic(port: u16, requests: u32) -> Child {
    Command::new(bin("demo-traffic"))
        .env("HTTP_PORT", port.to_string())
        .env("TOTAL_REQUESTS", requests.to_string())
        .env("REQUEST_DELAY_MS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[apply(root_test!)]
fn sigint_and_sigterm_drain_and_write_every_record_whole() {
    for (name, sig) in [("SIGTERM", libc::SIGTERM), ("SIGINT", libc::SIGINT)] {
        let (_server, port) = demo_server(&[]);
        let dir = TempDir::new();
        let output = dir.path.join("records.jsonl");
        let proc = record(&["--port", &port.to_string()], &output);
        let mut traffic = background_traffic(port, 100_000);
        // Stop in the middle of the load, with records in flight.
        std::thread::sleep(Duration::from_secs(2));
        let (code, stderr) = stop_with(proc, sig, Duration::from_secs(60));
        let _ = traffic.kill();
        let _ = traffic.wait();
        assert_eq!(code, 0, "{name}: exit {code}; stderr:\n{stderr}");
        assert!(stderr.contains("detached"), "{name}: {stderr}");
        // read_records checks the file ends with a newline and every line is JSON.
        let records = read_records(&output);
        assert!(records.len() > 20, "{name}: only {} records", records.len());
        assert_eq!(
            summary_counter(&stderr, "records"),
            records.len() as u64,
            "{name}: the summary counts records that are not in the output"
        );
        assert_eq!(
            summary_counter(&stderr, "kernel_drops"),
            0,
            "{name}: {stderr}"
        );
    }
}

/// Program or map ids that still exist among `ids`.
fn still_loaded(what: &str, ids: &[u64]) -> Vec<u64> {
    bpftool_list(what)
        .iter()
        .filter_map(|entry| entry["id"].as_u64())
        .filter(|id| ids.contains(id))
        .collect()
}

fn wait_until_gone(what: &str, ids: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = still_loaded(what, ids);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "BPF {what}s {left:?} still loaded 15 s after the profiler died"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[apply(root_test!)]
fn kill_9_leaves_nothing_attached() {
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let mut proc = record(
        &["--port", &port.to_string()],
        &dir.path.join("records.jsonl"),
    );
    let pid = proc.child.id();
    let progs = bpf_ids(pid, "prog_id:");
    let maps = bpf_ids(pid, "map_id:");
    // They are ours, by name, and one backend's programs (the ssl_* ones load only
    // when a libssl is found).
    let listed = bpftool_list("prog");
    let mut names = Vec::new();
    for id in &progs {
        let entry = listed.iter().find(|p| p["id"].as_u64() == Some(*id));
        let name = entry.and_then(|p| p["name"].as_str()).unwrap_or_default();
        assert!(OUR_PROGRAMS.contains(&name), "program {id} is {entry:?}");
        names.push(name.to_owned());
    }
    let has_all = |set: &[&str]| set.iter().all(|p| names.iter().any(|n| n == p));
    assert!(
        has_all(SYSCALL_BACKEND_PROGRAMS) != has_all(SOCKET_BACKEND_PROGRAMS),
        "httpscope holds programs {names:?}: not exactly one backend's"
    );
    good_request(port, "before-kill");

    proc.child.kill().unwrap();
    proc.child.wait().unwrap();
    wait_until_gone("prog", &progs);
    wait_until_gone("map", &maps);
    // No program named like ours is left owned by the dead process; with no other httpscope
    // running, none is left at all.
    let others = running_profilers();
    for prog in bpftool_list("prog") {
        let name = prog["name"].as_str().unwrap_or_default();
        if !OUR_PROGRAMS.contains(&name) {
            continue;
        }
        let owners: Vec<u64> = prog["pids"]
            .as_array()
            .map(|pids| pids.iter().filter_map(|p| p["pid"].as_u64()).collect())
            .unwrap_or_default();
        assert!(
            !owners.contains(&u64::from(pid)),
            "program {prog} still owned by the killed profiler"
        );
        assert!(
            !others.is_empty(),
            "program {prog} left behind, and no httpscope is running"
        );
    }

    // Nothing stale gets in the way of the next profiler.
    let profiler = Profiler::start(&[port], &[]);
    good_request(port, "after-kill");
    let (records, _) = profiler.stop();
    assert_good_requests(&records, &["after-kill".to_owned()]);
}

/// A tmpfs mounted for the life of the guard.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// POSTs `count` 1 KB JSON bodies over one keep-alive connection (python3 http.client).
fn post_bodies(port: u16, count: u32) -> bool {
    let script = format!(
        "import http.client\n\
         c = http.client.HTTPConnection('127.0.0.1', {port}, timeout=10)\n\
         body = '{{\"message\":\"' + 'x' * 1000 + '\"}}'\n\
         for i in range({count}):\n\
         \x20   c.request('POST', '/echo?fill=%d' % i, body, {{'Content-Type': 'application/json'}})\n\
         \x20   c.getresponse().read()\n"
    );
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .status()
        .is_ok_and(|s| s.success())
}

#[apply(root_test!)]
fn full_disk_is_one_clear_error_and_exit() {
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let mount = Mount::tmpfs(&dir.path.join("small"), "64k");
    let output = mount.0.join("records.jsonl");
    let mut proc = record(&["--port", &port.to_string()], &output);
    let pid = proc.child.id();
    let progs = bpf_ids(pid, "prog_id:");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "httpscope still running after filling its output disk"
        );
        post_bodies(port, 50);
    };
    let (_, stderr) = proc.interrupt();
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("output"),
        "unclear error: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors = stderr.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors, 1, "one error line, not a loop: {stderr}");
    // It detached on the way out.
    wait_until_gone("prog", &progs);
}

/// The path of the fd a process holds on `path` after it was removed.
fn deleted_fd(pid: u32, path: &Path) -> Option<PathBuf> {
    let wanted = format!("{} (deleted)", path.display());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|fd| std::fs::read_link(fd).is_ok_and(|t| t.to_string_lossy() == wanted))
}

#[apply(root_test!)]
fn removed_output_file_is_kept_written_until_exit() {
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let output = dir.path.join("records.jsonl");
    let proc = record(&["--port", &port.to_string()], &output);
    let pid = proc.child.id();
    good_request(port, "before-rm");
    std::thread::sleep(Duration::from_millis(1500));
    let before = read_records(&output);
    assert!(!before.is_empty(), "nothing flushed within a second");

    std::fs::remove_file(&output).unwrap();
    good_request(port, "after-rm");
    std::thread::sleep(Duration::from_millis(1500));
    // Standard Unix behaviour: records keep going to the open, now unlinked, file.
    let fd = deleted_fd(pid, &output).expect("httpscope no longer holds its output");
    let text = std::fs::read_to_string(&fd).unwrap();
    assert!(text.contains("/healthz?good=after-rm"), "{text}");
    let (code, stderr) = stop_with(proc, libc::SIGINT, Duration::from_secs(60));
    assert_eq!(code, 0, "exit {code}: {stderr}");
    assert!(!output.exists(), "the removed output was recreated");
}

#[apply(root_test!)]
fn two_profilers_work_independently() {
    let (_server_a, port_a) = demo_server(&[]);
    let (_server_b, port_b) = demo_server(&[]);
    let a = Profiler::start(&[port_a], &[]);
    let b = Profiler::start(&[port_b], &[]);
    let tags = |p: &str| -> Vec<String> { (0..5).map(|i| format!("{p}{i}")).collect() };
    for i in 0..5 {
        good_request(port_a, &format!("a{i}"));
        good_request(port_b, &format!("b{i}"));
    }
    let (records_a, _) = a.stop();
    // B keeps capturing after A detached.
    good_request(port_b, "b5");
    let (records_b, _) = b.stop();
    let mut tags_b = tags("b");
    tags_b.push("b5".to_owned());
    assert_good_requests(&records_a, &tags("a"));
    assert_good_requests(&records_b, &tags_b);
    for (records, port, other) in [
        (&records_a, port_a, "good=b"),
        (&records_b, port_b, "good=a"),
    ] {
        let on_port = |r: &Value| {
            [&r["src"], &r["dst"]]
                .iter()
                .any(|a| a.as_str().is_some_and(|a| a.ends_with(&format!(":{port}"))))
        };
        assert!(records.iter().all(on_port), "a record of another port");
        assert!(
            !records
                .iter()
                .any(|r| r["url"].as_str().is_some_and(|u| u.contains(other))),
            "saw the other profiler's traffic"
        );
    }
}
