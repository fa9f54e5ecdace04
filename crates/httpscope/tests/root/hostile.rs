//! Hostile traffic on a watched port: httpscope keeps running with bounded memory,
//! counts what it cannot parse, and still captures the good traffic interleaved with the bad.
//! Root integration tests.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use macro_rules_attribute::apply;

use crate::hardening::*;
use crate::support::*;

/// Peak resident memory allowed to the profiler (it idles at a few tens of MiB).
const MAX_RSS_MIB: u64 = 200;

/// Sends a request head one byte at a time over about five seconds, then reads the answer.
fn slowloris(port: u16) -> String {
    let head = b"GET /healthz?slowloris=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let pause = Duration::from_millis(5_000 / head.len() as u64);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    for byte in head {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(pause);
    }
    let mut reply = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.read_to_string(&mut reply);
    reply
}

#[apply(root_test!)]
fn hostile_traffic_is_survived_and_good_traffic_still_captured() {
    let (_server, port) = demo_server(&[]);
    let mut profiler = Profiler::start(&[port], &[]);
    let slow = std::thread::spawn(move || slowloris(port));

    let mut tags = Vec::new();
    let mut good = |what: &str| {
        let tag = format!("{}-{what}", tags.len());
        good_request(port, &tag);
        tags.push(tag);
    };
    let quick = Duration::from_secs(3);
    good("first");

    // Random bytes, on fresh connections and behind a plausible request start.
    let mut seed = 0x5eed_0001_u64;
    for i in 0..20 {
        send_raw(port, &garbage(&mut seed, 1 + i * 811), true, quick);
        good("after-garbage");
    }
    let mut raw = b"GET /healthz HTTP/1.1\r\nHost: t\r\n".to_vec();
    raw.extend(garbage(&mut seed, 4096));
    send_raw(port, &raw, true, quick);
    good("after-garbage-head");

    // Truncated requests: head cut short, body cut short (then FIN).
    send_raw(port, b"GET /healthz HTTP/1.1\r\nHo", false, Duration::ZERO);
    send_raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"mess",
        false,
        Duration::ZERO,
    );
    good("after-truncated");

    // Unparseable heads: the profiler must count these as parse errors.
    send_raw(
        port,
        b"GET /bad HTTP/1.1\r\nno colon here\r\n\r\n",
        true,
        quick,
    );
    send_raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n",
        true,
        quick,
    );
    good("after-bad-heads");

    // A header line of 1 MiB, and 10,000 headers.
    let mut huge = b"GET /healthz?huge=1 HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    huge.resize(huge.len() + (1 << 20), b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    send_raw(port, &huge, true, quick);
    good("after-1mib-header");
    let mut many = b"GET /healthz?many=1 HTTP/1.1\r\nHost: t\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    send_raw(port, &many, true, quick);
    good("after-10000-headers");
    assert_bounded(&mut profiler.proc, MAX_RSS_MIB, "the 1 MiB header line");

    // Resets in the middle of a body, and a declared body longer than anything sent.
    for _ in 0..5 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"mess")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        reset(stream);
    }
    send_raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999999999999\r\n\r\nab",
        false,
        Duration::ZERO,
    );
    good("after-resets");

    // Half-closed sockets: a whole request then FIN (hyper drops such a connection unanswered
    // by default), and half a request then FIN.
    send_raw(
        port,
        b"GET /healthz?halfclosed=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        true,
        quick,
    );
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{")
            .unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    good("after-half-close");

    let reply = slow.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "slowloris: {reply:?}");
    good("last");
    assert_bounded(&mut profiler.proc, MAX_RSS_MIB, "all hostile traffic");

    let (records, stderr) = profiler.stop();
    assert_good_requests(&records, &tags);

    // The slowloris request, assembled from ~70 one-byte syscalls, is captured whole.
    let slow_url = "/healthz?slowloris=1";
    let server_side = |kind: &str| {
        records
            .iter()
            .filter(|r| r["role"] == "server" && r["kind"] == kind && r["url"] == slow_url)
            .collect::<Vec<_>>()
    };
    let (requests, responses) = (server_side("request"), server_side("response"));
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(responses.len(), 1, "{responses:#?}");
    assert_eq!(responses[0]["status"], 200);
    assert_eq!(responses[0]["exchange"], requests[0]["exchange"]);
    let latency = responses[0]["latency_ms"].as_f64().unwrap();
    assert!(latency > 3_000.0, "slowloris latency {latency} ms");

    // The half-closed request was captured as the server read it.
    assert!(
        records.iter().any(|r| r["role"] == "server"
            && r["kind"] == "request"
            && r["url"] == "/healthz?halfclosed=1"
            && r["partial"] == false),
        "half-closed request not captured"
    );

    // Failures are counted and reported, not guessed.
    assert_eq!(summary_counter(&stderr, "kernel_drops"), 0, "{stderr}");
    let parse_errors = summary_counter(&stderr, "parse_errors");
    assert!(parse_errors >= 4, "parse_errors={parse_errors}: {stderr}");
    assert!(
        summary_counter(&stderr, "non_http_bytes") > 0,
        "random bytes not counted as non-HTTP: {stderr}"
    );
    assert!(
        summary_counter(&stderr, "partial_messages") > 0,
        "truncated messages not counted: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[apply(root_test!)]
fn ten_thousand_abandoned_connections_keep_memory_bounded() {
    const CONNECTIONS: usize = 10_000;
    // The client ends here, the server ends in demo-server, which inherits the limit.
    let nofile = raise_nofile();
    let limit = nofile.limit;
    assert!(
        limit > CONNECTIONS as u64 + 100,
        "RLIMIT_NOFILE hard limit {limit} is too low for {CONNECTIONS} connections"
    );
    let (_server, port) = demo_server(&[]);
    let mut profiler = Profiler::start(&[port], &[]);
    good_request(port, "before");

    // Each connection leaves a ~1 KiB request head unfinished, then is abandoned.
    let mut pad = b"GET /abandoned HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    pad.resize(1024, b'p');
    let mut open = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let _ = stream.write_all(&pad);
        open.push(stream);
    }
    std::thread::sleep(Duration::from_secs(1));
    let hwm_open = assert_bounded(
        &mut profiler.proc,
        MAX_RSS_MIB,
        "10,000 connections left open with partial heads",
    );
    // Abandon them: most just vanish (FIN), some with a reset.
    for (i, stream) in open.into_iter().enumerate() {
        if i % 10 == 0 {
            reset(stream);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    good_request(port, "after");
    assert_bounded(&mut profiler.proc, MAX_RSS_MIB, "abandoning them");

    let (records, stderr) = profiler.stop();
    assert_good_requests(&records, &["before".to_owned(), "after".to_owned()]);
    assert!(
        !records.iter().any(|r| r["url"] == "/abandoned"),
        "an unfinished head became a record"
    );
    let partial = summary_counter(&stderr, "partial_messages");
    assert!(
        partial >= CONNECTIONS as u64,
        "partial_messages={partial} (peak RSS {hwm_open} KiB): {stderr}"
    );
}
