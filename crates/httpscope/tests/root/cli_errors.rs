//! The command's error paths: privileges, output, doctor.

use std::process::Command;

use macro_rules_attribute::apply;

use crate::support::*;

#[apply(root_test!)]
fn not_root_is_one_line_and_exit_2() {
    // Drop to an unprivileged user with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin("httpscope"))
        .args(["record", "--output", "-"])
        .output()
        .expect("setpriv (util-linux) is installed");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("root"), "{stderr}");
}

#[apply(root_test!)]
fn unwritable_output_fails_before_attaching() {
    let out = Command::new(bin("httpscope"))
        .args([
            "record",
            "--output",
            "/proc/version/records.log",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/proc/version/records.log"), "{stderr}");
    assert!(
        !stderr.contains("attached"),
        "must fail before attaching: {stderr}"
    );
}

#[apply(root_test!)]
fn doctor_reports_every_piece() {
    let out = Command::new(bin("httpscope"))
        .arg("doctor")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    for piece in [
        "privileges",
        "tls privileges",
        "btf",
        "tracefs",
        "tracepoints",
        "tracepoint programs",
        "ring buffer",
        "uprobes",
        "cgroups",
        "container runtimes",
        "all ports",
    ] {
        assert!(
            stdout.contains(piece),
            "doctor does not check {piece}: {stdout}"
        );
    }
    // Every check reads as a sentence, never as a debug dump like `Ok(true)`.
    for line in stdout.lines().filter(|line| line.starts_with('[')) {
        assert!(
            line.ends_with('.') && !line.contains("Ok(") && !line.contains("Err("),
            "not a sentence: {line}"
        );
    }
    assert!(
        stdout.contains("The cgroup layout is"),
        "doctor names no cgroup layout: {stdout}"
    );
    assert!(
        stdout.contains("--all-ports works here"),
        "this kernel runs --all-ports (tests/root/all_ports.rs): {stdout}"
    );
    assert!(out.status.success(), "this machine can capture: {stdout}");
}

#[apply(root_test!)]
fn output_is_created_0600_in_a_new_directory_and_appended() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.path.join("new/dir/records.log");
    for _ in 0..2 {
        let (_server, port) = demo_server(&[]);
        let mut profiler = Proc::spawn(
            Command::new(bin("httpscope"))
                .args([
                    "record",
                    "--no-summary",
                    "--port",
                    &port.to_string(),
                    "--output",
                ])
                .arg(&path),
        );
        profiler.wait_for("attached", std::time::Duration::from_secs(30));
        let ok = Command::new("curl")
            .args(["-sS", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .status()
            .unwrap();
        assert!(ok.success());
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (code, stderr) = profiler.interrupt();
        assert_eq!(code, 0, "{stderr}");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    // Two runs, each: client and server side, request and response.
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.lines().all(|l| l.starts_with("ts=")));
}
