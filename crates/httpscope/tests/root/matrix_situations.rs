//! The capture matrix, situations: connections, addresses, bodies and message types, syscall
//! boundaries and lifecycle, each against real programs and the counts the client knows.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use macro_rules_attribute::apply;
use serde_json::Value;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);

fn curl(args: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail"]).args(args);
    cmd
}

// ---- Connections ----

#[apply(root_test!)]
fn keepalive_1200_requests_on_one_connection() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &["--ring-mb", "64"]);
    let n = 1200;
    py_keepalive(port, n, "ka", "/");
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    assert_exact(&records, "client", "python3", "ka", n);
    assert_exact(&records, "server", "demo-server", "ka", n);
    assert_eq!(Side::of(&records, "client", "python3").conns().len(), 1);
    assert_eq!(Side::of(&records, "server", "demo-server").conns().len(), 1);
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "keep-alive 1200 requests on one connection",
        n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
}

/// `rounds` writes of `depth` pipelined requests for `path` (python's raw-socket client);
/// every message exact on both sides. Returns the records and the profiler's stderr.
fn pipelined_exchanges(
    server_extra: &[&str],
    (rounds, depth): (usize, usize),
    path: &str,
    case: &str,
) -> (Vec<Value>, String) {
    let (_server, port) = demo_server_args(server_extra);
    let profiler = Profiler::start(&[port], &[]);
    let n = rounds * depth;
    let out = last_json(&run_ok(
        &mut pyclient(&[
            "pipeline",
            "127.0.0.1",
            &port.to_string(),
            &rounds.to_string(),
            &depth.to_string(),
            "pl",
            path,
        ]),
        T,
    ));
    assert_eq!(
        (out["ok"].as_u64(), out["mismatch"].as_u64()),
        (Some(n as u64), Some(0))
    );
    let (records, stderr) = stop(profiler);
    assert_exact(&records, "client", "python3", "pl", n);
    assert_exact(&records, "server", "demo-server", "pl", n);
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        case,
        n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
    (records, stderr)
}

fn pipelined(extra: &[&str], case: &str) {
    pipelined_exchanges(extra, (25, 16), "/", case);
}

#[apply(root_test!)]
fn pipelining_depth_16() {
    // 16 requests per write: several messages in one syscall on the request side.
    pipelined(&[], "pipelining depth 16 (16 requests per syscall)");
}

#[apply(root_test!)]
fn several_responses_in_one_syscall() {
    // hyper's pipeline_flush coalesces the 16 responses into few writes.
    pipelined(
        &["--pipeline-flush"],
        "pipelining depth 16 with coalesced responses (several per syscall)",
    );
}

#[apply(root_test!)]
fn new_connection_per_request_at_high_rate() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &["--ring-mb", "64"]);
    let n = 3000;
    assert_eq!(ab_healthz(port, n, 8), n);
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    for (role, comm) in [("client", "ab"), ("server", "demo-server")] {
        let side = Side::of(&records, role, comm);
        assert_eq!(side.requests.len(), n, "{comm}");
        assert_eq!(side.paired().len(), n, "{comm}");
        assert_eq!(side.partial(), 0, "{comm}");
        // fds (and, over many runs, ports) are reused; every connection still is its own.
        assert_eq!(side.conns().len(), n, "{comm}: one connection per request");
        assert!(side
            .paired()
            .iter()
            .all(|r| r["exchange"] == 1 && r["status"] == 200));
        note(
            &format!("new connection per request, ab -n {n} -c 8: {comm}"),
            n,
            side.paired().len(),
        );
    }
    assert_pairing_exact(&records);
}

#[apply(root_test!)]
fn thousand_concurrent_connections() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &["--ring-mb", "64"]);
    let n = 1000;
    py_concurrent(port, n, "cc");
    let (records, stderr) = stop(profiler);
    assert_eq!(summary(&stderr, "kernel_drops"), 0);
    assert_exact(&records, "client", "python3", "cc", n);
    assert_exact(&records, "server", "demo-server", "cc", n);
    assert_eq!(Side::of(&records, "server", "demo-server").conns().len(), n);
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "1000 concurrent connections",
        n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
}

