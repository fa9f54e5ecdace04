//! Privileges: capture as a non-root user holding only CAP_BPF, CAP_PERFMON and
//! CAP_DAC_READ_SEARCH (tracefs is mode 0700 root), and a clear failure with less.
//! (No capabilities at all: cli_errors.) Root integration tests: they drop privileges.

use std::os::unix::fs::chown;
use std::process::{Command, Stdio};
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::hardening::*;
use crate::support::*;

const NOBODY: u32 = 65534;

/// httpscope as uid/gid 65534 with exactly `caps` (setpriv syntax: `+bpf,+perfmon`).
fn as_nobody_with(caps: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        &format!("--inh-caps=-all,{caps}"),
        &format!("--ambient-caps=-all,{caps}"),
        &format!("--bounding-set=-all,{caps}"),
    ])
    .arg(bin("httpscope"));
    cmd
}

/// A temp directory the unprivileged user may write.
fn nobody_dir() -> TempDir {
    let dir = TempDir::new();
    chown(&dir.path, Some(NOBODY), Some(NOBODY)).unwrap();
    dir
}

#[apply(root_test!)]
fn bpf_perfmon_and_dac_read_search_are_enough() {
    let (_server, port) = demo_server(&[]);
    let dir = nobody_dir();
    let output = dir.path.join("records.jsonl");
    let mut cmd = as_nobody_with("+bpf,+perfmon,+dac_read_search");
    cmd.args(["record", "--format", "json", "--port", &port.to_string()])
        .arg("--output")
        .arg(&output)
        .env("RUST_LOG", "info")
        .env_remove("HTTP_PORT")
        .stdout(Stdio::null());
    let mut proc = Proc::spawn(&mut cmd);
    proc.wait_for("attached", Duration::from_secs(60));
    // Really unprivileged: not uid 0, and no CAP_SYS_ADMIN.
    let status = std::fs::read_to_string(format!("/proc/{}/status", proc.child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert!(field("Uid:").starts_with("65534"), "{status}");
    let eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap();
    let expected = (1u64 << 39) | (1 << 38) | (1 << 2); // BPF, PERFMON, DAC_READ_SEARCH
    assert_eq!(eff, expected, "CapEff={eff:x}");

    good_request(port, "unprivileged");
    let (code, stderr) = stop_with(proc, libc::SIGINT, Duration::from_secs(60));
    assert_eq!(code, 0, "exit {code}: {stderr}");
    assert_good_requests(&read_records(&output), &["unprivileged".to_owned()]);
}

#[apply(root_test!)]
fn without_dac_read_search_tracefs_is_a_clear_error() {
    let dir = nobody_dir();
    let out = as_nobody_with("+bpf,+perfmon")
        .args(["record", "--port", "1", "--duration", "1", "--output"])
        .arg(dir.path.join("records.log"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tracefs"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("attached") && !stderr.contains("panicked"));
}

#[apply(root_test!)]
fn bpf_without_perfmon_is_one_line_and_exit_2() {
    let out = as_nobody_with("+bpf,+dac_read_search")
        .args(["record", "--output", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("CAP_BPF and CAP_PERFMON"), "{stderr}");
}
