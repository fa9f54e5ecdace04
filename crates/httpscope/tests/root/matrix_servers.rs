//! The capture matrix, servers: nginx (writev, sendfile, proxy_pass), python3 http.server, a
//! threaded Python server, a Node.js `http` server and demo-server, each compared against
//! ground truth (nginx's access log, or the counts the client knows).

use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);

/// curl arguments for `n` GETs of `url_path` on one keep-alive connection, ids `<prefix><i>`.
fn curl_many(port: u16, url_path: &str, prefix: &str, n: usize, extra: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    for i in 0..n {
        if i > 0 {
            cmd.arg("--next");
        }
        let rid = format!("{prefix}{i}");
        cmd.args(["-sS", "--fail", "-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: {rid}"))
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{url_path}?id={rid}"));
    }
    cmd
}

#[apply(root_test!)]
fn nginx_writev_keepalive_against_access_log() {
    let content: Vec<u8> = (0..4000).map(|i| b'a' + (i % 26) as u8).collect();
    let nginx = Nginx::start("", "", &[("page.txt", &content)]);
    // A --body-limit above the body: the capture budget copies all of it, so every byte of
    // nginx's writev (head and file in separate iovecs) must arrive.
    let profiler = Profiler::start(&[nginx.port], &["--body-limit", "4096"]);
    let n = 60;
    run_ok(&mut curl_many(nginx.port, "/page.txt", "ng", n, &[]), T);
    let (records, stderr) = stop(profiler);
    let log = nginx.access_log();
    assert_eq!(nginx.logged_ids(), expected_ids("ng", n), "access log");
    assert_exact(&records, "server", "nginx", "ng", n);
    assert_exact(&records, "client", "curl", "ng", n);
    assert_eq!(Side::of(&records, "server", "nginx").conns().len(), 1);
    let verified = assert_pairing_exact(&records);
    assert_eq!(verified, 2 * n);
    // Each response's wire size is what nginx logged as $bytes_sent; the body is all there.
    let sent: std::collections::BTreeMap<String, u64> = log
        .iter()
        .map(|f| (f[1].clone(), f[5].parse().unwrap()))
        .collect();
    for r in Side::of(&records, "server", "nginx").responses {
        let id = header(r, "x-request-id").unwrap();
        assert_eq!(r["bytes"].as_u64(), Some(sent[id]), "{r}");
        assert_eq!(r["body_bytes"], 4000);
        assert_eq!(r["body_captured"], true, "{r}");
        assert!(content.starts_with(r["body"].as_str().unwrap().as_bytes()));
    }
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    note(
        "nginx writev keep-alive (curl)",
        n,
        Side::of(&records, "server", "nginx").paired().len(),
    );
}

#[apply(root_test!)]
fn nginx_sendfile_body_is_reported_not_captured() {
    let content = vec![b'z'; 200_000];
    let nginx = Nginx::start("sendfile on;", "", &[("big.bin", &content)]);
    let profiler = Profiler::start(&[nginx.port], &[]);
    let n = 5;
    run_ok(&mut curl_many(nginx.port, "/big.bin", "sf", n, &[]), T);
    let (records, _) = stop(profiler);
    let log = nginx.access_log();
    assert_eq!(nginx.logged_ids(), expected_ids("sf", n));
    assert_exact(&records, "server", "nginx", "sf", n);
    assert_exact(&records, "client", "curl", "sf", n);
    assert_pairing_exact(&records);
    for r in Side::of(&records, "server", "nginx").responses {
        let id = header(r, "x-request-id").unwrap();
        let logged: u64 = log.iter().find(|f| f[1] == id).unwrap()[5].parse().unwrap();
        assert_eq!(r["bytes"].as_u64(), Some(logged), "{r}");
        assert_eq!(r["body_bytes"], 200_000, "{r}");
        assert_eq!(
            r["body_captured"], false,
            "sendfile body cannot be captured: {r}"
        );
        assert_eq!(r["partial"], false, "{r}");
    }
    note(
        "nginx sendfile on (curl)",
        n,
        Side::of(&records, "server", "nginx").paired().len(),
    );
}