// ---- Addresses ----

#[apply(root_test!)]
fn ipv6_loopback() {
    let (_server, port) = demo_server_args(&["--bind", "::1"]);
    let profiler = Profiler::start(&[port], &[]);
    let n = 20;
    let out = last_json(&run_ok(
        &mut pyclient(&[
            "keepalive",
            "::1",
            &port.to_string(),
            &n.to_string(),
            "v6",
            "/",
        ]),
        T,
    ));
    assert_eq!(out["ok"].as_u64(), Some(n as u64));
    run_ok(
        curl(&["-g", "-o", "/dev/null", "-H", "X-Request-Id: v6c0"])
            .arg(format!("http://[::1]:{port}/healthz?id=v6c0")),
        T,
    );
    let (records, _) = stop(profiler);
    assert_exact(&records, "client", "python3", "v6", n);
    assert_exact(&records, "client", "curl", "v6c", 1);
    let server = Side::of(&records, "server", "demo-server");
    assert_eq!(server.paired().len(), n + 1);
    for r in server.requests.iter().chain(&server.responses) {
        let server_end = if r["kind"] == "request" { "dst" } else { "src" };
        assert_eq!(
            r[server_end].as_str().unwrap(),
            format!("[::1]:{port}"),
            "{r}"
        );
        let client_end = if r["kind"] == "request" { "src" } else { "dst" };
        assert!(r[client_end].as_str().unwrap().starts_with("[::1]:"), "{r}");
    }
    assert_eq!(assert_pairing_exact(&records), 2 * (n + 1));
    note("IPv6 [::1]", n + 1, server.paired().len());
}

#[apply(root_test!)]
fn ipv4_mapped_addresses() {
    // A dual-stack listener: IPv4 clients appear to it as ::ffff:127.0.0.1.
    let (_server, port) = demo_server_args(&["--bind", "::"]);
    let profiler = Profiler::start(&[port], &[]);
    let n = 20;
    py_keepalive(port, n, "v4m", "/");
    let (records, _) = stop(profiler);
    assert_exact(&records, "client", "python3", "v4m", n);
    assert_exact(&records, "server", "demo-server", "v4m", n);
    for r in Side::of(&records, "server", "demo-server").requests {
        let src = r["src"].as_str().unwrap();
        assert!(src.contains("127.0.0.1"), "{r}");
        assert!(
            r["dst"].as_str().unwrap().ends_with(&format!(":{port}")),
            "{r}"
        );
    }
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "IPv4-mapped (dual-stack listener)",
        n,
        Side::of(&records, "server", "demo-server").paired().len(),
    );
}

// ---- Bodies and message types ----

