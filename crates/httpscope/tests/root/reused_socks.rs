//! A kernel socket's TLS state dies with it. The allocator hands a freed socket's memory to
//! the next socket at once, so state keyed by a socket's address must go when the socket
//! goes: a plaintext connection that lands at the address of a closed Go TLS connection's
//! socket is still plaintext, and every one of its exchanges is logged, on both sides.

use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use macro_rules_attribute::apply;

use crate::support::h2::{node_h2_client, node_h2_server};
use crate::support::matrix::*;
use crate::support::tls::*;
use crate::support::*;

/// Every request of `comm` as `role` logged and paired, none partial.
fn assert_all_paired(records: &[serde_json::Value], role: &str, comm: &str, n: usize) {
    let side = Side::of(records, role, comm);
    assert_eq!(side.requests.len(), n, "{comm} {role} requests");
    assert_eq!(side.paired().len(), n, "{comm} {role} paired");
    assert_eq!(side.partial(), 0, "{comm} {role} partial");
}

/// A Go HTTPS server and a plaintext demo-server, with the Go build and certificates.
struct Servers {
    build: GoBuild,
    certs: TempDir,
    go_port: u16,
    port: u16,
    _procs: [Proc; 2],
}

/// None (skipped) without the Go toolchain.
fn servers() -> Option<Servers> {
    let build = go_build(Toolchain::Debian)?;
    let certs = TempDir::new();
    make_certs(&certs.path);
    let (go, go_port) = go_server(&build.plain, &certs.path);
    let (demo, port) = demo_server(&[]);
    Some(Servers {
        build,
        certs,
        go_port,
        port,
        _procs: [go, demo],
    })
}

/// `clients` Go clients at once, two requests each on its own connection, all answered.
fn go_round(servers: &Servers, round: usize, clients: usize) {
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let (binary, certs) = (servers.build.plain.clone(), servers.certs.path.clone());
            let port = servers.go_port;
            std::thread::spawn(move || {
                go_client(&binary, &certs, port, 2, &format!("g{round}x{i}x"), "h1")
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap()["ok"], 2);
    }
}

/// Go TLS connections on a watched port close, then new plaintext connections (one per
/// request) open on another watched port, round after round.
#[apply(root_test!)]
fn plaintext_connections_after_go_tls_connections_closed() {
    let Some(servers) = servers() else {
        return;
    };
    let profiler = Profiler::start(&[servers.go_port, servers.port], &[]);
    let (rounds, go_clients, per_round) = (10, 4, 40);
    for round in 0..rounds {
        go_round(&servers, round, go_clients);
        assert_eq!(ab_healthz(servers.port, per_round, 2), per_round);
    }
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    let n = rounds * per_round;
    assert_all_paired(&records, "client", "ab", n);
    assert_all_paired(&records, "server", "demo-server", n);
    let go = GoBuild::comm(&servers.build.plain);
    let go_exchanges = rounds * go_clients * 2;
    assert_all_paired(&records, "client", &go, go_exchanges);
    assert_all_paired(&records, "server", &go, go_exchanges);
    note(
        "plaintext connections after closed Go TLS connections",
        n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
}

/// Go TLS traffic on a port nobody watches, next to 1000 concurrent plaintext connections
/// on a watched one: the Go sockets are freed and their memory reused all the time.
#[apply(root_test!)]
fn concurrent_connections_next_to_unwatched_go_tls() {
    let Some(servers) = servers() else {
        return;
    };
    let (build, certs, go_port, port) = (
        &servers.build,
        &servers.certs,
        servers.go_port,
        servers.port,
    );
    let profiler = Profiler::start(&[port], &["--ring-mb", "64"]);
    let stop_flag = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop_flag, binary, certs) =
            (stop_flag.clone(), build.plain.clone(), certs.path.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop_flag.load(Ordering::Relaxed) {
                go_client(&binary, &certs, go_port, 1, &format!("bg{runs}x"), "h1");
                runs += 1;
            }
            runs
        })
    };
    let (rounds, n) = (3, 1000);
    for round in 0..rounds {
        py_concurrent(port, n, &format!("cc{round}x"));
    }
    stop_flag.store(true, Ordering::Relaxed);
    let go_runs = background.join().unwrap();
    assert!(go_runs > 0, "no Go TLS connection ran next to the load");
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    assert_all_paired(&records, "client", "python3", rounds * n);
    assert_all_paired(&records, "server", "demo-server", rounds * n);
    note(
        &format!("concurrent connections next to {go_runs} unwatched Go TLS connections"),
        rounds * n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
}

/// The many-stack run's shape: a Node h2c server started, and its port probed once, before
/// capture; then, round after round, Go TLS connections close and a new Node h2c client
/// makes 10 requests on one session.
#[apply(root_test!)]
fn node_h2c_sessions_after_go_tls_connections_closed() {
    let Some(servers) = servers() else {
        return;
    };
    let (_h2c, h2c_port) = node_h2_server(Path::new("node"), None);
    drop(TcpStream::connect(("127.0.0.1", h2c_port)).unwrap());
    let profiler = Profiler::start(&[servers.go_port, h2c_port], &[]);
    let (rounds, n) = (5, 10);
    for round in 0..rounds {
        go_round(&servers, round, 3);
        let ok = node_h2_client(Path::new("node"), h2c_port, n, &format!("nd{round}x"), None);
        assert_eq!(ok, n);
    }
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    assert_all_paired(&records, "client", "node", rounds * n);
    assert_all_paired(&records, "server", "node", rounds * n);
    note(
        "Node h2c sessions after closed Go TLS connections",
        rounds * n,
        Side::of(&records, "server", "node").paired().len(),
    );
}
