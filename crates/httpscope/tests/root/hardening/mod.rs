//! Helpers of the robustness suites (hostile, faults, privileges, backends, h2_situations):
//! raw sockets, profilers with custom arguments, process memory, good-traffic ground truth.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{assert_backend_attached, backend_args, bin, signal, Proc};

/// Closes `stream` with an RST instead of a FIN (SO_LINGER with a zero timeout).
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd, and a pointer to a `struct linger` with its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    drop(stream);
}

/// This process's open-file soft limit, raised to its hard limit until dropped: children
/// spawned meanwhile inherit it, and the binary's later tests start from the old one.
pub struct RaisedNofile {
    pub limit: u64,
    old: libc::rlimit,
}

pub fn raise_nofile() -> RaisedNofile {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a `struct rlimit`.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) },
        0,
        "getrlimit"
    );
    let raised = libc::rlimit {
        rlim_cur: old.rlim_max,
        ..old
    };
    // SAFETY: a valid pointer to a `struct rlimit`.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) },
        0,
        "setrlimit"
    );
    RaisedNofile {
        limit: raised.rlim_cur,
        old,
    }
}

impl Drop for RaisedNofile {
    fn drop(&mut self) {
        // SAFETY: a valid pointer to a `struct rlimit`.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.old) };
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Asserts the profiler is alive and its peak memory below `max_mib`.
pub fn assert_bounded(proc: &mut Proc, max_mib: u64, after: &str) -> u64 {
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "httpscope died after {after}"
    );
    let (rss, hwm) = memory_kib(proc.child.id());
    eprintln!("httpscope after {after}: VmRSS={rss} KiB VmHWM={hwm} KiB");
    assert!(
        hwm < max_mib * 1024,
        "httpscope peaked at {hwm} KiB after {after} (limit {max_mib} MiB)"
    );
    hwm
}

/// `httpscope record` with explicit arguments, waited for until attached.
pub fn record(args: &[&str], output: &Path) -> Proc {
    let mut cmd = Command::new(bin("httpscope"));
    cmd.arg("record")
        .args(["--format", "json", "--output"])
        .arg(output)
        .args(backend_args(args))
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("HTTP_PORT")
        .stdout(Stdio::null());
    let mut proc = Proc::spawn(&mut cmd);
    let attached = proc.wait_for("attached", Duration::from_secs(60));
    assert_backend_attached(&attached, args);
    proc
}

/// Sends `sig`, waits for the exit; returns the exit code and all of stderr.
pub fn stop_with(mut proc: Proc, sig: libc::c_int, timeout: Duration) -> (i32, String) {
    std::thread::sleep(Duration::from_millis(300));
    signal(proc.child.id(), sig);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "httpscope still running {timeout:?} after signal {sig}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let code = status.code().unwrap_or(-1);
    let (_, stderr) = proc.interrupt();
    (code, stderr)
}

/// One well-formed request with curl: `GET /healthz?good=<tag>`; panics unless it gets 200.
pub fn good_request(port: u16, tag: &str) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
        ])
        .arg(format!("http://127.0.0.1:{port}/healthz?good={tag}"))
        .output()
        .expect("curl is installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "good request {tag}: {out:?}"
    );
}

/// Asserts that every tagged good request appears on both sides, correctly paired.
pub fn assert_good_requests(records: &[Value], tags: &[String]) {
    for tag in tags {
        let url = format!("/healthz?good={tag}");
        for (role, comm) in [("client", "curl"), ("server", "demo-server")] {
            let of = |kind: &str| -> Vec<&Value> {
                records
                    .iter()
                    .filter(|r| r["role"] == role && r["kind"] == kind && r["url"] == url.as_str())
                    .collect()
            };
            let requests = of("request");
            let responses = of("response");
            assert_eq!(requests.len(), 1, "{role} request {url}: {requests:#?}");
            assert_eq!(responses.len(), 1, "{role} response {url}: {responses:#?}");
            let (req, resp) = (requests[0], responses[0]);
            assert_eq!(req["comm"], comm, "{req}");
            assert_eq!(req["method"], "GET", "{req}");
            assert_eq!(resp["status"], 200, "{resp}");
            assert_eq!(resp["method"], "GET", "{resp}");
            assert!(resp["exchange"].is_u64(), "unpaired: {resp}");
            assert_eq!(resp["exchange"], req["exchange"], "{req} vs {resp}");
            assert_eq!(resp["conn"], req["conn"], "{req} vs {resp}");
            assert_ne!(resp["partial"], true, "{resp}");
            assert!(
                resp["body"]
                    .as_str()
                    .unwrap_or("")
                    .contains("\"status\":\"ok\""),
                "{resp}"
            );
        }
    }
}

/// A summary counter from httpscope's last stderr line (`name=value`).
pub fn summary_counter(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("events="))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// Connects, writes `bytes` (ignoring a server that already hung up), and optionally
/// half-closes and reads whatever comes back, for at most `read_for`.
pub fn send_raw(port: u16, bytes: &[u8], half_close: bool, read_for: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut out = Vec::new();
    if !read_for.is_zero() {
        stream.set_read_timeout(Some(read_for)).unwrap();
        let _ = stream.read_to_end(&mut out);
    }
    out
}

/// xorshift64*: reproducible garbage without a dependency.
pub fn garbage(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Ids of the BPF programs (`prog_id:`) or maps (`map_id:`) a process holds fds of.
pub fn bpf_ids(pid: u32, key: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return ids;
    };
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        ids.extend(info.lines().filter_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        }));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `bpftool -j prog show` (or `map show`) as JSON.
pub fn bpftool_list(what: &str) -> Vec<Value> {
    let out = Command::new("bpftool")
        .args(["-j", what, "show"])
        .output()
        .expect("bpftool is installed");
    assert!(out.status.success(), "bpftool {what} show: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Pids of running processes named `httpscope`.
pub fn running_profilers() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "httpscope")
        })
        .collect()
}