#[apply(root_test!)]
fn one_mib_bodies_up_and_down() {
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let mib = 1 << 20;
    let mut body = b"{\"message\":\"".to_vec();
    body.resize(mib - 2, b'm');
    body.extend_from_slice(b"\"}");
    let file = dir.path.join("up.json");
    std::fs::write(&file, &body).unwrap();
    let profiler = Profiler::start(&[port], &[]);
    let out = run_ok(
        curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{size_upload} %{size_download} %{size_header}\\n",
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Request-Id: up0",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://127.0.0.1:{port}/echo?id=up0"))
        .args(["--next", "-sS", "--fail", "-o", "/dev/null", "-w"])
        .arg("%{size_upload} %{size_download} %{size_header}\\n")
        .args(["-H", "X-Request-Id: down0"])
        .arg(format!("http://127.0.0.1:{port}/bytes/{mib}?id=down0")),
        T,
    );
    let sizes: Vec<Vec<u64>> = out
        .lines()
        .map(|l| l.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    let (records, _) = stop(profiler);
    assert_pairing_exact(&records);
    for role_comm in [("client", "curl"), ("server", "demo-server")] {
        let side = Side::of(&records, role_comm.0, role_comm.1);
        assert_eq!(side.requests.len(), 2);
        assert_eq!(side.paired().len(), 2);
        assert_eq!(
            side.partial(),
            0,
            "1 MiB bodies are cut by the capture limit, not lost"
        );
        let up = side
            .requests
            .iter()
            .find(|r| r["method"] == "POST")
            .unwrap();
        assert_eq!(up["body_bytes"], mib as u64, "{up}");
        assert!(up["bytes"].as_u64().unwrap() > mib as u64);
        assert_eq!(up["body_truncated"], true);
        let echo = side
            .paired()
            .into_iter()
            .find(|r| r["method"] == "POST")
            .unwrap();
        let down = side
            .paired()
            .into_iter()
            .find(|r| r["method"] == "GET")
            .unwrap();
        assert_eq!(
            echo["bytes"].as_u64(),
            Some(sizes[0][1] + sizes[0][2]),
            "{echo}"
        );
        assert_eq!(
            down["bytes"].as_u64(),
            Some(sizes[1][1] + sizes[1][2]),
            "{down}"
        );
        assert_eq!(down["body_bytes"], mib as u64);
        for r in [echo, down] {
            assert_eq!(r["body_captured"], false, "capture limit: {r}");
            assert_eq!(r["body_truncated"], true);
            assert_eq!(r["partial"], false);
            assert_eq!(r["status"], 200);
        }
        note(
            &format!("1 MiB up + 1 MiB down: {}", role_comm.1),
            2,
            side.paired().len(),
        );
    }
}

#[apply(root_test!)]
fn chunked_responses() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    // Connection 1: chunked bodies whose syscalls fit the capture limit: exact.
    let mut cmd = curl(&[]);
    let sizes = [10usize, 1000, 12_000, 0, 7];
    for (i, n) in sizes.iter().enumerate() {
        if i > 0 {
            cmd.args(["--next", "-sS", "--fail"]);
        }
        cmd.args(["-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: ch{i}"))
            .arg(format!("http://127.0.0.1:{port}/chunked/{n}?id=ch{i}"));
    }
    run_ok(&mut cmd, T);
    // Connection 2: a 100 kB chunked body read in one 100 kB recv (curl), far more than
    // --capture-bytes: the capture budget copies every chunk-size line and counts the data
    // between them, so the framing holds and every exchange after it pairs exactly.
    let mut cmd = curl(&[]);
    let big_sizes = [100_000usize, 10, 10, 10];
    for (i, n) in big_sizes.iter().enumerate() {
        if i > 0 {
            cmd.args(["--next", "-sS", "--fail"]);
        }
        cmd.args(["-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: big{i}"))
            .arg(format!("http://127.0.0.1:{port}/chunked/{n}?id=big{i}"));
    }
    run_ok(&mut cmd, T);
    let (records, stderr) = stop(profiler);
    assert_eq!(
        assert_pairing_exact(&records),
        2 * (sizes.len() + big_sizes.len())
    );
    for (role, comm) in [("client", "curl"), ("server", "demo-server")] {
        let side = Side::of(&records, role, comm);
        for (prefix, sizes) in [("ch", &sizes[..]), ("big", &big_sizes[..])] {
            let exact: Vec<String> = side
                .paired_ids()
                .into_iter()
                .filter(|id| id.starts_with(prefix))
                .collect();
            assert_ids(&exact, &expected_ids(prefix, sizes.len()), comm);
            for r in side
                .paired()
                .iter()
                .filter(|r| header(r, "x-request-id").is_some_and(|id| id.starts_with(prefix)))
            {
                let i: usize = header(r, "x-request-id").unwrap()[prefix.len()..]
                    .parse()
                    .unwrap();
                assert_eq!(header(r, "transfer-encoding"), Some("chunked"), "{r}");
                assert_eq!(r["body_bytes"].as_u64(), Some(sizes[i] as u64), "{r}");
                assert_eq!(r["partial"], false, "{r}");
                assert!(r["body"]
                    .as_str()
                    .unwrap()
                    .starts_with(&"0123456789"[..sizes[i].min(10)]));
            }
            note(
                &format!(
                    "chunked responses, {prefix}: {comm} (the 100 kB one beyond --capture-bytes)"
                ),
                sizes.len(),
                exact.len(),
            );
        }
    }
    assert_eq!(summary(&stderr, "unpaired_responses"), 0);
    assert_eq!(summary(&stderr, "partial_messages"), 0);
}

