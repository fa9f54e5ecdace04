//! The capture matrix, clients: curl, python3 urllib and http.client, the Node.js `http` client,
//! wrk (keep-alive and pipelined through a Lua script), ab without -k, demo-traffic; each
//! compared against what the client knows and, for nginx, its access log.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);

fn page() -> Vec<u8> {
    (0..512).map(|i| b'a' + (i % 26) as u8).collect()
}

#[apply(root_test!)]
fn curl_keepalive_and_separate_invocations() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let mut cmd = Command::new("curl");
    let n = 50;
    for i in 0..n {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args(["-sS", "--fail", "-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: cu{i}"))
            .arg(format!("http://127.0.0.1:{port}/healthz?id=cu{i}"));
    }
    run_ok(&mut cmd, T);
    for i in n..n + 10 {
        run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "-o", "/dev/null", "-H"])
                .arg(format!("X-Request-Id: cu{i}"))
                .arg(format!("http://127.0.0.1:{port}/?id=cu{i}")),
            T,
        );
    }
    let (records, _) = stop(profiler);
    assert_exact(&records, "client", "curl", "cu", n + 10);
    assert_exact(&records, "server", "demo-server", "cu", n + 10);
    assert_eq!(Side::of(&records, "client", "curl").conns().len(), 11);
    assert_eq!(assert_pairing_exact(&records), 2 * (n + 10));
    note(
        "curl (1 keep-alive conn x50 + 10 conns)",
        n + 10,
        Side::of(&records, "client", "curl").paired().len(),
    );
}

#[apply(root_test!)]
fn python_urllib_and_http_client() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let p = port.to_string();
    let a = last_json(&run_ok(
        &mut pyclient(&["urllib", "127.0.0.1", &p, "40", "ul", "/"]),
        T,
    ));
    let b = last_json(&run_ok(
        &mut pyclient(&["keepalive", "127.0.0.1", &p, "200", "hc", "/"]),
        T,
    ));
    assert_eq!((a["ok"].as_u64(), b["ok"].as_u64()), (Some(40), Some(200)));
    let (records, _) = stop(profiler);
    let client = Side::of(&records, "client", "python3");
    let mut want = expected_ids("ul", 40);
    want.extend(expected_ids("hc", 200));
    want.sort();
    assert_ids(&client.paired_ids(), &want, "python clients");
    assert_eq!(client.requests.len(), 240);
    assert_eq!(client.partial(), 0);
    assert_eq!(
        client.conns().len(),
        41,
        "urllib: a connection per request; http.client: one"
    );
    assert_ids(
        &Side::of(&records, "server", "demo-server").paired_ids(),
        &want,
        "demo-server",
    );
    assert_eq!(assert_pairing_exact(&records), 2 * 240);
    note(
        "python urllib",
        40,
        client
            .paired_ids()
            .iter()
            .filter(|i| i.starts_with("ul"))
            .count(),
    );
    note(
        "python http.client keep-alive",
        200,
        client
            .paired_ids()
            .iter()
            .filter(|i| i.starts_with("hc"))
            .count(),
    );
}

#[apply(root_test!)]
fn node_http_client() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let n = 200;
    let out = last_json(&run_ok(
        Command::new("node")
            .arg(program("node_client.js"))
            .arg(port.to_string())
            .arg(n.to_string())
            .arg("nj"),
        T,
    ));
    assert_eq!(
        (out["ok"].as_u64(), out["mismatch"].as_u64()),
        (Some(n as u64), Some(0))
    );
    let (records, _) = stop(profiler);
    assert_exact(&records, "client", "node", "nj", n);
    assert_exact(&records, "server", "demo-server", "nj", n);
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "node http client (keep-alive agent)",
        n,
        Side::of(&records, "client", "node").paired().len(),
    );
}

