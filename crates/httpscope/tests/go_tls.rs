//! Issue #14: HTTPS plaintext from Go's crypto/tls (uprobes on `(*tls.Conn).Read`/`Write`,
//! returns found in the machine code). Real Go programs (`tests/programs/gohttps`) built
//! with Debian's Go 1.19 and a current Go, each with symbols and stripped; curl against a
//! Go server. Every exchange is counted on both sides, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::matrix::*;
use support::tls::*;
use support::*;

const N: usize = 10;

/// Every record is Go TLS plaintext, unbroken, with no ciphertext reported as undecodable.
fn check_go_records(records: &[Value], stderr: &str) {
    let clean = strip_ansi(stderr);
    for r in records {
        assert_eq!(r["tls"], true, "{r}");
        assert_eq!(r["partial"], false, "{r}");
    }
    assert!(!clean.contains("not HTTP/1.x"), "{clean}");
    assert_eq!(summary(stderr, "tls_conns"), 0, "{clean}");
    assert_eq!(summary(stderr, "parse_errors"), 0, "{clean}");
    assert_eq!(summary(stderr, "unpaired_responses"), 0, "{clean}");
    assert_pairing_exact(records);
}

/// One side's paired exchanges carry exactly the ids `prefix0..prefix{n-1}`; returns how many.
fn check_side(records: &[Value], role: &str, comm: &str, prefix: &str, lib: &str) -> usize {
    let side = Side::of(records, role, comm);
    let ids: Vec<String> = side
        .paired_ids()
        .into_iter()
        .filter(|id| {
            id.starts_with(prefix) && id[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    assert_eq!(
        ids,
        expected_ids(prefix, N),
        "{role} {comm} {prefix}: {records:#?}"
    );
    for r in side.paired() {
        if header(r, "x-request-id").is_some_and(|id| id.starts_with(prefix)) {
            assert_eq!(r["tls_lib"], lib, "{r}");
            let id = header(r, "x-request-id").unwrap();
            let body = r["body"].as_str().unwrap();
            if r["method"] == "POST" {
                assert_eq!(body, format!("echo:body-{id}"), "{r}");
            } else {
                assert_eq!(body, format!("hello {id}"), "{r}");
            }
        }
    }
    ids.len()
}

/// A plain and a stripped server; each binary's client talks to the other's server, once
/// with HTTP/1.1 forced and once with Go's default (HTTP/2 over TLS).
fn plain_and_stripped(toolchain: Toolchain) {
    let Some(build) = go_build(toolchain) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_plain_server, plain_port) = go_server(&build.plain, &certs.path);
    let (_stripped_server, stripped_port) = go_server(&build.stripped, &certs.path);
    let profiler = Profiler::start(&[plain_port, stripped_port], &[]);
    let mut counts = Vec::new();
    for proto in ["h1", "h2"] {
        let (p, s) = (format!("{proto}p"), format!("{proto}s"));
        counts.push(go_client(
            &build.plain,
            &certs.path,
            stripped_port,
            N,
            &p,
            proto,
        ));
        counts.push(go_client(
            &build.stripped,
            &certs.path,
            plain_port,
            N,
            &s,
            proto,
        ));
    }
    let (records, stderr) = profiler.stop();
    for counts in &counts {
        assert_eq!(counts["ok"], N, "{counts}");
    }
    check_go_records(&records, &stderr);
    let (plain, stripped) = (GoBuild::comm(&build.plain), GoBuild::comm(&build.stripped));
    for proto in ["h1", "h2"] {
        for (role, comm, who) in [
            ("client", &plain, "p"),
            ("server", &stripped, "p"),
            ("client", &stripped, "s"),
            ("server", &plain, "s"),
        ] {
            let prefix = format!("{proto}{who}");
            let captured = check_side(&records, role, comm, &prefix, "go");
            note(
                &format!("Go {toolchain:?} {proto} {role} {comm}"),
                N,
                captured,
            );
        }
    }
    let h2 = records.iter().filter(|r| r["proto"] == "h2").count();
    assert_eq!(h2, 8 * N, "{records:#?}");
}

#[test]
fn go_1_19_plain_and_stripped() {
    if require_root("go_1_19_plain_and_stripped") {
        plain_and_stripped(Toolchain::Debian);
    }
}

#[test]
fn go_current_plain_and_stripped() {
    if require_root("go_current_plain_and_stripped") {
        plain_and_stripped(Toolchain::Current);
    }
}

#[test]
fn curl_against_a_go_server() {
    if !require_root("curl_against_a_go_server") {
        return;
    }
    let Some(build) = go_build(Toolchain::Current) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = go_server(&build.stripped, &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    // One curl per request (a new connection each), each with its own id header.
    let mut ok = 0;
    for i in 0..N {
        run_ok(
            std::process::Command::new("curl")
                .args(["-sS", "--fail", "--http1.1", "-H"])
                .arg(format!("X-Request-Id: c{i}"))
                .arg("--cacert")
                .arg(certs.path.join("ca.pem"))
                .arg(format!("https://127.0.0.1:{port}/?id=c{i}")),
            std::time::Duration::from_secs(30),
        );
        ok += 1;
    }
    let (records, stderr) = profiler.stop();
    assert_eq!(ok, N);
    check_go_records(&records, &stderr);
    let server = check_side(
        &records,
        "server",
        &GoBuild::comm(&build.stripped),
        "c",
        "go",
    );
    note("curl -> Go server: server", N, server);
    let client = check_side(&records, "client", "curl", "c", "openssl");
    note("curl -> Go server: curl", N, client);
}

/// A Go program whose binary was never run before capture started: hooked at its exec.
#[test]
fn go_program_started_after_capture() {
    if !require_root("go_program_started_after_capture") {
        return;
    }
    let Some(build) = go_build(Toolchain::Current) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    // A copy is a new file (inode): nothing has hooked it.
    let late = certs.path.join("late-client");
    std::fs::copy(&build.stripped, &late).unwrap();
    let (_server, port) = go_server(&build.plain, &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    let delay = std::time::Duration::from_millis(500);
    let counts = go_client_after(delay, &late, &certs.path, port, N, "late", "h1");
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    check_go_records(&records, &stderr);
    let hooked = strip_ansi(&stderr)
        .lines()
        .find(|l| l.contains("appeared after capture started") && l.contains("late-client"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("late-client was not hooked: {stderr}"));
    eprintln!("{hooked}");
    let client = check_side(&records, "client", "late-client", "late", "go");
    note("Go program started after capture: client", N, client);
    let server = check_side(
        &records,
        "server",
        &GoBuild::comm(&build.plain),
        "late",
        "go",
    );
    note("Go program started after capture: server", N, server);
}