#[apply(root_test!)]
fn gzip_bodies_are_decoded() {
    let text: String = (0..2000)
        .map(|i| format!("line {i} of a compressible text\n"))
        .collect();
    let nginx = Nginx::start(
        "gzip on; gzip_types text/plain; gzip_min_length 1;",
        "",
        &[("text.txt", text.as_bytes())],
    );
    let profiler = Profiler::start(&[nginx.port], &[]);
    let mut cmd = curl(&[]);
    for i in 0..3 {
        if i > 0 {
            cmd.args(["--next", "-sS", "--fail"]);
        }
        cmd.args(["--compressed", "-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: gz{i}"))
            .arg(format!("http://127.0.0.1:{}/text.txt?id=gz{i}", nginx.port));
    }
    run_ok(&mut cmd, T);
    let (records, _) = stop(profiler);
    let log = nginx.access_log();
    assert_exact(&records, "server", "nginx", "gz", 3);
    assert_exact(&records, "client", "curl", "gz", 3);
    for r in records.iter().filter(|r| r["kind"] == "response") {
        assert_eq!(header(r, "content-encoding"), Some("gzip"), "{r}");
        let id = header(r, "x-request-id").unwrap();
        let logged = log.iter().find(|f| f[1] == id).unwrap();
        // bytes: what went over the wire (compressed); body: decoded text.
        assert_eq!(r["bytes"].as_u64(), Some(logged[5].parse().unwrap()), "{r}");
        assert!((r["bytes"].as_u64().unwrap() as usize) < text.len() / 4);
        // Compressed, the body is still over --body-limit: the capture budget copied its
        // first 1024 bytes, which decode to more than 1024 bytes of text.
        assert!(text.starts_with(r["body"].as_str().unwrap()), "{r}");
        assert_eq!(
            r["body"].as_str().unwrap().len(),
            1024,
            "body_limit of decoded text"
        );
    }
    assert_eq!(assert_pairing_exact(&records), 6);
    note(
        "gzip bodies (nginx gzip, curl --compressed)",
        3,
        Side::of(&records, "client", "curl").paired().len(),
    );
}

#[apply(root_test!)]
fn expect_100_continue() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let body = format!("{{\"message\":\"{}\"}}", "c".repeat(3000));
    run_ok(
        curl(&[
            "-o",
            "/dev/null",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Request-Id: ec0",
            "--data-binary",
            &body,
        ])
        .arg(format!("http://127.0.0.1:{port}/echo?id=ec0")),
        T,
    );
    let (records, _) = stop(profiler);
    for (role, comm) in [("client", "curl"), ("server", "demo-server")] {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["role"] == role && r["comm"] == comm)
            .collect();
        let interim: Vec<&&Value> = mine.iter().filter(|r| r["interim"] == true).collect();
        assert_eq!(interim.len(), 1, "{comm}: one 100 Continue: {mine:#?}");
        assert_eq!(interim[0]["status"], 100);
        let side = Side::of(&records, role, comm);
        assert_exact(&records, role, comm, "ec", 1);
        assert_eq!(interim[0]["exchange"], side.paired()[0]["exchange"]);
        assert_eq!(side.requests[0]["body_bytes"], body.len());
        note(&format!("100-continue: {comm}"), 1, side.paired().len());
    }
    assert_pairing_exact(&records);
}

