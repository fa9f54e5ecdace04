//! The capture budget on TLS plaintext: an HTTPS body past --body-limit is counted, not
//! copied, and still reported exactly. nginx (OpenSSL) serves a 256 KiB file to curl
//! (OpenSSL) over one keep-alive connection; both sides' plaintext comes from the uprobes.

use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);
const BODY_LEN: usize = 256 * 1024;
const FETCHES: usize = 6;

/// A body whose every prefix is recognisable: the kept part must be its first bytes.
fn file_body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

/// curl fetching /big.bin FETCHES times on one connection (`--next` keeps it), ids tb0.. in
/// the URLs and the X-Request-Id header nginx echoes.
fn fetch_all(ca: &std::path::Path, port: u16) {
    let mut cmd = Command::new("curl");
    for i in 0..FETCHES {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-sS", "--fail", "--http1.1", "-o", "/dev/null", "--cacert"])
            .arg(ca)
            .arg("-H")
            .arg(format!("X-Request-Id: tb{i}"))
            .arg(format!("https://127.0.0.1:{port}/big.bin?id=tb{i}"));
    }
    run_ok(&mut cmd, T);
}

/// Each side's responses: every fetch paired, the whole length reported, the first
/// `kept` bytes logged, nothing partial.
fn assert_exact_bodies(records: &[Value], role: &str, comm: &str, body: &[u8], kept: usize) {
    let side = Side::of(records, role, comm);
    assert_ids(
        &side.paired_url_ids(),
        &expected_ids("tb", FETCHES),
        &format!("{comm} {role}"),
    );
    assert_eq!(side.partial(), 0, "{comm} {role}: {records:#?}");
    let kept = std::str::from_utf8(&body[..kept]).unwrap();
    for r in side.paired() {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["tls"], true, "{r}");
        assert_eq!(r["body_bytes"].as_u64(), Some(BODY_LEN as u64), "{r}");
        assert_eq!(r["body"].as_str(), Some(kept), "{comm} {role}: {r}");
    }
}

/// The fetches under a profiler run with `extra`, whose --body-limit is `limit`: exact, with
/// every body byte past the limit counted, not copied.
fn fetches_within_the_budget(extra: &[&str], limit: usize) {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let body = file_body();
    let (_nginx, port) =
        crate::support::tls::nginx_tls_serving(&certs.path, "", &[("big.bin", &body)]);
    let profiler = Profiler::start(&[port], extra);
    fetch_all(&certs.path.join("ca.pem"), port);
    let saved = certs.path.join("capture.events");
    let (records, stderr) = profiler.stop_keeping_events(&saved);
    let clean = strip_ansi(&stderr);
    for (role, comm) in [("client", "curl"), ("server", "nginx")] {
        assert_exact_bodies(&records, role, comm, &body, limit);
        let conns = Side::of(&records, role, comm).conns();
        assert_eq!(conns.len(), 1, "{comm} {role}: one keep-alive connection");
    }
    assert_eq!(assert_pairing_exact(&records), 2 * FETCHES, "{clean}");
    for counter in [
        "kernel_drops",
        "truncated_syscalls",
        "gap_bytes",
        "partial_messages",
        "parse_errors",
        "tls_conns",
    ] {
        assert_eq!(summary(&stderr, counter), 0, "{counter}: {clean}");
    }
    // The kernel copies at least one body byte per message (its 0 turns the budget off).
    let bodies = (2 * FETCHES * BODY_LEN) as u64;
    let copied_at_most = (2 * FETCHES * limit.max(1)) as u64;
    let elided = summary(&stderr, "elided_bytes");
    assert!(
        elided + copied_at_most + bodies / 16 >= bodies,
        "elided {elided} of {bodies} body bytes: {clean}"
    );
    let saved_bytes = std::fs::metadata(&saved).unwrap().len();
    assert!(
        saved_bytes < bodies / 16,
        "{saved_bytes} bytes of events saved for {bodies} body bytes: {clean}"
    );
}

#[apply(root_test!)]
fn large_https_bodies_are_exact_within_the_capture_budget() {
    // The profiler's default --body-limit.
    fetches_within_the_budget(&[], 1024);
}

#[apply(root_test!)]
fn https_bodies_are_only_counted_at_body_limit_zero() {
    // The least kernel budget, as metrics mode sets it: heads only.
    fetches_within_the_budget(&["--body-limit", "0"], 0);
}
