//! Issue #14: HTTPS plaintext from Node.js (OpenSSL through TLSWrap's memory BIOs: its SSL
//! objects get their connection from the TLSWrap probes). A Node `https` keep-alive server
//! answering a Node keep-alive client; curl (shared libssl) against the Node server; a
//! Node client whose binary was never run before capture started. Every exchange counted
//! exactly on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::matrix::*;
use support::tls::*;
use support::*;

const N: usize = 10;
const NODE: &str = "/usr/bin/node";

#[test]
fn node_client_against_node_server() {
    if !require_root("node_client_against_node_server") {
        return;
    }
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = node_https_server(Path::new(NODE), &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    let counts = node_https_client(Path::new(NODE), &certs.path, port, N, "n");
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    assert_eq!(counts["mismatch"], 0, "{counts}");
    check_tls_records(&records, &stderr);
    assert_eq!(records.len(), 4 * N, "{records:#?}");
    for role in ["client", "server"] {
        let captured = check_tls_side(&records, role, "node", "n", "node", N);
        let side = Side::of(&records, role, "node");
        assert_eq!(side.conns().len(), 1, "{role}: one keep-alive connection");
        note(&format!("Node https {role}"), N, captured);
    }
}

#[test]
fn curl_against_a_node_server() {
    if !require_root("curl_against_a_node_server") {
        return;
    }
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = node_https_server(Path::new(NODE), &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    curl_https_each(&certs.path.join("ca.pem"), port, "c", N);
    let (records, stderr) = profiler.stop();
    check_tls_records(&records, &stderr);
    let server = check_tls_side(&records, "server", "node", "c", "node", N);
    note("curl -> Node server: server", N, server);
    let client = check_tls_side(&records, "client", "curl", "c", "openssl", N);
    note("curl -> Node server: curl", N, client);
}

/// A node binary never run before capture started (a copy is a new inode): hooked at exec.
#[test]
fn node_program_started_after_capture() {
    if !require_root("node_program_started_after_capture") {
        return;
    }
    let certs = TempDir::new();
    make_certs(&certs.path);
    let late = certs.path.join("late-node");
    std::fs::copy(NODE, &late).unwrap();
    let (_server, port) = node_https_server(Path::new(NODE), &certs.path);
    let mut profiler = Profiler::start(&[port], &[]);
    // Hooking a new node binary takes 0.6-1.1 s here (it reads the 99 MB file once): the
    // client, started now, sends its first request once the profiler says it hooked it.
    let counts = node_https_client_held(&late, &certs.path, port, N, "late", || {
        let hooked = profiler.proc.wait_for("late-node", Duration::from_secs(30));
        eprintln!("{hooked}");
    });
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    check_tls_records(&records, &stderr);
    hooked_late(&stderr, "late-node");
    let client = check_tls_side(&records, "client", "late-node", "late", "node", N);
    note("Node program started after capture: client", N, client);
    let server = check_tls_side(&records, "server", "node", "late", "node", N);
    note("Node program started after capture: server", N, server);
}