/// wrk against nginx: nginx's access log is the ground truth of what was answered, wrk's
/// count of what it read.
fn wrk_against_nginx(depth: usize, connections: usize, case: &str) {
    let nginx = Nginx::start("", "", &[("page.txt", &page())]);
    let profiler = Profiler::start(&[nginx.port], &["--ring-mb", "64"]);
    let out = run_ok(
        Command::new("wrk")
            .env("WRK_DEPTH", depth.to_string())
            .args(["-t1", &format!("-c{connections}"), "-d1", "-s"])
            .arg(program("wrk_ids.lua"))
            .arg(format!("http://127.0.0.1:{}/page.txt", nginx.port)),
        T,
    );
    let wrk_count = wrk_requests(&out);
    let (records, stderr) = stop(profiler);
    let _log = nginx.access_log();
    let logged = nginx.logged_ids();
    assert!(wrk_count > 1000, "wrk did too little: {out}");
    // Loss has its own test; this one needs a loss-free capture to compare exactly.
    assert_eq!(
        summary(&stderr, "kernel_drops"),
        0,
        "ring buffer overflowed"
    );
    let server = Side::of(&records, "server", "nginx");
    let client = Side::of(&records, "client", "wrk");
    // Server: exactly what nginx logged, each paired with its own request.
    assert_ids(&server.paired_ids(), &logged, "nginx side vs access log");
    assert_eq!(server.conns().len(), connections);
    // Client: every response wrk read and counted, paired; all were answered by nginx.
    let complete: Vec<&Value> = client
        .paired()
        .into_iter()
        .filter(|r| r["partial"] == false)
        .collect();
    assert_eq!(complete.len(), wrk_count, "wrk side vs wrk's count");
    for r in &complete {
        let id = header(r, "x-request-id").unwrap().to_owned();
        assert!(
            logged.binary_search(&id).is_ok(),
            "{id} not in the access log"
        );
    }
    let verified = assert_pairing_exact(&records);
    assert!(verified >= logged.len() + wrk_count, "{verified}");
    note(
        &format!("{case}: nginx side"),
        logged.len(),
        server.paired().len(),
    );
    note(&format!("{case}: wrk side"), wrk_count, complete.len());
}

#[apply(root_test!)]
fn wrk_keepalive() {
    wrk_against_nginx(1, 4, "wrk keep-alive");
}

#[apply(root_test!)]
fn wrk_pipelined_depth_16() {
    wrk_against_nginx(16, 2, "wrk pipelined depth 16");
}

#[apply(root_test!)]
fn ab_new_connection_per_request() {
    let nginx = Nginx::start("", "", &[("page.txt", &page())]);
    let profiler = Profiler::start(&[nginx.port], &["--ring-mb", "64"]);
    let n = 1500;
    let out = run_ok(
        Command::new("ab")
            .args([
                "-q",
                "-n",
                &n.to_string(),
                "-c",
                "4",
                "-H",
                "X-Request-Id: ab",
            ])
            .arg(format!("http://127.0.0.1:{}/page.txt", nginx.port)),
        T,
    );
    assert_eq!(ab_complete(&out), n);
    let (records, stderr) = stop(profiler);
    assert_eq!(nginx.access_log().len(), n);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    for (role, comm) in [("server", "nginx"), ("client", "ab")] {
        let side = Side::of(&records, role, comm);
        assert_eq!(side.requests.len(), n, "{comm}");
        assert_eq!(side.paired().len(), n, "{comm}");
        assert_eq!(side.partial(), 0, "{comm}");
        // A new connection per request: each connection has exactly one exchange.
        let mut per_conn: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        for r in &side.requests {
            per_conn.entry(r["conn"].as_u64().unwrap()).or_default().0 += 1;
        }
        for r in side.paired() {
            per_conn.entry(r["conn"].as_u64().unwrap()).or_default().1 += 1;
            assert_eq!(r["exchange"], 1);
            assert!(r["bytes"].as_u64().unwrap() > 512, "{r}");
        }
        assert_eq!(per_conn.len(), n, "{comm}: connections");
        assert!(per_conn.values().all(|&c| c == (1, 1)), "{comm}");
        note(
            &format!("ab -n {n} -c 4 (no -k): {comm} side"),
            n,
            side.paired().len(),
        );
    }
    assert_pairing_exact(&records);
}