#[apply(root_test!)]
fn head_204_and_304() {
    let (_server, port) = demo_server(&[]);
    // `before`: a date after the file's mtime answers 304 (the default wants an exact match).
    let nginx = Nginx::start(
        "if_modified_since before;",
        "",
        &[("page.txt", b"nginx page\n")],
    );
    let profiler = Profiler::start(&[port, nginx.port], &[]);
    // On one keep-alive connection: HEAD, 204, 304, then a normal GET that must still pair.
    let base = format!("http://127.0.0.1:{port}");
    let steps: [(&str, &str, u16); 4] = [
        ("-I", "/healthz", 200),
        ("", "/status/204", 204),
        ("", "/status/304", 304),
        ("", "/", 200),
    ];
    let mut cmd = curl(&[]);
    for (i, (flag, path, _)) in steps.iter().enumerate() {
        if i > 0 {
            cmd.args(["--next", "-sS"]);
        }
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        cmd.args(["-o", "/dev/null", "-H"])
            .arg(format!("X-Request-Id: hd{i}"))
            .arg(format!("{base}{path}?id=hd{i}"));
    }
    run_ok(&mut cmd, T);
    // nginx: HEAD, a conditional GET answered 304, then a GET.
    let url = format!("http://127.0.0.1:{}/page.txt", nginx.port);
    run_ok(
        curl(&["-I", "-o", "/dev/null", "-H", "X-Request-Id: ng0"])
            .arg(format!("{url}?id=ng0"))
            .args([
                "--next",
                "-sS",
                "-o",
                "/dev/null",
                "-H",
                "X-Request-Id: ng1",
            ])
            .args(["-H", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"])
            .arg(format!("{url}?id=ng1"))
            .args([
                "--next",
                "-sS",
                "-o",
                "/dev/null",
                "-H",
                "X-Request-Id: ng2",
            ])
            .arg(format!("{url}?id=ng2")),
        T,
    );
    let (records, _) = stop(profiler);
    let demo = Side::of(&records, "server", "demo-server");
    assert_exact(&records, "server", "demo-server", "hd", 4);
    for r in demo.paired() {
        let i: usize = header(r, "x-request-id").unwrap()[2..].parse().unwrap();
        assert_eq!(r["status"], steps[i].2, "{r}");
        assert_eq!(r["method"], if i == 0 { "HEAD" } else { "GET" });
        if i < 3 {
            assert_eq!(r["body_bytes"], 0, "{r}");
        }
    }
    assert_exact(&records, "server", "nginx", "ng", 3);
    let statuses: Vec<(String, u64)> = Side::of(&records, "server", "nginx")
        .paired()
        .iter()
        .map(|r| {
            (
                header(r, "x-request-id").unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("ng0".into(), 200),
            ("ng1".into(), 304),
            ("ng2".into(), 200)
        ]
    );
    let curl_side = Side::of(&records, "client", "curl");
    assert_eq!(curl_side.paired().len(), 7);
    assert_eq!(curl_side.partial(), 0);
    assert_eq!(curl_side.conns().len(), 2);
    assert_eq!(assert_pairing_exact(&records), 14);
    note(
        "HEAD, 204, 304 (demo-server + nginx, curl)",
        7,
        curl_side.paired().len(),
    );
}

#[apply(root_test!)]
fn close_delimited_bodies() {
    let (_server, port) = py_threaded_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let sizes = [0usize, 5, 50_000];
    for (i, n) in sizes.iter().enumerate() {
        run_ok(
            curl(&["-o", "/dev/null", "-H"])
                .arg(format!("X-Request-Id: cd{i}"))
                .arg(format!("http://127.0.0.1:{port}/close/{n}?id=cd{i}")),
            T,
        );
    }
    let (records, _) = stop(profiler);
    assert_exact(&records, "client", "curl", "cd", 3);
    assert_exact(&records, "server", "python3", "cd", 3);
    for r in records.iter().filter(|r| r["kind"] == "response") {
        let i: usize = header(r, "x-request-id").unwrap()[2..].parse().unwrap();
        assert!(r["headers"]["content-length"].is_null());
        assert_eq!(r["body_bytes"].as_u64(), Some(sizes[i] as u64), "{r}");
        assert_eq!(r["partial"], false, "{r}");
    }
    assert_eq!(assert_pairing_exact(&records), 6);
    note(
        "Connection: close delimited bodies (python server, curl)",
        3,
        Side::of(&records, "client", "curl").paired().len(),
    );
}

// ---- The capture budget: bodies past --body-limit are counted, not copied ----

/// Every response of `role`/`comm` whose request id starts with `prefix`: `len` body bytes on
/// the wire, the first --body-limit (1024) of them logged, never partial.
fn assert_budgeted_bodies(records: &[Value], role: &str, comm: &str, prefix: &str, len: u64) {
    let side = Side::of(records, role, comm);
    let bodies: Vec<&&Value> = side
        .responses
        .iter()
        .filter(|r| header(r, "x-request-id").is_some_and(|id| id.starts_with(prefix)))
        .collect();
    assert!(!bodies.is_empty(), "{comm} {role}: no {prefix} responses");
    for r in bodies {
        assert_eq!(r["body_bytes"].as_u64(), Some(len), "{r}");
        assert_eq!(r["partial"], false, "{r}");
        let kept = r["body"].as_str().unwrap().len() as u64;
        assert_eq!(
            kept,
            len.min(1024),
            "{comm} {role}: body kept up to --body-limit"
        );
    }
}

/// What the budget must leave behind: nothing lost, nothing dropped, no fallback, bodies elided.
fn assert_budget_held(stderr: &str) {
    for counter in [
        "kernel_drops",
        "truncated_syscalls",
        "gap_bytes",
        "budget_fallbacks",
    ] {
        assert_eq!(summary(stderr, counter), 0, "{counter}: {stderr}");
    }
    assert!(
        summary(stderr, "elided_bytes") > 0,
        "nothing elided? {stderr}"
    );
}

#[apply(root_test!)]
fn large_bodies_keep_alive_are_exact_within_the_capture_budget() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    // 16 KiB and 1 MiB Content-Length bodies and 300 kB chunked ones, keep-alive: the
    // heads and first 1024 body bytes are copied, the rest only counted.
    let cases = [
        ("k16k", 150usize, "/bytes/16384", 16_384u64),
        ("k1m", 12, "/bytes/1048576", 1_048_576),
        ("kch", 12, "/chunked/300000", 300_000),
    ];
    for (prefix, n, path, _) in cases {
        py_keepalive(port, n, prefix, path);
    }
    let (records, stderr) = stop(profiler);
    assert_budget_held(&stderr);
    for (prefix, n, path, len) in cases {
        for (role, comm) in [("client", "python3"), ("server", "demo-server")] {
            assert_ids(
                &Side::of(&records, role, comm)
                    .paired_ids()
                    .into_iter()
                    .filter(|id| id.starts_with(prefix))
                    .collect::<Vec<_>>(),
                &expected_ids(prefix, n),
                &format!("{comm} {role} {prefix}"),
            );
            assert_budgeted_bodies(&records, role, comm, prefix, len);
        }
        let server_paired = Side::of(&records, "server", "demo-server")
            .paired_ids()
            .iter()
            .filter(|id| id.starts_with(prefix))
            .count();
        note(
            &format!("keep-alive {path}: demo-server side (capture budget)"),
            n,
            server_paired,
        );
    }
    assert_eq!(
        assert_pairing_exact(&records),
        2 * cases.iter().map(|c| c.1).sum::<usize>()
    );
}

#[apply(root_test!)]
fn pipelined_large_responses_in_one_syscall_pair_exactly() {
    // hyper's pipeline_flush writes several 16 KiB responses at once: one socket call holds
    // the end of a body elided and the next head, copied again.
    let (records, stderr) = pipelined_exchanges(
        &["--pipeline-flush"],
        (10, 4),
        "/bytes/16384",
        "pipelining depth 4 of 16 KiB responses (capture budget)",
    );
    assert_budget_held(&stderr);
    for (role, comm) in [("client", "python3"), ("server", "demo-server")] {
        assert_budgeted_bodies(&records, role, comm, "pl", 16_384);
    }
}

// ---- Syscall boundaries ----

#[apply(root_test!)]
fn messages_split_across_many_syscalls_and_one_byte_reads() {
    // Server reads the request 1 byte per recv and writes its response 7 bytes per send;
    // the client writes its requests 3 bytes per send and reads 1 byte per recv.
    let (_server, port) = py_threaded_server(&["--byte-reads"]);
    let profiler = Profiler::start(&[port], &[]);
    let n = 10;
    let out = last_json(&run_ok(
        &mut pyclient(&[
            "split",
            "127.0.0.1",
            &port.to_string(),
            &n.to_string(),
            "sp",
            "/split",
        ]),
        T,
    ));
    assert_eq!(out["ok"].as_u64(), Some(n as u64));
    assert!(out["writes"].as_u64().unwrap() > 30 * n as u64);
    let (records, stderr) = stop(profiler);
    assert!(
        summary(&stderr, "events") > 4000,
        "expected thousands of syscalls"
    );
    assert_exact(&records, "client", "python3", "sp", n);
    assert_exact(&records, "server", "python3", "sp", n);
    for r in records.iter().filter(|r| r["kind"] == "response") {
        let id = header(r, "x-request-id").unwrap();
        assert!(
            r["body"]
                .as_str()
                .unwrap()
                .starts_with(&format!("split-{id}-")),
            "{r}"
        );
        assert_eq!(r["body_captured"], true);
    }
    assert_eq!(assert_pairing_exact(&records), 2 * n);
    note(
        "split across many syscalls + 1-byte reads",
        n,
        Side::of(&records, "client", "python3").paired().len(),
    );
}

// ---- Lifecycle ----

#[apply(root_test!)]
fn traced_server_exits_mid_response() {
    let (mut server, port) = py_threaded_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let out = run(
        curl(&["-o", "/dev/null", "-H", "X-Request-Id: die0"])
            .arg(format!("http://127.0.0.1:{port}/die?id=die0")),
        T,
    );
    assert!(!out.status.success(), "curl must see the short body");
    let _ = server.child.wait();
    let (records, stderr) = stop(profiler);
    for (role, comm) in [("client", "curl"), ("server", "python3")] {
        let side = Side::of(&records, role, comm);
        assert_eq!(side.requests.len(), 1, "{comm}: {records:#?}");
        assert_eq!(side.requests[0]["partial"], false);
        assert_eq!(
            side.responses.len(),
            1,
            "{comm}: the cut response is still reported"
        );
        let r = side.responses[0];
        assert_eq!(r["partial"], true, "{comm}: cut short by the exit: {r}");
        assert_eq!(r["exchange"], side.requests[0]["exchange"]);
        assert_eq!(r["status"], 200);
        note(
            &format!("server exits mid-response: {comm} (partial)"),
            1,
            side.responses.len(),
        );
    }
    assert!(summary(&stderr, "partial_messages") >= 2);
    assert_pairing_exact(&records);
}

#[apply(root_test!)]
fn traced_client_exits_mid_exchange() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let out = last_json(&run_ok(
        &mut pyclient(&["exit_mid", "127.0.0.1", &port.to_string(), "em"]),
        T,
    ));
    assert_eq!(out["requests"], 1);
    // /slow answers after 400 ms, to a client that is gone; then a normal request.
    std::thread::sleep(Duration::from_millis(700));
    run_ok(
        curl(&["-o", "/dev/null", "-H", "X-Request-Id: after0"])
            .arg(format!("http://127.0.0.1:{port}/?id=after0")),
        T,
    );
    let (records, stderr) = stop(profiler);
    let client = Side::of(&records, "client", "python3");
    assert_eq!(client.requests.len(), 1);
    assert!(
        client.responses.is_empty(),
        "no response reached the exited client"
    );
    assert!(summary(&stderr, "unanswered_requests") >= 1);
    // The server read the whole request; hyper drops the /slow handler when it reads EOF, so
    // it may never answer. Whatever it sent is paired with the right request.
    let server = Side::of(&records, "server", "demo-server");
    assert_eq!(server.requests.len(), 2);
    assert!(server.requests.iter().any(|r| r["url"] == "/slow?id=em0"));
    assert!(server.paired().iter().all(|r| r["status"] == 200));
    assert_exact(&records, "client", "curl", "after", 1);
    assert_pairing_exact(&records);
    note(
        "client exits before the response (python)",
        1,
        client.requests.len(),
    );
}

/// One pyclient connection to a fresh demo-server, opened with `mode` ("preopen": one
/// exchange first; "preconnect": none) before capture starts, then `n` exchanges under
/// capture. Returns the profiler's records and stderr.
fn connection_opened_before_capture(mode: &str, n: usize, prefix: &str) -> (Vec<Value>, String) {
    let (_server, port) = demo_server(&[]);
    let args = [mode, "127.0.0.1", &port.to_string(), &n.to_string(), prefix];
    let mut child = pyclient(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "{mode}: not ready before capture");
    let profiler = Profiler::start(&[port], &[]);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    let out = last_json(&rest);
    assert_eq!(out["ok"], out["requests"], "{mode}: {out}");
    stop(profiler)
}

#[apply(root_test!)]
fn profiler_starts_while_connection_is_open() {
    let n = 20;
    let (records, _) = connection_opened_before_capture("preopen", n, "po");
    for (role, comm) in [("client", "python3"), ("server", "demo-server")] {
        let side = Side::of(&records, role, comm);
        // Every later request is logged; the first response after attaching may be unpaired
        // (the peer's position was unknown), never guessed.
        assert_eq!(side.requests.len(), n, "{comm}");
        assert_eq!(side.responses.len(), n, "{comm}");
        let paired = side.paired_ids();
        assert!(
            paired.len() >= n - 1,
            "{comm}: later exchanges pair: {paired:?}"
        );
        assert!(!paired.contains(&"po0".to_owned()));
        assert_eq!(side.partial(), 0);
        note(
            &format!("profiler starts with the connection open: {comm}"),
            n,
            paired.len(),
        );
    }
    assert!(assert_pairing_exact(&records) >= 2 * (n - 1));
}

#[apply(root_test!)]
fn connection_idle_since_its_open_is_followed_from_its_first_byte() {
    let n = 10;
    let (records, stderr) = connection_opened_before_capture("preconnect", n, "pc");
    // The socket backend sees that the server's first read starts the stream (nothing
    // received or written before it): every exchange pairs. The client writes first, and
    // a write does not tell; the syscall backend joins both sides mid-stream.
    let server_from_start = stderr.contains("backend=\"socket\"");
    for (role, comm, from_start) in [
        ("client", "python3", false),
        ("server", "demo-server", server_from_start),
    ] {
        let side = Side::of(&records, role, comm);
        assert_eq!(side.requests.len(), n, "{comm}");
        assert_eq!(side.responses.len(), n, "{comm}");
        let paired = side.paired_ids();
        let want = if from_start { n } else { n - 1 };
        assert!(paired.len() >= want, "{comm}: {paired:?}");
        assert_eq!(side.partial(), 0);
    }
    assert!(assert_pairing_exact(&records) >= 2 * (n - 1));
}
