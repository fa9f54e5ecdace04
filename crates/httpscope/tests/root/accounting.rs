//! Every connection on a watched port is accounted for: reported, or skipped for a counted
//! reason. A mixed load of many processes (plaintext HTTP/1 from Python and ab, h2c between
//! Node processes, HTTPS from curl to nginx over OpenSSL, bare connect-and-close probes)
//! opens a number of connections its clients know; the kernel's counters must add up to
//! it exactly, and every exchange must be logged on both sides.

use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::h2::{node_h2_client, node_h2_server};
use crate::support::matrix::*;
use crate::support::tls::{curl_https_each, nginx_tls};
use crate::support::*;

const T: Duration = Duration::from_secs(120);
const PY_CLIENTS: usize = 16;
const PY_REQUESTS: usize = 100;
const AB_CLIENTS: usize = 4;
const AB_REQUESTS: usize = 100;
const NODE_CLIENTS: usize = 4;
const NODE_REQUESTS: usize = 10;
const CURL_CLIENTS: usize = 20;
const PROBES: usize = 50;
const RAW_CLIENTS: usize = 20;

/// The servers' ports: plaintext HTTP/1, h2c, HTTPS.
struct Ports {
    http: u16,
    h2c: u16,
    https: u16,
}

/// Connections each client group made, as the clients count them.
type Group = JoinHandle<usize>;

fn spawn(f: impl FnOnce() -> usize + Send + 'static) -> Group {
    std::thread::spawn(f)
}

fn python_clients(port: u16) -> Vec<Group> {
    (0..PY_CLIENTS)
        .map(|i| {
            spawn(move || {
                let prefix = format!("py{i}x");
                let args = [
                    "urllib",
                    "127.0.0.1",
                    &port.to_string(),
                    &PY_REQUESTS.to_string(),
                ];
                let out = last_json(&run_ok(
                    &mut pyclient(&[&args[..], &[&prefix, "/"]].concat()),
                    T,
                ));
                assert_eq!(out["ok"].as_u64(), Some(PY_REQUESTS as u64), "{out}");
                PY_REQUESTS
            })
        })
        .collect()
}

/// ab one request at a time: with more in flight it may open a spare connection and close
/// it unused, which its count of requests does not show.
fn ab_clients(port: u16) -> Vec<Group> {
    (0..AB_CLIENTS)
        .map(|_| spawn(move || ab_healthz(port, AB_REQUESTS, 1)))
        .collect()
}

fn node_clients(port: u16) -> Vec<Group> {
    (0..NODE_CLIENTS)
        .map(|i| {
            spawn(move || {
                let ok = node_h2_client(
                    Path::new("node"),
                    port,
                    NODE_REQUESTS,
                    &format!("nd{i}x"),
                    None,
                );
                assert_eq!(ok, NODE_REQUESTS);
                1
            })
        })
        .collect()
}

fn curl_clients(ca: &Path, port: u16) -> Group {
    let ca = ca.to_path_buf();
    spawn(move || {
        curl_https_each(&ca, port, "tls", CURL_CLIENTS);
        CURL_CLIENTS
    })
}

/// One process opening connections and closing them without a byte.
fn probes(port: u16) -> Group {
    spawn(move || {
        let script = "import socket, sys\n\
                      for _ in range(int(sys.argv[2])):\n    \
                      socket.create_connection(('127.0.0.1', int(sys.argv[1]))).close()\n";
        run_ok(
            Command::new("python3")
                .args(["-c", script])
                .arg(port.to_string())
                .arg(PROBES.to_string()),
            T,
        );
        PROBES
    })
}

/// Processes that each send one connection's worth of bytes that are not HTTP.
fn raw_clients(port: u16) -> Vec<Group> {
    (0..RAW_CLIENTS)
        .map(|_| {
            spawn(move || {
                run_ok(
                    &mut pyclient(&["raw", "127.0.0.1", &port.to_string(), "random"]),
                    T,
                );
                1
            })
        })
        .collect()
}

