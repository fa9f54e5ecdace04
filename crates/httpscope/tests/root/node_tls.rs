//! HTTPS plaintext from Node.js (OpenSSL through TLSWrap's memory BIOs: its SSL
//! objects get their connection from the TLSWrap probes), for both ways Node is built:
//! the machine's `node` (NodeSource's here: OpenSSL built into the executable) and Debian's
//! own `nodejs` (`libnode.so` and the system's shared libssl; `scripts/setup.sh --test`
//! unpacks it under `/opt/httpscope-test/debian-node`, since it cannot be installed beside
//! another `nodejs`). For each: a Node `https` keep-alive server answering a Node
//! keep-alive client; curl (shared libssl) against the Node server; a Node client whose
//! files were never run before capture started. Every exchange counted exactly on both
//! sides.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::tls::*;
use crate::support::*;

const N: usize = 10;
/// The machine's node.
const NODE: &str = "/usr/bin/node";
fn node_client_against_node_server(node: &Path, label: &str) {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = node_https_server(node, &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    let counts = node_https_client(node, &certs.path, port, N, "n");
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    assert_eq!(counts["mismatch"], 0, "{counts}");
    check_tls_records(&records, &stderr);
    assert_eq!(records.len(), 4 * N, "{records:#?}");
    for role in ["client", "server"] {
        let captured = check_tls_side(&records, role, "node", "n", "node", N);
        let side = Side::of(&records, role, "node");
        assert_eq!(side.conns().len(), 1, "{role}: one keep-alive connection");
        note(&format!("{label} https {role}"), N, captured);
    }
}

fn curl_against_a_node_server(node: &Path, label: &str) {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_server, port) = node_https_server(node, &certs.path);
    let profiler = Profiler::start(&[port], &[]);
    curl_https_each(&certs.path.join("ca.pem"), port, "c", N);
    let (records, stderr) = profiler.stop();
    check_tls_records(&records, &stderr);
    let server = check_tls_side(&records, "server", "node", "c", "node", N);
    note(&format!("curl -> {label} server: server"), N, server);
    let client = check_tls_side(&records, "client", "curl", "c", "openssl", N);
    note(&format!("curl -> {label} server: curl"), N, client);
}

/// The late client runs `late` (a new file) as process `comm`; the profiler must say it
/// hooked `hooked`.
fn node_program_started_after_capture(
    server_node: &Path,
    late: &Path,
    comm: &str,
    hooked: &str,
    label: &str,
) {
    let certs_dir = late.parent().unwrap();
    let (_server, port) = node_https_server(server_node, certs_dir);
    let mut profiler = Profiler::start(&[port], &[]);
    // Hooking a new node binary takes 0.6-1.1 s here (it reads the 99 MB file once): the
    // client, started now, sends its first request once the profiler says it hooked it.
    let counts = node_https_client_held(late, certs_dir, port, N, "late", || {
        let line = profiler.proc.wait_for(hooked, Duration::from_secs(30));
        eprintln!("{line}");
    });
    let (records, stderr) = profiler.stop();
    assert_eq!(counts["ok"], N, "{counts}");
    check_tls_records(&records, &stderr);
    hooked_late(&stderr, hooked);
    let client = check_tls_side(&records, "client", comm, "late", "node", N);
    note(
        &format!("{label} program started after capture: client"),
        N,
        client,
    );
    let server = check_tls_side(&records, "server", "node", "late", "node", N);
    note(
        &format!("{label} program started after capture: server"),
        N,
        server,
    );
}

#[apply(root_test!)]
fn node_client_against_node_server_built_in_openssl() {
    node_client_against_node_server(Path::new(NODE), "Node");
}

#[apply(root_test!)]
fn node_client_against_node_server_debian_libnode() {
    let test = "node_client_against_node_server_debian_libnode";
    if let Some(node) = debian_node(test) {
        node_client_against_node_server(&node, "Debian Node (libnode, shared libssl)");
    }
}

#[apply(root_test!)]
fn curl_against_a_node_server_built_in_openssl() {
    curl_against_a_node_server(Path::new(NODE), "Node");
}

#[apply(root_test!)]
fn curl_against_a_node_server_debian_libnode() {
    let test = "curl_against_a_node_server_debian_libnode";
    if let Some(node) = debian_node(test) {
        curl_against_a_node_server(&node, "Debian Node");
    }
}

/// A node binary never run before capture started (a copy is a new inode): hooked at exec.
#[apply(root_test!)]
fn node_program_started_after_capture_built_in_openssl() {
    let dir = TempDir::new();
    make_certs(&dir.path);
    let late = dir.path.join("late-node");
    std::fs::copy(NODE, &late).unwrap();
    node_program_started_after_capture(Path::new(NODE), &late, "late-node", "late-node", "Node");
}

/// Debian's node with a copy of its libnode (a new inode) that no process had loaded before
/// capture started: hooked when the dynamic loader maps it.
#[apply(root_test!)]
fn node_program_started_after_capture_debian_libnode() {
    let test = "node_program_started_after_capture_debian_libnode";
    let Some(server_node) = debian_node(test) else {
        return;
    };
    let dir = TempDir::new();
    make_certs(&dir.path);
    let libs = dir.path.join("late-libnode");
    std::fs::create_dir(&libs).unwrap();
    let lib_dir = Path::new(DEBIAN_NODE_DIR).join("lib");
    for entry in std::fs::read_dir(&lib_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), libs.join(entry.file_name())).unwrap();
        }
    }
    // A copy of Debian's node executable, run with the copied libraries first on its path.
    let executable = dir.path.join("late-dnode.bin");
    std::fs::copy(Path::new(DEBIAN_NODE_DIR).join("usr/bin/node"), &executable).unwrap();
    let late = dir.path.join("late-dnode");
    std::fs::write(
        &late,
        format!(
            "#!/bin/sh\nLD_LIBRARY_PATH={} exec {} \"$@\"\n",
            libs.display(),
            executable.display()
        ),
    )
    .unwrap();
    let status = Command::new("chmod").arg("+x").arg(&late).status().unwrap();
    assert!(status.success());
    let hooked = format!("{}/libnode.so", libs.display());
    node_program_started_after_capture(
        &server_node,
        &late,
        "late-dnode.bin",
        &hooked,
        "Debian Node",
    );
}
