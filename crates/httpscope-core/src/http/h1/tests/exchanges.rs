//! Whole exchanges: fields of the records, roles, chunking independence, pipelining.

use super::*;
use crate::http::{HttpVersion, MessageKind, Protocol, Role};

#[test]
fn simple_exchange_fields() {
    let mut f = Feed::new();
    let req = b"GET /a?b=1 HTTP/1.1\r\nHost: example\r\nX-V: caf\xc3\xa9\xff\r\n\r\n";
    f.send(req)
        .recv(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!");
    let out = f.take();
    assert_eq!(out.len(), 2);
    let (q, r) = (&out[0], &out[1]);
    assert_eq!(q.kind, MessageKind::Request);
    assert_eq!(q.direction, SEND);
    assert_eq!(q.method.as_deref(), Some("GET"));
    assert_eq!(q.url.as_deref(), Some("/a?b=1"));
    assert_eq!(q.proto, HttpVersion::Http11);
    assert_eq!(header(q, "host"), Some("example"));
    assert_eq!(header(q, "x-v"), Some("café\u{fffd}"));
    assert_eq!(q.wire_bytes, req.len() as u64);
    assert_eq!(q.raw, req.to_vec());
    assert_eq!((q.first_ts_ns, q.last_ts_ns), (10, 10));
    assert_eq!(q.exchange, Some(1));
    assert_eq!(q.latency_ns, None);
    assert_eq!(r.kind, MessageKind::Response);
    assert_eq!(r.direction, RECV);
    assert_eq!(
        (r.status, r.reason.as_deref()),
        (Some(404), Some("Not Found"))
    );
    assert_eq!(
        (r.method.as_deref(), r.url.as_deref()),
        (Some("GET"), Some("/a?b=1"))
    );
    assert_eq!((r.body.as_slice(), r.body_len), (&b"nope!"[..], 5));
    assert!(!r.body_truncated && r.body_captured && !r.partial && !r.interim);
    assert_eq!(r.exchange, Some(1));
    assert_eq!(r.latency_ns, Some(10));
    assert_eq!(f.conn.role(), Some(Role::Client));
    assert_eq!(f.conn.protocol(), Protocol::Http1);
    assert_eq!(f.counters.messages, 2);
    assert_eq!(
        f.counters,
        ParseCounters {
            messages: 2,
            ..Default::default()
        }
    );
}

#[test]
fn a_repeated_target_is_shared_not_copied() {
    let mut f = Feed::new();
    for path in ["/a", "/a", "/b"] {
        f.send(&get(path)).recv(&response("x"));
    }
    let out = f.take();
    let urls: Vec<_> = out.iter().filter_map(|m| m.url.clone()).collect();
    assert_eq!(urls.len(), 6);
    assert!(urls
        .iter()
        .all(|url| std::sync::Arc::ptr_eq(url, &urls[0]) == (**url == *"/a")));
    assert!(std::sync::Arc::ptr_eq(&urls[4], &urls[5]));
}

#[test]
fn server_role_and_raw_limit() {
    let config = HttpConfig {
        raw_limit: 8,
        ..HttpConfig::default()
    };
    let mut f = Feed::with(false, config);
    f.recv(&get("/")).send(&response("hello"));
    let out = f.take();
    assert_eq!(f.conn.role(), Some(Role::Server));
    assert_eq!(out[0].direction, RECV);
    assert_eq!(out[0].raw, b"GET / HT");
    assert_eq!(out[1].raw, b"HTTP/1.1");
    assert_eq!(out[1].exchange, Some(1));
}

#[test]
fn one_byte_chunks_give_the_same_records() {
    let req = b"POST /up HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let mut whole = Feed::new();
    whole.send(req).recv(resp);
    let mut bytes = Feed::new();
    bytes.split(SEND, req, 1).split(RECV, resp, 1);
    let a: Vec<_> = whole.take().into_iter().map(timeless).collect();
    let b: Vec<_> = bytes.take().into_iter().map(timeless).collect();
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
    assert_eq!(b[1].body, b"ok");
    assert_eq!(bytes.counters.messages, 2);
    assert_eq!(bytes.counters.parse_errors, 0);
}

#[test]
fn first_and_last_timestamps_follow_the_bytes() {
    let mut f = Feed::new();
    f.send(b"GET / HTTP/1.1\r\n").send(b"\r\n");
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
        .recv(b"cd");
    let out = f.take();
    assert_eq!((out[0].first_ts_ns, out[0].last_ts_ns), (10, 20));
    assert_eq!((out[1].first_ts_ns, out[1].last_ts_ns), (30, 40));
    assert_eq!(out[1].latency_ns, Some(30));
}

#[test]
fn sixteen_pipelined_requests_and_responses() {
    let mut reqs = Vec::new();
    let mut resps = Vec::new();
    for i in 0..16 {
        reqs.extend_from_slice(&get(&format!("/r{i}")));
        resps.extend_from_slice(&response(&format!("body{i}")));
    }
    let mut f = Feed::new();
    f.send(&reqs);
    assert_eq!(f.out.len(), 16, "requests come out as soon as complete");
    f.recv(&resps);
    let out = f.take();
    assert_eq!(out.len(), 32);
    for i in 0..16 {
        let (q, r) = (&out[i], &out[16 + i]);
        assert_eq!(q.url.as_deref(), Some(format!("/r{i}").as_str()));
        assert_eq!(q.exchange, Some(i as u64 + 1));
        assert_eq!(r.exchange, Some(i as u64 + 1));
        assert_eq!(r.url, q.url);
        assert_eq!(r.body, format!("body{i}").into_bytes());
        assert_eq!(
            r.raw.len(),
            response(&format!("body{i}")).len(),
            "raw is per message"
        );
    }
    assert_eq!(f.counters.messages, 32);
    f.close();
    assert_eq!(f.counters.unanswered_requests, 0);
}

#[test]
fn keep_alive_blank_lines_between_messages() {
    let mut f = Feed::new();
    f.send(b"GET /1 HTTP/1.1\r\n\r\n\r\n")
        .send(b"\r\nGET /2 HTTP/1.1\r\n\r\n");
    let out = f.take();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].url.as_deref(), Some("/2"));
    assert_eq!(out[1].raw, b"GET /2 HTTP/1.1\r\n\r\n");
    assert_eq!(f.counters.parse_errors, 0);
}

