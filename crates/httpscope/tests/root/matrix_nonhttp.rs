//! The capture matrix, non-HTTP traffic on a watched port and loss: random bytes and a TLS
//! ClientHello are counted and reported, never logged as exchanges; a bare HTTP/2 preface is
//! counted as an HTTP/2 connection with nothing to log; real h2c (Node.js http2 server, curl
//! --http2-prior-knowledge) is logged exchange by exchange; ring-buffer overflow flags what it
//! hits and never pairs a response with the wrong request.

use std::process::Command;
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::support::matrix::*;
use crate::support::*;

const T: Duration = Duration::from_secs(60);

#[apply(root_test!)]
fn random_tls_and_h2_preface_are_counted_not_logged() {
    let (_server, port) = demo_server(&[]);
    let profiler = Profiler::start(&[port], &[]);
    let p = port.to_string();
    let mut sent = 0;
    for kind in ["random", "tls", "h2preface"] {
        let out = last_json(&run_ok(&mut pyclient(&["raw", "127.0.0.1", &p, kind]), T));
        // The preface is HTTP/2's: read, not counted as unreadable.
        if kind != "h2preface" {
            sent += out["sent"].as_u64().unwrap();
        }
    }
    // Real HTTP on the same port is still logged.
    run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-o",
                "/dev/null",
                "-H",
                "X-Request-Id: ok0",
            ])
            .arg(format!("http://127.0.0.1:{port}/?id=ok0")),
        T,
    );
    let (records, stderr) = stop(profiler);
    let clean = strip_ansi(&stderr);
    assert!(
        records
            .iter()
            .all(|r| r["comm"] == "curl" || r["url"] == "/?id=ok0"),
        "bogus exchanges logged: {records:#?}"
    );
    assert_eq!(
        records.len(),
        4,
        "only the curl exchange, on both sides: {records:#?}"
    );
    assert_eq!(assert_pairing_exact(&records), 2);
    // Counted on both sides (client send + server recv), and each connection reported.
    let non_http = summary(&stderr, "non_http_bytes");
    assert!(
        non_http >= sent,
        "non_http_bytes={non_http}, sent {sent}:\n{clean}"
    );
    assert_eq!(summary(&stderr, "tls_conns"), 2, "{clean}");
    assert_eq!(summary(&stderr, "http2_conns"), 2, "{clean}");
    assert_eq!(summary(&stderr, "other_conns"), 2, "{clean}");
    assert!(clean.contains("protocol=\"tls\""), "{clean}");
    assert!(clean.contains("protocol=\"other\""), "{clean}");
    assert!(!clean.contains("protocol=\"http2\""), "{clean}");
    note("random bytes: records", 0, 0);
    note(
        "TLS ClientHello: tls_conns (client+server)",
        2,
        summary(&stderr, "tls_conns") as usize,
    );
    note(
        "HTTP/2 preface: http2_conns (client+server)",
        2,
        summary(&stderr, "http2_conns") as usize,
    );
}

#[apply(root_test!)]
fn h2c_prior_knowledge_is_logged() {
    let (_server, port) = node_server("h2c");
    let profiler = Profiler::start(&[port], &[]);
    let url = format!("http://127.0.0.1:{port}/?id=h2-");
    for i in 0..2 {
        let out = run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "--http2-prior-knowledge", "-H"])
                .arg(format!("X-Request-Id: h2-{i}"))
                .arg(format!("{url}{i}")),
            T,
        );
        assert!(
            out.contains(&format!("hello h2-{i}")),
            "the h2c exchange really happened: {out}"
        );
    }
    let (records, stderr) = stop(profiler);
    let clean = strip_ansi(&stderr);
    assert!(
        records
            .iter()
            .all(|r| r["proto"] == "h2" && r["stream"] == 1),
        "{records:#?}"
    );
    assert_eq!(
        records.len(),
        8,
        "2 exchanges, seen by curl and node: {records:#?}"
    );
    assert_eq!(assert_pairing_exact(&records), 4);
    let client = Side::of(&records, "client", "curl");
    let server = Side::of(&records, "server", "node");
    assert_eq!((client.paired().len(), server.paired().len()), (2, 2));
    assert_eq!(
        summary(&stderr, "http2_conns"),
        4,
        "2 connections, curl and node: {clean}"
    );
    assert_eq!(summary(&stderr, "non_http_bytes"), 0, "{clean}");
    assert!(!clean.contains("protocol=\"http2\""), "no warning: {clean}");
    note(
        "h2c prior knowledge (node http2 + curl): paired exchanges",
        4,
        client.paired().len() + server.paired().len(),
    );
}

#[apply(root_test!)]
fn ring_buffer_overflow_flags_and_never_mispairs() {
    let (_server, port) = demo_server(&[]);
    // Bodies copied whole (no capture budget), so a 1 MiB ring cannot keep up.
    let profiler = Profiler::start(
        &[port],
        &[
            "--ring-mb",
            "1",
            "--capture-bytes",
            "32768",
            "--no-capture-budget",
        ],
    );
    let out = run_ok(
        Command::new("wrk")
            .args(["-t2", "-c32", "-d2", "-s"])
            .arg(program("wrk_ids.lua"))
            .arg(format!("http://127.0.0.1:{port}/bytes/65536")),
        T,
    );
    let wrk_count = wrk_requests(&out);
    let (records, stderr) = stop(profiler);
    let clean = strip_ansi(&stderr);
    let drops = summary(&stderr, "kernel_drops");
    assert!(
        drops > 0,
        "the ring buffer did not overflow; the test proves nothing:\n{clean}"
    );
    assert!(clean.contains("ring buffer overflowed"), "{clean}");
    let flagged = records
        .iter()
        .filter(|r| r["partial"] == true || r["body_captured"] == false)
        .count();
    assert!(flagged > 0, "drops but nothing flagged");
    // No request is ever paired with the wrong response.
    let verified = assert_pairing_exact(&records);
    let server = Side::of(&records, "server", "demo-server");
    let client = Side::of(&records, "client", "wrk");
    assert!(verified > 0, "nothing paired at all");
    assert!(client.paired().len() <= wrk_count + 32);
    eprintln!(
        "MATRIX case=\"ring overflow (wrk, --ring-mb 1)\" wrk_requests={wrk_count} kernel_drops={drops} \
         paired_server={} paired_client={} verified={verified} flagged={flagged} partial_messages={} unpaired_responses={}",
        server.paired().len(),
        client.paired().len(),
        summary(&stderr, "partial_messages"),
        summary(&stderr, "unpaired_responses"),
    );
}