#[apply(root_test!)]
fn nginx_proxy_pass_is_server_and_client() {
    let (_demo, demo_port) = demo_server(&[]);
    let nginx = Nginx::start(
        "location / { proxy_pass http://upstream_demo; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; proxy_hide_header X-Request-Id; }",
        &format!("upstream upstream_demo {{ server 127.0.0.1:{demo_port}; keepalive 4; }}"),
        &[],
    );
    let profiler = Profiler::start(&[nginx.port, demo_port], &[]);
    let n = 40;
    run_ok(&mut curl_many(nginx.port, "/healthz", "px", n, &[]), T);
    let (records, _) = stop(profiler);
    assert_eq!(nginx.logged_ids(), expected_ids("px", n));
    assert_exact(&records, "client", "curl", "px", n);
    assert_exact(&records, "server", "nginx", "px", n);
    assert_exact(&records, "client", "nginx", "px", n);
    assert_exact(&records, "server", "demo-server", "px", n);
    let nginx_pids: std::collections::BTreeSet<u64> = records
        .iter()
        .filter(|r| r["comm"] == "nginx")
        .map(|r| r["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(
        nginx_pids.len(),
        1,
        "one nginx worker is both server and client"
    );
    assert_eq!(assert_pairing_exact(&records), 4 * n);
    note(
        "nginx proxy_pass: nginx as server",
        n,
        Side::of(&records, "server", "nginx").paired().len(),
    );
    note(
        "nginx proxy_pass: nginx as client",
        n,
        Side::of(&records, "client", "nginx").paired().len(),
    );
}

#[apply(root_test!)]
fn python_http_server_module() {
    let dir = TempDir::new();
    std::fs::write(dir.path.join("f.txt"), "python http.server file\n").unwrap();
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--directory",
    ])
    .arg(&dir.path)
    .stdout(std::process::Stdio::null());
    let _server = Proc::spawn(&mut cmd);
    wait_listening(&format!("127.0.0.1:{port}"), Duration::from_secs(10));
    let profiler = Profiler::start(&[port], &[]);
    let n = 30;
    let out = last_json(&run_ok(
        &mut pyclient(&[
            "urllib",
            "127.0.0.1",
            &port.to_string(),
            &n.to_string(),
            "hs",
            "/f.txt",
        ]),
        T,
    ));
    assert_eq!(out["ok"], n);
    let (records, _) = stop(profiler);
    // Server and client are both python3: told apart by role.
    let server = Side::of(&records, "server", "python3");
    let client = Side::of(&records, "client", "python3");
    assert_eq!(server.requests.len(), n);
    // http.server does not echo X-Request-Id: the ids come from the URLs the responses inherit.
    assert_ids(
        &server.paired_url_ids(),
        &expected_ids("hs", n),
        "http.server",
    );
    assert_ids(
        &client.paired_url_ids(),
        &expected_ids("hs", n),
        "urllib client",
    );
    assert_eq!(
        server.conns().len(),
        n,
        "http.server: one connection per request"
    );
    for r in &server.responses {
        assert_eq!(r["status"], 200);
        assert_eq!(r["body"], "python http.server file\n", "{r}");
        assert_eq!(r["partial"], false);
    }
    // One exchange per connection: the response's request is the one on its connection.
    for r in &server.responses {
        let conn = r["conn"].as_u64();
        let req = server
            .requests
            .iter()
            .find(|q| q["conn"].as_u64() == conn)
            .unwrap();
        assert_eq!(req["url"], r["url"]);
        assert_eq!(req["exchange"], r["exchange"]);
    }
    assert_pairing_exact(&records);
    note("python3 -m http.server (urllib)", n, server.paired().len());
}

#[apply(root_test!)]
fn python_threaded_server_with_http_client() {
    let (_server, port) = py_threaded_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let n = 300;
    py_keepalive(port, n, "pt", "/");
    let (records, _) = stop(profiler);
    assert_exact(&records, "server", "python3", "pt", n);
    assert_exact(&records, "client", "python3", "pt", n);
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "threaded python server (http.client)",
        n,
        Side::of(&records, "server", "python3").paired().len(),
    );
}

#[apply(root_test!)]
fn node_http_server_and_client() {
    let (_server, port) = node_server("http");
    let profiler = Profiler::start(&[port], &[]);
    let n = 300;
    let mut cmd = Command::new("node");
    cmd.arg(program("node_client.js"))
        .arg(port.to_string())
        .arg(n.to_string())
        .arg("nd");
    let out = last_json(&run_ok(&mut cmd, T));
    assert_eq!(
        (out["ok"].as_u64(), out["mismatch"].as_u64()),
        (Some(n as u64), Some(0))
    );
    // curl against the Node server as well.
    run_ok(&mut curl_many(port, "/", "nc", 10, &[]), T);
    let (records, _) = stop(profiler);
    let server = Side::of(&records, "server", "node");
    let mut want = expected_ids("nd", n);
    want.extend(expected_ids("nc", 10));
    want.sort();
    assert_ids(&server.paired_ids(), &want, "node server");
    assert_eq!(server.requests.len(), n + 10);
    assert_exact(&records, "client", "node", "nd", n);
    assert_exact(&records, "client", "curl", "nc", 10);
    assert_eq!(assert_pairing_exact(&records), 2 * (n + 10));
    note(
        "node http server (node client + curl)",
        n + 10,
        server.paired().len(),
    );
    note(
        "node http client",
        n,
        Side::of(&records, "client", "node").paired().len(),
    );
}

#[apply(root_test!)]
fn demo_server_under_demo_traffic_load() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let mut cmd = Command::new(bin("demo-traffic"));
    cmd.args([
        "--port",
        &port.to_string(),
        "--concurrency",
        "8",
        "--duration",
        "2",
        "--json",
    ])
    .env("RUST_LOG", "warn");
    let out = last_json(&run_ok(&mut cmd, T));
    let expected = out["requests"].as_u64().unwrap() as usize;
    assert_eq!(out["errors"], 0);
    let (records, stderr) = stop(profiler);
    let client = Side::of(&records, "client", "demo-traffic");
    let server = Side::of(&records, "server", "demo-server");
    assert_eq!(summary(&stderr, "kernel_drops"), 0, "{stderr}");
    assert_eq!(client.requests.len(), expected);
    assert_eq!(client.paired().len(), expected);
    assert_eq!(server.requests.len(), expected);
    assert_eq!(server.paired().len(), expected);
    // Keep-alive: about one connection per worker (the pool may open a spare one).
    let conns = client.conns().len();
    assert!(
        (8..=16).contains(&conns),
        "{conns} client connections for 8 workers"
    );
    assert_eq!(assert_pairing_exact(&records), 2 * expected);
    note(
        "demo-server + demo-traffic load (8 conns, 2 s)",
        expected,
        server.paired().len(),
    );
}