#[test]
fn http10_close_delimited_response() {
    let mut f = Feed::new();
    f.send(b"GET / HTTP/1.0\r\n\r\n");
    f.recv(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nfirst ")
        .recv(b"second");
    assert_eq!(f.out.len(), 1, "body runs until close");
    f.close();
    let out = f.take();
    let r = &out[1];
    assert_eq!(
        (out[0].proto, r.proto),
        (HttpVersion::Http10, HttpVersion::Http10)
    );
    assert_eq!(r.body, b"first second");
    assert!(!r.partial && !r.body_truncated);
    assert_eq!(r.last_ts_ns, 30, "last byte, not the close");
    assert_eq!(f.counters.partial_messages, 0);
}

#[test]
fn head_larger_than_limit_is_dropped_then_resynced() {
    let config = HttpConfig {
        max_head_bytes: 64,
        ..HttpConfig::default()
    };
    let mut f = Feed::with(false, config);
    let big = format!("GET /{} HTTP/1.1\r\n\r\n", "x".repeat(100));
    f.send(&get("/ok")).recv(&response(""));
    f.split(SEND, big.as_bytes(), 7);
    assert_eq!(f.counters.head_too_large, 1);
    assert_eq!(f.counters.parse_errors, 1);
    // Accumulated limit in one piece too.
    f.send(big.as_bytes());
    assert_eq!(f.counters.head_too_large, 2);
    f.send(&get("/next"));
    let out = f.take();
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].url.as_deref(), Some("/next"));
    assert!(f.counters.resyncs >= 1);
}
