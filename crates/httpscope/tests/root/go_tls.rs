//! HTTPS plaintext from Go's crypto/tls (uprobes on `(*tls.Conn).Read`/`Write`,
//! returns found in the machine code). Real Go programs (`tests/programs/gohttps`) built
//! with Debian's Go 1.19 and a current Go, each with symbols and stripped; curl against a
//! Go server. Every exchange is counted on both sides, exactly.

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::tls::*;
use crate::support::*;

const N: usize = 10;

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
    check_tls_records(&records, &stderr);
    let (plain, stripped) = (GoBuild::comm(&build.plain), GoBuild::comm(&build.stripped));
    for proto in ["h1", "h2"] {
        for (role, comm, who) in [
            ("client", &plain, "p"),
            ("server", &stripped, "p"),
            ("client", &stripped, "s"),
            ("server", &plain, "s"),
        ] {
            let prefix = format!("{proto}{who}");
            let captured = check_tls_side(&records, role, comm, &prefix, "go", N);
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

#[apply(root_test!)]
fn go_1_19_plain_and_stripped() {
    plain_and_stripped(Toolchain::Debian);
}

#[apply(root_test!)]
fn go_current_plain_and_stripped() {
    plain_and_stripped(Toolchain::Current);
}

#[apply(root_test!)]
fn curl_against_a_go_server() {
    let Some(build) = go_build(Toolchain::Current) else {
        return;
    };
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = go_server(&build.stripped, &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    curl_https_each(&certs.path.join("ca.pem"), port, "c", N);
    let (records, stderr) = profiler.stop();
    check_tls_records(&records, &stderr);
    let server = check_tls_side(
        &records,
        "server",
        &GoBuild::comm(&build.stripped),
        "c",
        "go",
        N,
    );
    note("curl -> Go server: server", N, server);
    let client = check_tls_side(&records, "client", "curl", "c", "openssl", N);
    note("curl -> Go server: curl", N, client);
}

/// A Go program whose binary was never run before capture started: hooked at its exec.
#[apply(root_test!)]
fn go_program_started_after_capture() {
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
    check_tls_records(&records, &stderr);
    eprintln!("{}", hooked_late(&stderr, "late-client"));
    let client = check_tls_side(&records, "client", "late-client", "late", "go", N);
    note("Go program started after capture: client", N, client);
    let server = check_tls_side(
        &records,
        "server",
        &GoBuild::comm(&build.plain),
        "late",
        "go",
        N,
    );
    note("Go program started after capture: server", N, server);
}