/// Runs every client group at once; returns the connections they made.
fn run_load(ports: &Ports, ca: &Path, not_http: bool) -> usize {
    let mut groups = python_clients(ports.http);
    groups.extend(ab_clients(ports.http));
    groups.extend(node_clients(ports.h2c));
    groups.push(curl_clients(ca, ports.https));
    groups.push(probes(ports.http));
    if not_http {
        groups.extend(raw_clients(ports.http));
    }
    groups.into_iter().map(|g| g.join().unwrap()).sum()
}

/// Every exchange of every stack logged and paired, on both sides.
fn check_exchanges(records: &[Value]) {
    let sides = [
        ("client", "python3", PY_CLIENTS * PY_REQUESTS),
        ("client", "ab", AB_CLIENTS * AB_REQUESTS),
        (
            "server",
            "demo-server",
            PY_CLIENTS * PY_REQUESTS + AB_CLIENTS * AB_REQUESTS,
        ),
        ("client", "node", NODE_CLIENTS * NODE_REQUESTS),
        ("server", "node", NODE_CLIENTS * NODE_REQUESTS),
        ("client", "curl", CURL_CLIENTS),
        ("server", "nginx", CURL_CLIENTS),
    ];
    for (role, comm, n) in sides {
        let side = Side::of(records, role, comm);
        assert_eq!(side.requests.len(), n, "{comm} {role} requests");
        assert_eq!(side.paired().len(), n, "{comm} {role} paired");
    }
}

/// watched sockets = reported + skipped by reason, exactly; prints the remainder if not.
/// Returns the sockets accounted for.
fn check_identity(stderr: &str, sockets: u64) -> u64 {
    let get = |key: &str| summary(stderr, key);
    let reported = get("conns_reported");
    let skipped: Vec<(&str, u64)> = ["filtered", "not_http", "silent", "no_slot"]
        .iter()
        .map(|&reason| (reason, get(&format!("conns_{reason}"))))
        .collect();
    let accounted = reported + skipped.iter().map(|&(_, n)| n).sum::<u64>();
    assert_eq!(
        sockets,
        accounted,
        "watched sockets opened (known from the clients) = reported + skipped does not hold: \
         remainder {}; reported={reported} skipped={skipped:?} conns_watched={} conns_open={}",
        sockets as i64 - accounted as i64,
        get("conns_watched"),
        get("conns_open"),
    );
    assert_eq!(
        get("conns_watched"),
        sockets,
        "sockets the kernel kept state for"
    );
    assert_eq!(get("conns_open"), 0, "connections left open at the end");
    assert_eq!(get("kernel_drops"), 0);
    accounted
}

fn mixed_load(extra: &[&str], not_http: bool) -> (u64, String) {
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (_http, http) = demo_server(&[]);
    let (_h2c, h2c) = node_h2_server(Path::new("node"), None);
    let (_https, https) = nginx_tls(
        &certs.path,
        r#"location / { return 200 "hello over tls\n"; }"#,
    );
    let ports = Ports { http, h2c, https };
    let mut args = vec!["--ring-mb", "64"];
    args.extend(extra);
    let profiler = Profiler::start(&[http, h2c, https], &args);
    let connections = run_load(&ports, &certs.path.join("ca.pem"), not_http);
    // Both ends of every connection are closed: let the kernel destroy the sockets.
    std::thread::sleep(Duration::from_secs(1));
    let (records, stderr) = stop(profiler);
    check_exchanges(&records);
    // Loopback: each connection is two watched sockets, the client's and the server's.
    let sockets = 2 * connections as u64;
    let accounted = check_identity(&stderr, sockets);
    note(
        &format!(
            "mixed load, watched sockets accounted for ({})",
            test_backend()
        ),
        sockets as usize,
        accounted as usize,
    );
    (sockets, stderr)
}

#[apply(root_test!)]
fn every_connection_of_a_mixed_load_is_accounted_for() {
    mixed_load(&[], false);
}

#[apply(root_test!)]
fn every_connection_is_accounted_for_under_all_ports() {
    let (_, stderr) = mixed_load(&["--all-ports"], true);
    assert_eq!(summary(&stderr, "conns_not_http"), 2 * RAW_CLIENTS as u64);
    assert_eq!(summary(&stderr, "conns_silent"), 2 * PROBES as u64);
}
